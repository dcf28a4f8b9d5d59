package hop

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
)

// epochKeys is a KeySource over a fixed map.
type epochKeys map[uint64]*keys.SphinxPrivateKey

func (k epochKeys) Key(e uint64) (*keys.SphinxPrivateKey, bool) { p, ok := k[e]; return p, ok }

// mapFilter is the obvious replay filter: a set per epoch, with a capacity.
type mapFilter struct {
	seen map[uint64]map[[32]byte]bool
	cap  int
}

var errFull = errors.New("full")

func (f *mapFilter) TestAndSet(e uint64, tag *[32]byte) (bool, error) {
	if f.seen == nil {
		f.seen = map[uint64]map[[32]byte]bool{}
	}
	s := f.seen[e]
	if s == nil {
		s = map[[32]byte]bool{}
		f.seen[e] = s
	}
	if s[*tag] {
		return true, nil
	}
	if f.cap > 0 && len(s) >= f.cap {
		return false, errFull
	}
	s[*tag] = true
	return false, nil
}

type fixture struct {
	geo  *sphinx.Geometry
	keys epochKeys
	id   [32]byte
}

func newFixture(t testing.TB) *fixture {
	f := &fixture{geo: sphinx.DefaultGeometry(), keys: epochKeys{}}
	for e := uint64(9); e <= 12; e++ {
		k, err := keys.GenerateSphinxKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		f.keys[e] = k
	}
	f.id[0] = 7
	return f
}

// packet makes a two-hop packet whose first hop is this node under the key
// of epoch e; the second hop is a provider that delivers to recipient 5.
func (f *fixture) packet(t testing.TB, e uint64, delay time.Duration) []byte {
	t.Helper()
	last, _ := keys.GenerateSphinxKey(rand.Reader)
	next := [32]byte{1, 2, 3}
	path := []sphinx.PathHop{
		{ID: f.id, PublicKey: f.keys[e].Public(), Commands: []sphinx.Command{
			sphinx.NodeDelay{Delay: uint32(delay / time.Millisecond)}}},
		{ID: next, PublicKey: last.Public(), Commands: []sphinx.Command{sphinx.Recipient{ID: [32]byte{5}}}},
	}
	pkt, err := sphinx.NewPacket(rand.Reader, f.geo, path, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

func TestForwardWithEpochKeys(t *testing.T) {
	f := newFixture(t)
	p := New(f.geo, f.keys, &mapFilter{})
	for _, e := range []uint64{10, 9, 11} {
		pkt := f.packet(t, e, 1500*time.Millisecond)
		var d Decision
		p.Process(pkt, 10, &d)
		if d.Action != Forward || d.Epoch != e || d.NextHop != ([32]byte{1, 2, 3}) || d.Delay != 1500*time.Millisecond {
			t.Fatalf("epoch %d: decision %+v", e, d)
		}
	}
	// Two epochs ahead is outside the window.
	var d Decision
	p.Process(f.packet(t, 12, 0), 10, &d)
	if d.Action != Drop || d.Reason != ReasonInvalid {
		t.Fatalf("epoch 12 at epoch 10: %+v", d)
	}
}

func TestDeliver(t *testing.T) {
	f := newFixture(t)
	p := New(f.geo, f.keys, &mapFilter{})
	path := []sphinx.PathHop{{ID: f.id, PublicKey: f.keys[10].Public(),
		Commands: []sphinx.Command{sphinx.Recipient{ID: [32]byte{9}}}}}
	pkt, err := sphinx.NewPacket(rand.Reader, f.geo, path, []byte("for you"))
	if err != nil {
		t.Fatal(err)
	}
	var d Decision
	p.Process(pkt, 10, &d)
	if d.Action != Deliver || d.Recipient != ([32]byte{9}) || !bytes.HasPrefix(d.Payload, []byte("for you")) {
		t.Fatalf("decision %+v", d)
	}
}

func TestReplay(t *testing.T) {
	f := newFixture(t)
	filter := &mapFilter{}
	p := New(f.geo, f.keys, filter)
	orig := f.packet(t, 10, 0)
	var d Decision
	p.Process(bytes.Clone(orig), 10, &d)
	if d.Action != Forward {
		t.Fatalf("first: %+v", d)
	}
	p.Process(bytes.Clone(orig), 10, &d)
	if d.Action != Drop || d.Reason != ReasonReplay {
		t.Fatalf("replay: %+v", d)
	}
	// The same packet a packet later, now that the node is in epoch 11 and
	// tries key 10 as the previous one: still a replay.
	p.Process(bytes.Clone(orig), 11, &d)
	if d.Action != Drop || d.Reason != ReasonReplay {
		t.Fatalf("replay across the boundary: %+v", d)
	}
}

func TestReplayFilterFullRefuses(t *testing.T) {
	f := newFixture(t)
	p := New(f.geo, f.keys, &mapFilter{cap: 1})
	var d Decision
	p.Process(f.packet(t, 10, 0), 10, &d)
	if d.Action != Forward {
		t.Fatalf("first: %+v", d)
	}
	p.Process(f.packet(t, 10, 0), 10, &d)
	if d.Action != Drop || d.Reason != ReasonReplayFull {
		t.Fatalf("full: %+v", d)
	}
}

func TestGarbageAndMissingKeys(t *testing.T) {
	f := newFixture(t)
	p := New(f.geo, f.keys, &mapFilter{})
	var d Decision
	for _, pkt := range [][]byte{nil, make([]byte, 10), make([]byte, f.geo.PacketLength())} {
		p.Process(pkt, 10, &d)
		if d.Action != Drop || d.Reason != ReasonInvalid {
			t.Fatalf("garbage: %+v", d)
		}
	}
	pkt := f.packet(t, 10, 0)
	delete(f.keys, 10) // retired
	p.Process(pkt, 10, &d)
	if d.Action != Drop || d.Reason != ReasonInvalid {
		t.Fatalf("retired key: %+v", d)
	}
	// Epoch 0 has no previous epoch.
	p.Process(pkt, 0, &d)
	if d.Action != Drop {
		t.Fatalf("epoch 0: %+v", d)
	}
}

func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		if s := r.String(); s == "unknown" || seen[s] {
			t.Fatalf("bad label %q", s)
		} else {
			seen[s] = true
		}
	}
}

func TestProcessAllocations(t *testing.T) {
	f := newFixture(t)
	p := New(f.geo, f.keys, &mapFilter{})
	pkts := make([][]byte, 20)
	for i := range pkts {
		pkts[i] = f.packet(t, 10, 0)
	}
	i := 0
	var d Decision
	allocs := testing.AllocsPerRun(len(pkts)-1, func() {
		p.Process(pkts[i], 10, &d)
		i++
	})
	// What sphinx.UnwrapInto needs (the AES-CTR state) plus the map insert
	// of the test's filter; nothing proportional to the packet.
	if allocs > 6 {
		t.Fatalf("%v allocations per packet", allocs)
	}
}

func BenchmarkProcessInvalid(b *testing.B) {
	f := newFixture(b)
	p := New(f.geo, f.keys, &mapFilter{})
	pkt := f.packet(b, 10, 0)
	pkt[100] ^= 1
	var d Decision
	b.ReportAllocs()
	for b.Loop() {
		p.Process(pkt, 10, &d)
	}
}
