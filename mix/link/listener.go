package link

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

// Handshake outcomes the caller can act on. Everything else that goes wrong
// in a handshake is one opaque failure.
var (
	// ErrUnexpectedKey: the responder's static key is not the one Dial
	// was told to expect. The dialer closes before revealing its own key.
	ErrUnexpectedKey = errors.New("link: peer has an unexpected key")

	// ErrRefused: the responder closed the connection at the end of the
	// handshake, most likely because it does not accept our key (it says
	// no more, by design).
	ErrRefused = errors.New("link: refused by peer")

	// errNotAuthorized: a listener's Authorize refused the peer.
	errNotAuthorized = errors.New("link: peer not authorized")
)

// Dial connects to addr, runs the handshake as initiator and returns the
// link if the responder proves it holds the private half of want. The
// handshake timeout covers connecting too. cfg.Authorize is not used.
func Dial(ctx context.Context, network, addr string, cfg Config, want keys.LinkPublicKey) (*Conn, error) {
	cfg, err := checkDial(cfg, want)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("link: dial: %w", err)
	}
	return clientHandshake(ctx, nc, cfg, want)
}

// Client runs the initiator's handshake over an existing connection, as
// Dial does after connecting. It takes ownership of nc: on failure nc is
// closed. Useful for transports other than TCP (see package linktest).
func Client(ctx context.Context, nc net.Conn, cfg Config, want keys.LinkPublicKey) (*Conn, error) {
	cfg, err := checkDial(cfg, want)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return clientHandshake(ctx, nc, cfg, want)
}

// Server runs the responder's handshake over an existing connection, as a
// Listener does for each connection it accepts. It takes ownership of nc: on
// failure (including refusal by cfg.Authorize) nc is closed.
func Server(ctx context.Context, nc net.Conn, cfg Config) (*Conn, error) {
	cfg, err := cfg.check(true)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return serverHandshake(ctx, nc, cfg)
}

func checkDial(cfg Config, want keys.LinkPublicKey) (Config, error) {
	cfg, err := cfg.check(false)
	if err != nil {
		return cfg, err
	}
	if want.IsZero() {
		return cfg, fmt.Errorf("%w: no expected peer key", ErrConfig)
	}
	return cfg, nil
}

// handshakeDeadline arms nc's deadline for a handshake and interrupts it if
// ctx ends. The returned function disarms both; call it before using nc.
func handshakeDeadline(ctx context.Context, nc net.Conn, timeout time.Duration) (time.Time, func()) {
	deadline := time.Now().Add(timeout)
	_ = nc.SetDeadline(deadline) // ctx's deadline acts through the AfterFunc
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = nc.SetDeadline(aLongTimeAgo)
		close(done)
	})
	return deadline, func() {
		if !stop() {
			<-done
		}
		_ = nc.SetDeadline(time.Time{})
	}
}

func clientHandshake(ctx context.Context, nc net.Conn, cfg Config, want keys.LinkPublicKey) (*Conn, error) {
	m := cfg.Metrics
	m.handshakeStarted(sideDial)
	defer m.handshakeEnded(sideDial)
	c, err := runClient(ctx, nc, cfg, want)
	if err != nil {
		if errors.Is(err, ErrUnexpectedKey) {
			m.peerRefused(sideDial)
		} else {
			m.handshakeFailed(sideDial, failureReason(err))
		}
		nc.Close()
		cfg.Logger.Debug("link: dial handshake failed", "remote", nc.RemoteAddr(), "err", err)
		if ctx.Err() != nil && !errors.Is(err, ErrUnexpectedKey) {
			return nil, fmt.Errorf("link: handshake: %w", ctx.Err())
		}
		return nil, err
	}
	m.handshakeCompleted(sideDial)
	c.start()
	return c, nil
}

func runClient(ctx context.Context, nc net.Conn, cfg Config, want keys.LinkPublicKey) (*Conn, error) {
	deadline, disarm := handshakeDeadline(ctx, nc, cfg.HandshakeTimeout)
	defer disarm()
	h, err := newHandshake(cfg.PrivateKey, cfg.PacketLength, true, cfg.rekeyEvery)
	if err != nil {
		return nil, err
	}
	defer h.wipe()

	msg, err := h.writeMsg1()
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(msg); err != nil {
		return nil, handshakeIOError(err)
	}
	msg = make([]byte, msg2Length)
	if _, err := io.ReadFull(nc, msg); err != nil {
		return nil, handshakeIOError(err)
	}
	peer, err := h.readMsg2(msg)
	if err != nil {
		return nil, err
	}
	if !peer.Equal(want) {
		return nil, ErrUnexpectedKey
	}
	msg, send, recv, err := h.writeMsg3()
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(msg); err != nil {
		send.wipe()
		recv.wipe()
		return nil, handshakeIOError(err)
	}

	// The responder confirms with a NoOp once it has accepted our key;
	// without it, a refusal would look like a link that dies at once.
	c := newConn(nc, cfg, peer, send, recv)
	frame, err := c.readFrame(context.Background(), deadline)
	if err == nil {
		var cmd Command
		if cmd, err = decodeFrame(frame, cfg.PacketLength); err == nil {
			if _, ok := cmd.(NoOp); !ok {
				err = errHandshake
			}
		} else {
			err = errHandshake
		}
	}
	if err != nil {
		c.shutdown(false)
		c.Close()
		switch {
		case errors.Is(err, ErrMalformed), errors.Is(err, errHandshake):
			return nil, errHandshake
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, err
		}
		// Closed or reset: the responder turned us away.
		return nil, ErrRefused
	}
	return c, nil
}

