package spool

import (
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Every change to the database is an op, and ops are committed in batches
// (group commit): a caller appends its op to the queue; if no commit is in
// progress it becomes the leader, takes the whole queue, applies it in one
// bbolt transaction and commits it with fsync; meanwhile later callers queue
// up behind it. When the commit is done the leader wakes the callers of its
// batch and hands leadership to the first caller still queued, so nobody
// waits for more than the commit in progress and its own. There is no
// background goroutine and no timer: batches are exactly as large as the
// load makes them, and a lone caller pays one commit.

type opKind int

const (
	opPut    opKind = iota // append record to mailbox
	opAck                  // delete seq from mailbox
	opDrop                 // delete the damaged record under key from mailbox
	opExpire               // enforce the limits on mailboxes
)

type op struct {
	kind      opKind
	mailbox   [MailboxIDLength]byte
	record    []byte                  // opPut
	seq       uint64                  // opAck
	key       []byte                  // opDrop
	mailboxes [][MailboxIDLength]byte // opExpire

	err  error
	wake chan bool // true: lead the next batch; false: done, err is set
}

// delta is what a batch changed, applied to the totals and metrics once the
// batch is committed.
type delta struct {
	mailboxes, messages, bytes int64
	stored, delivered          int
	evicted                    [numReasons]int
}

// submit queues o and returns once it is committed or has failed.
func (s *Spool) submit(o *op) error {
	o.wake = make(chan bool, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.queue = append(s.queue, o)
	if s.busy {
		s.mu.Unlock()
		if lead := <-o.wake; !lead {
			return o.err
		}
	} else {
		s.busy = true
		s.mu.Unlock()
	}
	s.lead(o)
	return o.err
}

// lead commits one batch from the head of the queue, which is self, and
// passes leadership on.
func (s *Spool) lead(self *op) {
	s.mu.Lock()
	n := min(len(s.queue), maxBatch)
	batch := s.queue[:n:n]
	if n == len(s.queue) {
		s.queue = nil
	} else {
		s.queue = s.queue[n:]
	}
	s.mu.Unlock()

	s.commit(batch)

	s.mu.Lock()
	var next *op
	if len(s.queue) > 0 {
		next = s.queue[0]
	} else {
		s.busy = false
		s.idle.Broadcast()
	}
	s.mu.Unlock()
	for _, o := range batch {
		if o != self {
			o.wake <- false
		}
	}
	if next != nil {
		next.wake <- true
	}
}

// commit applies batch in one transaction and sets each op's err. An op
// that cannot be applied (which takes a damaged database) fails alone: the
// transaction is rolled back and the others are applied again without it.
func (s *Spool) commit(batch []*op) {
	now := s.clock()
	var d delta
	var err error
	for {
		var bad int
		d = delta{}
		bad, err = s.transact(batch, now, &d)
		if bad < 0 {
			break
		}
		batch[bad].err = err
		s.metrics.failed.Inc()
		s.log.Error("spool operation failed", "err", err)
		batch = append(batch[:bad:bad], batch[bad+1:]...)
		if len(batch) == 0 {
			return
		}
	}
	s.metrics.batch.Observe(float64(len(batch)))
	if err != nil {
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			err = ErrClosed
		} else {
			s.metrics.failed.Inc()
			if !s.failing.Swap(true) {
				s.log.Error("spool commit failed; refusing messages until a commit succeeds", "err", err)
			}
		}
		for _, o := range batch {
			o.err = err
		}
		return
	}
	if s.failing.Swap(false) {
		s.log.Info("spool commits succeed again")
	}
	s.metrics.stored.Add(float64(d.stored))
	s.metrics.delivered.Add(float64(d.delivered))
	for r, n := range d.evicted {
		s.metrics.evicted[r].Add(float64(n))
	}
	s.mu.Lock()
	s.totals.Mailboxes += int(d.mailboxes)
	s.totals.Messages += d.messages
	s.totals.Bytes += d.bytes
	t := s.totals
	s.mu.Unlock()
	s.metrics.messages.Set(float64(t.Messages))
	s.metrics.bytes.Set(float64(t.Bytes))
}

// transact applies batch in one transaction and commits it. If an op fails
// to apply it rolls back and returns the op's index and error; otherwise it
// returns -1 and the commit's error.
func (s *Spool) transact(batch []*op, now time.Time, d *delta) (int, error) {
	if s.beforeCommit != nil {
		s.beforeCommit(len(batch))
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return -1, err
	}
	for i, o := range batch {
		if err := s.apply(tx, o, now, d); err != nil {
			_ = tx.Rollback()
			return i, err
		}
	}
	start := time.Now()
	err = tx.Commit()
	s.metrics.fsync.Observe(time.Since(start).Seconds())
	return -1, err
}

func (s *Spool) apply(tx *bolt.Tx, o *op, now time.Time, d *delta) error {
	switch o.kind {
	case opPut:
		o.err = nil // apply may run again after another op failed
		x, err := openBox(tx, o.mailbox[:], true, d)
		if err != nil {
			return err
		}
		if s.cfg.RefuseWhenFull {
			// Expired messages make room; then the message fits or is
			// refused, and nothing is evicted for it.
			if err := s.trim(x, now); err != nil {
				return err
			}
			if !s.fits(x.u, len(o.record)) {
				o.err = ErrFull
				return x.save()
			}
		}
		seq, err := x.b.NextSequence()
		if err != nil {
			return err
		}
		if err := x.b.Put(seqKey(seq), o.record); err != nil {
			return err
		}
		x.add(len(o.record))
		d.stored++
		if err := s.trim(x, now); err != nil {
			return err
		}
		return x.save()

	case opAck, opDrop:
		x, err := openBox(tx, o.mailbox[:], false, d)
		if err != nil || x == nil {
			return err
		}
		key := o.key
		if o.kind == opAck {
			key = seqKey(o.seq)
		}
		v := x.b.Get(key)
		if v == nil {
			return nil
		}
		if o.kind == opDrop {
			if _, good := parseSeqKey(key); good {
				if _, _, err := decodeRecord(v); err == nil {
					return nil // not damaged after all
				}
			}
		}
		n := len(v)
		if err := x.b.Delete(key); err != nil {
			return err
		}
		x.remove(n)
		if o.kind == opAck {
			d.delivered++
		} else {
			d.evicted[reasonCorrupt]++
		}
		return x.save()

	case opExpire:
		for _, id := range o.mailboxes {
			x, err := openBox(tx, id[:], false, d)
			if err != nil {
				return err
			}
			if x == nil {
				continue
			}
			if err := s.trim(x, now); err != nil {
				return err
			}
			if err := x.save(); err != nil {
				return err
			}
		}
		return nil
	}
	return errors.New("spool: unknown operation")
}

// fits reports whether a record of recordLen bytes fits a mailbox with
// usage u within MaxMessages and MaxBytes.
func (s *Spool) fits(u usage, recordLen int) bool {
	return (s.cfg.MaxMessages == 0 || u.messages+1 <= int64(s.cfg.MaxMessages)) &&
		(s.cfg.MaxBytes == 0 || u.bytes+payloadLen(recordLen) <= s.cfg.MaxBytes)
}

// trim evicts x's oldest messages while the oldest is damaged or older than
// MaxAge, or (unless RefuseWhenFull) the mailbox is over MaxMessages or
// MaxBytes.
func (s *Spool) trim(x *box, now time.Time) error {
	cutoff := s.cutoff(now)
	c := x.b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.First() {
		stored, _, err := decodeRecord(v)
		_, good := parseSeqKey(k)
		var reason int
		switch {
		case err != nil || !good:
			reason = reasonCorrupt
		case s.cfg.MaxAge > 0 && stored <= cutoff:
			reason = reasonAge
		case s.cfg.RefuseWhenFull:
			return nil // never evict for room
		case s.cfg.MaxMessages > 0 && x.u.messages > int64(s.cfg.MaxMessages):
			reason = reasonCount
		case s.cfg.MaxBytes > 0 && x.u.bytes > s.cfg.MaxBytes:
			reason = reasonBytes
		default:
			return nil
		}
		n := len(v)
		if err := c.Delete(); err != nil {
			return err
		}
		x.remove(n)
		x.d.evicted[reason]++
	}
	return nil
}

// box is one mailbox inside a write transaction: its message bucket and its
// usage, which save writes back.
type box struct {
	id       []byte
	b        *bolt.Bucket
	ub       *bolt.Bucket
	u        usage
	nonEmpty bool // as the totals count it
	rebuilt  bool // u was recounted: the stored record was missing or damaged
	d        *delta
}

// openBox opens mailbox id in tx, creating its bucket if create is set; it
// returns nil if the mailbox has no bucket and create is not set. A missing
// or damaged usage record is rebuilt by counting the messages.
func openBox(tx *bolt.Tx, id []byte, create bool, d *delta) (*box, error) {
	root := tx.Bucket(bucketMailboxes)
	b := root.Bucket(id)
	if b == nil {
		if !create {
			return nil, nil
		}
		var err error
		if b, err = root.CreateBucket(id); err != nil {
			return nil, err
		}
	}
	x := &box{id: id, b: b, ub: tx.Bucket(bucketUsage), d: d}
	v := x.ub.Get(id)
	u, err := decodeUsage(v)
	x.nonEmpty = v != nil // what the totals believe
	if v == nil || err != nil {
		u, x.rebuilt = usage{}, true
		_ = b.ForEach(func(_, v []byte) error {
			if v != nil { // not a nested bucket
				u.messages++
				u.bytes += payloadLen(len(v))
			}
			return nil
		})
		if v == nil {
			// Messages without a usage record (which Open rebuilds, so
			// this should not happen) are not in the totals yet.
			d.messages += u.messages
			d.bytes += u.bytes
		}
		// A damaged record's old contribution to the totals is unknown;
		// they stay skewed until the next Open sums them again.
	}
	x.u = u
	return x, nil
}

func (x *box) add(recordLen int) {
	x.u.messages++
	x.u.bytes += payloadLen(recordLen)
	x.d.messages++
	x.d.bytes += payloadLen(recordLen)
}

func (x *box) remove(recordLen int) {
	x.u.messages--
	x.u.bytes -= payloadLen(recordLen)
	x.d.messages--
	x.d.bytes -= payloadLen(recordLen)
}

// save writes the usage back; an empty mailbox has none. The bucket stays:
// it carries the mailbox's sequence, which must never go back.
func (x *box) save() error {
	now := x.u.messages > 0
	switch {
	case now && !x.nonEmpty:
		x.d.mailboxes++
	case !now && x.nonEmpty:
		x.d.mailboxes--
	}
	x.nonEmpty = now
	if !now {
		return x.ub.Delete(x.id)
	}
	return x.ub.Put(x.id, x.u.encode())
}
