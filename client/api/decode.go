package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chorus-mixnet/chorus/client/message"
)

// MaxNameLength bounds a contact name, in bytes (the same bound as
// client/store's).
const MaxNameLength = 64

// Limits on requests.
const (
	// maxSmallBody bounds every request body but a message's.
	maxSmallBody = 16 << 10
	// sendOverhead is the room a send request has beyond its message's
	// worst-case encoding.
	sendOverhead = 16 << 10
	// DefaultMaxWait is the longest long-poll a server allows unless
	// configured otherwise.
	DefaultMaxWait = 5 * time.Minute
)

// sendBodyLimit bounds a send request's body for messages of up to max
// bytes: the text form of a message can take six bytes per byte in JSON
// ("\u0000"), base64 four per three.
func sendBodyLimit(max int) int64 { return 6*int64(max) + sendOverhead }

// ValidName reports whether name is acceptable as a contact name: 1 to
// MaxNameLength bytes of UTF-8 without control characters. It is the
// same rule client/store applies.
func ValidName(name string) bool {
	return name != "" && len(name) <= MaxNameLength && utf8.ValidString(name) &&
		strings.IndexFunc(name, unicode.IsControl) < 0
}

// The request bodies.
type (
	// addContactRequest is POST /v1/contacts.
	addContactRequest struct {
		Name string `json:"name"`
		Card string `json:"card"`
	}
	// sendRequest is POST /v1/messages: exactly one of Body (base64)
	// and Text (the message as a UTF-8 string) is non-empty.
	sendRequest struct {
		To   string `json:"to"`
		Body []byte `json:"body,omitempty"`
		Text string `json:"text,omitempty"`
	}
	// emptyRequest is the body of POSTs that take no arguments; the body
	// may also be absent.
	emptyRequest struct{}
)

// The response bodies that wrap values.
type (
	sendResponse struct {
		ID message.MessageID `json:"id"`
	}
	contactsResponse struct {
		Contacts []Contact `json:"contacts"`
	}
	inboxResponse struct {
		Messages []InboxMessage `json:"messages"`
	}
	pingResponse struct {
		// RTT is a time.Duration string ("1.234s").
		RTT string `json:"rtt"`
	}
)

// invalid returns an ErrInvalid error with a message for the API client.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// decodeJSON decodes exactly one JSON value from r into v, refusing
// unknown fields. If allowEmpty, an empty body leaves v as it is. An r
// limited with http.MaxBytesReader turns an overrun into ErrTooLarge.
func decodeJSON(r io.Reader, v any, allowEmpty bool) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if allowEmpty && err == io.EOF {
			return nil
		}
		return decodeError(err)
	}
	// Exactly one value: only white space may follow.
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
		return nil
	case err == nil:
		return invalid("request body holds more than one JSON value")
	default:
		return decodeError(err)
	}
}

// decodeError turns a decoding error into an error for the API client,
// echoing at most a short field name of the input.
func decodeError(err error) error {
	var (
		tooLarge *http.MaxBytesError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return fmt.Errorf("%w: request body over %d bytes", ErrTooLarge, tooLarge.Limit)
	case err == io.EOF:
		return invalid("request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("request body ends inside a JSON value")
	case errors.As(err, &syntax):
		return invalid("request body is not JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return invalid("request body must be a JSON object")
		}
		return invalid("field %s has the wrong type", shortQuote(typ.Field))
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if u, err := strconv.Unquote(f); err == nil {
			f = u
		}
		return invalid("unknown field %s", shortQuote(f))
	}
	return invalid("malformed request body")
}

// shortQuote quotes s, cut to a few dozen bytes.
func shortQuote(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.Quote(strings.ToValidUTF8(s[:max], "")) + "…"
	}
	return strconv.Quote(s)
}

// decodeAddContact reads POST /v1/contacts.
func decodeAddContact(r io.Reader) (name string, card message.Card, err error) {
	var req addContactRequest
	if err := decodeJSON(r, &req, false); err != nil {
		return "", message.Card{}, err
	}
	if !ValidName(req.Name) {
		return "", message.Card{}, errBadName
	}
	card, err = message.ParseCard(req.Card)
	if err != nil {
		return "", message.Card{}, invalid("card is not a valid contact card")
	}
	return req.Name, card, nil
}

