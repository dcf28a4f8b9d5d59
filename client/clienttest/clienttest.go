// Package clienttest is a stand-in for the network at the other end of a
// client's link, for tests of the client daemon: one provider that
// clients link to, and every other node of a pkitest network simulated in
// the same process.
//
// A Network answers exactly what docs/edge-protocol.md asks of a provider
// over real links (mix/link): GetConsensus with the chunked signed
// document, RetrieveMessage with the head of the client's mailbox or an
// empty Message, MessageAck by deleting the head, and SendPacket by
// processing the packet with the real Sphinx keys of pkitest's nodes
// (mix/hop): hop after hop, ignoring the per-hop delays, until a provider
// delivers it. Drop decoys are discarded, the echo service answers
// through the SURB, and a packet for a mailbox is stored as an encoded
// sphinx.Delivery, after which its SURB-ACK is built and routed the same
// way back. Mailboxes exist for every client key that linked (open
// registration) and live in memory.
//
// Hooks let a test lose packets (DropDelivery) to exercise
// retransmission. Never use it outside tests: pkitest's keys are public.
package clienttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/chorus-mixnet/chorus/mix/hop"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/link/linktest"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

// Shape of the simulated network: 3 layers of 2 mixes, 2 providers.
// Clients link to provider-0.
const (
	Layers        = 3
	MixesPerLayer = 2
	Providers     = 2
)

// AuthorityName names the pkitest identity that signs every document.
const AuthorityName = "clienttest-authority"

// Authority returns the identity key that signs the Network's documents.
func Authority() keys.IdentityPublicKey { return pkitest.Identity(AuthorityName).Public() }

// Config shapes a Network.
type Config struct {
	// Parameters are the documents' traffic parameters; zero means
	// pkitest.Parameters().
	Parameters pki.Parameters
	// Epoch returns the current epoch, for choosing Sphinx keys (the
	// previous and next epoch's are tried too). Required.
	Epoch func() uint64
	// Published reports whether the document for an epoch is served;
	// nil means every epoch's is.
	Published func(epoch uint64) bool
}

// Stats counts what a Network did.
type Stats struct {
	Packets    uint64 // SendPackets received from clients
	Invalid    uint64 // packets a node could not open (or replays)
	Decoys     uint64 // packets for the drop recipient
	Echoes     uint64 // echo service answers sent
	Stored     uint64 // deliveries stored in a mailbox
	Acks       uint64 // SURB-ACKs sent
	Lost       uint64 // deliveries DropDelivery discarded
	Unroutable uint64 // deliveries to another provider or unknown mailbox
}

// Network is the simulated network and the provider clients link to.
type Network struct {
	cfg      Config
	geo      *sphinx.Geometry
	provider *pkitest.Node
	nodes    map[pki.NodeID]*node

	// DropDelivery, if set before clients connect, is asked about every
	// forward delivery to a client's mailbox; true loses it (nothing
	// stored, no ACK), as a failed node would.
	DropDelivery func(mailbox [32]byte, d *sphinx.Delivery) bool

	mu        sync.Mutex
	docs      map[uint64][]byte
	mailboxes map[[32]byte]*mailbox
	conns     map[*link.Conn]bool

	packets, invalid, decoys, echoes, stored, acks, lost, unroutable atomic.Uint64

	wg sync.WaitGroup
}

type node struct {
	name string
	proc *hop.Processor
}

type mailbox struct {
	next    uint64
	entries []entry
}

type entry struct {
	seq     uint64
	payload []byte
}

// New builds a Network.
func New(cfg Config) (*Network, error) {
	if cfg.Epoch == nil {
		return nil, errors.New("clienttest: no epoch function")
	}
	if cfg.Parameters == (pki.Parameters{}) {
		cfg.Parameters = pkitest.Parameters()
	}
	if err := cfg.Parameters.Validate(); err != nil {
		return nil, err
	}
	g := pkitest.Geometry(Layers)
	geo, err := sphinx.NewGeometry(g.Hops, g.UserPayloadLength, g.WithSURB)
	if err != nil {
		return nil, err
	}
	n := &Network{
		cfg:       cfg,
		geo:       geo,
		nodes:     map[pki.NodeID]*node{},
		docs:      map[uint64][]byte{},
		mailboxes: map[[32]byte]*mailbox{},
		conns:     map[*link.Conn]bool{},
	}
	_, nodes := pkitest.Network(0, Layers, MixesPerLayer, Providers)
	for _, pn := range nodes {
		ks := &keySource{name: pn.Descriptor.Name, keys: map[uint64]*keys.SphinxPrivateKey{}}
		// Each node has its own filter: tags are per key, keys per node.
		n.nodes[pn.Descriptor.ID] = &node{name: pn.Descriptor.Name, proc: hop.New(geo, ks, &replayFilter{seen: map[uint64]map[[sphinx.ReplayTagLength]byte]bool{}})}
		if pn.Descriptor.Name == "provider-0" {
			n.provider = pn
		}
	}
	return n, nil
}

