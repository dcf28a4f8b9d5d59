package consensus

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

// minMoves is the slow, obvious model: try every choice of which layers get
// the larger target size and return the fewest prior mixes that must move.
func minMoves(sticky []int, m int) int {
	n := len(sticky)
	base, extra := m/n, m%n
	best := -1
	for mask := 0; mask < 1<<n; mask++ {
		if popcount(mask) != extra {
			continue
		}
		moves := 0
		for l := range n {
			t := base
			if mask&(1<<l) != 0 {
				t++
			}
			moves += max(0, sticky[l]-t)
		}
		if best < 0 || moves < best {
			best = moves
		}
	}
	return best
}

func popcount(x int) int {
	c := 0
	for ; x != 0; x &= x - 1 {
		c++
	}
	return c
}

func TestAssignLayersAgainstModel(t *testing.T) {
	var all []*pki.Descriptor
	for i := range 40 {
		all = append(all, pkitest.NewNode(fmt.Sprintf("m%d", i), pki.RoleMix, 1, fmt.Sprintf("tcp://127.0.0.1:%d", 1000+i)).Descriptor)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 3000 {
		n := 1 + r.IntN(5)
		m := n + r.IntN(len(all)-n+1)
		mixes := slices.Clone(all)
		r.Shuffle(len(mixes), func(i, j int) { mixes[i], mixes[j] = mixes[j], mixes[i] })
		mixes = mixes[:m]
		// A prior assignment over a random subset of all nodes (some gone
		// now), skewed towards some layers, sometimes with layers beyond n.
		prior := make(map[pki.NodeID]int)
		skew := r.IntN(n + 1)
		for _, d := range all {
			if r.IntN(3) == 0 {
				continue
			}
			l := r.IntN(n + 1)
			if r.IntN(2) == 0 {
				l = min(skew, n)
			}
			prior[d.ID] = l
		}
		var srv [32]byte
		srv[0], srv[1] = byte(trial), byte(trial>>8)

		layers, moved := assignLayers(mixes, prior, n, srv)

		sticky := make([]int, n)
		for _, d := range mixes {
			if l, ok := prior[d.ID]; ok && l < n {
				sticky[l]++
			}
		}
		if want := minMoves(sticky, m); moved != want {
			t.Fatalf("trial %d: moved %d, model says %d (sticky %v, m %d)", trial, moved, want, sticky, m)
		}
		seen := make(map[pki.NodeID]int)
		kept := 0
		lo, hi := m, 0
		for l, layer := range layers {
			lo, hi = min(lo, len(layer)), max(hi, len(layer))
			if !slices.IsSortedFunc(layer, byID) {
				t.Fatalf("trial %d: layer %d not sorted", trial, l)
			}
			for _, d := range layer {
				seen[d.ID]++
				if p, ok := prior[d.ID]; ok && p == l {
					kept++
				}
			}
		}
		if hi-lo > 1 {
			t.Fatalf("trial %d: layer sizes from %d to %d", trial, lo, hi)
		}
		if len(seen) != m {
			t.Fatalf("trial %d: %d of %d mixes placed", trial, len(seen), m)
		}
		for _, c := range seen {
			if c != 1 {
				t.Fatalf("trial %d: a mix placed twice", trial)
			}
		}
		total := 0
		for _, s := range sticky {
			total += s
		}
		if kept != total-moved {
			t.Fatalf("trial %d: %d kept their layer, want %d", trial, kept, total-moved)
		}
		// Deterministic, and independent of input order.
		slices.Reverse(mixes)
		again, moved2 := assignLayers(mixes, prior, n, srv)
		if moved2 != moved || !sameLayers(layers, again) {
			t.Fatalf("trial %d: input order changed the result", trial)
		}
	}
}

func sameLayers(a, b [][]*pki.Descriptor) bool {
	return slices.EqualFunc(a, b, func(x, y []*pki.Descriptor) bool {
		return slices.EqualFunc(x, y, func(p, q *pki.Descriptor) bool { return p.ID == q.ID })
	})
}

// TestAssignLayersRandomness checks that fresh placement depends on the
// shared random value and spreads nodes: over many values, each node
// lands in each layer.
func TestAssignLayersRandomness(t *testing.T) {
	var mixes []*pki.Descriptor
	for i := range 9 {
		mixes = append(mixes, pkitest.NewNode(fmt.Sprintf("m%d", i), pki.RoleMix, 1, fmt.Sprintf("tcp://127.0.0.1:%d", 1000+i)).Descriptor)
	}
	where := make(map[pki.NodeID]map[int]bool)
	for s := range 64 {
		layers, _ := assignLayers(mixes, nil, 3, [32]byte{byte(s)})
		for l, layer := range layers {
			if len(layer) != 3 {
				t.Fatalf("layer sizes %d", len(layer))
			}
			for _, d := range layer {
				if where[d.ID] == nil {
					where[d.ID] = map[int]bool{}
				}
				where[d.ID][l] = true
			}
		}
	}
	for id, ls := range where {
		if len(ls) != 3 {
			t.Errorf("node %x only ever in layers %v", id[:4], ls)
		}
	}
}
