package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chorus-mixnet/chorus/client/api"
	"github.com/chorus-mixnet/chorus/client/arq"
	"github.com/chorus-mixnet/chorus/client/message"
	"github.com/chorus-mixnet/chorus/client/store"
)

// The Client is what chorusd's local API serves.
var _ api.Backend = (*Client)(nil)

// Bounds on one Inbox answer; callers ask again for the rest.
const (
	inboxMaxMessages = 64
	inboxMaxBytes    = 4 << 20
)

// Status reports the link, the epoch of the document in use, the queues
// and the current traffic rates.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	now := time.Now()
	var st api.Status
	c.mu.Lock()
	st.Connected = c.connected
	doc := c.currentDocLocked(now)
	for _, it := range c.queue {
		if it.ping == nil {
			st.Queues.Fragments++
		}
	}
	c.mu.Unlock()
	if doc != nil {
		st.Epoch = doc.Epoch
		p := doc.Parameters
		perSecond := func(d time.Duration) float64 { return float64(time.Second) / float64(d) }
		st.Rates = api.Rates{
			Send:     perSecond(p.LambdaPMean),
			Loop:     perSecond(p.LambdaLMean),
			Drop:     perSecond(p.LambdaDMean),
			Retrieve: perSecond(p.RetrievalInterval),
		}
	}
	for _, m := range c.tracker.Snapshot().Messages {
		for _, f := range m.Fragments {
			if !f.Acked && !f.Deadline.IsZero() {
				st.Queues.Unacked++
			}
		}
	}
	outbox, err := c.store.Outbox()
	if err != nil {
		return st, fmt.Errorf("client: status: %w", err)
	}
	for _, m := range outbox {
		if m.Status == store.Pending {
			st.Queues.Outbox++
		}
	}
	inbox, err := c.store.Inbox()
	if err != nil {
		return st, fmt.Errorf("client: status: %w", err)
	}
	for _, e := range inbox {
		if !e.Read {
			st.Queues.Inbox++
		}
	}
	return st, nil
}

// Identity returns the user's own contact card: the provider, the
// mailbox named by our link key, and our message key.
func (c *Client) Identity(ctx context.Context) (api.Identity, error) {
	return api.Identity{Card: c.card, LinkKey: c.linkKey.Public()}, nil
}

// AddContact adds a contact.
func (c *Client) AddContact(ctx context.Context, name string, card message.Card) error {
	switch err := c.store.AddContact(name, card); {
	case errors.Is(err, store.ErrExists):
		return fmt.Errorf("%w: the name or the card's key is already a contact", api.ErrConflict)
	case errors.Is(err, store.ErrInvalid):
		return fmt.Errorf("%w: %w", api.ErrInvalid, err)
	case err != nil:
		return fmt.Errorf("client: add contact: %w", err)
	}
	return c.loadContactsKeepOrder()
}

// Contacts lists the contacts by name.
func (c *Client) Contacts(ctx context.Context) ([]api.Contact, error) {
	cs, err := c.store.Contacts()
	if err != nil {
		return nil, fmt.Errorf("client: list contacts: %w", err)
	}
	out := make([]api.Contact, len(cs))
	for i, ct := range cs {
		out[i] = api.Contact{Name: ct.Name, Card: ct.Card, Added: ct.Added}
	}
	return out, nil
}

// RemoveContact removes a contact. Its messages stay in the inbox, and
// messages queued for it are still sent; fragments it sends later are
// dropped as a stranger's.
func (c *Client) RemoveContact(ctx context.Context, name string) error {
	switch err := c.store.RemoveContact(name); {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: no contact by that name", api.ErrNotFound)
	case err != nil:
		return fmt.Errorf("client: remove contact: %w", err)
	}
	return c.loadContactsKeepOrder()
}