// Geometry is the network's Sphinx geometry.
func (n *Network) Geometry() *sphinx.Geometry { return n.geo }

// ProviderID is the node ID of the provider clients link to.
func (n *Network) ProviderID() pki.NodeID { return n.provider.Descriptor.ID }

// ProviderLinkKey is that provider's link key.
func (n *Network) ProviderLinkKey() keys.LinkPublicKey { return n.provider.Link.Public() }

// Stats returns the counters.
func (n *Network) Stats() Stats {
	return Stats{
		Packets: n.packets.Load(), Invalid: n.invalid.Load(), Decoys: n.decoys.Load(), Echoes: n.echoes.Load(),
		Stored: n.stored.Load(), Acks: n.acks.Load(), Lost: n.lost.Load(), Unroutable: n.unroutable.Load(),
	}
}

// Document returns the signed document for epoch, as served.
func (n *Network) Document(epoch uint64) []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	if raw, ok := n.docs[epoch]; ok {
		return raw
	}
	doc, _ := pkitest.Network(epoch, Layers, MixesPerLayer, Providers)
	doc.Parameters = n.cfg.Parameters
	raw, err := pkitest.Sign(doc, pkitest.Identity(AuthorityName)).MarshalBinary()
	if err != nil {
		panic(err)
	}
	n.docs[epoch] = raw
	return raw
}

// Pending returns how many entries wait in the mailbox of the client with
// link key k.
func (n *Network) Pending(k keys.LinkPublicKey) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if mb := n.mailboxes[k.MailboxID()]; mb != nil {
		return len(mb.entries)
	}
	return 0
}

// Register opens a mailbox for the client with link key k, as open
// registration does when the client first links.
func (n *Network) Register(k keys.LinkPublicKey) {
	n.mu.Lock()
	defer n.mu.Unlock()
	id := k.MailboxID()
	if n.mailboxes[id] == nil {
		n.mailboxes[id] = &mailbox{next: 1}
	}
}

// LinkConfig is the provider's side of a link with the given packet
// length: it accepts every client key.
func (n *Network) LinkConfig() link.Config {
	return link.Config{
		PrivateKey:   n.provider.Link,
		PacketLength: n.geo.PacketLength(),
		Authorize:    func(keys.LinkPublicKey) bool { return true },
	}
}

// Dial links a client to the provider over an in-memory pipe (package
// linktest), serving the provider's end in a goroutine until the link
// closes or ctx ends. It has the signature of client.Deps.Dial; it works
// inside a testing/synctest bubble. Wait waits for the goroutines.
func (n *Network) Dial(ctx context.Context) func(context.Context, link.Config, keys.LinkPublicKey) (*link.Conn, error) {
	return func(dctx context.Context, cfg link.Config, want keys.LinkPublicKey) (*link.Conn, error) {
		a, b := linktest.Pipe()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			sc, err := link.Server(ctx, b, n.LinkConfig())
			if err != nil {
				return
			}
			defer sc.Close()
			n.ServeConn(ctx, sc)
		}()
		return link.Client(dctx, a, cfg, want)
	}
}

// Serve accepts links on ln until ctx ends, serving each in a goroutine.
func (n *Network) Serve(ctx context.Context, ln *link.Listener) error {
	defer ln.Close()
	for {
		c, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer c.Close()
			n.ServeConn(ctx, c)
		}()
	}
}

// Disconnect closes every client link, as a provider that restarts
// would.
func (n *Network) Disconnect() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for c := range n.conns {
		c.Close()
	}
}

// Wait waits for the goroutines Dial and Serve started.
func (n *Network) Wait() { n.wg.Wait() }

// ServeConn answers one client link until it closes or ctx ends.
func (n *Network) ServeConn(ctx context.Context, c *link.Conn) error {
	n.Register(c.PeerKey())
	n.mu.Lock()
	n.conns[c] = true
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.conns, c)
		n.mu.Unlock()
	}()
	mbID := c.PeerKey().MailboxID()
	for {
		cmd, err := c.Recv(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		switch m := cmd.(type) {
		case link.SendPacket:
			n.packets.Add(1)
			pkt := append([]byte(nil), m.Packet...)
			n.route(pkt, n.provider.Descriptor.ID)
		case link.RetrieveMessage:
			reply := link.Message{Empty: true}
			n.mu.Lock()
			if mb := n.mailboxes[mbID]; mb != nil && len(mb.entries) > 0 {
				e := mb.entries[0]
				reply = link.Message{Seq: e.seq, QueueHint: uint32(len(mb.entries) - 1), Payload: e.payload}
			}
			n.mu.Unlock()
			if err := c.Send(ctx, reply); err != nil {
				return err
			}
		case link.MessageAck:
			n.mu.Lock()
			if mb := n.mailboxes[mbID]; mb != nil && len(mb.entries) > 0 && mb.entries[0].seq == m.Seq {
				mb.entries = mb.entries[1:]
			}
			n.mu.Unlock()
		case link.GetConsensus:
			if err := n.sendConsensus(ctx, c, m.Epoch); err != nil {
				return err
			}
		default:
			return fmt.Errorf("clienttest: unexpected %T from a client", cmd)
		}
	}
}

