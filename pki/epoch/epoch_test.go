package epoch_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chorus-mixnet/chorus/pki/epoch"
)

var genesis = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mustNew(t *testing.T, period time.Duration, now func() time.Time) *epoch.Schedule {
	t.Helper()
	s, err := epoch.New(genesis, period, now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewRejects(t *testing.T) {
	for _, tt := range []struct {
		g time.Time
		p time.Duration
	}{
		{time.Time{}, time.Minute},
		{genesis, 0},
		{genesis, -time.Second},
		{genesis, 99 * time.Millisecond},
		{genesis, 8 * 24 * time.Hour},
	} {
		if _, err := epoch.New(tt.g, tt.p, nil); !errors.Is(err, epoch.ErrSchedule) {
			t.Errorf("New(%v, %v): %v", tt.g, tt.p, err)
		}
	}
}

func TestAtBoundaries(t *testing.T) {
	const p = 20 * time.Minute
	s := mustNew(t, p, nil)
	for _, tt := range []struct {
		t    time.Time
		want uint64
	}{
		{genesis.Add(-100 * 24 * time.Hour), 0},
		{genesis.Add(-time.Nanosecond), 0},
		{genesis, 0},
		{genesis.Add(p - time.Nanosecond), 0},
		{genesis.Add(p), 1},
		{genesis.Add(7*p - 1), 6},
		{genesis.Add(7 * p), 7},
		{genesis.Add(1000*p + p/2), 1000},
		// In another zone, and with a monotonic reading: the same instant.
		{genesis.Add(3 * p).In(time.FixedZone("x", 5*3600)), 3},
	} {
		if got := s.At(tt.t); got != tt.want {
			t.Errorf("At(%v) = %d, want %d", tt.t, got, tt.want)
		}
	}
	for _, e := range []uint64{0, 1, 2, 1 << 20} {
		if s.At(s.Start(e)) != e || s.At(s.End(e).Add(-1)) != e || s.At(s.End(e)) != e+1 {
			t.Errorf("epoch %d: start/end disagree with At", e)
		}
		if s.End(e).Sub(s.Start(e)) != p {
			t.Errorf("epoch %d is not one period long", e)
		}
	}
	// Absurd epochs clamp instead of overflowing.
	far := s.Start(^uint64(0))
	if far.Before(s.Start(1<<20)) || s.At(far) == 0 {
		t.Errorf("far epoch start %v", far)
	}
	if e := s.At(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)); e == 0 || s.Start(e).After(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("far future epoch %d", e)
	}
}

func TestPhases(t *testing.T) {
	// A period that is not a multiple of 8 nanoseconds checks rounding.
	for _, p := range []time.Duration{20 * time.Minute, time.Second, 100*time.Millisecond + 3} {
		s := mustNew(t, p, nil)
		const e = 5
		start := s.Start(e)
		want := []struct {
			ph       epoch.Phase
			from, to time.Duration
		}{
			{epoch.Upload, 0, p * 2 / 8},
			{epoch.Vote, p * 2 / 8, p * 3 / 8},
			{epoch.Reveal, p * 3 / 8, p * 4 / 8},
			{epoch.Sign, p * 4 / 8, p * 5 / 8},
			{epoch.Publish, p * 5 / 8, p},
		}
		for _, w := range want {
			if got := s.PhaseStart(e, w.ph); !got.Equal(start.Add(w.from)) {
				t.Errorf("%v: PhaseStart(%v) = %v, want %v", p, w.ph, got.Sub(start), w.from)
			}
			if got := s.Deadline(e, w.ph); !got.Equal(start.Add(w.to)) {
				t.Errorf("%v: Deadline(%v) = %v, want %v", p, w.ph, got.Sub(start), w.to)
			}
			for _, at := range []time.Duration{w.from, w.to - 1} {
				ge, gp := s.PhaseAt(start.Add(at))
				if ge != e || gp != w.ph {
					t.Errorf("%v: PhaseAt(+%v) = %d %v, want %d %v", p, at, ge, gp, e, w.ph)
				}
			}
		}
		if ge, gp := s.PhaseAt(s.End(e)); ge != e+1 || gp != epoch.Upload {
			t.Errorf("PhaseAt(end) = %d %v", ge, gp)
		}
	}
	s := mustNew(t, time.Minute, nil)
	if e, p := s.PhaseAt(genesis.Add(-time.Hour)); e != 0 || p != epoch.Upload {
		t.Errorf("before genesis: %d %v", e, p)
	}
	if epoch.Sign.String() != "sign" || epoch.Phase(9).String() != "phase(9)" {
		t.Error("Phase.String")
	}
}

func TestNext(t *testing.T) {
	s := mustNew(t, 8*time.Second, nil)
	if e, p, at := s.Next(genesis.Add(-time.Minute)); e != 0 || p != epoch.Upload || !at.Equal(genesis) {
		t.Errorf("before genesis: %d %v %v", e, p, at)
	}
	// Walk three epochs boundary by boundary, starting exactly on one.
	now := s.Start(2)
	seq := []epoch.Phase{epoch.Vote, epoch.Reveal, epoch.Sign, epoch.Publish, epoch.Upload}
	wantEpoch := uint64(2)
	for i := range 15 {
		e, p, at := s.Next(now)
		if p != seq[i%5] {
			t.Fatalf("step %d: phase %v, want %v", i, p, seq[i%5])
		}
		if p == epoch.Upload {
			wantEpoch++
		}
		if e != wantEpoch || !at.After(now) || !at.Equal(s.PhaseStart(e, p)) {
			t.Fatalf("step %d: %d %v at %v", i, e, p, at)
		}
		if ge, gp := s.PhaseAt(at); ge != e || gp != p {
			t.Fatalf("step %d: PhaseAt(next) = %d %v", i, ge, gp)
		}
		// Just before the boundary, Next names the same one.
		if e2, p2, at2 := s.Next(at.Add(-1)); e2 != e || p2 != p || !at2.Equal(at) {
			t.Fatalf("step %d: Next just before the boundary differs", i)
		}
		now = at
	}
}

func TestWindowSkew(t *testing.T) {
	const p = 20 * time.Minute
	s := mustNew(t, p, nil)
	skew := 10 * time.Second
	for _, tt := range []struct {
		t           time.Time
		first, last uint64
	}{
		{s.Start(4).Add(p / 2), 4, 4},
		{s.Start(4).Add(5 * time.Second), 3, 4},  // just after a boundary
		{s.Start(5).Add(-5 * time.Second), 4, 5}, // just before one
		{s.Start(5).Add(-skew), 4, 5},            // exactly skew before
		{s.Start(5).Add(-skew - 1), 4, 4},
		{genesis, 0, 0},
		{genesis.Add(-time.Hour), 0, 0},
	} {
		if f, l := s.Window(tt.t, skew); f != tt.first || l != tt.last {
			t.Errorf("Window(%v) = %d..%d, want %d..%d", tt.t.Sub(genesis), f, l, tt.first, tt.last)
		}
	}
	if f, l := s.Window(s.Start(5), -time.Second); f != 5 || l != 5 {
		t.Errorf("negative skew: %d..%d", f, l)
	}
	// Two machines whose clocks differ by less than the skew agree that
	// their epochs are within each other's windows.
	for off := -skew; off <= skew; off += time.Second {
		ours := s.Start(9).Add(-2 * time.Second)
		theirs := ours.Add(off)
		f, l := s.Window(ours, skew)
		if e := s.At(theirs); e < f || e > l {
			t.Errorf("offset %v: their epoch %d outside our window %d..%d", off, e, f, l)
		}
	}
}

func TestInjectedClock(t *testing.T) {
	now := genesis.Add(3*time.Minute + 30*time.Second)
	s := mustNew(t, time.Minute, func() time.Time { return now })
	if s.Now() != 3 || s.UntilNext() != 30*time.Second {
		t.Fatalf("Now %d, UntilNext %v", s.Now(), s.UntilNext())
	}
	now = genesis.Add(-5 * time.Second)
	if s.Now() != 0 || s.UntilNext() != time.Minute+5*time.Second {
		t.Fatalf("before genesis: Now %d, UntilNext %v", s.Now(), s.UntilNext())
	}
	if !s.Genesis().Equal(genesis) || s.Period() != time.Minute {
		t.Fatal("accessors")
	}
}

// TestSynctest runs a short-epoch schedule on the fake clock of a synctest
// bubble, the way a daemon's loop would: sleep until the next boundary and
// check where it lands.
func TestSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		// Genesis a little in the past, not aligned to anything.
		s, err := epoch.New(start.Add(-1700*time.Millisecond), 2*time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Now() != 0 {
			t.Fatalf("epoch %d at start", s.Now())
		}
		if d := s.UntilNext(); d != 300*time.Millisecond {
			t.Fatalf("UntilNext = %v", d)
		}
		time.Sleep(s.UntilNext())
		if s.Now() != 1 || s.UntilNext() != 2*time.Second {
			t.Fatalf("after sleeping: epoch %d, next in %v", s.Now(), s.UntilNext())
		}
		var seen []epoch.Phase
		timer := time.NewTimer(0)
		<-timer.C
		for s.Now() < 4 {
			e, p, at := s.Next(time.Now())
			timer.Reset(time.Until(at))
			<-timer.C
			if ge, gp := s.PhaseAt(time.Now()); ge != e || gp != p {
				t.Fatalf("woke in %d %v, want %d %v", ge, gp, e, p)
			}
			seen = append(seen, p)
		}
		if len(seen) != 15 {
			t.Fatalf("saw %d phase boundaries in 3 epochs: %v", len(seen), seen)
		}
		if got := time.Since(start); got != 300*time.Millisecond+6*time.Second {
			t.Fatalf("elapsed %v", got)
		}
	})
}
