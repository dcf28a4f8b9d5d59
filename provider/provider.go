package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-mixnet/chorus/mix"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/provider/spool"
	"github.com/chorus-mixnet/chorus/provider/users"
)

// Provider is a Chorus provider: the mix pipeline as first and last hop,
// the mailboxes, the client links. See the package documentation.
type Provider struct {
	cfg   Config
	deps  mix.Deps
	log   *slog.Logger
	pipe  *mix.Pipeline
	users *users.Registry
	spool *spool.Spool
	docs  *docCache
	m     *metrics

	running   atomic.Bool
	clientSeq atomic.Uint64 // numbers client links as they are authorized
	ln        net.Listener  // deps.Listener, or opened by Run

	// The store queue: deliveries waiting for a store worker. Deliver
	// (the pipeline's workers) sends; the channel is closed once the
	// pipeline has stopped.
	storeQ   chan delivery
	storing  atomic.Int64 // deliveries queued or being stored
	replies  *mix.Ingress // ACKs and echo answers into our own pipeline
	replyCtx context.Context
	// put stores a mailbox entry: the spool's Put; tests wrap it to see
	// the order of stores and ACKs.
	put func(mailbox [spool.MailboxIDLength]byte, entry []byte) error

	mu      sync.Mutex
	addr    net.Addr
	clients map[[users.MailboxIDLength]byte]*client
	closing bool // Run is draining: no new clients

	closeOnce sync.Once
	closeErr  error
}

// New returns a provider for cfg. It opens the pipeline's key store and
// replay filters, the client registry and the spool in the data directory,
// and starts nothing: Run does. deps are the pipeline's collaborators:
// Documents is required; Listener, if set, is where clients and nodes
// connect (else Run listens on cfg.Pipeline.Listen).
func New(cfg Config, deps mix.Deps) (_ *Provider, err error) {
	if cfg, err = cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Pipeline.Listen == "" && deps.Listener == nil {
		return nil, fmt.Errorf("%w: no listen address", ErrConfig)
	}
	if deps.Documents == nil {
		return nil, fmt.Errorf("%w: no document source", ErrConfig)
	}
	p := &Provider{
		cfg:     cfg,
		deps:    deps,
		log:     deps.Log,
		ln:      deps.Listener,
		docs:    newDocCache(),
		storeQ:  make(chan delivery, cfg.StoreQueue),
		clients: make(map[[users.MailboxIDLength]byte]*client),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	// Undo a half-built provider in one place.
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.m, err = newMetrics(deps.Registerer, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chorus_provider_store_queue_deliveries",
		Help: "Deliveries queued for, or being handled by, the store workers.",
	}, func() float64 { return float64(p.storing.Load()) })); err != nil {
		return nil, fmt.Errorf("provider: metrics: %w", err)
	}
	dir := cfg.Pipeline.DataDir
	if err = os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("provider: create data directory: %w", err)
	}
	if p.users, err = users.Open(filepath.Join(dir, UsersFile), users.Config{
		Registration:    cfg.Registration,
		PerAddressLimit: cfg.PerAddressLimit,
		Window:          cfg.RegistrationWindow,
		MaxUsers:        cfg.MaxUsers,
		Registerer:      deps.Registerer,
		Logger:          p.log,
	}); err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	if p.spool, err = spool.Open(filepath.Join(dir, SpoolFile), spool.Config{
		MaxAge:         cfg.MaxAge,
		MaxMessages:    cfg.MaxMessages,
		MaxBytes:       cfg.MaxBytes,
		RefuseWhenFull: true,
		Registerer:     deps.Registerer,
		Logger:         p.log,
	}); err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	p.put = p.spool.Put
	pcfg := cfg.Pipeline
	pcfg.Deliver = p.deliver
	pdeps := deps
	pdeps.Listener = nil // the provider accepts; the pipeline only serves
	pdeps.Documents = &recorder{src: deps.Documents, cache: p.docs}
	if p.pipe, err = mix.NewPipeline(pcfg, pdeps); err != nil {
		return nil, err
	}
	return p, nil
}

// ID returns the provider's node ID.
func (p *Provider) ID() pki.NodeID { return p.pipe.ID() }

// Pipeline returns the provider's mix pipeline.
func (p *Provider) Pipeline() *mix.Pipeline { return p.pipe }

// Addr returns the address the provider listens on once Run has started
// listening; nil before.
func (p *Provider) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Ready reports whether the provider serves: it is listening, and its
// pipeline is ready (the current document lists it with its keys, and a
// link to the first layer is up).
func (p *Provider) Ready() error {
	if p.Addr() == nil {
		return errors.New("not listening")
	}
	return p.pipe.Ready()
}

