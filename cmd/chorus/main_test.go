package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/client/api"
	"github.com/chorus-mixnet/chorus/client/message"
	"github.com/chorus-mixnet/chorus/cmd/internal/daemon/daemontest"
	"github.com/chorus-mixnet/chorus/mix/keys"
)

// fakeBackend is a chorusd stand-in behind the real API server.
type fakeBackend struct {
	mu       sync.Mutex
	card     message.Card
	linkKey  keys.LinkPublicKey
	contacts []api.Contact
	sent     map[message.MessageID][]byte
	inbox    []api.InboxMessage
	notify   chan struct{}
}

func newFake(t *testing.T) *fakeBackend {
	k, err := message.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var c message.Card
	rand.Read(c.ProviderID[:])
	rand.Read(c.MailboxID[:])
	c.Key = k.Public()
	lk, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeBackend{card: c, linkKey: lk.Public(), sent: map[message.MessageID][]byte{}, notify: make(chan struct{})}
}

func (f *fakeBackend) Status(context.Context) (api.Status, error) {
	return api.Status{Connected: true, Epoch: 42, Queues: api.Queues{Inbox: len(f.inbox)}, Rates: api.Rates{Send: 5, Loop: 0.5, Drop: 0.5, Retrieve: 1}}, nil
}
func (f *fakeBackend) Identity(context.Context) (api.Identity, error) {
	return api.Identity{Card: f.card, LinkKey: f.linkKey}, nil
}
func (f *fakeBackend) AddContact(_ context.Context, name string, card message.Card) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.contacts {
		if c.Name == name {
			return api.ErrConflict
		}
	}
	f.contacts = append(f.contacts, api.Contact{Name: name, Card: card, Added: time.Now()})
	return nil
}
func (f *fakeBackend) Contacts(context.Context) ([]api.Contact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.Contact(nil), f.contacts...), nil
}
func (f *fakeBackend) RemoveContact(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range f.contacts {
		if c.Name == name {
			f.contacts = append(f.contacts[:i], f.contacts[i+1:]...)
			return nil
		}
	}
	return api.ErrNotFound
}
func (f *fakeBackend) Send(_ context.Context, to string, body []byte) (message.MessageID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	found := false
	for _, c := range f.contacts {
		found = found || c.Name == to
	}
	if !found {
		return message.MessageID{}, api.ErrNotFound
	}
	id, _ := message.NewMessageID(rand.Reader)
	f.sent[id] = body
	// Deliver to ourselves, as a note to self would be.
	f.inbox = append(f.inbox, api.InboxMessage{Seq: uint64(len(f.inbox) + 1), From: to, ID: id, Received: time.Now(), Body: body})
	close(f.notify)
	f.notify = make(chan struct{})
	return id, nil
}
func (f *fakeBackend) MessageStatus(_ context.Context, id message.MessageID) (api.MessageStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sent[id]; !ok {
		return api.MessageStatus{}, api.ErrNotFound
	}
	return api.MessageStatus{ID: id, State: api.StateDelivered, Fragments: 1, Delivered: 1}, nil
}
func (f *fakeBackend) Inbox(_ context.Context, after uint64) ([]api.InboxMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.InboxMessage
	for _, m := range f.inbox {
		if m.Seq > after {
			out = append(out, m)
		}
	}
	return out, nil
}
func (f *fakeBackend) WaitInbox(ctx context.Context, after uint64) ([]api.InboxMessage, error) {
	for {
		f.mu.Lock()
		ch := f.notify
		f.mu.Unlock()
		if m, _ := f.Inbox(ctx, after); len(m) > 0 {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}
func (f *fakeBackend) MarkRead(_ context.Context, seq uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seq < 1 || seq > uint64(len(f.inbox)) {
		return api.ErrNotFound
	}
	f.inbox[seq-1].Read = true
	return nil
}
func (f *fakeBackend) DeleteMessage(context.Context, uint64) error { return nil }
func (f *fakeBackend) Ping(context.Context) (time.Duration, error) {
	return 1234 * time.Millisecond, nil
}

// serve runs the API server for f on a socket and returns its path.
func serve(t *testing.T, f *fakeBackend) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "chorus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, api.SocketName)
	ln, err := api.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&api.Server{Backend: f}).Serve(ctx, ln)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return sock
}

