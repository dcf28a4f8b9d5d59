package link

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

// Errors of an established link.
var (
	// ErrClosed is returned by operations on a link that was closed, by
	// either side or after an earlier error. It matches net.ErrClosed.
	ErrClosed = fmt.Errorf("link: connection closed: %w", net.ErrClosed)

	// ErrIdleTimeout is returned by Recv when no frame arrived for the
	// idle timeout, and by a handshake that ran out of time. It matches
	// os.ErrDeadlineExceeded.
	ErrIdleTimeout = fmt.Errorf("link: peer silent too long: %w", os.ErrDeadlineExceeded)
)

// aLongTimeAgo is a deadline in the past, to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// Conn is an established, authenticated link.
//
// A Conn is safe for one goroutine calling Recv and any number calling Send
// at the same time: sends are serialised (the keepalive shares them), and
// concurrent Recv calls are serialised too, though they make little sense
// since each frame goes to one of them. Close may be called at any time from
// any goroutine, more than once.
//
// The caller must keep receiving: the peer's keepalives need a reader, and
// an unread link eventually blocks the peer's sends.
type Conn struct {
	nc           net.Conn
	peer         keys.LinkPublicKey
	packetLength int
	frameLength  int // plaintext
	wireLength   int // ciphertext: frameLength + tag
	keepAlive    time.Duration
	idleTimeout  time.Duration
	log          *slog.Logger
	metrics      *Metrics

	created  time.Time    // monotonic base for lastSend
	lastSend atomic.Int64 // nanoseconds since created

	wmu      sync.Mutex
	send     *cipherState // nil once wiped
	wbuf     []byte       // wireLength, maxBatch × after a SendMore; frames are sealed in place
	wn       int          // bytes of sealed frames in wbuf not yet written (SendMore)
	wctx     ctxWatch
	rmu      sync.Mutex
	recv     *cipherState // nil once wiped
	br       *bufio.Reader
	rbuf     []byte // wireLength; frames are opened in place
	rpos     int    // bytes of the current frame read so far
	rctx     ctxWatch
	lastRecv time.Time

	closeOnce     sync.Once
	closed        chan struct{}
	keepaliveDone chan struct{} // nil until start
}

// maxBatch is how many frames SendMore holds before it writes them.
const maxBatch = 16

// readBufferSize is the receive buffer: several frames, so one read system
// call can fetch many.
func readBufferSize(wireLength int) int { return max(64<<10, 4*wireLength) }

func newConn(nc net.Conn, cfg Config, peer keys.LinkPublicKey, send, recv *cipherState) *Conn {
	frameLength := FrameLength(cfg.PacketLength)
	c := &Conn{
		nc:           nc,
		peer:         peer,
		packetLength: cfg.PacketLength,
		frameLength:  frameLength,
		wireLength:   frameLength + tagLength,
		keepAlive:    cfg.KeepAlive,
		idleTimeout:  cfg.IdleTimeout,
		log:          cfg.Logger,
		metrics:      cfg.Metrics,
		created:      time.Now(),
		send:         send,
		wbuf:         make([]byte, frameLength+tagLength),
		recv:         recv,
		rbuf:         make([]byte, frameLength+tagLength),
		closed:       make(chan struct{}),
	}
	c.br = bufio.NewReaderSize(nc, readBufferSize(c.wireLength))
	c.lastRecv = c.created
	c.wctx.init(func() { _ = nc.SetWriteDeadline(aLongTimeAgo) })
	c.rctx.init(func() { _ = nc.SetReadDeadline(aLongTimeAgo) })
	return c
}

