package api

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chorus-mixnet/chorus/client/message"
)

// fuzzMaxMessage is the message limit the fuzz target decodes sends with.
const fuzzMaxMessage = 4096

// FuzzDecodeRequest feeds arbitrary input to every request decoder, chosen
// by kind: none panics, every refusal is ErrInvalid or ErrTooLarge and
// returns nothing, and every accepted input re-encodes to a request that
// decodes to the same value.
func FuzzDecodeRequest(f *testing.F) {
	card := newCard(f).Encode()
	for _, s := range []string{
		`{"name":"alice","card":"` + card + `"}`,
		`{"name":"a\u0000","card":"` + card + `"}`,
		`{"NAME":"alice","Card":"` + card + `"}`,
		`{"name":"alice","name":"bob","card":"` + card + `"}`,
		`{"to":"alice","text":"hello"}`,
		`{"to":"alice","body":"AAEC/w=="}`,
		`{"to":"alice","text":"\ud800"}`,
		`{"to":"alice","text":"a","body":"YQ=="}`,
		`{}`, ``, `null`, `{} {}`, `[]`, `{"x":1}`,
		`after=7&wait=30s`, `after=007`, `wait=1h`, `after=1&after=2`, `%zz`,
		`alice`, `a%2Fb`, "a\x00", "\xff",
		"0123456789abcdef0123456789ABCDEF", "01",
		"42", "0", "+1", "18446744073709551615",
	} {
		for kind := range uint8(7) {
			f.Add(kind, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		switch kind % 7 {
		case 0:
			fuzzAddContact(t, data)
		case 1:
			fuzzSend(t, data)
		case 2:
			if err := decodeEmpty(limited(data, maxSmallBody)); err != nil {
				checkRefusal(t, err)
			}
		case 3:
			fuzzInboxQuery(t, string(data))
		case 4:
			name, err := parseName(string(data))
			if err != nil {
				checkRefusal(t, err)
				if name != "" {
					t.Fatal("refused name returned")
				}
				return
			}
			if name != string(data) || !utf8.ValidString(name) || len(name) > MaxNameLength {
				t.Fatalf("accepted name %q as %q", data, name)
			}
		case 5:
			id, err := parseMessageID(string(data))
			if err != nil {
				checkRefusal(t, err)
				if id != (message.MessageID{}) {
					t.Fatal("refused ID returned")
				}
				return
			}
			again, err := parseMessageID(id.String())
			if err != nil || again != id {
				t.Fatalf("ID %q re-encodes as %q: %v", data, id.String(), err)
			}
		case 6:
			seq, err := parseSeq(string(data))
			if err != nil {
				return
			}
			if again, err := parseSeq(strconv.FormatUint(seq, 10)); err != nil || again != seq {
				t.Fatalf("seq %q: %d, again %d %v", data, seq, again, err)
			}
		}
	})
}

// limited is data as a request body limited to n bytes, as the server
// reads it.
func limited(data []byte, n int64) io.Reader {
	return http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(data)), n)
}

// checkRefusal requires a refusal to be one of the answers the server
// sends for bad input.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
		t.Fatalf("refusal %v is neither invalid nor too large", err)
	}
	if status, _, _ := classify(err); status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
		t.Fatalf("refusal %v answers %d", err, status)
	}
}

func fuzzAddContact(t *testing.T, data []byte) {
	name, card, err := decodeAddContact(limited(data, maxSmallBody))
	if err != nil {
		checkRefusal(t, err)
		if name != "" || card != (message.Card{}) {
			t.Fatal("refused request returned values")
		}
		return
	}
	if !ValidName(name) {
		t.Fatalf("accepted bad name %q", name)
	}
	b, err := encodeJSON(addContactRequest{Name: name, Card: card.Encode()})
	if err != nil {
		t.Fatal(err)
	}
	name2, card2, err := decodeAddContact(limited(b, maxSmallBody))
	if err != nil || name2 != name || !card2.Equal(card) {
		t.Fatalf("%q re-encoded as %q decodes to %q, %v", data, b, name2, err)
	}
}

func fuzzSend(t *testing.T, data []byte) {
	to, body, err := decodeSend(limited(data, sendBodyLimit(fuzzMaxMessage)), fuzzMaxMessage)
	if err != nil {
		checkRefusal(t, err)
		if to != "" || body != nil {
			t.Fatal("refused request returned values")
		}
		return
	}
	if !ValidName(to) || len(body) == 0 || len(body) > fuzzMaxMessage {
		t.Fatalf("accepted to %q, %d-byte body", to, len(body))
	}
	reqs := []sendRequest{{To: to, Body: body}}
	if utf8.Valid(body) {
		reqs = append(reqs, sendRequest{To: to, Text: string(body)})
	}
	for _, req := range reqs {
		b, err := encodeJSON(req)
		if err != nil {
			t.Fatal(err)
		}
		to2, body2, err := decodeSend(limited(b, sendBodyLimit(fuzzMaxMessage)), fuzzMaxMessage)
		if err != nil || to2 != to || !bytes.Equal(body2, body) {
			t.Fatalf("%q re-encoded as %q decodes to %q, %q, %v", data, b, to2, body2, err)
		}
	}
}

func fuzzInboxQuery(t *testing.T, raw string) {
	const maxWait = time.Hour
	q, err := parseInboxQuery(raw, maxWait)
	if err != nil {
		checkRefusal(t, err)
		if q != (inboxQuery{}) {
			t.Fatal("refused query returned values")
		}
		return
	}
	if q.Wait < 0 || q.Wait > maxWait {
		t.Fatalf("accepted wait %v", q.Wait)
	}
	q2, err := parseInboxQuery(q.encode(), maxWait)
	if err != nil || q2 != q {
		t.Fatalf("%q re-encoded as %q decodes to %+v, %v", raw, q.encode(), q2, err)
	}
}
