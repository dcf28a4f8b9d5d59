package egress

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/pki"
)

// Kind is the kind of decoy a clock asks for.
type Kind uint8

// Decoy kinds.
const (
	// Loop: a packet routed through the network back to the client's own
	// mailbox (client/route Loop).
	Loop Kind = 1 + iota
	// Drop: a packet to a random provider's drop recipient, which
	// discards it (client/route Drop).
	Drop
)

func (k Kind) String() string {
	switch k {
	case Loop:
		return "loop"
	case Drop:
		return "drop"
	}
	return "invalid"
}

// Packets builds what the Poisson clocks send. Sender calls it from its Run
// goroutine only, one call at a time. Every packet must have the current
// geometry's packet length, real or decoy.
type Packets interface {
	// NextReal returns the next queued real packet, ready to send, or ok
	// false if there is none (or it could not be built): the λP slot then
	// carries a drop decoy.
	NextReal() (pkt []byte, ok bool)
	// MakeDecoy builds a decoy of the given kind.
	MakeDecoy(kind Kind) ([]byte, error)
}

// Control fills the constant-rate control slots.
type Control interface {
	// NextControl returns the command for the next slot: a
	// link.RetrieveMessage, link.MessageAck, link.GetConsensus or
	// link.NoOp; nil means NoOp. Called from Sender's Run goroutine only.
	NextControl() link.Command
}

// Sink is the provider link; *link.Conn is one.
type Sink interface {
	Send(ctx context.Context, cmd link.Command) error
}

// Errors returned by Run.
var (
	// ErrRunning: Run was called while another Run is active.
	ErrRunning = errors.New("egress: already running")
	// ErrControlCommand: Control returned a command that may not take a
	// control slot (such as a SendPacket, which only the Poisson clocks
	// send).
	ErrControlCommand = errors.New("egress: command not allowed in a control slot")
)

// Config is what a Sender needs.
type Config struct {
	// Parameters are the current document's traffic parameters; Sender
	// uses LambdaPMean, LambdaLMean, LambdaDMean and RetrievalInterval.
	// SetParameters changes them.
	Parameters pki.Parameters
	Packets    Packets
	Control    Control
	Sink       Sink
	// Rand is the source of the clocks' intervals; nil means ChaCha8
	// seeded from crypto/rand. Tests pass a seeded source.
	Rand rand.Source
	// Logger receives rare operational messages (never per-packet data);
	// nil discards them.
	Logger *slog.Logger
}

// Sender runs the client's egress clocks: it is the only writer to the
// provider link.
type Sender struct {
	packets Packets
	control Control
	sink    Sink
	logger  *slog.Logger
	rng     *rand.Rand // Run's goroutine only

	mu     sync.Mutex
	params pki.Parameters
	update chan struct{} // one pending wake for Run after SetParameters

	running atomic.Bool
}

// New returns a Sender; it starts nothing.
func New(cfg Config) (*Sender, error) {
	var errs []error
	if err := cfg.Parameters.Validate(); err != nil {
		errs = append(errs, err)
	}
	if cfg.Packets == nil {
		errs = append(errs, errors.New("no packet builder"))
	}
	if cfg.Control == nil {
		errs = append(errs, errors.New("no control source"))
	}
	if cfg.Sink == nil {
		errs = append(errs, errors.New("no sink"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("egress: new sender: %w", err)
	}
	src := cfg.Rand
	if src == nil {
		var seed [32]byte
		_, _ = crand.Read(seed[:]) // never fails (crypto/rand crashes the program instead)
		src = rand.NewChaCha8(seed)
		clear(seed[:])
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Sender{
		packets: cfg.Packets,
		control: cfg.Control,
		sink:    cfg.Sink,
		logger:  logger,
		rng:     rand.New(src),
		params:  cfg.Parameters,
		update:  make(chan struct{}, 1),
	}, nil
}

// SetParameters switches the clocks to the rates of a new document. It is
// safe to call at any time, from any goroutine; a running Run redraws its
// pending ticks at once.
func (s *Sender) SetParameters(p pki.Parameters) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("egress: set parameters: %w", err)
	}
	s.mu.Lock()
	s.params = p
	s.mu.Unlock()
	select {
	case s.update <- struct{}{}:
	default:
	}
	return nil
}

func (s *Sender) parameters() pki.Parameters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.params
}

// The clocks, in the order Run fires clocks that are due at the same
// instant.
const (
	clockP = iota // λP: a real packet, else a drop decoy
	clockL        // λL: a loop decoy
	clockD        // λD: a drop decoy
	clockR        // retrieval: a control command
	numClocks
)

