package replay

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestSetLifecycle(t *testing.T) {
	dir := t.TempDir()
	// A leftover of a creation interrupted by a crash.
	if err := os.WriteFile(filepath.Join(dir, ".replay-123.tmp"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := OpenSet(SetConfig{Dir: dir, Capacity: 1000, FPRate: 1e-6, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".replay-123.tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary file not removed: %v", err)
	}
	for e := uint64(1); e <= 3; e++ {
		for i := range uint64(100) {
			tag := tagFor(e, i)
			if seen, err := s.TestAndSet(e, &tag); seen || err != nil {
				t.Fatalf("epoch %d tag %d: %v %v", e, i, seen, err)
			}
		}
	}
	// A tag is per key: the same tag under another epoch is new.
	tag := tagFor(1, 0)
	if seen, _ := s.TestAndSet(4, &tag); seen {
		t.Fatal("tag of epoch 1 seen under epoch 4")
	}
	if seen, _ := s.TestAndSet(1, &tag); !seen {
		t.Fatal("replay not seen")
	}
	if v := metricValue(t, reg, "chorus_mix_replay_replays_total"); v != 1 {
		t.Errorf("replays_total = %v", v)
	}
	if v := metricValue(t, reg, "chorus_mix_replay_filters"); v != 4 {
		t.Errorf("filters = %v", v)
	}
	if v := metricValue(t, reg, "chorus_mix_replay_fill_ratio"); v != 0.1 {
		t.Errorf("fill_ratio = %v", v)
	}
	if v := metricValue(t, reg, "chorus_mix_replay_memory_bytes"); v != float64(s.MemoryBytes()) || v <= 4*headerSize {
		t.Errorf("memory_bytes = %v", v)
	}

	if err := s.Retire(2); err != nil {
		t.Fatal(err)
	}
	for _, e := range []uint64{1, 2} {
		if _, err := s.TestAndSet(e, &tag); !errors.Is(err, ErrRetired) {
			t.Errorf("epoch %d after Retire(2): %v", e, err)
		}
		if _, err := os.Stat(filepath.Join(dir, fileName(e))); !os.IsNotExist(err) {
			t.Errorf("epoch %d file after Retire: %v", e, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TestAndSet(3, &tag); !errors.Is(err, ErrClosed) {
		t.Errorf("TestAndSet after Close: %v", err)
	}

	// Restart: epoch 3's tags are still refused.
	s, err = OpenSet(SetConfig{Dir: dir, Capacity: 5000, FPRate: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range uint64(100) {
		tag := tagFor(3, i)
		if seen, err := s.TestAndSet(3, &tag); !seen || err != nil {
			t.Fatalf("epoch 3 tag %d after restart: %v %v", i, seen, err)
		}
	}
	f, err := s.Filter(3)
	if err != nil || f.Capacity() != 1000 || f.Count() != 100 {
		t.Fatalf("epoch 3 filter after restart: %v", err)
	}
	// A new filter gets the new capacity, and SetCapacity changes it.
	if f, _ := s.Filter(5); f.Capacity() != 5000 {
		t.Errorf("new filter capacity %d", f.Capacity())
	}
	if err := s.SetCapacity(0); !errors.Is(err, ErrParams) {
		t.Errorf("SetCapacity(0): %v", err)
	}
	if err := s.SetCapacity(7000); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.Filter(6); f.Capacity() != 7000 {
		t.Errorf("new filter capacity %d", f.Capacity())
	}
}

func TestSetFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := OpenSet(SetConfig{Dir: t.TempDir(), Capacity: 10, FPRate: 1e-6, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range uint64(15) {
		tag := tagFor(1, i)
		_, err := s.TestAndSet(1, &tag)
		if (i < 10) != (err == nil) || (i >= 10 && !errors.Is(err, ErrFull)) {
			t.Fatalf("tag %d: %v", i, err)
		}
	}
	if v := metricValue(t, reg, "chorus_mix_replay_refused_full_total"); v != 5 {
		t.Errorf("refused_full_total = %v", v)
	}
	if v := metricValue(t, reg, "chorus_mix_replay_fill_ratio"); v != 1 {
		t.Errorf("fill_ratio = %v", v)
	}
}

// TestSetConcurrent has workers check tags of three epochs while the
// oldest epochs are retired under them.
func TestSetConcurrent(t *testing.T) {
	s, err := OpenSet(SetConfig{Dir: t.TempDir(), Capacity: 100_000, FPRate: 1e-6})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	for w := range uint64(4) {
		wg.Go(func() {
			for i := range uint64(4000) {
				e := i/1000 + w%2
				tag := tagFor(w, i)
				if _, err := s.TestAndSet(e, &tag); err != nil && !errors.Is(err, ErrRetired) {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for e := range uint64(4) {
			time.Sleep(time.Millisecond)
			if err := s.Retire(e); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
}

func TestSetRun(t *testing.T) {
	s, err := OpenSet(SetConfig{Dir: t.TempDir(), Capacity: 1000, FPRate: 1e-6, SyncInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for i := range uint64(100) {
		tag := tagFor(1, i)
		s.TestAndSet(1, &tag)
		time.Sleep(50 * time.Microsecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestSetBadConfig(t *testing.T) {
	for _, cfg := range []SetConfig{
		{Dir: t.TempDir(), Capacity: 0, FPRate: 1e-6},
		{Dir: t.TempDir(), Capacity: 10, FPRate: 1},
		{Dir: t.TempDir(), Capacity: 10, FPRate: 1e-6, SyncInterval: -1},
	} {
		if _, err := OpenSet(cfg); !errors.Is(err, ErrParams) {
			t.Errorf("OpenSet(%+v): %v", cfg, err)
		}
	}
}
