package provider

import (
	"context"
	"sync"

	"github.com/chorus-mixnet/chorus/mix"
	"github.com/chorus-mixnet/chorus/pki"
)

// Clients never contact the authorities: they ask their provider for the
// document (GetConsensus) and verify its signatures themselves. The
// provider serves the signed bytes exactly as its document source
// returned them to the pipeline (for pki/dirclient, as the authorities
// served them). It keeps the documents of the newest few epochs the
// pipeline fetched, and a client's request never makes it fetch one.

// keepDocs is how many epochs' documents are kept for clients: the
// pipeline holds the previous, current and next.
const keepDocs = 4

// docCache holds the signed documents the pipeline fetched, by epoch.
type docCache struct {
	mu     sync.Mutex
	raw    map[uint64][]byte
	newest *pki.Document
}

func newDocCache() *docCache { return &docCache{raw: make(map[uint64][]byte)} }

func (c *docCache) put(doc *pki.Document, raw []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.newest == nil || doc.Epoch >= c.newest.Epoch {
		c.newest = doc
	}
	if len(raw) == 0 {
		return
	}
	c.raw[doc.Epoch] = raw
	for len(c.raw) > keepDocs {
		oldest := doc.Epoch
		for e := range c.raw {
			oldest = min(oldest, e)
		}
		delete(c.raw, oldest)
	}
}

// get returns the signed document for epoch, if held. The bytes are
// shared: do not modify them.
func (c *docCache) get(epoch uint64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	raw, ok := c.raw[epoch]
	return raw, ok
}

// latest returns the document of the newest epoch fetched, or nil.
func (c *docCache) latest() *pki.Document {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.newest
}

// recorder is the document source the pipeline is given: the provider's
// own source, with every document it returns kept for clients.
type recorder struct {
	src   mix.DocumentSource
	cache *docCache
}

func (r *recorder) Document(ctx context.Context, epoch uint64) (*pki.Document, []byte, error) {
	doc, raw, err := r.src.Document(ctx, epoch)
	if err == nil && doc != nil {
		r.cache.put(doc, raw)
	}
	return doc, raw, err
}