// schedule is Run's state: each clock's mean interval and next tick.
type schedule struct {
	mean [numClocks]time.Duration
	next [numClocks]time.Time
}

func means(p pki.Parameters) [numClocks]time.Duration {
	return [numClocks]time.Duration{p.LambdaPMean, p.LambdaLMean, p.LambdaDMean, p.RetrievalInterval}
}

// Run sends on the clocks until ctx ends (it then returns nil) or the sink
// fails (it returns the error; the caller reconnects and runs a new
// Sender or this one again). Only one Run may be active.
func (s *Sender) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)

	var sch schedule
	now := time.Now()
	sch.mean = means(s.parameters())
	for c := range numClocks {
		sch.next[c] = now.Add(s.interval(c, sch.mean[c]))
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var decoysFailing bool
	for {
		if ctx.Err() != nil {
			return nil
		}
		now = time.Now()
		c := sch.earliest()
		if !sch.next[c].After(now) {
			if err := s.fire(ctx, c, &decoysFailing); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			sch.advance(c, time.Now(), s.interval(c, sch.mean[c]))
			continue
		}
		timer.Reset(sch.next[c].Sub(now))
		select {
		case <-ctx.Done():
			return nil
		case <-s.update:
			sch.reschedule(means(s.parameters()), time.Now(), s.interval)
		case <-timer.C:
		}
	}
}

// interval draws clock c's next interval: exponential with the given mean
// for the Poisson clocks, the mean itself for retrieval.
func (s *Sender) interval(c int, mean time.Duration) time.Duration {
	if c == clockR {
		return mean
	}
	v := s.rng.ExpFloat64() * float64(mean)
	if v > math.MaxInt64/2 {
		v = math.MaxInt64 / 2
	}
	return time.Duration(v)
}

func (sch *schedule) earliest() int {
	c := 0
	for i := 1; i < numClocks; i++ {
		if sch.next[i].Before(sch.next[c]) {
			c = i
		}
	}
	return c
}

// advance schedules clock c's next tick d after the one that just fired;
// if that is already past (a slow send held Run up), d after now instead,
// so a stall is never followed by a burst.
func (sch *schedule) advance(c int, now time.Time, d time.Duration) {
	next := sch.next[c].Add(d)
	if next.Before(now) {
		next = now.Add(d)
	}
	sch.next[c] = next
}

// reschedule applies new mean intervals. A Poisson clock whose mean
// changed draws its pending tick afresh from now (exact, since the
// exponential is memoryless); the retrieval clock keeps its phase: its
// next tick is the new interval after the last one, or now if that is
// past.
func (sch *schedule) reschedule(mean [numClocks]time.Duration, now time.Time, draw func(int, time.Duration) time.Duration) {
	for c := range numClocks {
		if mean[c] == sch.mean[c] {
			continue
		}
		if c == clockR {
			last := sch.next[c].Add(-sch.mean[c])
			sch.next[c] = last.Add(mean[c])
			if sch.next[c].Before(now) {
				sch.next[c] = now
			}
		} else {
			sch.next[c] = now.Add(draw(c, mean[c]))
		}
		sch.mean[c] = mean[c]
	}
}

// fire sends what clock c's tick sends.
func (s *Sender) fire(ctx context.Context, c int, decoysFailing *bool) error {
	var cmd link.Command
	switch c {
	case clockR:
		switch x := s.control.NextControl(); x.(type) {
		case nil:
			cmd = link.NoOp{}
		case link.RetrieveMessage, link.MessageAck, link.GetConsensus, link.NoOp:
			cmd = x
		default:
			return fmt.Errorf("%w: %T", ErrControlCommand, x)
		}
	case clockP:
		if pkt, ok := s.packets.NextReal(); ok {
			cmd = link.SendPacket{Packet: pkt}
			break
		}
		fallthrough
	case clockD, clockL:
		kind := Drop
		if c == clockL {
			kind = Loop
		}
		pkt, err := s.packets.MakeDecoy(kind)
		if err != nil {
			if !*decoysFailing {
				*decoysFailing = true
				s.logger.Warn("egress: cannot build decoys; cover traffic paused", "err", err)
			}
			return nil
		}
		if *decoysFailing {
			*decoysFailing = false
			s.logger.Info("egress: building decoys again; cover traffic resumed")
		}
		cmd = link.SendPacket{Packet: pkt}
	}
	if err := s.sink.Send(ctx, cmd); err != nil {
		return fmt.Errorf("egress: send: %w", err)
	}
	return nil
}
