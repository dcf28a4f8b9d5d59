package client

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/chorus-mixnet/chorus/client/arq"
	"github.com/chorus-mixnet/chorus/client/egress"
	"github.com/chorus-mixnet/chorus/client/message"
	"github.com/chorus-mixnet/chorus/client/route"
	"github.com/chorus-mixnet/chorus/client/store"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
)

// outItem is a real packet waiting for a λP slot: an attempt of a
// fragment, or a ping. The packet itself is built only when its slot
// comes, so it always has a fresh route on the current document.
type outItem struct {
	frag       arq.FragmentID
	retransmit bool
	ping       *pingRequest
}

// pingRequest is a Ping waiting for its echo.
type pingRequest struct {
	done chan pingResult // buffered: the one answer never blocks
}

type pingResult struct {
	rtt time.Duration
	err error
}

func (p *pingRequest) finish(r pingResult) {
	select {
	case p.done <- r:
	default:
	}
}

// tokenKind says what a SURB ID names.
type tokenKind uint8

const (
	tokenAck  tokenKind = iota + 1 // the ACK of a fragment's attempt
	tokenLoop                      // a loop decoy
	tokenPing                      // the echo of a ping
)

// token is what the client keeps for a SURB it sent: the decryption
// token (single use) and when the packet left.
type token struct {
	kind tokenKind
	keys []byte
	sent time.Time
	ping *pingRequest
}

func (t *token) wipe() { clear(t.keys) }

// Loop tokens are forgotten after loopTokenTTL (the loop was lost) and
// the client holds at most maxLoopTokens; they are pruned at most every
// pruneEvery.
const (
	loopTokenTTL  = 10 * time.Minute
	maxLoopTokens = 4096
	pruneEvery    = 10 * time.Second
)

var errNoDocument = errors.New("client: no consensus document for the current epoch yet")

// queueLength is the number of items waiting for a λP slot.
func (c *Client) queueLength() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return float64(len(c.queue))
}

// newSURBID draws a random SURB ID.
func (c *Client) newSURBID() (route.SURBID, error) {
	var id route.SURBID
	if _, err := io.ReadFull(c.rand, id[:]); err != nil {
		return id, fmt.Errorf("client: draw surb id: %w", err)
	}
	return id, nil
}

// restoreOutbox rebuilds the ARQ tracker and the send queue from the
// store: the messages still pending, their fragments' attempts and SURB
// IDs. Fragments never sent go back in the queue; attempts in flight
// time out as they would have (the ARQ then lists them again). The SURB
// tokens of those attempts stay in the store until an ACK needs one
// (handleReply).
func (c *Client) restoreOutbox() error {
	outbox, err := c.store.Outbox()
	if err != nil {
		return fmt.Errorf("client: read outbox: %w", err)
	}
	pending, err := c.store.PendingFragments()
	if err != nil {
		return fmt.Errorf("client: read outbox: %w", err)
	}
	byMsg := map[message.MessageID][]store.FragmentState{}
	for _, f := range pending {
		byMsg[f.ID] = append(byMsg[f.ID], f)
	}
	var st arq.State
	var unsent []arq.FragmentID
	for _, m := range outbox {
		if m.Status != store.Pending || m.Fragments < 1 || m.Fragments > arq.MaxFragments {
			continue
		}
		id := arq.MessageID(m.ID)
		fs := make([]arq.FragmentState, m.Fragments)
		for i := range fs {
			fs[i] = arq.FragmentState{Acked: true, Attempts: 1}
		}
		unacked := 0
		for _, p := range byMsg[m.ID] {
			if p.Index < 0 || p.Index >= m.Fragments || p.Delivered {
				continue
			}
			f := arq.FragmentState{Attempts: len(p.SURBs)}
			for _, s := range p.SURBs {
				f.SURBs = append(f.SURBs, arq.SURBID(s))
				c.restored[route.SURBID(s)] = true
			}
			if f.Attempts > 0 {
				f.Deadline = p.NextDeadline
				c.sentAny[id] = true
			} else {
				unsent = append(unsent, arq.FragmentID{Message: id, Index: p.Index})
			}
			fs[p.Index] = f
			unacked++
		}
		if unacked == 0 {
			continue
		}
		if m.Delivered > 0 {
			c.sentAny[id] = true
		}
		c.recipients[id] = m.Recipient
		st.Messages = append(st.Messages, arq.MessageState{ID: id, Fragments: fs})
	}
	slices.SortFunc(st.Messages, func(a, b arq.MessageState) int { return slices.Compare(a.ID[:], b.ID[:]) })
	c.tracker, err = arq.Restore(c.cfg.ARQ, st)
	if err != nil {
		return fmt.Errorf("client: restore outbox: %w", err)
	}
	for _, f := range unsent {
		c.queue = append(c.queue, outItem{frag: f})
	}
	if n := len(st.Messages); n > 0 {
		c.log.Debug("resuming unfinished messages", "messages", n)
	}
	return nil
}

