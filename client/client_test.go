package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chorus-mixnet/chorus/client"
	"github.com/chorus-mixnet/chorus/client/api"
	"github.com/chorus-mixnet/chorus/client/arq"
	"github.com/chorus-mixnet/chorus/client/clienttest"
	"github.com/chorus-mixnet/chorus/client/message"
	"github.com/chorus-mixnet/chorus/client/store"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

var passphrase = []byte("correct horse battery staple")

// testParameters are fast but keep the shape of the defaults: real
// packets every 100ms, loops and drops every second, retrieval every
// 200ms, per-hop delays of 20ms on average.
var testParameters = pki.Parameters{
	MuMean:            20 * time.Millisecond,
	MaxDelay:          200 * time.Millisecond,
	LambdaPMean:       100 * time.Millisecond,
	LambdaLMean:       time.Second,
	LambdaDMean:       time.Second,
	LambdaMMean:       time.Second,
	RetrievalInterval: 200 * time.Millisecond,
}

// world is a simulated network with clients linked to its provider, all
// inside one synctest bubble.
type world struct {
	t     *testing.T
	ctx   context.Context
	stop  context.CancelFunc
	net   *clienttest.Network
	sched *epoch.Schedule
	wg    sync.WaitGroup
}

func newWorld(t *testing.T) *world {
	t.Helper()
	// Epoch 10 of one-hour epochs began a minute ago.
	return newWorldPeriod(t, time.Hour, time.Minute, testParameters)
}

