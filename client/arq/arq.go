package arq

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chorus-mixnet/chorus/mix/sphinx"
)

// Limits.
const (
	// MaxFragments bounds the fragments of one message (a 1 MiB message
	// has about 525 of 2000 bytes).
	MaxFragments = 1 << 16
	// MaxAttemptsLimit bounds Config.MaxAttempts.
	MaxAttemptsLimit = 64
)

// Errors returned by Tracker's methods. ErrRunning and ErrInvalidState
// are returned as they are; the others are wrapped with what failed.
var (
	// ErrUnknown: no such message or fragment is tracked (never tracked,
	// delivered, failed or cancelled).
	ErrUnknown = errors.New("unknown message or fragment")
	// ErrAcknowledged: the fragment was acknowledged; it must not be sent
	// again.
	ErrAcknowledged = errors.New("fragment already acknowledged")
	// ErrInFlight: an attempt of the fragment is in flight and has not
	// timed out; Due lists the fragment when it is to be sent again.
	ErrInFlight = errors.New("fragment in flight")
	// ErrExhausted: the fragment has had every attempt.
	ErrExhausted = errors.New("no attempts left")
	// ErrDuplicate: the message is already tracked, or the SURB ID is
	// already in use.
	ErrDuplicate = errors.New("duplicate")
	// ErrInvalidState: a State cannot be restored.
	ErrInvalidState = errors.New("arq: invalid state")
	// ErrRunning: Run was called while another Run is active.
	ErrRunning = errors.New("arq: already running")
)

// MessageID names a message the client sends.
type MessageID [16]byte

// FragmentID names one fragment of a message.
type FragmentID struct {
	Message MessageID
	Index   int
}

// SURBID names the SURB an attempt's ACK comes back with
// (client/route.SURBID).
type SURBID = [sphinx.SURBIDLength]byte

// Config sets the retransmission policy.
type Config struct {
	// MaxAttempts is how many times a fragment is sent before its message
	// fails: 1 to MaxAttemptsLimit.
	MaxAttempts int
	// Slack is added to the first attempt's drawn round trip before it
	// times out, and doubles with each further attempt. It should cover
	// link latency, queueing at the nodes and the client's retrieval
	// interval.
	Slack time.Duration
	// MaxSlack caps the doubled slack; at least Slack.
	MaxSlack time.Duration
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.MaxAttempts < 1 || c.MaxAttempts > MaxAttemptsLimit {
		errs = append(errs, fmt.Errorf("max attempts %d, want 1 to %d", c.MaxAttempts, MaxAttemptsLimit))
	}
	if c.Slack <= 0 {
		errs = append(errs, fmt.Errorf("slack %v, want more than zero", c.Slack))
	}
	if c.MaxSlack < c.Slack {
		errs = append(errs, fmt.Errorf("max slack %v below slack %v", c.MaxSlack, c.Slack))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("arq: validate config: %w", err)
	}
	return nil
}

// slack returns the slack of the given attempt (1-based).
func (c Config) slack(attempt int) time.Duration {
	s := c.Slack
	for range attempt - 1 {
		if s >= c.MaxSlack/2 {
			return c.MaxSlack
		}
		s *= 2
	}
	return min(s, c.MaxSlack)
}

// Ack is what Acked learned from an acknowledgement.
type Ack struct {
	// Fragment is the fragment that is now delivered.
	Fragment FragmentID
	// Attempt is the attempt (1-based) whose SURB came back: not always
	// the last one.
	Attempt int
	// MessageDone is set when this was the message's last unacknowledged
	// fragment; the message is then delivered and forgotten.
	MessageDone bool
	// Retired are the SURB IDs of every attempt of the fragment, the one
	// that came back included: wipe their decryption tokens.
	Retired []SURBID
}

// Expired is what Due found.
type Expired struct {
	// Retransmit lists fragments to send again, each on a new route with
	// a new SURB; call Sent when one is handed to the egress.
	Retransmit []FragmentID
	// Failed lists messages whose fragment used its last attempt without
	// an ACK. They are forgotten: report them failed.
	Failed []MessageID
	// Retired are the SURB IDs of the failed messages: wipe their tokens.
	Retired []SURBID
}

