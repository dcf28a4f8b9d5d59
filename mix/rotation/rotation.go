package rotation

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// Ahead is how many epochs after the current one have keys: during epoch E
// the node uploads its descriptor for E+1, which carries the keys of E+1
// to E+pki.SphinxKeyEpochs, so keys exist for E to E+Ahead.
const Ahead = pki.SphinxKeyEpochs

// wipeDelay is how long a retired key stays in memory, out of reach of
// Key, before it is zeroed: a hop worker that fetched it just before it
// was retired finishes its packet with an intact key.
const wipeDelay = time.Second

// ErrNoKey is returned by PublicKeys when a key it needs is not held.
var ErrNoKey = errors.New("rotation: no sphinx key for epoch")

// Config configures a Rotation.
type Config struct {
	// Dir holds the Sphinx key files, one per epoch, and nothing else: the
	// rotation owns it (mode 0700).
	Dir string
	// Schedule is the network's epoch calendar.
	Schedule *epoch.Schedule
	// Grace is how long into epoch E the key of E-1 still unwraps packets:
	// the longest a packet made for E-1 can be in flight (the maximum
	// delay of the hops before this one plus clock skew). From 0 to one
	// epoch period.
	Grace time.Duration
	// Rand is the source of new keys; nil means crypto/rand.
	Rand io.Reader
	// Now is the clock; nil means time.Now. It must be the clock the
	// Schedule reads.
	Now func() time.Time
	// Logger receives key creation and retirement; nil discards.
	Logger *slog.Logger
	// OnRetire, if set, is called with an epoch after that epoch's key
	// has been withdrawn and its file erased (for the replay filter to be
	// forgotten with it). It is called from New and from Run, one call at
	// a time; it may be called again for the same epoch, so it must be
	// idempotent.
	OnRetire func(epoch uint64)
	// Registerer receives the chorus_mix_rotation_* metrics; nil registers
	// nothing.
	Registerer prometheus.Registerer
}

// Rotation holds a mix's per-epoch Sphinx keys. Key and PublicKeys are
// safe for concurrent use with everything; Run and Close are called once.
type Rotation struct {
	dir      string
	sched    *epoch.Schedule
	grace    time.Duration
	rand     io.Reader
	now      func() time.Time
	log      *slog.Logger
	onRetire func(uint64)
	retry    time.Duration
	m        *metrics

	state atomic.Pointer[state] // what Key reads: never nil after New

	mu     sync.Mutex // serialises reconcile and Close
	held   map[uint64]*keys.SphinxPrivateKey
	wipes  []wipe
	closed bool
}

// state is an immutable snapshot of the keys in use.
type state struct {
	cur  uint64                            // the current epoch
	keys [Ahead + 2]*keys.SphinxPrivateKey // the key of epoch cur-1+i, or nil
}

// lookup returns the key of epoch e if the snapshot holds it.
func (s *state) lookup(e uint64) *keys.SphinxPrivateKey {
	if e+1 < s.cur || e-s.cur+1 >= uint64(len(s.keys)) {
		return nil
	}
	return s.keys[e+1-s.cur]
}

type wipe struct {
	key *keys.SphinxPrivateKey
	at  time.Time
}

// New loads the keys in cfg.Dir, erases those no longer needed (calling
// OnRetire for each), and creates the missing ones for the current epoch
// and the next Ahead, so that the node can publish its descriptor and
// unwrap packets at once. Any failure is returned: a key file that cannot
// be read is not replaced, because its public key may already be
// published. New starts no goroutine.
func New(cfg Config) (*Rotation, error) {
	switch {
	case cfg.Dir == "":
		return nil, errors.New("rotation: new: empty key directory")
	case cfg.Schedule == nil:
		return nil, errors.New("rotation: new: nil schedule")
	case cfg.Grace < 0 || cfg.Grace > cfg.Schedule.Period():
		return nil, fmt.Errorf("rotation: new: grace %v, want 0 to the epoch period %v", cfg.Grace, cfg.Schedule.Period())
	}
	r := &Rotation{
		dir:      cfg.Dir,
		sched:    cfg.Schedule,
		grace:    cfg.Grace,
		rand:     cfg.Rand,
		now:      cfg.Now,
		log:      cfg.Logger,
		onRetire: cfg.OnRetire,
		retry:    min(max(cfg.Schedule.Period()/20, 100*time.Millisecond), 30*time.Second),
		held:     make(map[uint64]*keys.SphinxPrivateKey),
	}
	if r.rand == nil {
		r.rand = rand.Reader
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.state.Store(&state{})
	r.m = newMetrics(r)
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return nil, fmt.Errorf("rotation: new: %w", err)
	}
	if st, err := os.Stat(r.dir); err != nil {
		return nil, fmt.Errorf("rotation: new: %w", err)
	} else if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("rotation: new: %s: %w: mode %#o, want 0700", r.dir, keys.ErrPermissions, st.Mode().Perm())
	}
	r.mu.Lock()
	_, err := r.reconcile(r.now())
	r.mu.Unlock()
	if err == nil {
		err = r.m.register(cfg.Registerer)
	}
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("rotation: new: %w", err)
	}
	return r, nil
}

