package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/rotation"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

const (
	period = time.Minute
	grace  = 10 * time.Second
)

// In a synctest bubble time starts at 2000-01-01 00:00 UTC: with this
// genesis that is the start of epoch 60.
var genesis = time.Date(1999, 12, 31, 23, 0, 0, 0, time.UTC)

type retirements struct {
	mu     sync.Mutex
	epochs []uint64
}

func (r *retirements) add(e uint64) {
	r.mu.Lock()
	r.epochs = append(r.epochs, e)
	r.mu.Unlock()
}

func (r *retirements) get() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.epochs)
}

func newRotation(t *testing.T, dir string, ret *retirements, reg prometheus.Registerer) (*rotation.Rotation, *epoch.Schedule) {
	t.Helper()
	sched, err := epoch.New(genesis, period, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rotation.Config{Dir: dir, Schedule: sched, Grace: grace, Registerer: reg}
	if ret != nil {
		cfg.OnRetire = ret.add
	}
	r, err := rotation.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, sched
}

// files returns the epochs of the key files in dir, and fails on any other
// file.
func files(t *testing.T, dir string) []uint64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, e := range ents {
		var n uint64
		if _, err := fmt.Sscanf(e.Name(), "sphinx-%d.key", &n); err != nil {
			t.Fatalf("unexpected file %s", e.Name())
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for e := from; e <= to; e++ {
		out = append(out, e)
	}
	return out
}

func isZero(k *keys.SphinxPrivateKey) bool { return *k.Scalar() == [keys.ScalarSize]byte{} }

func TestNewCreatesKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "sphinx")
		r, sched := newRotation(t, dir, nil, nil)
		cur := sched.At(time.Now())
		if cur != 60 {
			t.Fatalf("bubble starts in epoch %d", cur)
		}
		if got := files(t, dir); !slices.Equal(got, span(60, 63)) {
			t.Fatalf("key files for epochs %v", got)
		}
		for e, want := range map[uint64]bool{58: false, 59: false, 60: true, 61: true, 62: false, 63: false, 1 << 63: false} {
			if _, ok := r.Key(e); ok != want {
				t.Errorf("Key(%d) ok = %v, want %v", e, ok, want)
			}
		}
		for _, e := range []uint64{60, 61} {
			pub, err := r.PublicKeys(e)
			if err != nil || len(pub) != 3 {
				t.Fatalf("PublicKeys(%d): %v %v", e, pub, err)
			}
			for x := e; x < e+3; x++ {
				k, ok := pub[x]
				if !ok || k.IsZero() {
					t.Fatalf("PublicKeys(%d) lacks epoch %d", e, x)
				}
				if priv, ok := r.Key(x); ok && !priv.Public().Equal(k) {
					t.Fatalf("public key of epoch %d differs from the private one", x)
				}
			}
			if pub[e].Equal(pub[e+1]) || pub[e+1].Equal(pub[e+2]) {
				t.Fatal("a key repeats")
			}
		}
		for _, e := range []uint64{58, 59, 62} {
			if _, err := r.PublicKeys(e); !errors.Is(err, rotation.ErrNoKey) {
				t.Errorf("PublicKeys(%d): %v", e, err)
			}
		}
		st, _ := os.Stat(dir)
		if st.Mode().Perm() != 0o700 {
			t.Errorf("key directory mode %v", st.Mode())
		}
		if n := testing.AllocsPerRun(100, func() { r.Key(60) }); n != 0 {
			t.Errorf("Key allocates %v times", n)
		}
	})
}

// TestRunThroughEpochs runs the rotation for several epochs and checks,
// after each boundary and each grace period, which keys work, which files
// exist, what OnRetire heard, that the keys published ahead are the ones
// used, and that retired keys are zeroed.
func TestRunThroughEpochs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "sphinx")
		var ret retirements
		reg := prometheus.NewRegistry()
		r, sched := newRotation(t, dir, &ret, reg)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()

		published := map[uint64]keys.SphinxPublicKey{}
		record := func(e uint64) {
			// The descriptors for e and (uploaded during e) for e+1.
			for _, d := range []uint64{e, e + 1} {
				pub, err := r.PublicKeys(d)
				if err != nil {
					t.Fatalf("epoch %d: PublicKeys(%d): %v", e, d, err)
				}
				for x, k := range pub {
					if old, ok := published[x]; ok && !old.Equal(k) {
						t.Fatalf("epoch %d: key of %d changed after it was published", e, x)
					}
					published[x] = k
				}
			}
		}
		record(60)
		prev, _ := r.Key(60)
		for e := uint64(61); e <= 66; e++ {
			time.Sleep(time.Until(sched.Start(e).Add(time.Millisecond)))
			synctest.Wait()
			record(e)
			if got := files(t, dir); !slices.Equal(got, span(e-1, e+3)) {
				t.Fatalf("epoch %d, in grace: files %v", e, got)
			}
			for x, want := range map[uint64]bool{e - 2: false, e - 1: true, e: true, e + 1: true, e + 2: false} {
				k, ok := r.Key(x)
				if ok != want {
					t.Fatalf("epoch %d, in grace: Key(%d) ok = %v", e, x, ok)
				}
				if ok && !k.Public().Equal(published[x]) {
					t.Fatalf("epoch %d: key of %d is not the one published", e, x)
				}
			}
			if k, _ := r.Key(e - 1); k != prev {
				t.Fatalf("epoch %d: the previous key changed", e)
			}
			if slices.Contains(ret.get(), e-1) {
				t.Fatalf("epoch %d: %d retired during its grace period", e, e-1)
			}

			time.Sleep(grace)
			synctest.Wait()
			if _, ok := r.Key(e - 1); ok {
				t.Fatalf("epoch %d: key of %d still in use after the grace period", e, e-1)
			}
			if got := files(t, dir); !slices.Equal(got, span(e, e+3)) {
				t.Fatalf("epoch %d, after grace: files %v", e, got)
			}
			if got := ret.get(); !slices.Equal(got, span(60, e-1)) {
				t.Fatalf("epoch %d: OnRetire heard %v", e, got)
			}
			if isZero(prev) {
				t.Fatal("retired key zeroed at once")
			}
			time.Sleep(2 * time.Second)
			synctest.Wait()
			if !isZero(prev) {
				t.Fatalf("epoch %d: retired key of %d not zeroed", e, e-1)
			}
			prev, _ = r.Key(e)
		}
		want := map[string]float64{
			"chorus_mix_rotation_keys_created_total": 4 + 6,
			"chorus_mix_rotation_keys_retired_total": 6,
			"chorus_mix_rotation_keys":               4,
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			m := mf.GetMetric()[0]
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			if w, ok := want[mf.GetName()]; ok && v != w {
				t.Errorf("%s = %v, want %v", mf.GetName(), v, w)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		r.Close()
		if _, ok := r.Key(66); ok || !isZero(prev) {
			t.Fatal("key still usable after Close")
		}
	})
}