// Empty reports whether e holds nothing.
func (e Expired) Empty() bool {
	return len(e.Retransmit) == 0 && len(e.Failed) == 0 && len(e.Retired) == 0
}

// Tracker tracks the fragments of the messages in flight. Its methods are
// safe for concurrent use.
type Tracker struct {
	cfg     Config
	wake    chan struct{}
	running atomic.Bool

	mu    sync.Mutex
	msgs  map[MessageID]*message
	surbs map[SURBID]FragmentID
}

type message struct {
	frags []fragment
	acked int
}

// A fragment is unsent (attempts 0), in flight (deadline set), waiting to
// be sent again (attempts > 0, no deadline) or acknowledged.
type fragment struct {
	acked    bool
	attempts int
	deadline time.Time
	surbs    []SURBID // one per attempt, in order; nil once acknowledged
	// reported is set when Due has listed the fragment for retransmission
	// since it last timed out, or since Restore.
	reported bool
}

func (f *fragment) waiting() bool { return !f.acked && f.attempts > 0 && f.deadline.IsZero() }

// New returns an empty Tracker.
func New(cfg Config) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Tracker{
		cfg:   cfg,
		wake:  make(chan struct{}, 1),
		msgs:  map[MessageID]*message{},
		surbs: map[SURBID]FragmentID{},
	}, nil
}

