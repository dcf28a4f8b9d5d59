package spool

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The durability tests run the spool in a child process: this test binary,
// re-executed with one of these variables set to the database path, runs
// TestSpoolChild, which prints a line after each Put or Ack returns:
//
//	put <writer> <seq>
//	ack <writer> <seq>
//	err <message>
//
// The parent kills the child or lets it finish, reopens the database and
// checks it against what was printed.
const (
	crashChildEnv = "CHORUS_SPOOL_CRASH_CHILD"
	fullChildEnv  = "CHORUS_SPOOL_FULL_CHILD"
)

// payloadLength is the payload size the durability tests and benchmarks
// store (issue 6 names it for the benchmark).
const payloadLength = 2606

const crashWriters = 4

// childPayload is the deterministic payload writer w stores as its seq'th
// message.
func childPayload(w int, seq uint64) []byte {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[0:], uint64(w))
	binary.BigEndian.PutUint64(seed[8:], seq)
	p := make([]byte, payloadLength)
	mrand.NewChaCha8(seed).Read(p)
	return p
}

// childOut serialises the child's report lines; each is one write.
type childOut struct {
	mu sync.Mutex
}

func (o *childOut) printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

func childFail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(3)
}

// TestSpoolChild is the child process of TestCrashDurability and
// TestFullDisk; it does nothing in a normal run.
func TestSpoolChild(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
	}
	if path := os.Getenv(fullChildEnv); path != "" {
		fullChild(path)
	}
	t.Skip("only runs as a child process of the durability tests")
}

// nextSeq returns the next sequence number of mailbox w.
func nextSeq(s *Spool, w int) uint64 {
	var seq uint64
	m := mailbox(w)
	_ = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMailboxes).Bucket(m[:]); b != nil {
			seq = b.Sequence()
		}
		return nil
	})
	return seq + 1
}

// crashChild stores and retrieves until it is killed.
func crashChild(path string) {
	s, err := Open(path, Config{})
	if err != nil {
		childFail("open: %v", err)
	}
	var out childOut
	for w := range crashWriters {
		go func() {
			for seq := nextSeq(s, w); ; seq++ {
				if err := s.Put(mailbox(w), childPayload(w, seq)); err != nil {
					childFail("put: %v", err)
				}
				out.printf("put %d %d", w, seq)
			}
		}()
	}
	go func() {
		for i := 0; ; i++ {
			w := i % crashWriters
			seq, p, _, ok, err := s.Peek(mailbox(w))
			if err != nil {
				childFail("peek: %v", err)
			}
			if !ok {
				continue
			}
			if !bytes.Equal(p, childPayload(w, seq)) {
				childFail("peek: mailbox %d seq %d holds the wrong payload", w, seq)
			}
			if err := s.Ack(mailbox(w), seq); err != nil {
				childFail("ack: %v", err)
			}
			out.printf("ack %d %d", w, seq)
		}
	}()
	time.Sleep(2 * time.Minute) // the parent kills long before
	childFail("not killed")
}

type msgKey struct {
	w   int
	seq uint64
}

// childReport is what a child printed, complete lines only.
type childReport struct {
	puts, acks map[msgKey]bool
	errs       []string
	lines      int
}

func newChildReport() *childReport {
	return &childReport{puts: map[msgKey]bool{}, acks: map[msgKey]bool{}}
}

func (r *childReport) parse(t *testing.T, line string) {
	var k msgKey
	switch {
	case strings.HasPrefix(line, "put "):
		if _, err := fmt.Sscanf(line, "put %d %d", &k.w, &k.seq); err != nil {
			t.Fatalf("child printed %q", line)
		}
		r.puts[k] = true
	case strings.HasPrefix(line, "ack "):
		if _, err := fmt.Sscanf(line, "ack %d %d", &k.w, &k.seq); err != nil {
			t.Fatalf("child printed %q", line)
		}
		r.acks[k] = true
	case strings.HasPrefix(line, "err "):
		r.errs = append(r.errs, strings.TrimPrefix(line, "err "))
	default:
		return // test framework output
	}
	r.lines++
}