// enqueue puts a new message's fragments in the send queue.
func (c *Client) enqueue(id arq.MessageID, card message.Card, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recipients[id] = card
	for i := range n {
		c.queue = append(c.queue, outItem{frag: arq.FragmentID{Message: id, Index: i}})
	}
	c.wakeBuilder()
}

// expired handles what the ARQ found due: fragments to send again go to
// the back of the queue (each attempt gets a new route, SURB and packet
// when its slot comes), failed messages are marked failed in the store,
// retired SURBs' tokens are wiped.
func (c *Client) expired(e arq.Expired) {
	c.mu.Lock()
	for _, f := range e.Retransmit {
		c.queue = append(c.queue, outItem{frag: f, retransmit: true})
	}
	if len(e.Retransmit) > 0 {
		c.wakeBuilder()
	}
	c.retireLocked(e.Retired)
	for _, id := range e.Failed {
		delete(c.recipients, id)
		delete(c.sentAny, id)
	}
	c.mu.Unlock()
	for _, id := range e.Failed {
		c.m.messages.WithLabelValues("failed").Inc()
		if err := c.store.FailMessage(message.MessageID(id)); err != nil && !errors.Is(err, store.ErrNotFound) {
			c.m.storeFailures.Inc()
			c.log.Error("cannot mark a message failed", "err", err)
			continue
		}
		c.log.Debug("a message failed: no acknowledgement after every attempt", "id", message.MessageID(id))
	}
}

// retireLocked wipes and forgets the tokens of SURB IDs that will not be
// answered any more (the store drops its copies itself, in Acknowledge
// and FailMessage). c.mu must be held.
func (c *Client) retireLocked(ids []arq.SURBID) {
	for _, s := range ids {
		if t := c.tokens[s]; t != nil {
			t.wipe()
			delete(c.tokens, s)
		}
		delete(c.restored, s)
	}
}

// pruneTokens forgets loop tokens whose loop was lost.
func (c *Client) pruneTokens(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loops == 0 {
		return
	}
	for id, t := range c.tokens {
		if t.kind == tokenLoop && now.Sub(t.sent) > loopTokenTTL {
			t.wipe()
			delete(c.tokens, id)
			c.loops--
		}
	}
}

// popItem takes the next item off the send queue.
func (c *Client) popItem() (outItem, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return outItem{}, false
	}
	it := c.queue[0]
	c.queue[0] = outItem{}
	c.queue = c.queue[1:]
	if len(c.queue) == 0 {
		c.queue = nil // let the backing array go
	}
	return it, true
}

// maxSkips bounds how many queue items one build looks at before it
// gives up for now (items that need no sending any more are skipped).
const maxSkips = 8

