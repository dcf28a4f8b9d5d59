package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/client/message"
)

// fakeBackend is an in-memory Backend. Set fail[method] to make a method
// return that error.
type fakeBackend struct {
	mu       sync.Mutex
	status   Status
	card     message.Card
	contacts map[string]Contact
	sent     map[message.MessageID]MessageStatus
	bodies   map[message.MessageID][]byte
	inbox    []InboxMessage
	changed  chan struct{} // closed and replaced when the inbox grows
	waiters  int
	rtt      time.Duration
	// pingWait makes Ping wait for ctx to end.
	pingWait bool
	pinging  int // Ping calls that waited
	fail     map[string]error
}

func newFakeBackend(t testing.TB) *fakeBackend {
	return &fakeBackend{
		status: Status{
			Connected: true, Epoch: 42,
			Queues: Queues{Outbox: 1, Fragments: 2, Unacked: 3, Inbox: 4},
			Rates:  Rates{Send: 2, Loop: 0.5, Drop: 0.25, Retrieve: 1},
		},
		card:     newCard(t),
		contacts: map[string]Contact{},
		sent:     map[message.MessageID]MessageStatus{},
		bodies:   map[message.MessageID][]byte{},
		changed:  make(chan struct{}),
		rtt:      1234567 * time.Microsecond,
		fail:     map[string]error{},
	}
}

func (b *fakeBackend) err(method string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fail[method]
}

func (b *fakeBackend) setFail(method string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail[method] = err
}

func (b *fakeBackend) Status(context.Context) (Status, error) {
	if err := b.err("Status"); err != nil {
		return Status{}, err
	}
	return b.status, nil
}

func (b *fakeBackend) Identity(context.Context) (Identity, error) {
	if err := b.err("Identity"); err != nil {
		return Identity{}, err
	}
	return Identity{Card: b.card}, nil
}

func (b *fakeBackend) AddContact(_ context.Context, name string, card message.Card) error {
	if err := b.err("AddContact"); err != nil {
		return err
	}
	if !ValidName(name) {
		panic("server passed an invalid name")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.contacts[name]; ok {
		return fmt.Errorf("%w: that name is taken", ErrConflict)
	}
	b.contacts[name] = Contact{Name: name, Card: card, Added: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)}
	return nil
}

func (b *fakeBackend) Contacts(context.Context) ([]Contact, error) {
	if err := b.err("Contacts"); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var cs []Contact
	for _, c := range b.contacts {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(x, y Contact) int { return strings.Compare(x.Name, y.Name) })
	return cs, nil
}

func (b *fakeBackend) RemoveContact(_ context.Context, name string) error {
	if err := b.err("RemoveContact"); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.contacts[name]; !ok {
		return fmt.Errorf("%w: no such contact", ErrNotFound)
	}
	delete(b.contacts, name)
	return nil
}

