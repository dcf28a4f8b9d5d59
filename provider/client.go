package provider

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/chorus-mixnet/chorus/mix"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/provider/spool"
	"github.com/chorus-mixnet/chorus/provider/users"
)

// client is one client link being served. Only its own goroutine touches
// the buckets and the ingress.
type client struct {
	conn    *link.Conn
	mailbox [users.MailboxIDLength]byte
	seq     uint64       // the order of the client's links: a newer one wins
	in      *mix.Ingress // created on the first SendPacket

	params  *pki.Document // whose parameters the buckets follow
	send    bucket        // SendPacket
	control bucket        // RetrieveMessage, MessageAck, GetConsensus
	ended   string        // why the link ended, if the provider ended it
}

// roomFor reports whether a client with key k may connect: fewer than
// MaxClients links are open, or k already has one (which the new link
// replaces). A refusal is counted.
func (p *Provider) roomFor(k keys.LinkPublicKey) bool {
	id := k.MailboxID()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	if _, ok := p.clients[id]; ok || len(p.clients) < p.cfg.MaxClients {
		return true
	}
	p.m.clientsFull.Inc()
	return false
}

// addClient registers cl, closing an older link of the same client: a
// client has one link, so a client that reconnects before its old link
// timed out takes nothing more. false if the provider is draining, or if
// a newer link of the same client got here first (cl is then replaced).
func (p *Provider) addClient(cl *client) bool {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return false
	}
	old := p.clients[cl.mailbox]
	if old != nil && old.seq > cl.seq {
		cl.ended = endReplaced
		p.mu.Unlock()
		return false
	}
	p.clients[cl.mailbox] = cl
	p.m.clients.Set(float64(len(p.clients)))
	if old != nil {
		old.ended = endReplaced
	}
	p.mu.Unlock()
	if old != nil {
		old.conn.Close()
	}
	return true
}

func (p *Provider) removeClient(cl *client) {
	p.mu.Lock()
	if p.clients[cl.mailbox] == cl {
		delete(p.clients, cl.mailbox)
		p.m.clients.Set(float64(len(p.clients)))
	}
	p.mu.Unlock()
}

// closeClients closes every client link (the drain).
func (p *Provider) closeClients() {
	p.mu.Lock()
	cls := make([]*client, 0, len(p.clients))
	for _, cl := range p.clients {
		cl.ended = endShutdown
		cls = append(cls, cl)
	}
	p.mu.Unlock()
	for _, cl := range cls {
		cl.conn.Close()
	}
}

// serveClient answers the commands of one client until its link ends.
// Commands are handled one at a time, in order, and each control command
// gets its answer before the next is read: so a MessageAck is durable
// before the RetrieveMessage after it is answered.
func (p *Provider) serveClient(ctx context.Context, c *link.Conn, mailbox [users.MailboxIDLength]byte, seq uint64) {
	cl := &client{conn: c, mailbox: mailbox, seq: seq}
	if !p.addClient(cl) {
		c.Close()
		reason := endShutdown
		if cl.ended != "" {
			reason = cl.ended
		}
		p.m.ends.WithLabelValues(reason).Inc()
		return
	}
	reason := endClosed
	defer func() {
		p.removeClient(cl)
		c.Close()
		p.mu.Lock()
		if cl.ended != "" && (reason == endClosed || reason == endError) {
			reason = cl.ended // we closed it: say why
		}
		p.mu.Unlock()
		p.m.ends.WithLabelValues(reason).Inc()
	}()
	for {
		cmd, err := c.Recv(ctx)
		if err != nil {
			reason = linkEnd(ctx, err)
			return
		}
		p.follow(cl, time.Now())
		switch m := cmd.(type) {
		case link.SendPacket:
			err = p.clientPacket(ctx, cl, m.Packet)
		case link.RetrieveMessage:
			err = p.retrieve(ctx, cl)
		case link.MessageAck:
			p.ack(cl, m.Seq)
		case link.GetConsensus:
			err = p.consensus(ctx, cl, m.Epoch)
		default:
			// Message and Consensus go from provider to client only.
			reason = endUnexpected
			return
		}
		if err != nil {
			reason = linkEnd(ctx, err)
			return
		}
	}
}

// linkEnd classifies why a client link ended.
func linkEnd(ctx context.Context, err error) string {
	switch {
	case ctx.Err() != nil, errors.Is(err, mix.ErrDraining):
		return endShutdown
	case errors.Is(err, io.EOF), errors.Is(err, link.ErrClosed):
		return endClosed
	case errors.Is(err, link.ErrMalformed):
		return endMalformed
	case errors.Is(err, os.ErrDeadlineExceeded):
		return endTimeout
	}
	return endError
}

// follow sets the client's rates from the current document: SendPacket
// at 1/LambdaPMean + 1/LambdaLMean + 1/LambdaDMean per second with a
// burst of SendBurst's worth, control commands at one per
// RetrievalInterval with a burst of ControlBurst.
func (p *Provider) follow(cl *client, now time.Time) {
	doc := p.pipe.Document()
	if doc == nil {
		doc = p.docs.latest() // between epochs, before the new document
	}
	if doc == nil || doc == cl.params {
		return
	}
	cl.params = doc
	par := doc.Parameters
	rate := perSecond(par.LambdaPMean) + perSecond(par.LambdaLMean) + perSecond(par.LambdaDMean)
	cl.send.set(rate, max(rate*p.cfg.SendBurst.Seconds(), 8), now)
	cl.control.set(perSecond(par.RetrievalInterval), float64(p.cfg.ControlBurst), now)
}