// buildReal builds the packet of the next item in the send queue: an
// attempt of a fragment or a ping. It returns nil if there is nothing to
// send or the next item cannot be built on doc now (it then goes to the
// back of the queue).
func (c *Client) buildReal(doc *pki.Document, now time.Time) *built {
	for range maxSkips {
		it, ok := c.popItem()
		if !ok {
			return nil
		}
		if it.ping != nil {
			pkt, tok, err := c.buildPing(doc, it.ping, now)
			if err != nil {
				c.m.buildFailures.Inc()
				it.ping.finish(pingResult{err: err})
				continue
			}
			return &built{pkt: pkt, epoch: doc.Epoch, tok: tok, kind: "ping"}
		}
		pkt, err := c.buildFragment(doc, it, now)
		switch {
		case errors.Is(err, errSkip):
			continue
		case err != nil:
			// Not buildable now (say, the recipient's provider is not in
			// this document): try again later.
			c.m.buildFailures.Inc()
			c.log.Debug("cannot build a fragment's packet", "err", err)
			c.mu.Lock()
			c.queue = append(c.queue, it)
			c.mu.Unlock()
			return nil
		}
		kind := "fragment"
		if it.retransmit {
			kind = "retransmission"
		}
		return &built{pkt: pkt, epoch: doc.Epoch, kind: kind}
	}
	return nil
}

// errSkip: the item needs no sending any more (acknowledged, failed,
// delivered).
var errSkip = errors.New("nothing to send")

// forwardPayload lays out a forward payload (docs/edge-protocol.md §4):
// flags (bit 0: a SURB follows) | reserved 0 | SURB | user payload.
func forwardPayload(geo *sphinx.Geometry, surb, user []byte) []byte {
	b := make([]byte, geo.ForwardPayloadLength())
	if surb != nil {
		b[0] = 1
		copy(b[2:], surb)
	}
	copy(b[2+geo.SURBLength():], user)
	return b
}

// buildFragment builds one attempt of a fragment: a fresh forward route
// to the recipient's mailbox, a fresh SURB back to our own, recorded in
// the tracker and durably in the store before the packet exists for the
// egress.
func (c *Client) buildFragment(doc *pki.Document, it outItem, now time.Time) ([]byte, error) {
	geo := c.cfg.Geometry
	c.mu.Lock()
	card, ok := c.recipients[it.frag.Message]
	c.mu.Unlock()
	if !ok {
		return nil, errSkip
	}
	sealed, err := c.store.SealedFragment(message.MessageID(it.frag.Message), it.frag.Index)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errSkip
	} else if err != nil {
		return nil, err
	}
	fwd, err := c.sel.Forward(doc, c.cfg.ProviderID, route.Address{Provider: card.ProviderID, Mailbox: card.MailboxID})
	if err != nil {
		return nil, err
	}
	id, err := c.newSURBID()
	if err != nil {
		return nil, err
	}
	back, err := c.sel.SURB(doc, card.ProviderID, c.self, id)
	if err != nil {
		return nil, err
	}
	surb, keys, err := sphinx.NewSURB(c.rand, geo, back.Hops)
	if err != nil {
		return nil, err
	}
	pkt, err := sphinx.NewPacket(c.rand, geo, fwd.Hops, forwardPayload(geo, surb, sealed))
	if err != nil {
		clear(keys)
		return nil, err
	}
	_, deadline, err := c.tracker.Sent(it.frag, id, fwd.Delay+back.Delay, now)
	if err != nil {
		clear(keys)
		return nil, errSkip
	}
	// The store keeps the token too, so that an ACK arriving after a
	// restart is authenticated like any other.
	err = c.store.RecordAttempt(message.MessageID(it.frag.Message), it.frag.Index, store.SURBID(id), keys, deadline)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Delivered or failed in the meantime.
		clear(keys)
		return nil, errSkip
	case err != nil:
		// The tracker knows the attempt, so its ACK is recognised while
		// this process lives; only a crash before it comes would lose it
		// (and the fragment is then sent again).
		c.m.storeFailures.Inc()
		c.log.Error("cannot record a fragment's attempt", "err", err)
	}
	c.mu.Lock()
	c.tokens[id] = &token{kind: tokenAck, keys: keys, sent: now}
	c.sentAny[it.frag.Message] = true
	c.mu.Unlock()
	return pkt, nil
}

