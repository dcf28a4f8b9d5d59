package spool

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func openSpool(t testing.TB, path string, cfg Config) *Spool {
	t.Helper()
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	s, err := Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mailbox(i int) [MailboxIDLength]byte {
	var m [MailboxIDLength]byte
	binary.BigEndian.PutUint64(m[:], uint64(i))
	m[31] = 0xa5
	return m
}

func mustPut(t testing.TB, s *Spool, m [MailboxIDLength]byte, p string) {
	t.Helper()
	if err := s.Put(m, []byte(p)); err != nil {
		t.Fatal(err)
	}
}

// drain retrieves and acknowledges everything in m, in order.
func drain(t testing.TB, s *Spool, m [MailboxIDLength]byte) []string {
	t.Helper()
	var got []string
	for {
		seq, p, _, ok, err := s.Peek(m)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return got
		}
		got = append(got, string(p))
		if err := s.Ack(m, seq); err != nil {
			t.Fatal(err)
		}
	}
}

func evicted(s *Spool, reason int) int { return int(testutil.ToFloat64(s.metrics.evicted[reason])) }

// TestRetrieveOnceInOrder: each message is returned until acknowledged,
// then never again, in the order stored.
func TestRetrieveOnceInOrder(t *testing.T) {
	s := openSpool(t, filepath.Join(t.TempDir(), "spool.db"), Config{})
	m := mailbox(1)
	if _, _, _, ok, err := s.Peek(m); ok || err != nil {
		t.Fatalf("empty mailbox: ok %v, err %v", ok, err)
	}
	for i := range 5 {
		mustPut(t, s, m, fmt.Sprint("msg", i))
	}
	var lastSeq uint64
	for i := range 5 {
		seq, p, remaining, ok, err := s.Peek(m)
		if err != nil || !ok {
			t.Fatalf("Peek: %v, %v", ok, err)
		}
		if string(p) != fmt.Sprint("msg", i) || remaining != 4-i || seq <= lastSeq {
			t.Fatalf("Peek %d = seq %d %q remaining %d", i, seq, p, remaining)
		}
		// Retrieving again without an ack returns the same message.
		seq2, p2, _, _, _ := s.Peek(m)
		if seq2 != seq || !bytes.Equal(p2, p) {
			t.Fatal("second Peek returned another message")
		}
		p[0] ^= 0xff // the caller owns the copy
		if err := s.Ack(m, seq); err != nil {
			t.Fatal(err)
		}
		// A retransmitted ack is harmless.
		if err := s.Ack(m, seq); err != nil {
			t.Fatal(err)
		}
		lastSeq = seq
	}
	if _, _, _, ok, _ := s.Peek(m); ok {
		t.Fatal("message returned after its ack")
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Fatalf("Stats after draining = %+v", st)
	}
	if n := testutil.ToFloat64(s.metrics.delivered); n != 5 {
		t.Fatalf("delivered = %v", n)
	}
	if n := testutil.ToFloat64(s.metrics.stored); n != 5 {
		t.Fatalf("stored = %v", n)
	}
}

