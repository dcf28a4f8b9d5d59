package daemontest

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Generous bounds for a loaded machine: a test asserts outcomes, never
// timings.
const (
	// ReadyTimeout bounds WaitHTTP.
	ReadyTimeout = 90 * time.Second
	// StopTimeout bounds Stop, Kill and Wait's waiting for the exit.
	StopTimeout = 60 * time.Second
)

// Process is a daemon started by Start.
type Process struct {
	t    testing.TB
	cmd  *exec.Cmd
	log  SyncBuffer
	done chan struct{} // closed once the process has exited
	err  error         // from Wait, set before done is closed
}

// Start starts cmd with its standard output and error (those it does not
// set already) captured in the process's log, and kills it, if it still
// runs, when the test ends; if the test failed, the log is shown.
func Start(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{t: t, cmd: cmd, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = &p.log
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &p.log
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s log:\n%s", p.name(), p.Log())
		}
	})
	return p
}

func (p *Process) name() string { return filepath.Base(p.cmd.Path) }

// Log returns what the process wrote so far.
func (p *Process) Log() string { return p.log.String() }

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// WaitHTTP waits until http://addr+path answers 200 OK. It fails the test
// if the process exits first or ReadyTimeout passes.
func (p *Process) WaitHTTP(addr, path string) {
	p.t.Helper()
	deadline := time.Now().Add(ReadyTimeout)
	var last string
	for {
		code, body, err := Get(addr, path)
		if err == nil && code == http.StatusOK {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = http.StatusText(code) + ": " + strings.TrimSpace(body)
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s exited (%v) before %s answered; log:\n%s", p.name(), p.err, path, p.Log())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: no 200 from %s in %v (last: %s); log:\n%s", p.name(), path, ReadyTimeout, last, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits for the exit. It reports whether the
// process exited 0, and fails the test with the log if not; if the
// process does not exit within StopTimeout it is killed and the test
// stops.
func (p *Process) Stop() bool {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	code, ok := p.Wait(StopTimeout)
	if !ok {
		p.cmd.Process.Kill()
		p.t.Fatalf("%s did not stop within %v after SIGTERM; log:\n%s", p.name(), StopTimeout, p.Log())
	}
	if code != 0 {
		p.t.Errorf("%s after SIGTERM: exit %d, want 0; log:\n%s", p.name(), code, p.Log())
		return false
	}
	return true
}

// Kill kills the process with SIGKILL and waits for it.
func (p *Process) Kill() {
	p.t.Helper()
	p.cmd.Process.Kill()
	if _, ok := p.Wait(StopTimeout); !ok {
		p.t.Fatalf("%s did not exit after SIGKILL", p.name())
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 if a signal ended it); ok is false if it still runs.
func (p *Process) Wait(timeout time.Duration) (code int, ok bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		// An exit at the same moment counts: select picks at random.
		select {
		case <-p.done:
		default:
			return 0, false
		}
	}
	return ExitCode(p.err), true
}

// Get fetches http://addr+path: the status code and the body.
func Get(addr, path string) (code int, body string, err error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// SyncBuffer is a bytes.Buffer that one goroutine (a process's output, a
// command under test) may write while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
