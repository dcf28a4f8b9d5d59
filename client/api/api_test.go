package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/client/message"
)

// TestRoundTrip takes every route through the Go client.
func TestRoundTrip(t *testing.T) {
	ts := startServer(t, nil)
	c, b := ts.client, ts.backend
	ctx := context.Background()

	st, err := c.Status(ctx)
	if err != nil || st != b.status {
		t.Fatalf("Status = %+v, %v; want %+v", st, err, b.status)
	}
	id, err := c.Identity(ctx)
	if err != nil || !id.Card.Equal(b.card) {
		t.Fatalf("Identity = %v, %v", id, err)
	}

	// Names the router could split or clean, or that need escaping.
	names := []string{"alice", "Bob Smith", "..", ".", "a/b", "a/../b", "%2F", "?x=1#y", "名前", "  ", "a\u202eb"}
	cards := map[string]message.Card{}
	for _, n := range names {
		card := newCard(t)
		cards[n] = card
		// People paste cards with white space around them.
		if err := c.AddContact(ctx, n, " "+card.Encode()+"\n"); err != nil {
			t.Fatalf("AddContact(%q): %v", n, err)
		}
	}
	cs, err := c.Contacts(ctx)
	if err != nil || len(cs) != len(names) {
		t.Fatalf("Contacts = %d, %v", len(cs), err)
	}
	for _, got := range cs {
		want := b.contacts[got.Name]
		if !got.Card.Equal(cards[got.Name]) || !got.Added.Equal(want.Added) {
			t.Errorf("contact %q round-tripped as %+v", got.Name, got)
		}
	}
	for _, n := range names[1:] {
		if err := c.RemoveContact(ctx, n); err != nil {
			t.Fatalf("RemoveContact(%q): %v", n, err)
		}
	}
	if cs, _ := c.Contacts(ctx); len(cs) != 1 || cs[0].Name != "alice" {
		t.Fatalf("after removals: %+v", cs)
	}

	body := []byte{0, 1, 2, 0xff, 'h', 'i'}
	mid, err := c.Send(ctx, "alice", body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.bodies[mid], body) {
		t.Fatalf("backend got %x, want %x", b.bodies[mid], body)
	}
	ms, err := c.MessageStatus(ctx, mid)
	if err != nil || ms != b.sent[mid] {
		t.Fatalf("MessageStatus = %+v, %v; want %+v", ms, err, b.sent[mid])
	}

	if msgs, err := c.Inbox(ctx, 0); err != nil || len(msgs) != 0 || msgs == nil {
		t.Fatalf("empty Inbox = %#v, %v", msgs, err)
	}
	b.deliver("alice", []byte("héllo"))
	b.deliver("alice", []byte{0xff, 0xfe})
	msgs, err := c.Inbox(ctx, 0)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("Inbox = %+v, %v", msgs, err)
	}
	for i, m := range msgs {
		want := b.inbox[i]
		if m.Seq != want.Seq || m.From != want.From || m.ID != want.ID ||
			!m.Received.Equal(want.Received) || !bytes.Equal(m.Body, want.Body) {
			t.Errorf("inbox %d: got %+v, want %+v", i, m, want)
		}
	}
	if msgs[0].Text != "héllo" || msgs[1].Text != "" {
		t.Errorf("texts %q, %q", msgs[0].Text, msgs[1].Text)
	}
	if msgs, err := c.Inbox(ctx, 1); err != nil || len(msgs) != 1 || msgs[0].Seq != 2 {
		t.Fatalf("Inbox(1) = %+v, %v", msgs, err)
	}
	if msgs, err := c.WaitInbox(ctx, 1, time.Minute); err != nil || len(msgs) != 1 || msgs[0].Seq != 2 {
		t.Fatalf("WaitInbox(1) with a message ready = %+v, %v", msgs, err)
	}

	if err := c.MarkRead(ctx, 1); err != nil || !b.inbox[0].Read {
		t.Fatalf("MarkRead: %v", err)
	}
	if err := c.DeleteMessage(ctx, 2); err != nil || len(b.inbox) != 1 {
		t.Fatalf("DeleteMessage: %v", err)
	}
	if err := c.DeleteMessage(ctx, 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second DeleteMessage: %v", err)
	}

	rtt, err := c.Ping(ctx)
	if err != nil || rtt != b.rtt {
		t.Fatalf("Ping = %v, %v; want %v", rtt, err, b.rtt)
	}
}