// TestMailboxIsolation: everything is scoped by mailbox ID; sequence
// numbers are per mailbox, so equal numbers in two mailboxes never mix.
func TestMailboxIsolation(t *testing.T) {
	s := openSpool(t, filepath.Join(t.TempDir(), "spool.db"), Config{})
	a, b, c := mailbox(1), mailbox(2), mailbox(3)
	mustPut(t, s, a, "a1")
	mustPut(t, s, a, "a2")
	mustPut(t, s, b, "b1")

	seqA, _, _, _, _ := s.Peek(a)
	seqB, pb, remB, _, _ := s.Peek(b)
	if string(pb) != "b1" || remB != 0 {
		t.Fatalf("b sees %q, remaining %d", pb, remB)
	}
	if _, _, _, ok, _ := s.Peek(c); ok {
		t.Fatal("an empty mailbox returned a message")
	}
	// Acks from b and c for a's sequence numbers touch nothing of a's.
	for _, seq := range []uint64{seqA, seqA + 1, seqB} {
		if err := s.Ack(c, seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ack(b, seqA+1); err != nil { // a2's number; b has no such message
		t.Fatal(err)
	}
	if err := s.Ack(b, seqB); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s, a); fmt.Sprint(got) != "[a1 a2]" {
		t.Fatalf("a holds %v after b's acks", got)
	}
	if got := drain(t, s, b); len(got) != 0 {
		t.Fatalf("b holds %v", got)
	}
}

func TestAckAnySequence(t *testing.T) {
	s := openSpool(t, filepath.Join(t.TempDir(), "spool.db"), Config{})
	m := mailbox(1)
	for i := range 3 {
		mustPut(t, s, m, fmt.Sprint(i))
	}
	head, _, _, _, _ := s.Peek(m)
	if err := s.Ack(m, head+1); err != nil { // the middle one
		t.Fatal(err)
	}
	if err := s.Ack(m, 1<<60); err != nil { // never assigned
		t.Fatal(err)
	}
	if got := drain(t, s, m); fmt.Sprint(got) != "[0 2]" {
		t.Fatalf("left %v", got)
	}
}

// TestSequenceNeverReused: a mailbox's sequence survives deletes and
// restarts, so a stale ack can never remove a newer message.
func TestSequenceNeverReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	s := openSpool(t, path, Config{})
	m := mailbox(1)
	var seqs []uint64
	for i := range 3 {
		mustPut(t, s, m, fmt.Sprint(i))
		seq, _, _, _, _ := s.Peek(m)
		seqs = append(seqs, seq)
		if err := s.Ack(m, seq); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openSpool(t, path, Config{})
	mustPut(t, s, m, "after restart")
	for _, old := range seqs {
		if err := s.Ack(m, old); err != nil {
			t.Fatal(err)
		}
	}
	seq, p, _, ok, _ := s.Peek(m)
	if !ok || string(p) != "after restart" {
		t.Fatal("a stale ack removed a new message")
	}
	if seq <= seqs[len(seqs)-1] {
		t.Fatalf("sequence went back: %d after %v", seq, seqs)
	}
}

func TestRetentionCount(t *testing.T) {
	s := openSpool(t, filepath.Join(t.TempDir(), "spool.db"), Config{MaxMessages: 3})
	m := mailbox(1)
	for i := range 5 {
		mustPut(t, s, m, fmt.Sprint(i))
	}
	if n := evicted(s, reasonCount); n != 2 {
		t.Fatalf("evicted{count} = %d, want 2", n)
	}
	if st := s.Stats(); st.Messages != 3 || st.Bytes != 3 || st.Mailboxes != 1 {
		t.Fatalf("Stats = %+v", st)
	}
	if got := drain(t, s, m); fmt.Sprint(got) != "[2 3 4]" {
		t.Fatalf("kept %v, want the newest three", got)
	}
}

func TestRetentionBytes(t *testing.T) {
	s := openSpool(t, filepath.Join(t.TempDir(), "spool.db"), Config{MaxBytes: 10})
	m := mailbox(1)
	mustPut(t, s, m, "aaaa")
	mustPut(t, s, m, "bbbb")
	mustPut(t, s, m, "cc") // 10 bytes: fits
	if n := evicted(s, reasonBytes); n != 0 {
		t.Fatalf("evicted{bytes} = %d at the limit", n)
	}
	mustPut(t, s, m, "dddddd") // 16: evict aaaa, bbbb
	if n := evicted(s, reasonBytes); n != 2 {
		t.Fatalf("evicted{bytes} = %d, want 2", n)
	}
	if err := s.Put(m, make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put larger than MaxBytes: %v", err)
	}
	if err := s.Put(m, make([]byte, MaxPayloadLength+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put larger than MaxPayloadLength: %v", err)
	}
	if st := s.Stats(); st.Bytes != 8 || st.Messages != 2 {
		t.Fatalf("Stats = %+v", st)
	}
	if got := drain(t, s, m); fmt.Sprint(got) != "[cc dddddd]" {
		t.Fatalf("kept %v", got)
	}
}

func TestRetentionAge(t *testing.T) {
	clock := newFakeClock()
	s := openSpool(t, filepath.Join(t.TempDir(), "spool.db"), Config{MaxAge: time.Hour, Clock: clock.Now})
	a, b := mailbox(1), mailbox(2)
	mustPut(t, s, a, "old-a")
	mustPut(t, s, b, "old-b")
	clock.Advance(30 * time.Minute)
	mustPut(t, s, a, "new-a")
	if err := s.Expire(); err != nil {
		t.Fatal(err)
	}
	if n := evicted(s, reasonAge); n != 0 {
		t.Fatalf("evicted{age} = %d before MaxAge", n)
	}
	clock.Advance(31 * time.Minute)
	// Put evicts what is too old in its own mailbox...
	mustPut(t, s, a, "newest-a")
	if n := evicted(s, reasonAge); n != 1 {
		t.Fatalf("evicted{age} = %d after Put, want 1", n)
	}
	// ...and Expire everywhere.
	if err := s.Expire(); err != nil {
		t.Fatal(err)
	}
	if n := evicted(s, reasonAge); n != 2 {
		t.Fatalf("evicted{age} = %d after Expire, want 2", n)
	}
	if st := s.Stats(); st.Mailboxes != 1 || st.Messages != 2 {
		t.Fatalf("Stats = %+v", st)
	}
	if got := drain(t, s, a); fmt.Sprint(got) != "[new-a newest-a]" {
		t.Fatalf("a kept %v", got)
	}
	if got := drain(t, s, b); len(got) != 0 {
		t.Fatalf("b kept %v", got)
	}
}

// TestExpireLoweredLimits: Expire trims mailboxes over limits that were
// lowered since their messages were stored.
func TestExpireLoweredLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	s := openSpool(t, path, Config{})
	for i := range 10 {
		mustPut(t, s, mailbox(1), fmt.Sprint(i))
		mustPut(t, s, mailbox(2), "xx")
	}
	s.Close()
	s = openSpool(t, path, Config{MaxMessages: 4, MaxBytes: 10})
	if err := s.Expire(); err != nil {
		t.Fatal(err)
	}
	if n := evicted(s, reasonCount); n != 12 {
		t.Fatalf("evicted{count} = %d, want 12", n)
	}
	if n := evicted(s, reasonBytes); n != 0 {
		t.Fatalf("evicted{bytes} = %d, want 0", n)
	}
	if got := drain(t, s, mailbox(1)); fmt.Sprint(got) != "[6 7 8 9]" {
		t.Fatalf("kept %v", got)
	}
}

func TestStatsAndGaugesSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	s := openSpool(t, path, Config{})
	mustPut(t, s, mailbox(1), "12345")
	mustPut(t, s, mailbox(2), "123")
	mustPut(t, s, mailbox(2), "1")
	want := Stats{Mailboxes: 2, Messages: 3, Bytes: 9}
	if st := s.Stats(); st != want {
		t.Fatalf("Stats = %+v", st)
	}
	s.Close()
	s = openSpool(t, path, Config{})
	if st := s.Stats(); st != want {
		t.Fatalf("Stats after reopen = %+v, want %+v", st, want)
	}
	if v := testutil.ToFloat64(s.metrics.bytes); v != 9 {
		t.Fatalf("bytes gauge = %v", v)
	}
	if v := testutil.ToFloat64(s.metrics.messages); v != 3 {
		t.Fatalf("messages gauge = %v", v)
	}
}

