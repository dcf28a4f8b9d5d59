package mix

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chorus-mixnet/chorus/mix/link/linktest"
)

// memnet is an in-memory network of listeners and real links over
// linktest pipes, so that a whole network runs inside a synctest bubble,
// on the fake clock.
type memnet struct {
	mu        sync.Mutex
	next      int
	listeners map[string]*memListener
}

func newMemnet() *memnet { return &memnet{listeners: map[string]*memListener{}} }

type memAddr string

func (memAddr) Network() string  { return "tcp" }
func (a memAddr) String() string { return string(a) }

type memListener struct {
	addr   memAddr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

// listen returns a listener with a fresh loopback-looking address.
func (m *memnet) listen() net.Listener {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	l := &memListener{addr: memAddr(fmt.Sprintf("127.0.0.1:%d", 40000+m.next)), conns: make(chan net.Conn), closed: make(chan struct{})}
	m.listeners[string(l.addr)] = l
	return l
}

func (m *memnet) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	m.mu.Lock()
	l := m.listeners[addr]
	m.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	a, b := linktest.Pipe()
	select {
	case l.conns <- b:
		return a, nil
	case <-l.closed:
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *memListener) Addr() net.Addr { return l.addr }

// TestDelaysExact runs the whole network in a synctest bubble: every
// packet arrives exactly when the delays drawn for it are up, since
// unwrapping and sending take no time on the fake clock. Then an epoch
// boundary passes in the middle of traffic without losing a packet.
func TestDelaysExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const period = 10 * time.Second
		mem := newMemnet()
		s := schedule(t, period, period/2)
		n := &fullNet{dir: newTestDir(3), got: newDeliveries()}
		n.dir.dial = mem.dial
		n.provider = startProvider(t, n.dir, s, "provider-0", mem.listen(), n.got.deliver)
		for l := range 3 {
			n.mixes = append(n.mixes, startNode(t, n.dir, s, fmt.Sprintf("mix-%d-0", l), l, mem.listen(), "", nil))
		}
		waitForReady(t, append([]*running{n.provider}, n.mixes...)...)

		in := n.provider.p.NewIngress()
		first := s.Now()
		type sent struct {
			at  time.Time
			sum time.Duration
		}
		var all []sent
		for s.Now() < first+2 { // across the boundaries to first+1 and first+2
			e := s.Now()
			delays, sum := randomDelays(50 * time.Millisecond)
			pkt := n.packet(t, e, uint64(len(all)), delays)
			now := time.Now()
			if err := in.Submit(context.Background(), pkt, now); err != nil {
				t.Fatal(err)
			}
			all = append(all, sent{now, sum})
			time.Sleep(100 * time.Millisecond)
		}
		waitFor(t, "every packet delivered", func() bool { return n.got.count() == len(all) })
		for i, p := range all {
			at, _ := n.got.get(uint64(i))
			if got := at.Sub(p.at); got != p.sum {
				t.Errorf("packet %d: arrived after %v, want exactly its delays, %v", i, got, p.sum)
			}
		}
		for _, m := range append([]*running{n.provider}, n.mixes...) {
			if d := dropCounts(m); len(d) != 0 {
				t.Errorf("%s dropped packets: %v", m.name, d)
			}
		}
		t.Logf("%d packets over epochs %d to %d, each delivered exactly on time", len(all), first, s.Now())
	})
}