// TestRawForms checks the JSON forms that curl users write.
func TestRawForms(t *testing.T) {
	ts := startServer(t, nil)
	card := newCard(t).Encode()
	if st, _, _, _ := ts.raw(t, "POST", "/v1/contacts", `{"name":"bob","card":"`+card+`"}`); st != http.StatusNoContent {
		t.Fatalf("add contact: %d", st)
	}
	for _, body := range []string{
		`{"to":"bob","text":"hello ☃"}`,
		`{"to":"bob","body":"` + base64.StdEncoding.EncodeToString([]byte("hello ☃")) + `"}`,
		"\n {\"to\":\"bob\",\"text\":\"hello ☃\"}\n\n",
	} {
		st, _, ans, _ := ts.raw(t, "POST", "/v1/messages", body)
		if st != http.StatusAccepted {
			t.Fatalf("send %s: %d %s", body, st, ans)
		}
		var resp sendResponse
		if err := decodeJSONStrict(ans, &resp); err != nil {
			t.Fatal(err)
		}
		if got := ts.backend.bodies[resp.ID]; string(got) != "hello ☃" {
			t.Fatalf("send %s: backend got %q", body, got)
		}
	}
	// Ping and mark-read take no body or an empty object.
	for _, body := range []string{"", "{}", " {} "} {
		if st, _, ans, _ := ts.raw(t, "POST", "/v1/ping", body); st != http.StatusOK {
			t.Fatalf("ping %q: %d %s", body, st, ans)
		}
	}
	// HEAD works where GET does.
	if st, _, _, _ := ts.raw(t, "HEAD", "/v1/status", ""); st != http.StatusOK {
		t.Fatalf("HEAD status: %d", st)
	}
}

// TestErrorMapping: every sentinel a Backend returns reaches the client as
// its status and code, and matches the sentinel again; other errors are
// 500 with nothing of their text.
func TestErrorMapping(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	for _, k := range kinds {
		if k.err == ErrMethod {
			continue
		}
		ts.backend.setFail("Status", fmt.Errorf("%w: detail for the user", k.err))
		_, err := ts.client.Status(ctx)
		var e *Error
		if !errors.As(err, &e) || e.Status != k.status || e.Code != k.code {
			t.Fatalf("%v: client got %#v", k.err, err)
		}
		if !errors.Is(err, k.err) {
			t.Errorf("%v: errors.Is fails for %v", k.err, err)
		}
		for _, o := range kinds {
			if o.err != k.err && errors.Is(err, o.err) {
				t.Errorf("%v also matches %v", err, o.err)
			}
		}
		if !strings.Contains(e.Error(), "detail for the user") {
			t.Errorf("%v: message lost: %q", k.err, e.Error())
		}
	}

	ts.backend.setFail("Status", context.DeadlineExceeded)
	if _, err := ts.client.Status(ctx); !errors.Is(err, ErrTimeout) {
		t.Errorf("deadline exceeded: %v", err)
	}

	ts.backend.setFail("Status", errors.New("open /secret/state.db: disk on fire"))
	st, eb, ans, _ := ts.raw(t, "GET", "/v1/status", "")
	if st != http.StatusInternalServerError || eb.Code != CodeInternal || strings.Contains(string(ans), "fire") {
		t.Fatalf("internal error answered %d %s", st, ans)
	}
	_, err := ts.client.Status(ctx)
	var e *Error
	if !errors.As(err, &e) || e.Status != 500 || e.Code != CodeInternal {
		t.Fatalf("client got %#v", err)
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			t.Errorf("internal error matches %v", k.err)
		}
	}
	if !strings.Contains(ts.log.String(), "disk on fire") {
		t.Error("internal error not logged")
	}
}

