package link

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/frames.golden")

// goldenPacketLength keeps the golden frames short enough to read.
const goldenPacketLength = 40

type namedCommand struct {
	name string
	cmd  Command
}

// sampleCommands returns every command kind, with distinctive values, for a
// packet length.
func sampleCommands(packetLength int) []namedCommand {
	fill := func(n int, b byte) []byte {
		out := make([]byte, n)
		for i := range out {
			out[i] = b + byte(i)
		}
		return out
	}
	return []namedCommand{
		{"SendPacket", SendPacket{Packet: fill(packetLength, 0xa0)}},
		{"RetrieveMessage", RetrieveMessage{Seq: 0x0102030405060708}},
		{"Message", Message{Seq: 7, QueueHint: 3, Payload: fill(packetLength/2, 0x10)}},
		{"MessageFull", Message{Seq: 8, Payload: fill(packetLength, 0x30)}},
		{"MessageEmpty", Message{Seq: 9, Empty: true, QueueHint: 0}},
		{"MessageAck", MessageAck{Seq: 0xfffffffffffffffe}},
		{"GetConsensus", GetConsensus{Epoch: 123456}},
		{"Consensus", Consensus{Epoch: 123456, Status: ConsensusOK, Chunk: 2, Chunks: 5, Data: fill(max(packetLength-3, 0), 0x50)}},
		{"ConsensusNotFound", Consensus{Epoch: 123457, Status: ConsensusNotFound}},
		{"ConsensusGone", Consensus{Epoch: 1, Status: ConsensusGone}},
		{"NoOp", NoOp{}},
		{"Disconnect", Disconnect{}},
	}
}

func encodeOrFail(t testing.TB, cmd Command, packetLength int) []byte {
	t.Helper()
	b := make([]byte, FrameLength(packetLength))
	if err := encodeFrame(b, cmd, packetLength); err != nil {
		t.Fatalf("encode %T: %v", cmd, err)
	}
	return b
}

