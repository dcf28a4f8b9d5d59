package sphinx

import (
	"bytes"
	"testing"

	"github.com/cloudflare/circl/dh/x25519"
)

// fuzzGeometry is small so that the fuzzer's mutations hit every field.
func fuzzSetup(f *testing.F) (*Geometry, []testNode, [][]byte) {
	geo, err := NewGeometry(3, 40, false)
	if err != nil {
		f.Fatal(err)
	}
	r := testRand(40)
	nodes := newTestNodes(f, r, 3)
	var seeds [][]byte
	for n := 1; n <= 3; n++ {
		pkt, err := NewPacket(r, geo, testPath(r, nodes[:n], false), []byte("fuzz"))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, pkt)
		surb, _, err := NewSURB(r, geo, testPath(r, nodes[:n], true))
		if err != nil {
			f.Fatal(err)
		}
		reply, _, err := NewPacketFromSURB(geo, surb, []byte("reply"))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, reply)
	}
	return geo, nodes, seeds
}

// FuzzUnwrap feeds Unwrap arbitrary bytes and mutated valid packets. In
// the first mode the input is the packet as is; random bytes almost never
// pass the MAC, so in the second mode the harness, which knows hop 0's
// key, re-MACs the mutated header so that the fuzzer reaches the routing
// commands, the payload decryption and the tag check. Unwrap must never
// panic, must fail only with ErrInvalidPacket, must leave a packet whose
// MAC fails unchanged, and must return a consistent Result.
func FuzzUnwrap(f *testing.F) {
	geo, nodes, seeds := fuzzSetup(f)
	for _, s := range seeds {
		f.Add(false, s)
		f.Add(true, s)
	}
	f.Add(false, []byte{})
	f.Add(true, make([]byte, geo.PacketLength()))
	key := nodes[0].key
	f.Fuzz(func(t *testing.T, remac bool, pkt []byte) {
		if remac {
			// Fit the input to a packet and give it a valid MAC.
			pkt = append(pkt, make([]byte, max(0, geo.PacketLength()-len(pkt)))...)[:geo.PacketLength()]
			pkt[0], pkt[1] = 0, 0
			var ss x25519.Key
			if x25519.Shared(&ss, (*x25519.Key)(key.Scalar()), (*x25519.Key)(pkt[adLength:adLength+groupElementLength])) {
				var d kdf
				d.init((*[32]byte)(&ss))
				macOff := geo.HeaderLength() - macLength
				var mac [32]byte
				headerMAC(&mac, d.next(), pkt[:macOff])
				copy(pkt[macOff:], mac[:])
			}
		}
		orig := bytes.Clone(pkt)
		res, err := Unwrap(geo, key, pkt)
		if err != nil {
			if err != ErrInvalidPacket || res != nil {
				t.Fatalf("Unwrap: %v, %v", res, err)
			}
			return
		}
		if len(orig) != geo.PacketLength() || orig[0] != 0 || orig[1] != 0 {
			t.Fatal("Unwrap accepted a malformed packet")
		}
		switch res.Action {
		case Forward:
			if res.Payload != nil || res.IsSURBReply {
				t.Fatalf("forward result %+v", res)
			}
		case Deliver:
			want := geo.ForwardPayloadLength()
			if res.IsSURBReply {
				want = geo.PayloadLength()
			}
			if len(res.Payload) != want {
				t.Fatalf("deliver payload of %d bytes, want %d", len(res.Payload), want)
			}
		default:
			t.Fatalf("action %v", res.Action)
		}
	})
}

// FuzzCommands checks the strict command decoder with a round-trip
// property: whatever decodes re-encodes, padded with zeros to the input's
// length, to exactly the input; and the unwrap-time decoder accepts
// nothing the strict decoder rejects.
func FuzzCommands(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{0, 0, 1})
	f.Add(NodeDelay{Delay: 1234}.appendTo(nil))
	f.Add(append(NodeDelay{Delay: 9}.appendTo(nil), NextNodeHop{}.appendTo(nil)...))
	f.Add(append(Recipient{ID: [32]byte{1}}.appendTo(nil), SURBReply{ID: [16]byte{2}}.appendTo(nil)...))
	f.Add(append(Recipient{}.appendTo(nil), make([]byte, 49)...))
	f.Add([]byte{tagNodeDelay, 1, 2})
	f.Add([]byte{0x42})
	f.Fuzz(func(t *testing.T, b []byte) {
		cmds, err := parseCommands(b)
		var h hopCommands
		hopOK := h.decodeHop(b)
		if err != nil {
			if cmds != nil {
				t.Fatal("failed parse returned commands")
			}
			if hopOK {
				t.Fatal("decodeHop accepted what parseCommands rejects")
			}
			return
		}
		enc := appendCommands(nil, cmds)
		if len(enc) > len(b) {
			t.Fatalf("re-encoding is longer than the input")
		}
		enc = append(enc, make([]byte, len(b)-len(enc))...)
		if !bytes.Equal(enc, b) {
			t.Fatalf("round trip: %x became %x", b, enc)
		}
		n := 0
		for _, c := range cmds {
			n += c.encodedLen()
		}
		if n != len(appendCommands(nil, cmds)) {
			t.Fatal("encodedLen disagrees with the encoding")
		}
	})
}
