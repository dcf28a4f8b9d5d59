package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/chorus-mixnet/chorus/client/store"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// storeDocument is the store's config name for the newest verified
// document's signed bytes, so that a restart can send before the
// provider answers.
const storeDocument = "document"

// docEntry is a verified document.
type docEntry struct {
	doc *pki.Document
}

// consensusAssembly collects the chunks of one document.
type consensusAssembly struct {
	epoch  uint64
	chunks uint32
	next   uint32
	data   []byte
}

func (a *consensusAssembly) reset() { *a = consensusAssembly{} }

// errDocument is wrapped by every reason a document is refused.
var errDocument = errors.New("document refused")

// verify checks a document's signatures with the configured authorities
// and threshold, and that it is for epoch e and the configured geometry.
func (c *Client) verify(raw []byte, e uint64) (*pki.Document, error) {
	doc, err := pki.VerifyDocument(raw, c.cfg.Authorities, c.cfg.Threshold)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDocument, err)
	}
	if doc.Epoch != e {
		return nil, fmt.Errorf("%w: for epoch %d, not %d: %w", errDocument, doc.Epoch, e, pki.ErrWrongEpoch)
	}
	g := c.cfg.Geometry
	if doc.Geometry.Hops != g.NrHops() || doc.Geometry.UserPayloadLength != g.UserPayloadLength() || doc.Geometry.WithSURB != g.WithSURB() {
		return nil, fmt.Errorf("%w: network geometry %+v differs from the configured %v", errDocument, doc.Geometry, g)
	}
	return doc, nil
}

