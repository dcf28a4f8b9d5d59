package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/chorus-mixnet/chorus/client/message"
	"github.com/chorus-mixnet/chorus/mix/keys"
)

// Backend is what the API serves: the daemon core implements it, and
// tests fake it. The server has already validated every argument: names
// are valid contact names (ValidName), cards parsed, bodies within the
// size limit and non-empty.
//
// Errors choose the HTTP status: wrap ErrInvalid, ErrNotFound,
// ErrConflict, ErrTooLarge, ErrUnavailable or ErrTimeout (with %w) and the
// error's text goes to the API client as its message. Any other error is
// logged by the server at error level, with its text, and the API client
// sees only "internal error": such errors must carry no contact name,
// card, message body or address.
type Backend interface {
	// Status reports the daemon's connection and queues.
	Status(ctx context.Context) (Status, error)
	// Identity returns the user's own contact card.
	Identity(ctx context.Context) (Identity, error)

	// AddContact adds a contact; ErrConflict if the name or the card's
	// key is already in use.
	AddContact(ctx context.Context, name string, card message.Card) error
	// Contacts lists the contacts.
	Contacts(ctx context.Context) ([]Contact, error)
	// RemoveContact removes a contact; ErrNotFound if there is none by
	// that name.
	RemoveContact(ctx context.Context, name string) error

	// Send queues body for the contact named to and returns the message's
	// ID once the message is durable (DESIGN §1 promise 4); ErrNotFound
	// if there is no such contact.
	Send(ctx context.Context, to string, body []byte) (message.MessageID, error)
	// MessageStatus reports where a sent message stands; ErrNotFound if
	// the ID is unknown.
	MessageStatus(ctx context.Context, id message.MessageID) (MessageStatus, error)

	// Inbox returns received messages with Seq > after, in Seq order,
	// bodies included. It may return only the first few (say, to bound
	// the response's size); callers ask again with after set to the last
	// Seq they got.
	Inbox(ctx context.Context, after uint64) ([]InboxMessage, error)
	// WaitInbox is Inbox that waits: it returns at once if there are
	// messages with Seq > after, else when the first arrives. When ctx
	// ends first it returns ctx's error (or no messages and no error).
	WaitInbox(ctx context.Context, after uint64) ([]InboxMessage, error)
	// MarkRead marks a received message read; ErrNotFound if there is no
	// such Seq.
	MarkRead(ctx context.Context, seq uint64) error
	// DeleteMessage deletes a received message; ErrNotFound if there is
	// no such Seq.
	DeleteMessage(ctx context.Context, seq uint64) error

	// Ping sends a packet to the echo service of the user's provider
	// through the network and returns the round-trip time; ErrTimeout if
	// no answer came in the backend's own time bound, ErrUnavailable if
	// the daemon is not connected.
	Ping(ctx context.Context) (time.Duration, error)
}

// Status is GET /v1/status.
type Status struct {
	// Connected reports whether the link to the provider is up.
	Connected bool `json:"connected"`
	// Epoch is the current PKI epoch, 0 before the first consensus.
	Epoch uint64 `json:"epoch"`
	// Queues are the sizes of the daemon's queues.
	Queues Queues `json:"queues"`
	// Rates are the current document's traffic rates.
	Rates Rates `json:"rates"`
}

// Queues are the sizes of the daemon's queues.
type Queues struct {
	// Outbox counts messages accepted and neither delivered nor failed.
	Outbox int `json:"outbox"`
	// Fragments counts fragments waiting for a send slot, first
	// attempts and retransmissions.
	Fragments int `json:"fragments"`
	// Unacked counts fragments sent and awaiting their ACK.
	Unacked int `json:"unacked"`
	// Inbox counts unread received messages.
	Inbox int `json:"inbox"`
}

// Rates are traffic rates in events per second (DESIGN §5.4).
type Rates struct {
	// Send is λP: send slots, each a real packet or a drop decoy.
	Send float64 `json:"send_per_second"`
	// Loop is λL: loop cover packets.
	Loop float64 `json:"loop_per_second"`
	// Drop is λD: drop cover packets.
	Drop float64 `json:"drop_per_second"`
	// Retrieve is the rate of mailbox retrievals.
	Retrieve float64 `json:"retrieve_per_second"`
}

// Identity is GET /v1/identity: what the user gives others.
type Identity struct {
	// Card is the user's contact card; in JSON its encoded string.
	Card message.Card `json:"card"`
	// LinkKey is the public key chorusd authenticates to its provider with.
	// A provider with closed registration lets a client in only after its
	// operator has added this key (chorus-provider users add).
	LinkKey keys.LinkPublicKey `json:"link_key"`
}

// Contact is someone the user can write to, as GET /v1/contacts lists it.
type Contact struct {
	// Name is the user's label for the contact (ValidName).
	Name string `json:"name"`
	// Card is the contact's card; in JSON its encoded string.
	Card message.Card `json:"card"`
	// Added is when the contact was added.
	Added time.Time `json:"added"`
}

