package testnet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpenNewReuseFresh(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	n, err := Open(Options{Dir: dir, Epoch: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if n.Reused() {
		t.Error("a new directory reported as reused")
	}
	if err := n.st.allocatePorts(n.portKeys()); err != nil {
		t.Fatal(err)
	}
	if err := n.st.save(dir); err != nil {
		t.Fatal(err)
	}
	seen := map[int]string{}
	for k, p := range n.st.Ports {
		if o, dup := seen[p]; dup {
			t.Errorf("port %d given to %s and %s", p, o, k)
		}
		seen[p] = k
	}
	if len(seen) != len(n.portKeys()) {
		t.Errorf("%d ports for %d keys", len(seen), len(n.portKeys()))
	}

	// Not twice at once.
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrBusy) {
		t.Errorf("second Open while the first holds the directory: %v, want ErrBusy", err)
	}
	n.Abort()

	// Opened again: the same network, whatever -epoch says if it agrees.
	m, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Reused() || !m.st.Genesis.Equal(n.st.Genesis) || m.st.period() != 30*time.Second || fmt.Sprint(m.st.Ports) != fmt.Sprint(n.st.Ports) {
		t.Errorf("reopened: reused %v, state %+v, want %+v", m.Reused(), m.st, n.st)
	}
	m.Abort()
	if _, err := Open(Options{Dir: dir, Epoch: time.Minute}); !errors.Is(err, ErrStaleDirectory) {
		t.Errorf("another epoch period: %v, want ErrStaleDirectory", err)
	}

	// -fresh: a new network; the binaries stay.
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "bin", "x"), nil, 0o755)
	os.MkdirAll(filepath.Join(dir, "alice"), 0o700)
	f, err := Open(Options{Dir: dir, Fresh: true, Epoch: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	if f.Reused() || len(f.st.Ports) != 0 || exists(filepath.Join(dir, "alice")) || !exists(filepath.Join(dir, "bin", "x")) {
		t.Errorf("fresh: reused %v, ports %v, alice kept %v, bin kept %v", f.Reused(), f.st.Ports, exists(filepath.Join(dir, "alice")), exists(filepath.Join(dir, "bin", "x")))
	}
}

func TestOpenRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o600)
	for _, fresh := range []bool{false, true} {
		if _, err := Open(Options{Dir: dir, Fresh: fresh}); !errors.Is(err, ErrNotTestnetDir) {
			t.Errorf("fresh=%v: %v, want ErrNotTestnetDir", fresh, err)
		}
	}
	if !exists(filepath.Join(dir, "precious")) {
		t.Fatal("a foreign file was removed")
	}
}

func TestOpenRefusesLongPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrDirTooLong) {
		t.Errorf("got %v, want ErrDirTooLong", err)
	}
}

func TestNewStateStartsAnEpoch(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 300e6, time.UTC)
	s := newState(now, time.Minute)
	if got := now.Sub(s.Genesis); got < time.Minute || got >= time.Minute+time.Second {
		t.Errorf("genesis %v: epoch 1 should start at the second of %v", s.Genesis, now)
	}
}

// TestStopEscalates: a process that ignores SIGTERM is killed after the
// grace period, and reported as timed out.
func TestStopEscalates(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "x.log")
	p, err := startProcess(Node{Name: "stubborn"}, "/bin/sh", []string{"-c", "trap '' TERM; echo $((20+22))x; while :; do sleep 1; done"}, nil, dir, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	for !strings.Contains(Tail(log, 5), "\n42x") {
		time.Sleep(10 * time.Millisecond)
	}
	e := p.stop(200 * time.Millisecond)
	if e.OK() || !e.TimedOut || e.Signal != syscall.SIGKILL || e.expected() {
		t.Errorf("got %+v, want a timed-out SIGKILL", e)
	}
	if !strings.Contains(e.LogTail, "42x") {
		t.Errorf("log tail %q", e.LogTail)
	}

	q, err := startProcess(Node{Name: "polite"}, "/bin/sh", []string{"-c", "trap 'exit 0' TERM; echo $((20+22))x; while :; do sleep 0.05; done"}, nil, dir, filepath.Join(dir, "y.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.kill)
	for !strings.Contains(Tail(filepath.Join(dir, "y.log"), 5), "\n42x") {
		time.Sleep(10 * time.Millisecond)
	}
	if e := q.stop(30 * time.Second); !e.OK() || e.TimedOut {
		t.Errorf("got %+v, want a clean exit", e)
	}
}

func TestTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	os.WriteFile(p, []byte(b.String()), 0o600)
	if got := Tail(p, 3); got != "line 97\nline 98\nline 99" {
		t.Errorf("Tail = %q", got)
	}
	if got := Tail(filepath.Join(t.TempDir(), "none"), 3); !strings.Contains(got, "no log") {
		t.Errorf("missing file: %q", got)
	}
}

func TestScrape(t *testing.T) {
	body := "# HELP x\nchorus_mix_forward_peers 4\nchorus_mix_forward_peers_connected 3\nchorus_mix_forward_peers_total{a=\"b\"} 9\nfoo{x=\"1\"} 2\nfoo{x=\"2\"} 5\n"
	got := parseMetrics(body, metricPeers, metricConnected, "foo")
	if got[metricPeers] != 4 || got[metricConnected] != 3 || got["foo"] != 7 {
		t.Errorf("parsed %v", got)
	}
}
