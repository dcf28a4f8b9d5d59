package mix

import (
	"context"
	"fmt"
	"net"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/pki"
)

// Node is a mix node: a Pipeline plus the listener for links from the
// nodes of the previous layer. Packets that end here other than its own
// loop packets are dropped.
type Node struct {
	p   *Pipeline
	cfg Config
	ln  net.Listener // Deps.Listener, or opened by Run

	mu   sync.Mutex
	addr net.Addr
}

// New returns a mix node. It opens the key store and replay filters in
// cfg.DataDir and starts nothing.
func New(cfg Config, deps Deps) (*Node, error) {
	if cfg.Role != pki.RoleMix {
		return nil, fmt.Errorf("%w: a mix node has role mix, not %v", ErrConfig, cfg.Role)
	}
	if cfg.Listen == "" && deps.Listener == nil {
		return nil, fmt.Errorf("%w: no listen address", ErrConfig)
	}
	cfg.Deliver = nil
	p, err := NewPipeline(cfg, deps)
	if err != nil {
		return nil, err
	}
	return &Node{p: p, cfg: cfg, ln: deps.Listener}, nil
}

// Pipeline returns the node's pipeline.
func (n *Node) Pipeline() *Pipeline { return n.p }

// Addr returns the address the node listens on, once Run has started
// listening; nil before.
func (n *Node) Addr() net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// Ready reports whether the node serves; see Pipeline.Ready.
func (n *Node) Ready() error { return n.p.Ready() }

// Run listens, runs the pipeline and accepts links from the previous
// layer until ctx ends; then it stops accepting, drains the pipeline and
// returns once every goroutine it started has stopped.
func (n *Node) Run(ctx context.Context) error {
	ln := n.ln
	if ln == nil {
		var lc net.ListenConfig
		var err error
		if ln, err = lc.Listen(ctx, "tcp", n.cfg.Listen); err != nil {
			return fmt.Errorf("mix: listen: %w", err)
		}
	}
	n.mu.Lock()
	n.addr = ln.Addr()
	n.mu.Unlock()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.p.Run(gctx) })
	g.Go(func() error {
		defer ln.Close()
		select {
		case <-n.p.Started():
		case <-gctx.Done():
			return nil
		}
		return n.accept(gctx, ln)
	})
	return g.Wait()
}

// accept runs the handshake of every connection in a goroutine of its
// own, at most MaxHandshakes at once, and serves the links that pass.
func (n *Node) accept(ctx context.Context, ln net.Listener) error {
	cfg := n.p.LinkConfig()
	link.AcceptLoop(ctx, ln, cfg.MaxHandshakes, n.p.log, func(ctx context.Context, nc net.Conn) func() {
		c, err := link.Server(ctx, nc, cfg)
		if err != nil {
			return nil // counted by the link metrics; the peer learns nothing
		}
		return func() { _ = n.p.ServeLink(ctx, c) }
	})
	return nil
}

// Close releases what New opened. Call it after Run returned; it is
// idempotent.
func (n *Node) Close() error { return n.p.Close() }
