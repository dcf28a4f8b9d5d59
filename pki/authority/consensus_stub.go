package authority

// TODO(pki/consensus): replace this stand-in with the shared pure function.

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/chorus-mixnet/chorus/pki"
	"golang.org/x/crypto/blake2b"
)

func computeDocument(T uint64, votes []*pki.Vote, reveals []*pki.Reveal, nAuth, minPerLayer int) (*pki.Document, error) {
	majority := nAuth/2 + 1
	var srv []byte
	var counted []*pki.Vote
	slices.SortFunc(reveals, func(a, b *pki.Reveal) int { return bytes.Compare(a.Value[:], b.Value[:]) })
	for _, v := range votes {
		for _, r := range reveals {
			if r.Authority.Equal(v.Authority) && r.Commit() == v.Commit && r.Epoch == T && v.Epoch == T {
				counted = append(counted, v)
				srv = append(srv, r.Value[:]...)
			}
		}
	}
	if len(counted) < majority {
		return nil, fmt.Errorf("%d usable votes, need %d", len(counted), majority)
	}
	shared := blake2b.Sum256(srv)
	seen := map[string]int{}
	descs := map[string]*pki.Descriptor{}
	for _, v := range counted {
		for _, sd := range v.Descriptors {
			seen[string(sd.Body)]++
			if descs[string(sd.Body)] == nil {
				d, err := pki.UnmarshalDescriptor(sd.Body)
				if err != nil {
					return nil, err
				}
				descs[string(sd.Body)] = d
			}
		}
	}
	g, p := counted[0].Geometry, counted[0].Parameters
	doc := &pki.Document{Epoch: T, Geometry: g, Parameters: p, SharedRandom: shared, Layers: make([][]*pki.Descriptor, g.Hops-2)}
	var mixes []*pki.Descriptor
	for b, n := range seen {
		if n < majority {
			continue
		}
		d := descs[b]
		if d.Role == pki.RoleProvider {
			doc.Providers = append(doc.Providers, d)
		} else {
			mixes = append(mixes, d)
		}
	}
	key := func(d *pki.Descriptor) []byte { h := blake2b.Sum256(append(shared[:], d.ID[:]...)); return h[:] }
	slices.SortFunc(mixes, func(a, b *pki.Descriptor) int { return bytes.Compare(key(a), key(b)) })
	slices.SortFunc(doc.Providers, func(a, b *pki.Descriptor) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	for i, m := range mixes {
		doc.Layers[i%len(doc.Layers)] = append(doc.Layers[i%len(doc.Layers)], m)
	}
	for i, l := range doc.Layers {
		if len(l) < minPerLayer {
			return nil, fmt.Errorf("layer %d has %d mixes", i, len(l))
		}
	}
	if len(doc.Providers) == 0 {
		return nil, errors.New("no providers")
	}
	return doc, doc.Validate()
}
