package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/pki"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultQueueLength = 2048
	DefaultMinBackoff  = 100 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
)

// Drop reasons, reported to Config.Dropped.
const (
	// DropQueueFull: the peer's queue was full; the newest packet went.
	DropQueueFull = "queue_full"
	// DropNoPeer: the next hop is not a peer (no document lists it as a
	// node this one may send to).
	DropNoPeer = "no_peer"
	// DropPeerGone: the packet was queued for a peer that then left the
	// documents.
	DropPeerGone = "peer_gone"
	// DropShutdown: the packet was still queued when Run returned.
	DropShutdown = "shutdown"
)

// DropReasons lists every reason Config.Dropped may be given, for
// pre-registering metric labels.
func DropReasons() []string {
	return []string{DropQueueFull, DropNoPeer, DropPeerGone, DropShutdown}
}

// Errors returned by Send. The caller keeps the packet.
var (
	ErrQueueFull = errors.New("forward: peer queue full")
	ErrNoPeer    = errors.New("forward: next hop is not a peer")
	ErrClosed    = errors.New("forward: forwarder stopped")
	// ErrRunning: Run was called twice.
	ErrRunning = errors.New("forward: already run")
)

// Config configures a Forwarder.
type Config struct {
	// Link configures the outgoing links: PrivateKey and PacketLength are
	// required; Authorize is not used (the dialer checks the responder's
	// key against the document instead).
	Link link.Config
	// DialContext opens the connection a link runs over; nil means a
	// net.Dialer. Tests use it to run links over in-memory pipes.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// QueueLength bounds each peer's queue, in packets. Zero means
	// DefaultQueueLength.
	QueueLength int
	// MinBackoff and MaxBackoff bound the wait between dials of one peer:
	// it starts at MinBackoff, doubles after each failed dial up to
	// MaxBackoff, and each wait is drawn uniformly from [b/2, b).
	MinBackoff, MaxBackoff time.Duration
	// Release receives every packet buffer the Forwarder is done with,
	// sent or dropped. nil: buffers are left to the garbage collector.
	Release func(pkt []byte)
	// Dropped is told about every packet dropped here, with one of the
	// Drop* reasons; nil ignores them. It must be cheap and must not block.
	Dropped func(reason string)
	// Logger receives the forwarder's logs; nil discards them. Peer
	// addresses are logged only at debug level.
	Logger *slog.Logger
	// Registerer receives the chorus_mix_forward_* metrics; nil registers
	// nothing.
	Registerer prometheus.Registerer
}

// Forwarder keeps a link to each peer and sends packets on them. Send and
// SetPeers are safe for concurrent use, before and during Run.
type Forwarder struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	queued atomic.Int64 // packets held: queued or being sent

	mu      sync.RWMutex
	peers   map[pki.NodeID]*peer
	ctx     context.Context // Run's; nil before Run
	stopped bool            // Run has returned (or is returning)
	wg      sync.WaitGroup  // peer goroutines
}

// target is where a peer is reached.
type target struct {
	key   keys.LinkPublicKey
	addrs []string
}

func (t *target) equal(o *target) bool {
	return t.key.Equal(o.key) && slices.Equal(t.addrs, o.addrs)
}

type peer struct {
	id        pki.NodeID
	name      string
	target    atomic.Pointer[target]
	retarget  chan struct{} // cap 1: the target changed, redial
	queue     chan []byte
	gone      chan struct{} // closed when the peer leaves the documents
	connected atomic.Bool
	inHand    atomic.Int32 // 1 while a packet taken from queue is unsent
	started   bool         // guarded by Forwarder.mu
}