// Run listens, runs the pipeline, accepts client and node links, stores
// deliveries and expires old messages until ctx ends. Then it drains: it
// stops accepting and closes the links, lets queued deliveries be stored
// and acknowledged (for up to half the pipeline's drain timeout), stops
// the pipeline (which lets held packets go out), and stores what is still
// queued. It returns once every goroutine it started has stopped: nil, or
// the error that stopped it. A Provider runs once.
func (p *Provider) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("provider: already run")
	}
	ln := p.ln
	if ln == nil {
		var lc net.ListenConfig
		var err error
		if ln, err = lc.Listen(ctx, "tcp", p.cfg.Pipeline.Listen); err != nil {
			close(p.storeQ)
			return fmt.Errorf("provider: listen: %w", err)
		}
	}
	p.mu.Lock()
	p.addr = ln.Addr()
	p.mu.Unlock()

	pipeCtx, stopPipe := context.WithCancel(context.Background())
	defer stopPipe()
	p.replyCtx = pipeCtx
	p.replies = p.pipe.NewIngress()
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- p.pipe.Run(pipeCtx) }()

	var storeWG sync.WaitGroup
	for range p.cfg.StoreWorkers {
		storeWG.Go(p.storeWorker)
	}

	frontCtx, stopFront := context.WithCancel(ctx)
	defer stopFront()
	var frontWG sync.WaitGroup
	frontWG.Go(func() {
		defer ln.Close()
		select {
		case <-p.pipe.Started():
		case <-frontCtx.Done():
			return
		}
		p.log.Info("provider: serving", "listen", ln.Addr().String(), "registration", p.cfg.Registration.String())
		p.accept(frontCtx, ln)
	})
	frontWG.Go(func() { p.expire(frontCtx) })

	var err error
	select {
	case <-ctx.Done():
	case err = <-pipeDone:
		pipeDone = nil
		if err == nil {
			err = errors.New("provider: pipeline stopped")
		}
	}

	// Drain: no new links, then the queued deliveries, then the pipeline.
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	stopFront()
	ln.Close()
	p.closeClients()
	frontWG.Wait()
	if pipeDone != nil {
		p.waitStored(p.drainTimeout() / 2)
		stopPipe()
		err = <-pipeDone
	}
	// The pipeline's workers have stopped, so nothing sends on storeQ.
	close(p.storeQ)
	storeWG.Wait()
	p.log.Info("provider: stopped")
	return err
}

func (p *Provider) drainTimeout() time.Duration {
	if d := p.cfg.Pipeline.DrainTimeout; d > 0 {
		return d
	}
	return mix.DefaultDrainTimeout
}

// waitStored waits until every queued delivery is stored (and
// acknowledged), for at most d.
func (p *Provider) waitStored(d time.Duration) {
	deadline := time.Now().Add(d)
	for p.storing.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// expire enforces the retention limits every ExpireInterval.
func (p *Provider) expire(ctx context.Context) {
	t := time.NewTicker(p.cfg.ExpireInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.spool.Expire(); err != nil && !errors.Is(err, spool.ErrClosed) {
			p.log.Warn("provider: expire messages", "err", err)
		}
	}
}

// accept runs the handshake of every connection in a goroutine of its
// own, at most MaxHandshakes at once, and serves the links that pass:
// links from nodes the documents allow to send here go to the pipeline,
// links from clients the registry authorizes to serveClient.
func (p *Provider) accept(ctx context.Context, ln net.Listener) {
	base := p.pipe.LinkConfig()
	link.AcceptLoop(ctx, ln, base.MaxHandshakes, p.log, func(ctx context.Context, nc net.Conn) func() {
		var peer peerKind
		var mailbox [users.MailboxIDLength]byte
		var seq uint64
		cfg := base
		remote := remoteIP(nc.RemoteAddr())
		cfg.Authorize = func(k keys.LinkPublicKey) bool {
			if p.pipe.Authorize(k) {
				peer = peerNode
				return true
			}
			if !p.roomFor(k) {
				return false
			}
			var ok bool
			if mailbox, ok = p.users.Authorize(k, remote); ok {
				peer = peerClient
				// Numbered here, before the client learns it is in, so a
				// client's links are numbered in the order it made them.
				seq = p.clientSeq.Add(1)
			}
			return ok
		}
		c, err := link.Server(ctx, nc, cfg)
		if err != nil {
			return nil // counted by the link and registry metrics; the peer learns nothing
		}
		return func() {
			switch peer {
			case peerNode:
				_ = p.pipe.ServeLink(ctx, c)
			case peerClient:
				p.serveClient(ctx, c, mailbox, seq)
			}
		}
	})
}

type peerKind uint8

const (
	peerNone peerKind = iota
	peerNode
	peerClient
)

// remoteIP is the address the registration rate limit applies to.
func remoteIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// Close releases what New opened: the pipeline's keys and replay filters,
// the spool and the registry. Call it after Run has returned. It is
// idempotent.
func (p *Provider) Close() error {
	p.closeOnce.Do(func() {
		var errs []error
		if p.pipe != nil {
			errs = append(errs, p.pipe.Close())
		}
		if p.spool != nil {
			errs = append(errs, p.spool.Close())
		}
		if p.users != nil {
			errs = append(errs, p.users.Close())
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// geometry returns the packet geometry, known once the pipeline started.
func (p *Provider) geometry() *sphinx.Geometry { return p.pipe.Geometry() }
