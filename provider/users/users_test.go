package users

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/blake2b"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newKey(t testing.TB) keys.LinkPublicKey {
	t.Helper()
	k, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func open(t testing.TB, path string, cfg Config) *Registry {
	t.Helper()
	r, err := Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func openCfg(clock *fakeClock, limit int, window time.Duration) Config {
	return Config{
		Registration:    RegistrationOpen,
		PerAddressLimit: limit,
		Window:          window,
		Clock:           clock.Now,
		Registerer:      prometheus.NewRegistry(),
	}
}

func refused(r *Registry, reason string) int {
	return int(testutil.ToFloat64(r.metrics.refused.WithLabelValues(reason)))
}

var addr1 = netip.MustParseAddr("192.0.2.1")

// TestMailboxIDVector pins the mailbox ID: it is part of every client's
// network address and must never change. The expected value was computed
// independently (Python hashlib.blake2b, digest_size=32).
func TestMailboxIDVector(t *testing.T) {
	var b [32]byte
	for i := range b {
		b[i] = byte(i)
	}
	key, err := keys.NewLinkPublicKey(b[:])
	if err != nil {
		t.Fatal(err)
	}
	id := MailboxID(key)
	const want = "8f4342fda14112e3cbb6a0212b506286ba4467944003ef9a92fd5959dc1f062a"
	if got := hex.EncodeToString(id[:]); got != want {
		t.Fatalf("MailboxID = %s, want %s", got, want)
	}
	// Domain separation: not the plain hash the key fingerprint uses.
	if plain := blake2b.Sum256(b[:]); plain == id {
		t.Fatal("mailbox ID is the undomain-separated hash of the key")
	}
	// It is a Sphinx Recipient ID.
	var r sphinx.Recipient
	r.ID = MailboxID(key)
	if len(r.ID) != MailboxIDLength {
		t.Fatal("mailbox ID length differs from the Recipient ID length")
	}
}

func TestClosedRegistration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	reg := prometheus.NewRegistry()
	r := open(t, path, Config{Registerer: reg})
	k1, k2 := newKey(t), newKey(t)

	if _, ok := r.Authorize(k1, addr1); ok {
		t.Fatal("unknown key authorized under closed registration")
	}
	if n := refused(r, reasonClosed); n != 1 {
		t.Fatalf("refused{closed} = %d, want 1", n)
	}
	if err := r.Add(k1); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(k1); err != nil {
		t.Fatalf("second Add: %v", err)
	}
	mb, ok := r.Authorize(k1, addr1)
	if !ok || mb != MailboxID(k1) {
		t.Fatalf("added key: Authorize = %x, %v", mb, ok)
	}
	if _, ok := r.Authorize(k2, addr1); ok {
		t.Fatal("other key authorized")
	}
	if got, ok := r.Lookup(MailboxID(k1)); !ok || !got.Equal(k1) {
		t.Fatal("Lookup of the added key's mailbox failed")
	}
	if _, ok := r.Lookup(MailboxID(k2)); ok {
		t.Fatal("Lookup found a mailbox nobody owns")
	}
	if err := r.Add(keys.LinkPublicKey{}); err == nil {
		t.Fatal("Add accepted the zero key")
	}
	if err := r.Add(k2); err != nil {
		t.Fatal(err)
	}
	if got := r.List(); len(got) != 2 || r.Len() != 2 {
		t.Fatalf("List has %d keys, Len %d; want 2", len(got), r.Len())
	}
	if v := testutil.ToFloat64(r.metrics.users); v != 2 {
		t.Fatalf("users gauge = %v, want 2", v)
	}

	// Remove, and the refusal that follows.
	if err := r.Remove(k1); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(k1); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("second Remove: %v, want ErrUnknownKey", err)
	}
	if _, ok := r.Authorize(k1, addr1); ok {
		t.Fatal("removed key authorized")
	}
	if _, ok := r.Lookup(MailboxID(k1)); ok {
		t.Fatal("Lookup found the removed key's mailbox")
	}

	// Durable: a new process sees the same registry.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	r2 := open(t, path, Config{})
	got := r2.List()
	if len(got) != 1 || !got[0].Equal(k2) || r2.Len() != 1 {
		t.Fatalf("after reopen List = %v", got)
	}
	if _, ok := r2.Authorize(k2, netip.Addr{}); !ok {
		t.Fatal("added key not authorized after reopen")
	}
}

