package sphinx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

func TestGeometry(t *testing.T) {
	cases := []struct {
		hops, user                                     int
		withSURB                                       bool
		perHop, ri, header, surb, fwd, payload, packet int
	}{
		// The Katzenpost vectors.
		{5, 103, false, 82, 410, 476, 572, 103, 135, 611},
		// The default: 476 + 32 + 2 + 572 + 2000.
		{5, 2000, true, 82, 410, 476, 572, 2574, 2606, 3082},
		{1, 1, false, 82, 82, 148, 244, 1, 33, 181},
		{3, 500, true, 82, 246, 312, 408, 910, 942, 1254},
	}
	for _, c := range cases {
		g := mustGeometry(t, c.hops, c.user, c.withSURB)
		got := []int{g.PerHopRoutingInfoLength(), g.RoutingInfoLength(), g.HeaderLength(), g.SURBLength(),
			g.ForwardPayloadLength(), g.PayloadLength(), g.PacketLength()}
		want := []int{c.perHop, c.ri, c.header, c.surb, c.fwd, c.payload, c.packet}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%v: lengths %v, want %v", g, got, want)
		}
		if g.NrHops() != c.hops || g.UserPayloadLength() != c.user || g.WithSURB() != c.withSURB {
			t.Errorf("%v: parameters not kept", g)
		}
	}
	d := DefaultGeometry()
	if !d.Equal(mustGeometry(t, 5, 2000, true)) || d.PacketLength() != 3082 {
		t.Errorf("default geometry %v", d)
	}
	for _, bad := range [][2]int{{0, 100}, {-1, 100}, {MaxHops + 1, 100}, {5, 0}, {5, -3}, {5, MaxUserPayloadLength + 1}} {
		if g, err := NewGeometry(bad[0], bad[1], true); err == nil {
			t.Errorf("NewGeometry(%d, %d) = %v, want an error", bad[0], bad[1], g)
		}
	}
}

// roundTrip sends payload along a fresh path of n hops and checks what each
// hop sees; it returns the last hop's result.
func roundTrip(t *testing.T, geo *Geometry, r io.Reader, n int, surb bool) {
	t.Helper()
	nodes := newTestNodes(t, r, n)
	path := testPath(r, nodes, surb)
	payload := make([]byte, geo.ForwardPayloadLength())
	_, _ = io.ReadFull(r, payload)

	var pkt, surbKeys []byte
	var err error
	if surb {
		var s []byte
		s, surbKeys, err = NewSURB(r, geo, path)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != geo.SURBLength() || len(surbKeys) != geo.SURBKeysLength(n) {
			t.Fatalf("SURB %d bytes, keys %d bytes", len(s), len(surbKeys))
		}
		var first [NodeIDLength]byte
		pkt, first, err = NewPacketFromSURB(geo, s, payload)
		if err != nil {
			t.Fatal(err)
		}
		if first != nodes[0].id {
			t.Fatal("first hop mismatch")
		}
	} else {
		pkt, err = NewPacket(r, geo, path, payload)
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(pkt) != geo.PacketLength() {
		t.Fatalf("packet of %d bytes, want %d", len(pkt), geo.PacketLength())
	}
	tags := map[[ReplayTagLength]byte]bool{}
	for i := range n {
		res, err := Unwrap(geo, nodes[i].key, pkt)
		if err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if tags[res.ReplayTag] {
			t.Fatalf("hop %d: replay tag repeats", i)
		}
		tags[res.ReplayTag] = true
		if i < n-1 {
			d := path[i].Commands[0].(NodeDelay).Delay
			if res.Action != Forward || res.NextHop != nodes[i+1].id || res.Delay != time.Duration(d)*time.Millisecond || res.Payload != nil {
				t.Fatalf("hop %d: %+v", i, res)
			}
			continue
		}
		rcpt := path[i].Commands[0].(Recipient)
		if res.Action != Deliver || res.Recipient != rcpt.ID || res.IsSURBReply != surb {
			t.Fatalf("last hop: %+v", res)
		}
		if !surb {
			if !bytes.Equal(res.Payload, payload) {
				t.Fatal("payload mismatch")
			}
			return
		}
		if res.SURBID != path[i].Commands[1].(SURBReply).ID {
			t.Fatal("SURB ID mismatch")
		}
		got, err := DecryptSURBPayload(geo, res.Payload, surbKeys)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatal("SURB reply payload mismatch")
		}
	}
}

