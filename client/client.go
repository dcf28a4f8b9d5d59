package client

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/chorus-mixnet/chorus/client/arq"
	"github.com/chorus-mixnet/chorus/client/egress"
	"github.com/chorus-mixnet/chorus/client/message"
	"github.com/chorus-mixnet/chorus/client/route"
	"github.com/chorus-mixnet/chorus/client/store"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/pki"
)

// Client is the daemon core: it keeps the link to the provider, runs the
// egress clocks, the ARQ and retrieval, and answers the local API (it
// implements client/api's Backend). Create it with New, run it with Run,
// and Close it after Run has returned.
type Client struct {
	cfg     Config
	store   *store.Store
	log     *slog.Logger
	rand    io.Reader
	dial    func(ctx context.Context, cfg link.Config, provider keys.LinkPublicKey) (*link.Conn, error)
	linkCfg link.Config
	m       *metrics

	sel     *route.Selector
	tracker *arq.Tracker
	reasm   *message.Reassembler

	linkKey *keys.LinkPrivateKey
	msgKey  *message.PrivateKey
	self    route.Address
	card    message.Card

	closeOnce sync.Once

	mu sync.Mutex
	// Documents (documents.go).
	docs       map[uint64]*docEntry
	asked      map[uint64]time.Time // when each missing epoch was last asked for
	chunks     consensusAssembly
	paramsDoc  *pki.Document // the document whose parameters the egress runs on
	newestSave uint64        // epoch of the document saved in the store
	// The session with the provider (session.go).
	connected  bool
	sender     *egress.Sender
	retrieving bool
	retrieveAt time.Time
	pendingAck *uint64
	lastSeq    uint64
	// Outgoing (outgoing.go).
	queue      []outItem
	recipients map[arq.MessageID]message.Card
	sentAny    map[arq.MessageID]bool
	tokens     map[route.SURBID]*token
	restored   map[route.SURBID]bool // SURB IDs of attempts made before this start (tokens in the store)
	loops      int                   // loop tokens held
	// Packets built ahead of their slots (prepare.go).
	ready    [numReady]*built
	prepWake chan struct{}
	// Contacts, most recent sender first (incoming.go).
	contacts []store.Contact
	// inboxCh is closed and replaced whenever a message is saved.
	inboxCh chan struct{}
}

// New builds a Client from its config and the user's open store. It
// reads the keys, contacts and the state of unfinished messages from the
// store, and starts nothing.
func New(cfg Config, deps Deps) (_ *Client, err error) {
	cfg, err = cfg.check(deps)
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:        cfg,
		store:      deps.Store,
		log:        deps.Log,
		rand:       deps.Rand,
		dial:       deps.Dial,
		sel:        route.New(nil),
		docs:       map[uint64]*docEntry{},
		asked:      map[uint64]time.Time{},
		recipients: map[arq.MessageID]message.Card{},
		sentAny:    map[arq.MessageID]bool{},
		tokens:     map[route.SURBID]*token{},
		restored:   map[route.SURBID]bool{},
		inboxCh:    make(chan struct{}),
		prepWake:   make(chan struct{}, 1),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.rand == nil {
		c.rand = crand.Reader
	}
	// Undo a half-built client in one place.
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.m, err = newMetrics(deps.Registerer, c.queueLength); err != nil {
		return nil, fmt.Errorf("client: register metrics: %w", err)
	}
	lm, err := link.NewMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("client: register link metrics: %w", err)
	}
	if c.linkKey, err = c.store.LinkKey(); err != nil {
		return nil, fmt.Errorf("client: read link key: %w", err)
	}
	if c.msgKey, err = c.store.MessageKey(); err != nil {
		return nil, fmt.Errorf("client: read message key: %w", err)
	}
	c.linkCfg = link.Config{
		PrivateKey:   c.linkKey,
		PacketLength: cfg.Geometry.PacketLength(),
		KeepAlive:    cfg.LinkKeepAlive,
		IdleTimeout:  cfg.LinkIdleTimeout,
		Logger:       c.log,
		Metrics:      lm,
	}
	if c.dial == nil {
		addr := cfg.ProviderAddress
		c.dial = func(ctx context.Context, lc link.Config, want keys.LinkPublicKey) (*link.Conn, error) {
			return link.Dial(ctx, "tcp", addr, lc, want)
		}
	}
	c.self = route.Address{Provider: cfg.ProviderID, Mailbox: c.linkKey.Public().MailboxID()}
	c.card = message.Card{ProviderID: cfg.ProviderID, MailboxID: c.self.Mailbox, Key: c.msgKey.Public()}

	if err := c.loadContacts(); err != nil {
		return nil, err
	}
	if err := c.restoreOutbox(); err != nil {
		return nil, err
	}
	if err := c.restoreInbox(); err != nil {
		return nil, err
	}
	c.loadDocument()
	return c, nil
}

// Close wipes the keys the Client holds. Call it after Run has returned;
// it is idempotent. It does not close the store.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if c.linkKey != nil {
			c.linkKey.Zero()
		}
		if c.msgKey != nil {
			c.msgKey.Zero()
		}
		c.mu.Lock()
		for id, t := range c.tokens {
			t.wipe()
			delete(c.tokens, id)
		}
		c.mu.Unlock()
	})
	return nil
}

// Run keeps the client working until ctx ends: it connects to the
// provider (again and again, with backoff), runs the egress clocks and
// retrieval over the link, and retransmits what the ARQ says. It returns
// nil after ctx ends, once every goroutine it started has stopped; state
// is durable at every moment, so there is nothing to flush.
func (c *Client) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.tracker.Run(ctx, c.expired) })
	g.Go(func() error { return c.connectLoop(ctx) })
	err := g.Wait()
	c.log.Info("client stopped")
	return err
}

// Ready reports whether the client can send: connected to its provider,
// with a usable document. It backs /readyz.
func (c *Client) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.connected {
		return errors.New("not connected to the provider")
	}
	if c.currentDocLocked(time.Now()) == nil {
		return errors.New("no consensus document for the current epoch")
	}
	return nil
}

// loadContacts fills the contact cache from the store.
func (c *Client) loadContacts() error {
	cs, err := c.store.Contacts()
	if err != nil {
		return fmt.Errorf("client: read contacts: %w", err)
	}
	c.mu.Lock()
	c.contacts = cs
	c.mu.Unlock()
	return nil
}