// chorus runs the command in process.
func chorus(t *testing.T, ctx context.Context, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCommands(t *testing.T) {
	f := newFake(t)
	sock := serve(t, f)
	ctx := context.Background()
	ok := func(stdin string, args ...string) string {
		t.Helper()
		code, out, errs := chorus(t, ctx, stdin, append([]string{"-socket", sock}, args...)...)
		if code != 0 {
			t.Fatalf("chorus %v: exit %d: %s", args, code, errs)
		}
		return out
	}

	if out := ok("", "status"); !strings.Contains(out, "connected:  yes") || !strings.Contains(out, "epoch:      42") {
		t.Errorf("status:\n%s", out)
	}
	card := strings.TrimSpace(ok("", "whoami"))
	if c, err := message.ParseCard(card); err != nil || !c.Equal(f.card) {
		t.Errorf("whoami printed %q", card)
	}
	if got := strings.TrimSpace(ok("", "whoami", "--link-key")); got != linkKeyText(f.linkKey) {
		t.Errorf("whoami --link-key printed %q", got)
	}
	ok("", "contacts", "add", "alice", card)
	if out := ok("", "contacts", "list"); !strings.Contains(out, "alice\t"+card) {
		t.Errorf("contacts list:\n%s", out)
	}
	if out := ok("", "send", "alice", "hello", "there"); !strings.HasPrefix(out, "queued ") {
		t.Errorf("send: %q", out)
	}
	if out := ok("", "send", "--wait", "alice", "again"); !strings.Contains(out, "delivered (1 of 1 parts acknowledged)") {
		t.Errorf("send --wait: %q", out)
	}
	ok("from stdin\x1b[2J", "send", "--file", "-", "alice")
	path := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(path, []byte{0xff, 0xfe, 0}, 0o600)
	ok("", "send", "--file", path, "alice")

	out := ok("", "inbox")
	for _, want := range []string{"#1 from alice", "  hello there", "  again", `  from stdin\x1b[2J`, "(3 bytes of binary data)"} {
		if !strings.Contains(out, want) {
			t.Errorf("inbox lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Error("inbox printed a raw escape character")
	}
	if out := ok("", "inbox"); !strings.Contains(out, "no new messages") {
		t.Errorf("second inbox (all read):\n%s", out)
	}
	if out := ok("", "inbox", "--all"); strings.Count(out, " from alice") != 4 {
		t.Errorf("inbox --all:\n%s", out)
	}
	if out := ok("", "ping"); !strings.Contains(out, "1.234s") {
		t.Errorf("ping: %q", out)
	}
	ok("", "contacts", "rm", "alice")

	// --follow prints what arrives and stops on cancel.
	fctx, cancel := context.WithCancel(ctx)
	var fout daemontest.SyncBuffer
	done := make(chan int)
	go func() {
		done <- run(fctx, []string{"-socket", sock, "inbox", "--follow"}, strings.NewReader(""), &fout, &bytes.Buffer{})
	}()
	ok("", "contacts", "add", "bob", card)
	time.Sleep(100 * time.Millisecond)
	ok("", "send", "bob", "late news")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(fout.String(), "late news") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("inbox --follow exit %d", code)
	}
	if !strings.Contains(fout.String(), "late news") {
		t.Errorf("--follow did not print the new message:\n%s", fout.String())
	}
}

func TestErrors(t *testing.T) {
	f := newFake(t)
	sock := serve(t, f)
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"send", "alice"}, 2, "send what?"},
		{[]string{"send", "alice", "hi"}, 1, "not found"},
		{[]string{"contacts", "add", "x", "chorus1notacard"}, 1, "not a valid contact card"},
		{[]string{"contacts", "rm", "nobody"}, 1, "not found"},
		{[]string{"status", "extra"}, 2, "takes no arguments"},
	} {
		code, _, errs := chorus(t, ctx, "", append([]string{"-socket", sock}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("chorus %v: exit %d, stderr %q; want %d with %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	code, _, errs := chorus(t, ctx, "", "-socket", filepath.Join(t.TempDir(), "none.sock"), "status")
	if code != 1 || !strings.Contains(errs, "Is chorusd running?") {
		t.Errorf("no daemon: exit %d: %s", code, errs)
	}
	code, out, _ := chorus(t, ctx, "", "help")
	if code != 0 || !strings.Contains(out, "First steps:") {
		t.Errorf("help: exit %d", code)
	}
}

func TestDefaultSocket(t *testing.T) {
	t.Setenv(SocketEnv, "/run/x.sock")
	if s := defaultSocket(); s != "/run/x.sock" {
		t.Errorf("with %s: %q", SocketEnv, s)
	}
	t.Setenv(SocketEnv, "")
	t.Setenv("HOME", "/home/u")
	if s := defaultSocket(); s != "/home/u/.chorus/chorusd.sock" {
		t.Errorf("default: %q", s)
	}
}

func linkKeyText(k keys.LinkPublicKey) string {
	b, _ := k.MarshalText()
	return string(b)
}
