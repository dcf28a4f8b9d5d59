package mix

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/chorus-mixnet/chorus/mix/delay"
	"github.com/chorus-mixnet/chorus/mix/forward"
	"github.com/chorus-mixnet/chorus/mix/hop"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/replay"
	"github.com/chorus-mixnet/chorus/mix/rotation"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
)

// Errors of the ingress.
var (
	// ErrNotStarted: the pipeline has no document yet, so it knows no
	// packet geometry (see Started).
	ErrNotStarted = errors.New("mix: pipeline not started")
	// ErrDraining: the pipeline is shutting down and takes no more
	// packets.
	ErrDraining = errors.New("mix: pipeline draining")
	// ErrPacketLength: a submitted packet is not one packet long.
	ErrPacketLength = errors.New("mix: packet of the wrong length")
)

// Pipeline is the packet path shared by mix nodes and providers: a pool
// of workers unwraps packets (hop), holds them for their delay (delay)
// and sends them to the next hop (forward), while the pipeline follows
// the documents, rotates and publishes its keys, and sends loop cover
// traffic. See the package documentation.
type Pipeline struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	rand   io.Reader
	self   pki.NodeID
	m      *metrics
	linkM  *link.Metrics
	keys   *rotation.Rotation
	replay *replay.Set
	loops  *loops

	running   atomic.Bool
	started   chan struct{} // closed once the fields below are set
	geo       *sphinx.Geometry
	proc      *hop.Processor
	queue     *delay.Queue[held]
	fwd       *forward.Forwarder
	pool      *pool
	work      chan job
	linkCfg   link.Config
	setupOnce sync.Once

	epoch    atomic.Uint64           // current epoch, for key choice
	docs     atomic.Pointer[docSet]  // documents held; nil before the first
	inflight atomic.Int64            // packets taken in and not yet past the workers
	draining chan struct{}           // closed when the drain begins
	drainMu  sync.Mutex              // guards conns and the draining close
	conns    map[*link.Conn]struct{} // incoming node links being served
	isDrain  bool

	closeOnce sync.Once
	closeErr  error
}

// held is a packet in the delay queue: its buffer and its next hop.
type held struct {
	buf  []byte
	next pki.NodeID
}

// job is a packet waiting for a worker. credit, if not nil, is its
// source's credit, returned when a worker is done with it.
type job struct {
	buf     []byte
	arrival time.Time
	credit  chan struct{}
}

// NewPipeline returns a pipeline for cfg. It opens the key store and the
// replay filters in cfg.DataDir and starts nothing: Run does.
func NewPipeline(cfg Config, deps Deps) (_ *Pipeline, err error) {
	if cfg, err = cfg.check(); err != nil {
		return nil, err
	}
	if deps.Documents == nil {
		return nil, fmt.Errorf("%w: no document source", ErrConfig)
	}
	p := &Pipeline{
		cfg:      cfg,
		deps:     deps,
		log:      deps.Log,
		rand:     deps.Rand,
		self:     cfg.Identity.Public().NodeID(),
		started:  make(chan struct{}),
		draining: make(chan struct{}),
		conns:    make(map[*link.Conn]struct{}),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.rand == nil {
		p.rand = rand.Reader
	}
	// Undo a half-built pipeline in one place.
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.linkM, err = link.NewMetrics(deps.Registerer); err != nil {
		return nil, fmt.Errorf("mix: link metrics: %w", err)
	}
	// A key lives an epoch plus its grace; a quarter more for headroom.
	life := cfg.Schedule.Period() + cfg.KeyGrace
	capacity := uint64(cfg.MaxPacketRate) * uint64(max(life+life/4, time.Second)/time.Second)
	if p.replay, err = replay.OpenSet(replay.SetConfig{
		Dir:        filepath.Join(cfg.DataDir, "replay"),
		Capacity:   max(capacity, 1024),
		FPRate:     DefaultReplayFPRate,
		Logger:     p.log,
		Registerer: deps.Registerer,
	}); err != nil {
		return nil, fmt.Errorf("mix: %w", err)
	}
	if p.keys, err = rotation.New(rotation.Config{
		Dir:        filepath.Join(cfg.DataDir, "sphinx"),
		Schedule:   cfg.Schedule,
		Grace:      cfg.KeyGrace,
		Rand:       p.rand,
		Logger:     p.log,
		Registerer: deps.Registerer,
		OnRetire: func(e uint64) {
			if err := p.replay.Retire(e); err != nil {
				p.log.Error("mix: retire replay filter", "epoch", e, "err", err)
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("mix: %w", err)
	}
	p.loops = newLoops(p)
	if p.m, err = newMetrics(deps.Registerer, p.gauges()); err != nil {
		return nil, fmt.Errorf("mix: metrics: %w", err)
	}
	return p, nil
}

// gauges are the pipeline's gauges read at scrape time.
func (p *Pipeline) gauges() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chorus_mix_work_queue_packets",
			Help: "Packets taken in and waiting for (or being processed by) a worker.",
		}, func() float64 { return float64(p.inflight.Load()) }),
	}
}

