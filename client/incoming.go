package client

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/chorus-mixnet/chorus/client/arq"
	"github.com/chorus-mixnet/chorus/client/message"
	"github.com/chorus-mixnet/chorus/client/route"
	"github.com/chorus-mixnet/chorus/client/store"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
)

// handleMessage takes the provider's answer to a retrieval. A mailbox
// entry is handled durably first; only then is it acknowledged to the
// provider (in the next control slot), so a crash at any moment loses
// nothing: an entry not yet acknowledged is retrieved again, and every
// step of handling it is idempotent.
func (c *Client) handleMessage(m link.Message) {
	if m.Empty {
		c.mu.Lock()
		c.retrieving = false
		c.mu.Unlock()
		c.m.retrievedEmpty.Inc()
		return
	}
	done := c.handleEntry(m.Payload)
	c.mu.Lock()
	c.retrieving = false
	if done {
		seq := m.Seq
		c.pendingAck = &seq
	}
	c.mu.Unlock()
}

// handleEntry handles one mailbox entry and reports whether it may be
// acknowledged to the provider: false only when the store could not keep
// what the entry carries, so that it is retrieved again.
func (c *Client) handleEntry(b []byte) bool {
	d, err := sphinx.ParseDelivery(c.cfg.Geometry, b)
	if err != nil {
		c.m.deliveries.WithLabelValues("invalid").Inc()
		return true
	}
	if d.IsSURBReply {
		return c.handleReply(d.SURBID, d.Payload)
	}
	return c.handleFragment(d.Payload)
}

// handleReply takes a SURB reply: the ACK of a fragment, one of our
// loops, or a ping's echo. Each is authenticated by decrypting it with
// the SURB's token: only a packet sent through that SURB decrypts. The
// token of an attempt made before this start comes from the store; a
// reply whose token is unknown, or that does not decrypt, is refused.
func (c *Client) handleReply(id route.SURBID, payload []byte) bool {
	now := time.Now()
	var keys []byte // ours to wipe
	c.mu.Lock()
	t := c.tokens[id]
	switch {
	case t == nil:
	case t.kind == tokenAck:
		// An ACK's token is retired by the tracker, maybe meanwhile on
		// another goroutine: decrypt with a copy.
		keys = bytes.Clone(t.keys)
	default:
		// Loops and pings are single use.
		delete(c.tokens, id)
		if t.kind == tokenLoop {
			c.loops--
		}
		keys = t.keys
	}
	restored := c.restored[id]
	var sent time.Time
	if t != nil {
		sent = t.sent
	}
	c.mu.Unlock()
	defer func() { clear(keys) }()

	if t == nil {
		if !restored {
			c.m.deliveries.WithLabelValues("unknown").Inc()
			return true
		}
		// An attempt made before this start: the store kept its token.
		var err error
		keys, err = c.store.SURBToken(store.SURBID(id))
		switch {
		case errors.Is(err, store.ErrNotFound):
			c.m.deliveries.WithLabelValues("unknown").Inc()
			return true
		case err != nil:
			c.m.storeFailures.Inc()
			c.log.Error("cannot read an acknowledgement's token", "err", err)
			return false
		}
		t = &token{kind: tokenAck}
	}
	_, err := sphinx.DecryptSURBPayload(c.cfg.Geometry, payload, keys)
	if err != nil {
		c.m.deliveries.WithLabelValues("invalid").Inc()
		if t.ping != nil {
			t.ping.finish(pingResult{err: errors.New("client: echo did not decrypt")})
		}
		return true
	}
	switch t.kind {
	case tokenAck:
		return c.acknowledge(id)
	case tokenLoop:
		c.m.deliveries.WithLabelValues("loop").Inc()
		c.m.loopRoundTrip.Observe(now.Sub(sent).Seconds())
	case tokenPing:
		c.m.deliveries.WithLabelValues("ping").Inc()
		t.ping.finish(pingResult{rtt: now.Sub(sent)})
	}
	return true
}

// acknowledge records an ACK: durably in the store first, then in the
// tracker, which retires the fragment's SURBs.
func (c *Client) acknowledge(id route.SURBID) bool {
	sa, err := c.store.Acknowledge(store.SURBID(id))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.m.storeFailures.Inc()
		c.log.Error("cannot record an acknowledgement", "err", err)
		return false
	}
	a, ok := c.tracker.Acked(id)
	if !ok && err != nil {
		c.m.deliveries.WithLabelValues("duplicate").Inc()
		return true
	}
	c.m.deliveries.WithLabelValues("ack").Inc()
	c.mu.Lock()
	c.retireLocked(a.Retired)
	delete(c.restored, id)
	msg := a.Fragment.Message
	if !ok {
		msg = arq.MessageID(sa.ID)
	}
	done := a.MessageDone || sa.MessageDelivered
	if done {
		delete(c.recipients, msg)
		delete(c.sentAny, msg)
	}
	c.mu.Unlock()
	if done {
		c.m.messages.WithLabelValues("delivered").Inc()
		c.log.Debug("message delivered", "id", message.MessageID(msg))
	}
	return true
}

