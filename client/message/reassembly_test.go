package message

import (
	"bytes"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"testing"
)

func split(t testing.TB, msg []byte, capacity int) []Fragment {
	t.Helper()
	frags, err := Split(rand.Reader, msg, capacity, 0)
	if err != nil {
		t.Fatal(err)
	}
	return frags
}

func newReassembler(t testing.TB, cfg ReassemblerConfig) *Reassembler {
	t.Helper()
	r, err := NewReassembler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReassembleOutOfOrderWithDuplicates(t *testing.T) {
	alice := newKey(t).Public()
	for trial := range 50 {
		msg := make([]byte, 1+mrand.IntN(5000))
		rand.Read(msg)
		frags := split(t, msg, 1+mrand.IntN(700))
		// Every fragment once or twice, in random order.
		var order []Fragment
		for _, f := range frags {
			order = append(order, f)
			if mrand.IntN(2) == 0 {
				order = append(order, f)
			}
		}
		mrand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		r := newReassembler(t, ReassemblerConfig{})
		var got []*Message
		dups := 0
		for _, f := range order {
			m, err := r.Add(alice, f)
			switch {
			case errors.Is(err, ErrDuplicate):
				dups++
			case err != nil:
				t.Fatalf("trial %d: %v", trial, err)
			case m != nil:
				got = append(got, m)
			}
		}
		if len(got) != 1 || !bytes.Equal(got[0].Body, msg) || got[0].ID != frags[0].ID || !got[0].Sender.Equal(alice) {
			t.Fatalf("trial %d: %d messages completed", trial, len(got))
		}
		if dups != len(order)-len(frags) {
			t.Fatalf("trial %d: %d duplicates reported, want %d", trial, dups, len(order)-len(frags))
		}
		st := r.Stats()
		if st.Partials != 0 || st.Bytes != 0 || st.Completed != 1 || st.Duplicates != uint64(dups) {
			t.Fatalf("trial %d: stats %+v", trial, st)
		}
		// Late duplicates of a completed message are dropped.
		if _, err := r.Add(alice, frags[0]); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("late duplicate: %v", err)
		}
	}
}

