package message

import (
	"container/list"
	"errors"
	"fmt"
	"sync"
)

// Defaults for ReassemblerConfig.
const (
	DefaultMaxPartials       = 64
	DefaultMaxPartialBytes   = 8 << 20
	DefaultRememberCompleted = 4096
)

// ErrDuplicate is returned by Reassembler.Add for a fragment it already
// holds or that belongs to a message it recently completed. It is benign:
// retransmissions after a lost ACK arrive this way. Callers count it.
var ErrDuplicate = errors.New("message: duplicate fragment")

// errConfig is returned by NewReassembler for impossible limits.
var errConfig = errors.New("message: invalid reassembler limits")

// ReassemblerConfig bounds what a Reassembler holds. Zero fields take the
// defaults.
type ReassemblerConfig struct {
	// MaxMessageSize is the largest message accepted
	// (DefaultMaxMessageSize).
	MaxMessageSize int
	// MaxPartials bounds how many incomplete messages are held
	// (DefaultMaxPartials).
	MaxPartials int
	// MaxPartialBytes bounds the body bytes of all incomplete messages
	// together (DefaultMaxPartialBytes). It must be at least
	// MaxMessageSize, or a large message could never complete.
	MaxPartialBytes int
	// RememberCompleted is how many completed message IDs are remembered
	// to drop late duplicates (DefaultRememberCompleted). Duplicates older
	// than that, or from before a restart, are the store's to catch.
	RememberCompleted int
	// OnEvict, if set, is called (synchronously, from Add, with the
	// Reassembler locked: it must not call back into it) for each
	// incomplete message dropped to make room, so that the caller can drop
	// what it keeps for it, such as fragments held in the store.
	OnEvict func(sender PublicKey, id MessageID)
}

// Message is a complete, reassembled message.
type Message struct {
	// Sender is the contact key that authenticated every fragment.
	Sender PublicKey
	// ID is the sender's message ID.
	ID MessageID
	// Body is the message.
	Body []byte
}

// ReassemblerStats counts what a Reassembler has done.
type ReassemblerStats struct {
	Completed  uint64 // messages completed
	Duplicates uint64 // fragments dropped as duplicates
	Evicted    uint64 // incomplete messages dropped to make room
	Rejected   uint64 // fragments refused (too large or inconsistent)
	Partials   int    // incomplete messages held now
	Bytes      int    // body bytes held now
}

// Reassembler puts fragments back together. Each message is keyed by its
// sender and ID, so one contact cannot add to or complete another's
// message. It holds a bounded number of incomplete messages (count and
// bytes); when a bound is reached the least recently extended incomplete
// message is evicted and counted. It is safe for concurrent use.
type Reassembler struct {
	cfg ReassemblerConfig

	mu        sync.Mutex
	partials  map[partialKey]*list.Element // of *partial
	lru       list.List                    // *partial, most recently extended at the front
	bytes     int
	completed map[partialKey]*list.Element // of partialKey
	doneLRU   list.List                    // partialKey, most recent at the front
	stats     ReassemblerStats
}

type partialKey struct {
	sender PublicKey
	id     MessageID
}

type partial struct {
	key    partialKey
	count  uint32
	total  uint32
	bytes  int
	bodies map[uint32][]byte
}

// NewReassembler returns an empty Reassembler with the given limits.
func NewReassembler(cfg ReassemblerConfig) (*Reassembler, error) {
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxPartials == 0 {
		cfg.MaxPartials = DefaultMaxPartials
	}
	if cfg.MaxPartialBytes == 0 {
		cfg.MaxPartialBytes = max(DefaultMaxPartialBytes, cfg.MaxMessageSize)
	}
	if cfg.RememberCompleted == 0 {
		cfg.RememberCompleted = DefaultRememberCompleted
	}
	switch {
	case cfg.MaxMessageSize < 0 || cfg.MaxPartials < 0 || cfg.MaxPartialBytes < 0 || cfg.RememberCompleted < 0:
		return nil, fmt.Errorf("%w: negative limit", errConfig)
	case cfg.MaxPartialBytes < cfg.MaxMessageSize:
		return nil, fmt.Errorf("%w: partial bytes %d below the message size %d", errConfig, cfg.MaxPartialBytes, cfg.MaxMessageSize)
	}
	return &Reassembler{
		cfg:       cfg,
		partials:  make(map[partialKey]*list.Element),
		completed: make(map[partialKey]*list.Element),
	}, nil
}