// newWorldPeriod makes a world whose epoch 10 began ago ago, with epochs
// of the given period.
func newWorldPeriod(t *testing.T, period, ago time.Duration, params pki.Parameters) *world {
	t.Helper()
	sched, err := epoch.New(time.Now().Add(-10*period-ago), period, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := clienttest.New(clienttest.Config{Parameters: params, Epoch: sched.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	w := &world{t: t, ctx: ctx, stop: stop, net: n, sched: sched}
	t.Cleanup(w.shutdown)
	return w
}

// shutdown stops every client and the network and waits for them.
func (w *world) shutdown() {
	w.stop()
	w.wg.Wait()
	w.net.Wait()
}

// user is one client daemon core with its state.
type user struct {
	*client.Client
	dir   string
	st    *store.Store
	reg   *prometheus.Registry
	stop  context.CancelFunc
	done  chan error
	clean bool
}

// config is the client configuration for the world's network.
func (w *world) config() client.Config {
	return client.Config{
		ProviderID:      w.net.ProviderID(),
		ProviderLinkKey: w.net.ProviderLinkKey(),
		Authorities:     []keys.IdentityPublicKey{clienttest.Authority()},
		Schedule:        w.sched,
		Geometry:        w.net.Geometry(),
		ARQ:             arq.Config{MaxAttempts: 4, Slack: 2 * time.Second, MaxSlack: 8 * time.Second},
		MinBackoff:      100 * time.Millisecond,
		MaxBackoff:      time.Second,
	}
}

// start creates (or, with dir set, reopens) a user's state and runs a
// client on it.
func (w *world) start(dir string, cfg client.Config) *user {
	w.t.Helper()
	var st *store.Store
	var err error
	if dir == "" {
		dir = filepath.Join(w.t.TempDir(), "state")
		st, err = store.Create(dir, passphrase, store.Options{KDF: store.TestingKDF})
	} else {
		st, err = store.Open(dir, passphrase, store.Options{})
	}
	if err != nil {
		w.t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c, err := client.New(cfg, client.Deps{Store: st, Registerer: reg, Dial: w.net.Dial(w.ctx)})
	if err != nil {
		st.Close()
		w.t.Fatal(err)
	}
	ctx, stop := context.WithCancel(w.ctx)
	u := &user{Client: c, dir: dir, st: st, reg: reg, stop: stop, done: make(chan error, 1)}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		u.done <- c.Run(ctx)
	}()
	w.t.Cleanup(func() { u.halt(w.t) })
	return u
}

// halt stops the user's client and closes its state.
func (u *user) halt(t *testing.T) {
	if u.clean {
		return
	}
	u.clean = true
	u.stop()
	if err := <-u.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	u.Close()
	u.st.Close()
}

func (u *user) card(t *testing.T) message.Card {
	t.Helper()
	id, err := u.Identity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return id.Card
}

// metric returns the value of a counter or gauge with the given label
// value (or none), or -1 if it is missing.
func (u *user) metric(name, label string) float64 {
	mfs, err := u.reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !hasLabel(m, label) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

func hasLabel(m *dto.Metric, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == v {
			return true
		}
	}
	return false
}

// waitFor polls cond every 100ms of the bubble's fake time, up to limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting (%v of fake time) for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (u *user) state(t *testing.T, id message.MessageID) api.MessageState {
	t.Helper()
	st, err := u.MessageStatus(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st.State
}

func befriend(t *testing.T, a *user, aName string, b *user, bName string) {
	t.Helper()
	ctx := context.Background()
	if err := a.AddContact(ctx, bName, b.card(t)); err != nil {
		t.Fatal(err)
	}
	if err := b.AddContact(ctx, aName, a.card(t)); err != nil {
		t.Fatal(err)
	}
}

func randomBody(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestMessageBetweenClients sends a three-fragment message from one
// client to another on the same provider: the document is fetched through
// the provider and verified, the fragments travel as real Sphinx packets
// through every simulated hop, and the message is received, opened,
// reassembled and acknowledged.
func TestMessageBetweenClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		alice := w.start("", w.config())
		bob := w.start("", w.config())
		ctx := context.Background()

		waitFor(t, time.Minute, "both clients ready", func() bool { return alice.Ready() == nil && bob.Ready() == nil })
		st, err := alice.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Connected || st.Epoch != 10 || st.Rates.Send != 10 || st.Rates.Retrieve != 5 {
			t.Errorf("status %+v: want connected, epoch 10, 10 sends and 5 retrievals a second", st)
		}
		if v := alice.metric("chorus_client_documents_total", "accepted"); v < 1 {
			t.Errorf("documents accepted = %v", v)
		}

		befriend(t, alice, "alice", bob, "bob")
		body := randomBody(t, 5000) // three fragments
		id, err := alice.Send(ctx, "bob", body)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := bob.WaitInbox(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 || msgs[0].From != "alice" || !bytes.Equal(msgs[0].Body, body) {
			t.Fatalf("bob's inbox: %d messages; want alice's message", len(msgs))
		}
		waitFor(t, time.Minute, "delivery acknowledged", func() bool { return alice.state(t, id) == api.StateDelivered })
		ms, _ := alice.MessageStatus(ctx, id)
		if ms.Fragments != 3 || ms.Delivered != 3 || ms.To != "bob" {
			t.Errorf("message status %+v", ms)
		}
		if v := alice.metric("chorus_client_packets_total", "retransmission"); v != 0 {
			t.Errorf("%v retransmissions on a lossless network", v)
		}
		// Every slot found its packet built ahead (time stands still in
		// the bubble while the builder works, so it always finishes).
		if v := alice.metric("chorus_client_slots_unprepared_total", ""); v != 0 {
			t.Errorf("%v slots had to build their packet", v)
		}
		// Loops come back: the network carries our traffic.
		waitFor(t, time.Minute, "a loop to return", func() bool { return alice.metric("chorus_client_deliveries_total", "loop") >= 1 })
		s := w.net.Stats()
		if s.Stored < 3 || s.Acks < 3 || s.Decoys == 0 || s.Invalid != 0 {
			t.Errorf("network stats %+v", s)
		}
		// Bob's mailbox is emptied: every entry was acknowledged to the
		// provider.
		waitFor(t, time.Minute, "bob's mailbox drained", func() bool { return w.net.Pending(bob.linkKey(t)) == 0 })
		if st, _ := bob.Status(ctx); st.Queues.Inbox != 1 {
			t.Errorf("bob's unread count %d", st.Queues.Inbox)
		}
	})
}

// linkKey reads the user's link public key from its state.
func (u *user) linkKey(t *testing.T) keys.LinkPublicKey {
	t.Helper()
	k, err := u.st.LinkKey()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Zero()
	return k.Public()
}

// TestMessageToSelf sends a message to the user's own card and pings the
// echo service.
func TestMessageToSelf(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		me := w.start("", w.config())
		ctx := context.Background()
		waitFor(t, time.Minute, "ready", func() bool { return me.Ready() == nil })
		if err := me.AddContact(ctx, "me", me.card(t)); err != nil {
			t.Fatal(err)
		}
		id, err := me.Send(ctx, "me", []byte("a note to self"))
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := me.WaitInbox(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 || string(msgs[0].Body) != "a note to self" || msgs[0].From != "me" {
			t.Fatalf("inbox %+v", msgs)
		}
		waitFor(t, time.Minute, "delivered", func() bool { return me.state(t, id) == api.StateDelivered })
		rtt, err := me.Ping(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rtt <= 0 || w.net.Stats().Echoes != 1 {
			t.Errorf("ping: rtt %v, %d echoes", rtt, w.net.Stats().Echoes)
		}
	})
}

// TestRetransmission loses the first delivery of a fragment: no ACK comes
// back, the sender sends the fragment again on a new path, and the
// recipient gets the message once.
func TestRetransmission(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		var mu sync.Mutex
		lost := 0
		w.net.DropDelivery = func([32]byte, *sphinx.Delivery) bool {
			mu.Lock()
			defer mu.Unlock()
			lost++
			return lost == 1
		}
		alice := w.start("", w.config())
		bob := w.start("", w.config())
		befriend(t, alice, "alice", bob, "bob")
		ctx := context.Background()
		id, err := alice.Send(ctx, "bob", []byte("are you there?"))
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := bob.WaitInbox(ctx, 0)
		if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "are you there?" {
			t.Fatalf("inbox %v %+v", err, msgs)
		}
		waitFor(t, time.Minute, "delivered", func() bool { return alice.state(t, id) == api.StateDelivered })
		if v := alice.metric("chorus_client_packets_total", "retransmission"); v != 1 {
			t.Errorf("%v retransmissions, want 1", v)
		}
		if s := w.net.Stats(); s.Lost != 1 {
			t.Errorf("network lost %d deliveries, want 1", s.Lost)
		}
		time.Sleep(5 * time.Second)
		if msgs, _ := bob.Inbox(ctx, 0); len(msgs) != 1 {
			t.Errorf("bob has %d messages, want 1", len(msgs))
		}
	})
}