func TestClosedAfterUse(t *testing.T) {
	r := open(t, filepath.Join(t.TempDir(), "users.db"), Config{})
	k := newKey(t)
	if err := r.Add(k); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, ok := r.Authorize(k, addr1); ok {
		t.Fatal("Authorize after Close")
	}
	if err := r.Add(newKey(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	if err := r.Remove(k); !errors.Is(err, ErrClosed) {
		t.Fatalf("Remove after Close: %v", err)
	}
	if r.List() != nil {
		t.Fatal("List after Close")
	}
	if _, ok := r.Lookup(MailboxID(k)); ok {
		t.Fatal("Lookup after Close")
	}
}

func TestOpenRegistration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	clock := newFakeClock()
	r := open(t, path, openCfg(clock, 2, time.Hour))
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)

	for _, k := range []keys.LinkPublicKey{k1, k2} {
		mb, ok := r.Authorize(k, addr1)
		if !ok || mb != MailboxID(k) {
			t.Fatal("new key refused under open registration")
		}
	}
	// Known keys are never limited.
	for range 10 {
		if _, ok := r.Authorize(k1, addr1); !ok {
			t.Fatal("registered key refused")
		}
	}
	if _, ok := r.Authorize(k3, addr1); ok {
		t.Fatal("third registration from one address within the window")
	}
	if n := refused(r, reasonRateLimited); n != 1 {
		t.Fatalf("refused{rate_limited} = %d, want 1", n)
	}
	if n := testutil.ToFloat64(r.metrics.registrations); n != 2 {
		t.Fatalf("registrations = %v, want 2", n)
	}
	// Another address is not affected.
	if _, ok := r.Authorize(k3, netip.MustParseAddr("192.0.2.2")); !ok {
		t.Fatal("registration from a second address refused")
	}
	if _, ok := r.Lookup(MailboxID(k3)); !ok {
		t.Fatal("registered key has no mailbox")
	}

	// Registered keys stay when the operator closes registration.
	r.Close()
	r2 := open(t, path, Config{})
	for _, k := range []keys.LinkPublicKey{k1, k2, k3} {
		if _, ok := r2.Authorize(k, addr1); !ok {
			t.Fatal("key registered while open refused after closing")
		}
	}
	if _, ok := r2.Authorize(newKey(t), addr1); ok {
		t.Fatal("new key registered under closed registration")
	}
}

func TestRateLimitWindow(t *testing.T) {
	clock := newFakeClock()
	r := open(t, filepath.Join(t.TempDir(), "users.db"), openCfg(clock, 1, time.Hour))
	try := func(a string) bool {
		_, ok := r.Authorize(newKey(t), netip.MustParseAddr(a))
		return ok
	}
	if !try("192.0.2.1") || try("192.0.2.1") {
		t.Fatal("want one registration per window")
	}
	// One IPv6 /64 is one source; the next /64 is another.
	if !try("2001:db8:0:1::1") || try("2001:db8:0:1:ffff::2") {
		t.Fatal("addresses in one /64 registered twice")
	}
	if !try("2001:db8:0:2::1") {
		t.Fatal("a different /64 refused")
	}
	// An IPv4-mapped IPv6 address is the IPv4 address.
	if try("::ffff:192.0.2.1") {
		t.Fatal("IPv4-mapped address escaped the IPv4 limit")
	}
	// Half a window later the sliding estimate still counts half of the
	// previous window; a full window later the allowance is back.
	clock.Advance(90 * time.Minute)
	if try("192.0.2.1") {
		t.Fatal("the sliding estimate forgot the previous window")
	}
	clock.Advance(30 * time.Minute)
	if !try("192.0.2.1") {
		t.Fatal("allowance not restored after the window")
	}
	if try("192.0.2.1") {
		t.Fatal("second registration in the new window")
	}
	clock.Advance(3 * time.Hour)
	if !try("192.0.2.1") {
		t.Fatal("allowance not restored after a long pause")
	}
}

// TestRegistrationFlood: registrations from far more addresses than the
// limiter tracks keep its memory bounded and are refused, counted, once the
// table is full; addresses already tracked are unaffected.
func TestRegistrationFlood(t *testing.T) {
	clock := newFakeClock()
	cfg := openCfg(clock, 1, time.Hour)
	cfg.MaxTrackedAddresses = 64
	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := open(t, filepath.Join(t.TempDir(), "users.db"), cfg)

	// Pre-made keys keep the flood fast.
	ks := make([]keys.LinkPublicKey, 1000)
	for i := range ks {
		ks[i] = newKey(t)
	}
	ok := 0
	for i, k := range ks {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if _, yes := r.Authorize(k, a); yes {
			ok++
		}
		if n := r.limiter.size(); n > 2*cfg.MaxTrackedAddresses {
			t.Fatalf("limiter holds %d addresses, bound %d", n, 2*cfg.MaxTrackedAddresses)
		}
	}
	if ok != cfg.MaxTrackedAddresses {
		t.Fatalf("%d registrations in one window, want %d", ok, cfg.MaxTrackedAddresses)
	}
	if n := refused(r, reasonTableFull); n != len(ks)-ok {
		t.Fatalf("refused{limiter_full} = %d, want %d", n, len(ks)-ok)
	}
	if got := strings.Count(logs.String(), "too many source addresses"); got != 1 {
		t.Fatalf("table-full warning logged %d times, want once per window", got)
	}
	// The next windows free the table.
	clock.Advance(2 * time.Hour)
	if _, yes := r.Authorize(newKey(t), netip.MustParseAddr("10.200.0.1")); !yes {
		t.Fatal("registration refused after the flood's window passed")
	}
	if n := r.limiter.size(); n != 1 {
		t.Fatalf("limiter holds %d addresses after two windows, want 1", n)
	}
}

