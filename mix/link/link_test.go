package link

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

const testPacketLength = 3082 // the default Sphinx geometry's

func testConfig(t testing.TB) Config {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		PrivateKey:       newKey(t),
		PacketLength:     testPacketLength,
		Authorize:        func(keys.LinkPublicKey) bool { return true },
		HandshakeTimeout: time.Minute,
		Metrics:          m,
	}
}

func listen(t testing.TB, cfg Config) *Listener {
	t.Helper()
	l, err := Listen(context.Background(), "tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// connect dials addr (the listener or a proxy in front of it) and accepts
// the link on l.
func connect(t testing.TB, l *Listener, addr string, dcfg Config, want keys.LinkPublicKey) (dialer, accepted *Conn) {
	t.Helper()
	ctx := context.Background()
	type result struct {
		c   *Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.Accept(ctx)
		ch <- result{c, err}
	}()
	d, err := Dial(ctx, "tcp", addr, dcfg, want)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatalf("accept: %v", r.err)
	}
	if !r.c.PeerKey().Equal(dcfg.PrivateKey.Public()) || !d.PeerKey().Equal(want) {
		t.Fatal("peers do not see each other's keys")
	}
	t.Cleanup(func() { d.Close(); r.c.Close() })
	return d, r.c
}

func counter(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}

// waitFor polls cond until it holds; it asserts an outcome, not a timing.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func recvOK(t testing.TB, c *Conn) Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd, err := c.Recv(ctx)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return cmd
}