// TestRejects: malformed requests get 400, 404, 405 or 413 with a JSON
// error, and never reach the backend.
func TestRejects(t *testing.T) {
	const maxMsg = 1000
	ts := startServer(t, func(s *Server) { s.MaxMessageSize = maxMsg; s.MaxWait = time.Minute })
	card := newCard(t).Encode()
	if err := ts.client.AddContact(context.Background(), "bob", card); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", maxMsg+1)
	huge := strings.Repeat(" ", maxSmallBody+1) + "{}"
	cases := []struct {
		method, path, body string
		status             int
	}{
		// Unknown fields, wrong shapes, several values.
		{"POST", "/v1/contacts", `{"name":"a","card":"` + card + `","admin":true}`, 400},
		{"POST", "/v1/contacts", `{"name":"a","card":"` + card + `"}{}`, 400},
		{"POST", "/v1/contacts", `{"name":"a","card":"` + card + `"} x`, 400},
		{"POST", "/v1/contacts", `["a"]`, 400},
		{"POST", "/v1/contacts", `{"name":1,"card":"` + card + `"}`, 400},
		{"POST", "/v1/contacts", `{"name":"a","card":"`, 400},
		{"POST", "/v1/contacts", ``, 400},
		{"POST", "/v1/contacts", `nul`, 400},
		{"POST", "/v1/ping", `{"x":1}`, 400},
		{"POST", "/v1/ping", `{}{}`, 400},
		{"POST", "/v1/inbox/1/read", `[]`, 400},
		// Bad names.
		{"POST", "/v1/contacts", `{"name":"","card":"` + card + `"}`, 400},
		{"POST", "/v1/contacts", `{"name":"a\u0000b","card":"` + card + `"}`, 400},
		{"POST", "/v1/contacts", `{"name":"a\nb","card":"` + card + `"}`, 400},
		{"POST", "/v1/contacts", `{"name":"` + strings.Repeat("n", MaxNameLength+1) + `","card":"` + card + `"}`, 400},
		{"DELETE", "/v1/contacts/a%00b", "", 400},
		{"DELETE", "/v1/contacts/a%0Ab", "", 400},
		{"DELETE", "/v1/contacts/%FF", "", 400},
		{"POST", "/v1/messages", `{"to":"","text":"hi"}`, 400},
		// Bad cards.
		{"POST", "/v1/contacts", `{"name":"a","card":"` + card[:len(card)-1] + `"}`, 400},
		{"POST", "/v1/contacts", `{"name":"a","card":"` + strings.ToUpper(card) + `"}`, 400},
		{"POST", "/v1/contacts", `{"name":"a","card":" ` + card + `"}`, 400},
		{"POST", "/v1/contacts", `{"name":"a","card":""}`, 400},
		// Messages.
		{"POST", "/v1/messages", `{"to":"bob"}`, 400},
		{"POST", "/v1/messages", `{"to":"bob","text":""}`, 400},
		{"POST", "/v1/messages", `{"to":"bob","text":"a","body":"YQ=="}`, 400},
		{"POST", "/v1/messages", `{"to":"bob","body":"not base64!"}`, 400},
		{"POST", "/v1/messages", `{"to":"bob","text":"` + big + `"}`, 413},
		{"POST", "/v1/messages", `{"to":"bob","text":"` + strings.Repeat(`\u0000`, 2*maxMsg) + `"}`, 413},
		{"POST", "/v1/messages", `{"to":"bob","text":"` + strings.Repeat("x", int(sendBodyLimit(maxMsg))) + `"}`, 413},
		{"POST", "/v1/contacts", huge, 413},
		{"POST", "/v1/ping", huge, 413},
		// IDs, sequence numbers, queries.
		{"GET", "/v1/messages/abc", "", 400},
		{"GET", "/v1/messages/" + strings.Repeat("g", 32), "", 400},
		{"DELETE", "/v1/inbox/x", "", 400},
		{"DELETE", "/v1/inbox/-1", "", 400},
		{"DELETE", "/v1/inbox/+1", "", 400},
		{"DELETE", "/v1/inbox/18446744073709551616", "", 400},
		{"GET", "/v1/inbox?after=x", "", 400},
		{"GET", "/v1/inbox?after=-1", "", 400},
		{"GET", "/v1/inbox?after=1&after=2", "", 400},
		{"GET", "/v1/inbox?wait=10", "", 400},
		{"GET", "/v1/inbox?wait=-1s", "", 400},
		{"GET", "/v1/inbox?wait=2m", "", 400},
		{"GET", "/v1/inbox?limit=3", "", 400},
		{"GET", "/v1/inbox?%zz", "", 400},
		{"GET", "/v1/status?verbose=1", "", 400},
		// Routes and methods.
		{"GET", "/v1/nothing", "", 404},
		{"GET", "/", "", 404},
		{"GET", "/v2/status", "", 404},
		{"GET", "/v1/contacts/", "", 404},
		{"POST", "/v1/status", "", 405},
		{"GET", "/v1/ping", "", 405},
		{"PUT", "/v1/contacts", "", 405},
		{"GET", "/v1/contacts/bob", "", 405},
		{"DELETE", "/v1/messages", "", 405},
	}
	for _, tc := range cases {
		st, eb, ans, hdr := ts.raw(t, tc.method, tc.path, tc.body)
		if st != tc.status {
			t.Errorf("%s %s %.60q: status %d %s, want %d", tc.method, tc.path, tc.body, st, ans, tc.status)
			continue
		}
		wantCode := map[int]string{400: CodeInvalid, 404: CodeNotFound, 405: CodeMethod, 413: CodeTooLarge}[tc.status]
		if eb.Code != wantCode || eb.Error == "" {
			t.Errorf("%s %s: error body %+v", tc.method, tc.path, eb)
		}
		if tc.status == 405 && hdr.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
		if len(ans) > 300 {
			t.Errorf("%s %s: long error answer (%d bytes)", tc.method, tc.path, len(ans))
		}
	}
	// None of it reached the backend.
	if len(ts.backend.contacts) != 1 || len(ts.backend.sent) != 0 {
		t.Errorf("backend changed: %d contacts, %d sent", len(ts.backend.contacts), len(ts.backend.sent))
	}
	// A message of exactly the maximum is fine.
	if _, err := ts.client.Send(context.Background(), "bob", bytes.Repeat([]byte{0}, maxMsg)); err != nil {
		t.Errorf("maximum message: %v", err)
	}
}

