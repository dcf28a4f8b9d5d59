package arq_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chorus-mixnet/chorus/client/arq"
	"github.com/chorus-mixnet/chorus/client/route"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

var testConfig = arq.Config{MaxAttempts: 4, Slack: time.Second, MaxSlack: 3 * time.Second}

// attempt is one send of a fragment as the harness made it.
type attempt struct {
	at    time.Time
	fwd   *route.Route
	back  *route.Route
	surb  arq.SURBID
	rtt   time.Duration
	numID int // the attempt number Sent returned
}

// client is the part of chorusd the tests need: it sends a fragment on a
// fresh route with a fresh SURB for each attempt, and a fake network
// decides which ACKs come back and when.
type client struct {
	t   *testing.T
	tr  *arq.Tracker
	sel *route.Selector
	doc *pki.Document
	me  route.Address
	you route.Address
	rng *rand.Rand
	// ack decides, for attempt n of a fragment, whether its ACK comes back
	// and how long after the drawn round trip.
	ack func(f arq.FragmentID, n int) (bool, time.Duration)

	mu        sync.Mutex
	attempts  map[arq.FragmentID][]attempt
	delivered map[arq.FragmentID]int
	lateAcks  int // ACKs Acked did not recognise
	done      []arq.MessageID
	failed    []arq.MessageID
	failedAt  time.Time
	retired   int
	wg        sync.WaitGroup
}

func newClient(t *testing.T, cfg arq.Config, seed uint64) *client {
	t.Helper()
	tr, err := arq.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := pkitest.Network(1, 3, 3, 3)
	return &client{
		t:         t,
		tr:        tr,
		sel:       route.New(rand.NewPCG(seed, 1)),
		doc:       doc,
		me:        route.Address{Provider: doc.Providers[0].ID, Mailbox: route.MailboxID{1}},
		you:       route.Address{Provider: doc.Providers[2].ID, Mailbox: route.MailboxID{2}},
		rng:       rand.New(rand.NewPCG(seed, 2)),
		attempts:  map[arq.FragmentID][]attempt{},
		delivered: map[arq.FragmentID]int{},
	}
}

// send sends an attempt of f: new routes both ways, a new SURB ID.
func (c *client) send(f arq.FragmentID) {
	// send runs on Run's goroutine too: report with Errorf, not Fatal.
	fwd, err := c.sel.Forward(c.doc, c.me.Provider, c.you)
	if err != nil {
		c.t.Error(err)
		return
	}
	var surb arq.SURBID
	for i := range surb {
		surb[i] = byte(c.rng.Uint32())
	}
	back, err := c.sel.SURB(c.doc, c.you.Provider, c.me, surb)
	if err != nil {
		c.t.Error(err)
		return
	}
	rtt := fwd.Delay + back.Delay
	n, _, err := c.tr.Sent(f, surb, rtt, time.Now())
	if err != nil {
		c.t.Errorf("Sent(%v): %v", f.Index, err)
		return
	}
	c.mu.Lock()
	c.attempts[f] = append(c.attempts[f], attempt{at: time.Now(), fwd: fwd, back: back, surb: surb, rtt: rtt, numID: n})
	c.mu.Unlock()
	if ok, extra := c.ack(f, n); ok {
		c.wg.Go(func() {
			time.Sleep(rtt + extra)
			c.acked(surb)
		})
	}
}

func (c *client) acked(surb arq.SURBID) {
	a, ok := c.tr.Acked(surb)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		c.lateAcks++
		return
	}
	c.delivered[a.Fragment]++
	c.retired += len(a.Retired)
	if a.MessageDone {
		c.done = append(c.done, a.Fragment.Message)
	}
}

func (c *client) handle(e arq.Expired) {
	for _, f := range e.Retransmit {
		c.send(f)
	}
	c.mu.Lock()
	c.failed = append(c.failed, e.Failed...)
	if len(e.Failed) > 0 {
		c.failedAt = time.Now()
	}
	c.retired += len(e.Retired)
	c.mu.Unlock()
}

// run tracks a message of n fragments, sends each once, and runs the
// tracker until everything settles.
func (c *client) run(id arq.MessageID, n int) {
	ctx, cancel := context.WithCancel(c.t.Context())
	done := make(chan error, 1)
	go func() { done <- c.tr.Run(ctx, c.handle) }()
	if err := c.tr.Track(id, n); err != nil {
		c.t.Fatal(err)
	}
	for i := range n {
		c.send(arq.FragmentID{Message: id, Index: i})
	}
	time.Sleep(time.Hour)
	c.wg.Wait()
	cancel()
	if err := <-done; err != nil {
		c.t.Errorf("Run: %v", err)
	}
	if _, ok := c.tr.Next(); ok {
		c.t.Error("something is still in flight")
	}
}