// equalCommands compares commands, treating nil and empty slices alike.
func equalCommands(a, b Command) bool {
	norm := func(c Command) Command {
		switch v := c.(type) {
		case Message:
			if len(v.Payload) == 0 {
				v.Payload = nil
			}
			return v
		case Consensus:
			if len(v.Data) == 0 {
				v.Data = nil
			}
			return v
		}
		return c
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func TestFrameRoundTrip(t *testing.T) {
	for _, pl := range []int{1, goldenPacketLength, 3082, MaxPacketLength} {
		for _, nc := range sampleCommands(pl) {
			b := encodeOrFail(t, nc.cmd, pl)
			got, err := decodeFrame(b, pl)
			if err != nil {
				t.Fatalf("packet length %d: decode %s: %v", pl, nc.name, err)
			}
			if !equalCommands(got, nc.cmd) {
				t.Fatalf("packet length %d: %s: got %+v, want %+v", pl, nc.name, got, nc.cmd)
			}
		}
	}
}

func TestFrameGolden(t *testing.T) {
	var out strings.Builder
	fmt.Fprintf(&out, "# Plaintext link frames, packet length %d (frame length %d), hex.\n", goldenPacketLength, FrameLength(goldenPacketLength))
	fmt.Fprintf(&out, "# Regenerate with: go test ./mix/link -run TestFrameGolden -update\n")
	for _, nc := range sampleCommands(goldenPacketLength) {
		b := encodeOrFail(t, nc.cmd, goldenPacketLength)
		fmt.Fprintf(&out, "%s %s\n", nc.name, hex.EncodeToString(b))
	}
	path := filepath.Join("testdata", "frames.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if out.String() != string(want) {
		t.Errorf("frames differ from %s:\n got:\n%s\nwant:\n%s", path, out.String(), want)
	}
	// And the golden frames decode to the same commands.
	for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, h, _ := strings.Cut(line, " ")
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := decodeFrame(b, goldenPacketLength); err != nil {
			t.Errorf("golden %s does not decode: %v", name, err)
		}
	}
}

// TestFrameStrict: every byte that is not a field must be zero, every field
// must be consistent, and the frame must be exactly one frame long.
func TestFrameStrict(t *testing.T) {
	const pl = goldenPacketLength
	for _, nc := range sampleCommands(pl) {
		good := encodeOrFail(t, nc.cmd, pl)
		// Wrong lengths.
		if _, err := decodeFrame(good[:len(good)-1], pl); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: short frame accepted", nc.name)
		}
		if _, err := decodeFrame(append(bytes.Clone(good), 0), pl); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: long frame accepted", nc.name)
		}
		// Every single-byte change either is rejected or decodes to a
		// command that re-encodes to exactly the changed bytes (it
		// changed a field's value, not the encoding's validity).
		for i := range good {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				b := bytes.Clone(good)
				b[i] ^= x
				cmd, err := decodeFrame(b, pl)
				if err != nil {
					continue
				}
				again := encodeOrFail(t, cmd, pl)
				if !bytes.Equal(again, b) {
					t.Fatalf("%s: byte %d ^%#x decodes to %+v, which re-encodes differently", nc.name, i, x, cmd)
				}
			}
		}
	}
	bad := map[string][]byte{}
	frame := func(f func(b []byte)) []byte {
		b := make([]byte, FrameLength(pl))
		f(b)
		return b
	}
	bad["zero command"] = frame(func(b []byte) {})
	bad["unknown command"] = frame(func(b []byte) { b[0] = 9 })
	bad["noop with padding"] = frame(func(b []byte) { b[0] = cmdNoOp; b[len(b)-1] = 1 })
	bad["noop with header bytes"] = frame(func(b []byte) { b[0] = cmdNoOp; b[5] = 1 })
	bad["message unknown flag"] = frame(func(b []byte) { b[0] = cmdMessage; b[1] = 2 })
	bad["message empty with length"] = frame(func(b []byte) { b[0] = cmdMessage; b[1] = flagEmpty; b[17] = 1; b[HeaderLength] = 1 })
	bad["message too long"] = frame(func(b []byte) { b[0] = cmdMessage; b[16] = 1 })
	bad["message bytes after payload"] = frame(func(b []byte) { b[0] = cmdMessage; b[17] = 2; b[HeaderLength+2] = 1 })
	bad["consensus zero chunks"] = frame(func(b []byte) { b[0] = cmdConsensus })
	bad["consensus chunk beyond count"] = frame(func(b []byte) { b[0] = cmdConsensus; b[13] = 2; b[17] = 2 })
	bad["consensus error with data"] = frame(func(b []byte) { b[0] = cmdConsensus; b[1] = byte(ConsensusNotFound); b[21] = 1; b[HeaderLength] = 1 })
	bad["consensus unknown status"] = frame(func(b []byte) { b[0] = cmdConsensus; b[1] = 7 })
	bad["consensus too long"] = frame(func(b []byte) { b[0] = cmdConsensus; b[17] = 1; b[20] = 1 })
	for name, b := range bad {
		if cmd, err := decodeFrame(b, pl); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: accepted as %+v", name, cmd)
		}
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	const pl = goldenPacketLength
	for _, cmd := range []Command{
		SendPacket{Packet: make([]byte, pl-1)},
		SendPacket{Packet: make([]byte, pl+1)},
		Message{Payload: make([]byte, pl+1)},
		Message{Empty: true, Payload: []byte{1}},
		Consensus{Status: ConsensusOK, Chunks: 0},
		Consensus{Status: ConsensusOK, Chunk: 1, Chunks: 1},
		Consensus{Status: ConsensusOK, Chunks: 1, Data: make([]byte, pl+1)},
		Consensus{Status: ConsensusNotFound, Chunks: 1},
		Consensus{Status: 9},
		nil,
	} {
		b := make([]byte, FrameLength(pl))
		if err := encodeFrame(b, cmd, pl); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%+v: got %v, want ErrInvalidCommand", cmd, err)
		}
	}
}

// FuzzDecodeFrame: decoding never panics, and whatever decodes re-encodes
// to exactly the input (the encoding is canonical).
func FuzzDecodeFrame(f *testing.F) {
	for _, pl := range []int{1, 8, goldenPacketLength} {
		for _, nc := range sampleCommands(pl) {
			f.Add(encodeOrFail(f, nc.cmd, pl))
		}
	}
	f.Add([]byte{})
	f.Add(make([]byte, HeaderLength))
	f.Fuzz(func(t *testing.T, b []byte) {
		pl := len(b) - HeaderLength
		cmd, err := decodeFrame(b, pl)
		if err != nil {
			if cmd != nil {
				t.Fatal("error with a command")
			}
			return
		}
		again := make([]byte, len(b))
		if err := encodeFrame(again, cmd, pl); err != nil {
			t.Fatalf("decoded %+v does not encode: %v", cmd, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip differs:\n in  %x\n out %x", b, again)
		}
	})
}