func TestRoundTrip(t *testing.T) {
	geos := []*Geometry{
		DefaultGeometry(),
		mustGeometry(t, 5, 103, false),
		mustGeometry(t, 1, 1, false),
		mustGeometry(t, 3, 700, true),
		mustGeometry(t, MaxHops, 64, false),
	}
	r := testRand(1)
	for _, geo := range geos {
		for n := 1; n <= geo.NrHops(); n++ {
			for _, surb := range []bool{false, true} {
				t.Run(fmt.Sprintf("%dx%d-%v/%d-hops/surb=%v", geo.NrHops(), geo.UserPayloadLength(), geo.WithSURB(), n, surb), func(t *testing.T) {
					roundTrip(t, geo, r, n, surb)
				})
			}
		}
	}
}

func TestShortPayloadIsPadded(t *testing.T) {
	geo := mustGeometry(t, 3, 100, false)
	r := testRand(2)
	nodes := newTestNodes(t, r, 3)
	pkt, err := NewPacket(r, geo, testPath(r, nodes, false), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	for i := range nodes {
		if err := UnwrapInto(geo, nodes[i].key, pkt, &res); err != nil {
			t.Fatal(err)
		}
	}
	want := make([]byte, 100)
	copy(want, "hello")
	if !bytes.Equal(res.Payload, want) {
		t.Fatalf("payload %q", res.Payload)
	}
}

func TestPointerCommands(t *testing.T) {
	geo := mustGeometry(t, 2, 10, false)
	r := testRand(11)
	nodes := newTestNodes(t, r, 2)
	path := []PathHop{
		{ID: nodes[0].id, PublicKey: nodes[0].key.Public(), Commands: []Command{&NodeDelay{Delay: 3}}},
		{ID: nodes[1].id, PublicKey: nodes[1].key.Public(), Commands: []Command{&Recipient{ID: [32]byte{4}}, &SURBReply{ID: [16]byte{5}}}},
	}
	pkt, err := NewPacket(r, geo, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Unwrap(geo, nodes[0].key, pkt)
	if err != nil || a.Delay != 3*time.Millisecond {
		t.Fatal(a, err)
	}
	b, err := Unwrap(geo, nodes[1].key, pkt)
	if err != nil || b.Recipient[0] != 4 || b.SURBID[0] != 5 {
		t.Fatal(b, err)
	}
}

func TestDeterministic(t *testing.T) {
	geo := DefaultGeometry()
	nodes := newTestNodes(t, testRand(3), 5)
	path := testPath(testRand(4), nodes, false)
	a, err := NewPacket(testRand(5), geo, path, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewPacket(testRand(5), geo, path, []byte("x"))
	c, _ := NewPacket(testRand(6), geo, path, []byte("x"))
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatal("NewPacket is not a function of its reader")
	}
}

func TestBadPaths(t *testing.T) {
	geo := mustGeometry(t, 3, 100, false)
	r := testRand(7)
	nodes := newTestNodes(t, r, 4)
	good := testPath(r, nodes[:3], false)
	var rcpt Recipient
	mod := func(f func(p []PathHop) []PathHop) []PathHop {
		p := append([]PathHop(nil), good...)
		for i := range p {
			p[i].Commands = append([]Command(nil), p[i].Commands...)
		}
		return f(p)
	}
	cases := map[string][]PathHop{
		"empty":           nil,
		"too long":        testPath(r, nodes, false),
		"next node hop":   mod(func(p []PathHop) []PathHop { p[0].Commands = append(p[0].Commands, NextNodeHop{}); return p }),
		"two delays":      mod(func(p []PathHop) []PathHop { p[0].Commands = append(p[0].Commands, NodeDelay{}); return p }),
		"inner recipient": mod(func(p []PathHop) []PathHop { p[1].Commands = append(p[1].Commands, rcpt); return p }),
		"no recipient":    mod(func(p []PathHop) []PathHop { p[2].Commands = nil; return p }),
		"last delay":      mod(func(p []PathHop) []PathHop { p[2].Commands = append(p[2].Commands, NodeDelay{}); return p }),
		"two surbs":       mod(func(p []PathHop) []PathHop { p[2].Commands = append(p[2].Commands, SURBReply{}, SURBReply{}); return p }),
		"nil command":     mod(func(p []PathHop) []PathHop { p[0].Commands = []Command{nil}; return p }),
		"nil pointer":     mod(func(p []PathHop) []PathHop { p[0].Commands = []Command{(*NodeDelay)(nil)}; return p }),
		"zero key":        mod(func(p []PathHop) []PathHop { p[1].PublicKey = keys.SphinxPublicKey{}; return p }),
	}
	for name, path := range cases {
		if _, err := NewPacket(r, geo, path, nil); err == nil {
			t.Errorf("NewPacket accepted path %q", name)
		}
		if _, _, err := NewSURB(r, geo, path); err == nil {
			t.Errorf("NewSURB accepted path %q", name)
		}
	}
	if _, err := NewPacket(r, geo, good, make([]byte, 101)); err == nil {
		t.Error("NewPacket accepted an oversized payload")
	}
	if _, err := NewPacket(io.LimitReader(r, 10), geo, good, nil); err == nil {
		t.Error("NewPacket ignored a short read")
	}
	if _, _, err := NewPacketFromSURB(geo, make([]byte, geo.SURBLength()-1), nil); err == nil {
		t.Error("NewPacketFromSURB accepted a short SURB")
	}
}

// tamperSetup builds a 5-hop default-geometry packet.
func tamperSetup(t testing.TB, seed uint64) (*Geometry, []testNode, []byte) {
	geo := DefaultGeometry()
	r := testRand(seed)
	nodes := newTestNodes(t, r, 5)
	pkt, err := NewPacket(r, geo, testPath(r, nodes, false), []byte("tamper"))
	if err != nil {
		t.Fatal(err)
	}
	return geo, nodes, pkt
}

func TestTamper(t *testing.T) {
	geo, nodes, orig := tamperSetup(t, 8)
	hdr := geo.HeaderLength()
	regions := []struct {
		name     string
		from, to int
	}{
		{"ad", 0, adLength},
		{"alpha", adLength, adLength + groupElementLength},
		{"beta", adLength + groupElementLength, hdr - macLength},
		{"gamma", hdr - macLength, hdr},
	}
	var res Result
	for _, reg := range regions {
		for _, off := range []int{reg.from, (reg.from + reg.to) / 2, reg.to - 1} {
			for _, bit := range []byte{0x01, 0x80} {
				pkt := bytes.Clone(orig)
				pkt[off] ^= bit
				tampered := bytes.Clone(pkt)
				err := UnwrapInto(geo, nodes[0].key, pkt, &res)
				if err != ErrInvalidPacket {
					// Flipping the top bit of alpha's last byte gives the
					// same u-coordinate (RFC 7748 masks it), which then fails
					// the MAC over the changed bytes anyway.
					t.Fatalf("%s byte %d bit %#x: err %v, want ErrInvalidPacket", reg.name, off, bit, err)
				}
				if !bytes.Equal(pkt, tampered) || !reflect.DeepEqual(res, Result{}) {
					t.Fatalf("%s byte %d: failed unwrap modified its input", reg.name, off)
				}
			}
		}
	}
	// A flipped payload byte passes every inner hop (they cannot see it)
	// and is caught at the last hop by the zero tag.
	for _, off := range []int{hdr, hdr + PayloadTagLength, len(orig) - 1} {
		pkt := bytes.Clone(orig)
		pkt[off] ^= 0x04
		for i := range 4 {
			if err := UnwrapInto(geo, nodes[i].key, pkt, &res); err != nil {
				t.Fatalf("payload byte %d: hop %d: %v", off, i, err)
			}
		}
		if err := UnwrapInto(geo, nodes[4].key, pkt, &res); err != ErrInvalidPacket {
			t.Fatalf("payload byte %d: last hop: %v", off, err)
		}
	}
	// The wrong key fails the MAC and leaves the packet alone.
	pkt := bytes.Clone(orig)
	if err := UnwrapInto(geo, nodes[1].key, pkt, &res); err != ErrInvalidPacket || !bytes.Equal(pkt, orig) {
		t.Fatalf("wrong key: %v", err)
	}
	if err := UnwrapInto(geo, nodes[0].key, pkt, &res); err != nil {
		t.Fatalf("right key after wrong key: %v", err)
	}
}

// craftPacket builds a one- or two-hop packet whose hop 0 commands are
// given raw, with a valid MAC.
func craftPacket(t *testing.T, geo *Geometry, nodes []testNode, cmds0 []Command, last []Command, tag byte) []byte {
	t.Helper()
	path := []PathHop{{ID: nodes[0].id, PublicKey: nodes[0].key.Public(), Commands: cmds0}}
	if last != nil {
		path = append(path, PathHop{ID: nodes[1].id, PublicKey: nodes[1].key.Public(), Commands: last})
	}
	var x [32]byte
	x[0] = 7
	var hk headerKeys
	if err := deriveHops(&x, path, &hk, false); err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, geo.PacketLength())
	assembleHeader(geo, path, &hk, make([]byte, (geo.NrHops()-len(path))*perHopRoutingInfoLength), pkt[:geo.HeaderLength()])
	body := pkt[geo.HeaderLength():]
	body[0] = tag
	for i := len(path) - 1; i >= 0; i-- {
		sprpEncrypt(&hk.hop[i].sprpKey, &hk.hop[i].iv, body)
	}
	return pkt
}

// TestOneError checks that every kind of failure gives the identical error
// value, whose text says nothing about the cause.
func TestOneError(t *testing.T) {
	geo, nodes, orig := tamperSetup(t, 9)
	var rcpt Recipient
	rcpt.ID[0] = 1
	hdr := geo.HeaderLength()
	flip := func(off int) []byte { p := bytes.Clone(orig); p[off] ^= 1; return p }
	lowOrder := bytes.Clone(orig)
	clear(lowOrder[adLength : adLength+groupElementLength])
	cases := map[string][]byte{
		"nil":             nil,
		"empty":           {},
		"short":           orig[:len(orig)-1],
		"long":            append(bytes.Clone(orig), 0),
		"header only":     orig[:hdr],
		"bad ad":          flip(1),
		"low-order alpha": lowOrder,
		"bad alpha":       flip(adLength + 3),
		"bad beta":        flip(hdr - macLength - 1),
		"bad mac":         flip(hdr - 1),
		"unknown tag":     craftPacket(t, geo, nodes, []Command{rawCommand{0x7f}}, nil, 0),
		"junk after null": craftPacket(t, geo, nodes, []Command{rcpt, rawCommand{0, 0, 1}}, nil, 0),
		"truncated":       craftPacket(t, geo, nodes, []Command{rawCommand(NextNodeHop{}.appendTo(nil)), NodeDelay{1}, rawCommand{tagSURBReply, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}}, nil, 0),
		"no recipient":    craftPacket(t, geo, nodes, []Command{}, nil, 0),
		"two recipients":  craftPacket(t, geo, nodes, []Command{rcpt, rcpt}, nil, 0),
		"delay at last":   craftPacket(t, geo, nodes, []Command{rcpt, NodeDelay{5}}, nil, 0),
		"surb no rcpt":    craftPacket(t, geo, nodes, []Command{SURBReply{}}, nil, 0),
		"two surbs":       craftPacket(t, geo, nodes, []Command{rcpt, SURBReply{}, SURBReply{}}, nil, 0),
		"next and surb":   craftPacket(t, geo, nodes, []Command{SURBReply{}}, []Command{rcpt}, 0),
		"two delays":      craftPacket(t, geo, nodes, []Command{NodeDelay{1}, NodeDelay{2}}, []Command{rcpt}, 0),
		"bad tag":         craftPacket(t, geo, nodes, []Command{rcpt}, nil, 1),
	}
	// The crafted packets are otherwise well formed.
	if _, err := Unwrap(geo, nodes[0].key, craftPacket(t, geo, nodes, []Command{rcpt}, nil, 0)); err != nil {
		t.Fatalf("control packet: %v", err)
	}
	if _, err := Unwrap(geo, nodes[0].key, craftPacket(t, geo, nodes, nil, []Command{rcpt}, 0)); err != nil {
		t.Fatalf("control forward packet: %v", err)
	}
	for name, pkt := range cases {
		res, err := Unwrap(geo, nodes[0].key, pkt)
		if err != ErrInvalidPacket || res != nil {
			t.Errorf("%s: %v, %v; want nil, ErrInvalidPacket", name, res, err)
		}
		if err != nil && err.Error() != "sphinx: invalid packet" {
			t.Errorf("%s: error text %q", name, err)
		}
	}
	if !errors.Is(ErrInvalidPacket, ErrInvalidPacket) {
		t.Fatal("unreachable")
	}
}

func TestDecryptSURBPayloadErrors(t *testing.T) {
	geo := mustGeometry(t, 3, 100, false)
	r := testRand(10)
	nodes := newTestNodes(t, r, 3)
	surb, surbKeys, err := NewSURB(r, geo, testPath(r, nodes, true))
	if err != nil {
		t.Fatal(err)
	}
	pkt, _, err := NewPacketFromSURB(geo, surb, []byte("reply"))
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	for i := range nodes {
		if err := UnwrapInto(geo, nodes[i].key, pkt, &res); err != nil {
			t.Fatal(err)
		}
	}
	payload := bytes.Clone(res.Payload)
	if _, err := DecryptSURBPayload(geo, payload, surbKeys); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(payload, res.Payload) {
		t.Fatal("DecryptSURBPayload modified its input")
	}
	bad := bytes.Clone(payload)
	bad[40] ^= 1
	if _, err := DecryptSURBPayload(geo, bad, surbKeys); err != ErrInvalidPacket {
		t.Errorf("tampered reply: %v", err)
	}
	if _, err := DecryptSURBPayload(geo, payload[1:], surbKeys); err != ErrInvalidPacket {
		t.Errorf("short reply: %v", err)
	}
	wrong := bytes.Clone(surbKeys)
	wrong[0] ^= 1
	if _, err := DecryptSURBPayload(geo, payload, wrong); err != ErrInvalidPacket {
		t.Errorf("wrong keys: %v", err)
	}
	for _, k := range [][]byte{nil, surbKeys[:64], surbKeys[1:], append(bytes.Clone(surbKeys), make([]byte, 64)...)} {
		if _, err := DecryptSURBPayload(geo, payload, k); err == nil || err == ErrInvalidPacket {
			t.Errorf("%d-byte keys: %v", len(k), err)
		}
	}
}

func TestZeroGeometryPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	_, _ = Unwrap(&Geometry{}, nil, nil)
}

