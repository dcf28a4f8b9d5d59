package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/client/message"
)

// The crash test re-executes the test binary as a child that opens the
// store and performs mutations in a loop, printing a line after each call
// returns. The parent kills it with SIGKILL at a random point, reopens the
// store and checks that every mutation the child reported is there.

const (
	crashDirEnv   = "CHORUS_STORE_CRASH_DIR"
	crashRoundEnv = "CHORUS_STORE_CRASH_ROUND"
	crashKinds    = 7
)

// crashID derives the message ID, SURB or body of mutation i of a round.
func crashBytes(round, i int, what string) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%s", round, i, what))
	return h[:]
}

func crashID(round, i int) (id message.MessageID) {
	copy(id[:], crashBytes(round, i, "id"))
	return id
}

func crashSURB(round, i int) (s SURBID) {
	copy(s[:], crashBytes(round, i, "surb"))
	return s
}

var crashSender = func() message.PublicKey {
	k, _ := message.NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	return k.Public()
}()

func crashCard(round, i int) message.Card {
	k, _ := message.NewPrivateKey(crashBytes(round, i, "key"))
	var c message.Card
	copy(c.MailboxID[:], crashBytes(round, i, "mailbox"))
	c.Key = k.Public()
	return c
}

// TestCrashChild is the child's body; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only run as the crash test's child")
	}
	round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
	s, err := Open(dir, testPass, testOpts())
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		var err error
		switch i % crashKinds {
		case 0:
			err = s.AddContact(fmt.Sprintf("r%d-c%d", round, i), crashCard(round, i))
		case 1:
			err = s.SetConfig(fmt.Sprintf("r%d-k%d", round, i), crashBytes(round, i, "config"))
		case 2:
			err = s.Enqueue(OutboxMessage{ID: crashID(round, i), To: "x", Recipient: crashCard(round, i)},
				[][]byte{crashBytes(round, i, "f0"), crashBytes(round, i, "f1"), crashBytes(round, i, "f2")})
		case 3: // an attempt on fragment 0 of the message queued at i-1
			err = s.RecordAttempt(crashID(round, i-1), 0, crashSURB(round, i), crashBytes(round, i, "token"), time.Unix(int64(i), 0))
		case 4: // its ACK
			_, err = s.Acknowledge(crashSURB(round, i-1))
		case 5:
			_, err = s.SaveMessage("x", &message.Message{Sender: crashSender, ID: crashID(round, i), Body: crashBytes(round, i, "body")})
		case 6:
			err = s.HoldFragment(crashSender, message.Fragment{ID: crashID(round, i), Count: 2, Total: 64, Body: crashBytes(round, i, "held")})
		}
		if err != nil {
			fmt.Fprintf(out, "error %d: %v\n", i, err)
			out.Flush()
			os.Exit(4)
		}
		fmt.Fprintf(out, "done %d\n", i)
		out.Flush()
	}
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	s, dir := newStore(t)
	s.Close()
	total := 0
	for round := range 4 {
		done := runAndKill(t, dir, round, 5+mrand.IntN(60))
		total += len(done)
		s, err := Open(dir, testPass, testOpts())
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		verifyCrashRound(t, s, round, done)
		s.Close()
	}
	t.Logf("%d acknowledged mutations survived 4 kills", total)
}

// runAndKill starts the child, lets it report at least n mutations, kills
// it, and returns every mutation it reported.
func runAndKill(t *testing.T, dir string, round, n int) []int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var done []int
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "done "); ok {
			i, _ := strconv.Atoi(rest)
			done = append(done, i)
		} else if strings.HasPrefix(line, "error") || strings.HasPrefix(line, "open failed") {
			t.Fatalf("round %d child: %s", round, line)
		}
		if !killed && len(done) >= n {
			// SIGKILL: no deferred code, no flush, no Close.
			cmd.Process.Kill()
			killed = true
		}
	}
	io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !killed || !errors.As(err, &ee) || ee.ProcessState.Sys() == nil || ee.ProcessState.ExitCode() != -1 {
		t.Fatalf("round %d: child was not killed: %v", round, err)
	}
	return done
}

func verifyCrashRound(t *testing.T, s *Store, round int, done []int) {
	t.Helper()
	if len(done) == 0 || !slices.Equal(done, seq(len(done))) {
		t.Fatalf("round %d: child reported %v", round, done)
	}
	acked := map[int]bool{}
	for _, i := range done {
		if i%crashKinds == 4 {
			acked[i] = true
		}
	}
	pending, err := s.PendingFragments()
	if err != nil {
		t.Fatal(err)
	}
	held, err := s.HeldFragments()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range done {
		var err error
		switch i % crashKinds {
		case 0:
			var c Contact
			if c, err = s.Contact(fmt.Sprintf("r%d-c%d", round, i)); err == nil && !c.Card.Equal(crashCard(round, i)) {
				err = errors.New("wrong card")
			}
		case 1:
			var v []byte
			if v, err = s.Config(fmt.Sprintf("r%d-k%d", round, i)); err == nil && !bytes.Equal(v, crashBytes(round, i, "config")) {
				err = errors.New("wrong value")
			}
		case 2:
			var m OutboxMessage
			var f []byte
			if m, err = s.OutboxMessage(crashID(round, i)); err == nil && m.Fragments != 3 {
				err = errors.New("wrong message")
			} else if err == nil {
				if f, err = s.SealedFragment(crashID(round, i), 2); err == nil && !bytes.Equal(f, crashBytes(round, i, "f2")) {
					err = errors.New("wrong fragment")
				}
			}
		case 3:
			if acked[i+1] {
				break // checked with the ACK
			}
			id := crashID(round, i-1)
			k := slices.IndexFunc(pending, func(f FragmentState) bool { return f.ID == id && f.Index == 0 })
			if k < 0 || pending[k].Attempts != 1 || !slices.Equal(pending[k].SURBs, []SURBID{crashSURB(round, i)}) {
				err = errors.New("attempt lost")
			} else if tok, terr := s.SURBToken(crashSURB(round, i)); terr != nil || !bytes.Equal(tok, crashBytes(round, i, "token")) {
				err = fmt.Errorf("attempt's token lost: %v", terr)
			}
		case 4:
			var m OutboxMessage
			if m, err = s.OutboxMessage(crashID(round, i-2)); err == nil && m.Delivered != 1 {
				err = errors.New("ack lost")
			}
			id := crashID(round, i-2)
			if slices.ContainsFunc(pending, func(f FragmentState) bool { return f.ID == id && f.Index == 0 }) {
				err = errors.New("acknowledged fragment still pending")
			}
			if _, terr := s.SURBToken(crashSURB(round, i-1)); !errors.Is(terr, ErrNotFound) {
				err = fmt.Errorf("acknowledged attempt's token kept: %v", terr)
			}
		case 5:
			var ok bool
			if ok, err = s.Seen(crashSender, crashID(round, i)); err == nil && !ok {
				err = errors.New("message lost")
			}
		case 6:
			id := crashID(round, i)
			if !slices.ContainsFunc(held, func(h HeldFragment) bool {
				return h.Fragment.ID == id && bytes.Equal(h.Fragment.Body, crashBytes(round, i, "held"))
			}) {
				err = errors.New("held fragment lost")
			}
		}
		if err != nil {
			t.Errorf("round %d: mutation %d (kind %d) acknowledged but lost: %v", round, i, i%crashKinds, err)
		}
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
