package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chorus-mixnet/chorus/client/message"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
)

// SURBID names the SURB a fragment's ACK comes back on.
type SURBID [sphinx.SURBIDLength]byte

// OutboxStatus is where a queued message stands.
type OutboxStatus uint8

const (
	// Pending: some fragments are not yet acknowledged.
	Pending OutboxStatus = iota
	// Delivered: every fragment was acknowledged.
	Delivered
	// Failed: the sender gave up (FailMessage).
	Failed
)

func (s OutboxStatus) String() string {
	switch s {
	case Pending:
		return "pending"
	case Delivered:
		return "delivered"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// maxSURBsPerFragment bounds the SURB IDs remembered per fragment; the
// oldest is forgotten beyond it (its SURB has long expired by then).
const maxSURBsPerFragment = 32

// MaxTokenLength bounds an attempt's SURB decryption token: the length
// sphinx.NewSURB returns for the longest path a geometry allows.
const MaxTokenLength = (sphinx.MaxHops + 1) * sphinx.SURBKeyMaterialLength

// OutboxMessage is a message the user sent, as its fragments make their way.
type OutboxMessage struct {
	// ID is the message ID inside its fragments.
	ID message.MessageID
	// To is the recipient contact's name when it was queued.
	To string
	// Recipient is the recipient's card when it was queued.
	Recipient message.Card
	// Queued is when the message was accepted.
	Queued time.Time
	// Fragments is the number of fragments, Delivered how many were
	// acknowledged.
	Fragments, Delivered int
	// Status is Pending until every fragment is acknowledged (Delivered)
	// or the sender gives up (Failed).
	Status OutboxStatus
}

// FragmentState is the ARQ state of one fragment of a pending message.
type FragmentState struct {
	ID    message.MessageID
	Index int
	// Attempts is how many times RecordAttempt was called.
	Attempts int
	// NextDeadline is when the latest attempt's ACK is due.
	NextDeadline time.Time
	// Delivered reports whether an ACK arrived.
	Delivered bool
	// SURBs are the SURB IDs of the attempts, oldest first (at most 32).
	SURBs []SURBID
}

// Ack is what Acknowledge learned.
type Ack struct {
	ID    message.MessageID
	Index int
	// Duplicate: the fragment had already been acknowledged.
	Duplicate bool
	// MessageDelivered: this ACK completed the message.
	MessageDelivered bool
}

func fragKey(id message.MessageID, index int) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), id[:]...), uint32(index))
}

// fragKeyLength is the length of fragKey's result.
const fragKeyLength = message.MessageIDSize + 4

// decodeSURBRecord splits a SURB record (table tSURBs): fragKey || token,
// the fragment an attempt's ACK acknowledges and the attempt's SURB
// decryption token while the fragment is unacknowledged (empty after).
func decodeSURBRecord(v []byte) (ref, token []byte, err error) {
	if len(v) < fragKeyLength || len(v) > fragKeyLength+MaxTokenLength {
		return nil, nil, ErrCorrupt
	}
	return v[:fragKeyLength], v[fragKeyLength:], nil
}

func encodeOutbox(m *OutboxMessage) []byte {
	var w recordWriter
	w.fixed(m.ID[:])
	w.str(m.To)
	w.str(m.Recipient.Encode())
	w.time(m.Queued)
	w.u32(uint32(m.Fragments))
	w.u32(uint32(m.Delivered))
	w.u8(uint8(m.Status))
	return w.b
}

func decodeOutbox(b []byte) (OutboxMessage, error) {
	var m OutboxMessage
	r := recordReader{b: b}
	r.fixed(m.ID[:])
	m.To = r.str()
	card := r.str()
	m.Queued = r.time()
	m.Fragments = int(r.u32())
	m.Delivered = int(r.u32())
	m.Status = OutboxStatus(r.u8())
	if !r.ok() || m.Status > Failed {
		return OutboxMessage{}, ErrCorrupt
	}
	var err error
	if m.Recipient, err = message.ParseCard(card); err != nil {
		return OutboxMessage{}, ErrCorrupt
	}
	return m, nil
}

func encodeFragState(f *FragmentState) []byte {
	var w recordWriter
	w.fixed(f.ID[:])
	w.u32(uint32(f.Index))
	w.u32(uint32(f.Attempts))
	w.time(f.NextDeadline)
	w.bool(f.Delivered)
	w.u32(uint32(len(f.SURBs)))
	for _, s := range f.SURBs {
		w.fixed(s[:])
	}
	return w.b
}

func decodeFragState(b []byte) (FragmentState, error) {
	var f FragmentState
	r := recordReader{b: b}
	r.fixed(f.ID[:])
	f.Index = int(r.u32())
	f.Attempts = int(r.u32())
	f.NextDeadline = r.time()
	f.Delivered = r.bool()
	n := r.u32()
	if n > maxSURBsPerFragment {
		return FragmentState{}, ErrCorrupt
	}
	f.SURBs = make([]SURBID, n)
	for i := range f.SURBs {
		r.fixed(f.SURBs[i][:])
	}
	if !r.ok() {
		return FragmentState{}, ErrCorrupt
	}
	return f, nil
}

