package mix

import (
	"context"
	"errors"
	"time"

	"github.com/chorus-mixnet/chorus/mix/replay"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
)

// docSet is the documents a pipeline routes and authorizes by: those of
// the previous, current and next epochs, any of which may be missing.
// A packet may have been made with any of these epochs' keys, so links
// from and to the nodes of all three are allowed.
type docSet struct {
	prev, cur, next *pki.Document
}

// all returns the documents held, current first.
func (s *docSet) all() []*pki.Document {
	out := make([]*pki.Document, 0, 3)
	for _, d := range []*pki.Document{s.cur, s.next, s.prev} {
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

func (s *docSet) get(epoch uint64) *pki.Document {
	for _, d := range []*pki.Document{s.cur, s.next, s.prev} {
		if d != nil && d.Epoch == epoch {
			return d
		}
	}
	return nil
}

// nextHops returns the nodes doc allows self to send to.
func (s *docSet) nextHops(doc *pki.Document, self pki.NodeID) []*pki.Descriptor {
	from, ok := doc.Layer(self)
	if !ok {
		return nil
	}
	var out []*pki.Descriptor
	for l, layer := range doc.Layers {
		if doc.MaySendTo(from, l) {
			out = append(out, layer...)
		}
	}
	if doc.MaySendTo(from, pki.ProviderLayer) {
		out = append(out, doc.Providers...)
	}
	return out
}

// track follows the epochs: at each boundary, and every poll interval
// while a document is missing, it fetches the documents of the previous,
// current and next epochs and installs them.
func (p *Pipeline) track(ctx context.Context) error {
	for {
		e := p.cfg.Schedule.Now()
		s := p.refresh(ctx, e)
		wait := p.cfg.Schedule.UntilNext()
		if s.cur == nil || s.next == nil {
			wait = min(wait, p.pollInterval())
		}
		if !sleepCtx(ctx, wait) {
			return nil
		}
	}
}

// refresh fetches what is missing for epoch e and installs the result.
func (p *Pipeline) refresh(ctx context.Context, e uint64) *docSet {
	old := p.docs.Load()
	get := func(epoch uint64) *pki.Document {
		if d := old.get(epoch); d != nil {
			return d
		}
		fctx, cancel := context.WithTimeout(ctx, max(p.pollInterval(), 5*time.Second))
		defer cancel()
		d, _, err := p.deps.Documents.Document(fctx, epoch)
		if err != nil {
			if !errors.Is(err, dirclient.ErrNotFound) && ctx.Err() == nil {
				p.log.Debug("mix: fetch document", "epoch", epoch, "err", err)
			}
			return nil
		}
		if !p.fits(d) {
			return nil
		}
		return d
	}
	s := &docSet{cur: get(e), next: get(e + 1)}
	if e > 0 {
		s.prev = get(e - 1)
	}
	if s.cur == nil && old.cur != nil && old.cur.Epoch+1 == e {
		// The new epoch began and its document is not here (yet): keep
		// routing by the last one as the previous epoch's.
		s.prev = old.cur
	}
	p.epoch.Store(e)
	p.prepareReplay(e)
	if *s != *old {
		p.install(s)
	}
	return s
}

// fits reports whether doc has the geometry the pipeline was built for.
// The geometry cannot change while links are up; a document that changes
// it is ignored (and logged) until the node restarts.
func (p *Pipeline) fits(doc *pki.Document) bool {
	g := doc.Geometry
	if g.Hops == p.geo.NrHops() && g.UserPayloadLength == p.geo.UserPayloadLength() && g.WithSURB == p.geo.WithSURB() {
		return true
	}
	p.log.Error("mix: ignoring a document with a different packet geometry; restart the node to follow it",
		"epoch", doc.Epoch, "hops", g.Hops, "user_payload_length", g.UserPayloadLength)
	return false
}

// install makes s the documents in force: next hops, the maximum delay,
// incoming links.
func (p *Pipeline) install(s *docSet) {
	p.docs.Store(s)
	var peers []*pki.Descriptor
	var maxDelay time.Duration
	for _, doc := range s.all() {
		peers = append(peers, s.nextHops(doc, p.self)...)
		maxDelay = max(maxDelay, doc.Parameters.MaxDelay)
	}
	p.fwd.SetPeers(peers)
	p.queue.SetMaxDelay(maxDelay)
	if s.cur != nil {
		p.m.epoch.Set(float64(s.cur.Epoch))
		if _, ok := s.cur.Node(p.self); !ok {
			p.log.Warn("mix: this node is not in the document of the current epoch", "epoch", s.cur.Epoch)
		}
	}
	p.closeUnauthorized()
}

// prepareReplay creates the replay filters of epochs e and e+1 ahead of
// need: creating one takes a while (it is a file of tens of MiB), and a
// worker should not wait for it in the middle of traffic.
func (p *Pipeline) prepareReplay(e uint64) {
	for _, ep := range []uint64{e, e + 1} {
		if _, err := p.replay.Filter(ep); err != nil && !errors.Is(err, replay.ErrRetired) {
			p.log.Warn("mix: create replay filter", "epoch", ep, "err", err)
		}
	}
}