func childCommand(env, path string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestSpoolChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+path)
	return cmd
}

// verifyChild reopens the database and checks it against everything the
// children printed: each message whose Put returned is there, intact,
// unless its Ack returned; each acknowledged message is gone; every record
// is undamaged and holds the payload of its sequence number; bbolt's own
// consistency check passes; the totals match.
//
// A killed child may have been stopped after an Ack returned but before it
// printed so: unreported (at most; one per kill) messages may be missing if
// each was the oldest in its mailbox, the one the retriever was
// acknowledging. They count as acknowledged from then on.
func verifyChild(t *testing.T, path string, r *childReport, unreported int) {
	t.Helper()
	s := openSpool(t, path, Config{})
	defer s.Close()
	var count, total int64
	mailboxes := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		for w := range crashWriters {
			m := mailbox(w)
			b := tx.Bucket(bucketMailboxes).Bucket(m[:])
			if b == nil {
				continue
			}
			n := 0
			err := b.ForEach(func(k, v []byte) error {
				seq, ok := parseSeqKey(k)
				if !ok {
					return fmt.Errorf("mailbox %d: bad key %x", w, k)
				}
				_, p, err := decodeRecord(v)
				if err != nil {
					return fmt.Errorf("mailbox %d seq %d: %w", w, seq, err)
				}
				if !bytes.Equal(p, childPayload(w, seq)) {
					return fmt.Errorf("mailbox %d seq %d: wrong payload", w, seq)
				}
				if r.acks[msgKey{w, seq}] {
					return fmt.Errorf("mailbox %d seq %d: acknowledged but still there", w, seq)
				}
				n++
				count++
				total += int64(len(p))
				return nil
			})
			if err != nil {
				return err
			}
			if n > 0 {
				mailboxes++
			}
		}
		for k := range r.puts {
			m := mailbox(k.w)
			b := tx.Bucket(bucketMailboxes).Bucket(m[:])
			if r.acks[k] || b != nil && b.Get(seqKey(k.seq)) != nil {
				continue
			}
			// Gone without a reported Ack: only the head of the mailbox,
			// acknowledged just before the kill, may be.
			var head uint64
			if b != nil {
				first, _ := b.Cursor().First()
				head, _ = parseSeqKey(first)
			}
			if unreported == 0 || (head != 0 && head < k.seq) {
				return fmt.Errorf("mailbox %d seq %d: Put returned but the message is gone", k.w, k.seq)
			}
			unreported--
			r.acks[k] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st != (Stats{Mailboxes: mailboxes, Messages: count, Bytes: total}) {
		t.Fatalf("Stats = %+v; the database holds %d mailboxes, %d messages, %d bytes", st, mailboxes, count, total)
	}
}

// TestCrashDurability kills (SIGKILL) a process that is storing and
// retrieving messages, several times at random points, and checks after
// each kill that every message it had confirmed is intact.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	path := filepath.Join(t.TempDir(), "spool.db")
	report := newChildReport()
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := range 4 {
		cmd := childCommand(crashChildEnv, path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		target := report.lines + 100 + rng.IntN(300)
		timer := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
		in := bufio.NewReader(stdout)
		killed := false
		for {
			line, err := in.ReadString('\n')
			if err != nil {
				break // EOF; a partial last line is ignored
			}
			report.parse(t, strings.TrimSuffix(line, "\n"))
			if !killed && report.lines >= target {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		timer.Stop()
		err = cmd.Wait()
		var exit *exec.ExitError
		if !killed || !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v before the kill (killed %v)\n%s", round, err, killed, stderr.String())
		}
		verifyChild(t, path, report, 1)
		t.Logf("round %d: killed after %d confirmed operations in all (%d puts, %d acks); all intact", round, report.lines, len(report.puts), len(report.acks))
	}
}

// fullChild fills the disk: it lowers its own file size limit
// (RLIMIT_FSIZE, which an unprivileged process may do) so that the spool
// file cannot grow, stores until Put fails, shows that the failures are
// errors, raises the limit again and shows that the spool works on.
//
// arg is "grow:PATH" or "write:PATH". bbolt extends its file with ftruncate
// before writing a commit's pages, so under "grow" the truncate fails. On a
// real full disk the truncate succeeds (the file is sparse) and the page
// writes or their fsync fail instead; "write" turns bbolt's truncate off
// (NoGrowSync) so that the page writes past the end fail.
func fullChild(arg string) {
	mode, path, _ := strings.Cut(arg, ":")
	s, err := Open(path, Config{})
	if err != nil {
		childFail("open: %v", err)
	}
	s.db.NoGrowSync = mode == "write"
	var out childOut
	put := func(w int) error {
		seq := nextSeq(s, w)
		if err := s.Put(mailbox(w), childPayload(w, seq)); err != nil {
			return err
		}
		out.printf("put %d %d", w, seq)
		return nil
	}
	for i := range 20 {
		if err := put(i % crashWriters); err != nil {
			childFail("put before the limit: %v", err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		childFail("stat: %v", err)
	}
	// Exceeding the limit raises SIGXFSZ, whose default action kills the
	// process; ignored, the write fails with EFBIG instead.
	signal.Ignore(syscall.SIGXFSZ)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		childFail("getrlimit: %v", err)
	}
	limited := syscall.Rlimit{Cur: uint64(fi.Size()), Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limited); err != nil {
		childFail("setrlimit: %v", err)
	}

	// Store from several goroutines at once, so that failing commits hold
	// batches, until a few dozen Puts have failed.
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	for w := range crashWriters {
		wg.Go(func() {
			for i := 0; i < 10000; i++ {
				mu.Lock()
				done := failures >= 40
				mu.Unlock()
				if done {
					return
				}
				// Concurrent writers for one mailbox would race for
				// sequence numbers; each writer keeps its own.
				if err := put(w); err != nil {
					if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrClosed) {
						childFail("put: unexpected error %v", err)
					}
					out.printf("err %v", err)
					mu.Lock()
					failures++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if failures == 0 {
		childFail("no Put failed under the file size limit")
	}
	// Retrieval still works (reads need no space).
	for w := range crashWriters {
		if _, _, _, _, err := s.Peek(mailbox(w)); err != nil {
			childFail("peek on a full disk: %v", err)
		}
	}

	// Space again: the same open spool stores and acknowledges.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		childFail("setrlimit: %v", err)
	}
	for i := range 20 {
		if err := put(i % crashWriters); err != nil {
			childFail("put after space returned: %v", err)
		}
	}
	for w := range crashWriters {
		seq, _, _, ok, err := s.Peek(mailbox(w))
		if err != nil || !ok {
			childFail("peek after space returned: %v %v", ok, err)
		}
		if err := s.Ack(mailbox(w), seq); err != nil {
			childFail("ack: %v", err)
		}
		out.printf("ack %d %d", w, seq)
	}
	if err := s.Close(); err != nil {
		childFail("close: %v", err)
	}
	os.Exit(0)
}

// TestFullDisk: when the spool file cannot grow (a full disk, simulated
// with RLIMIT_FSIZE in a child process), Put returns an error, every
// message confirmed before and after is intact, and the file passes
// bbolt's consistency check.
func TestFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	t.Run("grow", func(t *testing.T) { testFullDisk(t, "grow") })
	t.Run("write", func(t *testing.T) { testFullDisk(t, "write") })
}

func testFullDisk(t *testing.T, mode string) {
	path := filepath.Join(t.TempDir(), "spool.db")
	cmd := childCommand(fullChildEnv, mode+":"+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	report := newChildReport()
	for _, line := range strings.Split(string(out), "\n") {
		report.parse(t, line)
	}
	if len(report.errs) == 0 {
		t.Fatal("no Put failed")
	}
	for _, e := range report.errs {
		if !strings.Contains(e, "file too large") {
			t.Fatalf("Put failed with %q, want the file size error", e)
		}
	}
	t.Logf("%d Puts stored, %d refused with errors such as %q", len(report.puts), len(report.errs), report.errs[0])
	verifyChild(t, path, report, 0)
}
