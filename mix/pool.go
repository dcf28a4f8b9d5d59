package mix

// pool recycles packet buffers of one length without allocating: a
// bounded free list. A buffer that does not fit is left to the garbage
// collector; an empty list allocates.
type pool struct {
	length int
	free   chan []byte
}

func newPool(length, capacity int) *pool {
	return &pool{length: length, free: make(chan []byte, capacity)}
}

func (p *pool) get() []byte {
	select {
	case b := <-p.free:
		return b
	default:
		return make([]byte, p.length)
	}
}

func (p *pool) put(b []byte) {
	if cap(b) < p.length {
		return
	}
	select {
	case p.free <- b[:p.length]:
	default:
	}
}