func sameRoute(a, b *route.Route) bool {
	if a == b {
		return true
	}
	if a.Delay != b.Delay || len(a.Hops) != len(b.Hops) {
		return false
	}
	for i := range a.Hops {
		if a.Hops[i].ID != b.Hops[i].ID {
			return false
		}
	}
	return true
}

// timeout is when attempt n sent at a with round trip rtt times out.
func timeout(cfg arq.Config, a attempt) time.Time {
	slack := cfg.Slack << (a.numID - 1)
	return a.at.Add(a.rtt + min(slack, cfg.MaxSlack))
}

func TestRetransmitOnNewPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newClient(t, testConfig, 1)
		// The network loses the first two attempts of every fragment; the
		// third one's ACK comes back 200ms after the drawn round trip.
		c.ack = func(_ arq.FragmentID, n int) (bool, time.Duration) { return n == 3, 200 * time.Millisecond }
		id := arq.MessageID{7}
		c.run(id, 3)

		if len(c.done) != 1 || c.done[0] != id || len(c.failed) != 0 {
			t.Fatalf("done %v, failed %v", c.done, c.failed)
		}
		if len(c.attempts) != 3 {
			t.Fatalf("%d fragments sent, want 3", len(c.attempts))
		}
		for f, as := range c.attempts {
			if len(as) != 3 {
				t.Fatalf("fragment %d sent %d times, want 3", f.Index, len(as))
			}
			if c.delivered[f] != 1 {
				t.Errorf("fragment %d acknowledged %d times", f.Index, c.delivered[f])
			}
			for i, a := range as {
				if a.numID != i+1 {
					t.Errorf("fragment %d: attempt %d numbered %d", f.Index, i+1, a.numID)
				}
				if i == 0 {
					continue
				}
				// Each attempt went out exactly when the previous one timed
				// out: its drawn round trip plus a slack that doubles.
				if want := timeout(testConfig, as[i-1]); !a.at.Equal(want) {
					t.Errorf("fragment %d attempt %d at %v, want %v", f.Index, i+1, a.at, want)
				}
				for _, b := range as[:i] {
					if sameRoute(a.fwd, b.fwd) || sameRoute(a.back, b.back) || a.surb == b.surb {
						t.Errorf("fragment %d: attempt %d reuses a route or SURB", f.Index, i+1)
					}
				}
			}
			if d := as[2].at.Sub(as[1].at) - as[1].rtt; d != 2*time.Second {
				t.Errorf("second slack %v, want 2s (doubled)", d)
			}
		}
		if c.retired != 9 {
			t.Errorf("%d SURBs retired, want 9", c.retired)
		}
	})
}

func TestGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newClient(t, testConfig, 2)
		c.ack = func(arq.FragmentID, int) (bool, time.Duration) { return false, 0 }
		id := arq.MessageID{8}
		c.run(id, 2)

		if len(c.failed) != 1 || c.failed[0] != id || len(c.done) != 0 {
			t.Fatalf("failed %v, done %v", c.failed, c.done)
		}
		// The message fails when the first fragment's last attempt times
		// out; the other fragment stops wherever it was.
		var first time.Time
		sent := 0
		for f, as := range c.attempts {
			sent += len(as)
			if len(as) > testConfig.MaxAttempts {
				t.Errorf("fragment %d sent %d times, bound %d", f.Index, len(as), testConfig.MaxAttempts)
			}
			if len(as) < testConfig.MaxAttempts {
				continue
			}
			if d := timeout(testConfig, as[len(as)-1]); first.IsZero() || d.Before(first) {
				first = d
			}
		}
		if first.IsZero() {
			t.Fatal("no fragment used every attempt")
		}
		if !c.failedAt.Equal(first) {
			t.Errorf("failed at %v, want %v", c.failedAt, first)
		}
		if c.retired != sent {
			t.Errorf("%d SURBs retired, %d sent", c.retired, sent)
		}
		// The message is gone: no more attempts, and late ACKs are harmless.
		if _, _, err := c.tr.Sent(arq.FragmentID{Message: id}, arq.SURBID{0xff}, 0, time.Now()); !errors.Is(err, arq.ErrUnknown) {
			t.Errorf("Sent after failure: %v", err)
		}
		for _, as := range c.attempts {
			if _, ok := c.tr.Acked(as[0].surb); ok {
				t.Error("a late ACK for a failed message was accepted")
			}
		}
	})
}

func TestNeverDoubleDelivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newClient(t, testConfig, 3)
		// Every ACK comes back, but the first attempt's only after its
		// timeout (so a second attempt goes out and is acknowledged too).
		c.ack = func(_ arq.FragmentID, n int) (bool, time.Duration) {
			if n == 1 {
				return true, testConfig.Slack + 500*time.Millisecond
			}
			return true, 0
		}
		id := arq.MessageID{9}
		c.run(id, 4)

		if len(c.done) != 1 || len(c.failed) != 0 {
			t.Fatalf("done %v, failed %v", c.done, c.failed)
		}
		if len(c.delivered) != 4 || len(c.attempts) != 4 {
			t.Fatalf("%d fragments delivered, %d sent, want 4", len(c.delivered), len(c.attempts))
		}
		for f, n := range c.delivered {
			if n != 1 {
				t.Errorf("fragment %d delivered %d times", f.Index, n)
			}
		}
		late := 0
		for _, as := range c.attempts {
			if len(as) != 2 {
				t.Errorf("%d attempts, want 2", len(as))
			}
			late += len(as) - 1
		}
		if c.lateAcks != late {
			t.Errorf("%d ACKs not recognised, want %d (one per extra attempt)", c.lateAcks, late)
		}
	})
}

// TestAckBeforeResend: an ACK that arrives after Due listed the fragment
// but before the resend went out makes Sent refuse the resend.
func TestAckBeforeResend(t *testing.T) {
	tr, err := arq.New(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	id := arq.MessageID{1}
	f0, f1 := arq.FragmentID{Message: id, Index: 0}, arq.FragmentID{Message: id, Index: 1}
	if err := tr.Track(id, 2); err != nil {
		t.Fatal(err)
	}
	if err := tr.Track(id, 2); !errors.Is(err, arq.ErrDuplicate) {
		t.Errorf("Track twice: %v", err)
	}
	mustSend := func(f arq.FragmentID, s byte, at time.Time) {
		t.Helper()
		if _, _, err := tr.Sent(f, arq.SURBID{s}, time.Second, at); err != nil {
			t.Fatal(err)
		}
	}
	mustSend(f0, 1, now)
	mustSend(f1, 2, now)
	if _, _, err := tr.Sent(f0, arq.SURBID{3}, time.Second, now); !errors.Is(err, arq.ErrInFlight) {
		t.Errorf("Sent while in flight: %v", err)
	}
	if _, _, err := tr.Sent(arq.FragmentID{Message: id, Index: 2}, arq.SURBID{3}, time.Second, now); !errors.Is(err, arq.ErrUnknown) {
		t.Errorf("Sent for a fragment out of range: %v", err)
	}
	if e := tr.Due(now.Add(time.Second)); !e.Empty() {
		t.Fatalf("due before the timeout: %+v", e)
	}
	later := now.Add(2 * time.Second)
	if e := tr.Due(later); len(e.Retransmit) != 2 {
		t.Fatalf("due: %+v", e)
	}
	if e := tr.Due(later.Add(time.Hour)); !e.Empty() {
		t.Fatalf("a waiting fragment listed twice: %+v", e)
	}
	if _, _, err := tr.Sent(f1, arq.SURBID{1}, time.Second, later); !errors.Is(err, arq.ErrDuplicate) {
		t.Errorf("Sent with a used SURB ID: %v", err)
	}
	// The first attempt's ACK arrives late, before the resend.
	a, ok := tr.Acked(arq.SURBID{1})
	if !ok || a.Fragment != f0 || a.Attempt != 1 || a.MessageDone || len(a.Retired) != 1 {
		t.Fatalf("Acked: %+v, %v", a, ok)
	}
	if _, _, err := tr.Sent(f0, arq.SURBID{4}, time.Second, later); !errors.Is(err, arq.ErrAcknowledged) {
		t.Errorf("Sent after the ACK: %v", err)
	}
	if _, ok := tr.Acked(arq.SURBID{1}); ok {
		t.Error("the same ACK accepted twice")
	}
	mustSend(f1, 5, later)
	a, ok = tr.Acked(arq.SURBID{2}) // f1's first attempt, late
	if !ok || a.Attempt != 1 || !a.MessageDone || len(a.Retired) != 2 {
		t.Fatalf("Acked: %+v, %v", a, ok)
	}
	if _, ok := tr.Acked(arq.SURBID{5}); ok {
		t.Error("the second attempt's ACK was accepted after the first")
	}
	if _, ok := tr.Next(); ok {
		t.Error("a delivered message is still tracked")
	}
}

func TestCancel(t *testing.T) {
	tr, _ := arq.New(testConfig)
	id := arq.MessageID{1}
	_ = tr.Track(id, 3)
	now := time.Now()
	_, _, _ = tr.Sent(arq.FragmentID{Message: id}, arq.SURBID{1}, 0, now)
	if r := tr.Cancel(id); len(r) != 1 || r[0] != (arq.SURBID{1}) {
		t.Errorf("Cancel retired %v", r)
	}
	if _, ok := tr.Acked(arq.SURBID{1}); ok {
		t.Error("ACK for a cancelled message accepted")
	}
	if e := tr.Due(now.Add(time.Hour)); !e.Empty() {
		t.Errorf("a cancelled message is due: %+v", e)
	}
}

// TestSentDeadline: Sent returns the deadline the tracker keeps (the one
// a caller persists), the drawn round trip plus a slack that doubles per
// attempt up to MaxSlack, and the attempt times out exactly then.
func TestSentDeadline(t *testing.T) {
	for _, tc := range []struct {
		cfg   arq.Config
		slack []time.Duration // per attempt
	}{
		{testConfig, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}},
		{arq.Config{MaxAttempts: 3, Slack: time.Second, MaxSlack: time.Second}, []time.Duration{time.Second, time.Second, time.Second}},
		{arq.Config{MaxAttempts: 6, Slack: 3 * time.Second, MaxSlack: 50 * time.Second},
			[]time.Duration{3 * time.Second, 6 * time.Second, 12 * time.Second, 24 * time.Second, 48 * time.Second, 50 * time.Second}},
		{arq.Config{MaxAttempts: arq.MaxAttemptsLimit, Slack: time.Hour, MaxSlack: 1 << 62}, nil}, // no overflow
	} {
		tr, err := arq.New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		id := arq.MessageID{1}
		f := arq.FragmentID{Message: id}
		_ = tr.Track(id, 1)
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		want := tc.cfg.Slack
		for n := 1; n <= tc.cfg.MaxAttempts; n++ {
			if n <= len(tc.slack) {
				want = tc.slack[n-1]
			} else if n > 1 {
				want = min(want, tc.cfg.MaxSlack/2) * 2 // without overflowing
				want = min(want, tc.cfg.MaxSlack)
			}
			rtt := time.Duration(n) * 300 * time.Millisecond
			got, deadline, err := tr.Sent(f, arq.SURBID{byte(n)}, rtt, now)
			if err != nil || got != n {
				t.Fatalf("%+v: attempt %d: Sent: %d, %v", tc.cfg, n, got, err)
			}
			if !deadline.Equal(now.Add(rtt + want)) {
				t.Fatalf("%+v: attempt %d: deadline %v after now, want %v", tc.cfg, n, deadline.Sub(now), rtt+want)
			}
			if kept := tr.Snapshot().Messages[0].Fragments[0].Deadline; !kept.Equal(deadline) {
				t.Fatalf("%+v: attempt %d: Sent said %v, the tracker keeps %v", tc.cfg, n, deadline, kept)
			}
			if e := tr.Due(deadline.Add(-time.Nanosecond)); !e.Empty() {
				t.Fatalf("%+v: attempt %d: due before its deadline", tc.cfg, n)
			}
			if e := tr.Due(deadline); len(e.Retransmit)+len(e.Failed) != 1 {
				t.Fatalf("%+v: attempt %d: not due at its deadline: %+v", tc.cfg, n, e)
			}
			now = deadline
		}
	}
}

func TestConfig(t *testing.T) {
	if err := testConfig.Validate(); err != nil {
		t.Fatal(err)
	}
	err := arq.Config{MaxAttempts: 0, Slack: 0, MaxSlack: -1}.Validate()
	if err == nil {
		t.Fatal("a zero config is valid")
	}
	for _, want := range []string{"max attempts", "slack 0s", "max slack"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %q", err, want)
		}
	}
}

func TestRunOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, _ := arq.New(testConfig)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- tr.Run(ctx, func(arq.Expired) {}) }()
		synctest.Wait()
		if err := tr.Run(ctx, func(arq.Expired) {}); !errors.Is(err, arq.ErrRunning) {
			t.Errorf("second Run: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