// loadDocument takes the document saved by an earlier run, if it is
// still valid and recent enough to use.
func (c *Client) loadDocument() {
	raw, err := c.store.Config(storeDocument)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			c.log.Warn("cannot read the saved consensus document", "err", err)
		}
		return
	}
	sd, err := pki.UnmarshalSignedDocument(raw)
	if err != nil {
		c.log.Warn("saved consensus document unreadable", "err", err)
		return
	}
	doc, err := pki.UnmarshalDocument(sd.Body)
	if err != nil {
		c.log.Warn("saved consensus document unreadable", "err", err)
		return
	}
	if doc, err = c.verify(raw, doc.Epoch); err != nil {
		c.log.Warn("saved consensus document refused", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.newestSave = doc.Epoch
	if cur := c.cfg.Schedule.Now(); doc.Epoch+1 >= cur && doc.Epoch <= cur+1 {
		c.docs[doc.Epoch] = &docEntry{doc: doc}
		c.m.documentEpoch.Set(float64(doc.Epoch))
	}
}

// currentDocLocked returns the document to build packets with: the
// current epoch's, else the previous or next epoch's (mixes accept the
// adjacent epochs' keys), else nil. c.mu must be held.
func (c *Client) currentDocLocked(now time.Time) *pki.Document {
	cur := c.cfg.Schedule.At(now)
	for _, e := range []uint64{cur, cur - 1, cur + 1} {
		if e == cur-1 && cur == 0 {
			continue
		}
		if d := c.docs[e]; d != nil {
			return d.doc
		}
	}
	return nil
}

// currentDoc is currentDocLocked taking the lock.
func (c *Client) currentDoc(now time.Time) *pki.Document {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.currentDocLocked(now)
}

// consensusWantedLocked returns the epoch to ask the provider for, if a
// document is missing and was not asked for within the poll interval:
// the current epoch's, and once the authorities publish it, the next
// one's. c.mu must be held.
func (c *Client) consensusWantedLocked(now time.Time) (uint64, bool) {
	s := c.cfg.Schedule
	cur := s.At(now)
	want := []uint64{cur}
	if !now.Before(s.PhaseStart(cur, epoch.Publish)) {
		want = append(want, cur+1)
	}
	for _, e := range want {
		if c.docs[e] != nil {
			continue
		}
		if at, ok := c.asked[e]; ok && now.Sub(at) < c.cfg.PollInterval {
			continue
		}
		c.asked[e] = now
		return e, true
	}
	return 0, false
}

// pruneDocsLocked forgets documents and requests for epochs before the
// previous one. c.mu must be held.
func (c *Client) pruneDocsLocked(now time.Time) {
	cur := c.cfg.Schedule.At(now)
	for e := range c.docs {
		if e+1 < cur {
			delete(c.docs, e)
		}
	}
	for e := range c.asked {
		if e+1 < cur {
			delete(c.asked, e)
		}
	}
}

// handleConsensus takes one Consensus frame. A document is verified and
// adopted once its last chunk is in; anything out of order restarts the
// assembly. It never trusts the provider: only the authorities'
// signatures make a document.
func (c *Client) handleConsensus(m link.Consensus) {
	c.mu.Lock()
	if m.Status != link.ConsensusOK {
		c.chunks.reset()
		c.mu.Unlock()
		c.m.documents.WithLabelValues("not_found").Inc()
		c.log.Debug("provider has no document", "epoch", m.Epoch, "status", m.Status)
		return
	}
	a := &c.chunks
	if m.Chunk == 0 {
		a.reset()
		a.epoch, a.chunks = m.Epoch, m.Chunks
	}
	if m.Epoch != a.epoch || m.Chunks != a.chunks || m.Chunk != a.next || a.chunks == 0 ||
		len(a.data)+len(m.Data) > pki.MaxDocumentSize {
		a.reset()
		c.mu.Unlock()
		c.m.documents.WithLabelValues("rejected").Inc()
		c.log.Warn("provider sent a consensus document out of order; asking again")
		return
	}
	a.data = append(a.data, m.Data...)
	a.next++
	if a.next < a.chunks {
		c.mu.Unlock()
		return
	}
	raw, e := a.data, a.epoch
	a.reset()
	c.mu.Unlock()

	doc, err := c.verify(raw, e)
	if err != nil {
		c.m.documents.WithLabelValues("rejected").Inc()
		c.log.Warn("consensus document from the provider refused", "epoch", e, "err", err)
		return
	}
	c.adopt(doc, raw)
}

// adopt makes a verified document available, saves it if it is the
// newest, and switches the egress to its rates if it is now current.
func (c *Client) adopt(doc *pki.Document, raw []byte) {
	now := time.Now()
	c.mu.Lock()
	if c.docs[doc.Epoch] != nil {
		c.mu.Unlock()
		return
	}
	c.docs[doc.Epoch] = &docEntry{doc: doc}
	delete(c.asked, doc.Epoch)
	save := doc.Epoch > c.newestSave || c.newestSave == 0
	if save {
		c.newestSave = doc.Epoch
	}
	c.pruneDocsLocked(now)
	c.mu.Unlock()

	c.m.documents.WithLabelValues("accepted").Inc()
	c.m.documentEpoch.Set(float64(doc.Epoch))
	if _, ok := doc.Node(c.cfg.ProviderID); !ok {
		c.log.Warn("the configured provider is not in the consensus document; nothing can be sent", "epoch", doc.Epoch)
	} else if d, _ := doc.Node(c.cfg.ProviderID); d.Role != pki.RoleProvider || !d.LinkKey.Equal(c.cfg.ProviderLinkKey) {
		c.log.Warn("the consensus document lists the configured provider with another role or link key", "epoch", doc.Epoch)
	}
	c.log.Info("consensus document accepted", "epoch", doc.Epoch)
	if save {
		if err := c.store.SetConfig(storeDocument, raw); err != nil {
			c.m.storeFailures.Inc()
			c.log.Warn("cannot save the consensus document", "err", err)
		}
	}
	c.refreshParameters(now)
	c.wakeBuilder()
}

// refreshParameters switches the egress clocks to the current document's
// rates when the current document changed (a new one, or an epoch
// boundary).
func (c *Client) refreshParameters(now time.Time) {
	c.mu.Lock()
	doc := c.currentDocLocked(now)
	s := c.sender
	if doc == nil || doc == c.paramsDoc || s == nil {
		c.mu.Unlock()
		return
	}
	changed := c.paramsDoc == nil || c.paramsDoc.Parameters != doc.Parameters
	c.paramsDoc = doc
	c.mu.Unlock()
	if changed {
		if err := s.SetParameters(doc.Parameters); err != nil {
			c.log.Error("cannot apply the document's traffic parameters", "err", err)
		}
	}
}

// parametersLocked returns the rates for a new egress sender: the current
// document's, or the bootstrap rates. c.mu must be held.
func (c *Client) parametersLocked(now time.Time) (pki.Parameters, *pki.Document) {
	if doc := c.currentDocLocked(now); doc != nil {
		return doc.Parameters, doc
	}
	return c.cfg.bootstrapParameters(), nil
}
