package delay_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-mixnet/chorus/mix/delay"
)

type pkt struct{ id int }

type event struct {
	id int
	at time.Time
}

// model is the slow, obvious queue: a slice kept sorted by release time
// and push order.
type model struct {
	maxPackets int
	maxBytes   int64
	maxDelay   time.Duration
	seq        int
	held       []modelItem
	bytes      int64
	released   []event
}

type modelItem struct {
	id, seq, size int
	at, pushed    time.Time
}

func (m *model) push(id, size int, arrival time.Time, d time.Duration, now time.Time) error {
	if d > m.maxDelay {
		return delay.ErrTooLate
	}
	if len(m.held)+1 > m.maxPackets || m.bytes+int64(size) > m.maxBytes {
		return delay.ErrFull
	}
	if arrival.IsZero() || arrival.After(now) {
		arrival = now
	}
	m.seq++
	m.held = append(m.held, modelItem{id: id, seq: m.seq, size: size, at: arrival.Add(max(d, 0)), pushed: now})
	slices.SortStableFunc(m.held, func(a, b modelItem) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	m.bytes += int64(size)
	return nil
}

// advance releases everything due by now: each packet at its release
// time, or when it was pushed if that was already past.
func (m *model) advance(now time.Time) {
	for len(m.held) > 0 && !m.held[0].at.After(now) {
		it := m.held[0]
		at := it.at
		if at.Before(it.pushed) {
			at = it.pushed
		}
		m.released = append(m.released, event{it.id, at})
		m.bytes -= int64(it.size)
		m.held = m.held[1:]
	}
}

// TestAgainstModel pushes packets with random delays (some beyond the
// maximum), sizes (some beyond the bounds) and arrival times, moves the
// clock at random and changes the maximum now and then, and checks after
// every step that the queue dropped, held and released exactly what the
// model did, at the same instants.
func TestAgainstModel(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { runModel(t, seed) })
		})
	}
}

func runModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	m := &model{maxPackets: 20 + rng.IntN(30), maxBytes: int64(2000 + rng.IntN(4000)), maxDelay: 100 * time.Millisecond}
	var mu sync.Mutex
	var got []event
	q, err := delay.New(delay.Config{MaxPackets: m.maxPackets, MaxBytes: m.maxBytes, MaxDelay: m.maxDelay},
		func(p pkt) {
			mu.Lock()
			got = append(got, event{p.id, time.Now()})
			mu.Unlock()
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- q.Run(ctx) }()

	drops := map[error]int{}
	for step := range 4000 {
		now := time.Now()
		switch r := rng.IntN(100); {
		case r < 25:
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
		case r < 28:
			m.maxDelay = time.Duration(20+rng.IntN(150)) * time.Millisecond
			q.SetMaxDelay(m.maxDelay)
		default:
			size := rng.IntN(400)
			d := time.Duration(rng.IntN(160)-5) * time.Millisecond // a few negative
			arrival := now.Add(-time.Duration(rng.IntN(8)) * time.Millisecond)
			switch rng.IntN(20) {
			case 0:
				arrival = time.Time{}
			case 1:
				arrival = now.Add(time.Second) // a clock ahead: counts as now
			}
			err := q.Push(pkt{step}, size, arrival, d)
			want := m.push(step, size, arrival, d, now)
			if !errors.Is(err, want) || (err == nil) != (want == nil) {
				t.Fatalf("step %d: Push(size %d, delay %v) = %v, model says %v", step, size, d, err, want)
			}
			if err != nil {
				drops[err]++
			}
		}
		synctest.Wait()
		m.advance(time.Now())
		mu.Lock()
		if !slices.Equal(got, m.released) {
			t.Fatalf("step %d at %v: released\n%v\nmodel released\n%v", step, time.Now(), tail(got), tail(m.released))
		}
		mu.Unlock()
		if q.Len() != len(m.held) || q.Bytes() != m.bytes {
			t.Fatalf("step %d: queue holds %d packets, %d bytes; model %d, %d", step, q.Len(), q.Bytes(), len(m.held), m.bytes)
		}
	}
	if drops[delay.ErrFull] == 0 || drops[delay.ErrTooLate] == 0 || len(m.released) < 1000 {
		t.Errorf("weak run: %d full, %d too late, %d released", drops[delay.ErrFull], drops[delay.ErrTooLate], len(m.released))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func tail(ev []event) []event { return ev[max(0, len(ev)-5):] }

// recorder collects released packets from Run's goroutine.
type recorder struct {
	mu  sync.Mutex
	evs []event
}

func (r *recorder) release(p pkt) {
	r.mu.Lock()
	r.evs = append(r.evs, event{p.id, time.Now()})
	r.mu.Unlock()
}

func (r *recorder) events() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

func (r *recorder) ids() []int {
	var ids []int
	for _, e := range r.events() {
		ids = append(ids, e.id)
	}
	return ids
}

func TestRunStopsAndResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q, err := delay.New(delay.Config{MaxPackets: 10, MaxBytes: 1000, MaxDelay: time.Minute}, rec.release)
		if err != nil {
			t.Fatal(err)
		}
		// Pushed before Run: held until it runs.
		q.Push(pkt{1}, 10, time.Time{}, 0)
		q.Push(pkt{2}, 10, time.Time{}, 10*time.Second)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- q.Run(ctx) }()
		synctest.Wait()
		if err := q.Run(ctx); !errors.Is(err, delay.ErrRunning) {
			t.Fatalf("second Run: %v", err)
		}
		if !slices.Equal(rec.ids(), []int{1}) {
			t.Fatalf("released %v", rec.ids())
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		if q.Len() != 1 || q.Bytes() != 10 {
			t.Fatalf("after Run returned: %d packets, %d bytes", q.Len(), q.Bytes())
		}
		// A new Run releases what is overdue at once.
		ctx, cancel = context.WithCancel(t.Context())
		defer cancel()
		go q.Run(ctx)
		synctest.Wait()
		if !slices.Equal(rec.ids(), []int{1, 2}) || q.Len() != 0 || q.Bytes() != 0 {
			t.Fatalf("released %v, %d left", rec.ids(), q.Len())
		}
	})
}