func TestReassembleMissingNeverCompletes(t *testing.T) {
	alice := newKey(t).Public()
	msg := make([]byte, 1000)
	frags := split(t, msg, 100)
	for missing := range frags {
		r := newReassembler(t, ReassemblerConfig{})
		for round := range 3 {
			for i, f := range frags {
				if i == missing {
					continue
				}
				m, err := r.Add(alice, f)
				if m != nil {
					t.Fatalf("completed without fragment %d", missing)
				}
				if round > 0 && !errors.Is(err, ErrDuplicate) || round == 0 && err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
		}
		if st := r.Stats(); st.Partials != 1 || st.Bytes != 900 {
			t.Fatalf("stats %+v", st)
		}
		if m, err := r.Add(alice, frags[missing]); err != nil || m == nil || !bytes.Equal(m.Body, msg) {
			t.Fatalf("last fragment: %v", err)
		}
	}
}

// TestReassembleSendersApart: the same message ID from two senders is two
// messages; one contact cannot complete or extend another's.
func TestReassembleSendersApart(t *testing.T) {
	alice, mallory := newKey(t).Public(), newKey(t).Public()
	frags := split(t, []byte("abcdefghij"), 5)
	forged := Fragment{ID: frags[0].ID, Index: 1, Count: 2, Total: 10, Body: []byte("XXXXX")}
	r := newReassembler(t, ReassemblerConfig{})
	if m, err := r.Add(alice, frags[0]); m != nil || err != nil {
		t.Fatal(m, err)
	}
	if m, err := r.Add(mallory, forged); m != nil || err != nil {
		t.Fatal(m, err)
	}
	m, err := r.Add(alice, frags[1])
	if err != nil || m == nil || string(m.Body) != "abcdefghij" {
		t.Fatalf("alice's message: %v", err)
	}
}

func TestReassembleEvictsByCount(t *testing.T) {
	alice := newKey(t).Public()
	var evicted []MessageID
	r := newReassembler(t, ReassemblerConfig{
		MaxPartials: 3,
		OnEvict:     func(_ PublicKey, id MessageID) { evicted = append(evicted, id) },
	})
	var msgs [][]Fragment
	for i := range 5 {
		msgs = append(msgs, split(t, bytes.Repeat([]byte{byte(i)}, 20), 10))
		if _, err := r.Add(alice, msgs[i][0]); err != nil {
			t.Fatal(err)
		}
		// Touch message 0 each time, so it stays the most recently extended.
		if i > 0 && i < 3 {
			if _, err := r.Add(alice, msgs[0][0]); !errors.Is(err, ErrDuplicate) {
				t.Fatal(err)
			}
		}
	}
	// 0 was touched after 1 and 2 arrived; 1 is oldest when 3 arrives, 2 when 4 does.
	if len(evicted) != 2 || evicted[0] != msgs[1][0].ID || evicted[1] != msgs[2][0].ID {
		t.Fatalf("evicted %v", evicted)
	}
	if st := r.Stats(); st.Partials != 3 || st.Evicted != 2 || st.Bytes != 30 {
		t.Fatalf("stats %+v", st)
	}
	for _, i := range []int{0, 3, 4} {
		if m, err := r.Add(alice, msgs[i][1]); err != nil || m == nil {
			t.Fatalf("message %d did not complete: %v", i, err)
		}
	}
	// An evicted message starts again from scratch and still needs both.
	if m, err := r.Add(alice, msgs[1][1]); m != nil || err != nil {
		t.Fatal(m, err)
	}
}

func TestReassembleEvictsByBytes(t *testing.T) {
	alice := newKey(t).Public()
	r := newReassembler(t, ReassemblerConfig{MaxMessageSize: 100, MaxPartialBytes: 100})
	a := split(t, make([]byte, 100), 40) // 40, 40, 20
	b := split(t, make([]byte, 100), 40)
	for _, f := range a[:2] {
		if _, err := r.Add(alice, f); err != nil {
			t.Fatal(err)
		}
	}
	// b's first fragment needs 40 bytes: 80 held + 40 > 100, so a goes.
	if _, err := r.Add(alice, b[0]); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Evicted != 1 || st.Partials != 1 || st.Bytes != 40 {
		t.Fatalf("stats %+v", st)
	}
	// Extending b past the bound never evicts b itself.
	for _, f := range b[1:] {
		if _, err := r.Add(alice, f); err != nil {
			t.Fatal(err)
		}
	}
	if st := r.Stats(); st.Completed != 1 || st.Partials != 0 || st.Bytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReassembleRefusals(t *testing.T) {
	alice := newKey(t).Public()
	r := newReassembler(t, ReassemblerConfig{MaxMessageSize: 50})
	big := split(t, make([]byte, 51), 10)
	if _, err := r.Add(alice, big[0]); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	frags := split(t, make([]byte, 30), 10)
	if _, err := r.Add(alice, frags[0]); err != nil {
		t.Fatal(err)
	}
	bad := frags[1]
	bad.Count = 4
	if _, err := r.Add(alice, bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("count disagrees: %v", err)
	}
	if st := r.Stats(); st.Partials != 0 {
		t.Fatal("inconsistent message kept")
	}
	for _, f := range []Fragment{
		{Count: 0},
		{Count: 2, Index: 2, Total: 4, Body: []byte("ab")},
		{Count: 1, Total: 1, Body: []byte("ab")},
		{Count: 2, Total: 0},
		{Count: 3, Total: 2, Body: []byte("a")},
	} {
		if _, err := r.Add(alice, f); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%+v: %v", f, err)
		}
	}
	// Fragments whose bodies together overrun the total.
	id := frags[0].ID
	id[0] ^= 1
	if _, err := r.Add(alice, Fragment{ID: id, Count: 3, Total: 5, Body: []byte("abc")}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add(alice, Fragment{ID: id, Index: 1, Count: 3, Total: 5, Body: []byte("abc")}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("overrun: %v", err)
	}
	// Bodies that fall short of the total.
	id[0] ^= 2
	for i, body := range []string{"a", "b"} {
		_, err := r.Add(alice, Fragment{ID: id, Index: uint32(i), Count: 2, Total: 5, Body: []byte(body)})
		if i == 1 && !errors.Is(err, ErrMalformed) {
			t.Fatalf("short: %v", err)
		}
	}
	for _, cfg := range []ReassemblerConfig{{MaxPartials: -1}, {MaxMessageSize: 100, MaxPartialBytes: 99}} {
		if _, err := NewReassembler(cfg); err == nil {
			t.Fatalf("config %+v accepted", cfg)
		}
	}
}

func TestReassembleRemembersBoundedCompleted(t *testing.T) {
	alice := newKey(t).Public()
	r := newReassembler(t, ReassemblerConfig{RememberCompleted: 2})
	var ones []Fragment
	for range 3 {
		f := split(t, []byte("x"), 10)[0]
		ones = append(ones, f)
		if m, err := r.Add(alice, f); err != nil || m == nil {
			t.Fatal(err)
		}
	}
	// The two most recent are remembered; the first was forgotten, and
	// catching it is the store's job.
	for _, c := range []struct {
		i       int
		wantDup bool
	}{{2, true}, {1, true}, {0, false}} {
		i, wantDup := c.i, c.wantDup
		_, err := r.Add(alice, ones[i])
		if errors.Is(err, ErrDuplicate) != wantDup {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

// TestReassembleModel drives a Reassembler with random fragments of several
// messages from several senders, with losses and duplicates, and compares
// with an obvious model: a message completes exactly when all its indices
// have arrived while it was held.
func TestReassembleModel(t *testing.T) {
	senders := []PublicKey{newKey(t).Public(), newKey(t).Public()}
	type msg struct {
		sender PublicKey
		frags  []Fragment
		body   []byte
	}
	var msgs []msg
	for i := range 12 {
		body := make([]byte, mrand.IntN(300))
		rand.Read(body)
		msgs = append(msgs, msg{senders[i%2], split(t, body, 1+mrand.IntN(60)), body})
	}
	type ev struct{ m, i int }
	var evs []ev
	for mi, m := range msgs {
		for i := range m.frags {
			for range mrand.IntN(3) { // 0, 1 or 2 copies
				evs = append(evs, ev{mi, i})
			}
		}
	}
	mrand.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	r := newReassembler(t, ReassemblerConfig{})
	seen := make([]map[int]bool, len(msgs))
	done := make([]bool, len(msgs))
	for _, e := range evs {
		m := msgs[e.m]
		got, err := r.Add(m.sender, m.frags[e.i])
		if seen[e.m] == nil {
			seen[e.m] = map[int]bool{}
		}
		dup := done[e.m] || seen[e.m][e.i]
		seen[e.m][e.i] = true
		if dup != errors.Is(err, ErrDuplicate) || (!dup && err != nil) {
			t.Fatalf("message %d fragment %d: dup %t, err %v", e.m, e.i, dup, err)
		}
		if complete := !done[e.m] && len(seen[e.m]) == len(m.frags); complete != (got != nil) {
			t.Fatalf("message %d: model complete %t, got %v", e.m, complete, got != nil)
		} else if complete {
			done[e.m] = true
			if !bytes.Equal(got.Body, m.body) || got.ID != m.frags[0].ID || !got.Sender.Equal(m.sender) {
				t.Fatalf("message %d reassembled wrongly", e.m)
			}
		}
	}
}