// Key returns the private key of epoch if it may unwrap packets now: the
// current epoch's, the next epoch's (for senders whose clocks run ahead)
// and, during the grace period, the previous epoch's. It does not
// allocate. The key must not be retained beyond the packet at hand: a
// retired key is zeroed shortly after.
func (r *Rotation) Key(epoch uint64) (*keys.SphinxPrivateKey, bool) {
	s := r.state.Load()
	if epoch > s.cur+1 {
		return nil, false
	}
	k := s.lookup(epoch)
	return k, k != nil
}

// PublicKeys returns the public keys of epochs epoch to
// epoch+pki.SphinxKeyEpochs-1: what pki.Descriptor.SphinxKeys needs for a
// descriptor of that epoch. During epoch E it serves descriptors for E
// and E+1; for others it returns ErrNoKey.
func (r *Rotation) PublicKeys(epoch uint64) (map[uint64]keys.SphinxPublicKey, error) {
	s := r.state.Load()
	out := make(map[uint64]keys.SphinxPublicKey, pki.SphinxKeyEpochs)
	for e := epoch; e < epoch+pki.SphinxKeyEpochs; e++ {
		k := s.lookup(e)
		if k == nil {
			return nil, fmt.Errorf("%w %d", ErrNoKey, e)
		}
		out[e] = k.Public()
	}
	return out, nil
}

// Run rotates the keys until ctx is done, then returns nil: at each epoch
// boundary it creates the key Ahead epochs on, and when the grace period
// ends it retires the previous epoch's key (withdraws it from Key, erases
// its file, calls OnRetire, and zeroes it in memory a moment later).
// Failures are logged, counted and retried; the keys already held keep
// working meanwhile. Run does not close the Rotation.
func (r *Rotation) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil
		}
		now := r.now()
		next, err := r.reconcile(now)
		r.mu.Unlock()
		if err != nil {
			r.log.Error("sphinx key rotation failed; retrying", "err", err, "retry_in", r.retry)
		}
		d := next.Sub(now)
		if d <= 0 {
			d = r.retry // a clock far beyond the calendar: nothing to wait for
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
	}
}

// Close withdraws and zeroes every key in memory (the files stay for the
// next start). Call it after the workers that use Key have stopped. It is
// idempotent.
func (r *Rotation) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.state.Store(&state{})
	for _, k := range r.held {
		k.Zero()
	}
	clear(r.held)
	for _, w := range r.wipes {
		w.key.Zero()
	}
	r.wipes = nil
	return nil
}

