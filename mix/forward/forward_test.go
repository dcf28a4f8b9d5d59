package forward

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/link/linktest"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

const packetLength = 512

// memnet is an in-memory network for links inside a synctest bubble: an
// address either has a server, which runs the responder's handshake and
// records what it receives, or refuses.
type memnet struct {
	mu      sync.Mutex
	servers map[string]*server
	dials   []time.Time
}

func newMemnet() *memnet { return &memnet{servers: map[string]*server{}} }

func (n *memnet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	n.dials = append(n.dials, time.Now())
	s := n.servers[addr]
	n.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	a, b := linktest.Pipe()
	go s.serve(b)
	return a, nil
}

func (n *memnet) dialTimes() []time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]time.Time(nil), n.dials...)
}

// server is a peer: it accepts links and records the sequence numbers of
// the packets it receives.
type server struct {
	cfg link.Config

	mu    sync.Mutex
	got   []uint64
	conns []*link.Conn
}

func newServer(name string) *server {
	return &server{cfg: link.Config{
		PrivateKey:   pkitest.Link(name),
		PacketLength: packetLength,
		Authorize:    func(keys.LinkPublicKey) bool { return true },
	}}
}

func (s *server) serve(nc net.Conn) {
	c, err := link.Server(context.Background(), nc, s.cfg)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	for {
		cmd, err := c.Recv(context.Background())
		if err != nil {
			return
		}
		sp := cmd.(link.SendPacket)
		s.mu.Lock()
		s.got = append(s.got, binary.BigEndian.Uint64(sp.Packet))
		s.mu.Unlock()
	}
}

func (s *server) received() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.got...)
}

// dropConns closes every link the server accepted.
func (s *server) dropConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

func packet(seq uint64) []byte {
	b := make([]byte, packetLength)
	binary.BigEndian.PutUint64(b, seq)
	return b
}

type counts struct {
	mu       sync.Mutex
	released int
	dropped  map[string]int
}

func (c *counts) release([]byte) { c.mu.Lock(); c.released++; c.mu.Unlock() }
func (c *counts) drop(r string)  { c.mu.Lock(); c.dropped[r]++; c.mu.Unlock() }
func (c *counts) get() (int, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]int{}
	for k, v := range c.dropped {
		m[k] = v
	}
	return c.released, m
}

type fixture struct {
	f   *Forwarder
	net *memnet
	cnt *counts
	reg *prometheus.Registry
}

func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	fx := &fixture{net: newMemnet(), cnt: &counts{dropped: map[string]int{}}, reg: prometheus.NewRegistry()}
	cfg := Config{
		Link:        link.Config{PrivateKey: pkitest.Link("self"), PacketLength: packetLength},
		DialContext: fx.net.dial,
		QueueLength: 8,
		MinBackoff:  100 * time.Millisecond,
		MaxBackoff:  2 * time.Second,
		Release:     fx.cnt.release,
		Dropped:     fx.cnt.drop,
		Registerer:  fx.reg,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fx.f = f
	return fx
}

// desc is the descriptor of a peer named name at addr.
func desc(name, addr string) *pki.Descriptor {
	return pkitest.NewNode(name, pki.RoleMix, 1, "tcp://"+addr).Descriptor
}

// run starts Run and returns a function that stops it and waits.
func run(t *testing.T, f *Forwarder) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func TestInOrderDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, nil)
		srv := newServer("peer")
		fx.net.servers["10.0.0.1:1"] = srv
		d := desc("peer", "10.0.0.1:1")
		fx.f.SetPeers([]*pki.Descriptor{d})
		stop := run(t, fx.f)
		synctest.Wait()
		if !fx.f.Connected(&d.ID) {
			t.Fatal("link not established ahead of need")
		}
		for i := range uint64(100) {
			for fx.f.Queued() >= 8 {
				time.Sleep(time.Millisecond) // queue of 8: let it drain
			}
			if err := fx.f.Send(&d.ID, packet(i)); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		got := srv.received()
		if len(got) != 100 {
			t.Fatalf("received %d packets, want 100", len(got))
		}
		for i, s := range got {
			if s != uint64(i) {
				t.Fatalf("packet %d has sequence %d: out of order", i, s)
			}
		}
		if n := testutil.ToFloat64(fx.f.m.sent); n != 100 {
			t.Errorf("sent counter %v, want 100", n)
		}
		stop()
		rel, dropped := fx.cnt.get()
		if rel != 100 || len(dropped) != 0 {
			t.Errorf("released %d, dropped %v; want 100 released, none dropped", rel, dropped)
		}
	})
}

func TestBackoffAndReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, nil)
		d := desc("peer", "10.0.0.1:1")
		fx.f.SetPeers([]*pki.Descriptor{d})
		stop := run(t, fx.f)
		defer stop()

		// Nobody listens: dials back off exponentially, with jitter,
		// up to the maximum.
		time.Sleep(20 * time.Second)
		synctest.Wait()
		dials := fx.net.dialTimes()
		if len(dials) < 6 {
			t.Fatalf("%d dials in 20s", len(dials))
		}
		want := 100 * time.Millisecond
		for i := 1; i < len(dials); i++ {
			gap := dials[i].Sub(dials[i-1])
			if gap < want/2 || gap >= want {
				t.Errorf("wait before dial %d: %v, want in [%v, %v)", i, gap, want/2, want)
			}
			want = min(2*want, 2*time.Second)
		}
		if n := testutil.ToFloat64(fx.f.m.dials); int(n) != len(dials) {
			t.Errorf("failed dials counted %v, want %d", n, len(dials))
		}

		// Packets queued while the peer is down are sent, in order, once
		// it is up.
		for i := range uint64(5) {
			if err := fx.f.Send(&d.ID, packet(i)); err != nil {
				t.Fatal(err)
			}
		}
		srv := newServer("peer")
		fx.net.mu.Lock()
		fx.net.servers["10.0.0.1:1"] = srv
		fx.net.mu.Unlock()
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if got := srv.received(); len(got) != 5 {
			t.Fatalf("after the peer came up: received %v", got)
		}

		// The link fails: the forwarder redials soon (the backoff was
		// reset by the good link) and carries on.
		srv.dropConns()
		synctest.Wait()
		if fx.f.Connected(&d.ID) {
			t.Fatal("still connected after the peer closed the link")
		}
		for i := uint64(5); i < 10; i++ {
			if err := fx.f.Send(&d.ID, packet(i)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		got := srv.received()
		if len(got) != 10 {
			t.Fatalf("after reconnecting: received %v", got)
		}
		for i, s := range got {
			if s != uint64(i) {
				t.Fatalf("out of order: %v", got)
			}
		}
	})
}

func TestQueueFullDropsNewest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, nil)
		d := desc("peer", "10.0.0.1:1") // nobody listens: the queue only fills
		fx.f.SetPeers([]*pki.Descriptor{d})
		for i := range uint64(8) {
			if err := fx.f.Send(&d.ID, packet(i)); err != nil {
				t.Fatalf("packet %d: %v", i, err)
			}
		}
		if err := fx.f.Send(&d.ID, packet(8)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("ninth packet: %v, want ErrQueueFull", err)
		}
		other := desc("other", "10.0.0.2:1")
		if err := fx.f.Send(&other.ID, packet(0)); !errors.Is(err, ErrNoPeer) {
			t.Fatalf("packet for a stranger: %v, want ErrNoPeer", err)
		}
		if n := metricValue(t, fx.reg, "chorus_mix_forward_queue_packets"); n != 8 {
			t.Errorf("queue gauge %v, want 8", n)
		}

		// The first eight are still there when the peer comes up.
		srv := newServer("peer")
		fx.net.servers["10.0.0.1:1"] = srv
		stop := run(t, fx.f)
		synctest.Wait()
		if got := srv.received(); len(got) != 8 || got[7] != 7 {
			t.Fatalf("received %v, want 0..7", got)
		}
		stop()
		rel, dropped := fx.cnt.get()
		if rel != 8 || dropped[DropQueueFull] != 1 || dropped[DropNoPeer] != 1 {
			t.Errorf("released %d, dropped %v", rel, dropped)
		}
	})
}

func TestPeerLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, nil)
		a, b := desc("a", "10.0.0.1:1"), desc("b", "10.0.0.2:1")
		srvA := newServer("a")
		fx.net.servers["10.0.0.1:1"] = srvA
		fx.f.SetPeers([]*pki.Descriptor{a, b}) // b is down
		stop := run(t, fx.f)
		defer stop()
		synctest.Wait()
		for i := range uint64(3) {
			if err := fx.f.Send(&b.ID, packet(i)); err != nil {
				t.Fatal(err)
			}
		}
		fx.f.SetPeers([]*pki.Descriptor{b}) // a leaves; b stays
		synctest.Wait()
		if total, conn := fx.f.Peers(); total != 1 || conn != 0 {
			t.Errorf("peers %d, connected %d; want 1, 0", total, conn)
		}
		fx.f.SetPeers(nil) // b leaves with 3 queued packets
		synctest.Wait()
		rel, dropped := fx.cnt.get()
		if rel != 3 || dropped[DropPeerGone] != 3 || fx.f.Queued() != 0 {
			t.Errorf("released %d, dropped %v, queued %d", rel, dropped, fx.f.Queued())
		}
		if err := fx.f.Send(&a.ID, packet(0)); !errors.Is(err, ErrNoPeer) {
			t.Errorf("send to a peer that left: %v", err)
		}
	})
}

func TestWrongKeyRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, nil)
		fx.net.servers["10.0.0.1:1"] = newServer("impostor")
		d := desc("peer", "10.0.0.1:1")
		fx.f.SetPeers([]*pki.Descriptor{d})
		stop := run(t, fx.f)
		time.Sleep(time.Second)
		synctest.Wait()
		if fx.f.Connected(&d.ID) {
			t.Error("connected to a node that does not hold the published key")
		}
		if n := testutil.ToFloat64(fx.f.m.dials); n < 2 {
			t.Errorf("failed dials %v", n)
		}
		stop()
	})
}

func TestShutdownDropsQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, nil)
		d := desc("peer", "10.0.0.1:1")
		fx.f.SetPeers([]*pki.Descriptor{d})
		stop := run(t, fx.f)
		for i := range uint64(4) {
			if err := fx.f.Send(&d.ID, packet(i)); err != nil {
				t.Fatal(err)
			}
		}
		stop()
		rel, dropped := fx.cnt.get()
		if rel != 4 || dropped[DropShutdown] != 4 {
			t.Errorf("released %d, dropped %v", rel, dropped)
		}
		if err := fx.f.Send(&d.ID, packet(9)); !errors.Is(err, ErrClosed) {
			t.Errorf("send after Run: %v", err)
		}
		if err := fx.f.Run(context.Background()); !errors.Is(err, ErrRunning) {
			t.Errorf("second Run: %v", err)
		}
	})
}

// TestTCP runs the forwarder over real TCP links.
func TestTCP(t *testing.T) {
	srv := newServer("peer")
	ln, err := link.Listen(context.Background(), "tcp", "127.0.0.1:0", srv.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				for {
					cmd, err := c.Recv(context.Background())
					if err != nil {
						return
					}
					srv.mu.Lock()
					srv.got = append(srv.got, binary.BigEndian.Uint64(cmd.(link.SendPacket).Packet))
					srv.mu.Unlock()
				}
			}()
		}
	}()
	fx := newFixture(t, func(c *Config) { c.DialContext = nil; c.QueueLength = 1000 })
	d := desc("peer", ln.Addr().String())
	fx.f.SetPeers([]*pki.Descriptor{d})
	stop := run(t, fx.f)
	defer stop()
	for i := range uint64(500) {
		if err := fx.f.Send(&d.ID, packet(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fx.f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(srv.received()) < 500 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := srv.received()
	if len(got) != 500 {
		t.Fatalf("received %d", len(got))
	}
	for i, s := range got {
		if s != uint64(i) {
			t.Fatalf("out of order at %d", i)
		}
	}
}

// metricValue reads a gauge or counter without labels from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
