package sphinx

import (
	"bytes"
	"io"
	"testing"

	"github.com/cloudflare/circl/dh/x25519"
)

// The Unwrap budget (DESIGN §8) is 1.15 × (2 X25519 ladders + the
// symmetric work). BenchmarkX25519Ladder is the ladder; the symmetric
// parts are BenchmarkKDF, BenchmarkHeaderMAC, BenchmarkHeaderStream,
// BenchmarkPayloadSPRP and BenchmarkBlindingScalar.

func BenchmarkX25519Ladder(b *testing.B) {
	var sk, pk, out x25519.Key
	_, _ = io.ReadFull(testRand(30), sk[:])
	x25519.KeyGen(&pk, &sk)
	for b.Loop() {
		x25519.Shared(&out, &sk, &pk)
	}
}

// benchPacket is a 5-hop packet in the default geometry.
func benchPacket(b *testing.B) (*Geometry, []testNode, []byte) {
	geo := DefaultGeometry()
	r := testRand(31)
	nodes := newTestNodes(b, r, 5)
	payload := make([]byte, geo.ForwardPayloadLength())
	pkt, err := NewPacket(r, geo, testPath(r, nodes, false), payload)
	if err != nil {
		b.Fatal(err)
	}
	return geo, nodes, pkt
}

// BenchmarkUnwrap is one hop (the first, which forwards) of a 5-hop
// packet in the default geometry. Each iteration copies the packet back
// (about 3 KB), which Unwrap modifies in place.
func BenchmarkUnwrap(b *testing.B) {
	geo, nodes, orig := benchPacket(b)
	pkt := make([]byte, len(orig))
	var res Result
	b.SetBytes(int64(len(orig)))
	b.ReportAllocs()
	for b.Loop() {
		copy(pkt, orig)
		if err := UnwrapInto(geo, nodes[0].key, pkt, &res); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnwrapAlloc is Unwrap allocating its Result.
func BenchmarkUnwrapAlloc(b *testing.B) {
	geo, nodes, orig := benchPacket(b)
	pkt := make([]byte, len(orig))
	b.ReportAllocs()
	for b.Loop() {
		copy(pkt, orig)
		if _, err := Unwrap(geo, nodes[0].key, pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnwrapDeliver is the last hop: one ladder, no blinding.
func BenchmarkUnwrapDeliver(b *testing.B) {
	geo, nodes, orig := benchPacket(b)
	for i := range 4 {
		if err := UnwrapInto(geo, nodes[i].key, orig, new(Result)); err != nil {
			b.Fatal(err)
		}
	}
	pkt := make([]byte, len(orig))
	var res Result
	b.ReportAllocs()
	for b.Loop() {
		copy(pkt, orig)
		if err := UnwrapInto(geo, nodes[4].key, pkt, &res); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnwrapBadMAC is a packet for another key: one ladder, one
// HKDF block and the MAC, then rejection.
func BenchmarkUnwrapBadMAC(b *testing.B) {
	geo, nodes, pkt := benchPacket(b)
	var res Result
	b.ReportAllocs()
	for b.Loop() {
		if err := UnwrapInto(geo, nodes[1].key, pkt, &res); err != ErrInvalidPacket {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewPacket(b *testing.B) {
	geo := DefaultGeometry()
	r := testRand(32)
	nodes := newTestNodes(b, r, 5)
	path := testPath(r, nodes, false)
	payload := make([]byte, geo.ForwardPayloadLength())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewPacket(r, geo, path, payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewSURB(b *testing.B) {
	geo := DefaultGeometry()
	r := testRand(33)
	nodes := newTestNodes(b, r, 5)
	path := testPath(r, nodes, true)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := NewSURB(r, geo, path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKDF(b *testing.B) {
	var ss [32]byte
	var k hopKeys
	b.ReportAllocs()
	for b.Loop() {
		k.derive(&ss)
	}
}

func BenchmarkHeaderMAC(b *testing.B) {
	geo := DefaultGeometry()
	hdr := make([]byte, geo.HeaderLength()-macLength)
	var key, out [32]byte
	b.ReportAllocs()
	for b.Loop() {
		headerMAC(&out, &key, hdr)
	}
}

func BenchmarkHeaderStream(b *testing.B) {
	geo := DefaultGeometry()
	beta := make([]byte, geo.RoutingInfoLength()+perHopRoutingInfoLength)
	var key [32]byte
	var iv [16]byte
	b.ReportAllocs()
	for b.Loop() {
		newStream(&key, &iv).XORKeyStream(beta, beta)
	}
}

func BenchmarkPayloadSPRP(b *testing.B) {
	geo := DefaultGeometry()
	payload := make([]byte, geo.PayloadLength())
	var key [sprpKeyLength]byte
	var iv [sprpIVLength]byte
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		sprpDecrypt(&key, &iv, payload)
	}
}

func BenchmarkBlindingScalar(b *testing.B) {
	var seed, out [32]byte
	b.ReportAllocs()
	for b.Loop() {
		blindingScalar(&out, &seed)
	}
}

func BenchmarkX25519BaseLadder(b *testing.B) {
	var sk, pk x25519.Key
	_, _ = io.ReadFull(testRand(34), sk[:])
	for b.Loop() {
		x25519.KeyGen(&pk, &sk)
	}
}

// BenchmarkUnwrapReplay: a replayed packet is refused after one ladder,
// before the payload and the blinding.
func BenchmarkUnwrapReplay(b *testing.B) {
	geo := DefaultGeometry()
	r := testRand(78)
	nodes := newTestNodes(b, r, 5)
	pkt, err := NewPacket(r, geo, testPath(r, nodes, false), []byte("x"))
	if err != nil {
		b.Fatal(err)
	}
	f := &setFilter{seen: map[[ReplayTagLength]byte]bool{}}
	var res Result
	if err := UnwrapChecked(geo, nodes[0].key, bytes.Clone(pkt), &res, f, 1); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := UnwrapChecked(geo, nodes[0].key, pkt, &res, f, 1); err != ErrReplay {
			b.Fatal(err)
		}
	}
}