// reconcile brings keys, files and the snapshot in line with the time
// now, and returns when it next needs to run. r.mu is held.
func (r *Rotation) reconcile(now time.Time) (next time.Time, err error) {
	cur := r.sched.At(now)
	graceEnd := r.sched.Start(cur).Add(r.grace)
	keepFrom := cur
	if cur > 0 && now.Before(graceEnd) {
		keepFrom = cur - 1
	}
	last := cur + Ahead
	var errs []error

	// At an epoch boundary the new epoch's keys were made epochs ago: serve
	// them at once, before the slow work below (a directory scan, and the
	// fsyncs of a new key) can hold the node in the previous epoch.
	if s := r.state.Load(); s.cur < cur && r.held[cur] != nil {
		r.publish(cur)
	}

	// Zero the retired keys whose time has come.
	r.wipes = slices.DeleteFunc(r.wipes, func(w wipe) bool {
		if now.Before(w.at) {
			return false
		}
		w.key.Zero()
		return true
	})

	onDisk, err := r.scan()
	if err != nil {
		errs = append(errs, err)
	}
	// Load or create what is needed.
	for e := keepFrom; e <= last; e++ {
		if r.held[e] != nil {
			continue
		}
		path := r.path(e)
		switch {
		case onDisk[e]:
			k, err := keys.LoadSphinx(path)
			if err != nil {
				r.m.failed(opLoad)
				errs = append(errs, fmt.Errorf("load key of epoch %d: %w", e, err))
				continue
			}
			r.held[e] = k
		case e >= cur: // never create a key for an epoch already past
			k, err := keys.GenerateSphinxKey(r.rand)
			if err == nil {
				err = keys.SaveSphinx(path, k)
			}
			if err != nil {
				if k != nil {
					k.Zero()
				}
				r.m.failed(opCreate)
				errs = append(errs, fmt.Errorf("create key of epoch %d: %w", e, err))
				continue
			}
			r.held[e] = k
			r.m.created()
			r.log.Info("sphinx key created", "epoch", e, "key", k.Public())
		}
	}
	// Withdraw what is no longer needed from memory: keys too old, and
	// keys too far ahead (after the clock went back; their files stay).
	var retired []uint64
	for e, k := range r.held {
		if e >= keepFrom && e <= last {
			continue
		}
		delete(r.held, e)
		r.wipes = append(r.wipes, wipe{k, now.Add(wipeDelay)})
		if e < keepFrom {
			retired = append(retired, e)
		}
	}
	r.publish(cur)

	// Erase the files of old keys, held or not, then tell OnRetire.
	for e := range onDisk {
		if e < keepFrom && !slices.Contains(retired, e) {
			retired = append(retired, e)
		}
	}
	slices.Sort(retired)
	erased := false
	for _, e := range retired {
		if err := keys.Erase(r.path(e)); err != nil {
			r.m.failed(opErase)
			errs = append(errs, fmt.Errorf("erase key of epoch %d: %w", e, err))
			continue
		}
		erased = true
		r.m.retired()
		r.log.Info("sphinx key retired", "epoch", e)
		if r.onRetire != nil {
			r.onRetire(e)
		}
	}
	if erased {
		if err := syncDir(r.dir); err != nil {
			errs = append(errs, err)
		}
	}

	next = r.sched.End(cur)
	if keepFrom < cur {
		next = graceEnd
	}
	for _, w := range r.wipes {
		if w.at.Before(next) {
			next = w.at
		}
	}
	err = errors.Join(errs...)
	if err != nil && now.Add(r.retry).Before(next) {
		next = now.Add(r.retry)
	}
	return next, err
}

// publish replaces the snapshot Key reads.
func (r *Rotation) publish(cur uint64) {
	s := &state{cur: cur}
	for i := range s.keys {
		if cur == 0 && i == 0 {
			continue // no epoch before 0
		}
		s.keys[i] = r.held[cur-1+uint64(i)]
	}
	r.state.Store(s)
}

// scan lists the key files in the directory by epoch, and erases the
// temporary files an interrupted key creation may have left (they hold a
// private key).
func (r *Rotation) scan() (map[uint64]bool, error) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("scan key directory: %w", err)
	}
	out := make(map[uint64]bool, len(ents))
	var errs []error
	for _, ent := range ents {
		name := ent.Name()
		if strings.HasPrefix(name, ".key-") {
			if err := keys.Erase(filepath.Join(r.dir, name)); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if e, ok := parseFileName(name); ok {
			out[e] = true
		}
	}
	return out, errors.Join(errs...)
}

func (r *Rotation) path(e uint64) string { return filepath.Join(r.dir, fileName(e)) }

// inUse returns how many keys the snapshot holds.
func (r *Rotation) inUse() int {
	n := 0
	for _, k := range r.state.Load().keys {
		if k != nil {
			n++
		}
	}
	return n
}

const (
	filePrefix = "sphinx-"
	fileSuffix = ".key"
)

func fileName(e uint64) string { return filePrefix + strconv.FormatUint(e, 10) + fileSuffix }

func parseFileName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, filePrefix)
	if !ok {
		return 0, false
	}
	if s, ok = strings.CutSuffix(s, fileSuffix); !ok {
		return 0, false
	}
	e, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(e, 10) != s {
		return 0, false
	}
	return e, true
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync key directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync key directory: %w", err)
	}
	return nil
}