// pingNonceLength is the length of the random user payload a ping carries
// for the echo service to return.
const pingNonceLength = 32

// buildPing builds a packet to the echo service of our own provider,
// through the network, with a SURB back to our own mailbox.
func (c *Client) buildPing(doc *pki.Document, req *pingRequest, now time.Time) ([]byte, *token, error) {
	geo := c.cfg.Geometry
	fwd, err := c.sel.Forward(doc, c.cfg.ProviderID, route.Address{Provider: c.cfg.ProviderID, Mailbox: sphinx.EchoRecipient()})
	if err != nil {
		return nil, nil, err
	}
	id, err := c.newSURBID()
	if err != nil {
		return nil, nil, err
	}
	back, err := c.sel.SURB(doc, c.cfg.ProviderID, c.self, id)
	if err != nil {
		return nil, nil, err
	}
	surb, keys, err := sphinx.NewSURB(c.rand, geo, back.Hops)
	if err != nil {
		return nil, nil, err
	}
	nonce := make([]byte, pingNonceLength)
	if _, err := io.ReadFull(c.rand, nonce); err != nil {
		clear(keys)
		return nil, nil, err
	}
	pkt, err := sphinx.NewPacket(c.rand, geo, fwd.Hops, forwardPayload(geo, surb, nonce))
	if err != nil {
		clear(keys)
		return nil, nil, err
	}
	tok := &token{kind: tokenPing, keys: keys, sent: now, ping: req}
	c.mu.Lock()
	c.tokens[id] = tok
	c.mu.Unlock()
	return pkt, tok, nil
}

// buildDecoy builds a decoy of the given kind on doc.
func (c *Client) buildDecoy(doc *pki.Document, kind egress.Kind, now time.Time) (*built, error) {
	geo := c.cfg.Geometry
	switch kind {
	case egress.Drop:
		r, err := c.sel.Drop(doc, c.cfg.ProviderID)
		if err != nil {
			return nil, fmt.Errorf("client: drop decoy: %w", err)
		}
		pkt, err := sphinx.NewPacket(c.rand, geo, r.Hops, nil)
		if err != nil {
			return nil, fmt.Errorf("client: drop decoy: %w", err)
		}
		return &built{pkt: pkt, epoch: doc.Epoch, kind: "drop"}, nil
	case egress.Loop:
		c.mu.Lock()
		full := c.loops >= maxLoopTokens
		c.mu.Unlock()
		if full {
			// Lost loops pile up only if the network drops them; send a
			// drop decoy rather than hold more tokens.
			return c.buildDecoy(doc, egress.Drop, now)
		}
		id, err := c.newSURBID()
		if err != nil {
			return nil, err
		}
		r, err := c.sel.Loop(doc, c.self, id)
		if err != nil {
			return nil, fmt.Errorf("client: loop decoy: %w", err)
		}
		surb, keys, err := sphinx.NewSURB(c.rand, geo, r.Hops)
		if err != nil {
			return nil, fmt.Errorf("client: loop decoy: %w", err)
		}
		pkt, first, err := sphinx.NewPacketFromSURB(geo, surb, nil)
		if err != nil {
			clear(keys)
			return nil, fmt.Errorf("client: loop decoy: %w", err)
		}
		if first != c.cfg.ProviderID {
			clear(keys)
			return nil, errors.New("client: loop decoy: route does not start at our provider")
		}
		tok := &token{kind: tokenLoop, keys: keys, sent: now}
		c.mu.Lock()
		c.tokens[id] = tok
		c.loops++
		c.mu.Unlock()
		return &built{pkt: pkt, epoch: doc.Epoch, tok: tok, kind: "loop"}, nil
	}
	return nil, fmt.Errorf("client: unknown decoy kind %v", kind)
}