func perSecond(mean time.Duration) float64 {
	if mean <= 0 {
		return 0
	}
	return float64(time.Second) / float64(mean)
}

// clientPacket takes a client's packet into the pipeline as its first
// hop, within the client's rate; an excess packet is dropped and counted.
func (p *Provider) clientPacket(ctx context.Context, cl *client, pkt []byte) error {
	if !cl.send.take(time.Now()) {
		p.m.rateLimited.WithLabelValues(cmdSend).Inc()
		return nil
	}
	if cl.in == nil {
		cl.in = p.pipe.NewIngress()
	}
	if err := cl.in.Submit(ctx, pkt, time.Now()); err != nil {
		return err // draining, or ctx ended; a wrong length cannot pass the link
	}
	p.m.clientPackets.Inc()
	return nil
}

// retrieve answers RetrieveMessage with exactly one Message: the head of
// the client's mailbox, or an empty one (also when the client is over its
// rate or the spool fails).
func (p *Provider) retrieve(ctx context.Context, cl *client) error {
	empty := link.Message{Empty: true}
	if !cl.control.take(time.Now()) {
		p.m.rateLimited.WithLabelValues(cmdRetrieve).Inc()
		return cl.conn.Send(ctx, empty)
	}
	for {
		seq, payload, remaining, ok, err := p.spool.Peek(cl.mailbox)
		switch {
		case err != nil:
			if !errors.Is(err, spool.ErrClosed) {
				p.log.Warn("provider: retrieve message", "err", err)
			}
			p.m.retrievals.WithLabelValues("error").Inc()
			return cl.conn.Send(ctx, empty)
		case !ok:
			p.m.retrievals.WithLabelValues("empty").Inc()
			return cl.conn.Send(ctx, empty)
		case len(payload) > p.geometry().PacketLength():
			// Stored under another geometry and too large for a frame:
			// it can never be delivered.
			if err := p.spool.Ack(cl.mailbox, seq); err != nil {
				p.m.retrievals.WithLabelValues("error").Inc()
				return cl.conn.Send(ctx, empty)
			}
			continue
		}
		p.m.retrievals.WithLabelValues("message").Inc()
		return cl.conn.Send(ctx, link.Message{Seq: seq, QueueHint: uint32(min(remaining, 1<<32-1)), Payload: payload})
	}
}

// ack deletes an entry the client holds now. The provider derives the
// mailbox from the link, so a client can only ever delete its own
// entries; an unknown sequence number changes nothing.
func (p *Provider) ack(cl *client, seq uint64) {
	if !cl.control.take(time.Now()) {
		p.m.rateLimited.WithLabelValues(cmdAck).Inc()
		return
	}
	if err := p.spool.Ack(cl.mailbox, seq); err != nil {
		if !errors.Is(err, spool.ErrClosed) {
			p.log.Warn("provider: acknowledge message", "err", err)
		}
		p.m.acks.WithLabelValues("error").Inc()
		return
	}
	p.m.acks.WithLabelValues("ok").Inc()
}

// consensus answers GetConsensus from the documents the pipeline fetched:
// the raw signed bytes in chunks of the frame's capacity, or a status.
// Nothing a client asks makes the provider fetch anything.
func (p *Provider) consensus(ctx context.Context, cl *client, epoch uint64) error {
	if !cl.control.take(time.Now()) {
		p.m.rateLimited.WithLabelValues(cmdConsensus).Inc()
		return nil
	}
	raw, ok := p.docs.get(epoch)
	if !ok {
		status, label := link.ConsensusNotFound, "not_found"
		if cur := p.pipe.Epoch(); epoch+1 < cur {
			status, label = link.ConsensusGone, "gone"
		}
		p.m.consensus.WithLabelValues(label).Inc()
		return cl.conn.Send(ctx, link.Consensus{Epoch: epoch, Status: status})
	}
	p.m.consensus.WithLabelValues("ok").Inc()
	size := p.geometry().PacketLength()
	chunks := (len(raw) + size - 1) / size
	for i := range chunks {
		data := raw[i*size : min((i+1)*size, len(raw))]
		if err := cl.conn.Send(ctx, link.Consensus{Epoch: epoch, Chunk: uint32(i), Chunks: uint32(chunks), Data: data}); err != nil {
			return err
		}
	}
	return nil
}

// bucket is a token bucket. The zero bucket refuses everything until set.
type bucket struct {
	rate, burst float64 // tokens per second, capacity
	tokens      float64
	last        time.Time
}

// set changes the rate and capacity, keeping the tokens held (up to the
// new capacity); a new bucket starts full.
func (b *bucket) set(rate, burst float64, now time.Time) {
	if b.last.IsZero() {
		b.tokens = burst
	} else {
		b.refill(now)
		b.tokens = min(b.tokens, burst)
	}
	b.rate, b.burst, b.last = rate, burst, now
}

func (b *bucket) refill(now time.Time) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(b.burst, b.tokens+dt*b.rate)
		b.last = now
	}
}

// take takes one token if there is one.
func (b *bucket) take(now time.Time) bool {
	b.refill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