// loadContactsKeepOrder reloads the contacts after a change, keeping the
// most-recent-sender order of those that remain.
func (c *Client) loadContactsKeepOrder() error {
	cs, err := c.store.Contacts()
	if err != nil {
		return fmt.Errorf("client: read contacts: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	used := make([]bool, len(cs))
	var kept []store.Contact
	for _, old := range c.contacts {
		for j, ct := range cs {
			if !used[j] && ct.Name == old.Name && ct.Card.Equal(old.Card) {
				used[j] = true
				kept = append(kept, ct)
			}
		}
	}
	// New contacts first: they are about to write.
	ordered := make([]store.Contact, 0, len(cs))
	for j, ct := range cs {
		if !used[j] {
			ordered = append(ordered, ct)
		}
	}
	ordered = append(ordered, kept...)
	c.contacts = ordered
	return nil
}

// Send splits body into fragments, seals each to the contact, and queues
// them durably; it returns once the message is in the store, so nothing
// it accepted is lost in a crash. The egress sends the fragments in the
// λP slots that follow.
func (c *Client) Send(ctx context.Context, to string, body []byte) (message.MessageID, error) {
	ct, err := c.store.Contact(to)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return message.MessageID{}, fmt.Errorf("%w: no contact by that name", api.ErrNotFound)
	case err != nil:
		return message.MessageID{}, fmt.Errorf("client: send: %w", err)
	}
	sealedLength := c.cfg.Geometry.UserPayloadLength()
	frags, err := message.Split(c.rand, body, message.FragmentCapacity(sealedLength), c.cfg.MaxMessageSize)
	switch {
	case errors.Is(err, message.ErrTooLarge):
		return message.MessageID{}, fmt.Errorf("%w: the message is larger than %d bytes", api.ErrTooLarge, c.cfg.MaxMessageSize)
	case err != nil:
		return message.MessageID{}, fmt.Errorf("client: send: %w", err)
	case len(frags) > arq.MaxFragments:
		return message.MessageID{}, fmt.Errorf("%w: the message needs too many fragments", api.ErrTooLarge)
	}
	sealed := make([][]byte, len(frags))
	for i, f := range frags {
		if sealed[i], err = message.Seal(c.rand, c.msgKey, ct.Card.Key, f, sealedLength); err != nil {
			return message.MessageID{}, fmt.Errorf("client: send: %w", err)
		}
	}
	id := frags[0].ID
	if err := c.store.Enqueue(store.OutboxMessage{ID: id, To: to, Recipient: ct.Card}, sealed); err != nil {
		return message.MessageID{}, fmt.Errorf("client: send: %w", err)
	}
	aid := arq.MessageID(id)
	if err := c.tracker.Track(aid, len(frags)); err != nil {
		// Only a random ID colliding with a tracked one; the store
		// already refused a duplicate, so this cannot happen.
		return message.MessageID{}, fmt.Errorf("client: send: %w", err)
	}
	c.enqueue(aid, ct.Card, len(frags))
	c.m.messages.WithLabelValues("queued").Inc()
	return id, nil
}

// MessageStatus reports where a sent message stands.
func (c *Client) MessageStatus(ctx context.Context, id message.MessageID) (api.MessageStatus, error) {
	m, err := c.store.OutboxMessage(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.MessageStatus{}, fmt.Errorf("%w: no such message", api.ErrNotFound)
	case err != nil:
		return api.MessageStatus{}, fmt.Errorf("client: message status: %w", err)
	}
	st := api.MessageStatus{ID: m.ID, To: m.To, Queued: m.Queued, Fragments: m.Fragments, Delivered: m.Delivered}
	switch m.Status {
	case store.Delivered:
		st.State = api.StateDelivered
	case store.Failed:
		st.State = api.StateFailed
	default:
		c.mu.Lock()
		sent := c.sentAny[arq.MessageID(id)]
		c.mu.Unlock()
		if sent || m.Delivered > 0 {
			st.State = api.StateSent
		} else {
			st.State = api.StateQueued
		}
	}
	return st, nil
}

// Inbox returns received messages with Seq > after, oldest first, at
// most inboxMaxMessages or about inboxMaxBytes of bodies at a time.
func (c *Client) Inbox(ctx context.Context, after uint64) ([]api.InboxMessage, error) {
	entries, err := c.store.Inbox()
	if err != nil {
		return nil, fmt.Errorf("client: inbox: %w", err)
	}
	var out []api.InboxMessage
	size := 0
	for _, e := range entries {
		if e.Seq <= after {
			continue
		}
		if len(out) == inboxMaxMessages || (len(out) > 0 && size+e.Size > inboxMaxBytes) {
			break
		}
		full, err := c.store.InboxMessage(e.Seq)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		} else if err != nil {
			return nil, fmt.Errorf("client: inbox: %w", err)
		}
		size += len(full.Body)
		out = append(out, api.InboxMessage{Seq: full.Seq, From: full.From, ID: full.ID, Received: full.Received, Read: full.Read, Body: full.Body})
	}
	return out, nil
}

// WaitInbox is Inbox that waits until there is something to return or
// ctx ends.
func (c *Client) WaitInbox(ctx context.Context, after uint64) ([]api.InboxMessage, error) {
	for {
		c.mu.Lock()
		ch := c.inboxCh
		c.mu.Unlock()
		msgs, err := c.Inbox(ctx, after)
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// MarkRead marks a received message read.
func (c *Client) MarkRead(ctx context.Context, seq uint64) error {
	switch err := c.store.MarkRead(seq); {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: no such inbox entry", api.ErrNotFound)
	case err != nil:
		return fmt.Errorf("client: mark read: %w", err)
	}
	return nil
}

// DeleteMessage deletes a received message.
func (c *Client) DeleteMessage(ctx context.Context, seq uint64) error {
	switch err := c.store.DeleteMessage(seq); {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: no such inbox entry", api.ErrNotFound)
	case err != nil:
		return fmt.Errorf("client: delete message: %w", err)
	}
	return nil
}

// Ping sends a packet through the network to our provider's echo service
// and waits for the echo. It takes the next λP slot like any real packet
// (ahead of queued fragments) and reports the time from sending to
// retrieving the echo, which includes the per-hop delays drawn for both
// directions and up to one retrieval interval.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	req := &pingRequest{done: make(chan pingResult, 1)}
	c.mu.Lock()
	switch {
	case !c.connected:
		c.mu.Unlock()
		return 0, fmt.Errorf("%w: not connected to the provider", api.ErrUnavailable)
	case c.currentDocLocked(time.Now()) == nil:
		c.mu.Unlock()
		return 0, fmt.Errorf("%w: no consensus document yet", api.ErrUnavailable)
	}
	c.queue = append([]outItem{{ping: req}}, c.queue...)
	c.mu.Unlock()
	c.wakeBuilder()
	defer c.cancelPing(req)

	t := time.NewTimer(c.cfg.PingTimeout)
	defer t.Stop()
	select {
	case r := <-req.done:
		if r.err != nil {
			return 0, fmt.Errorf("client: ping: %w", r.err)
		}
		return r.rtt, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-t.C:
		return 0, fmt.Errorf("%w: no echo within %v", api.ErrTimeout, c.cfg.PingTimeout)
	}
}

// cancelPing forgets a ping's queue item and token, if still there.
func (c *Client) cancelPing(req *pingRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, it := range c.queue {
		if it.ping == req {
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			break
		}
	}
	for id, t := range c.tokens {
		if t.ping == req {
			t.wipe()
			delete(c.tokens, id)
		}
	}
}