// TestFailureAfterBound loses every delivery: the message fails after
// the configured number of attempts, and says so.
func TestFailureAfterBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.net.DropDelivery = func([32]byte, *sphinx.Delivery) bool { return true }
		cfg := w.config()
		cfg.ARQ = arq.Config{MaxAttempts: 3, Slack: time.Second, MaxSlack: 2 * time.Second}
		alice := w.start("", cfg)
		bob := w.start("", cfg)
		befriend(t, alice, "alice", bob, "bob")
		id, err := alice.Send(context.Background(), "bob", []byte("lost"))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "failed", func() bool { return alice.state(t, id) == api.StateFailed })
		if s := w.net.Stats(); s.Lost != 3 {
			t.Errorf("%d attempts lost, want 3", s.Lost)
		}
		if v := alice.metric("chorus_client_messages_total", "failed"); v != 1 {
			t.Errorf("failed messages metric %v", v)
		}
	})
}

// TestRestartResumes stops the sender right after Send returned, before
// any packet could leave, and starts it again on the same state: the
// message accepted before the stop is delivered. Then the recipient is
// stopped with fragments waiting at the provider and comes back to
// receive them.
func TestRestartResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		alice := w.start("", w.config())
		bob := w.start("", w.config())
		befriend(t, alice, "alice", bob, "bob")
		ctx := context.Background()
		waitFor(t, time.Minute, "ready", func() bool { return alice.Ready() == nil && bob.Ready() == nil })
		bobKey := bob.linkKey(t)

		bob.halt(t)
		alice.halt(t) // nothing in flight yet
		alice = w.start(alice.dir, w.config())
		id, err := alice.Send(ctx, "bob", randomBody(t, 4000))
		if err != nil {
			t.Fatal(err)
		}
		alice.halt(t) // the message is only in the outbox
		alice = w.start(alice.dir, w.config())
		waitFor(t, time.Minute, "fragments stored at bob's provider", func() bool { return w.net.Pending(bobKey) >= 3 })
		waitFor(t, time.Minute, "delivered", func() bool { return alice.state(t, id) == api.StateDelivered })

		bob = w.start(bob.dir, w.config())
		msgs, err := bob.WaitInbox(ctx, 0)
		if err != nil || len(msgs) != 1 || len(msgs[0].Body) != 4000 {
			t.Fatalf("bob's inbox after restart: %v, %d messages", err, len(msgs))
		}
	})
}