func serverHandshake(ctx context.Context, nc net.Conn, cfg Config) (*Conn, error) {
	m := cfg.Metrics
	m.handshakeStarted(sideListen)
	defer m.handshakeEnded(sideListen)
	c, err := runServer(ctx, nc, cfg)
	if err != nil {
		// Count before closing, so a peer that sees the close also sees the
		// count (tests rely on it).
		if errors.Is(err, errNotAuthorized) {
			m.peerRefused(sideListen)
		} else {
			m.handshakeFailed(sideListen, failureReason(err))
		}
		nc.Close()
		cfg.Logger.Debug("link: accept handshake failed", "remote", nc.RemoteAddr(), "err", err)
		return nil, err
	}
	m.handshakeCompleted(sideListen)
	c.start()
	return c, nil
}

func runServer(ctx context.Context, nc net.Conn, cfg Config) (*Conn, error) {
	deadline, disarm := handshakeDeadline(ctx, nc, cfg.HandshakeTimeout)
	defer disarm()
	h, err := newHandshake(cfg.PrivateKey, cfg.PacketLength, false, cfg.rekeyEvery)
	if err != nil {
		return nil, err
	}
	defer h.wipe()

	msg := make([]byte, msg1Length)
	if _, err := io.ReadFull(nc, msg); err != nil {
		return nil, handshakeIOError(err)
	}
	kemPub, err := h.readMsg1(msg)
	if err != nil {
		return nil, err
	}
	msg2, err := h.writeMsg2(kemPub)
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(msg2); err != nil {
		return nil, handshakeIOError(err)
	}
	msg = msg[:msg3Length]
	if _, err := io.ReadFull(nc, msg); err != nil {
		return nil, handshakeIOError(err)
	}
	peer, send, recv, err := h.readMsg3(msg)
	if err != nil {
		return nil, err
	}
	if !cfg.Authorize(peer) {
		send.wipe()
		recv.wipe()
		return nil, errNotAuthorized
	}
	c := newConn(nc, cfg, peer, send, recv)
	c.wmu.Lock()
	err = c.writeFrame(context.Background(), NoOp{}, deadline, true)
	c.wmu.Unlock()
	if err != nil {
		c.Close()
		return nil, handshakeIOError(err)
	}
	return c, nil
}

// handshakeIOError keeps a timeout recognisable and hides the rest behind a
// uniform prefix.
func handshakeIOError(err error) error {
	return fmt.Errorf("link: handshake: %w", err)
}

// Listener accepts links. Handshakes run in their own goroutines, at most
// Config.MaxHandshakes at once, each bounded by the handshake timeout, so a
// peer that stalls or sends garbage holds up no one else.
type Listener struct {
	ln     net.Listener
	cfg    Config
	ready  chan *Conn
	ctx    context.Context // ends when the Listener closes
	cancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// Listen listens on addr (network "tcp", "tcp4", "tcp6" or "unix") and
// starts accepting links. ctx governs only setting up the listener; the
// Listener runs until Close.
func Listen(ctx context.Context, network, addr string, cfg Config) (*Listener, error) {
	cfg, err := cfg.check(true)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("link: listen: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &Listener{
		ln:     ln,
		cfg:    cfg,
		ready:  make(chan *Conn),
		ctx:    lctx,
		cancel: cancel,
	}
	l.wg.Add(1)
	go l.serve()
	return l, nil
}

// Addr returns the address the Listener listens on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Accept waits for the next authorized link. It returns ErrClosed once the
// Listener is closed, or ctx.Err().
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.ctx.Done():
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops listening, aborts handshakes in progress and closes links
// that completed but were not yet accepted; links already returned by
// Accept stay open. It waits for the Listener's goroutines and is
// idempotent.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		l.closeErr = l.ln.Close()
	})
	l.wg.Wait()
	return l.closeErr
}

// serve is the accept loop: every handshake runs in a goroutine of its
// own (AcceptLoop), and each link that passes is handed to Accept.
func (l *Listener) serve() {
	defer l.wg.Done()
	AcceptLoop(l.ctx, l.ln, l.cfg.MaxHandshakes, l.cfg.Logger, func(ctx context.Context, nc net.Conn) func() {
		c, err := serverHandshake(ctx, nc, l.cfg)
		if err != nil {
			return nil
		}
		return func() { l.handOver(c, nc) }
	})
}

// handOver passes a link to Accept.
func (l *Listener) handOver(c *Conn, nc net.Conn) {
	// Hand the link to Accept. One that nobody accepts within the handshake
	// timeout is closed rather than held for ever.
	t := time.NewTimer(l.cfg.HandshakeTimeout)
	defer t.Stop()
	select {
	case l.ready <- c:
	case <-l.ctx.Done():
		c.Close()
	case <-t.C:
		l.cfg.Logger.Debug("link: closing a link nobody accepted", "remote", nc.RemoteAddr())
		c.Close()
	}
}