func TestLongPoll(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()

	// The wait runs out: no messages, no error.
	msgs, err := ts.client.WaitInbox(ctx, 0, 20*time.Millisecond)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("expired wait = %+v, %v", msgs, err)
	}

	// A message arrives during the wait.
	type result struct {
		msgs []InboxMessage
		err  error
	}
	done := make(chan result, 1)
	go func() {
		m, err := ts.client.WaitInbox(ctx, 0, time.Minute)
		done <- result{m, err}
	}()
	ts.backend.waitForWaiters(t, 1)
	seq := ts.backend.deliver("alice", []byte("arrived"))
	r := <-done
	if r.err != nil || len(r.msgs) != 1 || r.msgs[0].Seq != seq || r.msgs[0].Text != "arrived" {
		t.Fatalf("WaitInbox = %+v, %v", r.msgs, r.err)
	}

	// Waiting for something newer than what is there.
	go func() {
		m, err := ts.client.WaitInbox(ctx, seq, time.Minute)
		done <- result{m, err}
	}()
	ts.backend.waitForWaiters(t, 1)
	seq2 := ts.backend.deliver("alice", []byte("second"))
	if r := <-done; r.err != nil || len(r.msgs) != 1 || r.msgs[0].Seq != seq2 {
		t.Fatalf("WaitInbox after %d = %+v, %v", seq, r.msgs, r.err)
	}

	// The caller gives up: the client returns ctx's error, and the
	// server's wait ends too.
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		m, err := ts.client.WaitInbox(cctx, seq2, time.Minute)
		done <- result{m, err}
	}()
	ts.backend.waitForWaiters(t, 1)
	cancel()
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled WaitInbox = %+v, %v", r.msgs, r.err)
	}
	ts.backend.waitForNoWaiters(t)
}