// ID returns the node's ID.
func (p *Pipeline) ID() pki.NodeID { return p.self }

// Started is closed once Run holds a document and the pipeline takes
// packets: then LinkConfig, Geometry and the ingress work.
func (p *Pipeline) Started() <-chan struct{} { return p.started }

// Geometry returns the packet geometry; nil before Started.
func (p *Pipeline) Geometry() *sphinx.Geometry {
	if !isClosed(p.started) {
		return nil
	}
	return p.geo
}

// LinkConfig returns the configuration for links this node accepts from
// other nodes, valid once Started: its link key, the packet length, the
// shared link metrics, and Authorize. A provider that also accepts
// clients wraps Authorize with its own check.
func (p *Pipeline) LinkConfig() link.Config { return p.linkCfg }

// Epoch returns the current epoch as the pipeline last saw it.
func (p *Pipeline) Epoch() uint64 { return p.epoch.Load() }

// Document returns the document for the current epoch, or nil.
func (p *Pipeline) Document() *pki.Document {
	if s := p.docs.Load(); s != nil {
		return s.cur
	}
	return nil
}

// Run runs the pipeline until ctx ends, then drains: it stops taking
// packets, lets held packets go out for up to Config.DrainTimeout, closes
// the links, and returns nil once every goroutine it started has stopped
// (or the first error that stopped it). A Pipeline runs once.
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("mix: pipeline already run")
	}
	failCtx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	spawn := func(g *errgroup.Group, ctx context.Context, f func(context.Context) error) {
		g.Go(func() error {
			err := f(ctx)
			if err != nil {
				fail(err)
			}
			return err
		})
	}

	// Keys and replay filters outlive the packet path, which uses them.
	keysCtx, stopKeys := context.WithCancel(context.Background())
	defer stopKeys()
	var keysG errgroup.Group
	spawn(&keysG, keysCtx, p.keys.Run)
	spawn(&keysG, keysCtx, p.replay.Run)

	pipeCtx, stopPipe := context.WithCancel(context.Background())
	defer stopPipe()
	var pipeG errgroup.Group
	spawn(&pipeG, pipeCtx, p.upload)
	spawn(&pipeG, pipeCtx, func(ctx context.Context) error { dropWarner(ctx, p.m, p.log, 10*time.Second); return nil })

	doc, err := p.firstDocument(failCtx)
	if err == nil {
		err = p.setup(doc)
		if err != nil {
			fail(err)
		}
	}
	if err == nil {
		spawn(&pipeG, pipeCtx, p.queue.Run)
		spawn(&pipeG, pipeCtx, p.fwd.Run)
		for range p.cfg.Workers {
			spawn(&pipeG, pipeCtx, p.worker)
		}
		spawn(&pipeG, pipeCtx, p.track)
		if !p.cfg.DisableLoops {
			spawn(&pipeG, pipeCtx, p.loops.run)
		}
		close(p.started)
		p.log.Info("mix: pipeline started", "node", p.cfg.Name, "role", p.cfg.Role, "epoch", doc.Epoch,
			"geometry", p.geo.String(), "workers", p.cfg.Workers)
	}

	<-failCtx.Done()
	stopped := ctx.Err() != nil // asked to stop, rather than failed
	p.drain(isClosed(p.started) && stopped)
	stopPipe()
	pipeErr := pipeG.Wait()
	stopKeys()
	keysErr := keysG.Wait()
	if !stopped {
		return context.Cause(failCtx)
	}
	return errors.Join(pipeErr, keysErr)
}