// Add adds a fragment that Open authenticated as coming from sender. It
// returns the message when this fragment completes it, and nil otherwise.
// Errors: ErrDuplicate (benign), ErrTooLarge (the message exceeds
// MaxMessageSize) and ErrMalformed (the fragment disagrees with the others
// of its message; the message is dropped). The fragment's body is copied.
func (r *Reassembler) Add(sender PublicKey, f Fragment) (*Message, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	key := partialKey{sender, f.ID}
	if e, ok := r.completed[key]; ok {
		r.doneLRU.MoveToFront(e)
		r.stats.Duplicates++
		return nil, ErrDuplicate
	}
	if !f.consistent() {
		r.stats.Rejected++
		return nil, ErrMalformed
	}
	if uint64(f.Total) > uint64(r.cfg.MaxMessageSize) {
		r.stats.Rejected++
		return nil, ErrTooLarge
	}

	var p *partial
	if e, ok := r.partials[key]; ok {
		p = e.Value.(*partial)
		switch {
		case p.count != f.Count || p.total != f.Total:
			r.drop(e)
			r.stats.Rejected++
			return nil, ErrMalformed
		case p.bodies[f.Index] != nil:
			r.lru.MoveToFront(e)
			r.stats.Duplicates++
			return nil, ErrDuplicate
		case uint64(p.bytes)+uint64(len(f.Body)) > uint64(p.total):
			r.drop(e)
			r.stats.Rejected++
			return nil, ErrMalformed
		}
		r.lru.MoveToFront(e)
	} else if f.Count > 1 {
		p = &partial{key: key, count: f.Count, total: f.Total, bodies: make(map[uint32][]byte)}
	}

	if p == nil {
		// A one-fragment message completes at once.
		return r.complete(key, append([]byte(nil), f.Body...)), nil
	}

	// Make room, never evicting the message being extended.
	_, held := r.partials[key]
	for len(r.partials) > 0 &&
		((!held && len(r.partials) >= r.cfg.MaxPartials) || r.bytes+len(f.Body) > r.cfg.MaxPartialBytes) {
		oldest := r.lru.Back()
		if oldest.Value.(*partial) == p {
			if oldest = oldest.Prev(); oldest == nil {
				break
			}
		}
		old := oldest.Value.(*partial).key
		r.drop(oldest)
		r.stats.Evicted++
		if r.cfg.OnEvict != nil {
			r.cfg.OnEvict(old.sender, old.id)
		}
	}
	if !held {
		r.partials[key] = r.lru.PushFront(p)
	}
	p.bodies[f.Index] = append([]byte(nil), f.Body...)
	p.bytes += len(f.Body)
	r.bytes += len(f.Body)
	if uint32(len(p.bodies)) < p.count {
		return nil, nil
	}

	r.drop(r.partials[key])
	if uint64(p.bytes) != uint64(p.total) {
		r.stats.Rejected++
		return nil, ErrMalformed
	}
	body := make([]byte, 0, p.total)
	for i := range p.count {
		body = append(body, p.bodies[i]...)
	}
	return r.complete(key, body), nil
}

// drop forgets an incomplete message.
func (r *Reassembler) drop(e *list.Element) {
	p := e.Value.(*partial)
	r.lru.Remove(e)
	delete(r.partials, p.key)
	r.bytes -= p.bytes
}

// complete remembers key as done and returns its message.
func (r *Reassembler) complete(key partialKey, body []byte) *Message {
	r.stats.Completed++
	if r.cfg.RememberCompleted > 0 {
		for len(r.completed) >= r.cfg.RememberCompleted {
			e := r.doneLRU.Back()
			delete(r.completed, e.Value.(partialKey))
			r.doneLRU.Remove(e)
		}
		r.completed[key] = r.doneLRU.PushFront(key)
	}
	return &Message{Sender: key.sender, ID: key.id, Body: body}
}

// Stats returns the counters and current holdings.
func (r *Reassembler) Stats() ReassemblerStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Partials = len(r.partials)
	s.Bytes = r.bytes
	return s
}