func (t txn) outbox(id message.MessageID) (OutboxMessage, error) {
	v, err := t.get(tOutbox, id[:])
	if err != nil {
		return OutboxMessage{}, err
	}
	return decodeOutbox(v)
}

func (t txn) fragState(id message.MessageID, index int) (FragmentState, error) {
	v, err := t.get(tARQ, fragKey(id, index))
	if err != nil {
		return FragmentState{}, err
	}
	return decodeFragState(v)
}

// Enqueue durably queues a message: its record (with Status Pending and
// Fragments set from sealed) and each sealed fragment with a fresh ARQ
// state, all in one transaction. m.Queued defaults to now. It refuses an ID
// already queued (ErrExists).
func (s *Store) Enqueue(m OutboxMessage, sealed [][]byte) error {
	if len(sealed) == 0 || m.Recipient.Key.IsZero() {
		return fmt.Errorf("%w: an outbox message needs a recipient and fragments", ErrInvalid)
	}
	m.Fragments, m.Delivered, m.Status = len(sealed), 0, Pending
	if m.Queued.IsZero() {
		m.Queued = s.opts.Now()
	}
	return s.update(func(t txn) error {
		if ok, err := t.has(tOutbox, m.ID[:]); err != nil {
			return err
		} else if ok {
			return ErrExists
		}
		if err := t.put(tOutbox, m.ID[:], encodeOutbox(&m)); err != nil {
			return err
		}
		for i, f := range sealed {
			if err := t.put(tFragments, fragKey(m.ID, i), f); err != nil {
				return err
			}
			st := FragmentState{ID: m.ID, Index: i}
			if err := t.put(tARQ, fragKey(m.ID, i), encodeFragState(&st)); err != nil {
				return err
			}
		}
		return nil
	})
}

// OutboxMessage returns one outbox message, or ErrNotFound.
func (s *Store) OutboxMessage(id message.MessageID) (OutboxMessage, error) {
	var m OutboxMessage
	err := s.view(func(t txn) (err error) {
		m, err = t.outbox(id)
		return err
	})
	return m, err
}