func (b *fakeBackend) Send(_ context.Context, to string, body []byte) (message.MessageID, error) {
	if err := b.err("Send"); err != nil {
		return message.MessageID{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.contacts[to]; !ok {
		return message.MessageID{}, fmt.Errorf("%w: no such contact", ErrNotFound)
	}
	id, err := message.NewMessageID(rand.Reader)
	if err != nil {
		return id, err
	}
	b.sent[id] = MessageStatus{ID: id, To: to, State: StateQueued,
		Queued: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Fragments: 3}
	b.bodies[id] = bytes.Clone(body)
	return id, nil
}

func (b *fakeBackend) MessageStatus(_ context.Context, id message.MessageID) (MessageStatus, error) {
	if err := b.err("MessageStatus"); err != nil {
		return MessageStatus{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.sent[id]
	if !ok {
		return MessageStatus{}, fmt.Errorf("%w: no such message", ErrNotFound)
	}
	return st, nil
}

// deliver adds a received message to the inbox and wakes the waiters.
func (b *fakeBackend) deliver(from string, body []byte) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	id, _ := message.NewMessageID(rand.Reader)
	seq := uint64(len(b.inbox) + 1)
	b.inbox = append(b.inbox, InboxMessage{Seq: seq, From: from, ID: id,
		Received: time.Date(2025, 2, 3, 4, 5, 6, 7, time.UTC), Body: bytes.Clone(body)})
	close(b.changed)
	b.changed = make(chan struct{})
	return seq
}

func (b *fakeBackend) after(after uint64) []InboxMessage {
	var out []InboxMessage
	for _, m := range b.inbox {
		if m.Seq > after {
			m.Body = bytes.Clone(m.Body)
			out = append(out, m)
		}
	}
	return out
}

func (b *fakeBackend) Inbox(_ context.Context, after uint64) ([]InboxMessage, error) {
	if err := b.err("Inbox"); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.after(after), nil
}

func (b *fakeBackend) WaitInbox(ctx context.Context, after uint64) ([]InboxMessage, error) {
	if err := b.err("WaitInbox"); err != nil {
		return nil, err
	}
	for {
		b.mu.Lock()
		msgs := b.after(after)
		ch := b.changed
		if len(msgs) > 0 {
			b.mu.Unlock()
			return msgs, nil
		}
		b.waiters++
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		b.mu.Lock()
		b.waiters--
		b.mu.Unlock()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// waitForWaiters returns once n calls are blocked in WaitInbox.
func (b *fakeBackend) waitForWaiters(t *testing.T, n int) {
	t.Helper()
	b.waitFor(t, func() bool { return b.waiters >= n })
}

// waitFor polls cond under b.mu until it holds.
func (b *fakeBackend) waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		ok := cond()
		b.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition not reached")
}

func (b *fakeBackend) seqOp(method string, seq uint64, fn func(i int)) error {
	if err := b.err(method); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.inbox {
		if b.inbox[i].Seq == seq {
			fn(i)
			return nil
		}
	}
	return fmt.Errorf("%w: no such inbox entry", ErrNotFound)
}

func (b *fakeBackend) MarkRead(_ context.Context, seq uint64) error {
	return b.seqOp("MarkRead", seq, func(i int) { b.inbox[i].Read = true })
}

func (b *fakeBackend) DeleteMessage(_ context.Context, seq uint64) error {
	return b.seqOp("DeleteMessage", seq, func(i int) { b.inbox = slices.Delete(b.inbox, i, i+1) })
}

func (b *fakeBackend) Ping(ctx context.Context) (time.Duration, error) {
	if err := b.err("Ping"); err != nil {
		return 0, err
	}
	b.mu.Lock()
	wait := b.pingWait
	b.mu.Unlock()
	if wait {
		b.mu.Lock()
		b.pinging++
		b.mu.Unlock()
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return b.rtt, nil
}

func newCard(t testing.TB) message.Card {
	t.Helper()
	k, err := message.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := message.Card{Key: k.Public()}
	rand.Read(c.ProviderID[:])
	rand.Read(c.MailboxID[:])
	return c
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is a Server on a real socket in a temporary directory.
type testServer struct {
	backend *fakeBackend
	client  *Client
	sock    string
	log     *syncBuffer
	stop    func() error // ends Serve and returns its result
}

func startServer(t *testing.T, configure func(*Server)) *testServer {
	t.Helper()
	ts := &testServer{backend: newFakeBackend(t), log: &syncBuffer{}}
	ts.sock = filepath.Join(t.TempDir(), SocketName)
	ln, err := Listen(ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{
		Backend: ts.backend,
		Logger:  slog.New(slog.NewTextHandler(ts.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if configure != nil {
		configure(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	ts.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(30 * time.Second):
				serveErr = errors.New("Serve did not return")
			}
		})
		return serveErr
	}
	ts.client = Dial(ts.sock)
	t.Cleanup(func() {
		ts.client.Close()
		if err := ts.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

// raw sends a request with a literal path and body and returns the status,
// the decoded error body (if any) and the raw answer.
func (ts *testServer) raw(t *testing.T, method, path, body string) (int, errorBody, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, baseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.client.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var eb errorBody
	if resp.StatusCode >= 400 {
		if err := decodeJSONStrict(b, &eb); err != nil {
			t.Fatalf("%s %s: %d answer is not a JSON error: %q", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, eb, b, resp.Header
}

func decodeJSONStrict(b []byte, v any) error {
	return decodeJSON(bytes.NewReader(b), v, false)
}