// TestRestart: a new Rotation on the same directory uses the same keys;
// one started after a long pause erases the stale ones.
func TestRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "sphinx")
		var ret retirements
		r1, sched := newRotation(t, dir, &ret, nil)
		before, err := r1.PublicKeys(61)
		if err != nil {
			t.Fatal(err)
		}
		k60, _ := r1.Key(60)
		r1.Close()
		if !isZero(k60) {
			t.Fatal("Close did not zero the keys")
		}

		r2, _ := newRotation(t, dir, &ret, nil)
		after, err := r2.PublicKeys(61)
		if err != nil {
			t.Fatal(err)
		}
		for e, k := range before {
			if !after[e].Equal(k) {
				t.Fatalf("key of epoch %d changed across a restart", e)
			}
		}
		r2.Close()

		// Restart in the grace period of epoch 62: 61's key is back.
		time.Sleep(time.Until(sched.Start(62).Add(grace / 2)))
		r3, _ := newRotation(t, dir, &ret, nil)
		if k, ok := r3.Key(61); !ok || !k.Public().Equal(before[61]) {
			t.Fatal("previous epoch's key not restored during its grace period")
		}
		if got := ret.get(); !slices.Equal(got, []uint64{60}) {
			t.Fatalf("OnRetire heard %v", got)
		}
		if got := files(t, dir); !slices.Equal(got, span(61, 65)) {
			t.Fatalf("files %v", got)
		}
		r3.Close()

		// Ten epochs later every old key is erased at start.
		time.Sleep(10 * period)
		r4, _ := newRotation(t, dir, &ret, nil)
		cur := sched.At(time.Now())
		if got := files(t, dir); !slices.Equal(got, span(cur, cur+3)) {
			t.Fatalf("files %v", got)
		}
		if got := ret.get(); !slices.Equal(got, span(60, 65)) {
			t.Fatalf("OnRetire heard %v", got)
		}
		if _, ok := r4.Key(cur); !ok {
			t.Fatal("no current key")
		}
	})
}

func TestCorruptKeyFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "sphinx")
		r, sched := newRotation(t, dir, nil, nil)
		r.Close()
		if err := os.WriteFile(filepath.Join(dir, "sphinx-62.key"), []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := rotation.New(rotation.Config{Dir: dir, Schedule: sched, Grace: grace})
		if !errors.Is(err, keys.ErrCorrupt) {
			t.Fatalf("New with a corrupt key file: %v", err)
		}
		// Not replaced: the operator decides.
		if b, _ := os.ReadFile(filepath.Join(dir, "sphinx-62.key")); string(b) != "garbage" {
			t.Fatal("corrupt key file replaced")
		}
	})
}

// TestTempFilesErased: a key file half-written by a crash is erased.
func TestTempFilesErased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "sphinx")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".key-12345"), []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		newRotation(t, dir, nil, nil)
		if _, err := os.Stat(filepath.Join(dir, ".key-12345")); !os.IsNotExist(err) {
			t.Fatalf("temporary key file not erased: %v", err)
		}
	})
}

func TestConfig(t *testing.T) {
	sched, _ := epoch.New(genesis, period, nil)
	for _, cfg := range []rotation.Config{
		{Schedule: sched},
		{Dir: t.TempDir()},
		{Dir: t.TempDir(), Schedule: sched, Grace: -1},
		{Dir: t.TempDir(), Schedule: sched, Grace: period + 1},
		{Dir: t.TempDir(), Schedule: sched}, // mode 0755
	} {
		if _, err := rotation.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestConcurrentKey has workers look up the current key continuously
// through several real (short) epochs while Run rotates: the key of the
// epoch a worker's clock says is current is always there.
func TestConcurrentKey(t *testing.T) {
	if testing.Short() {
		t.Skip("real time")
	}
	sched, err := epoch.New(time.Now(), epoch.MinPeriod, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rotation.New(rotation.Config{Dir: filepath.Join(t.TempDir(), "k"), Schedule: sched, Grace: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 6*epoch.MinPeriod)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				e := sched.Now()
				k, ok := r.Key(e)
				if !ok {
					t.Errorf("no key for the current epoch %d", e)
					return
				}
				_ = k.Public()
			}
		})
	}
	wg.Wait()
}