// Outbox returns every outbox message, oldest first.
func (s *Store) Outbox() ([]OutboxMessage, error) {
	var out []OutboxMessage
	err := s.view(func(t txn) error {
		return t.each(tOutbox, func(v []byte) error {
			m, err := decodeOutbox(v)
			if err == nil {
				out = append(out, m)
			}
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b OutboxMessage) int { return a.Queued.Compare(b.Queued) })
	return out, nil
}

// SealedFragment returns a pending message's sealed fragment, to send or
// send again; ErrNotFound once the message is delivered, failed or removed.
func (s *Store) SealedFragment(id message.MessageID, index int) ([]byte, error) {
	var f []byte
	err := s.view(func(t txn) (err error) {
		f, err = t.get(tFragments, fragKey(id, index))
		return err
	})
	return f, err
}

// PendingFragments returns the ARQ state of every fragment not yet
// acknowledged, ordered by deadline (never-sent fragments first), for the
// ARQ to resume after a start.
func (s *Store) PendingFragments() ([]FragmentState, error) {
	var out []FragmentState
	err := s.view(func(t txn) error {
		return t.each(tARQ, func(v []byte) error {
			f, err := decodeFragState(v)
			if err == nil && !f.Delivered {
				out = append(out, f)
			}
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b FragmentState) int {
		if c := a.NextDeadline.Compare(b.NextDeadline); c != 0 {
			return c
		}
		if c := slices.Compare(a.ID[:], b.ID[:]); c != 0 {
			return c
		}
		return a.Index - b.Index
	})
	return out, nil
}

// RecordAttempt durably records that a fragment is about to be sent with
// the SURB surb for its ACK, due by deadline, and keeps the SURB's
// decryption token (a secret, sealed like every value; the store keeps
// its own copy) so that an ACK can be authenticated after a restart
// (SURBToken). Call it before the packet leaves, so that an ACK arriving
// after a crash is still recognised. Earlier attempts' SURBs stay valid: a
// late ACK on any of them counts. It returns ErrInvalid for a token that
// is empty or longer than MaxTokenLength, ErrNotFound if the fragment is
// not pending and ErrExists if surb is already in use.
func (s *Store) RecordAttempt(id message.MessageID, index int, surb SURBID, token []byte, deadline time.Time) error {
	if len(token) == 0 || len(token) > MaxTokenLength {
		return fmt.Errorf("%w: a SURB token of %d bytes", ErrInvalid, len(token))
	}
	return s.update(func(t txn) error {
		f, err := t.fragState(id, index)
		if err != nil {
			return err
		}
		if f.Delivered {
			return ErrNotFound
		}
		if ok, err := t.has(tSURBs, surb[:]); err != nil {
			return err
		} else if ok {
			return ErrExists
		}
		if len(f.SURBs) == maxSURBsPerFragment {
			if err := t.del(tSURBs, f.SURBs[0][:]); err != nil {
				return err
			}
			f.SURBs = f.SURBs[1:]
		}
		f.SURBs = append(f.SURBs, surb)
		f.Attempts++
		f.NextDeadline = deadline
		rec := append(fragKey(id, index), token...)
		err = t.put(tSURBs, surb[:], rec)
		clear(rec)
		if err != nil {
			return err
		}
		return t.put(tARQ, fragKey(id, index), encodeFragState(&f))
	})
}

// SURBToken returns a copy of the decryption token RecordAttempt kept for
// the SURB surb, for the caller to authenticate an ACK with (and then
// wipe). It is ErrNotFound once the fragment is acknowledged or its
// message finished, and for a SURB the store does not know.
func (s *Store) SURBToken(surb SURBID) ([]byte, error) {
	var token []byte
	err := s.view(func(t txn) error {
		v, err := t.get(tSURBs, surb[:])
		if err != nil {
			return err
		}
		defer clear(v)
		_, tok, err := decodeSURBRecord(v)
		if err != nil {
			return err
		}
		if len(tok) == 0 {
			return ErrNotFound
		}
		token = bytes.Clone(tok)
		return nil
	})
	return token, err
}

// Acknowledge durably marks delivered the fragment whose ACK came back on
// surb, and drops the SURB tokens of all its attempts. When that completes
// the message, its status becomes Delivered and its fragments, ARQ state
// and SURB IDs are dropped. An ACK on a SURB the store does not know (never
// recorded, or its message already finished) is ErrNotFound; callers count
// it and move on.
func (s *Store) Acknowledge(surb SURBID) (Ack, error) {
	var ack Ack
	err := s.update(func(t txn) error {
		v, err := t.get(tSURBs, surb[:])
		if err != nil {
			return err
		}
		defer clear(v)
		ref, _, err := decodeSURBRecord(v)
		if err != nil {
			return err
		}
		copy(ack.ID[:], ref)
		ack.Index = int(binary.BigEndian.Uint32(ref[message.MessageIDSize:]))
		f, err := t.fragState(ack.ID, ack.Index)
		if err != nil {
			return err
		}
		if f.Delivered {
			ack.Duplicate = true
			return nil
		}
		m, err := t.outbox(ack.ID)
		if err != nil {
			return err
		}
		f.Delivered = true
		m.Delivered++
		if m.Delivered >= m.Fragments {
			m.Status = Delivered
			ack.MessageDelivered = true
			if err := t.finish(&m); err != nil {
				return err
			}
		} else {
			if err := t.put(tARQ, fragKey(f.ID, f.Index), encodeFragState(&f)); err != nil {
				return err
			}
			// The SURB IDs stay, so that a late ACK on another attempt
			// reads as a duplicate; their tokens go.
			for _, sb := range f.SURBs {
				if err := t.put(tSURBs, sb[:], fragKey(f.ID, f.Index)); err != nil {
					return err
				}
			}
		}
		return t.put(tOutbox, m.ID[:], encodeOutbox(&m))
	})
	return ack, err
}

// finish drops a message's fragments, ARQ state and SURB IDs (with their
// tokens).
func (t txn) finish(m *OutboxMessage) error {
	for i := range m.Fragments {
		f, err := t.fragState(m.ID, i)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		for _, s := range f.SURBs {
			if err := t.del(tSURBs, s[:]); err != nil {
				return err
			}
		}
		if err := t.del(tARQ, fragKey(m.ID, i)); err != nil {
			return err
		}
		if err := t.del(tFragments, fragKey(m.ID, i)); err != nil {
			return err
		}
	}
	return nil
}

// FailMessage gives up on a pending message: its status becomes Failed and
// its fragments, ARQ state, SURB IDs and SURB tokens are dropped.
// ErrNotFound if there is no such pending message.
func (s *Store) FailMessage(id message.MessageID) error {
	return s.update(func(t txn) error {
		m, err := t.outbox(id)
		if err != nil {
			return err
		}
		if m.Status != Pending {
			return ErrNotFound
		}
		m.Status = Failed
		if err := t.finish(&m); err != nil {
			return err
		}
		return t.put(tOutbox, m.ID[:], encodeOutbox(&m))
	})
}

// RemoveOutbox forgets an outbox message entirely, whatever its status
// (SURB tokens included).
func (s *Store) RemoveOutbox(id message.MessageID) error {
	return s.update(func(t txn) error {
		m, err := t.outbox(id)
		if err != nil {
			return err
		}
		if err := t.finish(&m); err != nil {
			return err
		}
		return t.del(tOutbox, id[:])
	})
}