// setFilter is the obvious replay filter.
type setFilter struct {
	seen map[[ReplayTagLength]byte]bool
	err  error
}

func (f *setFilter) TestAndSet(_ uint64, tag *[ReplayTagLength]byte) (bool, error) {
	if f.err != nil {
		return false, f.err
	}
	if f.seen[*tag] {
		return true, nil
	}
	f.seen[*tag] = true
	return false, nil
}

// TestUnwrapCheckedReplay: a replay is refused right after the MAC, with
// the packet untouched; a refusing filter refuses the packet; a packet
// that is not for the key never reaches the filter.
func TestUnwrapCheckedReplay(t *testing.T) {
	geo := DefaultGeometry()
	r := testRand(77)
	nodes := newTestNodes(t, r, 3)
	pkt, err := NewPacket(r, geo, testPath(r, nodes, false), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	orig := bytes.Clone(pkt)
	f := &setFilter{seen: map[[ReplayTagLength]byte]bool{}}
	var res Result
	if err := UnwrapChecked(geo, nodes[0].key, bytes.Clone(orig), &res, f, 7); err != nil {
		t.Fatalf("first: %v", err)
	}
	again := bytes.Clone(orig)
	if err := UnwrapChecked(geo, nodes[0].key, again, &res, f, 7); err != ErrReplay {
		t.Fatalf("replay: %v", err)
	}
	if !bytes.Equal(again, orig) {
		t.Fatal("a replayed packet was modified")
	}
	if err := UnwrapChecked(geo, nodes[1].key, bytes.Clone(orig), &res, f, 7); err != ErrInvalidPacket || len(f.seen) != 1 {
		t.Fatalf("wrong key: %v, %d tags recorded", err, len(f.seen))
	}
	refusing := &setFilter{err: errors.New("full")}
	if err := UnwrapChecked(geo, nodes[0].key, bytes.Clone(orig), &res, refusing, 7); err != ErrReplayRefused {
		t.Fatalf("refusing filter: %v", err)
	}
}