// ctxWatch interrupts one direction's blocked I/O when the caller's context
// ends. Registering a context.AfterFunc costs allocations, and a mix calls
// Send and Recv with the same long-lived context thousands of times a
// second, so the registration is kept from one call to the next for as long
// as the context (its Done channel) stays the same. If that context ends
// between calls, the interrupt sets a deadline in the past; every call
// arms its own deadline and then checks ctx.Err(), so a stale interrupt is
// either seen or harmless. Guarded by the direction's mutex.
type ctxWatch struct {
	interrupt func() // sets the direction's deadline in the past
	fired     chan struct{}
	done      <-chan struct{} // the watched context's Done; nil: none
	stop      func() bool
}

func (w *ctxWatch) init(interrupt func()) {
	w.fired = make(chan struct{}, 1)
	w.interrupt = func() {
		interrupt()
		w.fired <- struct{}{}
	}
}

// watch makes sure ctx's end interrupts this direction.
func (w *ctxWatch) watch(ctx context.Context) {
	done := ctx.Done()
	if done == w.done {
		return
	}
	w.release()
	if done != nil {
		w.done = done
		w.stop = context.AfterFunc(ctx, w.interrupt)
	}
}

// release drops the registration, waiting for an interrupt that already
// started, so that it cannot hit a later call's deadline.
func (w *ctxWatch) release() {
	if w.stop != nil && !w.stop() {
		<-w.fired
	}
	w.stop, w.done = nil, nil
}

// start begins the keepalive. It is called once, when the handshake is
// complete and before the Conn is shared.
func (c *Conn) start() {
	c.keepaliveDone = make(chan struct{})
	if c.keepAlive <= 0 {
		close(c.keepaliveDone)
		return
	}
	go c.keepalive()
}

// PeerKey returns the peer's authenticated static link key.
func (c *Conn) PeerKey() keys.LinkPublicKey { return c.peer }