// New returns a Forwarder. It starts nothing.
func New(cfg Config) (*Forwarder, error) {
	if cfg.Link.PrivateKey == nil || cfg.Link.PacketLength <= 0 {
		return nil, errors.New("forward: new: the link config needs a private key and a packet length")
	}
	if cfg.QueueLength < 0 || cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 {
		return nil, errors.New("forward: new: negative queue length or backoff")
	}
	if cfg.QueueLength == 0 {
		cfg.QueueLength = DefaultQueueLength
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.DialContext == nil {
		var d net.Dialer
		cfg.DialContext = d.DialContext
	}
	if cfg.Release == nil {
		cfg.Release = func([]byte) {}
	}
	if cfg.Dropped == nil {
		cfg.Dropped = func(string) {}
	}
	f := &Forwarder{cfg: cfg, log: cfg.Logger, peers: make(map[pki.NodeID]*peer)}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if f.m, err = newMetrics(cfg.Registerer, f); err != nil {
		return nil, fmt.Errorf("forward: new: %w", err)
	}
	return f, nil
}

// SetPeers makes the nodes described by descs the peers: links are opened
// to new ones at once (when Run is active), links to peers that are no
// longer listed are closed and their queued packets dropped, and a peer
// whose link key or addresses changed is redialled. Descriptors with the
// same ID are merged (the first one wins), so callers may pass the
// next-hop sets of several documents together.
func (f *Forwarder) SetPeers(descs []*pki.Descriptor) {
	want := make(map[pki.NodeID]*pki.Descriptor, len(descs))
	for _, d := range descs {
		if d == nil {
			continue
		}
		if _, ok := want[d.ID]; !ok {
			want[d.ID] = d
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	for id, p := range f.peers {
		if _, ok := want[id]; !ok {
			delete(f.peers, id)
			close(p.gone) // under the lock: no Send can reach the queue after this
			if !p.started {
				f.drain(p, DropPeerGone)
			}
		}
	}
	for id, d := range want {
		t := &target{key: d.LinkKey, addrs: slices.Clone(d.Addresses)}
		if p, ok := f.peers[id]; ok {
			if !p.target.Load().equal(t) {
				p.target.Store(t)
				select {
				case p.retarget <- struct{}{}:
				default:
				}
			}
			continue
		}
		p := &peer{
			id:       id,
			name:     d.Name,
			retarget: make(chan struct{}, 1),
			queue:    make(chan []byte, f.cfg.QueueLength),
			gone:     make(chan struct{}),
		}
		p.target.Store(t)
		f.peers[id] = p
		if f.ctx != nil {
			f.start(p)
		}
	}
}

// start runs p's goroutine. f.mu must be held and Run active.
func (f *Forwarder) start(p *peer) {
	p.started = true
	f.wg.Add(1)
	go f.runPeer(f.ctx, p)
}

// Send queues pkt, which must be exactly the link packet length, for the
// peer id. It never blocks. On success the Forwarder owns pkt until it
// passes it to Config.Release; on error (ErrNoPeer, ErrQueueFull,
// ErrClosed) the caller keeps it. Every error is counted as a drop. A
// packet of the wrong length is a programming error: Send panics.
func (f *Forwarder) Send(id *pki.NodeID, pkt []byte) error {
	if len(pkt) != f.cfg.Link.PacketLength {
		panic("forward: Send: packet of the wrong length")
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.stopped {
		f.cfg.Dropped(DropShutdown)
		return ErrClosed
	}
	p := f.peers[*id]
	if p == nil {
		f.cfg.Dropped(DropNoPeer)
		return ErrNoPeer
	}
	select {
	case p.queue <- pkt:
		f.queued.Add(1)
		return nil
	default:
		f.cfg.Dropped(DropQueueFull)
		return ErrQueueFull
	}
}

// IsPeer reports whether id is a peer.
func (f *Forwarder) IsPeer(id *pki.NodeID) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.peers[*id] != nil
}

// Connected reports whether the link to peer id is up.
func (f *Forwarder) Connected(id *pki.NodeID) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p := f.peers[*id]
	return p != nil && p.connected.Load()
}

// Peers returns how many peers there are and how many of their links are
// up.
func (f *Forwarder) Peers() (total, connected int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, p := range f.peers {
		total++
		if p.connected.Load() {
			connected++
		}
	}
	return total, connected
}

// Queued returns the number of packets held: queued for a peer or being
// sent.
func (f *Forwarder) Queued() int { return int(f.queued.Load()) }

// Sendable returns the number of packets queued for peers whose link is
// up: those a draining node can still hope to send.
func (f *Forwarder) Sendable() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := 0
	for _, p := range f.peers {
		if p.connected.Load() {
			n += len(p.queue) + int(p.inHand.Load())
		}
	}
	return n
}

// Flush waits until no packet is queued for a peer whose link is up, or
// ctx ends; a node calls it while draining, before it cancels Run.
func (f *Forwarder) Flush(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for f.Sendable() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Run dials every peer and sends queued packets until ctx ends. Then it
// closes the links, drops what is still queued (DropShutdown), and returns
// nil once every goroutine it started has stopped. A Forwarder runs once.
func (f *Forwarder) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.ctx != nil || f.stopped {
		f.mu.Unlock()
		return ErrRunning
	}
	f.ctx = ctx
	for _, p := range f.peers {
		f.start(p)
	}
	f.mu.Unlock()

	<-ctx.Done()
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.wg.Wait()
	return nil
}

// runPeer keeps a link to p until p leaves or ctx ends, then drops what is
// left in p's queue.
func (f *Forwarder) runPeer(ctx context.Context, p *peer) {
	defer f.wg.Done()
	var pending []byte // taken from the queue, not yet sent
	backoff := f.cfg.MinBackoff
	for {
		c, err := f.dial(ctx, p)
		if err == nil {
			f.serve(ctx, p, c, &pending)
			backoff = f.cfg.MinBackoff // the link was good: redial soon
		} else if ctx.Err() == nil && !isClosed(p.gone) {
			f.m.dialFailed()
			f.log.Debug("forward: dial failed", "peer", p.name, "err", err, "backoff", backoff)
		}
		if ctx.Err() != nil || isClosed(p.gone) || !f.sleep(ctx, p, jitter(backoff)) {
			break
		}
		if err != nil {
			backoff = min(2*backoff, f.cfg.MaxBackoff)
		}
	}
	reason := DropShutdown
	if isClosed(p.gone) {
		reason = DropPeerGone
	}
	if pending != nil {
		f.dropHeld(pending, reason)
		p.inHand.Store(0)
	}
	f.drain(p, reason)
}

// drain drops every packet in p's queue. Nothing can be added to it any
// more: p has left f.peers, or Send refuses because f stopped.
func (f *Forwarder) drain(p *peer, reason string) {
	for {
		select {
		case pkt := <-p.queue:
			f.dropHeld(pkt, reason)
		default:
			return
		}
	}
}

func (f *Forwarder) dropHeld(pkt []byte, reason string) {
	f.queued.Add(-1)
	f.cfg.Dropped(reason)
	f.cfg.Release(pkt)
}

// sleep waits for d; false if ctx ended or p left first.
func (f *Forwarder) sleep(ctx context.Context, p *peer, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-p.gone:
		return false
	}
}

