package mix

import (
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
)

// Loop cover traffic (DESIGN §5.4). At Poisson intervals of mean λM the
// node sends a Sphinx packet along a loop that the documents allow, back
// to itself: from a mix in layer L through one random node of each later
// layer, a random provider, one random node of each earlier layer, and
// then this node, where the packet ends with a Recipient command naming
// the loop recipient, a random value only this process knows. A provider
// loops through one node of each layer. Every inner hop carries a delay
// drawn from Exp(μ), as a client's packet does, so loop packets look like
// any other traffic; a loop has one hop fewer than the geometry allows.
//
// The payload carries a random token. The node remembers each token with
// its send time; a loop packet that comes back gives a round-trip sample
// (chorus_mix_loop_rtt_seconds), and one that has not come back within
// the loop timeout is counted lost. Tokens are unguessable, so nobody can
// fake a loop's return; an unknown token is dropped and counted.
//
// We chose a forward loop with a Recipient command over the SURB
// mechanism: it needs no SURB keys, costs one packet creation, and the
// node's own last hop recognises it without any state but the token.

const (
	loopTokenLength = 16
	maxLoopsPending = 4096
	loopSlack       = 10 * time.Second
)

type loops struct {
	p         *Pipeline
	recipient [sphinx.RecipientIDLength]byte

	mu      sync.Mutex
	pending map[[loopTokenLength]byte]loopEntry
}

type loopEntry struct {
	sent     time.Time
	deadline time.Time
}

func newLoops(p *Pipeline) *loops {
	l := &loops{p: p, pending: make(map[[loopTokenLength]byte]loopEntry)}
	if _, err := io.ReadFull(p.rand, l.recipient[:]); err != nil {
		panic("mix: no randomness: " + err.Error())
	}
	return l
}

// isLoop reports whether a delivered packet's recipient is the loop
// recipient.
func (l *loops) isLoop(r *[sphinx.RecipientIDLength]byte) bool { return *r == l.recipient }

// run sends loop packets until ctx ends.
func (l *loops) run(ctx context.Context) error {
	for {
		mean := time.Second
		if doc := l.p.Document(); doc != nil {
			mean = doc.Parameters.LambdaMMean
		}
		if !sleepCtx(ctx, expDuration(mean)) {
			return nil
		}
		l.expire(time.Now())
		l.send()
	}
}

// expDuration draws from the exponential distribution with mean m.
func expDuration(m time.Duration) time.Duration {
	return time.Duration(rand.ExpFloat64() * float64(m))
}

// send builds and sends one loop packet, if the current document allows
// a loop.
func (l *loops) send() {
	p := l.p
	doc := p.Document()
	if doc == nil {
		return
	}
	path, maxRTT := l.path(doc)
	if path == nil {
		return
	}
	var token [loopTokenLength]byte
	if _, err := io.ReadFull(p.rand, token[:]); err != nil {
		p.log.Error("mix: loop: no randomness", "err", err)
		return
	}
	pkt, err := sphinx.NewPacket(p.rand, p.geo, path, token[:])
	if err != nil {
		p.log.Error("mix: loop: build packet", "err", err)
		return
	}
	now := time.Now()
	l.mu.Lock()
	if len(l.pending) >= maxLoopsPending {
		l.mu.Unlock()
		return
	}
	l.pending[token] = loopEntry{sent: now, deadline: now.Add(maxRTT + loopSlack)}
	l.mu.Unlock()
	if err := p.Inject(path[0].ID, pkt, 0); err != nil {
		l.mu.Lock()
		delete(l.pending, token)
		l.mu.Unlock()
		return
	}
	p.m.loopSent.Inc()
}

// path draws a loop path through doc, and the largest sum of the delays
// its hops may carry; nil if doc does not list this node or has a layer
// (or provider set) it cannot route through.
func (l *loops) path(doc *pki.Document) ([]sphinx.PathHop, time.Duration) {
	p := l.p
	self, ok := doc.Node(p.self)
	if !ok {
		return nil, 0
	}
	layer, _ := doc.Layer(p.self)
	var nodes []*pki.Descriptor
	pick := func(from []*pki.Descriptor) bool {
		if len(from) == 0 {
			return false
		}
		nodes = append(nodes, from[rand.IntN(len(from))])
		return true
	}
	ok = true
	if layer == pki.ProviderLayer {
		for _, ly := range doc.Layers {
			ok = ok && pick(ly)
		}
	} else {
		for _, ly := range doc.Layers[layer+1:] {
			ok = ok && pick(ly)
		}
		ok = ok && pick(doc.Providers)
		for _, ly := range doc.Layers[:layer] {
			ok = ok && pick(ly)
		}
	}
	if !ok || len(nodes)+1 > p.geo.NrHops() {
		return nil, 0
	}
	path := make([]sphinx.PathHop, 0, len(nodes)+1)
	params := doc.Parameters
	for _, n := range nodes {
		k, ok := n.SphinxKey(doc.Epoch)
		if !ok {
			return nil, 0
		}
		d := min(expDuration(params.MuMean), params.MaxDelay)
		path = append(path, sphinx.PathHop{ID: n.ID, PublicKey: k,
			Commands: []sphinx.Command{sphinx.NodeDelay{Delay: uint32(d / time.Millisecond)}}})
	}
	k, ok := self.SphinxKey(doc.Epoch)
	if !ok {
		return nil, 0
	}
	path = append(path, sphinx.PathHop{ID: self.ID, PublicKey: k,
		Commands: []sphinx.Command{sphinx.Recipient{ID: l.recipient}}})
	return path, time.Duration(len(nodes)) * params.MaxDelay
}

// received takes the payload of a packet delivered to the loop recipient.
func (l *loops) received(payload []byte) {
	var token [loopTokenLength]byte
	if len(payload) < loopTokenLength {
		l.p.m.drop(dropLoop)
		return
	}
	copy(token[:], payload)
	l.mu.Lock()
	e, ok := l.pending[token]
	delete(l.pending, token)
	l.mu.Unlock()
	if !ok {
		l.p.m.drop(dropLoop)
		return
	}
	l.p.m.loopReceived.Inc()
	l.p.m.loopRTT.Observe(time.Since(e.sent).Seconds())
}

// expire counts the loops that did not come back in time as lost.
func (l *loops) expire(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for t, e := range l.pending {
		if now.After(e.deadline) {
			delete(l.pending, t)
			l.p.m.loopLost.Inc()
		}
	}
}
