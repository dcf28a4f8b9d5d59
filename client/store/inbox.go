package store

import (
	"cmp"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/chorus-mixnet/chorus/client/message"
)

// InboxEntry is a received, complete message.
type InboxEntry struct {
	// Seq numbers entries in the order they were saved, from 1.
	Seq uint64
	// From is the sender contact's name when the message was saved.
	From string
	// Sender is the message key that authenticated the message.
	Sender message.PublicKey
	// ID is the sender's message ID.
	ID message.MessageID
	// Received is when the message was saved.
	Received time.Time
	// Read is set by MarkRead.
	Read bool
	// Size is the length of Body.
	Size int
	// Body is the message; Inbox leaves it nil, InboxMessage fills it.
	Body []byte
}

// HeldFragment is a fragment of an incomplete message, kept so that a
// restart does not lose fragments whose mailbox copies are gone.
type HeldFragment struct {
	Sender   message.PublicKey
	Fragment message.Fragment
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func seenKey(sender message.PublicKey, id message.MessageID) []byte {
	k := sender.Array()
	return append(k[:], id[:]...)
}

func encodeEntry(e *InboxEntry) []byte {
	var w recordWriter
	w.u64(e.Seq)
	w.str(e.From)
	k := e.Sender.Array()
	w.fixed(k[:])
	w.fixed(e.ID[:])
	w.time(e.Received)
	w.bool(e.Read)
	w.u32(uint32(e.Size))
	return w.b
}

func decodeEntry(b []byte) (InboxEntry, error) {
	var e InboxEntry
	r := recordReader{b: b}
	e.Seq = r.u64()
	e.From = r.str()
	var k [message.KeySize]byte
	r.fixed(k[:])
	r.fixed(e.ID[:])
	e.Received = r.time()
	e.Read = r.bool()
	e.Size = int(r.u32())
	if !r.ok() {
		return InboxEntry{}, ErrCorrupt
	}
	var err error
	if e.Sender, err = message.NewPublicKey(k[:]); err != nil {
		return InboxEntry{}, ErrCorrupt
	}
	return e, nil
}

// SaveMessage durably saves a complete message from the contact named
// from, marks its (sender, ID) seen, and drops any fragments held for it,
// in one transaction; it returns the entry's Seq. A message seen before,
// even one since deleted, is refused with ErrExists: this is the duplicate
// check that holds across restarts.
func (s *Store) SaveMessage(from string, m *message.Message) (uint64, error) {
	var seq uint64
	err := s.update(func(t txn) error {
		sk := seenKey(m.Sender, m.ID)
		if ok, err := t.has(tSeen, sk); err != nil {
			return err
		} else if ok {
			return ErrExists
		}
		switch v, err := t.get(tMeta, metaInboxSeq); {
		case err == nil && len(v) == 8:
			seq = binary.BigEndian.Uint64(v)
		case err == nil:
			return ErrCorrupt
		case !errors.Is(err, ErrNotFound):
			return err
		}
		seq++
		e := InboxEntry{Seq: seq, From: from, Sender: m.Sender, ID: m.ID, Received: s.opts.Now(), Size: len(m.Body)}
		var w recordWriter
		w.time(e.Received)
		for _, op := range []struct {
			table      string
			key, value []byte
		}{
			{tMeta, metaInboxSeq, seqKey(seq)},
			{tInbox, seqKey(seq), encodeEntry(&e)},
			{tBodies, seqKey(seq), m.Body},
			{tSeen, sk, w.b},
		} {
			if err := t.put(op.table, op.key, op.value); err != nil {
				return err
			}
		}
		return t.dropHeld(m.Sender, m.ID)
	})
	return seq, err
}

// Seen reports whether a message with this sender and ID was saved before.
func (s *Store) Seen(sender message.PublicKey, id message.MessageID) (bool, error) {
	var ok bool
	err := s.view(func(t txn) (err error) {
		ok, err = t.has(tSeen, seenKey(sender, id))
		return err
	})
	return ok, err
}

// Inbox lists the inbox in Seq order, without bodies.
func (s *Store) Inbox() ([]InboxEntry, error) {
	var out []InboxEntry
	err := s.view(func(t txn) error {
		return t.each(tInbox, func(v []byte) error {
			e, err := decodeEntry(v)
			if err == nil {
				out = append(out, e)
			}
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b InboxEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// InboxMessage returns one entry with its body, or ErrNotFound.
func (s *Store) InboxMessage(seq uint64) (InboxEntry, error) {
	var e InboxEntry
	err := s.view(func(t txn) error {
		v, err := t.get(tInbox, seqKey(seq))
		if err != nil {
			return err
		}
		if e, err = decodeEntry(v); err != nil {
			return err
		}
		if e.Body, err = t.get(tBodies, seqKey(seq)); err != nil {
			return ErrCorrupt
		}
		if len(e.Body) != e.Size {
			return ErrCorrupt
		}
		return nil
	})
	return e, err
}

// MarkRead sets an entry's Read flag.
func (s *Store) MarkRead(seq uint64) error {
	return s.update(func(t txn) error {
		v, err := t.get(tInbox, seqKey(seq))
		if err != nil {
			return err
		}
		e, err := decodeEntry(v)
		if err != nil {
			return err
		}
		e.Read = true
		return t.put(tInbox, seqKey(seq), encodeEntry(&e))
	})
}

// DeleteMessage removes an entry and its body. Its (sender, ID) stays
// seen, so a late duplicate does not bring it back.
func (s *Store) DeleteMessage(seq uint64) error {
	return s.update(func(t txn) error {
		if ok, err := t.has(tInbox, seqKey(seq)); err != nil {
			return err
		} else if !ok {
			return ErrNotFound
		}
		if err := t.del(tInbox, seqKey(seq)); err != nil {
			return err
		}
		return t.del(tBodies, seqKey(seq))
	})
}

func encodeHeld(h *HeldFragment) []byte {
	var w recordWriter
	k := h.Sender.Array()
	w.fixed(k[:])
	w.fixed(h.Fragment.ID[:])
	w.u32(h.Fragment.Index)
	w.u32(h.Fragment.Count)
	w.u32(h.Fragment.Total)
	w.bytes(h.Fragment.Body)
	return w.b
}

func decodeHeld(b []byte) (HeldFragment, error) {
	var h HeldFragment
	r := recordReader{b: b}
	var k [message.KeySize]byte
	r.fixed(k[:])
	r.fixed(h.Fragment.ID[:])
	h.Fragment.Index = r.u32()
	h.Fragment.Count = r.u32()
	h.Fragment.Total = r.u32()
	h.Fragment.Body = r.bytes()
	if !r.ok() {
		return HeldFragment{}, ErrCorrupt
	}
	var err error
	if h.Sender, err = message.NewPublicKey(k[:]); err != nil {
		return HeldFragment{}, ErrCorrupt
	}
	return h, nil
}

func heldKey(sender message.PublicKey, id message.MessageID, index uint32) []byte {
	return binary.BigEndian.AppendUint32(seenKey(sender, id), index)
}

// heldSet reads the indices held for a message.
func (t txn) heldSet(sk []byte) ([]uint32, error) {
	v, err := t.get(tHeldSets, sk)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(v)%4 != 0 {
		return nil, ErrCorrupt
	}
	set := make([]uint32, len(v)/4)
	for i := range set {
		set[i] = binary.BigEndian.Uint32(v[4*i:])
	}
	return set, nil
}

// HoldFragment durably keeps an opened fragment of an incomplete message
// until SaveMessage or DropHeld; holding the same fragment twice is a
// no-op. It refuses (ErrExists) a fragment of a message already seen. The
// caller bounds what it holds with the Reassembler's limits, dropping
// evicted messages with DropHeld.
func (s *Store) HoldFragment(sender message.PublicKey, f message.Fragment) error {
	return s.update(func(t txn) error {
		sk := seenKey(sender, f.ID)
		if ok, err := t.has(tSeen, sk); err != nil {
			return err
		} else if ok {
			return ErrExists
		}
		set, err := t.heldSet(sk)
		if err != nil || slices.Contains(set, f.Index) {
			return err
		}
		set = append(set, f.Index)
		var w recordWriter
		for _, i := range set {
			w.u32(i)
		}
		if err := t.put(tHeldSets, sk, w.b); err != nil {
			return err
		}
		h := HeldFragment{Sender: sender, Fragment: f}
		return t.put(tHeld, heldKey(sender, f.ID, f.Index), encodeHeld(&h))
	})
}

// HeldFragments returns every held fragment, to feed back into a
// Reassembler after a start.
func (s *Store) HeldFragments() ([]HeldFragment, error) {
	var out []HeldFragment
	err := s.view(func(t txn) error {
		return t.each(tHeld, func(v []byte) error {
			h, err := decodeHeld(v)
			if err == nil {
				out = append(out, h)
			}
			return err
		})
	})
	return out, err
}

// DropHeld forgets the fragments held for one message.
func (s *Store) DropHeld(sender message.PublicKey, id message.MessageID) error {
	return s.update(func(t txn) error { return t.dropHeld(sender, id) })
}

func (t txn) dropHeld(sender message.PublicKey, id message.MessageID) error {
	sk := seenKey(sender, id)
	set, err := t.heldSet(sk)
	if err != nil {
		return err
	}
	for _, i := range set {
		if err := t.del(tHeld, heldKey(sender, id, i)); err != nil {
			return err
		}
	}
	return t.del(tHeldSets, sk)
}
