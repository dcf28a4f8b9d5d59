package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one running (or stopped) daemon of the network.
type Process struct {
	Node
	// LogPath is the file its standard output and error go to; each start
	// appends to it after a header line.
	LogPath string

	cmd     *exec.Cmd
	started time.Time
	ended   time.Time
	done    chan struct{} // closed when the process has exited and been reaped
	state   *os.ProcessState
	waitErr error

	mu sync.Mutex
	// killed is set when the process was killed on purpose (Kill), and
	// timedOut when it was killed after a stop ran out of time, so a
	// watcher can tell a crash from either.
	killed     bool
	timedOut   bool
	terminated bool // SIGTERM sent
}

// Exit describes how a process ended.
type Exit struct {
	Name string
	// Code is the exit code, or -1 if a signal ended the process.
	Code int
	// Signal is the signal that ended it, if any.
	Signal syscall.Signal
	// Killed: the testnet killed it on purpose (Network.Kill).
	Killed bool
	// TimedOut: it did not stop within the bound after SIGTERM and was
	// killed.
	TimedOut bool
	// Runtime is how long it ran.
	Runtime time.Duration
	// LogTail holds the last lines of its log.
	LogTail string
}

// OK reports whether the process exited cleanly (code 0).
func (e Exit) OK() bool { return e.Code == 0 && e.Signal == 0 && !e.TimedOut }

// expected reports whether the process ended as the testnet asked: a clean
// exit, or a Kill.
func (e Exit) expected() bool { return e.OK() || (e.Killed && !e.TimedOut) }

func (e Exit) String() string {
	switch {
	case e.TimedOut:
		return fmt.Sprintf("%s: did not stop in time after SIGTERM; killed after %v", e.Name, e.Runtime.Round(time.Millisecond))
	case e.Signal != 0 && e.Killed:
		return fmt.Sprintf("%s: killed on purpose (signal %d) after %v", e.Name, int(e.Signal), e.Runtime.Round(time.Millisecond))
	case e.Signal != 0:
		return fmt.Sprintf("%s: ended by signal %d (%v) after %v", e.Name, int(e.Signal), e.Signal, e.Runtime.Round(time.Millisecond))
	default:
		return fmt.Sprintf("%s: exit %d after %v", e.Name, e.Code, e.Runtime.Round(time.Millisecond))
	}
}

// startProcess starts bin with args, in its own process group (a Ctrl-C in
// the terminal reaches only chorus-testnet, which then stops the daemons in
// order), killed by the kernel if the supervising process dies first.
func startProcess(n Node, bin string, args, env []string, dir, logPath string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", n.Name, err)
	}
	defer logf.Close() // the child holds its own copy
	fmt.Fprintf(logf, "=== chorus-testnet: %s %s at %s\n", bin, strings.Join(args, " "), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", n.Name, err)
	}
	p := &Process{Node: n, LogPath: logPath, cmd: cmd, started: time.Now(), done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		p.state = cmd.ProcessState
		p.ended = time.Now()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// terminate sends SIGTERM, the daemons' graceful stop.
func (p *Process) terminate() {
	p.mu.Lock()
	p.terminated = true
	p.mu.Unlock()
	p.signalGroup(syscall.SIGTERM)
}

// kill sends SIGKILL to the process group, on purpose.
func (p *Process) kill() {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	p.signalGroup(syscall.SIGKILL)
}

// signalGroup signals the process's group (the daemon and anything it
// started). After the process has been reaped its PID may be reused, so
// nothing is sent then.
func (p *Process) signalGroup(sig syscall.Signal) {
	if !p.Running() {
		return
	}
	if err := syscall.Kill(-p.PID(), sig); err != nil {
		p.cmd.Process.Signal(sig)
	}
}

// stop sends SIGTERM and waits up to grace for the exit; then SIGKILL and
// a wait for the reap.
func (p *Process) stop(grace time.Duration) Exit {
	p.terminate()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.mu.Lock()
		p.timedOut = true
		p.mu.Unlock()
		p.signalGroup(syscall.SIGKILL)
		<-p.done
	}
	return p.exit()
}

// exit describes how the process ended; it must have.
func (p *Process) exit() Exit {
	<-p.done
	p.mu.Lock()
	killed, timedOut := p.killed, p.timedOut
	p.mu.Unlock()
	e := Exit{Name: p.Name, Code: -1, Killed: killed, TimedOut: timedOut, Runtime: p.ended.Sub(p.started)}
	if p.state != nil {
		e.Code = p.state.ExitCode()
		if ws, ok := p.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Signal = ws.Signal()
		}
	}
	if !e.OK() {
		e.LogTail = Tail(p.LogPath, 25)
	}
	return e
}

// Tail returns the last n lines of the file at path (a process's log), or
// a note of why it could not be read.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	const maxTail = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	off := max(st.Size()-maxTail, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // the first is probably cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// ErrExited is returned when a process exits while the network waits for
// it; the error names the process and holds the tail of its log.
var ErrExited = errors.New("testnet: process exited")
