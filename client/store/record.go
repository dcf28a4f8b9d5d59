package store

import (
	"encoding/binary"
	"math"
	"time"
)

// recordWriter builds the plaintext of a record: fixed-width big-endian
// integers and length-prefixed byte strings.
type recordWriter struct{ b []byte }

func (w *recordWriter) u8(v uint8)     { w.b = append(w.b, v) }
func (w *recordWriter) u32(v uint32)   { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *recordWriter) u64(v uint64)   { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *recordWriter) fixed(b []byte) { w.b = append(w.b, b...) }
func (w *recordWriter) bytes(b []byte) { w.u32(uint32(len(b))); w.b = append(w.b, b...) }
func (w *recordWriter) str(s string)   { w.bytes([]byte(s)) }
func (w *recordWriter) bool(v bool) {
	if v {
		w.u8(1)
	} else {
		w.u8(0)
	}
}

// time stores nanoseconds since the Unix epoch; the zero time is 0.
func (w *recordWriter) time(t time.Time) {
	if t.IsZero() {
		w.u64(0)
		return
	}
	w.u64(uint64(t.UnixNano()))
}

// recordReader reads what recordWriter wrote. A short or malformed record
// sets bad; callers check ok() once at the end.
type recordReader struct {
	b   []byte
	bad bool
}

func (r *recordReader) take(n int) []byte {
	if r.bad || n < 0 || n > len(r.b) {
		r.bad = true
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *recordReader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *recordReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *recordReader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *recordReader) fixed(dst []byte) { copy(dst, r.take(len(dst))) }

func (r *recordReader) bytes() []byte {
	n := r.u32()
	if uint64(n) > math.MaxInt32 {
		r.bad = true
		return nil
	}
	return append([]byte(nil), r.take(int(n))...)
}

func (r *recordReader) str() string { return string(r.bytes()) }

func (r *recordReader) bool() bool {
	switch r.u8() {
	case 0:
		return false
	case 1:
		return true
	default:
		r.bad = true
		return false
	}
}

func (r *recordReader) time() time.Time {
	n := r.u64()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n))
}

// ok reports whether every read succeeded and the record was used up.
func (r *recordReader) ok() bool { return !r.bad && len(r.b) == 0 }