// TestDocumentVerified configures a client with the wrong authority: it
// refuses the provider's documents and never becomes ready or sends.
func TestDocumentVerified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		cfg := w.config()
		k, err := keys.GenerateIdentityKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Authorities = []keys.IdentityPublicKey{k.Public()}
		u := w.start("", cfg)
		waitFor(t, time.Minute, "a refused document", func() bool { return u.metric("chorus_client_documents_total", "rejected") >= 1 })
		time.Sleep(10 * time.Second)
		if err := u.Ready(); err == nil {
			t.Error("ready without a verified document")
		}
		if _, err := u.Ping(context.Background()); !errors.Is(err, api.ErrUnavailable) {
			t.Errorf("ping without a document: %v, want unavailable", err)
		}
		if s := w.net.Stats(); s.Packets != 0 {
			t.Errorf("%d packets sent without a document", s.Packets)
		}
	})
}

// TestReconnect closes the link from the provider's side: the client
// dials again and carries on.
func TestReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		alice := w.start("", w.config())
		bob := w.start("", w.config())
		befriend(t, alice, "alice", bob, "bob")
		waitFor(t, time.Minute, "ready", func() bool { return alice.Ready() == nil && bob.Ready() == nil })
		w.net.Disconnect()
		waitFor(t, time.Minute, "both reconnected", func() bool {
			return alice.metric("chorus_client_connects_total", "ok") >= 2 && bob.metric("chorus_client_connects_total", "ok") >= 2 &&
				alice.Ready() == nil && bob.Ready() == nil
		})
		id, err := alice.Send(context.Background(), "bob", []byte("still here"))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "delivered", func() bool { return alice.state(t, id) == api.StateDelivered })
	})
}

// TestEpochRollover runs across epoch boundaries of two-minute epochs:
// the client fetches each next document once it is published, switches
// to it when its epoch begins, and keeps sending.
func TestEpochRollover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Slower traffic: this test spans minutes of fake time.
		slow := testParameters
		slow.LambdaPMean, slow.LambdaLMean, slow.LambdaDMean, slow.RetrievalInterval = time.Second, 10*time.Second, 10*time.Second, time.Second
		w := newWorldPeriod(t, 2*time.Minute, 10*time.Second, slow)
		alice := w.start("", w.config())
		bob := w.start("", w.config())
		befriend(t, alice, "alice", bob, "bob")
		ctx := context.Background()
		waitFor(t, time.Minute, "ready", func() bool { return alice.Ready() == nil })
		if st, _ := alice.Status(ctx); st.Epoch != 10 {
			t.Fatalf("epoch %d, want 10", st.Epoch)
		}
		time.Sleep(w.sched.Start(12).Add(time.Second).Sub(time.Now()))
		st, err := alice.Status(ctx)
		if err != nil || st.Epoch != 12 || !st.Connected {
			t.Fatalf("after two boundaries: %+v %v", st, err)
		}
		if v := alice.metric("chorus_client_documents_total", "accepted"); v != 3 {
			t.Errorf("%v documents accepted, want 3 (epochs 10, 11, 12)", v)
		}
		id, err := alice.Send(ctx, "bob", []byte("new epoch"))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "delivered", func() bool { return alice.state(t, id) == api.StateDelivered })
		if s := w.net.Stats(); s.Invalid != 0 {
			t.Errorf("%d packets the network could not open", s.Invalid)
		}
	})
}