var errBadName = invalid("contact names are 1 to %d bytes of UTF-8 without control characters", MaxNameLength)

// decodeSend reads POST /v1/messages for messages of at most max bytes.
func decodeSend(r io.Reader, max int) (to string, body []byte, err error) {
	var req sendRequest
	if err := decodeJSON(r, &req, false); err != nil {
		return "", nil, err
	}
	if !ValidName(req.To) {
		return "", nil, errBadName
	}
	switch {
	case len(req.Body) > 0 && req.Text != "":
		return "", nil, invalid("give the message as body or as text, not both")
	case len(req.Body) > 0:
		body = req.Body
	case req.Text != "":
		body = []byte(req.Text)
	default:
		return "", nil, invalid("message is empty")
	}
	if len(body) > max {
		return "", nil, fmt.Errorf("%w: message over %d bytes", ErrTooLarge, max)
	}
	return req.To, body, nil
}

// decodeEmpty reads the body of a POST that takes no arguments: nothing,
// or {}.
func decodeEmpty(r io.Reader) error {
	var req emptyRequest
	return decodeJSON(r, &req, true)
}

// inboxQuery is GET /v1/inbox's query: after=N (default 0) and wait=D
// (a time.Duration string, default 0: answer at once).
type inboxQuery struct {
	After uint64
	Wait  time.Duration
}

// encode returns the query string for q, leaving out defaults.
func (q inboxQuery) encode() string {
	v := url.Values{}
	if q.After != 0 {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	if q.Wait != 0 {
		v.Set("wait", q.Wait.String())
	}
	return v.Encode()
}

// parseInboxQuery reads GET /v1/inbox's query, with waits up to maxWait.
func parseInboxQuery(raw string, maxWait time.Duration) (inboxQuery, error) {
	var q inboxQuery
	v, err := url.ParseQuery(raw)
	if err != nil {
		return q, invalid("malformed query")
	}
	for k, vs := range v {
		if k != "after" && k != "wait" {
			return q, invalid("unknown query parameter %s", shortQuote(k))
		}
		if len(vs) != 1 {
			return q, invalid("query parameter %s given more than once", k)
		}
	}
	if s, ok := v["after"]; ok {
		if q.After, err = parseSeq(s[0]); err != nil {
			return inboxQuery{}, invalid("after must be a decimal sequence number")
		}
	}
	if s, ok := v["wait"]; ok {
		d, err := time.ParseDuration(s[0])
		if err != nil || d < 0 || d > maxWait {
			return inboxQuery{}, invalid("wait must be a duration like \"30s\", at most %v", maxWait)
		}
		q.Wait = d
	}
	return q, nil
}

// parseSeq reads a decimal inbox sequence number.
func parseSeq(s string) (uint64, error) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(s, 10, 64)
}

// parseName reads a contact name from a path segment (already unescaped).
func parseName(s string) (string, error) {
	if !ValidName(s) {
		return "", errBadName
	}
	return s, nil
}

// parseMessageID reads a message ID from a path segment.
func parseMessageID(s string) (message.MessageID, error) {
	var id message.MessageID
	if err := id.UnmarshalText([]byte(s)); err != nil {
		return message.MessageID{}, invalid("message IDs are %d hex digits", 2*message.MessageIDSize)
	}
	return id, nil
}

// escapeSegment escapes s for use as one path segment that the server's
// router will neither split nor clean: '/' and '.' are escaped as well as
// whatever url.PathEscape escapes.
func escapeSegment(s string) string {
	return strings.ReplaceAll(url.PathEscape(s), ".", "%2E")
}

// textOf returns b as a string if it is valid UTF-8, else "".
func textOf(b []byte) string {
	if !utf8.Valid(b) {
		return ""
	}
	return string(b)
}

// encodeJSON marshals v for a request or response body.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
