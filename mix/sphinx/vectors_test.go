package sphinx

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/cloudflare/circl/dh/x25519"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

type vectorNode struct {
	ID         string
	PrivateKey string
}

type vectorHop struct {
	ID        string
	PublicKey string
	Commands  []string
}

type sphinxVector struct {
	Nodes    []vectorNode
	Path     []vectorHop
	Packets  []string
	Payload  string
	Surb     string
	SurbKeys string
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vectorHops is the number of hops of the Katzenpost vectors' geometry.
const vectorHops = 5

// vectorGeometry derives a vector's geometry from the vector itself: 5
// hops, the user payload length from Payload.
//
// Katzenpost generated its SURB vectors with a SURB-room geometry, but its
// NewPacketFromSURB ignores the geometry's payload length and builds a
// packet around the 103-byte reply as given, so those packets are 611
// bytes too: header + tag + 103, the geometry without SURB room. (With SURB
// room the packets would be 476 + 32 + 2 + 572 + 103 = 1185 bytes.) The
// SURB length does not depend on that choice. The test checks both facts.
func vectorGeometry(t *testing.T, v *sphinxVector) *Geometry {
	t.Helper()
	payload := unhex(t, v.Payload)
	geo := mustGeometry(t, vectorHops, len(payload), false)
	if got, want := len(unhex(t, v.Packets[0])), geo.PacketLength(); got != want {
		t.Fatalf("packet is %d bytes, geometry %v gives %d", got, geo, want)
	}
	if v.Surb != "" {
		withRoom := mustGeometry(t, vectorHops, len(payload), true)
		if withRoom.PacketLength() == geo.PacketLength() {
			t.Fatal("SURB-room geometry unexpectedly matches")
		}
		if got := len(unhex(t, v.Surb)); got != geo.SURBLength() || got != withRoom.SURBLength() {
			t.Fatalf("SURB is %d bytes, geometry gives %d", got, geo.SURBLength())
		}
	}
	return geo
}

func loadSphinxVectors(t *testing.T) []sphinxVector {
	t.Helper()
	b, err := os.ReadFile(sphinxVectorsFile(t))
	if err != nil {
		missingVectors(t, err.Error())
	}
	var vs []sphinxVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	return vs
}

func parseHexCommands(t *testing.T, hexCmds []string) []Command {
	t.Helper()
	var cmds []Command
	for _, h := range hexCmds {
		b := unhex(t, h)
		c, err := parseCommands(b)
		if err != nil || len(c) != 1 {
			t.Fatalf("command %s: %v (%d commands)", h, err, len(c))
		}
		if got := c[0].appendTo(nil); !bytes.Equal(got, b) {
			t.Fatalf("command %s re-encodes as %x", h, got)
		}
		cmds = append(cmds, c[0])
	}
	return cmds
}

// TestVectors reproduces every Katzenpost vector byte for byte: each hop's
// unwrap output and commands, the delivered payload, the SURB reply and its
// decryption, and then, from the keys the nodes derive, the header and
// payload that packet creation must have produced. (The sender's ephemeral
// key is not in the vectors and cannot be recovered, so the vectors check
// NewPacket and NewSURB from the shared secrets onwards; the accumulated
// blinding that computes those secrets is checked against Katzenpost's
// repeated blinding in TestAccumulatedBlinding.)
func TestVectors(t *testing.T) {
	vs := loadSphinxVectors(t)
	surbs := 0
	for vi := range vs {
		v := &vs[vi]
		if v.Surb != "" {
			surbs++
		}
		name := "forward"
		if v.Surb != "" {
			name = "surb"
		}
		t.Run(fmt.Sprintf("%d/%s-%d-hops", vi, name, len(v.Nodes)), func(t *testing.T) {
			checkVector(t, v)
		})
	}
	if os.Getenv("CHORUS_SPHINX_VECTORS") == "" && (len(vs) != 10 || surbs != 5) {
		t.Fatalf("%d vectors, %d with SURBs; want 10 and 5", len(vs), surbs)
	}
}

func checkVector(t *testing.T, v *sphinxVector) {
	geo := vectorGeometry(t, v)
	n := len(v.Nodes)
	if n < 1 || n != len(v.Path) || len(v.Packets) != n+1 || v.Packets[n] != "" {
		t.Fatalf("malformed vector: %d nodes, %d hops, %d packets", n, len(v.Path), len(v.Packets))
	}
	isSURB := v.Surb != ""
	payload := unhex(t, v.Payload)

	// The path, as a sender would have given it.
	nodeKeys := make([]*keys.SphinxPrivateKey, n)
	path := make([]PathHop, n)
	for i := range n {
		k, err := keys.NewSphinxPrivateKey(unhex(t, v.Nodes[i].PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		nodeKeys[i] = k
		pub := k.Public().Array()
		if !bytes.Equal(pub[:], unhex(t, v.Path[i].PublicKey)) {
			t.Fatalf("hop %d: public key does not match the private key", i)
		}
		if v.Nodes[i].ID != v.Path[i].ID {
			t.Fatalf("hop %d: node and path IDs differ", i)
		}
		path[i].PublicKey = k.Public()
		copy(path[i].ID[:], unhex(t, v.Path[i].ID))
		path[i].Commands = parseHexCommands(t, v.Path[i].Commands)
	}
	if err := checkPath(geo, path); err != nil {
		t.Fatalf("vector path rejected: %v", err)
	}

	// Unwrap hop by hop.
	var hk headerKeys
	pkt := unhex(t, v.Packets[0])
	var res Result
	for i := range n {
		alpha := append([]byte(nil), pkt[adLength:adLength+groupElementLength]...)
		copy(hk.alpha[i][:], alpha)
		var ss x25519.Key
		if !x25519.Shared(&ss, (*x25519.Key)(nodeKeys[i].Scalar()), (*x25519.Key)(alpha)) {
			t.Fatalf("hop %d: low-order alpha", i)
		}
		hk.hop[i].derive((*[32]byte)(&ss))

		if err := UnwrapInto(geo, nodeKeys[i], pkt, &res); err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if res.ReplayTag != sha512.Sum512_256(alpha) {
			t.Errorf("hop %d: replay tag mismatch", i)
		}
		got, err := parseCommands(res.commands[:])
		if err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if i < n-1 {
			next := unhex(t, v.Packets[i+1])
			if !bytes.Equal(pkt, next) {
				t.Fatalf("hop %d: forwarded packet differs from Packets[%d]", i, i+1)
			}
			if res.Action != Forward || res.Payload != nil {
				t.Fatalf("hop %d: action %v, want forward", i, res.Action)
			}
			if !bytes.Equal(res.NextHop[:], path[i+1].ID[:]) {
				t.Errorf("hop %d: next hop mismatch", i)
			}
			want := append([]Command(nil), path[i].Commands...)
			var nh NextNodeHop
			nh.ID = path[i+1].ID
			copy(nh.MAC[:], next[geo.HeaderLength()-macLength:])
			want = append(want, nh)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("hop %d: commands %v, want %v", i, got, want)
			}
			if d := path[i].Commands[0].(NodeDelay).Delay; res.Delay != time.Duration(d)*time.Millisecond {
				t.Errorf("hop %d: delay %v, want %d ms", i, res.Delay, d)
			}
			continue
		}
		if res.Action != Deliver {
			t.Fatalf("last hop: action %v, want deliver", res.Action)
		}
		if !reflect.DeepEqual(got, path[i].Commands) {
			t.Errorf("last hop: commands %v, want %v", got, path[i].Commands)
		}
		if !bytes.Equal(res.Recipient[:], unhex(t, v.Path[i].Commands[0])[1:]) {
			t.Errorf("last hop: recipient mismatch")
		}
		if !isSURB {
			if res.IsSURBReply || !bytes.Equal(res.Payload, payload) {
				t.Fatalf("last hop: payload mismatch")
			}
			continue
		}
		if !res.IsSURBReply || !bytes.Equal(res.SURBID[:], unhex(t, v.Path[i].Commands[1])[1:]) {
			t.Fatalf("last hop: SURB reply not reported")
		}
		if len(res.Payload) != geo.PayloadLength() {
			t.Fatalf("last hop: SURB reply payload of %d bytes", len(res.Payload))
		}
		surbKeys := unhex(t, v.SurbKeys)
		plain, err := DecryptSURBPayload(geo, res.Payload, surbKeys)
		if err != nil {
			t.Fatalf("DecryptSURBPayload: %v", err)
		}
		if !bytes.Equal(plain, payload) {
			t.Fatalf("SURB reply payload mismatch")
		}
	}

	// The routing padding of a short path: after the last hop's unwrap,
	// the (shifted, decrypted) beta starts with it.
	riOff := adLength + groupElementLength
	pad := append([]byte(nil), pkt[riOff:riOff+(vectorHops-n)*perHopRoutingInfoLength]...)

	// Rebuild the header from the derived keys.
	want := unhex(t, v.Packets[0])
	hdrLen := geo.HeaderLength()
	hdr := make([]byte, hdrLen)
	assembleHeader(geo, path, &hk, pad, hdr)
	if !bytes.Equal(hdr, want[:hdrLen]) {
		t.Fatalf("rebuilt header differs from Packets[0]")
	}

	if !isSURB {
		// The payload NewPacket would have produced.
		body := make([]byte, geo.PayloadLength())
		copy(body[PayloadTagLength:], payload)
		for i := n - 1; i >= 0; i-- {
			sprpEncrypt(&hk.hop[i].sprpKey, &hk.hop[i].iv, body)
		}
		if !bytes.Equal(body, want[hdrLen:]) {
			t.Fatalf("rebuilt payload differs from Packets[0]")
		}
		return
	}

	// SURB layout: header | first hop | payload key; SURB keys: each
	// hop's (key, nonce), last hop first, then the SURB's payload key.
	surb := unhex(t, v.Surb)
	surbKeys := unhex(t, v.SurbKeys)
	if !bytes.Equal(surb[:hdrLen], hdr) {
		t.Fatal("SURB header differs")
	}
	if !bytes.Equal(surb[hdrLen:hdrLen+NodeIDLength], path[0].ID[:]) {
		t.Fatal("SURB first hop differs")
	}
	if len(surbKeys) != geo.SURBKeysLength(n) {
		t.Fatalf("SURB keys of %d bytes, want %d", len(surbKeys), geo.SURBKeysLength(n))
	}
	var wantKeys []byte
	for i := n - 1; i >= 0; i-- {
		wantKeys = append(wantKeys, hk.hop[i].sprpKey[:]...)
		wantKeys = append(wantKeys, hk.hop[i].iv[:]...)
	}
	wantKeys = append(wantKeys, surb[hdrLen+NodeIDLength:]...)
	if !bytes.Equal(surbKeys, wantKeys) {
		t.Fatal("SURB keys layout differs")
	}
	// The reply packet is deterministic: rebuild it exactly.
	reply, firstHop, err := NewPacketFromSURB(geo, surb, payload)
	if err != nil {
		t.Fatal(err)
	}
	if firstHop != path[0].ID {
		t.Fatal("NewPacketFromSURB: first hop mismatch")
	}
	if !bytes.Equal(reply, want) {
		t.Fatal("NewPacketFromSURB differs from Packets[0]")
	}
}

type commandVector struct {
	NextHopID        string
	NextHopMAC       string
	NextHopCmdWant   string
	RecipientID      string
	RecipientCmdWant string
	SURBReplyID      string
	SURBReplyCmdWant string
	NodeDelay        uint32
	NodeDelayCmdWant string
}

func TestCommandVectors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(vectorsDir(t), "katzenpost-sphinx", "sphinx_commands_vectors.json"))
	if err != nil {
		missingVectors(t, err.Error())
	}
	var v commandVector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var nh NextNodeHop
	copy(nh.ID[:], unhex(t, v.NextHopID))
	copy(nh.MAC[:], unhex(t, v.NextHopMAC))
	var r Recipient
	copy(r.ID[:], unhex(t, v.RecipientID))
	var s SURBReply
	copy(s.ID[:], unhex(t, v.SURBReplyID))
	cases := []struct {
		cmd  Command
		want string
	}{
		{nh, v.NextHopCmdWant},
		{r, v.RecipientCmdWant},
		{s, v.SURBReplyCmdWant},
		{NodeDelay{Delay: v.NodeDelay}, v.NodeDelayCmdWant},
	}
	for _, c := range cases {
		want := unhex(t, c.want)
		got := c.cmd.appendTo(nil)
		if !bytes.Equal(got, want) || c.cmd.encodedLen() != len(want) {
			t.Errorf("%T: encodes as %x, want %x", c.cmd, got, want)
		}
		dec, err := parseCommands(want)
		if err != nil || len(dec) != 1 || !reflect.DeepEqual(dec[0], c.cmd) {
			t.Errorf("%T: decodes as %v, %v", c.cmd, dec, err)
		}
		// Padded with zeros to a routing block, it decodes the same.
		block := make([]byte, perHopRoutingInfoLength)
		copy(block, want)
		if dec, err := parseCommands(block); err != nil || !reflect.DeepEqual(dec, []Command{c.cmd}) {
			t.Errorf("%T in a padded block: %v, %v", c.cmd, dec, err)
		}
	}
}
