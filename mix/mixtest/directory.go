package mixtest

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

// AuthorityName is the pkitest name of the key that signs the documents:
// pkitest.Identity(AuthorityName) verifies them.
const AuthorityName = "authority"

// Directory is a directory authority stand-in for the nodes of a test.
// It is safe for concurrent use.
type Directory struct {
	layers int
	signer pki.Signer

	mu      sync.Mutex
	layerOf map[string]int // name → layer; pki.ProviderLayer for providers
	descs   map[uint64]map[string]*pki.Descriptor
	docs    map[uint64]*pki.Document
	raws    map[uint64][]byte
}

// NewDirectory returns a Directory for a network of the given number of
// mix layers, with pkitest's geometry and traffic parameters.
func NewDirectory(layers int) *Directory {
	return &Directory{
		layers:  layers,
		signer:  pkitest.Identity(AuthorityName),
		layerOf: map[string]int{},
		descs:   map[uint64]map[string]*pki.Descriptor{},
		docs:    map[uint64]*pki.Document{},
		raws:    map[uint64][]byte{},
	}
}

// Expect declares the node name, in layer (pki.ProviderLayer for a
// provider): no document is made without its descriptor.
func (d *Directory) Expect(name string, layer int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.layerOf[name] = layer
}

// AddStatic declares the pkitest node name (deterministic keys) in layer,
// at addr (host:port), with its descriptors for epochs from to to.
func (d *Directory) AddStatic(name string, layer int, addr string, from, to uint64) {
	role := pki.RoleMix
	if layer == pki.ProviderLayer {
		role = pki.RoleProvider
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.layerOf[name] = layer
	for e := from; e <= to; e++ {
		d.put(pkitest.NewNode(name, role, e, "tcp://"+addr).Descriptor)
	}
}

func (d *Directory) put(desc *pki.Descriptor) {
	if d.descs[desc.Epoch] == nil {
		d.descs[desc.Epoch] = map[string]*pki.Descriptor{}
	}
	d.descs[desc.Epoch][desc.Name] = desc
}

// Upload accepts a node's signed descriptor, unless the document of its
// epoch is already made.
func (d *Directory) Upload(_ context.Context, sd *pki.SignedDescriptor) error {
	desc, err := sd.Verify()
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.docs[desc.Epoch] != nil {
		return &dirclient.RejectedError{Status: 409, Reason: "already decided"}
	}
	d.put(desc)
	return nil
}

// Threshold is the number of authorities an upload needs: one.
func (d *Directory) Threshold() int { return 1 }

// Document returns the document of epoch e and its signed encoding, making
// it if every declared node has a descriptor for e; otherwise an error
// wrapping dirclient.ErrNotFound.
func (d *Directory) Document(_ context.Context, e uint64) (*pki.Document, []byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if doc := d.docs[e]; doc != nil {
		return doc, d.raws[e], nil
	}
	have := d.descs[e]
	if len(have) < len(d.layerOf) {
		return nil, nil, fmt.Errorf("epoch %d: %w", e, dirclient.ErrNotFound)
	}
	doc := &pki.Document{
		Epoch:      e,
		Geometry:   pkitest.Geometry(d.layers),
		Parameters: pkitest.Parameters(),
		Layers:     make([][]*pki.Descriptor, d.layers),
	}
	names := make([]string, 0, len(d.layerOf))
	for n := range d.layerOf {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		desc := have[n]
		if desc == nil {
			return nil, nil, fmt.Errorf("epoch %d: %w", e, dirclient.ErrNotFound)
		}
		if l := d.layerOf[n]; l == pki.ProviderLayer {
			doc.Providers = append(doc.Providers, desc)
		} else {
			doc.Layers[l] = append(doc.Layers[l], desc)
		}
	}
	if err := doc.Validate(); err != nil {
		return nil, nil, err
	}
	raw, err := pkitest.Sign(doc, d.signer).MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	d.docs[e], d.raws[e] = doc, raw
	return doc, raw, nil
}
