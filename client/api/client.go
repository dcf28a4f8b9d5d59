package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chorus-mixnet/chorus/client/message"
)

// Client talks to chorusd's API over its Unix socket. Its methods mirror
// Backend's; errors from the API are *Error values that match the
// sentinels (ErrNotFound, ...) with errors.Is, and other errors are the
// transport's (chorusd not running: a dial error). A Client is safe for
// concurrent use.
type Client struct {
	hc *http.Client
}

// baseURL is the URL prefix of every request; the host is a placeholder,
// the transport always dials the socket.
const baseURL = "http://chorusd"

// maxErrorBody bounds the error answers the client reads.
const maxErrorBody = 64 << 10

// Dial returns a Client for the socket at socketPath. It connects lazily,
// on the first request. Requests never go through an HTTP proxy,
// whatever the environment says.
func Dial(socketPath string) *Client {
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socketPath)
		},
		Proxy:               nil,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
	}
	return &Client{hc: &http.Client{Transport: tr}}
}

// Close closes the client's idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// do sends a request and decodes a JSON answer into out (if not nil).
// Errors name op, never the path, which may hold a contact name.
func (c *Client) do(ctx context.Context, op, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := encodeJSON(in)
		if err != nil {
			return fmt.Errorf("api: %s: encode request: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, baseURL+path, body)
	if err != nil {
		return fmt.Errorf("api: %s: %w", op, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		// A *url.Error repeats the URL, which may hold a contact name.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("api: %s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	// Answers are decoded leniently: a newer chorusd may add fields.
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api: %s: decode answer: %w", op, err)
	}
	return nil
}

// readError turns an error answer into an *Error.
func readError(resp *http.Response) error {
	e := &Error{Status: resp.StatusCode, Message: "api: " + strings.ToLower(http.StatusText(resp.StatusCode))}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body errorBody
	if json.Unmarshal(b, &body) == nil && body.Code != "" {
		e.Code = body.Code
		if body.Error != "" {
			e.Message = body.Error
		}
	}
	return e
}

// Status returns GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, "status", http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// Identity returns GET /v1/identity: the user's own card.
func (c *Client) Identity(ctx context.Context) (Identity, error) {
	var id Identity
	err := c.do(ctx, "identity", http.MethodGet, "/v1/identity", nil, &id)
	return id, err
}

// AddContact adds a contact from a card as people paste it (surrounding
// white space is trimmed): POST /v1/contacts. ErrConflict if the name or
// the card's key is already in use, ErrInvalid for a bad name or card.
func (c *Client) AddContact(ctx context.Context, name, card string) error {
	req := addContactRequest{Name: name, Card: strings.TrimSpace(card)}
	return c.do(ctx, "add contact", http.MethodPost, "/v1/contacts", req, nil)
}

// Contacts lists the contacts: GET /v1/contacts.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	var resp contactsResponse
	err := c.do(ctx, "contacts", http.MethodGet, "/v1/contacts", nil, &resp)
	return resp.Contacts, err
}

// RemoveContact removes a contact: DELETE /v1/contacts/{name}.
func (c *Client) RemoveContact(ctx context.Context, name string) error {
	return c.do(ctx, "remove contact", http.MethodDelete, "/v1/contacts/"+escapeSegment(name), nil, nil)
}

// Send queues body for the contact named to and returns the message's ID:
// POST /v1/messages. The message is durable when Send returns.
func (c *Client) Send(ctx context.Context, to string, body []byte) (message.MessageID, error) {
	var resp sendResponse
	err := c.do(ctx, "send", http.MethodPost, "/v1/messages", sendRequest{To: to, Body: body}, &resp)
	return resp.ID, err
}

// MessageStatus reports where a sent message stands: GET
// /v1/messages/{id}.
func (c *Client) MessageStatus(ctx context.Context, id message.MessageID) (MessageStatus, error) {
	var st MessageStatus
	err := c.do(ctx, "message status", http.MethodGet, "/v1/messages/"+id.String(), nil, &st)
	return st, err
}

// Inbox returns received messages with Seq > after: GET
// /v1/inbox?after=N. It may return only the first few; ask again with
// after set to the last Seq.
func (c *Client) Inbox(ctx context.Context, after uint64) ([]InboxMessage, error) {
	return c.inbox(ctx, inboxQuery{After: after})
}

// WaitInbox is Inbox that waits up to wait (at most the server's MaxWait)
// for a message with Seq > after: GET /v1/inbox?after=N&wait=D. It
// returns no messages and no error when the wait runs out.
func (c *Client) WaitInbox(ctx context.Context, after uint64, wait time.Duration) ([]InboxMessage, error) {
	if wait <= 0 {
		return c.Inbox(ctx, after)
	}
	return c.inbox(ctx, inboxQuery{After: after, Wait: wait})
}

func (c *Client) inbox(ctx context.Context, q inboxQuery) ([]InboxMessage, error) {
	path := "/v1/inbox"
	if s := q.encode(); s != "" {
		path += "?" + s
	}
	var resp inboxResponse
	err := c.do(ctx, "inbox", http.MethodGet, path, nil, &resp)
	return resp.Messages, err
}

// MarkRead marks a received message read: POST /v1/inbox/{seq}/read.
func (c *Client) MarkRead(ctx context.Context, seq uint64) error {
	return c.do(ctx, "mark read", http.MethodPost, "/v1/inbox/"+strconv.FormatUint(seq, 10)+"/read", nil, nil)
}

// DeleteMessage deletes a received message: DELETE /v1/inbox/{seq}.
func (c *Client) DeleteMessage(ctx context.Context, seq uint64) error {
	return c.do(ctx, "delete message", http.MethodDelete, "/v1/inbox/"+strconv.FormatUint(seq, 10), nil, nil)
}

// Ping measures a round trip through the network to the user's
// provider's echo service: POST /v1/ping.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	var resp pingResponse
	if err := c.do(ctx, "ping", http.MethodPost, "/v1/ping", nil, &resp); err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(resp.RTT)
	if err != nil {
		return 0, errors.New("api: ping: decode answer: bad rtt")
	}
	return d, nil
}
