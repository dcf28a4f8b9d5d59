package replay

// fillBits returns the fraction of the bitmap's bits that are set.
func (f *Filter) fillBits() float64 {
	f.life.RLock()
	defer f.life.RUnlock()
	if f.closed {
		return 0
	}
	return float64(f.bitsSet.Load()) / float64(f.blocks*blockBits)
}

// contains reports whether tag would be reported seen, without recording
// it. Tests use it to measure the false-positive rate.
func (f *Filter) contains(tag *[32]byte) bool {
	p := locate(tag, f.salt, f.blocks, f.k)
	s := &f.stripes[p.block&(numStripes-1)]
	s.Lock()
	defer s.Unlock()
	if f.closed {
		return false
	}
	w := (*[blockWords]uint64)(f.words[p.block*blockWords:])
	for i := range w {
		if w[i]&p.masks[i] != p.masks[i] {
			return false
		}
	}
	return true
}
