package route

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
)

// Errors returned by the Selector's methods, wrapped in what failed
// ("route: choose forward route: ...").
var (
	// ErrNotProvider: a node named as the first or last hop is not a
	// provider of the document.
	ErrNotProvider = errors.New("not a provider in the document")
	// ErrNoKey: a node on the chosen path has no Sphinx key for the
	// document's epoch (an invalid document).
	ErrNoKey = errors.New("node has no sphinx key for the epoch")
	// ErrDocument: the document cannot carry a route (no providers, an
	// empty layer, too many hops for Sphinx).
	ErrDocument = errors.New("unusable document")
)

// MailboxID names a mailbox at a provider; it is the Sphinx Recipient ID.
type MailboxID = [sphinx.RecipientIDLength]byte

// SURBID names a SURB (or a loop packet) when its reply comes back.
type SURBID = [sphinx.SURBIDLength]byte

// IsDropRecipient reports whether id is the reserved recipient of drop
// decoys: 32 zero bytes. A provider that unwraps a packet for this
// recipient must discard it (count it, at most) without storing it,
// answering it or treating it as an error. No real mailbox has this ID
// (mailbox IDs are hashes of link keys, DESIGN §5.5).
func IsDropRecipient(id MailboxID) bool { return id == sphinx.DropRecipient() }

// Address is where a client receives: a mailbox at a provider.
type Address struct {
	Provider pki.NodeID
	Mailbox  MailboxID
}

// Route is a path ready for sphinx.NewPacket or sphinx.NewSURB.
type Route struct {
	// Epoch is the epoch whose Sphinx keys the hops carry: the document's.
	Epoch uint64
	// Hops is the path, first hop first. Every hop but the last carries
	// one NodeDelay; the last carries one Recipient and, for SURB and loop
	// routes, one SURBReply.
	Hops []sphinx.PathHop
	// Delay is the sum of the delays the hops were asked for.
	Delay time.Duration
}

// Selector chooses routes. Its methods are safe for concurrent use.
type Selector struct {
	mu  sync.Mutex
	rng *rand.Rand
}

// New returns a Selector drawing from src; nil means ChaCha8 seeded from
// crypto/rand, which production must use.
func New(src rand.Source) *Selector {
	if src == nil {
		var seed [32]byte
		_, _ = crand.Read(seed[:]) // never fails (crypto/rand crashes the program instead)
		src = rand.NewChaCha8(seed)
		clear(seed[:])
	}
	return &Selector{rng: rand.New(src)}
}

// Forward returns a route from the client's provider from to the mailbox
// to, for a forward packet (sphinx.NewPacket).
func (s *Selector) Forward(doc *pki.Document, from pki.NodeID, to Address) (*Route, error) {
	r, err := s.build(doc, from, &to.Provider, sphinx.Recipient{ID: to.Mailbox}, nil)
	if err != nil {
		return nil, fmt.Errorf("route: choose forward route: %w", err)
	}
	return r, nil
}

// SURB returns the route of a reply: from the replier's provider from
// (the recipient's provider, which sends a SURB-ACK) back to the client's
// own mailbox to, marked with id so the client finds the SURB's
// decryption token. Build it with sphinx.NewSURB.
func (s *Selector) SURB(doc *pki.Document, from pki.NodeID, to Address, id SURBID) (*Route, error) {
	r, err := s.build(doc, from, &to.Provider, sphinx.Recipient{ID: to.Mailbox}, &sphinx.SURBReply{ID: id})
	if err != nil {
		return nil, fmt.Errorf("route: choose surb route: %w", err)
	}
	return r, nil
}

// Loop returns a loop route: from the client's own provider through the
// network back to its own mailbox, marked with id. Build it with
// sphinx.NewSURB and send sphinx.NewPacketFromSURB's packet, so the loop
// arrives looking exactly like an ACK (see the package documentation).
func (s *Selector) Loop(doc *pki.Document, self Address, id SURBID) (*Route, error) {
	r, err := s.build(doc, self.Provider, &self.Provider, sphinx.Recipient{ID: self.Mailbox}, &sphinx.SURBReply{ID: id})
	if err != nil {
		return nil, fmt.Errorf("route: choose loop route: %w", err)
	}
	return r, nil
}