func TestMaxUsers(t *testing.T) {
	clock := newFakeClock()
	cfg := openCfg(clock, 100, time.Hour)
	cfg.MaxUsers = 3
	r := open(t, filepath.Join(t.TempDir(), "users.db"), cfg)
	var ks []keys.LinkPublicKey
	for range 3 {
		k := newKey(t)
		ks = append(ks, k)
		if _, ok := r.Authorize(k, addr1); !ok {
			t.Fatal("registration under MaxUsers refused")
		}
	}
	if _, ok := r.Authorize(newKey(t), addr1); ok {
		t.Fatal("registration beyond MaxUsers")
	}
	if n := refused(r, reasonFull); n != 1 {
		t.Fatalf("refused{full} = %d", n)
	}
	if _, ok := r.Authorize(ks[0], addr1); !ok {
		t.Fatal("known key refused when the registry is full")
	}
	if err := r.Remove(ks[0]); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Authorize(newKey(t), addr1); !ok {
		t.Fatal("registration refused after a removal made room")
	}
}

func TestZeroKeyRefused(t *testing.T) {
	r := open(t, filepath.Join(t.TempDir(), "users.db"), openCfg(newFakeClock(), 5, time.Hour))
	if _, ok := r.Authorize(keys.LinkPublicKey{}, addr1); ok {
		t.Fatal("zero key authorized")
	}
	if n := refused(r, reasonInvalid); n != 1 {
		t.Fatalf("refused{invalid} = %d", n)
	}
}

