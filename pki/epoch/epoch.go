package epoch

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Bounds on the epoch period.
const (
	MinPeriod = 100 * time.Millisecond
	MaxPeriod = 7 * 24 * time.Hour
)

// ErrSchedule is returned by New for an unusable genesis or period.
var ErrSchedule = errors.New("bad schedule")

// Phase is a part of the voting timetable inside an epoch.
type Phase int

// The phases, in order; see the package documentation.
const (
	Upload Phase = iota
	Vote
	Reveal
	Sign
	Publish
	numPhases
)

// eighths is where phase p starts, in eighths of the period; numPhases
// starts at 8, the end of the epoch.
func eighths(p Phase) int64 {
	switch p {
	case Upload:
		return 0
	case Vote:
		return 2
	case Reveal:
		return 3
	case Sign:
		return 4
	case Publish:
		return 5
	}
	return 8
}

func (p Phase) String() string {
	switch p {
	case Upload:
		return "upload"
	case Vote:
		return "vote"
	case Reveal:
		return "reveal"
	case Sign:
		return "sign"
	case Publish:
		return "publish"
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// Schedule is an epoch calendar: a genesis instant, a period and a clock.
// It is immutable and safe for concurrent use.
type Schedule struct {
	genesis time.Time
	period  time.Duration
	now     func() time.Time
	last    uint64 // the largest epoch whose start is representable
}

// New returns the schedule with epoch 0 starting at genesis and the given
// period, reading the time from now (time.Now if nil). Genesis is used as a
// wall-clock instant (any monotonic reading is dropped), so that every
// machine computes the same epochs.
func New(genesis time.Time, period time.Duration, now func() time.Time) (*Schedule, error) {
	if genesis.IsZero() {
		return nil, fmt.Errorf("epoch: new schedule: %w: zero genesis", ErrSchedule)
	}
	if period < MinPeriod || period > MaxPeriod {
		return nil, fmt.Errorf("epoch: new schedule: %w: period %v, want %v to %v", ErrSchedule, period, MinPeriod, MaxPeriod)
	}
	if now == nil {
		now = time.Now
	}
	return &Schedule{
		genesis: genesis.Round(0),
		period:  period,
		now:     now,
		last:    uint64(math.MaxInt64/int64(period)) - 1,
	}, nil
}

// Genesis returns the start of epoch 0.
func (s *Schedule) Genesis() time.Time { return s.genesis }

// Period returns the length of an epoch.
func (s *Schedule) Period() time.Duration { return s.period }

// At returns the epoch containing t; 0 for times before genesis.
func (s *Schedule) At(t time.Time) uint64 {
	e, _ := s.split(t)
	return e
}

// split returns the epoch containing t and how far into it t is.
func (s *Schedule) split(t time.Time) (uint64, time.Duration) {
	d := t.Round(0).Sub(s.genesis) // saturates; never overflows
	if d < 0 {
		return 0, 0
	}
	e := uint64(d / s.period)
	if e > s.last {
		return s.last, s.period - 1
	}
	return e, d % s.period
}

// Now returns the current epoch.
func (s *Schedule) Now() uint64 { return s.At(s.now()) }

// Start returns the first instant of epoch e. Epochs too far in the future
// to represent (about 292 years after genesis) are clamped to the last
// representable one.
func (s *Schedule) Start(e uint64) time.Time {
	e = min(e, s.last)
	return s.genesis.Add(time.Duration(e) * s.period)
}

// End returns the end of epoch e, which is the start of epoch e+1.
func (s *Schedule) End(e uint64) time.Time {
	return s.Start(e).Add(s.period)
}

// UntilNext returns the time from now until the next epoch starts.
func (s *Schedule) UntilNext() time.Duration {
	now := s.now()
	return s.End(s.At(now)).Sub(now.Round(0))
}

// offset is the start of phase p within an epoch.
func (s *Schedule) offset(p Phase) time.Duration {
	return time.Duration(int64(s.period) * eighths(p) / 8)
}

// PhaseStart returns when phase p of epoch e begins. p must be a valid
// phase.
func (s *Schedule) PhaseStart(e uint64, p Phase) time.Time {
	s.checkPhase(p)
	return s.Start(e).Add(s.offset(p))
}

// Deadline returns when phase p of epoch e ends: the deadline for what
// happens in it. p must be a valid phase.
func (s *Schedule) Deadline(e uint64, p Phase) time.Time {
	s.checkPhase(p)
	return s.Start(e).Add(s.offset(p + 1))
}

func (s *Schedule) checkPhase(p Phase) {
	if p < Upload || p >= numPhases {
		panic(fmt.Sprintf("epoch: invalid %v", p)) // a programming error, never input
	}
}

// PhaseAt returns the epoch containing t and the phase t falls in. Times
// before genesis are in the Upload phase of epoch 0.
func (s *Schedule) PhaseAt(t time.Time) (uint64, Phase) {
	e, in := s.split(t)
	p := Upload
	for p+1 < numPhases && in >= s.offset(p+1) {
		p++
	}
	return e, p
}

// Next returns the first phase boundary strictly after t: the epoch and
// phase that begin then, and when. A daemon sleeps until at and then does
// the work of phase p.
func (s *Schedule) Next(t time.Time) (e uint64, p Phase, at time.Time) {
	t = t.Round(0)
	if t.Before(s.genesis) {
		return 0, Upload, s.genesis
	}
	e, p = s.PhaseAt(t)
	if p == Publish {
		return e + 1, Upload, s.End(e)
	}
	return e, p + 1, s.PhaseStart(e, p+1)
}

// Window returns the range of epochs a moment may belong to when the
// clock reading t may be off by up to skew in either direction: the epochs
// of t-skew and t+skew, and every one in between. A mix uses it to decide
// which epochs' Sphinx keys to try, an authority which epochs to accept
// uploads for.
func (s *Schedule) Window(t time.Time, skew time.Duration) (first, last uint64) {
	skew = max(skew, 0)
	return s.At(t.Add(-skew)), s.At(t.Add(skew))
}