// Drop returns a drop route: from the client's provider from to a
// provider chosen uniformly from the document (possibly from itself),
// delivered to the drop recipient, which discards it.
func (s *Selector) Drop(doc *pki.Document, from pki.NodeID) (*Route, error) {
	r, err := s.build(doc, from, nil, sphinx.Recipient{}, nil)
	if err != nil {
		return nil, fmt.Errorf("route: choose drop route: %w", err)
	}
	return r, nil
}

// build chooses a route from the provider from through one mix per layer
// to the provider to (nil: a uniformly chosen provider), ending with the
// given commands. All randomness is drawn under s.mu, in path order.
func (s *Selector) build(doc *pki.Document, from pki.NodeID, to *pki.NodeID, rcpt sphinx.Recipient, surb *sphinx.SURBReply) (*Route, error) {
	if doc == nil || len(doc.Providers) == 0 || len(doc.Layers)+2 > sphinx.MaxHops {
		return nil, ErrDocument
	}
	for _, l := range doc.Layers {
		if len(l) == 0 {
			return nil, ErrDocument
		}
	}
	first, ok := provider(doc, from)
	if !ok {
		return nil, ErrNotProvider
	}
	var last *pki.Descriptor
	if to != nil {
		if last, ok = provider(doc, *to); !ok {
			return nil, ErrNotProvider
		}
	}

	nodes := make([]*pki.Descriptor, 0, len(doc.Layers)+2)
	nodes = append(nodes, first)
	r := &Route{Epoch: doc.Epoch, Hops: make([]sphinx.PathHop, len(doc.Layers)+2)}

	s.mu.Lock()
	for _, l := range doc.Layers {
		nodes = append(nodes, l[s.rng.IntN(len(l))])
	}
	if last == nil {
		last = doc.Providers[s.rng.IntN(len(doc.Providers))]
	}
	nodes = append(nodes, last)
	for i := range nodes[:len(nodes)-1] {
		ms := s.delayMillis(doc.Parameters.MuMean, doc.Parameters.MaxDelay)
		r.Hops[i].Commands = []sphinx.Command{sphinx.NodeDelay{Delay: ms}}
		r.Delay += time.Duration(ms) * time.Millisecond
	}
	s.mu.Unlock()

	final := []sphinx.Command{rcpt}
	if surb != nil {
		final = append(final, *surb)
	}
	r.Hops[len(nodes)-1].Commands = final
	for i, n := range nodes {
		if n == nil {
			return nil, ErrDocument
		}
		k, ok := n.SphinxKey(doc.Epoch)
		if !ok || k.IsZero() {
			return nil, fmt.Errorf("%w: node %q", ErrNoKey, n.Name)
		}
		r.Hops[i].ID = n.ID
		r.Hops[i].PublicKey = k
	}
	return r, nil
}

// delayMillis draws one hop's delay from Exp(1/mean), in whole
// milliseconds (NodeDelay's unit, rounded to nearest), clamped to max
// (rounded down, so a node never sees a delay above its maximum).
// s.mu must be held.
func (s *Selector) delayMillis(mean, max time.Duration) uint32 {
	limit := float64(max / time.Millisecond)
	ms := math.Round(s.rng.ExpFloat64() * float64(mean) / float64(time.Millisecond))
	if !(ms <= limit) { // also catches NaN
		ms = limit
	}
	if ms > math.MaxUint32 {
		ms = math.MaxUint32
	}
	return uint32(ms)
}

// provider returns the document's provider with the given ID.
func provider(doc *pki.Document, id pki.NodeID) (*pki.Descriptor, bool) {
	for _, p := range doc.Providers {
		if p != nil && p.ID == id {
			return p, true
		}
	}
	return nil, false
}
