package replay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrRetired: the epoch's filter was retired with its key; packets for it
// must be dropped.
var ErrRetired = errors.New("replay: epoch retired")

// DefaultSyncInterval is how often Set.Run syncs the filters to disk when
// SetConfig.SyncInterval is zero.
const DefaultSyncInterval = 10 * time.Second

// SetConfig configures a Set.
type SetConfig struct {
	// Dir holds one file per epoch and nothing else of importance: files
	// that look like a filter's are opened, and removed on Retire.
	Dir string
	// Capacity is how many tags a newly created filter holds; size it as
	// the expected packet rate times the key's lifetime (epoch plus grace)
	// with headroom. SetCapacity changes it for filters created later.
	Capacity uint64
	// FPRate is the false-positive rate a new filter has when it holds
	// Capacity tags, from MinFPRate to MaxFPRate.
	FPRate float64
	// SyncInterval is how often Run syncs the filters to disk: the window
	// of tags a power failure can lose. Zero means DefaultSyncInterval.
	SyncInterval time.Duration
	// Logger receives sync failures; nil discards.
	Logger *slog.Logger
	// Registerer receives the chorus_mix_replay_* metrics; nil registers
	// nothing.
	Registerer prometheus.Registerer
}

// Set holds the replay filters of a mix, one per epoch (one per Sphinx
// key), creating each on first use and removing it when its key is
// retired. It is safe for concurrent use.
type Set struct {
	dir      string
	fpRate   float64
	interval time.Duration
	log      *slog.Logger
	m        *metrics

	mu       sync.RWMutex
	filters  map[uint64]*Filter
	capacity uint64
	retired  bool   // some epoch was retired ...
	floor    uint64 // ... and every epoch up to floor is gone
	closed   bool
}