// handleFragment opens a forward delivery's sealed fragment with the
// contacts' keys, holds it durably, and saves the message it completes.
func (c *Client) handleFragment(payload []byte) bool {
	geo := c.cfg.Geometry
	off := 2 + geo.SURBLength()
	if len(payload) < off+geo.UserPayloadLength() {
		c.m.deliveries.WithLabelValues("invalid").Inc()
		return true
	}
	user := payload[off : off+geo.UserPayloadLength()]
	keys, names := c.contactKeys()
	i, f, err := message.Open(c.msgKey, keys, user)
	switch {
	case errors.Is(err, message.ErrUnknownSender):
		c.m.deliveries.WithLabelValues("stranger").Inc()
		return true
	case err != nil:
		c.m.deliveries.WithLabelValues("invalid").Inc()
		return true
	}
	sender := keys[i]
	c.touchContact(sender)
	switch err := c.store.HoldFragment(sender, f); {
	case errors.Is(err, store.ErrExists):
		c.m.deliveries.WithLabelValues("duplicate").Inc()
		return true
	case err != nil:
		c.m.storeFailures.Inc()
		c.log.Error("cannot keep a received fragment", "err", err)
		return false
	}
	msg, err := c.reasm.Add(sender, f)
	switch {
	case errors.Is(err, message.ErrDuplicate):
		c.m.deliveries.WithLabelValues("duplicate").Inc()
		return true
	case err != nil:
		c.m.deliveries.WithLabelValues("invalid").Inc()
		if err := c.store.DropHeld(sender, f.ID); err != nil {
			c.m.storeFailures.Inc()
		}
		return true
	}
	c.m.deliveries.WithLabelValues("fragment").Inc()
	if msg == nil {
		return true
	}
	return c.save(names[i], msg)
}

// save keeps a complete message in the inbox and wakes the waiters.
func (c *Client) save(from string, msg *message.Message) bool {
	_, err := c.store.SaveMessage(from, msg)
	switch {
	case errors.Is(err, store.ErrExists):
		return true
	case err != nil:
		c.m.storeFailures.Inc()
		c.log.Error("cannot save a received message", "err", err)
		return false
	}
	c.m.messages.WithLabelValues("received").Inc()
	c.log.Debug("message received")
	c.mu.Lock()
	close(c.inboxCh)
	c.inboxCh = make(chan struct{})
	c.mu.Unlock()
	return true
}

// restoreInbox makes the reassembler and refills it with the fragments
// held in the store, saving any message they already complete (a crash
// between holding its last fragment and saving it).
func (c *Client) restoreInbox() error {
	var err error
	c.reasm, err = message.NewReassembler(message.ReassemblerConfig{
		MaxMessageSize:  c.cfg.MaxMessageSize,
		MaxPartialBytes: max(message.DefaultMaxPartialBytes, c.cfg.MaxMessageSize),
		OnEvict: func(sender message.PublicKey, id message.MessageID) {
			if err := c.store.DropHeld(sender, id); err != nil {
				c.m.storeFailures.Inc()
			}
		},
	})
	if err != nil {
		return fmt.Errorf("client: reassembler: %w", err)
	}
	held, err := c.store.HeldFragments()
	if err != nil {
		return fmt.Errorf("client: read held fragments: %w", err)
	}
	for _, h := range held {
		msg, err := c.reasm.Add(h.Sender, h.Fragment)
		if err != nil || msg == nil {
			continue
		}
		if !c.save(c.contactName(h.Sender), msg) {
			return fmt.Errorf("client: save a held message: %w", store.ErrCorrupt)
		}
	}
	return nil
}

// contactKeys returns the contacts' keys, most recent sender first, and
// their names.
func (c *Client) contactKeys() ([]message.PublicKey, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]message.PublicKey, len(c.contacts))
	names := make([]string, len(c.contacts))
	for i, ct := range c.contacts {
		keys[i], names[i] = ct.Card.Key, ct.Name
	}
	return keys, names
}

// touchContact moves the contact with key k to the front, so that its
// next fragment opens at the first trial.
func (c *Client) touchContact(k message.PublicKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, ct := range c.contacts {
		if ct.Card.Key.Equal(k) {
			copy(c.contacts[1:i+1], c.contacts[:i])
			c.contacts[0] = ct
			return
		}
	}
}

// contactName returns the name of the contact with key k, or "" if it
// is no longer a contact.
func (c *Client) contactName(k message.PublicKey) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ct := range c.contacts {
		if ct.Card.Key.Equal(k) {
			return ct.Name
		}
	}
	return ""
}