func (t *Tracker) notify() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Track starts tracking a message of n fragments, none of them sent yet.
func (t *Tracker) Track(id MessageID, n int) error {
	if n < 1 || n > MaxFragments {
		return fmt.Errorf("arq: track message: %d fragments, want 1 to %d", n, MaxFragments)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.msgs[id]; ok {
		return fmt.Errorf("arq: track message: %w", ErrDuplicate)
	}
	t.msgs[id] = &message{frags: make([]fragment, n)}
	return nil
}

// Cancel stops tracking a message (its user withdrew it) and returns its
// SURB IDs to wipe; nothing is reported for it afterwards.
func (t *Tracker) Cancel(id MessageID) []SURBID {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.msgs[id]
	if !ok {
		return nil
	}
	retired := t.forget(id, m, nil)
	t.notify()
	return retired
}

// forget removes message id and appends its SURB IDs to retired.
// t.mu must be held.
func (t *Tracker) forget(id MessageID, m *message, retired []SURBID) []SURBID {
	for i := range m.frags {
		for _, s := range m.frags[i].surbs {
			delete(t.surbs, s)
			retired = append(retired, s)
		}
	}
	delete(t.msgs, id)
	return retired
}

// Sent records that an attempt of fragment f is being sent, with a SURB
// named surb, at now; rtt is the sum of the delays drawn for its forward
// route and its SURB's route. It returns the attempt's number (1-based)
// and its deadline: when it times out, now + rtt + the attempt's slack.
// Persist that deadline as it is (State carries it too). Call Sent before
// the packet goes to the egress, and do not send the packet if it fails:
// ErrAcknowledged and ErrUnknown say the fragment needs no more sending,
// ErrInFlight that it is not due yet.
func (t *Tracker) Sent(f FragmentID, surb SURBID, rtt time.Duration, now time.Time) (attempt int, deadline time.Time, err error) {
	if rtt < 0 {
		return 0, time.Time{}, fmt.Errorf("arq: record attempt: negative round trip %v", rtt)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.msgs[f.Message]
	if !ok || f.Index < 0 || f.Index >= len(m.frags) {
		return 0, time.Time{}, fmt.Errorf("arq: record attempt: %w", ErrUnknown)
	}
	fr := &m.frags[f.Index]
	switch {
	case fr.acked:
		return 0, time.Time{}, fmt.Errorf("arq: record attempt: %w", ErrAcknowledged)
	case !fr.deadline.IsZero():
		return 0, time.Time{}, fmt.Errorf("arq: record attempt: %w", ErrInFlight)
	case fr.attempts >= t.cfg.MaxAttempts:
		return 0, time.Time{}, fmt.Errorf("arq: record attempt: %w", ErrExhausted)
	}
	if _, ok := t.surbs[surb]; ok {
		return 0, time.Time{}, fmt.Errorf("arq: record attempt: surb id: %w", ErrDuplicate)
	}
	fr.attempts++
	fr.surbs = append(fr.surbs, surb)
	fr.deadline = now.Add(rtt + t.cfg.slack(fr.attempts))
	fr.reported = false
	t.surbs[surb] = f
	t.notify()
	return fr.attempts, fr.deadline, nil
}

// Acked records an ACK that came back with the SURB named surb. It
// returns false, harmlessly, for a SURB it does not know: a second ACK
// for a delivered fragment (from another attempt, or replayed), an ACK
// for a failed or cancelled message, or garbage.
func (t *Tracker) Acked(surb SURBID) (Ack, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.surbs[surb]
	if !ok {
		return Ack{}, false
	}
	m := t.msgs[f.Message]
	fr := &m.frags[f.Index]
	a := Ack{Fragment: f, Attempt: slices.Index(fr.surbs, surb) + 1, Retired: fr.surbs}
	for _, s := range fr.surbs {
		delete(t.surbs, s)
	}
	*fr = fragment{acked: true, attempts: fr.attempts}
	m.acked++
	if m.acked == len(m.frags) {
		delete(t.msgs, f.Message)
		a.MessageDone = true
	}
	t.notify()
	return a, true
}

// Due returns what has expired by now: fragments whose attempt timed out
// (each listed once per timeout) or that were waiting to be sent again
// when the Tracker was restored, and messages that have failed.
func (t *Tracker) Due(now time.Time) Expired {
	t.mu.Lock()
	defer t.mu.Unlock()
	var e Expired
	// A fragment has expired if its attempt timed out or it is waiting to
	// be sent again (its deadline is then zero).
	expired := func(fr *fragment) bool {
		return !fr.acked && fr.attempts > 0 && !fr.deadline.After(now)
	}
	for id, m := range t.msgs {
		for i := range m.frags {
			if fr := &m.frags[i]; expired(fr) && fr.attempts >= t.cfg.MaxAttempts {
				e.Failed = append(e.Failed, id)
				e.Retired = t.forget(id, m, e.Retired)
				break
			}
		}
	}
	for id, m := range t.msgs {
		for i := range m.frags {
			fr := &m.frags[i]
			if !expired(fr) || (fr.waiting() && fr.reported) {
				continue
			}
			fr.deadline = time.Time{}
			fr.reported = true
			e.Retransmit = append(e.Retransmit, FragmentID{Message: id, Index: i})
		}
	}
	slices.SortFunc(e.Retransmit, compareFragments)
	slices.SortFunc(e.Failed, compareMessages)
	slices.SortFunc(e.Retired, func(a, b SURBID) int { return bytes.Compare(a[:], b[:]) })
	return e
}

// Next returns when Due will next have something to report; ok is false
// if nothing is in flight. A time in the past means now.
func (t *Tracker) Next() (next time.Time, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.msgs {
		for i := range m.frags {
			fr := &m.frags[i]
			switch {
			case fr.waiting() && (!fr.reported || fr.attempts >= t.cfg.MaxAttempts):
				return time.Time{}, true
			case !fr.acked && !fr.deadline.IsZero() && (!ok || fr.deadline.Before(next)):
				next, ok = fr.deadline, true
			}
		}
	}
	return next, ok
}

// Run calls Due whenever a deadline passes (and after every change that
// may make something due) and passes a non-empty result to handle, on
// Run's goroutine, without holding the Tracker's lock: handle may call
// Sent. Run returns nil when ctx ends; only one Run may be active.
func (t *Tracker) Run(ctx context.Context, handle func(Expired)) error {
	if !t.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer t.running.Store(false)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if e := t.Due(time.Now()); !e.Empty() {
			handle(e)
		}
		if next, ok := t.Next(); ok {
			timer.Reset(time.Until(next))
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.wake:
		case <-timer.C:
		}
	}
}

func compareMessages(a, b MessageID) int { return bytes.Compare(a[:], b[:]) }

func compareFragments(a, b FragmentID) int {
	if c := compareMessages(a.Message, b.Message); c != 0 {
		return c
	}
	return cmp.Compare(a.Index, b.Index)
}
