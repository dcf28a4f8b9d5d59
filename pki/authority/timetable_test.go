package authority

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// fakeClock is a clock the test sets.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

const period = 20 * time.Minute

// newClocked builds (but does not run) an authority on a fake clock, with
// the given number of peers that never answer. The tests drive it with tick.
func newClocked(t *testing.T, peers int) (*Authority, *fakeClock, *epoch.Schedule, []*keys.IdentityPrivateKey) {
	t.Helper()
	genesis := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: genesis.Add(10*period + period/10)}
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Genesis, cfg.Period = genesis, period
	var peerKeys []*keys.IdentityPrivateKey
	for i := range peers {
		k, err := keys.GenerateIdentityKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		peerKeys = append(peerKeys, k)
		cfg.Peers = append(cfg.Peers, dirclient.Authority{Name: "peer" + string(rune('a'+i)), IdentityKey: k.Public(), Address: "127.0.0.1:1"})
	}
	a, err := New(cfg, Deps{Clock: clock, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	sched, _ := epoch.New(genesis, period, nil)
	return a, clock, sched, peerKeys
}

// upload posts the nodes' descriptors for e through the HTTP handler.
func upload(t *testing.T, a *Authority, nodes []*testNode, e uint64) {
	t.Helper()
	h := a.handler()
	for _, n := range nodes {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, dirclient.DescriptorPath, bytes.NewReader(marshal(t, n.descriptor(t, e)))))
		if rec.Code != http.StatusOK {
			t.Fatalf("upload %s for epoch %d: %d %s", n.name, e, rec.Code, rec.Body)
		}
	}
}

// TestTimetableSingleAuthority drives one authority through the bootstrap
// and a regular round with a fake clock.
func TestTimetableSingleAuthority(t *testing.T) {
	a, clock, sched, _ := newClocked(t, 0)
	nodes := newNodes(t, 3, 1)
	cur := sched.At(clock.Now())

	// Bootstrap: not before the descriptors have settled, then at once.
	upload(t, a, nodes[:3], cur) // no provider yet: not viable
	a.tick(clock.Now())
	clock.set(clock.Now().Add(time.Minute))
	a.tick(clock.Now())
	if a.voted(cur) {
		t.Fatal("voted without a provider")
	}
	upload(t, a, nodes[3:], cur)
	a.tick(clock.Now())
	if a.voted(cur) {
		t.Fatal("voted before the descriptors settled")
	}
	clock.set(clock.Now().Add(a.settle))
	a.tick(clock.Now())
	a.tick(clock.Now())
	if !a.published(cur) {
		t.Fatalf("no bootstrap document for the current epoch (state %s)", a.roundState(cur))
	}
	if err := a.Ready(); err == nil {
		t.Error("ready without serving")
	}

	// The regular round for the next epoch: votes at the vote phase, not
	// before.
	next := cur + 1
	upload(t, a, nodes, next)
	clock.set(sched.PhaseStart(cur, epoch.Vote).Add(-time.Second))
	a.tick(clock.Now())
	if a.voted(next) {
		t.Fatal("voted before the vote phase")
	}
	clock.set(sched.PhaseStart(cur, epoch.Vote))
	a.tick(clock.Now())
	a.tick(clock.Now())
	if !a.published(next) {
		t.Fatalf("no document for the next epoch (state %s)", a.roundState(next))
	}
	// Late uploads are refused.
	rec := httptest.NewRecorder()
	a.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, dirclient.DescriptorPath, bytes.NewReader(marshal(t, nodes[0].descriptor(t, next)))))
	if rec.Code != http.StatusConflict {
		t.Errorf("upload after the vote: %d", rec.Code)
	}
	if got := testutil.ToFloat64(a.m.consensus.WithLabelValues("reached")); got != 2 {
		t.Errorf("consensus reached = %v, want 2", got)
	}
	if got := testutil.ToFloat64(a.m.epoch); got != float64(cur) {
		t.Errorf("epoch gauge = %v", got)
	}
	if got := testutil.ToFloat64(a.m.phase.WithLabelValues("vote")); got != 1 {
		t.Errorf("phase{vote} = %v", got)
	}
}