func TestExchangeEveryCommand(t *testing.T) {
	lcfg, dcfg := testConfig(t), testConfig(t)
	l := listen(t, lcfg)
	d, a := connect(t, l, l.Addr().String(), dcfg, lcfg.PrivateKey.Public())
	ctx := context.Background()
	for _, pair := range [][2]*Conn{{d, a}, {a, d}} {
		from, to := pair[0], pair[1]
		for _, nc := range sampleCommands(testPacketLength) {
			if _, ok := nc.cmd.(NoOp); ok {
				continue // never surfaces
			}
			if _, ok := nc.cmd.(Disconnect); ok {
				continue // sent by Close; tested below
			}
			if err := from.Send(ctx, nc.cmd); err != nil {
				t.Fatalf("send %s: %v", nc.name, err)
			}
			if got := recvOK(t, to); !equalCommands(got, nc.cmd) {
				t.Fatalf("%s: got %+v", nc.name, got)
			}
		}
	}
	// NoOp is sent but not surfaced.
	if err := d.Send(ctx, NoOp{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(ctx, MessageAck{Seq: 5}); err != nil {
		t.Fatal(err)
	}
	if got := recvOK(t, a); got != (MessageAck{Seq: 5}) {
		t.Fatalf("got %+v after a NoOp", got)
	}
	// Invalid commands fail without harming the link.
	for _, bad := range []Command{Disconnect{}, SendPacket{Packet: make([]byte, 10)}, nil} {
		if err := d.Send(ctx, bad); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("send %T: %v, want ErrInvalidCommand", bad, err)
		}
	}
	if err := d.Send(ctx, GetConsensus{Epoch: 9}); err != nil {
		t.Fatal(err)
	}
	if got := recvOK(t, a); got != (GetConsensus{Epoch: 9}) {
		t.Fatalf("got %+v", got)
	}
	// Close sends Disconnect: the peer sees io.EOF. Close is idempotent.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := a.Recv(ctx); err != io.EOF {
		t.Fatalf("peer after Close: %v, want io.EOF", err)
	}
	if err := d.Send(ctx, NoOp{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after Close: %v", err)
	}
	if _, err := d.Recv(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("recv after Close: %v", err)
	}
	m := lcfg.Metrics
	if got := counter(t, m.completed.WithLabelValues(sideListen)); got != 1 {
		t.Errorf("listener handshakes completed = %v", got)
	}
	if got := counter(t, dcfg.Metrics.completed.WithLabelValues(sideDial)); got != 1 {
		t.Errorf("dialer handshakes completed = %v", got)
	}
	// 1 confirmation + 10 commands (of 12 samples, minus NoOp and
	// Disconnect) from the listener side; the dialer's frames arrived too.
	if got := counter(t, m.sent); got != 11 {
		t.Errorf("listener frames sent = %v, want 11", got)
	}
	if got := counter(t, m.received); got != 10+1+1+1+1 { // commands, NoOp, ack, consensus, Disconnect
		t.Errorf("listener frames received = %v, want 14", got)
	}
	if d.PeerKey().IsZero() || a.RemoteAddr() == nil || a.LocalAddr() == nil {
		t.Error("accessors")
	}
}

func TestDialerRefusesUnexpectedKey(t *testing.T) {
	lcfg, dcfg := testConfig(t), testConfig(t)
	l := listen(t, lcfg)
	other := newKey(t).Public()
	_, err := Dial(context.Background(), "tcp", l.Addr().String(), dcfg, other)
	if !errors.Is(err, ErrUnexpectedKey) {
		t.Fatalf("dial with the wrong expected key: %v", err)
	}
	if got := counter(t, dcfg.Metrics.refused.WithLabelValues(sideDial)); got != 1 {
		t.Errorf("dialer refusals = %v", got)
	}
	// The listener never learnt the dialer's key and accepted nothing: the
	// next link it hands out is the next good one.
	waitFor(t, "listener to count the abandoned handshake", func() bool {
		return counter(t, lcfg.Metrics.failed.WithLabelValues(sideListen, reasonIO)) == 1
	})
	connect(t, l, l.Addr().String(), dcfg, lcfg.PrivateKey.Public())
	if got := counter(t, lcfg.Metrics.completed.WithLabelValues(sideListen)); got != 1 {
		t.Errorf("listener handshakes completed = %v", got)
	}
}

func TestListenerRefusesUnauthorized(t *testing.T) {
	lcfg, dcfg, good := testConfig(t), testConfig(t), testConfig(t)
	lcfg.Authorize = func(k keys.LinkPublicKey) bool { return k.Equal(good.PrivateKey.Public()) }
	l := listen(t, lcfg)
	_, err := Dial(context.Background(), "tcp", l.Addr().String(), dcfg, lcfg.PrivateKey.Public())
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("unauthorized dial: %v, want ErrRefused", err)
	}
	if got := counter(t, lcfg.Metrics.refused.WithLabelValues(sideListen)); got != 1 {
		t.Errorf("listener refusals = %v", got)
	}
	if got := counter(t, lcfg.Metrics.sent); got != 0 {
		t.Errorf("listener sent %v frames to a refused peer", got)
	}
	d, _ := connect(t, l, l.Addr().String(), good, lcfg.PrivateKey.Public())
	if !d.PeerKey().Equal(lcfg.PrivateKey.Public()) {
		t.Fatal("wrong peer")
	}
}

func TestConfigErrors(t *testing.T) {
	good := testConfig(t)
	ctx := context.Background()
	for name, mut := range map[string]func(*Config){
		"no key":          func(c *Config) { c.PrivateKey = nil },
		"zero packet":     func(c *Config) { c.PacketLength = 0 },
		"huge packet":     func(c *Config) { c.PacketLength = MaxPacketLength + 1 },
		"no authorize":    func(c *Config) { c.Authorize = nil },
		"negative limit":  func(c *Config) { c.MaxHandshakes = -1 },
		"negative budget": func(c *Config) { c.HandshakeTimeout = -1 },
	} {
		cfg := good
		mut(&cfg)
		if _, err := Listen(ctx, "tcp", "127.0.0.1:0", cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Listen: %v", name, err)
		}
	}
	if _, err := Dial(ctx, "tcp", "127.0.0.1:1", good, keys.LinkPublicKey{}); !errors.Is(err, ErrConfig) {
		t.Errorf("Dial without an expected key: %v", err)
	}
	if _, err := NewMetrics(nil); err != nil {
		t.Errorf("NewMetrics(nil): %v", err)
	}
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
}