func (n *Network) sendConsensus(ctx context.Context, c *link.Conn, epoch uint64) error {
	if n.cfg.Published != nil && !n.cfg.Published(epoch) {
		return c.Send(ctx, link.Consensus{Epoch: epoch, Status: link.ConsensusNotFound})
	}
	raw := n.Document(epoch)
	size := n.geo.PacketLength()
	chunks := (len(raw) + size - 1) / size
	for i := range chunks {
		data := raw[i*size : min(len(raw), (i+1)*size)]
		if err := c.Send(ctx, link.Consensus{Epoch: epoch, Status: link.ConsensusOK, Chunk: uint32(i), Chunks: uint32(chunks), Data: data}); err != nil {
			return err
		}
	}
	return nil
}

// route takes pkt through the simulated network from node at until a
// provider delivers it or a node drops it.
func (n *Network) route(pkt []byte, at pki.NodeID) {
	for range 2 * sphinx.MaxHops {
		nd := n.nodes[at]
		if nd == nil {
			n.unroutable.Add(1)
			return
		}
		var d hop.Decision
		nd.proc.Process(pkt, n.cfg.Epoch(), &d)
		switch d.Action {
		case hop.Forward:
			at = d.NextHop
		case hop.Deliver:
			n.deliver(at, &d)
			return
		default:
			n.invalid.Add(1)
			return
		}
	}
	n.invalid.Add(1)
}

// deliver does what a provider does with a packet that ends with it
// (docs/edge-protocol.md §5).
func (n *Network) deliver(at pki.NodeID, d *hop.Decision) {
	geo := n.geo
	switch {
	case d.Recipient == sphinx.DropRecipient():
		n.decoys.Add(1)
		return
	case d.Recipient == sphinx.EchoRecipient():
		if d.IsSURBReply || d.Payload[0]&1 == 0 {
			n.invalid.Add(1)
			return
		}
		surb := d.Payload[2 : 2+geo.SURBLength()]
		user := d.Payload[2+geo.SURBLength():]
		reply, first, err := sphinx.NewPacketFromSURB(geo, surb, user)
		if err != nil {
			n.invalid.Add(1)
			return
		}
		n.echoes.Add(1)
		n.route(reply, first)
		return
	}
	if at != n.provider.Descriptor.ID {
		n.unroutable.Add(1)
		return
	}
	del := sphinx.NewDelivery(&d.Result)
	if !d.IsSURBReply && n.DropDelivery != nil && n.DropDelivery(d.Recipient, &del) {
		n.lost.Add(1)
		return
	}
	enc, err := sphinx.AppendDelivery(nil, geo, del)
	if err != nil {
		n.invalid.Add(1)
		return
	}
	n.mu.Lock()
	mb := n.mailboxes[d.Recipient]
	if mb != nil {
		mb.entries = append(mb.entries, entry{seq: mb.next, payload: enc})
		mb.next++
	}
	n.mu.Unlock()
	if mb == nil {
		n.unroutable.Add(1)
		return
	}
	n.stored.Add(1)
	// Only after the entry is stored: the ACK, if the sender asked for one.
	if d.IsSURBReply || d.Payload[0]&1 == 0 {
		return
	}
	surb := d.Payload[2 : 2+geo.SURBLength()]
	ack, first, err := sphinx.NewPacketFromSURB(geo, surb, make([]byte, geo.UserPayloadLength()))
	if err != nil {
		n.invalid.Add(1)
		return
	}
	n.acks.Add(1)
	n.route(ack, first)
}

// keySource gives a pkitest node's Sphinx key for any epoch.
type keySource struct {
	name string
	mu   sync.Mutex
	keys map[uint64]*keys.SphinxPrivateKey
}

func (k *keySource) Key(epoch uint64) (*keys.SphinxPrivateKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	sk := k.keys[epoch]
	if sk == nil {
		sk = pkitest.Sphinx(k.name, epoch)
		k.keys[epoch] = sk
	}
	return sk, true
}

// replayFilter is an unbounded in-memory replay filter.
type replayFilter struct {
	mu   sync.Mutex
	seen map[uint64]map[[sphinx.ReplayTagLength]byte]bool
}

func (r *replayFilter) TestAndSet(epoch uint64, tag *[sphinx.ReplayTagLength]byte) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.seen[epoch]
	if m == nil {
		m = map[[sphinx.ReplayTagLength]byte]bool{}
		r.seen[epoch] = m
	}
	if m[*tag] {
		return true, nil
	}
	m[*tag] = true
	return false, nil
}