// TestTimetableDeadlines: with two peers of which one votes but never
// reveals, the authority votes, waits for the missing vote until the end of
// the vote phase, reveals, waits for the missing reveal until the end of the
// reveal phase, and then fails for want of a majority of reveals, counting it.
func TestTimetableDeadlines(t *testing.T) {
	a, clock, sched, peers := newClocked(t, 2)
	nodes := newNodes(t, 3, 1)
	cur := sched.At(clock.Now())
	next := cur + 1
	upload(t, a, nodes, next)

	// No bootstrap with peers that have not been asked for a document.
	clock.set(clock.Now().Add(time.Minute))
	a.tick(clock.Now())
	if a.voted(cur) {
		t.Error("bootstrapped without asking the peers first")
	}

	clock.set(sched.PhaseStart(cur, epoch.Vote))
	a.tick(clock.Now())
	if !a.voted(next) || a.revealed(next) {
		t.Fatalf("at the vote phase: state %s", a.roundState(next))
	}
	// The first peer's vote arrives (as fetchVote would store it).
	r, err := pki.NewReveal(rand.Reader, next, peers[0].Public())
	if err != nil {
		t.Fatal(err)
	}
	var sds []*pki.SignedDescriptor
	for _, n := range nodes {
		sds = append(sds, n.descriptor(t, next))
	}
	sv, err := pki.SignVote(peers[0], &pki.Vote{Epoch: next, Authority: peers[0].Public(), Descriptors: sds,
		Geometry: a.cfg.geometry(), Parameters: a.cfg.Parameters, Commit: r.Commit()})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sv.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.putOnce(kindVote, next, peers[0].Public().Array(), raw); err != nil {
		t.Fatal(err)
	}
	clock.set(sched.Deadline(cur, epoch.Vote).Add(-time.Millisecond))
	a.tick(clock.Now())
	if a.revealed(next) {
		t.Fatal("revealed before the vote deadline without the peers' votes")
	}
	clock.set(sched.Deadline(cur, epoch.Vote))
	a.tick(clock.Now())
	if !a.revealed(next) || a.computed(next) || a.failed(next) {
		t.Fatalf("at the vote deadline: state %s", a.roundState(next))
	}
	clock.set(sched.Deadline(cur, epoch.Reveal).Add(-time.Millisecond))
	a.tick(clock.Now())
	if a.computed(next) || a.failed(next) {
		t.Fatalf("computed before the reveal deadline without the peer's reveal: state %s", a.roundState(next))
	}
	clock.set(sched.Deadline(cur, epoch.Reveal))
	a.tick(clock.Now())
	if !a.failed(next) {
		t.Fatalf("at the reveal deadline: state %s", a.roundState(next))
	}
	if got := testutil.ToFloat64(a.m.consensus.WithLabelValues("failed")); got != 1 {
		t.Errorf("consensus failed = %v, want 1", got)
	}
	if got := testutil.ToFloat64(a.m.round.WithLabelValues(stateFailed)); got != 1 {
		t.Errorf("round_state{failed} = %v", got)
	}

	// The own vote and reveal value survive a restart unchanged.
	vote := a.store.get(kindVote, next, a.self)
	secret := a.store.get(kindSecret, next, subject{})
	a.Close()
	b, err := New(a.cfg, Deps{Clock: clock, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !bytes.Equal(b.store.get(kindVote, next, b.self), vote) || !bytes.Equal(b.store.get(kindSecret, next, subject{}), secret) || b.self != a.self {
		t.Error("vote, reveal value or identity changed across a restart")
	}
	if _, err := pki.VerifyVote(vote, b.all); err != nil {
		t.Errorf("stored vote: %v", err)
	}
}
