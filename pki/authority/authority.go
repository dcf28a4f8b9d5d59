package authority

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// Clock tells the time. The timetable reads only Now, so a test can move
// time by swapping the clock.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Deps are an authority's collaborators. Every field is optional.
type Deps struct {
	Log *slog.Logger
	// Registry receives the chorus_authority_* metrics; nil means they are
	// kept in a registry nobody reads.
	Registry prometheus.Registerer
	Clock    Clock
	// Rand is the source of the commit–reveal values and of a new identity
	// key; nil means crypto/rand.
	Rand io.Reader
	// HTTPClient talks to the peers; it must have a timeout. nil means a
	// client with a timeout derived from the epoch period.
	HTTPClient *http.Client
	// Listener, if set, is used instead of listening on Config.Listen.
	Listener net.Listener
}

// Authority is a directory authority. New builds it, Run runs it.
type Authority struct {
	cfg       Config
	sched     *epoch.Schedule
	log       *slog.Logger
	clock     Clock
	rand      io.Reader
	http      *http.Client
	ln        net.Listener
	key       *keys.IdentityPrivateKey
	self      subject
	all       []keys.IdentityPublicKey // every authority, this one included
	peers     []dirclient.Authority
	threshold int
	store     *store
	m         *metrics

	poll   time.Duration // how often missing votes, reveals and signatures are fetched
	settle time.Duration // bootstrap waits this long after the last new descriptor

	serving   atomic.Bool
	closeOnce sync.Once
	closeErr  error

	// mu serialises every state transition of a round (accepting a
	// descriptor, voting, accepting a peer's vote, revealing, computing,
	// publishing), so that, for example, no descriptor is accepted for an
	// epoch after the vote for it is made, and no vote after the reveal.
	mu sync.Mutex
	// lastDescriptor is when a new or changed descriptor for an epoch was
	// last stored; the bootstrap waits for it to settle.
	lastDescriptor map[uint64]time.Time
	// bootVotes are the epochs whose vote was a bootstrap vote, with the
	// time the round's deadlines count from.
	bootVotes map[uint64]time.Time
	// docChecked counts, per epoch, the peers asked whether they already
	// have a document, so a late starter adopts it instead of bootstrapping.
	docChecked map[uint64]map[int]bool
	pruned     uint64
}

// New builds an authority from a valid config: it loads (or creates) the
// identity key and opens the state database. It starts nothing.
func New(cfg Config, d Deps) (*Authority, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("new authority: invalid config: %w", errors.Join(errs...))
	}
	a := &Authority{
		cfg:            cfg,
		log:            d.Log,
		clock:          d.Clock,
		rand:           d.Rand,
		http:           d.HTTPClient,
		ln:             d.Listener,
		peers:          cfg.Peers,
		threshold:      cfg.threshold(),
		lastDescriptor: make(map[uint64]time.Time),
		bootVotes:      make(map[uint64]time.Time),
		docChecked:     make(map[uint64]map[int]bool),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.clock == nil {
		a.clock = systemClock{}
	}
	if a.rand == nil {
		a.rand = rand.Reader
	}
	var err error
	if a.sched, err = epoch.New(cfg.Genesis, cfg.Period, a.clock.Now); err != nil {
		return nil, fmt.Errorf("new authority: %w", err)
	}
	a.poll = clamp(cfg.Period/40, 50*time.Millisecond, time.Second)
	a.settle = clamp(cfg.Period/16, 100*time.Millisecond, 5*time.Second)
	if a.http == nil {
		a.http = &http.Client{Timeout: clamp(cfg.Period/4, time.Second, 10*time.Second)}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("new authority: create data directory: %w", err)
	}
	if a.key, err = keys.LoadOrCreateIdentity(cfg.identityKeyFile(), a.rand); err != nil {
		return nil, fmt.Errorf("new authority: %w", err)
	}
	// From here on, a failure undoes what was built, in one place.
	built := false
	defer func() {
		if !built {
			if a.store != nil {
				a.store.close()
			}
			a.key.Zero()
		}
	}()
	a.self = a.key.Public().Array()
	a.all = append(a.all, a.key.Public())
	for _, p := range cfg.Peers {
		if p.IdentityKey.Equal(a.key.Public()) {
			return nil, errors.New("new authority: a peer has this authority's own identity key")
		}
		a.all = append(a.all, p.IdentityKey)
	}
	if cc := a.consensusConfig(); cc.Validate() != nil {
		return nil, fmt.Errorf("new authority: %w", cc.Validate())
	}
	if a.store, err = openStore(filepath.Join(cfg.DataDir, "authority.db")); err != nil {
		return nil, fmt.Errorf("new authority: %w", err)
	}
	reg := d.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if a.m, err = newMetrics(reg); err != nil {
		return nil, fmt.Errorf("new authority: register metrics: %w", err)
	}
	built = true
	return a, nil
}

