package sphinx

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

// vectorsDir finds ../shared/vectors relative to the repository root (the
// directory holding go.mod above the working directory). Without it the
// test fails under CI=true and is skipped otherwise.
func vectorsDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			missingVectors(t, "no go.mod above the working directory")
		}
		dir = parent
	}
	v := filepath.Join(dir, "..", "shared", "vectors")
	if _, err := os.Stat(v); err != nil {
		missingVectors(t, err.Error())
	}
	return v
}

// sphinxVectorsFile is CHORUS_SPHINX_VECTORS if set, else the Katzenpost
// vectors under ../shared/vectors.
func sphinxVectorsFile(t testing.TB) string {
	t.Helper()
	if f := os.Getenv("CHORUS_SPHINX_VECTORS"); f != "" {
		return f
	}
	return filepath.Join(vectorsDir(t), "katzenpost-sphinx", "sphinx_vectors.json")
}

func missingVectors(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("test vectors not found: %s", why)
	}
	t.Skipf("test vectors not found (%s); set CI=true to make this fatal", why)
}

// testRand returns a deterministic reader.
func testRand(seed uint64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// testNode is a node with its private key.
type testNode struct {
	id  [NodeIDLength]byte
	key *keys.SphinxPrivateKey
}

func newTestNodes(t testing.TB, r io.Reader, n int) []testNode {
	t.Helper()
	nodes := make([]testNode, n)
	for i := range nodes {
		if _, err := io.ReadFull(r, nodes[i].id[:]); err != nil {
			t.Fatal(err)
		}
		k, err := keys.GenerateSphinxKey(r)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i].key = k
	}
	return nodes
}

// testPath routes through nodes: NodeDelay on inner hops, Recipient (and
// SURBReply if surb) on the last.
func testPath(r io.Reader, nodes []testNode, surb bool) []PathHop {
	path := make([]PathHop, len(nodes))
	for i, n := range nodes {
		path[i] = PathHop{ID: n.id, PublicKey: n.key.Public()}
		if i < len(nodes)-1 {
			var d [4]byte
			_, _ = io.ReadFull(r, d[:])
			path[i].Commands = []Command{NodeDelay{Delay: binary.BigEndian.Uint32(d[:]) % 100000}}
			continue
		}
		var rcpt Recipient
		_, _ = io.ReadFull(r, rcpt.ID[:])
		path[i].Commands = []Command{rcpt}
		if surb {
			var s SURBReply
			_, _ = io.ReadFull(r, s.ID[:])
			path[i].Commands = append(path[i].Commands, s)
		}
	}
	return path
}

func mustGeometry(t testing.TB, hops, user int, withSURB bool) *Geometry {
	t.Helper()
	g, err := NewGeometry(hops, user, withSURB)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// rawCommand is a test-only Command that encodes to arbitrary bytes, to
// build packets with malformed routing commands.
type rawCommand []byte

func (c rawCommand) appendTo(b []byte) []byte { return append(b, c...) }
func (c rawCommand) encodedLen() int          { return len(c) }