// TestUsageRebuilt: a missing or damaged usage record is rebuilt by Open.
func TestUsageRebuilt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	s := openSpool(t, path, Config{MaxMessages: 3})
	for range 3 {
		mustPut(t, s, mailbox(1), "ab")
		mustPut(t, s, mailbox(2), "abc")
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketUsage)
		id1, id2 := mailbox(1), mailbox(2)
		if err := ub.Delete(id1[:]); err != nil {
			return err
		}
		if err := ub.Put(id2[:], []byte("junk")); err != nil {
			return err
		}
		stale := mailbox(3)
		return ub.Put(stale[:], usage{5, 5}.encode())
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openSpool(t, path, Config{MaxMessages: 3})
	if st := s.Stats(); st != (Stats{Mailboxes: 2, Messages: 6, Bytes: 15}) {
		t.Fatalf("Stats = %+v", st)
	}
	// Limits work on the rebuilt counts.
	mustPut(t, s, mailbox(1), "ab")
	if n := evicted(s, reasonCount); n != 1 {
		t.Fatalf("evicted{count} = %d", n)
	}
	if _, _, rem, _, _ := s.Peek(mailbox(2)); rem != 2 {
		t.Fatalf("remaining = %d", rem)
	}
}

// TestCorruptMessageDropped: a message that fails its checksum is dropped
// and counted, never delivered.
func TestCorruptMessageDropped(t *testing.T) {
	s := openSpool(t, filepath.Join(t.TempDir(), "spool.db"), Config{})
	m := mailbox(1)
	mustPut(t, s, m, "first")
	mustPut(t, s, m, "second")
	seq, _, _, _, _ := s.Peek(m)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMailboxes).Bucket(m[:])
		v := bytes.Clone(b.Get(seqKey(seq)))
		v[len(v)-1] ^= 1
		return b.Put(seqKey(seq), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s, m); fmt.Sprint(got) != "[second]" {
		t.Fatalf("delivered %v", got)
	}
	if n := evicted(s, reasonCorrupt); n != 1 {
		t.Fatalf("evicted{corrupt} = %d", n)
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestClosed(t *testing.T) {
	s := openSpool(t, filepath.Join(t.TempDir(), "spool.db"), Config{MaxAge: time.Hour})
	mustPut(t, s, mailbox(1), "x")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Put(mailbox(1), []byte("y")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, _, _, _, err := s.Peek(mailbox(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Peek after Close: %v", err)
	}
	if err := s.Ack(mailbox(1), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close: %v", err)
	}
	if err := s.Expire(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Expire after Close: %v", err)
	}
}

// TestCloseWhileStoring: every Put that returned nil during a concurrent
// Close is there after reopening.
func TestCloseWhileStoring(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	s := openSpool(t, path, Config{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := map[int]int{}
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				err := s.Put(mailbox(w), []byte(fmt.Sprint(i)))
				if errors.Is(err, ErrClosed) {
					return
				} else if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				stored[w] = i + 1
				mu.Unlock()
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s = openSpool(t, path, Config{})
	for w, n := range stored {
		if got := len(drain(t, s, mailbox(w))); got < n {
			t.Fatalf("mailbox %d holds %d messages; %d Puts returned nil", w, got, n)
		}
	}
}

func TestLocked(t *testing.T) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 50 * time.Millisecond
	path := filepath.Join(t.TempDir(), "spool.db")
	first := openSpool(t, path, Config{})
	reg := prometheus.NewRegistry()
	if _, err := Open(path, Config{Registerer: reg}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	// The failed Open left nothing registered.
	first.Close()
	openSpool(t, path, Config{Registerer: reg})
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	openSpool(t, path, Config{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []Config{{MaxAge: -1}, {MaxMessages: -1}, {MaxBytes: -1}} {
		if _, err := Open(filepath.Join(t.TempDir(), "spool.db"), c); err == nil {
			t.Errorf("Open accepted %+v", c)
		}
	}
	reg := prometheus.NewRegistry()
	openSpool(t, filepath.Join(t.TempDir(), "a.db"), Config{Registerer: reg})
	if _, err := Open(filepath.Join(t.TempDir(), "b.db"), Config{Registerer: reg}); err == nil {
		t.Error("two spools registered the same metrics")
	}
}

// TestGroupCommit: operations that arrive while a commit is in progress go
// into the next commit together, and each caller returns only after its own
// commit.
func TestGroupCommit(t *testing.T) {
	s := openSpool(t, filepath.Join(t.TempDir(), "spool.db"), Config{})
	release := make(chan struct{})
	entered := make(chan int, 100)
	var batches []int
	var mu sync.Mutex
	s.beforeCommit = func(n int) {
		mu.Lock()
		batches = append(batches, n)
		first := len(batches) == 1
		mu.Unlock()
		entered <- n
		if first {
			<-release
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { mustPut(t, s, mailbox(0), "leader") })
	<-entered // the first commit is held

	const followers = 20
	var done sync.WaitGroup
	returned := make(chan struct{}, followers)
	for i := range followers {
		done.Go(func() {
			if i%2 == 0 {
				mustPut(t, s, mailbox(i), "follower")
			} else {
				if err := s.Ack(mailbox(0), 99); err != nil {
					t.Error(err)
				}
			}
			returned <- struct{}{}
		})
	}
	// Wait until all followers are queued; none may return meanwhile.
	for {
		s.mu.Lock()
		n := len(s.queue)
		s.mu.Unlock()
		if n == followers {
			break
		}
		select {
		case <-returned:
			t.Fatal("a follower returned before its commit")
		default:
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	done.Wait()
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(batches) != fmt.Sprint([]int{1, followers}) {
		t.Fatalf("batches %v, want [1 %d]", batches, followers)
	}
	if st := s.Stats(); st.Messages != 1+followers/2 {
		t.Fatalf("Stats = %+v", st)
	}
}

// TestModel runs random operations against the spool and a slow, obvious
// model, across restarts, with all three limits.
func TestModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	clock := newFakeClock()
	cfg := Config{MaxAge: time.Hour, MaxMessages: 6, MaxBytes: 70, Clock: clock.Now}
	// The model checks logic, not durability: skip the fsyncs.
	reopen := func() *Spool {
		s := openSpool(t, path, cfg)
		s.db.NoSync = true
		return s
	}
	s := reopen()
	rng := mrand.New(mrand.NewPCG(1, 2))

	type msg struct {
		seq     uint64
		payload string
		stored  time.Time
	}
	model := map[int][]msg{}
	next := map[int]uint64{}
	var evictions, counted [numReasons]int
	trim := func(m int, now time.Time) {
		q := model[m]
		for len(q) > 0 {
			bytes := 0
			for _, x := range q {
				bytes += len(x.payload)
			}
			switch {
			case !q[0].stored.After(now.Add(-cfg.MaxAge)):
				evictions[reasonAge]++
			case len(q) > cfg.MaxMessages:
				evictions[reasonCount]++
			case bytes > int(cfg.MaxBytes):
				evictions[reasonBytes]++
			default:
				model[m] = q
				return
			}
			q = q[1:]
		}
		model[m] = q
	}
	const boxes = 4
	for step := range 3000 {
		m := rng.IntN(boxes)
		switch r := rng.IntN(100); {
		case r < 40:
			p := fmt.Sprintf("%d:%s", step, bytes.Repeat([]byte{'x'}, rng.IntN(15)))
			if err := s.Put(mailbox(m), []byte(p)); err != nil {
				t.Fatal(err)
			}
			next[m]++
			model[m] = append(model[m], msg{next[m], p, clock.Now()})
			trim(m, clock.Now())
		case r < 65:
			seq, p, rem, ok, err := s.Peek(mailbox(m))
			if err != nil {
				t.Fatal(err)
			}
			q := model[m]
			if ok != (len(q) > 0) {
				t.Fatalf("step %d: Peek ok %v, model holds %d", step, ok, len(q))
			}
			if ok && (seq != q[0].seq || string(p) != q[0].payload || rem != len(q)-1) {
				t.Fatalf("step %d: Peek = %d %q %d, model %d %q %d", step, seq, p, rem, q[0].seq, q[0].payload, len(q)-1)
			}
		case r < 85:
			// Ack the head, or any number at all.
			var seq uint64
			if q := model[m]; len(q) > 0 && rng.IntN(3) > 0 {
				seq = q[rng.IntN(len(q))].seq
			} else {
				seq = uint64(rng.IntN(int(next[m]) + 3))
			}
			if err := s.Ack(mailbox(m), seq); err != nil {
				t.Fatal(err)
			}
			q := model[m]
			for i, x := range q {
				if x.seq == seq {
					model[m] = append(q[:i:i], q[i+1:]...)
					break
				}
			}
		case r < 93:
			clock.Advance(time.Duration(rng.IntN(20)) * time.Minute)
		case r < 97:
			if err := s.Expire(); err != nil {
				t.Fatal(err)
			}
			for m := range boxes {
				trim(m, clock.Now())
			}
		default:
			for r := range numReasons {
				counted[r] += evicted(s, r)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = reopen()
		}
		var want Stats
		for _, q := range model {
			if len(q) > 0 {
				want.Mailboxes++
			}
			for _, x := range q {
				want.Messages++
				want.Bytes += int64(len(x.payload))
			}
		}
		if st := s.Stats(); st != want {
			t.Fatalf("step %d: Stats = %+v, model %+v", step, st, want)
		}
	}
	for r := range numReasons {
		counted[r] += evicted(s, r)
	}
	if counted != evictions {
		t.Fatalf("evicted %v, model %v", counted, evictions)
	}
	t.Logf("evicted by age, count, bytes, corrupt: %v", counted)
	for m := range boxes {
		var want []string
		for _, x := range model[m] {
			want = append(want, x.payload)
		}
		if got := drain(t, s, mailbox(m)); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("mailbox %d: %v, model %v", m, got, want)
		}
	}
}

func TestLogsCarryNoMailbox(t *testing.T) {
	var logs bytes.Buffer
	cfg := Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	s := openSpool(t, filepath.Join(t.TempDir(), "spool.db"), cfg)
	var m [MailboxIDLength]byte
	rand.Read(m[:])
	mustPut(t, s, m, "x")
	s.Close()
	s.Put(m, []byte("y"))
	if bytes.Contains(logs.Bytes(), []byte(fmt.Sprintf("%x", m[:4]))) {
		t.Fatalf("log names the mailbox:\n%s", logs.String())
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(0, nil))
	f.Add(encodeRecord(time.Now().UnixNano(), []byte("payload")))
	f.Add(encodeRecord(-1, make([]byte, 100)))
	f.Add([]byte{recordVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		stored, payload, err := decodeRecord(b)
		if err != nil {
			if payload != nil || stored != 0 {
				t.Fatal("failed decode returned data")
			}
			return
		}
		if !bytes.Equal(encodeRecord(stored, payload), b) {
			t.Fatalf("round trip differs for %x", b)
		}
	})
}

func FuzzDecodeUsage(f *testing.F) {
	f.Add(usage{1, 2}.encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := decodeUsage(b)
		if err != nil {
			return
		}
		if !bytes.Equal(u.encode(), b) {
			t.Fatalf("round trip differs for %x", b)
		}
	})
}

// TestBadOpFailsAlone: an operation that cannot be applied (here, a mailbox
// whose name a damaged file holds as a plain value) fails alone; the rest
// of its batch is committed.
func TestBadOpFailsAlone(t *testing.T) {
	s := openSpool(t, filepath.Join(t.TempDir(), "spool.db"), Config{})
	bad := mailbox(9)
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMailboxes).Put(bad[:], []byte("not a bucket"))
	})
	if err != nil {
		t.Fatal(err)
	}
	batch := []*op{
		{kind: opPut, mailbox: mailbox(1), record: encodeRecord(1, []byte("a"))},
		{kind: opPut, mailbox: bad, record: encodeRecord(1, []byte("b"))},
		{kind: opPut, mailbox: mailbox(2), record: encodeRecord(1, []byte("c"))},
	}
	s.commit(batch)
	if batch[0].err != nil || batch[1].err == nil || batch[2].err != nil {
		t.Fatalf("errors %v, %v, %v; want only the second", batch[0].err, batch[1].err, batch[2].err)
	}
	if got := drain(t, s, mailbox(1)); fmt.Sprint(got) != "[a]" {
		t.Fatalf("mailbox 1 holds %v", got)
	}
	if got := drain(t, s, mailbox(2)); fmt.Sprint(got) != "[c]" {
		t.Fatalf("mailbox 2 holds %v", got)
	}
	if err := s.Put(bad, []byte("x")); err == nil {
		t.Fatal("Put to the damaged mailbox succeeded")
	}
}

// TestRefuseWhenFull: with RefuseWhenFull a full mailbox refuses new
// messages and keeps the old ones; age still evicts, and makes room.
func TestRefuseWhenFull(t *testing.T) {
	clock := newFakeClock()
	s := openSpool(t, filepath.Join(t.TempDir(), "spool.db"),
		Config{MaxMessages: 3, MaxBytes: 10, MaxAge: time.Hour, RefuseWhenFull: true, Clock: clock.Now})
	a, b := mailbox(1), mailbox(2)
	for i := range 3 {
		mustPut(t, s, a, fmt.Sprint(i))
	}
	if err := s.Put(a, []byte("3")); !errors.Is(err, ErrFull) {
		t.Fatalf("Put to a full mailbox (count): %v, want ErrFull", err)
	}
	mustPut(t, s, b, "bbbbbbbbb") // 9 bytes
	if err := s.Put(b, []byte("xx")); !errors.Is(err, ErrFull) {
		t.Fatalf("Put to a full mailbox (bytes): %v, want ErrFull", err)
	}
	mustPut(t, s, b, "x") // exactly 10 bytes: fits
	for r := range numReasons {
		if n := evicted(s, r); n != 0 {
			t.Fatalf("evicted{%s} = %d, want none", reasonNames[r], n)
		}
	}
	if st := s.Stats(); st.Messages != 5 || st.Bytes != 13 {
		t.Fatalf("Stats = %+v", st)
	}
	// Lowered limits do not evict either.
	if err := s.Expire(); err != nil {
		t.Fatal(err)
	}
	// Age evicts, and so makes room for the next Put.
	clock.Advance(61 * time.Minute)
	mustPut(t, s, a, "new")
	if n := evicted(s, reasonAge); n != 3 {
		t.Fatalf("evicted{age} = %d, want 3", n)
	}
	if got := drain(t, s, a); fmt.Sprint(got) != "[new]" {
		t.Fatalf("a kept %v", got)
	}
	if err := s.Expire(); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s, b); len(got) != 0 {
		t.Fatalf("b kept %v after MaxAge", got)
	}
}
