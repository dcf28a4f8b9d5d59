package consensus

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/chorus-mixnet/chorus/pki"
	"golang.org/x/crypto/blake2b"
)

// assignLayers places the mixes in n layers and returns the layers (each
// sorted by node ID) and how many prior mixes had to move.
//
// The rules, in order:
//
//  1. Balance: with m mixes, every layer gets ⌊m/n⌋ or ⌊m/n⌋+1 of them, so
//     no layer is more than one larger than another.
//  2. Stickiness: a mix keeps its prior layer unless that layer holds more
//     prior mixes than its target size. The m mod n larger targets go to
//     the layers holding the most prior mixes, which makes the number of
//     moved mixes the least possible.
//  3. Randomness: every other choice — which surplus mixes leave a layer,
//     where new and moved mixes go, and ties between equally full layers —
//     follows an order derived from the shared random value, so no node
//     operator can choose its layer and every authority computes the same
//     assignment.
func assignLayers(mixes []*pki.Descriptor, prior map[pki.NodeID]int, n int, srv [32]byte) ([][]*pki.Descriptor, int) {
	rank := make(map[pki.NodeID][32]byte, len(mixes))
	for _, d := range mixes {
		rank[d.ID] = blake2b.Sum256(slices.Concat([]byte("chorus-layer-node-v1\x00"), srv[:], d.ID[:]))
	}
	byRank := func(a, b *pki.Descriptor) int {
		ra, rb := rank[a.ID], rank[b.ID]
		return cmp.Or(bytes.Compare(ra[:], rb[:]), bytes.Compare(a.ID[:], b.ID[:]))
	}

	// Prior mixes by layer, and the rest.
	sticky := make([][]*pki.Descriptor, n)
	var pool []*pki.Descriptor
	for _, d := range mixes {
		if l, ok := prior[d.ID]; ok && l >= 0 && l < n {
			sticky[l] = append(sticky[l], d)
		} else {
			pool = append(pool, d)
		}
	}

	// Target sizes: the larger ones go to the layers with most prior mixes,
	// ties broken by a random order of the layers.
	base, extra := len(mixes)/n, len(mixes)%n
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	layerRank := make([][32]byte, n)
	for l := range layerRank {
		layerRank[l] = blake2b.Sum256(binary.BigEndian.AppendUint32(slices.Concat([]byte("chorus-layer-v1\x00"), srv[:]), uint32(l)))
	}
	slices.SortFunc(order, func(a, b int) int {
		ra, rb := layerRank[a], layerRank[b]
		return cmp.Or(cmp.Compare(len(sticky[b]), len(sticky[a])), bytes.Compare(ra[:], rb[:]), cmp.Compare(a, b))
	})
	target := make([]int, n)
	for i, l := range order {
		target[l] = base
		if i < extra {
			target[l]++
		}
	}

	// Surplus prior mixes leave their layer, in random order.
	moved := 0
	for l := range sticky {
		slices.SortFunc(sticky[l], byRank)
		if over := len(sticky[l]) - target[l]; over > 0 {
			pool = append(pool, sticky[l][target[l]:]...)
			sticky[l] = sticky[l][:target[l]]
			moved += over
		}
	}

	// The pool, in random order, fills the free places layer by layer.
	slices.SortFunc(pool, byRank)
	layers := make([][]*pki.Descriptor, n)
	for l := range layers {
		free := target[l] - len(sticky[l])
		layers[l] = append(slices.Clone(sticky[l]), pool[:free]...)
		pool = pool[free:]
		slices.SortFunc(layers[l], byID)
	}
	return layers, moved
}
