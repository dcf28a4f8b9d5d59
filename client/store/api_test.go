package store

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/client/message"
)

func TestContacts(t *testing.T) {
	s, dir := newStore(t)
	a, b := randomCard(t), randomCard(t)
	if err := s.AddContact("bob", b); err != nil {
		t.Fatal(err)
	}
	if err := s.AddContact("alice", a); err != nil {
		t.Fatal(err)
	}
	if err := s.AddContact("alice", randomCard(t)); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	if err := s.AddContact("alice again", a); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate key: %v", err)
	}
	for _, name := range []string{"", "tab\there", string(make([]byte, MaxNameLength+1)), "\xff"} {
		if err := s.AddContact(name, randomCard(t)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("name %q: %v", name, err)
		}
	}
	if err := s.AddContact("nobody", message.Card{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("card without key: %v", err)
	}
	s = reopen(t, s, dir)
	cs, err := s.Contacts()
	if err != nil || len(cs) != 2 || cs[0].Name != "alice" || cs[1].Name != "bob" ||
		!cs[0].Card.Equal(a) || !cs[1].Card.Equal(b) || cs[0].Added.IsZero() {
		t.Fatalf("contacts: %+v %v", cs, err)
	}
	if err := s.RemoveContact("alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveContact("alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	if _, err := s.Contact("alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed contact: %v", err)
	}
	if err := s.AddContact("alice", a); err != nil {
		t.Fatalf("re-add after remove: %v", err)
	}
}

