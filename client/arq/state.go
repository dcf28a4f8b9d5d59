package arq

import (
	"fmt"
	"slices"
	"time"
)

// State is a Tracker's whole state as plain data, for client/store to
// persist (any encoding of exported fields will do) and Restore to read.
type State struct {
	// Messages are sorted by ID.
	Messages []MessageState
}

// MessageState is one tracked message.
type MessageState struct {
	ID        MessageID
	Fragments []FragmentState
}

// FragmentState is one fragment of a tracked message.
type FragmentState struct {
	// Acked is set once the fragment's ACK came back; the other fields
	// are then zero but for Attempts.
	Acked bool
	// Attempts is how many times the fragment was sent.
	Attempts int
	// Deadline is when the attempt in flight times out (wall clock); zero
	// if none is in flight: the fragment is unsent (Attempts 0) or waiting
	// to be sent again.
	Deadline time.Time
	// SURBs are the SURB IDs of the attempts, in order: one per attempt.
	SURBs []SURBID
}

// Snapshot returns a copy of the Tracker's state.
func (t *Tracker) Snapshot() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := State{Messages: make([]MessageState, 0, len(t.msgs))}
	for id, m := range t.msgs {
		ms := MessageState{ID: id, Fragments: make([]FragmentState, len(m.frags))}
		for i, fr := range m.frags {
			ms.Fragments[i] = FragmentState{
				Acked:    fr.acked,
				Attempts: fr.attempts,
				Deadline: fr.deadline.Round(0), // wall clock only: it outlives the process
				SURBs:    slices.Clone(fr.surbs),
			}
		}
		st.Messages = append(st.Messages, ms)
	}
	slices.SortFunc(st.Messages, func(a, b MessageState) int { return compareMessages(a.ID, b.ID) })
	return st
}

// Restore returns a Tracker with the given state, under cfg (which may
// differ from the Tracker's that made it). Fragments that were waiting to
// be sent again are listed by the first Due; a fragment that has had
// cfg.MaxAttempts attempts or more fails its message when it times out.
func Restore(cfg Config, st State) (*Tracker, error) {
	t, err := New(cfg)
	if err != nil {
		return nil, err
	}
	for _, ms := range st.Messages {
		if err := t.restore(ms); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
		}
	}
	return t, nil
}

func (t *Tracker) restore(ms MessageState) error {
	n := len(ms.Fragments)
	if n < 1 || n > MaxFragments {
		return fmt.Errorf("message with %d fragments", n)
	}
	if _, ok := t.msgs[ms.ID]; ok {
		return fmt.Errorf("message listed twice")
	}
	m := &message{frags: make([]fragment, n)}
	for i, fs := range ms.Fragments {
		switch {
		case fs.Attempts < 0 || fs.Attempts > MaxAttemptsLimit:
			return fmt.Errorf("fragment %d: %d attempts", i, fs.Attempts)
		case fs.Acked && (len(fs.SURBs) != 0 || !fs.Deadline.IsZero()):
			return fmt.Errorf("fragment %d: acknowledged but still in flight", i)
		case !fs.Acked && len(fs.SURBs) != fs.Attempts:
			return fmt.Errorf("fragment %d: %d SURBs for %d attempts", i, len(fs.SURBs), fs.Attempts)
		case fs.Attempts == 0 && !fs.Deadline.IsZero():
			return fmt.Errorf("fragment %d: deadline without an attempt", i)
		}
		for _, s := range fs.SURBs {
			if _, ok := t.surbs[s]; ok {
				return fmt.Errorf("fragment %d: SURB ID used twice", i)
			}
			t.surbs[s] = FragmentID{Message: ms.ID, Index: i}
		}
		m.frags[i] = fragment{acked: fs.Acked, attempts: fs.Attempts, deadline: fs.Deadline, surbs: slices.Clone(fs.SURBs)}
		if fs.Acked {
			m.acked++
		}
	}
	if m.acked == n {
		return fmt.Errorf("message fully acknowledged")
	}
	t.msgs[ms.ID] = m
	return nil
}