// RemoteAddr returns the peer's network address. It is metadata: do not
// log it above debug level.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// Send encrypts cmd into one frame and writes it. It returns
// ErrInvalidCommand, without harm to the link, for a command that does not
// fit the packet length; Disconnect cannot be sent (use Close). Send does not
// retain cmd's slices.
//
// If ctx ends before the frame is written, Send returns ctx.Err(); if it
// ends, or the write fails or takes longer than the idle timeout, while the
// frame is partly written, the link is closed, since a frame cannot be half
// sent.
func (c *Conn) Send(ctx context.Context, cmd Command) error {
	if _, ok := cmd.(Disconnect); ok {
		return fmt.Errorf("%w: Disconnect is sent by Close", ErrInvalidCommand)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var deadline time.Time
	if c.idleTimeout > 0 {
		deadline = time.Now().Add(c.idleTimeout)
	}
	return c.writeFrame(ctx, cmd, deadline, true)
}

// SendMore is Send for a sender that has more commands to send at once: it
// encrypts cmd into the link's buffer and writes the buffered frames, in
// one system call, only when the buffer is full (every maxBatch frames).
// The caller must follow it with Send or Flush. Frames buffered when the
// link fails are lost, as are frames still in the kernel's socket buffer;
// Close writes them first, best-effort.
func (c *Conn) SendMore(ctx context.Context, cmd Command) error {
	if _, ok := cmd.(Disconnect); ok {
		return fmt.Errorf("%w: Disconnect is sent by Close", ErrInvalidCommand)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var deadline time.Time
	if c.idleTimeout > 0 {
		deadline = time.Now().Add(c.idleTimeout)
	}
	if len(c.wbuf) == c.wireLength && c.send != nil {
		// Links that never batch (a client's) keep a one-frame buffer.
		c.wbuf = make([]byte, maxBatch*c.wireLength)
	}
	return c.writeFrame(ctx, cmd, deadline, false)
}

// Flush writes the frames SendMore buffered, as Send would.
func (c *Conn) Flush(ctx context.Context) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wn == 0 {
		return nil
	}
	if c.send == nil || c.isClosed() {
		return ErrClosed
	}
	var deadline time.Time
	if c.idleTimeout > 0 {
		deadline = time.Now().Add(c.idleTimeout)
	}
	c.wctx.watch(ctx)
	_ = c.nc.SetWriteDeadline(deadline)
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.write(ctx)
}

// writeFrame seals cmd after the frames already buffered and, if flush is
// set or the buffer is full, writes them all before deadline (zero: none)
// or the end of ctx. c.wmu must be held.
func (c *Conn) writeFrame(ctx context.Context, cmd Command, deadline time.Time, flush bool) error {
	if c.send == nil || c.isClosed() {
		return ErrClosed
	}
	frame := c.wbuf[c.wn : c.wn+c.frameLength]
	if err := encodeFrame(frame, cmd, c.packetLength); err != nil {
		return err
	}
	flush = flush || c.wn+2*c.wireLength > len(c.wbuf)
	if flush {
		// ctx's own deadline acts through the watch, so that its expiry
		// is reported as ctx.Err(), not as a stalled peer. The check
		// comes after arming, so an interrupt that ran before it is not
		// overwritten unseen.
		c.wctx.watch(ctx)
		_ = c.nc.SetWriteDeadline(deadline)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.send.seal(c.wbuf[c.wn:c.wn], frame)
	c.wn += c.wireLength
	if !flush {
		return nil
	}
	return c.write(ctx)
}

// write writes the buffered frames. c.wmu must be held and the deadline
// and ctx's watch armed.
func (c *Conn) write(ctx context.Context) error {
	frames := c.wn / c.wireLength
	_, err := c.nc.Write(c.wbuf[:c.wn])
	c.wn = 0
	if err != nil {
		if c.isClosed() {
			return ErrClosed
		}
		c.shutdown(false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("link: send: %w", ErrIdleTimeout)
		}
		return fmt.Errorf("link: send: %w", err)
	}
	c.lastSend.Store(int64(time.Since(c.created)))
	for range frames {
		c.metrics.frameSent()
	}
	return nil
}

// Recv returns the next command from the peer, skipping NoOps. It returns
// io.EOF when the peer disconnected cleanly, ErrMalformed (and closes the
// link) for a frame that fails authentication or decoding, ErrIdleTimeout
// (and closes the link) when the peer stayed silent too long.
//
// Slices in the returned command (SendPacket.Packet, Message.Payload,
// Consensus.Data) alias the Conn's receive buffer and are valid only until
// the next Recv or Close.
//
// If ctx ends while a frame is partly received, Recv returns ctx.Err() and
// keeps what it has; the next Recv continues the frame, so a cancelled Recv
// does not harm the link.
func (c *Conn) Recv(ctx context.Context) (Command, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		var deadline time.Time
		if c.idleTimeout > 0 {
			deadline = c.lastRecv.Add(c.idleTimeout)
		}
		frame, err := c.readFrame(ctx, deadline)
		if err != nil {
			return nil, err
		}
		cmd, err := decodeFrame(frame, c.packetLength)
		if err != nil {
			c.metrics.malformedFrame(kindDecode)
			c.log.Debug("link: closing link after an undecodable frame", "peer", c.peer, "remote", c.nc.RemoteAddr())
			c.shutdown(false)
			return nil, ErrMalformed
		}
		switch cmd.(type) {
		case NoOp:
			continue
		case Disconnect:
			c.log.Debug("link: peer disconnected", "peer", c.peer)
			c.shutdown(false)
			return nil, io.EOF
		}
		return cmd, nil
	}
}

// readFrame reads and decrypts the next frame before deadline (zero: none)
// or the end of ctx. c.rmu must be held. The result aliases c.rbuf.
func (c *Conn) readFrame(ctx context.Context, deadline time.Time) ([]byte, error) {
	if c.recv == nil || c.isClosed() {
		return nil, ErrClosed
	}
	if c.br.Buffered() < c.wireLength-c.rpos {
		// We may block: arm the deadline and the cancellation, then
		// check ctx (see ctxWatch). With a whole frame buffered we need
		// neither.
		c.rctx.watch(ctx)
		_ = c.nc.SetReadDeadline(deadline)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	n, err := io.ReadFull(c.br, c.rbuf[c.rpos:])
	c.rpos += n
	if err != nil {
		return nil, c.readFailed(ctx, err)
	}
	c.rpos = 0
	frame, err := c.recv.open(c.rbuf[:0], c.rbuf)
	if err != nil {
		c.metrics.malformedFrame(kindDecrypt)
		c.log.Debug("link: closing link after a frame failed authentication", "peer", c.peer, "remote", c.nc.RemoteAddr())
		c.shutdown(false)
		return nil, ErrMalformed
	}
	c.metrics.frameReceived()
	c.lastRecv = time.Now()
	return frame, nil
}

// readFailed turns a read error into Recv's result, closing the link unless
// the caller's context ended (then the partial frame is kept).
func (c *Conn) readFailed(ctx context.Context, err error) error {
	if c.isClosed() {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	c.shutdown(false)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrIdleTimeout
	case err == io.EOF && c.rpos == 0:
		return io.EOF // closed at a frame boundary without a Disconnect
	default:
		return fmt.Errorf("link: recv: %w", err)
	}
}

// keepalive sends a NoOp whenever nothing was sent for keepAlive.
func (c *Conn) keepalive() {
	defer close(c.keepaliveDone)
	t := time.NewTimer(c.keepAlive)
	defer t.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		c.wmu.Lock()
		wait := c.keepAlive - c.sinceLastSend()
		var err error
		if wait <= 0 {
			var deadline time.Time
			if c.idleTimeout > 0 {
				deadline = time.Now().Add(c.idleTimeout)
			}
			err = c.writeFrame(context.Background(), NoOp{}, deadline, true)
			wait = c.keepAlive
		}
		c.wmu.Unlock()
		if err != nil {
			return // writeFrame closed the link
		}
		t.Reset(wait)
	}
}

func (c *Conn) sinceLastSend() time.Duration {
	return time.Since(c.created) - time.Duration(c.lastSend.Load())
}

func (c *Conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// Close closes the link, sending a Disconnect first if no send is in
// progress, and erases the session keys. It is idempotent; only the first
// call returns an error. Close must be called even after an error closed the
// link, to release its keys and its keepalive.
func (c *Conn) Close() error {
	err := c.shutdown(true)
	if c.keepaliveDone != nil {
		<-c.keepaliveDone
	}
	c.wmu.Lock()
	c.wctx.release()
	c.send.wipe()
	c.send = nil
	clear(c.wbuf)
	c.wmu.Unlock()
	c.rmu.Lock()
	c.rctx.release()
	c.recv.wipe()
	c.recv = nil
	clear(c.rbuf)
	c.rmu.Unlock()
	return err
}

// shutdown closes the connection once, unblocking any Send or Recv. With
// disconnect it first sends a Disconnect, best-effort and briefly. It does
// not wait for locks that a blocked Send or Recv holds.
func (c *Conn) shutdown(disconnect bool) error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		close(c.closed)
		if disconnect && c.wmu.TryLock() {
			if c.send != nil {
				// After the frames SendMore buffered, if any: there is
				// always room for one more.
				frame := c.wbuf[c.wn : c.wn+c.frameLength]
				_ = encodeFrame(frame, Disconnect{}, c.packetLength)
				c.send.seal(c.wbuf[c.wn:c.wn], frame)
				n := c.wn + c.wireLength
				c.wn = 0
				_ = c.nc.SetWriteDeadline(time.Now().Add(closeTimeout))
				if _, werr := c.nc.Write(c.wbuf[:n]); werr == nil {
					for range n / c.wireLength {
						c.metrics.frameSent()
					}
				}
			}
			c.wmu.Unlock()
		}
		err = c.nc.Close()
	})
	if errors.Is(err, net.ErrClosed) {
		return nil // already closed: Close is idempotent
	}
	return err
}