// OpenSet opens every filter file already in cfg.Dir, so a damaged one
// stops the node at start (an error wrapping ErrCorrupt) instead of at its
// epoch's first packet. Leftovers of an interrupted creation are removed.
func OpenSet(cfg SetConfig) (*Set, error) {
	if _, _, err := geometry(cfg.Capacity, cfg.FPRate); err != nil {
		return nil, fmt.Errorf("open replay set: %w", err)
	}
	if cfg.SyncInterval < 0 {
		return nil, fmt.Errorf("open replay set: %w: negative sync interval", ErrParams)
	}
	s := &Set{
		dir:      cfg.Dir,
		fpRate:   cfg.FPRate,
		interval: cfg.SyncInterval,
		log:      cfg.Logger,
		capacity: cfg.Capacity,
		filters:  make(map[uint64]*Filter),
	}
	if s.interval == 0 {
		s.interval = DefaultSyncInterval
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.open(cfg); err != nil {
		s.Close()
		return nil, fmt.Errorf("open replay set: %w", err)
	}
	return s, nil
}

// open opens the filters already in the directory and registers the
// metrics.
func (s *Set) open(cfg SetConfig) error {
	if err := os.MkdirAll(cfg.Dir, dirMode); err != nil {
		return err
	}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return err
	}
	for _, ent := range entries {
		name := ent.Name()
		if strings.HasPrefix(name, ".replay-") && strings.HasSuffix(name, ".tmp") {
			if err := os.Remove(filepath.Join(cfg.Dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			continue
		}
		e, ok := parseFileName(name)
		if !ok {
			continue
		}
		f, err := Open(cfg.Dir, e, cfg.Capacity, cfg.FPRate)
		if err != nil {
			return err
		}
		s.filters[e] = f
	}
	s.m, err = newMetrics(cfg.Registerer, s)
	return err
}

// TestAndSet checks and records tag in epoch's filter (see
// Filter.TestAndSet), creating the filter on first use. Replays and
// refusals for a full filter are counted. It returns ErrRetired for an
// epoch at or below the last retired one.
func (s *Set) TestAndSet(epoch uint64, tag *[32]byte) (seen bool, err error) {
	s.mu.RLock()
	f := s.filters[epoch]
	s.mu.RUnlock()
	if f == nil {
		if f, err = s.Filter(epoch); err != nil {
			return false, err
		}
	}
	seen, err = f.TestAndSet(tag)
	switch {
	case seen:
		s.m.replay()
	case errors.Is(err, ErrFull):
		s.m.full()
	case errors.Is(err, ErrClosed):
		err = ErrRetired // retired (or the set closed) while we looked
	}
	return seen, err
}

// Filter returns epoch's filter, opening or creating it. The Set owns it:
// do not close it.
func (s *Set) Filter(epoch uint64) (*Filter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.retired && epoch <= s.floor {
		return nil, ErrRetired
	}
	if f := s.filters[epoch]; f != nil {
		return f, nil
	}
	f, err := Open(s.dir, epoch, s.capacity, s.fpRate)
	if err != nil {
		return nil, err
	}
	s.filters[epoch] = f
	return f, nil
}

// SetCapacity sets the capacity of filters created from now on, for
// instance when a new document changes the expected packet rate. Filters
// that exist keep theirs.
func (s *Set) SetCapacity(capacity uint64) error {
	if _, _, err := geometry(capacity, s.fpRate); err != nil {
		return fmt.Errorf("set replay capacity: %w", err)
	}
	s.mu.Lock()
	s.capacity = capacity
	s.mu.Unlock()
	return nil
}

// Retire forgets the filters of epoch and of every earlier epoch: closes
// them and erases their files (Remove). Later TestAndSet calls for those
// epochs return ErrRetired. Call it when the epoch's key is retired; it
// is the rotation's OnRetire.
func (s *Set) Retire(epoch uint64) error {
	s.mu.Lock()
	if !s.retired || epoch > s.floor {
		s.retired, s.floor = true, epoch
	}
	var gone []*Filter
	for e, f := range s.filters {
		if e <= epoch {
			gone = append(gone, f)
			delete(s.filters, e)
		}
	}
	s.mu.Unlock()

	var errs []error
	for _, f := range gone {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	// Erase every file at or below the floor, including any that an
	// earlier Retire failed to remove.
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		errs = append(errs, err)
	}
	for _, ent := range entries {
		if e, ok := parseFileName(ent.Name()); ok && e <= epoch {
			if err := Remove(s.dir, e); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("retire replay filters: %w", err)
	}
	return nil
}

// Sync syncs every open filter (see Filter.Sync).
func (s *Set) Sync() error {
	var errs []error
	for _, f := range s.snapshot() {
		if err := f.Sync(); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run syncs the filters every SyncInterval until ctx is done, then once
// more, and returns nil. Sync failures are logged and counted; they do not
// stop it (the tags are still in the page cache and the kernel keeps
// trying to write them back).
func (s *Set) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.sync()
			return nil
		case <-t.C:
			s.sync()
		}
	}
}

func (s *Set) sync() {
	if err := s.Sync(); err != nil {
		s.m.syncFailed()
		s.log.Error("replay filter sync failed", "err", err)
	}
}

// Close syncs and closes every filter; files stay for the next start. It
// is idempotent.
func (s *Set) Close() error {
	s.mu.Lock()
	s.closed = true
	gone := s.filters
	s.filters = map[uint64]*Filter{}
	s.mu.Unlock()
	var errs []error
	for _, f := range gone {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// MemoryBytes returns the memory mapped by the open filters.
func (s *Set) MemoryBytes() int64 {
	var n int64
	for _, f := range s.snapshot() {
		n += f.MemoryBytes()
	}
	return n
}

// fillRatio returns the largest Count/Capacity among the open filters:
// at 1 the fullest filter refuses new packets.
func (s *Set) fillRatio() float64 {
	var r float64
	for _, f := range s.snapshot() {
		r = max(r, float64(f.Count())/float64(f.Capacity()))
	}
	return r
}

func (s *Set) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.filters)
}

func (s *Set) snapshot() []*Filter {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Filter, 0, len(s.filters))
	for _, f := range s.filters {
		out = append(out, f)
	}
	return out
}
