package client

import (
	"context"
	"errors"
	"time"

	"github.com/chorus-mixnet/chorus/client/egress"
)

// Packets are built ahead of their slots.
//
// The egress sends on its clocks, but a frame leaves only once the
// packet for the slot exists. Building a real packet costs more than a
// decoy (a SURB as well as the packet, a read of the sealed fragment and
// a synced write to the store), so if packets were built when their
// slot came, a real packet would leave a few milliseconds later after
// its tick than a decoy would: a timing difference that an observer of
// the link could accumulate over many packets to tell a busy client from
// an idle one. So a builder goroutine keeps one packet of each kind
// ready (the next real one, if anything is queued, a drop decoy and a
// loop decoy), and a slot only takes what is ready: every slot costs the
// same whatever it sends. A real packet that is not ready yet waits for
// a later slot (the slot sends a decoy, as for an empty queue); a decoy
// that is not ready (two ticks closer together than a build) is built
// at once, which idle and busy clients do alike; the metric
// chorus_client_slots_unprepared_total counts it.
//
// A ready packet is routed on the document of its build. It is sent only
// while mixes still accept that epoch's keys (the previous, current or
// next), and a ready decoy is rebuilt when the document in use changes.

// built is a packet made ahead of its slot.
type built struct {
	pkt   []byte
	epoch uint64 // the epoch of the document it was routed on
	tok   *token // its SURB's token (loops, pings): sent is set when taken
	kind  string // the packets metric's label
}

// The ready slots.
const (
	readyReal = iota
	readyDrop
	readyLoop
	numReady
)

// wakeBuilder asks the builder to fill the ready slots.
func (c *Client) wakeBuilder() {
	select {
	case c.prepWake <- struct{}{}:
	default:
	}
}

// prepare is the builder: it fills the empty ready slots whenever one is
// taken or something is queued, until ctx ends; then it drops what is
// ready.
func (c *Client) prepare(ctx context.Context) error {
	defer c.discardReady()
	for {
		c.fill(time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-c.prepWake:
		}
	}
}

// fill builds a packet for every empty ready slot it can.
func (c *Client) fill(now time.Time) {
	doc := c.currentDoc(now)
	if doc == nil {
		return
	}
	for slot := range numReady {
		c.mu.Lock()
		b := c.ready[slot]
		if b != nil && slot != readyReal && b.epoch != doc.Epoch {
			// A decoy on an older document: rebuild it on this one.
			c.dropBuiltLocked(b, errors.New("document changed"))
			c.ready[slot], b = nil, nil
		}
		c.mu.Unlock()
		if b != nil {
			continue
		}
		var err error
		switch slot {
		case readyReal:
			b = c.buildReal(doc, now)
		case readyDrop:
			b, err = c.buildDecoy(doc, egress.Drop, now)
		case readyLoop:
			b, err = c.buildDecoy(doc, egress.Loop, now)
		}
		if err != nil {
			c.m.buildFailures.Inc()
			c.log.Debug("cannot build a decoy", "err", err)
		}
		if b == nil {
			continue
		}
		c.mu.Lock()
		c.ready[slot] = b
		c.mu.Unlock()
	}
}

// take removes the packet ready in slot, if it may still be sent now.
func (c *Client) take(slot int, now time.Time) *built {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.ready[slot]
	if b == nil {
		return nil
	}
	c.ready[slot] = nil
	if cur := c.cfg.Schedule.At(now); b.epoch+1 < cur || b.epoch > cur+1 {
		// No mix accepts its keys any more.
		c.dropBuiltLocked(b, errors.New("its epoch is over"))
		return nil
	}
	if b.tok != nil {
		b.tok.sent = now
	}
	return b
}

// dropBuiltLocked forgets a ready packet that will not be sent: its
// loop or ping token is retired, a ping is told. A fragment's attempt
// stays recorded and times out, and the fragment is sent again. c.mu
// must be held.
func (c *Client) dropBuiltLocked(b *built, why error) {
	t := b.tok
	if t == nil {
		return
	}
	for id, x := range c.tokens {
		if x == t {
			delete(c.tokens, id)
			if t.kind == tokenLoop {
				c.loops--
			}
			break
		}
	}
	t.wipe()
	if t.ping != nil {
		t.ping.finish(pingResult{err: why})
	}
}

// discardReady drops every ready packet (the link is gone).
func (c *Client) discardReady() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for slot, b := range c.ready {
		if b != nil {
			c.dropBuiltLocked(b, errors.New("the link to the provider was lost"))
			c.ready[slot] = nil
		}
	}
}

// packets hands the egress what its clocks send (it implements
// egress.Packets), from the ready slots. It is called from the egress
// goroutine only.
type packets Client

func (p *packets) NextReal() ([]byte, bool) {
	c := (*Client)(p)
	b := c.take(readyReal, time.Now())
	c.wakeBuilder()
	if b == nil {
		return nil, false
	}
	c.m.packets.WithLabelValues(b.kind).Inc()
	return b.pkt, true
}

func (p *packets) MakeDecoy(kind egress.Kind) ([]byte, error) {
	c := (*Client)(p)
	now := time.Now()
	slot := readyDrop
	if kind == egress.Loop {
		slot = readyLoop
	}
	b := c.take(slot, now)
	c.wakeBuilder()
	if b == nil {
		// Not ready (ticks closer together than a build, or no document
		// when the builder last ran): build it now.
		c.m.unprepared.Inc()
		doc := c.currentDoc(now)
		if doc == nil {
			return nil, errNoDocument
		}
		var err error
		if b, err = c.buildDecoy(doc, kind, now); err != nil {
			return nil, err
		}
	}
	c.m.packets.WithLabelValues(b.kind).Inc()
	return b.pkt, nil
}