func (b *fakeBackend) waitForNoWaiters(t *testing.T) {
	t.Helper()
	b.waitFor(t, func() bool { return b.waiters == 0 })
}

// TestShutdown: Serve returns promptly with a long-poll and a ping in
// flight; they answer 503, never hang.
func TestShutdown(t *testing.T) {
	ts := startServer(t, nil)
	ts.backend.mu.Lock()
	ts.backend.pingWait = true
	ts.backend.mu.Unlock()
	errs := make(chan error, 2)
	go func() {
		_, err := ts.client.WaitInbox(context.Background(), 0, 5*time.Minute)
		errs <- err
	}()
	go func() {
		_, err := ts.client.Ping(context.Background())
		errs <- err
	}()
	ts.backend.waitForWaiters(t, 1)
	ts.backend.waitFor(t, func() bool { return ts.backend.pinging == 1 })
	start := time.Now()
	if err := ts.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if took := time.Since(start); took >= ShutdownGrace {
		t.Errorf("shutdown took %v, waiting out the grace", took)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrUnavailable) {
			t.Errorf("in-flight request got %v, want 503", err)
		}
	}
	if _, err := ts.client.Status(context.Background()); err == nil {
		t.Error("server still answers after Serve returned")
	}
}

// TestNothingSensitiveLogged runs every route with distinctive names,
// cards and bodies under a debug logger and searches the log for them.
func TestNothingSensitiveLogged(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	const name, text = "zqname-secret", "zqbody-secret"
	card := newCard(t)
	c := ts.client
	if err := c.AddContact(ctx, name, card.Encode()); err != nil {
		t.Fatal(err)
	}
	if err := c.AddContact(ctx, name, card.Encode()); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate AddContact: %v", err)
	}
	c.Contacts(ctx)
	id, err := c.Send(ctx, name, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	c.MessageStatus(ctx, id)
	ts.backend.deliver(name, []byte(text))
	c.Inbox(ctx, 0)
	c.WaitInbox(ctx, 0, time.Second)
	c.MarkRead(ctx, 1)
	c.Identity(ctx)
	c.Status(ctx)
	c.Ping(ctx)
	ts.raw(t, "POST", "/v1/contacts", `{"name":"`+name+`","card":"`+card.Encode()+`","zqfield":1}`)
	ts.raw(t, "DELETE", "/v1/contacts/"+name+"x", "")
	if err := c.RemoveContact(ctx, name); err != nil {
		t.Fatal(err)
	}
	ts.stop()

	log := ts.log.String()
	if !strings.Contains(log, "api request") || !strings.Contains(log, "/v1/contacts/{name}") {
		t.Fatalf("debug log lacks request lines:\n%s", log)
	}
	for _, s := range []string{name, text, card.Encode(), card.Encode()[20:40],
		base64.StdEncoding.EncodeToString([]byte(text)), id.String()} {
		if strings.Contains(log, s) {
			t.Errorf("log contains %q:\n%s", s, log)
		}
	}
}
