package linktest

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// pipeDepth is how many writes a Pipe buffers in each direction before a
// write blocks: enough for a few hundred frames.
const pipeDepth = 256

// Pipe returns the two ends of an in-memory, buffered, full-duplex
// connection. Unlike net.Pipe, a write returns as soon as it is buffered, so
// one goroutine can send on one end and then receive on the other, as with a
// socket. Deadlines work, with the fake clock too: create the Pipe inside a
// testing/synctest bubble to use it there.
//
// Closing one end makes reads on the other return io.EOF once the buffered
// data is drained, and writes fail.
func Pipe() (net.Conn, net.Conn) {
	ab := make(chan []byte, pipeDepth)
	ba := make(chan []byte, pipeDepth)
	aDone := make(chan struct{})
	bDone := make(chan struct{})
	a := &pipeConn{rd: ba, wr: ab, localDone: aDone, remoteDone: bDone, local: pipeAddr("a"), remote: pipeAddr("b")}
	b := &pipeConn{rd: ab, wr: ba, localDone: bDone, remoteDone: aDone, local: pipeAddr("b"), remote: pipeAddr("a")}
	a.rdl.init()
	a.wdl.init()
	b.rdl.init()
	b.wdl.init()
	return a, b
}

type pipeAddr string

func (pipeAddr) Network() string  { return "pipe" }
func (a pipeAddr) String() string { return "pipe-" + string(a) }

type pipeConn struct {
	rd <-chan []byte
	wr chan<- []byte

	rmu     sync.Mutex
	pending []byte // rest of the chunk being read

	wmu sync.Mutex

	rdl, wdl   deadline
	closeOnce  sync.Once
	localDone  chan struct{}
	remoteDone chan struct{}

	local, remote net.Addr
}

func (p *pipeConn) Read(b []byte) (int, error) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	switch {
	case isDone(p.localDone):
		return 0, net.ErrClosed
	case isDone(p.rdl.wait()):
		return 0, os.ErrDeadlineExceeded
	}
	if len(p.pending) == 0 {
		select {
		case chunk := <-p.rd:
			p.pending = chunk
		case <-p.remoteDone:
			select { // drain what the peer wrote before closing
			case chunk := <-p.rd:
				p.pending = chunk
			default:
				return 0, io.EOF
			}
		case <-p.localDone:
			return 0, net.ErrClosed
		case <-p.rdl.wait():
			return 0, os.ErrDeadlineExceeded
		}
	}
	n := copy(b, p.pending)
	p.pending = p.pending[n:]
	return n, nil
}

func (p *pipeConn) Write(b []byte) (int, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	switch {
	case isDone(p.localDone):
		return 0, net.ErrClosed
	case isDone(p.remoteDone):
		return 0, io.ErrClosedPipe
	case isDone(p.wdl.wait()):
		return 0, os.ErrDeadlineExceeded
	}
	if len(b) == 0 {
		return 0, nil
	}
	chunk := append([]byte(nil), b...)
	select {
	case p.wr <- chunk:
		return len(b), nil
	case <-p.localDone:
		return 0, net.ErrClosed
	case <-p.remoteDone:
		return 0, io.ErrClosedPipe
	case <-p.wdl.wait():
		return 0, os.ErrDeadlineExceeded
	}
}

func (p *pipeConn) Close() error {
	err := net.ErrClosed
	p.closeOnce.Do(func() {
		close(p.localDone)
		err = nil
	})
	return err
}

func (p *pipeConn) LocalAddr() net.Addr  { return p.local }
func (p *pipeConn) RemoteAddr() net.Addr { return p.remote }

func (p *pipeConn) SetDeadline(t time.Time) error {
	p.rdl.set(t)
	p.wdl.set(t)
	return nil
}

func (p *pipeConn) SetReadDeadline(t time.Time) error  { p.rdl.set(t); return nil }
func (p *pipeConn) SetWriteDeadline(t time.Time) error { p.wdl.set(t); return nil }

// deadline is a settable deadline whose channel is closed once it passes.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	passed chan struct{}
}

func (d *deadline) init() { d.passed = make(chan struct{}) }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.passed // the timer fired: wait until it has closed passed
	}
	d.timer = nil
	passed := isDone(d.passed)
	if t.IsZero() {
		if passed {
			d.passed = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if passed {
			d.passed = make(chan struct{})
		}
		ch := d.passed
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	if !passed {
		close(d.passed)
	}
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.passed
}

func isDone(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