// MessageState is where a sent message stands.
type MessageState string

// The states of a sent message.
const (
	// StateQueued: accepted, no fragment has left yet.
	StateQueued MessageState = "queued"
	// StateSent: fragments have left, not all are acknowledged.
	StateSent MessageState = "sent"
	// StateDelivered: every fragment was acknowledged by the recipient's
	// provider.
	StateDelivered MessageState = "delivered"
	// StateFailed: the daemon gave up after its bounded retransmissions.
	StateFailed MessageState = "failed"
)

// MessageStatus is GET /v1/messages/{id}.
type MessageStatus struct {
	// ID is the message's ID, as Send returned it (hex in JSON).
	ID message.MessageID `json:"id"`
	// To is the recipient contact's name when the message was queued.
	To string `json:"to"`
	// State is where the message stands.
	State MessageState `json:"state"`
	// Queued is when the message was accepted.
	Queued time.Time `json:"queued"`
	// Fragments is the number of fragments, Delivered how many were
	// acknowledged.
	Fragments int `json:"fragments"`
	Delivered int `json:"delivered"`
}

// InboxMessage is a received message, as GET /v1/inbox lists it.
type InboxMessage struct {
	// Seq numbers received messages in arrival order, from 1.
	Seq uint64 `json:"seq"`
	// From is the sender contact's name when the message arrived.
	From string `json:"from"`
	// ID is the sender's message ID (hex in JSON).
	ID message.MessageID `json:"id"`
	// Received is when the message arrived.
	Received time.Time `json:"received"`
	// Read is set by MarkRead.
	Read bool `json:"read"`
	// Body is the message (base64 in JSON).
	Body []byte `json:"body"`
	// Text is Body again as a string when Body is valid UTF-8, else
	// empty. The server fills it; a Backend leaves it empty.
	Text string `json:"text,omitempty"`
}

// The sentinel errors. A Backend wraps one to choose the HTTP status and
// code; the Client's *Error matches the same sentinel with errors.Is.
var (
	// ErrInvalid: 400 "invalid", the request is malformed or an argument
	// is not acceptable.
	ErrInvalid = errors.New("api: invalid request")
	// ErrNotFound: 404 "not_found", no such route, contact, message or
	// inbox entry.
	ErrNotFound = errors.New("api: not found")
	// ErrConflict: 409 "conflict", the name or card is already in use.
	ErrConflict = errors.New("api: conflict")
	// ErrTooLarge: 413 "too_large", the request body or message is over
	// its limit.
	ErrTooLarge = errors.New("api: too large")
	// ErrUnavailable: 503 "unavailable", the daemon cannot do it now
	// (not connected, shutting down).
	ErrUnavailable = errors.New("api: unavailable")
	// ErrTimeout: 504 "timeout", the network did not answer in time.
	ErrTimeout = errors.New("api: timed out")
	// ErrMethod: 405 "method_not_allowed", the route exists but not with
	// this method. Only the server returns it.
	ErrMethod = errors.New("api: method not allowed")
)

// Error codes in the JSON error body, one per sentinel, plus
// CodeInternal for everything else (500).
const (
	CodeInvalid     = "invalid"
	CodeNotFound    = "not_found"
	CodeConflict    = "conflict"
	CodeTooLarge    = "too_large"
	CodeUnavailable = "unavailable"
	CodeTimeout     = "timeout"
	CodeMethod      = "method_not_allowed"
	CodeInternal    = "internal"
)

// kinds ties each sentinel to its status and code.
var kinds = []struct {
	err    error
	status int
	code   string
}{
	{ErrInvalid, http.StatusBadRequest, CodeInvalid},
	{ErrNotFound, http.StatusNotFound, CodeNotFound},
	{ErrConflict, http.StatusConflict, CodeConflict},
	{ErrTooLarge, http.StatusRequestEntityTooLarge, CodeTooLarge},
	{ErrUnavailable, http.StatusServiceUnavailable, CodeUnavailable},
	{ErrTimeout, http.StatusGatewayTimeout, CodeTimeout},
	{ErrMethod, http.StatusMethodNotAllowed, CodeMethod},
}

// Error is an error answer from the API, as the Client returns it. It
// matches the sentinel of its Code with errors.Is:
//
//	if errors.Is(err, api.ErrNotFound) { ... }
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code is the "code" field of the error body (CodeInvalid, ...), or
	// empty if the body was not a JSON error.
	Code string
	// Message is the "error" field of the error body, or the HTTP
	// status text.
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "api: " + http.StatusText(e.Status)
	}
	return e.Message
}

// Is reports whether target is the sentinel for e's code.
func (e *Error) Is(target error) bool {
	for _, k := range kinds {
		if k.code == e.Code {
			return target == k.err
		}
	}
	return false
}

// errorBody is the JSON body of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}
