package replay

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// The filter is a blocked Bloom filter: the bitmap is split into blocks of
// one 64-byte cache line, a tag selects one block and sets k bits inside
// it. See the package documentation for why.
const (
	blockBits  = 512
	blockWords = blockBits / 64 // uint64 words per block
	blockBytes = blockBits / 8
	posBits    = 9 // log2(blockBits): bits of tag per bit position
	posPerWord = 64 / posBits
	// maxK is how many 9-bit positions the 24 tag bytes after the block
	// index hold: 3 words × 7 positions.
	maxK = 3 * posPerWord
	// modelMargin is the factor by which sizing undercuts the target
	// false-positive rate, to cover the model's error.
	modelMargin = 0.95
)

// Limits on Open's parameters.
const (
	// MinFPRate and MaxFPRate bound the target false-positive rate.
	MinFPRate = 1e-9
	MaxFPRate = 0.1
	// MaxCapacity bounds the number of tags one filter is sized for
	// (about 2 GiB of bitmap at a rate of 1e-6).
	MaxCapacity = 1 << 32
)

// geometry returns the number of blocks and the number of bits set per tag
// that give a filter for capacity tags a false-positive rate of at most fp
// when it holds capacity tags, with as few blocks as possible.
func geometry(capacity uint64, fp float64) (blocks uint64, k int, err error) {
	if capacity == 0 || capacity > MaxCapacity {
		return 0, 0, fmt.Errorf("%w: capacity %d, want 1 to %d", ErrParams, capacity, uint64(MaxCapacity))
	}
	if !(fp >= MinFPRate && fp <= MaxFPRate) { // also rejects NaN
		return 0, 0, fmt.Errorf("%w: false-positive rate %g, want %g to %g", ErrParams, fp, MinFPRate, MaxFPRate)
	}
	// The rate falls monotonically with the bits per tag (for the best k),
	// so bisect on bits per tag. The model is within a few percent of
	// measured rates (it treats the bits of a block as independent); aim
	// modelMargin below the target to stay under it.
	goal := fp * modelMargin
	lo, hi := 1.0, 256.0
	for range 60 {
		mid := (lo + hi) / 2
		if r, _ := bestK(mid); r <= goal {
			hi = mid
		} else {
			lo = mid
		}
	}
	blocks = uint64(math.Ceil(float64(capacity) * hi / blockBits))
	blocks = max(blocks, 1)
	_, k = bestK(float64(blocks) * blockBits / float64(capacity))
	return blocks, k, nil
}

// bestK returns the lowest expected false-positive rate of a blocked
// filter with bitsPerTag bits of bitmap per tag held, and the k giving it.
func bestK(bitsPerTag float64) (float64, int) {
	best, bestK := 2.0, 1
	for k := 1; k <= maxK; k++ {
		if r := blockedFPRate(bitsPerTag, k); r < best {
			best, bestK = r, k
		}
	}
	return best, bestK
}

// blockedFPRate is the expected false-positive rate of a blocked Bloom
// filter with bitsPerTag bits per tag held and k bits set per tag. The
// number of tags in the block a query falls in is Poisson distributed with
// mean λ = blockBits/bitsPerTag; with L tags in it, each of the block's bits
// is set with probability 1-(1-1/blockBits)^(kL), and the query is a false
// positive if all its k bits are set.
func blockedFPRate(bitsPerTag float64, k int) float64 {
	lambda := blockBits / bitsPerTag
	top := int(lambda + 12*math.Sqrt(lambda) + 30)
	miss := math.Log1p(-1.0 / blockBits)
	sum := 0.0
	for l := 0; l <= top; l++ {
		lg, _ := math.Lgamma(float64(l + 1))
		p := math.Exp(-lambda + float64(l)*math.Log(lambda) - lg)
		set := -math.Expm1(float64(k*l) * miss) // 1-(1-1/B)^(kL)
		sum += p * math.Pow(set, float64(k))
	}
	return sum
}

// position is where a tag lives in the bitmap: its block and the bits to
// set in each of the block's words.
type position struct {
	block uint64
	masks [blockWords]uint64
}

// locate maps a tag to its block and bits. The tag is already uniformly
// random (SHA-512/256 of the packet's alpha), so its bytes are used
// directly: the first 8 bytes, multiplied by the filter's secret odd salt,
// choose the block (multiply-shift: a sender grinding alphas cannot aim
// many tags at one block without knowing the salt); the next 24 bytes give
// k 9-bit positions inside the block.
func locate(tag *[32]byte, salt, blocks uint64, k int) position {
	var p position
	h := binary.LittleEndian.Uint64(tag[0:8]) * salt
	p.block, _ = bits.Mul64(h, blocks)
	w := [3]uint64{
		binary.LittleEndian.Uint64(tag[8:16]),
		binary.LittleEndian.Uint64(tag[16:24]),
		binary.LittleEndian.Uint64(tag[24:32]),
	}
	for i := range k {
		pos := (w[i/posPerWord] >> (posBits * (i % posPerWord))) & (blockBits - 1)
		p.masks[pos/64] |= 1 << (pos % 64)
	}
	return p
}