// TestEarlierPacketWakesRun pushes a packet due before the one Run is
// waiting for.
func TestEarlierPacketWakesRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q, _ := delay.New(delay.Config{MaxPackets: 10, MaxBytes: 1000, MaxDelay: time.Hour}, rec.release)
		go q.Run(t.Context())
		start := time.Now()
		q.Push(pkt{1}, 1, start, time.Hour)
		synctest.Wait()
		q.Push(pkt{2}, 1, start, time.Second)
		time.Sleep(2 * time.Hour)
		want := []event{{2, start.Add(time.Second)}, {1, start.Add(time.Hour)}}
		if got := rec.events(); !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

func TestConfig(t *testing.T) {
	release := func(pkt) {}
	for _, tt := range []struct {
		cfg     delay.Config
		release func(pkt)
	}{
		{delay.Config{MaxPackets: 1, MaxBytes: 1}, nil},
		{delay.Config{MaxPackets: 0, MaxBytes: 1}, release},
		{delay.Config{MaxPackets: 1, MaxBytes: 0}, release},
		{delay.Config{MaxPackets: 1, MaxBytes: 1, MaxDelay: -1}, release},
	} {
		if _, err := delay.New(tt.cfg, tt.release); err == nil {
			t.Errorf("New(%+v) accepted", tt.cfg)
		}
	}
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		q, err := delay.New(delay.Config{MaxPackets: 2, MaxBytes: 100, MaxDelay: time.Second, Registerer: reg}, func(pkt) {})
		if err != nil {
			t.Fatal(err)
		}
		q.Push(pkt{}, 10, time.Time{}, time.Millisecond)
		q.Push(pkt{}, 20, time.Time{}, time.Millisecond)
		q.Push(pkt{}, 1, time.Time{}, time.Millisecond)      // full
		q.Push(pkt{}, 1, time.Time{}, 2*time.Second)         // too late
		q.Push(pkt{}, 1, time.Time{}, 1001*time.Millisecond) // too late
		want := map[string]float64{
			"chorus_mix_delay_queue_packets":                    2,
			"chorus_mix_delay_queue_bytes":                      30,
			`chorus_mix_delay_dropped_total{reason="full"}`:     1,
			`chorus_mix_delay_dropped_total{reason="too_late"}`: 2,
			"chorus_mix_delay_released_total":                   0,
			"chorus_mix_delay_release_lateness_seconds_count":   0,
		}
		check(t, reg, want)
		go q.Run(t.Context())
		time.Sleep(time.Second)
		want["chorus_mix_delay_queue_packets"] = 0
		want["chorus_mix_delay_queue_bytes"] = 0
		want["chorus_mix_delay_released_total"] = 2
		want["chorus_mix_delay_release_lateness_seconds_count"] = 2
		check(t, reg, want)
	})
}

func check(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += fmt.Sprintf("{%s=%q}", l.GetName(), l.GetValue())
			}
			switch {
			case m.GetCounter() != nil:
				got[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[name] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[name+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// TestConcurrentPush has several goroutines push while Run releases; every
// accepted packet comes out exactly once.
func TestConcurrentPush(t *testing.T) {
	var out sync.Map
	var n atomic.Int64
	q, err := delay.New(delay.Config{MaxPackets: 1000, MaxBytes: 1 << 20, MaxDelay: 5 * time.Millisecond},
		func(p pkt) {
			if _, dup := out.LoadOrStore(p.id, true); dup {
				t.Errorf("packet %d released twice", p.id)
			}
			n.Add(1)
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- q.Run(ctx) }()
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 0))
			for i := range 2000 {
				if q.Push(pkt{w*10000 + i}, 100, time.Now(), time.Duration(rng.IntN(5000))*time.Microsecond) == nil {
					accepted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	for deadline := time.Now().Add(10 * time.Second); n.Load() < accepted.Load() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if n.Load() != accepted.Load() || q.Len() != 0 || q.Bytes() != 0 {
		t.Fatalf("accepted %d, released %d, %d left", accepted.Load(), n.Load(), q.Len())
	}
}