func TestOutboxARQ(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	dir := t.TempDir() + "/state"
	opts := testOpts()
	opts.Now = func() time.Time { return now }
	s, err := Create(dir, testPass, opts)
	if err != nil {
		t.Fatal(err)
	}
	card := randomCard(t)
	id := randomID()
	frags := [][]byte{[]byte("fragment zero"), []byte("fragment one")}
	if err := s.Enqueue(OutboxMessage{ID: id, To: "bob", Recipient: card}, frags); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(OutboxMessage{ID: id, To: "bob", Recipient: card}, frags); !errors.Is(err, ErrExists) {
		t.Fatalf("same ID twice: %v", err)
	}
	if err := s.Enqueue(OutboxMessage{ID: randomID(), Recipient: card}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no fragments: %v", err)
	}
	s.Close()
	if s, err = Open(dir, testPass, opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := s.OutboxMessage(id)
	if err != nil || m.Fragments != 2 || m.Status != Pending || m.To != "bob" || !m.Recipient.Equal(card) || !m.Queued.Equal(now) {
		t.Fatalf("outbox message: %+v %v", m, err)
	}
	pend, err := s.PendingFragments()
	if err != nil || len(pend) != 2 || pend[0].Attempts != 0 || pend[0].Index != 0 || pend[1].Index != 1 {
		t.Fatalf("pending: %+v %v", pend, err)
	}
	if f, err := s.SealedFragment(id, 1); err != nil || !bytes.Equal(f, frags[1]) {
		t.Fatalf("sealed fragment: %q %v", f, err)
	}

	s1, s2, s3 := SURBID{1}, SURBID{2}, SURBID{3}
	deadline := now.Add(time.Minute)
	for _, a := range []struct {
		index int
		surb  SURBID
	}{{0, s1}, {0, s2}, {1, s3}} {
		if err := s.RecordAttempt(id, a.index, a.surb, testToken(a.surb), deadline); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordAttempt(id, 1, s1, testToken(s1), deadline); !errors.Is(err, ErrExists) {
		t.Fatalf("reused SURB: %v", err)
	}
	if err := s.RecordAttempt(id, 7, SURBID{9}, testToken(SURBID{9}), deadline); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no such fragment: %v", err)
	}
	for _, bad := range [][]byte{nil, {}, make([]byte, MaxTokenLength+1)} {
		if err := s.RecordAttempt(id, 1, SURBID{10}, bad, deadline); !errors.Is(err, ErrInvalid) {
			t.Fatalf("token of %d bytes: %v", len(bad), err)
		}
	}
	s.Close()
	if s, err = Open(dir, testPass, opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pend, _ = s.PendingFragments()
	if pend[0].Attempts != 2 || !slices.Equal(pend[0].SURBs, []SURBID{s1, s2}) || !pend[0].NextDeadline.Equal(deadline) {
		t.Fatalf("fragment 0 state: %+v", pend[0])
	}
	// Each attempt's token survives a restart, and is a copy.
	for _, sb := range []SURBID{s1, s2, s3} {
		tok, err := s.SURBToken(sb)
		if err != nil || !bytes.Equal(tok, testToken(sb)) {
			t.Fatalf("token of SURB %d: %x %v", sb[0], tok, err)
		}
		clear(tok)
	}
	if tok, err := s.SURBToken(s1); err != nil || !bytes.Equal(tok, testToken(s1)) {
		t.Fatalf("token after the caller wiped its copy: %v", err)
	}
	if _, err := s.SURBToken(SURBID{42}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token of an unknown SURB: %v", err)
	}
	// A late ACK on the first attempt's SURB counts, and drops the tokens
	// of every attempt of the fragment.
	ack, err := s.Acknowledge(s1)
	if err != nil || ack.ID != id || ack.Index != 0 || ack.Duplicate || ack.MessageDelivered {
		t.Fatalf("ack: %+v %v", ack, err)
	}
	for _, sb := range []SURBID{s1, s2} {
		if _, err := s.SURBToken(sb); !errors.Is(err, ErrNotFound) {
			t.Fatalf("token of SURB %d kept after the ACK: %v", sb[0], err)
		}
	}
	if _, err := s.SURBToken(s3); err != nil {
		t.Fatalf("another fragment's token dropped: %v", err)
	}
	if ack, err = s.Acknowledge(s2); err != nil || !ack.Duplicate {
		t.Fatalf("second ack of the same fragment: %+v %v", ack, err)
	}
	if err := s.RecordAttempt(id, 0, SURBID{8}, testToken(SURBID{8}), deadline); !errors.Is(err, ErrNotFound) {
		t.Fatalf("attempt on a delivered fragment: %v", err)
	}
	if _, err := s.Acknowledge(SURBID{42}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown SURB: %v", err)
	}
	if pend, _ = s.PendingFragments(); len(pend) != 1 || pend[0].Index != 1 {
		t.Fatalf("pending after one ack: %+v", pend)
	}
	if ack, err = s.Acknowledge(s3); err != nil || !ack.MessageDelivered {
		t.Fatalf("final ack: %+v %v", ack, err)
	}
	if m, _ = s.OutboxMessage(id); m.Status != Delivered || m.Delivered != 2 {
		t.Fatalf("after delivery: %+v", m)
	}
	// Everything but the message record is gone.
	if _, err := s.SealedFragment(id, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fragment kept after delivery: %v", err)
	}
	for _, sb := range []SURBID{s1, s2, s3} {
		if _, err := s.Acknowledge(sb); !errors.Is(err, ErrNotFound) {
			t.Fatalf("SURB kept after delivery: %v", err)
		}
		if _, err := s.SURBToken(sb); !errors.Is(err, ErrNotFound) {
			t.Fatalf("token kept after delivery: %v", err)
		}
	}
	if pend, _ = s.PendingFragments(); len(pend) != 0 {
		t.Fatalf("pending after delivery: %+v", pend)
	}

	// A message that fails.
	id2 := randomID()
	s.Enqueue(OutboxMessage{ID: id2, To: "bob", Recipient: card}, frags)
	s.RecordAttempt(id2, 0, SURBID{5}, testToken(SURBID{5}), deadline)
	if err := s.FailMessage(id2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SURBToken(SURBID{5}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token kept after failure: %v", err)
	}
	if err := s.FailMessage(id2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fail twice: %v", err)
	}
	if _, err := s.Acknowledge(SURBID{5}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ack after failure: %v", err)
	}
	// A pending message removed.
	id3 := randomID()
	s.Enqueue(OutboxMessage{ID: id3, To: "bob", Recipient: card}, frags)
	s.RecordAttempt(id3, 1, SURBID{6}, testToken(SURBID{6}), deadline)
	out, err := s.Outbox()
	if err != nil || len(out) != 3 {
		t.Fatalf("outbox: %+v %v", out, err)
	}
	for _, m := range out {
		if err := s.RemoveOutbox(m.ID); err != nil {
			t.Fatal(err)
		}
	}
	if out, _ := s.Outbox(); len(out) != 0 {
		t.Fatal("outbox not empty")
	}
	if _, err := s.SURBToken(SURBID{6}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token kept after removal: %v", err)
	}
	if Pending.String() != "pending" || Failed.String() != "failed" {
		t.Fatal("status names")
	}
}

func TestSURBBound(t *testing.T) {
	s, _ := newStore(t)
	id := randomID()
	s.Enqueue(OutboxMessage{ID: id, Recipient: randomCard(t)}, [][]byte{{1}})
	for i := range maxSURBsPerFragment + 3 {
		if err := s.RecordAttempt(id, 0, SURBID{byte(i), 1}, testToken(SURBID{byte(i)}), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	pend, _ := s.PendingFragments()
	if len(pend[0].SURBs) != maxSURBsPerFragment || pend[0].Attempts != maxSURBsPerFragment+3 {
		t.Fatalf("%d SURBs, %d attempts", len(pend[0].SURBs), pend[0].Attempts)
	}
	if _, err := s.SURBToken(SURBID{0, 1}); !errors.Is(err, ErrNotFound) {
		t.Fatal("oldest SURB's token kept")
	}
	if _, err := s.Acknowledge(SURBID{0, 1}); !errors.Is(err, ErrNotFound) {
		t.Fatal("oldest SURB kept")
	}
	if a, err := s.Acknowledge(SURBID{maxSURBsPerFragment + 2, 1}); err != nil || !a.MessageDelivered {
		t.Fatal("newest SURB lost")
	}
}

func TestInbox(t *testing.T) {
	s, dir := newStore(t)
	sender := randomCard(t).Key
	m1 := &message.Message{Sender: sender, ID: randomID(), Body: []byte("first")}
	m2 := &message.Message{Sender: sender, ID: randomID(), Body: bytes.Repeat([]byte("second "), 10000)}
	seq1, err := s.SaveMessage("alice", m1)
	if err != nil || seq1 != 1 {
		t.Fatal(seq1, err)
	}
	seq2, err := s.SaveMessage("alice", m2)
	if err != nil || seq2 != 2 {
		t.Fatal(seq2, err)
	}
	s = reopen(t, s, dir)
	if _, err := s.SaveMessage("alice", m1); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate after restart: %v", err)
	}
	if ok, err := s.Seen(sender, m2.ID); !ok || err != nil {
		t.Fatal("not seen")
	}
	if ok, _ := s.Seen(randomCard(t).Key, m2.ID); ok {
		t.Fatal("seen under another sender")
	}
	list, err := s.Inbox()
	if err != nil || len(list) != 2 || list[0].Seq != 1 || list[1].Size != len(m2.Body) || list[1].Body != nil || list[0].From != "alice" || list[0].Read {
		t.Fatalf("inbox: %+v %v", list, err)
	}
	if err := s.MarkRead(1); err != nil {
		t.Fatal(err)
	}
	e, err := s.InboxMessage(2)
	if err != nil || !bytes.Equal(e.Body, m2.Body) || !e.Sender.Equal(sender) || e.ID != m2.ID {
		t.Fatalf("inbox message: %v", err)
	}
	if err := s.DeleteMessage(1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InboxMessage(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted: %v", err)
	}
	if err := s.DeleteMessage(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := s.SaveMessage("alice", m1); !errors.Is(err, ErrExists) {
		t.Fatalf("deleted message came back: %v", err)
	}
	// Sequence numbers are never reused.
	if seq, err := s.SaveMessage("bob", &message.Message{Sender: sender, ID: randomID()}); err != nil || seq != 3 {
		t.Fatal(seq, err)
	}
	if list, _ = s.Inbox(); len(list) != 2 || !list[0].Read == (list[0].Seq == 1) {
		t.Fatalf("inbox after delete: %+v", list)
	}
}

func TestHeldFragments(t *testing.T) {
	s, dir := newStore(t)
	alice, bob := randomCard(t).Key, randomCard(t).Key
	id := randomID()
	f0 := message.Fragment{ID: id, Index: 0, Count: 3, Total: 7, Body: []byte("abc")}
	f2 := message.Fragment{ID: id, Index: 2, Count: 3, Total: 7, Body: []byte("g")}
	other := message.Fragment{ID: randomID(), Index: 1, Count: 2, Total: 4, Body: []byte("zz")}
	for _, h := range []HeldFragment{{alice, f0}, {alice, f2}, {alice, f2}, {bob, other}} {
		if err := s.HoldFragment(h.Sender, h.Fragment); err != nil {
			t.Fatal(err)
		}
	}
	s = reopen(t, s, dir)
	held, err := s.HeldFragments()
	if err != nil || len(held) != 3 {
		t.Fatalf("held: %d %v", len(held), err)
	}
	// Feed them to a reassembler, as the daemon does at start, and finish.
	r, _ := message.NewReassembler(message.ReassemblerConfig{})
	for _, h := range held {
		if _, err := r.Add(h.Sender, h.Fragment); err != nil {
			t.Fatal(err)
		}
	}
	m, err := r.Add(alice, message.Fragment{ID: id, Index: 1, Count: 3, Total: 7, Body: []byte("def")})
	if err != nil || m == nil || string(m.Body) != "abcdefg" {
		t.Fatalf("reassembly from held fragments: %v", err)
	}
	if _, err := s.SaveMessage("alice", m); err != nil {
		t.Fatal(err)
	}
	if held, _ = s.HeldFragments(); len(held) != 1 || !held[0].Sender.Equal(bob) {
		t.Fatalf("SaveMessage left held fragments: %d", len(held))
	}
	if err := s.HoldFragment(alice, f0); !errors.Is(err, ErrExists) {
		t.Fatalf("fragment of a seen message: %v", err)
	}
	if err := s.DropHeld(bob, other.ID); err != nil {
		t.Fatal(err)
	}
	if held, _ = s.HeldFragments(); len(held) != 0 {
		t.Fatal("DropHeld left fragments")
	}
}