func clamp(d, lo, hi time.Duration) time.Duration { return min(max(d, lo), hi) }

// Identity returns the authority's identity public key.
func (a *Authority) Identity() keys.IdentityPublicKey { return a.key.Public() }

// Ready reports whether the authority serves requests and holds a published
// document for the current epoch; it backs /readyz.
func (a *Authority) Ready() error {
	if !a.serving.Load() {
		return errors.New("not serving")
	}
	if a.store.get(kindPublished, a.sched.At(a.clock.Now()), subject{}) == nil {
		return errors.New("no document for the current epoch yet")
	}
	return nil
}

// Close releases the state database and wipes the identity key. Run does
// this itself when it returns; Close is for an authority that never ran.
// It is idempotent.
func (a *Authority) Close() error {
	a.closeOnce.Do(func() {
		a.closeErr = a.store.close()
		a.key.Zero()
	})
	return a.closeErr
}

// Run serves the HTTP API and runs the epoch timetable until ctx is done,
// then stops every goroutine it started, closes the authority and returns.
// It returns nil after a cancellation, else the error that stopped it.
func (a *Authority) Run(ctx context.Context) error {
	defer a.Close()
	ln := a.ln
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", a.cfg.Listen); err != nil {
			return fmt.Errorf("run authority: listen: %w", err)
		}
	}
	now := a.clock.Now()
	a.resume(now)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.serve(ctx, ln) })
	g.Go(func() error { return a.drive(ctx) })
	for i := range a.peers {
		g.Go(func() error { return a.fetchLoop(ctx, i) })
	}
	pub, _ := a.key.Public().MarshalText()
	a.log.Info("authority running", "identity_key", string(pub), "authorities", len(a.all), "threshold", a.threshold, "epoch", a.sched.At(now))
	err := g.Wait()
	a.serving.Store(false)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// resume prepares in-memory state after a (re)start: a bootstrap round of
// the current epoch that was under way counts its deadlines from now.
func (a *Authority) resume(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.sched.At(now)
	if a.store.get(kindVote, cur, a.self) != nil && a.store.get(kindPublished, cur, subject{}) == nil {
		a.bootVotes[cur] = now
	}
}

func (a *Authority) serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.serving.Store(true)
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	a.serving.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return ctx.Err()
}

// drive runs the timetable: every poll interval it moves the rounds for the
// current and the next epoch as far as they can go.
func (a *Authority) drive(ctx context.Context) error {
	t := time.NewTicker(a.poll)
	defer t.Stop()
	for {
		a.tick(a.clock.Now())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (a *Authority) tick(now time.Time) {
	cur := a.sched.At(now)
	a.m.epoch.Set(float64(cur))
	a.maybeBootstrap(cur, now)
	a.maybeVote(cur+1, now)
	a.advance(cur, now)
	a.advance(cur+1, now)
	_, ph := a.sched.PhaseAt(now)
	a.m.setPhase(ph.String())
	a.m.setRound(a.roundState(cur + 1))
	if cur > 2 && a.pruned < cur-2 {
		if err := a.store.prune(cur - 2); err != nil {
			a.log.Error("prune state", "err", err)
		} else {
			a.pruned = cur - 2
		}
		a.mu.Lock()
		for _, m := range []map[uint64]time.Time{a.lastDescriptor, a.bootVotes} {
			for e := range m {
				if e < cur-2 {
					delete(m, e)
				}
			}
		}
		for e := range a.docChecked {
			if e < cur-2 {
				delete(a.docChecked, e)
			}
		}
		a.mu.Unlock()
	}
}

func (a *Authority) roundState(T uint64) string {
	switch {
	case a.store.get(kindPublished, T, subject{}) != nil:
		return statePublished
	case a.store.get(kindFailed, T, subject{}) != nil:
		return stateFailed
	case a.store.get(kindDocument, T, subject{}) != nil:
		return stateSigning
	case a.store.get(kindReveal, T, a.self) != nil:
		return stateRevealing
	case a.store.get(kindVote, T, a.self) != nil:
		return stateVoting
	}
	return stateDescriptors
}
