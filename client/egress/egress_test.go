package egress_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chorus-mixnet/chorus/client/egress"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

// packetLength is the fake packets' length; real and decoy alike.
const packetLength = 256

// Packet markers: the first byte of a fake packet says what it is, for
// the test's bookkeeping only. The observer sees times, nothing else.
const (
	markReal = 'R'
	markLoop = 'L'
	markDrop = 'D'
)

func packet(mark byte) []byte {
	p := make([]byte, packetLength)
	p[0] = mark
	return p
}

// outbox is a fake packet builder with a queue of real packets; full
// means the queue never runs dry.
type outbox struct {
	mu       sync.Mutex
	full     bool
	queued   int
	decoyErr error
}

func (o *outbox) NextReal() ([]byte, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.full {
		return packet(markReal), true
	}
	if o.queued == 0 {
		return nil, false
	}
	o.queued--
	return packet(markReal), true
}

func (o *outbox) MakeDecoy(k egress.Kind) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.decoyErr != nil {
		return nil, o.decoyErr
	}
	if k == egress.Loop {
		return packet(markLoop), nil
	}
	return packet(markDrop), nil
}

func (o *outbox) add(n int) {
	o.mu.Lock()
	o.queued += n
	o.mu.Unlock()
}

func (o *outbox) setDecoyErr(err error) {
	o.mu.Lock()
	o.decoyErr = err
	o.mu.Unlock()
}

// poller fills control slots with retrievals of increasing sequence
// numbers, or with cmd if set.
type poller struct {
	seq uint64
	cmd link.Command
}

func (p *poller) NextControl() link.Command {
	if p.cmd != nil {
		return p.cmd
	}
	p.seq++
	return link.RetrieveMessage{Seq: p.seq}
}

// frame is one frame as the test sees it: when, and what.
type frame struct {
	at   time.Duration // since the sink was made
	mark byte          // a packet mark, or 'Q' for a control command
}

// wire is a fake provider link that records every frame.
type wire struct {
	t     testing.TB
	start time.Time
	mu    sync.Mutex
	fs    []frame
	// failAfter, if positive, makes the send after that many fail.
	failAfter int
}

var errLinkDown = errors.New("link down")

func newWire(t testing.TB) *wire { return &wire{t: t, start: time.Now()} }

func (w *wire) Send(ctx context.Context, cmd link.Command) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failAfter > 0 && len(w.fs) == w.failAfter {
		return errLinkDown
	}
	f := frame{at: time.Since(w.start)}
	switch c := cmd.(type) {
	case link.SendPacket:
		if len(c.Packet) != packetLength {
			w.t.Errorf("packet of %d bytes, want %d", len(c.Packet), packetLength)
		}
		f.mark = c.Packet[0]
	case link.RetrieveMessage, link.MessageAck, link.GetConsensus, link.NoOp:
		f.mark = 'Q'
	default:
		w.t.Errorf("unexpected command %T", cmd)
	}
	w.fs = append(w.fs, f)
	return nil
}

func (w *wire) frames() []frame {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]frame(nil), w.fs...)
}

func count(fs []frame, mark byte, from, to time.Duration) int {
	n := 0
	for _, f := range fs {
		if f.mark == mark && f.at >= from && f.at < to {
			n++
		}
	}
	return n
}

func seed(n uint64) rand.Source { return rand.NewPCG(n, n*0x9e3779b97f4a7c15+1) }

// start runs a Sender in the current bubble and returns a function that
// stops it and returns Run's result.
func start(t *testing.T, cfg egress.Config) (*egress.Sender, func() error) {
	t.Helper()
	s, err := egress.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return s, func() error {
		cancel()
		return <-done
	}
}

// within checks that a Poisson count n over a period with expectation
// mean is within 5 standard deviations (√mean) of it.
func within(t *testing.T, what string, n int, mean float64) {
	t.Helper()
	sigma := math.Sqrt(mean)
	z := (float64(n) - mean) / sigma
	t.Logf("%s: %d, expected %.0f ± %.0f (z = %+.2f)", what, n, mean, sigma, z)
	if math.Abs(z) > 5 {
		t.Errorf("%s: %d is %.1fσ from the expected %.0f", what, n, z, mean)
	}
}