// jitter draws a wait uniformly from [b/2, b).
func jitter(b time.Duration) time.Duration {
	if b <= 1 {
		return b
	}
	return b/2 + rand.N(b-b/2)
}

// dial tries p's addresses in order and returns the first link that
// completes its handshake with p's published key.
func (f *Forwarder) dial(ctx context.Context, p *peer) (*link.Conn, error) {
	t := p.target.Load()
	// Drop a stale retarget signal: this dial uses the newest target.
	select {
	case <-p.retarget:
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.gone:
			cancel()
		case <-ctx.Done():
		}
	}()
	var errs []error
	for _, a := range t.addrs {
		network, addr, err := splitAddress(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c, err := f.dialOne(ctx, network, addr, t.key)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, errors.New("no address")
	}
	return nil, errors.Join(errs...)
}

func (f *Forwarder) dialOne(ctx context.Context, network, addr string, key keys.LinkPublicKey) (*link.Conn, error) {
	timeout := f.cfg.Link.HandshakeTimeout
	if timeout <= 0 {
		timeout = link.DefaultHandshakeTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := f.cfg.DialContext(dctx, network, addr)
	if err != nil {
		return nil, err
	}
	return link.Client(dctx, nc, f.cfg.Link, key)
}

// splitAddress turns a descriptor address, "tcp://host:port", into a
// network and an address for net.Dial.
func splitAddress(a string) (network, addr string, err error) {
	scheme, hostport, ok := strings.Cut(a, "://")
	switch {
	case !ok:
		return "", "", fmt.Errorf("address %q: want scheme://host:port", a)
	case scheme == "tcp", scheme == "tcp4", scheme == "tcp6":
		return scheme, hostport, nil
	}
	return "", "", fmt.Errorf("address %q: unsupported scheme", a)
}

// serve sends p's packets on c until c fails, p leaves or is retargeted,
// or ctx ends. A packet whose send failed stays in *pending for the next
// link, so packets keep their order.
func (f *Forwarder) serve(ctx context.Context, p *peer, c *link.Conn, pending *[]byte) {
	p.connected.Store(true)
	f.m.connected.Inc()
	f.log.Debug("forward: link up", "peer", p.name)
	defer func() {
		p.connected.Store(false)
		f.m.connected.Dec()
		f.log.Debug("forward: link down", "peer", p.name)
	}()

	// The peer sends nothing on a link we dialled but keepalives, which
	// need a reader; its end of the link, or ours, is seen here too.
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			if _, err := c.Recv(ctx); err != nil {
				c.Close()
				return
			}
			f.m.unexpected.Inc()
		}
	}()
	defer func() {
		c.Close() // writes any frames SendMore buffered first
		<-readerDone
	}()

	for {
		if *pending == nil {
			select {
			case pkt := <-p.queue:
				*pending = pkt
				p.inHand.Store(1)
			case <-ctx.Done():
				return
			case <-p.gone:
				return
			case <-p.retarget:
				return
			case <-readerDone:
				return
			}
		}
		// While more packets wait for this peer, frames are batched into
		// one write (up to the link's batch); the last one flushes them.
		send := c.Send
		if len(p.queue) > 0 {
			send = c.SendMore
		}
		if err := send(ctx, link.SendPacket{Packet: *pending}); err != nil {
			return
		}
		f.m.sent.Inc()
		f.queued.Add(-1)
		f.cfg.Release(*pending)
		*pending = nil
		p.inHand.Store(0)
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