// firstDocument waits for the document of the current epoch.
func (p *Pipeline) firstDocument(ctx context.Context) (*pki.Document, error) {
	warned := time.Time{}
	for {
		e := p.cfg.Schedule.Now()
		doc, _, err := p.deps.Documents.Document(ctx, e)
		if err == nil {
			return doc, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Since(warned) > time.Minute {
			p.log.Info("mix: waiting for the document of the current epoch", "epoch", e, "err", err)
			warned = time.Now()
		}
		if !sleepCtx(ctx, p.pollInterval()) {
			return nil, ctx.Err()
		}
	}
}

// pollInterval is how often missing documents are asked for again.
func (p *Pipeline) pollInterval() time.Duration { return p.cfg.PollInterval }

// setup builds the packet path for the geometry of the first document.
func (p *Pipeline) setup(doc *pki.Document) error {
	geo, err := sphinx.NewGeometry(doc.Geometry.Hops, doc.Geometry.UserPayloadLength, doc.Geometry.WithSURB)
	if err != nil {
		return fmt.Errorf("mix: document geometry: %w", err)
	}
	pl := geo.PacketLength()
	p.geo = geo
	p.pool = newPool(pl, 4*p.cfg.Workers*p.cfg.LinkCredit+1024)
	p.work = make(chan job, 1024)
	p.linkCfg = link.Config{
		PrivateKey:   p.cfg.LinkKey,
		PacketLength: pl,
		Authorize:    p.Authorize,
		Logger:       p.log,
		Metrics:      p.linkM,
	}
	p.proc = hop.New(geo, p.keys, p.replay)
	if p.queue, err = delay.New(delay.Config{
		MaxPackets: p.cfg.DelayMaxPackets,
		MaxBytes:   int64(p.cfg.DelayMaxPackets) * int64(pl),
		MaxDelay:   doc.Parameters.MaxDelay,
		Registerer: p.deps.Registerer,
	}, p.release); err != nil {
		return fmt.Errorf("mix: %w", err)
	}
	if p.fwd, err = forward.New(forward.Config{
		Link:        p.linkCfg,
		DialContext: p.deps.DialContext,
		QueueLength: p.cfg.ForwardQueue,
		MinBackoff:  p.cfg.MinBackoff,
		MaxBackoff:  p.cfg.MaxBackoff,
		Release:     p.pool.put,
		Dropped:     p.m.drop,
		Logger:      p.log,
		Registerer:  p.deps.Registerer,
	}); err != nil {
		return fmt.Errorf("mix: %w", err)
	}
	p.epoch.Store(p.cfg.Schedule.Now())
	p.prepareReplay(p.epoch.Load())
	p.install(&docSet{cur: doc})
	return nil
}

// Authorize reports whether the node holding link key k may send packets
// to this one: whether the previous, current or next document lists it
// in a layer that sends to this node's layer. It is the Authorize of
// links from other nodes.
func (p *Pipeline) Authorize(k keys.LinkPublicKey) bool {
	s := p.docs.Load()
	if s == nil {
		return false
	}
	for _, doc := range s.all() {
		if d, ok := doc.NodeByLinkKey(k); ok && doc.MaySend(d.ID, p.self) {
			return true
		}
	}
	return false
}

// Ingress feeds packets from one source, such as one link, into the
// pipeline. Each Ingress has its own credit (Config.LinkCredit): Submit
// blocks while that many of its packets wait for a worker, so one busy
// source cannot crowd out the others.
type Ingress struct {
	p      *Pipeline
	credit chan struct{}
}

// NewIngress returns a new source of packets.
func (p *Pipeline) NewIngress() *Ingress {
	return &Ingress{p: p, credit: make(chan struct{}, p.cfg.LinkCredit)}
}

// Submit copies pkt into the pipeline; arrival is when it reached the
// node (its delay counts from then; zero means now). It blocks while the
// source is out of credit, and returns ErrNotStarted, ErrDraining,
// ErrPacketLength or ctx.Err() without taking the packet.
func (in *Ingress) Submit(ctx context.Context, pkt []byte, arrival time.Time) error {
	p := in.p
	if !isClosed(p.started) {
		return ErrNotStarted
	}
	if len(pkt) != p.geo.PacketLength() {
		return ErrPacketLength
	}
	select {
	case in.credit <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.draining:
		return ErrDraining
	}
	if arrival.IsZero() {
		arrival = time.Now()
	}
	buf := p.pool.get()
	copy(buf, pkt)
	p.m.in.Inc()
	p.inflight.Add(1)
	select {
	case p.work <- job{buf: buf, arrival: arrival, credit: in.credit}:
		return nil
	case <-ctx.Done():
		err := ctx.Err()
		p.unsubmit(in, buf)
		return err
	case <-p.draining:
		p.unsubmit(in, buf)
		return ErrDraining
	}
}

func (p *Pipeline) unsubmit(in *Ingress, buf []byte) {
	p.pool.put(buf)
	p.inflight.Add(-1)
	<-in.credit
}

// Inject sends a packet this node made itself (a loop packet, a SURB
// reply) to the node next after the given delay (zero: at once), through the delay
// queue and the forwarder like any other packet (after is bounded by the
// documents' maximum delay). It copies pkt. It fails,
// counting the drop, if next is not a node this one may send to
// (forward.ErrNoPeer) or the delay queue refuses the packet.
func (p *Pipeline) Inject(next pki.NodeID, pkt []byte, after time.Duration) error {
	if !isClosed(p.started) {
		return ErrNotStarted
	}
	if len(pkt) != p.geo.PacketLength() {
		return ErrPacketLength
	}
	if !p.fwd.IsPeer(&next) {
		p.m.drop(forward.DropNoPeer)
		return forward.ErrNoPeer
	}
	buf := p.pool.get()
	copy(buf, pkt)
	if err := p.queue.Push(held{buf: buf, next: next}, len(buf), time.Time{}, after); err != nil {
		p.pool.put(buf)
		if errors.Is(err, delay.ErrTooLate) {
			p.m.drop(dropTooLate)
		} else {
			p.m.drop(dropDelayFull)
		}
		return err
	}
	return nil
}

// ServeLink reads packets from c, an authorized link from another node,
// and feeds them to the pipeline until c closes, ctx ends or the pipeline
// drains; then it closes c. Commands other than SendPacket are counted
// and ignored. It returns nil when the link ended normally.
func (p *Pipeline) ServeLink(ctx context.Context, c *link.Conn) error {
	if !p.addConn(c) {
		c.Close()
		return ErrDraining
	}
	defer p.removeConn(c)
	in := p.NewIngress()
	for {
		cmd, err := c.Recv(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, link.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		sp, ok := cmd.(link.SendPacket)
		if !ok {
			p.m.unexpect.Inc()
			continue
		}
		if err := in.Submit(ctx, sp.Packet, time.Now()); err != nil {
			if errors.Is(err, ErrDraining) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

func (p *Pipeline) addConn(c *link.Conn) bool {
	p.drainMu.Lock()
	defer p.drainMu.Unlock()
	if p.isDrain {
		return false
	}
	p.conns[c] = struct{}{}
	p.m.links.Inc()
	return true
}

func (p *Pipeline) removeConn(c *link.Conn) {
	c.Close()
	p.drainMu.Lock()
	defer p.drainMu.Unlock()
	if _, ok := p.conns[c]; ok {
		delete(p.conns, c)
		p.m.links.Dec()
	}
}

// closeUnauthorized closes incoming links whose peer the documents no
// longer allow.
func (p *Pipeline) closeUnauthorized() {
	p.drainMu.Lock()
	var gone []*link.Conn
	for c := range p.conns {
		if !p.Authorize(c.PeerKey()) {
			gone = append(gone, c)
		}
	}
	p.drainMu.Unlock()
	for _, c := range gone {
		c.Close()
	}
}

// worker unwraps packets until ctx ends.
func (p *Pipeline) worker(ctx context.Context) error {
	var d hop.Decision
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-p.work:
			p.process(&j, &d)
		}
	}
}

// process takes one packet through hop and on to the delay queue or the
// delivery hook. The buffer goes back to the pool unless the queue took
// it.
func (p *Pipeline) process(j *job, d *hop.Decision) {
	defer p.inflight.Add(-1)
	t0 := time.Now()
	p.proc.Process(j.buf, p.epoch.Load(), d)
	p.m.unwrap.Observe(time.Since(t0).Seconds())
	if j.credit != nil {
		<-j.credit
	}
	switch d.Action {
	case hop.Forward:
		if !p.fwd.IsPeer(&d.NextHop) {
			p.m.drop(forward.DropNoPeer)
			break
		}
		err := p.queue.Push(held{buf: j.buf, next: d.NextHop}, len(j.buf), j.arrival, d.Delay)
		switch {
		case err == nil:
			return // the queue owns the buffer
		case errors.Is(err, delay.ErrTooLate):
			p.m.drop(dropTooLate)
		default:
			p.m.drop(dropDelayFull)
		}
	case hop.Deliver:
		p.deliver(d)
	default:
		p.m.hopDrops[d.Reason].Inc()
	}
	p.pool.put(j.buf)
}

func (p *Pipeline) deliver(d *hop.Decision) {
	if p.loops.isLoop(&d.Recipient) {
		p.m.delivered.Inc()
		p.loops.received(d.Payload)
		return
	}
	if p.cfg.Deliver == nil {
		p.m.drop(dropDeliver)
		return
	}
	p.m.delivered.Inc()
	p.cfg.Deliver(d)
}

// release is the delay queue's: the packet's time has come.
func (p *Pipeline) release(h held) {
	if err := p.fwd.Send(&h.next, h.buf); err != nil {
		p.pool.put(h.buf) // forward counted the drop
	}
}

// drain stops the ingress and, if wait is set, lets the packets already
// taken in go out, for at most the drain timeout.
func (p *Pipeline) drain(wait bool) {
	p.drainMu.Lock()
	p.isDrain = true
	close(p.draining)
	conns := make([]*link.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.drainMu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	if !wait {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
	defer cancel()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for p.inflight.Load() > 0 || p.queue.Len() > 0 {
		select {
		case <-ctx.Done():
			p.log.Warn("mix: drain timed out; dropping held packets", "delay_queue", p.queue.Len())
			return
		case <-t.C:
		}
	}
	// Packets queued for next hops that are down cannot leave; wait only
	// for the others.
	if err := p.fwd.Flush(ctx); err != nil {
		p.log.Warn("mix: drain timed out; dropping queued packets", "forward_queue", p.fwd.Queued())
		return
	}
	p.log.Info("mix: drained")
}

// Ready reports whether the node is serving: it holds the document for
// the current epoch, that document lists this node with a Sphinx key it
// holds (its keys are published), and a link to at least one next hop is
// up.
func (p *Pipeline) Ready() error {
	s := p.docs.Load()
	if s == nil || s.cur == nil {
		return errors.New("no document for the current epoch")
	}
	e := s.cur.Epoch
	desc, ok := s.cur.Node(p.self)
	if !ok {
		return fmt.Errorf("not in the document for epoch %d (descriptor not yet published)", e)
	}
	pub, ok := desc.SphinxKey(e)
	key, held := p.keys.Key(e)
	if !ok || !held || !key.Public().Equal(pub) {
		return fmt.Errorf("the document's Sphinx key for epoch %d is not one this node holds", e)
	}
	for _, n := range s.nextHops(s.cur, p.self) {
		if p.fwd.Connected(&n.ID) {
			return nil
		}
	}
	return errors.New("no link to the next layer")
}

// Close releases what NewPipeline opened (the replay filters and the key
// store). Call it after Run has returned. It is idempotent.
func (p *Pipeline) Close() error {
	p.closeOnce.Do(func() {
		var errs []error
		if p.keys != nil {
			errs = append(errs, p.keys.Close())
		}
		if p.replay != nil {
			errs = append(errs, p.replay.Close())
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// sleepCtx waits for d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