// TestConcurrentRegistration: many connections with one new key register it
// once.
func TestConcurrentRegistration(t *testing.T) {
	r := open(t, filepath.Join(t.TempDir(), "users.db"), openCfg(newFakeClock(), 1, time.Hour))
	k := newKey(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	oks := 0
	for range 16 {
		wg.Go(func() {
			if _, ok := r.Authorize(k, addr1); ok {
				mu.Lock()
				oks++
				mu.Unlock()
			}
			r.Lookup(MailboxID(k))
			r.List()
		})
	}
	wg.Wait()
	if oks != 16 {
		t.Fatalf("%d of 16 connections authorized", oks)
	}
	if n := testutil.ToFloat64(r.metrics.registrations); n != 1 || r.Len() != 1 {
		t.Fatalf("registered %v times, Len %d", n, r.Len())
	}
}

// TestLogsRedacted: no log line carries a client address or a whole key.
func TestLogsRedacted(t *testing.T) {
	var logs bytes.Buffer
	cfg := openCfg(newFakeClock(), 1, time.Hour)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := open(t, filepath.Join(t.TempDir(), "users.db"), cfg)
	a := netip.MustParseAddr("198.51.100.77")
	k1, k2 := newKey(t), newKey(t)
	r.Authorize(k1, a)
	r.Authorize(k2, a) // refused
	r.Authorize(keys.LinkPublicKey{}, a)
	if logs.Len() == 0 {
		t.Fatal("nothing logged at debug level")
	}
	for _, k := range []keys.LinkPublicKey{k1, k2} {
		text, _ := k.MarshalText()
		b := k.Array()
		for _, secret := range []string{string(text), hex.EncodeToString(b[:]), a.String(), fmt.Sprint(MailboxID(k))} {
			if strings.Contains(logs.String(), secret) {
				t.Fatalf("log leaks %q:\n%s", secret, logs.String())
			}
		}
	}
	// At info level nothing is logged at all.
	logs.Reset()
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	cfg.Registerer = nil
	r2 := open(t, filepath.Join(t.TempDir(), "users2.db"), cfg)
	r2.Authorize(k1, a)
	r2.Authorize(k2, a)
	if logs.Len() != 0 {
		t.Fatalf("logged at info level:\n%s", logs.String())
	}
}

func TestLocked(t *testing.T) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 50 * time.Millisecond
	path := filepath.Join(t.TempDir(), "users.db")
	first := open(t, path, Config{})
	reg := prometheus.NewRegistry()
	if _, err := Open(path, Config{Registerer: reg}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	// The failed Open left nothing registered.
	first.Close()
	open(t, path, Config{Registerer: reg})
}

func TestConfigValidation(t *testing.T) {
	bad := []Config{
		{Registration: RegistrationOpen},
		{Registration: RegistrationOpen, PerAddressLimit: 1},
		{Registration: RegistrationOpen, Window: time.Hour},
		{Registration: 7},
		{MaxUsers: -1},
		{MaxTrackedAddresses: -1},
		{PerAddressLimit: -1},
	}
	for _, c := range bad {
		if _, err := Open(filepath.Join(t.TempDir(), "users.db"), c); err == nil {
			t.Errorf("Open accepted %+v", c)
		}
	}
	// Two registries cannot share one metrics registry.
	reg := prometheus.NewRegistry()
	open(t, filepath.Join(t.TempDir(), "a.db"), Config{Registerer: reg})
	if _, err := Open(filepath.Join(t.TempDir(), "b.db"), Config{Registerer: reg}); err == nil {
		t.Error("second registry registered the same metrics")
	}
}

func TestRegistrationText(t *testing.T) {
	for _, r := range []Registration{RegistrationOpen, RegistrationClosed} {
		b, err := r.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got Registration
		if err := got.UnmarshalText(b); err != nil || got != r {
			t.Fatalf("%v: round trip gave %v, %v", r, got, err)
		}
	}
	var r Registration
	if err := r.UnmarshalText([]byte("Open")); err == nil {
		t.Fatal("accepted \"Open\"")
	}
	if _, err := Registration(9).MarshalText(); err == nil {
		t.Fatal("marshalled an unknown policy")
	}
}

// TestOpenRejectsDamage: Open checks every record and the index.
func TestOpenRejectsDamage(t *testing.T) {
	damage := map[string]func(tx *bolt.Tx, k, id []byte) error{
		"record": func(tx *bolt.Tx, k, _ []byte) error { return tx.Bucket(bucketKeys).Put(k, []byte{9}) },
		"key": func(tx *bolt.Tx, _, _ []byte) error {
			return tx.Bucket(bucketKeys).Put([]byte("short"), record{originOpen, 1}.marshal())
		},
		"index": func(tx *bolt.Tx, _, id []byte) error { return tx.Bucket(bucketMailboxes).Delete(id) },
		"extra": func(tx *bolt.Tx, _, _ []byte) error {
			return tx.Bucket(bucketMailboxes).Put(make([]byte, 32), make([]byte, 32))
		},
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "users.db")
			r := open(t, path, Config{})
			k := newKey(t)
			if err := r.Add(k); err != nil {
				t.Fatal(err)
			}
			r.Close()
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			kb, id := k.Array(), MailboxID(k)
			if err := db.Update(func(tx *bolt.Tx) error { return f(tx, kb[:], id[:]) }); err != nil {
				t.Fatal(err)
			}
			db.Close()
			if r, err := Open(path, Config{}); err == nil {
				r.Close()
				t.Fatal("Open accepted a damaged registry")
			}
		})
	}
}

func TestListSorted(t *testing.T) {
	r := open(t, filepath.Join(t.TempDir(), "users.db"), Config{})
	for range 5 {
		if err := r.Add(newKey(t)); err != nil {
			t.Fatal(err)
		}
	}
	got := r.List()
	if !slices.IsSortedFunc(got, func(a, b keys.LinkPublicKey) int {
		x, y := a.Array(), b.Array()
		return bytes.Compare(x[:], y[:])
	}) {
		t.Fatal("List is not in byte order")
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add(record{originOpen, 0}.marshal())
	f.Add(record{originOperator, time.Now().UnixNano()}.marshal())
	f.Add(record{originOperator, -1}.marshal())
	f.Add([]byte{})
	f.Add([]byte{recordVersion, 3, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err != nil {
			if r != (record{}) {
				t.Fatal("failed parse returned a record")
			}
			return
		}
		if !bytes.Equal(r.marshal(), b) {
			t.Fatalf("round trip: %x → %x", b, r.marshal())
		}
	})
}

func TestSourceOf(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	} {
		if got := sourceOf(netip.MustParseAddr(c.addr)); got.String() != c.want {
			t.Errorf("sourceOf(%s) = %s, want %s", c.addr, got, c.want)
		}
	}
	if got := sourceOf(netip.Addr{}); got != (netip.Prefix{}) {
		t.Errorf("sourceOf(zero) = %v", got)
	}
}

// TestLimiterClockBackwards: a clock that steps back neither panics nor
// frees the allowance.
func TestLimiterClockBackwards(t *testing.T) {
	l := newLimiter(1, time.Hour, 10)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	src := sourceOf(addr1)
	if l.allow(src, now) != allowed {
		t.Fatal("first registration refused")
	}
	l.note(src, now)
	for _, d := range []time.Duration{-time.Minute, -48 * time.Hour, time.Minute} {
		if v := l.allow(src, now.Add(d)); v != overLimit {
			t.Fatalf("at %v: verdict %d, want overLimit", d, v)
		}
	}
}