// proxy is a TCP proxy that records both directions and can flip one bit.
type proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu       sync.Mutex
	streams  [2][]byte // 0: dialer → listener, 1: listener → dialer
	flipDir  int
	flipAt   int // offset in that direction's stream; -1: none
	flipMask byte
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, flipAt: -1}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) flip(dir, at int, mask byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flipDir, p.flipAt, p.flipMask = dir, at, mask
}

func (p *proxy) recorded(dir int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.streams[dir])
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.t.Cleanup(func() { c.Close(); s.Close() })
		go p.pump(0, c, s)
		go p.pump(1, s, c)
	}
}

func (p *proxy) pump(dir int, from, to net.Conn) {
	defer to.Close()
	buf := make([]byte, 4096)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			p.mu.Lock()
			off := len(p.streams[dir])
			if p.flipDir == dir && p.flipAt >= off && p.flipAt < off+n {
				buf[p.flipAt-off] ^= p.flipMask
			}
			p.streams[dir] = append(p.streams[dir], buf[:n]...)
			p.mu.Unlock()
			if _, err := to.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Handshake bytes before the first frame in each direction.
const (
	upHandshake   = msg1Length + msg3Length
	downHandshake = msg2Length
)

// TestFramesLookAlike reads the raw TCP stream: after the handshake, every
// command, whatever it carries, is exactly one frame of the same length.
func TestFramesLookAlike(t *testing.T) {
	lcfg, dcfg := testConfig(t), testConfig(t)
	l := listen(t, lcfg)
	p := newProxy(t, l.Addr().String())
	d, a := connect(t, l, p.addr(), dcfg, lcfg.PrivateKey.Public())
	wire := FrameLength(testPacketLength) + tagLength
	if wire != 3122 {
		t.Fatalf("wire frame length %d, want 3122 for packet length 3082", wire)
	}
	if got := p.recorded(0); got != upHandshake {
		t.Fatalf("dialer sent %d handshake bytes, want %d", got, upHandshake)
	}
	ctx := context.Background()
	for dir, pair := range [][2]*Conn{{d, a}, {a, d}} {
		from, to := pair[0], pair[1]
		base := []int{upHandshake, downHandshake + wire}[dir] // the listener's confirmation NoOp
		sent := 0
		for _, nc := range append(sampleCommands(testPacketLength)[:10], namedCommand{"NoOp", NoOp{}}, namedCommand{"last", NoOp{}}) {
			if err := from.Send(ctx, nc.cmd); err != nil {
				t.Fatal(err)
			}
			sent++
			if _, ok := nc.cmd.(NoOp); !ok {
				recvOK(t, to)
			}
			if nc.name == "NoOp" {
				continue // checked with the next
			}
			if nc.name == "last" {
				// Both NoOps were consumed by a Recv that is still
				// waiting; make it return with one more command.
				from.Send(ctx, MessageAck{})
				sent++
				recvOK(t, to)
			}
			if got, want := p.recorded(dir), base+sent*wire; got != want {
				t.Fatalf("direction %d after %s: %d bytes on the wire, want %d (%d frames of %d)", dir, nc.name, got, want, sent, wire)
			}
		}
	}
}

// TestBitFlipKillsLink flips one bit in the dialer's stream: in the
// handshake the handshake fails, in a frame (header, body or tag) the frame
// fails authentication and the listener drops the link.
func TestBitFlipKillsLink(t *testing.T) {
	wire := FrameLength(testPacketLength) + tagLength
	type tc struct {
		name string
		dir  int
		at   int
	}
	var cases []tc
	for _, at := range []int{0, 31, 32, msg1Length - 1, msg1Length, upHandshake - 1} {
		cases = append(cases, tc{"handshake up", 0, at})
	}
	for _, at := range []int{0, 40, msg2Length - 1} {
		cases = append(cases, tc{"handshake down", 1, at})
	}
	cases = append(cases, tc{"confirmation frame", 1, msg2Length + 5})
	for frame := range 3 {
		for _, off := range []int{0, 1, HeaderLength - 1, HeaderLength, wire / 2, wire - tagLength - 1, wire - tagLength, wire - 1} {
			cases = append(cases, tc{"frame", 0, upHandshake + frame*wire + off})
		}
	}
	lcfg := testConfig(t)
	l := listen(t, lcfg)
	ctx := context.Background()
	for _, c := range cases {
		dcfg := testConfig(t)
		p := newProxy(t, l.Addr().String())
		p.flip(c.dir, c.at, 0x10)
		accepted := make(chan *Conn, 1)
		actx, cancel := context.WithCancel(ctx)
		go func() {
			a, _ := l.Accept(actx)
			accepted <- a
		}()
		d, err := Dial(ctx, "tcp", p.addr(), dcfg, lcfg.PrivateKey.Public())
		if c.name != "frame" {
			if err == nil {
				t.Errorf("%s byte %d flipped: handshake succeeded", c.name, c.at)
				d.Close()
			}
			if c.name == "confirmation frame" {
				// The listener completed; its link dies at once.
				a := <-accepted
				if _, err := a.Recv(ctx); err == nil {
					t.Errorf("listener's half of a failed handshake lives")
				}
				a.Close()
			} else {
				// The listener fails too (it never completes), so
				// Accept can only end by cancellation.
				cancel()
				if a := <-accepted; a != nil {
					t.Errorf("%s byte %d flipped: listener accepted", c.name, c.at)
					a.Close()
				}
			}
			cancel()
			continue
		}
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		a := <-accepted
		cancel()
		malformedBefore := counter(t, lcfg.Metrics.malformed.WithLabelValues(kindDecrypt))
		bad := (c.at - upHandshake) / wire
		for i := range 3 {
			pkt := bytes.Repeat([]byte{byte(i)}, testPacketLength)
			if err := d.Send(ctx, SendPacket{Packet: pkt}); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; ; i++ {
			cmd, err := a.Recv(ctx)
			if i < bad {
				if err != nil || !bytes.Equal(cmd.(SendPacket).Packet, bytes.Repeat([]byte{byte(i)}, testPacketLength)) {
					t.Fatalf("frame %d before the flipped one: %v", i, err)
				}
				continue
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("byte %d flipped: Recv = %v, %v; want ErrMalformed", c.at, cmd, err)
			}
			break
		}
		if got := counter(t, lcfg.Metrics.malformed.WithLabelValues(kindDecrypt)); got != malformedBefore+1 {
			t.Errorf("malformed frames = %v, want %v", got, malformedBefore+1)
		}
		// The dialer learns that the link is gone (no error frame).
		if _, err := d.Recv(ctx); err == nil {
			t.Fatal("dialer's link survived")
		}
		if _, err := a.Recv(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("listener's link after the bad frame: %v", err)
		}
		d.Close()
		a.Close()
	}
}

// TestStalledHandshakes: peers that connect and say nothing, send part of a
// message, send garbage, or stop after message 1 do not keep anyone else
// out; garbage is counted.
func TestStalledHandshakes(t *testing.T) {
	lcfg := testConfig(t)
	lcfg.MaxHandshakes = 16
	l := listen(t, lcfg)
	addr := l.Addr().String()
	var stalled []net.Conn
	raw := func(payload []byte) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if len(payload) > 0 {
			if _, err := c.Write(payload); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	for range 3 {
		stalled = append(stalled, raw(nil))
	}
	for range 3 {
		stalled = append(stalled, raw(bytes.Repeat([]byte{0x42}, msg1Length/2)))
	}
	// A real first message, then silence: the listener answers and waits.
	h, _ := newHandshake(newKey(t), testPacketLength, true, 0)
	msg1, _ := h.writeMsg1()
	stalled = append(stalled, raw(msg1))
	// Garbage of the right length fails at once.
	var garbage []net.Conn
	for range 2 {
		garbage = append(garbage, raw(bytes.Repeat([]byte{0x42}, msg1Length)))
	}
	waitFor(t, "the stalled handshakes to be in flight", func() bool {
		return counter(t, lcfg.Metrics.inFlight.WithLabelValues(sideListen)) == float64(len(stalled))
	})
	// Everyone else still gets in.
	for range 3 {
		connect(t, l, addr, testConfig(t), lcfg.PrivateKey.Public())
	}
	// The garbage senders were cut off and counted.
	for _, c := range garbage {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
			t.Fatalf("garbage sender: read %d bytes, %v; want a silent close", n, err)
		}
	}
	if got := counter(t, lcfg.Metrics.failed.WithLabelValues(sideListen, reasonProtocol)); got != 2 {
		t.Errorf("protocol failures = %v, want 2", got)
	}
	waitFor(t, "exactly the stalled handshakes in flight", func() bool {
		return counter(t, lcfg.Metrics.inFlight.WithLabelValues(sideListen)) == float64(len(stalled))
	})
	for _, c := range stalled {
		c.Close()
	}
	waitFor(t, "the stalled handshakes to end", func() bool {
		return counter(t, lcfg.Metrics.inFlight.WithLabelValues(sideListen)) == 0
	})
}

// TestHandshakeLimit: with every handshake slot held by a staller, a new
// client waits (in the backlog) and gets in as soon as a slot frees.
func TestHandshakeLimit(t *testing.T) {
	lcfg := testConfig(t)
	lcfg.MaxHandshakes = 2
	l := listen(t, lcfg)
	addr := l.Addr().String()
	var stallers []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stallers = append(stallers, c)
	}
	waitFor(t, "both slots taken", func() bool {
		return counter(t, lcfg.Metrics.inFlight.WithLabelValues(sideListen)) == 2
	})
	dcfg := testConfig(t)
	done := make(chan error, 1)
	go func() {
		c, err := Dial(context.Background(), "tcp", addr, dcfg, lcfg.PrivateKey.Public())
		if err == nil {
			defer c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("dial finished while every slot was taken: %v", err)
	case <-time.After(100 * time.Millisecond):
		// Not a timing assertion: the dial cannot finish at all until a
		// slot frees; this only gives it a chance to misbehave.
	}
	stallers[0].Close()
	go l.Accept(context.Background())
	if err := <-done; err != nil {
		t.Fatalf("dial after a slot freed: %v", err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	lcfg := testConfig(t)
	lcfg.HandshakeTimeout = 50 * time.Millisecond
	l := listen(t, lcfg)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := io.Copy(io.Discard, c); n != 0 || err != nil {
		t.Fatalf("staller: %d bytes, %v; want a silent close", n, err)
	}
	if got := counter(t, lcfg.Metrics.failed.WithLabelValues(sideListen, reasonTimeout)); got != 1 {
		t.Errorf("timeouts = %v", got)
	}

	// A dialer facing a silent responder gives up too.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	dcfg := testConfig(t)
	dcfg.HandshakeTimeout = 50 * time.Millisecond
	if _, err := Dial(context.Background(), "tcp", silent.Addr().String(), dcfg, lcfg.PrivateKey.Public()); err == nil {
		t.Fatal("dial to a silent peer succeeded")
	}
	if got := counter(t, dcfg.Metrics.failed.WithLabelValues(sideDial, reasonTimeout)); got != 1 {
		t.Errorf("dial timeouts = %v", got)
	}
}

func TestListenerClose(t *testing.T) {
	lcfg := testConfig(t)
	l := listen(t, lcfg)
	staller, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer staller.Close()
	waitFor(t, "the staller's handshake", func() bool {
		return counter(t, lcfg.Metrics.inFlight.WithLabelValues(sideListen)) == 1
	})
	accepting := make(chan error, 1)
	go func() {
		_, err := l.Accept(context.Background())
		accepting <- err
	}()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-accepting; !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if got := counter(t, lcfg.Metrics.inFlight.WithLabelValues(sideListen)); got != 0 {
		t.Errorf("handshakes in flight after Close: %v", got)
	}
	l.Close() // idempotent
	if _, err := Dial(context.Background(), "tcp", l.Addr().String(), testConfig(t), lcfg.PrivateKey.Public()); err == nil {
		t.Fatal("dial to a closed listener succeeded")
	}
}

// TestRekey runs traffic across many rekeys in both directions.
func TestRekey(t *testing.T) {
	lcfg, dcfg := testConfig(t), testConfig(t)
	lcfg.rekeyEvery, dcfg.rekeyEvery = 4, 4
	l := listen(t, lcfg)
	d, a := connect(t, l, l.Addr().String(), dcfg, lcfg.PrivateKey.Public())
	d.wmu.Lock()
	first := d.send.key
	d.wmu.Unlock()
	ctx := context.Background()
	const n = 41
	for i := range n {
		pkt := bytes.Repeat([]byte{byte(i)}, testPacketLength)
		if err := d.Send(ctx, SendPacket{Packet: pkt}); err != nil {
			t.Fatal(err)
		}
		if err := a.Send(ctx, RetrieveMessage{Seq: uint64(i)}); err != nil {
			t.Fatal(err)
		}
		if got := recvOK(t, a).(SendPacket); !bytes.Equal(got.Packet, pkt) {
			t.Fatalf("packet %d garbled", i)
		}
		if got := recvOK(t, d); got != (RetrieveMessage{Seq: uint64(i)}) {
			t.Fatalf("message %d: %+v", i, got)
		}
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	a.rmu.Lock()
	defer a.rmu.Unlock()
	if d.send.n != n || d.send.key == first || d.send.key != a.recv.key {
		t.Fatalf("after %d frames: nonce %d, key changed %v, sides agree %v", n, d.send.n, d.send.key != first, d.send.key == a.recv.key)
	}
}

// TestRecvCancelKeepsLink: a Recv cancelled in the middle of a frame keeps
// the bytes it has; the next Recv completes the frame.
func TestRecvCancelKeepsLink(t *testing.T) {
	var key [32]byte
	key[0] = 7
	peerSend := newCipherState(key, 0)
	cfg, _ := testConfig(t).check(false)
	ours, theirs := net.Pipe()
	c := newConn(ours, cfg, newKey(t).Public(), newCipherState([32]byte{1}, 0), newCipherState(key, 0))
	c.start()
	defer c.Close()
	defer theirs.Close()
	go io.Copy(io.Discard, theirs) // keepalives, Disconnect

	frame := make([]byte, FrameLength(testPacketLength))
	if err := encodeFrame(frame, MessageAck{Seq: 77}, testPacketLength); err != nil {
		t.Fatal(err)
	}
	wire := peerSend.seal(nil, frame)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		theirs.Write(wire[:1000]) // returns once c has read it
		cancel()
	}()
	if _, err := c.Recv(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Recv: %v", err)
	}
	go theirs.Write(wire[1000:])
	if got := recvOK(t, c); got != (MessageAck{Seq: 77}) {
		t.Fatalf("after a cancelled Recv: %+v", got)
	}
}

func TestSendCancelled(t *testing.T) {
	lcfg, dcfg := testConfig(t), testConfig(t)
	l := listen(t, lcfg)
	d, a := connect(t, l, l.Addr().String(), dcfg, lcfg.PrivateKey.Public())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Send(ctx, NoOp{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("send with a cancelled context: %v", err)
	}
	// Nothing was sent, nothing was broken.
	if err := d.Send(context.Background(), MessageAck{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if got := recvOK(t, a); got != (MessageAck{Seq: 1}) {
		t.Fatalf("got %+v", got)
	}
	// A send blocked on a peer that does not read is interrupted by ctx.
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var err error
	for err == nil {
		err = d.Send(ctx, SendPacket{Packet: make([]byte, testPacketLength)})
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocked send: %v", err)
	}
}

func TestDialCancelled(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		c, err := silent.Accept()
		if err == nil {
			defer c.Close()
			cancel() // cancel mid-handshake
			io.Copy(io.Discard, c)
		}
	}()
	_, err = Dial(ctx, "tcp", silent.Addr().String(), testConfig(t), newKey(t).Public())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled dial: %v", err)
	}
}

// TestUndecodableFrameKillsLink: a frame that authenticates but breaks the
// encoding rules (here: padding that is not zero) closes the link and is
// counted, like one that fails authentication.
func TestUndecodableFrameKillsLink(t *testing.T) {
	var key [32]byte
	key[0] = 9
	peerSend := newCipherState(key, 0)
	cfg, _ := testConfig(t).check(false)
	ours, theirs := net.Pipe()
	c := newConn(ours, cfg, newKey(t).Public(), newCipherState([32]byte{1}, 0), newCipherState(key, 0))
	c.start()
	defer c.Close()
	defer theirs.Close()
	go io.Copy(io.Discard, theirs)

	seal := func(f func([]byte)) []byte {
		frame := make([]byte, FrameLength(testPacketLength))
		f(frame)
		return peerSend.seal(nil, frame)
	}
	good := append(seal(func(b []byte) { encodeFrame(b, NoOp{}, testPacketLength) }),
		seal(func(b []byte) { encodeFrame(b, MessageAck{Seq: 1}, testPacketLength) })...)
	go theirs.Write(good)
	if cmd := recvOK(t, c); cmd != (MessageAck{Seq: 1}) {
		t.Fatalf("good frames: %+v", cmd)
	}
	go theirs.Write(seal(func(b []byte) { encodeFrame(b, NoOp{}, testPacketLength); b[len(b)-1] = 1 }))
	if cmd, err := c.Recv(context.Background()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("frame with nonzero padding: %+v, %v", cmd, err)
	}
	if got := counter(t, cfg.Metrics.malformed.WithLabelValues(kindDecode)); got != 1 {
		t.Errorf("undecodable frames = %v", got)
	}
	if err := c.Send(context.Background(), NoOp{}); !errors.Is(err, ErrClosed) {
		t.Errorf("send after a malformed frame: %v", err)
	}
}

// TestSendMore: frames that SendMore buffers arrive in order, with the
// frames of Send, after Flush, after a full batch, and after Close.
func TestSendMore(t *testing.T) {
	lcfg, dcfg := testConfig(t), testConfig(t)
	lcfg.rekeyEvery, dcfg.rekeyEvery = 7, 7 // a rekey inside a batch
	l := listen(t, lcfg)
	d, a := connect(t, l, l.Addr().String(), dcfg, lcfg.PrivateKey.Public())
	ctx := context.Background()
	pkt := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, testPacketLength) }
	recvPackets := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if got, ok := recvOK(t, a).(SendPacket); !ok || !bytes.Equal(got.Packet, pkt(i)) {
				t.Fatalf("packet %d garbled or missing", i)
			}
		}
	}
	// Nothing is written until Send: the peer sees nothing yet.
	for i := range 3 {
		if err := d.SendMore(ctx, SendPacket{Packet: pkt(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Send(ctx, SendPacket{Packet: pkt(3)}); err != nil {
		t.Fatal(err)
	}
	recvPackets(0, 4)
	// More than a batch: full batches are written as they fill.
	for i := 4; i < 4+3*maxBatch; i++ {
		if err := d.SendMore(ctx, SendPacket{Packet: pkt(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil { // nothing to write
		t.Fatal(err)
	}
	recvPackets(4, 4+3*maxBatch)
	if err := d.SendMore(ctx, Disconnect{}); !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("SendMore(Disconnect) = %v", err)
	}
	// Close writes what is buffered, then the Disconnect.
	next := 4 + 3*maxBatch
	if err := d.SendMore(ctx, SendPacket{Packet: pkt(next)}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	recvPackets(next, next+1)
	if _, err := a.Recv(ctx); err != io.EOF {
		t.Fatalf("after Close: %v, want io.EOF", err)
	}
	if got := counter(t, dcfg.Metrics.sent); got != float64(next+2) {
		t.Errorf("frames sent = %v, want %d", got, next+2)
	}
}
