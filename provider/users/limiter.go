package users

import (
	"net/netip"
	"time"
)

// limiter bounds new registrations per source address: about limit per
// window, estimated from fixed windows the way a sliding window would count
// them (the previous window's count, weighted by how much of it the sliding
// window still covers, plus the current window's count).
//
// Memory is bounded by construction: each window's table holds at most max
// addresses, and only two windows are kept. When the current table is full a
// new address is refused rather than let in or let something be forgotten,
// so an attacker cannot reset an address's count by flooding from others.
//
// A limiter is not safe for concurrent use; Registry guards it with its
// mutex.
type limiter struct {
	limit  int
	window time.Duration
	max    int

	start     time.Time // start of the current window; zero before first use
	cur, prev map[netip.Prefix]int
}

// verdicts of limiter.allow.
const (
	allowed = iota
	overLimit
	tableFull
)

func newLimiter(limit int, window time.Duration, max int) *limiter {
	return &limiter{limit: limit, window: window, max: max, cur: map[netip.Prefix]int{}, prev: map[netip.Prefix]int{}}
}

// sourceOf maps an address to the unit the limit applies to: an IPv4
// address, or an IPv6 /64. The zero Addr (no address, such as a Unix socket)
// is one unit of its own.
func sourceOf(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 64
	if a.Is4() {
		bits = 32
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// advance moves the windows forward to now.
func (l *limiter) advance(now time.Time) {
	if l.start.IsZero() {
		l.start = now
		return
	}
	elapsed := now.Sub(l.start)
	if elapsed < l.window {
		return // also when the clock went backwards
	}
	if elapsed < 2*l.window {
		l.prev, l.cur = l.cur, make(map[netip.Prefix]int)
		l.start = l.start.Add(l.window)
		return
	}
	l.prev, l.cur = make(map[netip.Prefix]int), make(map[netip.Prefix]int)
	l.start = now
}

// allow reports whether src may register one more key now. It changes
// nothing but the window position; note counts a registration.
func (l *limiter) allow(src netip.Prefix, now time.Time) int {
	l.advance(now)
	cur, known := l.cur[src]
	if !known && len(l.cur) >= l.max {
		return tableFull
	}
	elapsed := max(now.Sub(l.start), 0)
	weight := 1 - float64(elapsed)/float64(l.window)
	if float64(l.prev[src])*weight+float64(cur)+1 > float64(l.limit) {
		return overLimit
	}
	return allowed
}

// note counts one registration from src; allow must have said allowed.
func (l *limiter) note(src netip.Prefix, now time.Time) {
	l.advance(now)
	l.cur[src]++
}

// size is the number of addresses held in both windows.
func (l *limiter) size() int { return len(l.cur) + len(l.prev) }