func rate(d time.Duration) float64 { return float64(time.Second) / float64(d) }

func TestRates(t *testing.T) {
	const period = 10 * time.Minute
	p := pkitest.Parameters()
	secs := period.Seconds()
	for _, full := range []bool{false, true} {
		name := map[bool]string{false: "empty outbox", true: "full outbox"}[full]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWire(t)
				_, stop := start(t, egress.Config{
					Parameters: p, Packets: &outbox{full: full}, Control: &poller{}, Sink: w, Rand: seed(1),
				})
				time.Sleep(period)
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				fs := w.frames()
				packets := len(fs) - count(fs, 'Q', 0, period)
				within(t, "packets", packets, (rate(p.LambdaPMean)+rate(p.LambdaLMean)+rate(p.LambdaDMean))*secs)
				within(t, "loops", count(fs, markLoop, 0, period), rate(p.LambdaLMean)*secs)
				if full {
					within(t, "real packets", count(fs, markReal, 0, period), rate(p.LambdaPMean)*secs)
					within(t, "drops", count(fs, markDrop, 0, period), rate(p.LambdaDMean)*secs)
				} else {
					if n := count(fs, markReal, 0, period); n != 0 {
						t.Errorf("%d real packets from an empty outbox", n)
					}
					within(t, "drops (λP decoys and λD)", count(fs, markDrop, 0, period), (rate(p.LambdaPMean)+rate(p.LambdaDMean))*secs)
				}
				// Retrieval is a metronome: exactly one poll per interval.
				if n, want := count(fs, 'Q', 0, period), int(period/p.RetrievalInterval); n != want && n != want-1 {
					t.Errorf("%d polls, want %d", n, want)
				}
			})
		})
	}
}

// TestTimingIndependentOfOutbox: with the same random source, a client
// with nothing to send and one with a full queue write frames at exactly
// the same instants; the outbox only decides what is in a λP slot.
func TestTimingIndependentOfOutbox(t *testing.T) {
	run := func(full bool) []frame {
		var fs []frame
		synctest.Test(t, func(t *testing.T) {
			w := newWire(t)
			_, stop := start(t, egress.Config{
				Parameters: pkitest.Parameters(), Packets: &outbox{full: full}, Control: &poller{}, Sink: w, Rand: seed(42),
			})
			time.Sleep(time.Minute)
			if err := stop(); err != nil {
				t.Error(err)
			}
			fs = w.frames()
		})
		return fs
	}
	// Frames at the very end may or may not make it before the stop
	// (the stop and a tick can fall on the same instant); compare the rest.
	cut := func(fs []frame) []frame {
		for len(fs) > 0 && fs[len(fs)-1].at >= time.Minute-time.Millisecond {
			fs = fs[:len(fs)-1]
		}
		return fs
	}
	idle, busy := cut(run(false)), cut(run(true))
	if len(idle) != len(busy) {
		t.Fatalf("%d frames idle, %d busy", len(idle), len(busy))
	}
	reals := 0
	for i := range idle {
		if idle[i].at != busy[i].at {
			t.Fatalf("frame %d: at %v idle, %v busy", i, idle[i].at, busy[i].at)
		}
		if busy[i].mark == markReal {
			reals++
			if idle[i].mark != markDrop {
				t.Fatalf("frame %d: a real packet took a %q slot", i, idle[i].mark)
			}
		}
	}
	if reals == 0 {
		t.Fatal("the busy client sent nothing real")
	}
}

func TestSetParameters(t *testing.T) {
	const phase = 5 * time.Minute
	p1 := pkitest.Parameters()
	p2 := p1
	p2.LambdaPMean, p2.LambdaLMean, p2.LambdaDMean, p2.RetrievalInterval = 10*time.Millisecond, 50*time.Millisecond, 400*time.Millisecond, 20*time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		w := newWire(t)
		s, stop := start(t, egress.Config{
			Parameters: p1, Packets: &outbox{full: true}, Control: &poller{}, Sink: w, Rand: seed(3),
		})
		time.Sleep(phase)
		if err := s.SetParameters(p2); err != nil {
			t.Fatal(err)
		}
		time.Sleep(phase)
		bad := p2
		bad.LambdaPMean = 0
		if err := s.SetParameters(bad); err == nil {
			t.Error("SetParameters accepted a zero interval")
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		fs := w.frames()
		secs := phase.Seconds()
		for i, p := range []pki.Parameters{p1, p2} {
			from, to := time.Duration(i)*phase, time.Duration(i+1)*phase
			within(t, "phase "+string(rune('1'+i))+" real", count(fs, markReal, from, to), rate(p.LambdaPMean)*secs)
			within(t, "phase "+string(rune('1'+i))+" loops", count(fs, markLoop, from, to), rate(p.LambdaLMean)*secs)
			within(t, "phase "+string(rune('1'+i))+" drops", count(fs, markDrop, from, to), rate(p.LambdaDMean)*secs)
			if n, want := count(fs, 'Q', from, to), int(phase/p.RetrievalInterval); n < want-1 || n > want+1 {
				t.Errorf("phase %d: %d polls, want %d", i+1, n, want)
			}
		}
	})
}

func TestSinkError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWire(t)
		w.failAfter = 10
		s, err := egress.New(egress.Config{
			Parameters: pkitest.Parameters(), Packets: &outbox{}, Control: &poller{}, Sink: w, Rand: seed(4),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Run(t.Context()); !errors.Is(err, errLinkDown) {
			t.Fatalf("Run: %v, want the sink's error", err)
		}
		if n := len(w.frames()); n != 10 {
			t.Errorf("%d frames before the failure, want 10", n)
		}
	})
}

func TestRunOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, stop := start(t, egress.Config{
			Parameters: pkitest.Parameters(), Packets: &outbox{}, Control: &poller{}, Sink: newWire(t), Rand: seed(5),
		})
		synctest.Wait()
		if err := s.Run(t.Context()); !errors.Is(err, egress.ErrRunning) {
			t.Errorf("second Run: %v", err)
		}
		if err := stop(); err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
	})
}

func TestControlSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := egress.New(egress.Config{
			Parameters: pkitest.Parameters(), Packets: &outbox{}, Sink: newWire(t), Rand: seed(6),
			Control: &poller{cmd: link.SendPacket{Packet: packet(markReal)}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Run(t.Context()); !errors.Is(err, egress.ErrControlCommand) {
			t.Fatalf("Run: %v, want ErrControlCommand", err)
		}
	})
}

func TestNew(t *testing.T) {
	_, err := egress.New(egress.Config{})
	if err == nil {
		t.Fatal("New accepted an empty config")
	}
	for _, want := range []string{"parameters", "packet builder", "control", "sink"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestDecoyFailure: while decoys cannot be built, their slots pass
// silently and real packets and polls keep their schedule; the failure is
// logged once per streak, without per-packet detail.
func TestDecoyFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		var logMu sync.Mutex
		logger := slog.New(slog.NewTextHandler(&lockedWriter{mu: &logMu, w: &logs}, nil))
		w := newWire(t)
		ob := &outbox{}
		ob.setDecoyErr(errors.New("no document"))
		_, stop := start(t, egress.Config{
			Parameters: pkitest.Parameters(), Packets: ob, Control: &poller{}, Sink: w, Rand: seed(7), Logger: logger,
		})
		time.Sleep(time.Second)
		ob.add(5)
		time.Sleep(time.Second)
		ob.setDecoyErr(nil)
		time.Sleep(time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		fs := w.frames()
		if n := count(fs, markLoop, 0, 2*time.Second) + count(fs, markDrop, 0, 2*time.Second); n != 0 {
			t.Errorf("%d decoys while they could not be built", n)
		}
		if n := count(fs, markReal, 0, 3*time.Second); n != 5 {
			t.Errorf("%d real packets, want 5", n)
		}
		if count(fs, markDrop, 2*time.Second, 3*time.Second) == 0 {
			t.Error("no decoys after recovery")
		}
		if n := count(fs, 'Q', 0, 3*time.Second); n < 59 {
			t.Errorf("%d polls, want 60", n)
		}
		logMu.Lock()
		out := logs.String()
		logMu.Unlock()
		if strings.Count(out, "cover traffic paused") != 1 || strings.Count(out, "cover traffic resumed") != 1 {
			t.Errorf("want one warning and one recovery message, got:\n%s", out)
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
