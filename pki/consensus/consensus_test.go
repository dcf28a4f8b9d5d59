package consensus_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/consensus"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
	"golang.org/x/crypto/blake2b"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// net is a deterministic test network: authorities, nodes and votes are all
// derived from fixed names.
type net struct {
	t     testing.TB
	epoch uint64
	auths []*keys.IdentityPrivateKey
	cfg   consensus.Config
}

func newNet(t testing.TB, nAuth, threshold, layers, minPerLayer int, epoch uint64) *net {
	n := &net{t: t, epoch: epoch}
	for i := range nAuth {
		k := pkitest.Identity(fmt.Sprintf("authority-%d", i))
		n.auths = append(n.auths, k)
		n.cfg.Authorities = append(n.cfg.Authorities, k.Public())
	}
	n.cfg.Threshold, n.cfg.Layers, n.cfg.MinMixesPerLayer = threshold, layers, minPerLayer
	return n
}

// node makes a node whose port is derived from its name.
func (n *net) node(name string, role pki.Role) *pkitest.Node {
	h := blake2b.Sum256([]byte(name))
	return pkitest.NewNode(name, role, n.epoch, fmt.Sprintf("tcp://127.0.0.1:%d", 10000+int(h[0])<<6+int(h[1]>>2)))
}

func (n *net) mixes(prefix string, count int) []*pkitest.Node {
	var out []*pkitest.Node
	for i := range count {
		out = append(out, n.node(fmt.Sprintf("%s%d", prefix, i), pki.RoleMix))
	}
	return out
}

func (n *net) revealValue(i int) *pki.Reveal {
	v := blake2b.Sum256(fmt.Appendf(nil, "reveal %d %d", i, n.epoch))
	return &pki.Reveal{Epoch: n.epoch, Authority: n.auths[i].Public(), Value: v}
}

// vote returns authority i's signed vote carrying the given nodes.
func (n *net) vote(i int, nodes []*pkitest.Node, prior [][]pki.NodeID, mutate ...func(*pki.Vote)) []byte {
	n.t.Helper()
	v := &pki.Vote{
		Epoch:       n.epoch,
		Authority:   n.auths[i].Public(),
		Geometry:    pkitest.Geometry(n.cfg.Layers),
		Parameters:  pkitest.Parameters(),
		Commit:      n.revealValue(i).Commit(),
		PriorLayers: prior,
	}
	for _, nd := range nodes {
		v.Descriptors = append(v.Descriptors, nd.Signed)
	}
	for _, m := range mutate {
		m(v)
	}
	sv, err := pki.SignVote(n.auths[i], v)
	if err != nil {
		n.t.Fatal(err)
	}
	raw, err := sv.MarshalBinary()
	if err != nil {
		n.t.Fatal(err)
	}
	return raw
}

func (n *net) reveal(i int) []byte {
	n.t.Helper()
	sr, err := pki.SignReveal(n.auths[i], n.revealValue(i))
	if err != nil {
		n.t.Fatal(err)
	}
	raw, _ := sr.MarshalBinary()
	return raw
}

func (n *net) reveals(is ...int) [][]byte {
	var out [][]byte
	for _, i := range is {
		out = append(out, n.reveal(i))
	}
	return out
}

func (n *net) compute(votes, reveals [][]byte) (*consensus.Result, error) {
	return consensus.Compute(n.cfg, n.epoch, votes, reveals)
}

func (n *net) mustCompute(votes, reveals [][]byte) *consensus.Result {
	n.t.Helper()
	res, err := n.compute(votes, reveals)
	if err != nil {
		n.t.Fatal(err)
	}
	return res
}

func ids(nodes ...*pkitest.Node) []pki.NodeID {
	var out []pki.NodeID
	for _, nd := range nodes {
		out = append(out, nd.Descriptor.ID)
	}
	return out
}

func encode(t testing.TB, d *pki.Document) []byte {
	t.Helper()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func names(ds []*pki.Descriptor) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	slices.Sort(out)
	return out
}

func in(doc *pki.Document, nd *pkitest.Node) bool {
	_, ok := doc.Node(nd.Descriptor.ID)
	return ok
}

// goldenInputs builds the votes and reveals of the golden test: three
// authorities, seven agreed mixes (five with a prior layer), two providers,
// a node only one authority saw, and a node that sent each authority a
// different descriptor.
func goldenInputs(t testing.TB) (*net, [][]byte, [][]byte, map[string]*pkitest.Node) {
	n := newNet(t, 3, 2, 3, 2, 1000)
	all := map[string]*pkitest.Node{}
	mixes := n.mixes("mix", 7)
	provs := []*pkitest.Node{n.node("provider-a", pki.RoleProvider), n.node("provider-b", pki.RoleProvider)}
	for _, nd := range append(slices.Clone(mixes), provs...) {
		all[nd.Descriptor.Name] = nd
	}
	gone := n.node("gone", pki.RoleMix) // in the prior document, not now
	prior := [][]pki.NodeID{ids(mixes[0], mixes[1], gone), ids(mixes[2]), ids(mixes[3], mixes[4])}
	minority := n.node("minority", pki.RoleMix)
	all["minority"] = minority
	fickle := []*pkitest.Node{
		pkitest.NewNode("fickle", pki.RoleMix, n.epoch, "tcp://127.0.0.1:9001"),
		pkitest.NewNode("fickle", pki.RoleMix, n.epoch, "tcp://127.0.0.1:9002"),
		pkitest.NewNode("fickle", pki.RoleMix, n.epoch, "tcp://127.0.0.1:9003"),
	}
	all["fickle"] = fickle[0]
	base := append(slices.Clone(mixes), provs...)
	votes := [][]byte{
		n.vote(0, append(slices.Clone(base), minority, fickle[0]), prior),
		n.vote(1, append(slices.Clone(base), fickle[1]), prior),
		n.vote(2, append(slices.Clone(base), fickle[2]), prior),
	}
	return n, votes, n.reveals(0, 1, 2), all
}

func TestGolden(t *testing.T) {
	n, votes, reveals, all := goldenInputs(t)
	res := n.mustCompute(votes, reveals)
	doc := res.Document
	got := encode(t, doc)

	// What the golden file pins, checked in words too.
	if in(doc, all["minority"]) || in(doc, all["fickle"]) {
		t.Fatal("a node without a majority is in")
	}
	if len(doc.Providers) != 2 || len(doc.Layers) != 3 || doc.Epoch != 1000 {
		t.Fatal("wrong shape")
	}
	for _, name := range []string{"mix0", "mix1", "mix2", "mix3", "mix4"} {
		want := map[string]int{"mix0": 0, "mix1": 0, "mix2": 1, "mix3": 2, "mix4": 2}[name]
		if l, _ := doc.Layer(all[name].Descriptor.ID); l != want {
			t.Errorf("%s moved from layer %d to %d", name, want, l)
		}
	}
	if res.Moved != 0 || len(res.Voters) != 3 || len(res.Revealers) != 3 || len(res.Ignored) != 0 || len(res.Excluded) != 0 {
		t.Errorf("report %+v", res)
	}

	path := filepath.Join("testdata", "basic.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		h := hex.EncodeToString(got)
		for len(h) > 0 {
			k := min(64, len(h))
			b.WriteString(h[:k] + "\n")
			h = h[k:]
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	want, err := hex.DecodeString(strings.ReplaceAll(string(text), "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("document differs from %s (run with -update if the change is intended)", path)
	}
	// The golden bytes are a valid document.
	if _, err := pki.UnmarshalDocument(want); err != nil {
		t.Fatal(err)
	}
}

// permutations calls f with every ordering of xs.
func permutations[T any](xs []T, f func([]T)) {
	var rec func(int)
	rec = func(k int) {
		if k == len(xs) {
			f(xs)
			return
		}
		for i := k; i < len(xs); i++ {
			xs[k], xs[i] = xs[i], xs[k]
			rec(k + 1)
			xs[k], xs[i] = xs[i], xs[k]
		}
	}
	rec(0)
}

func TestOrderIndependence(t *testing.T) {
	n, votes, reveals, _ := goldenInputs(t)
	want := encode(t, n.mustCompute(votes, reveals).Document)

	// Add a repeated vote, a repeated reveal and junk; shuffle everything.
	vs := append(slices.Clone(votes), votes[1], []byte("junk"))
	rs := append(slices.Clone(reveals), reveals[0])
	i := 0
	permutations(vs, func(vs [][]byte) {
		rotated := append(slices.Clone(rs[i%len(rs):]), rs[:i%len(rs)]...)
		if i%2 == 1 {
			slices.Reverse(rotated)
		}
		i++
		res := n.mustCompute(vs, rotated)
		if got := encode(t, res.Document); !bytes.Equal(got, want) {
			t.Fatalf("permutation %d gave another document", i)
		}
		if len(res.Ignored) != 1 || !errors.Is(res.Ignored[0].Err, pki.ErrMalformed) {
			t.Fatalf("permutation %d: ignored %v", i, res.Ignored)
		}
	})
	if i != 120 {
		t.Fatalf("%d permutations", i)
	}
	// The configured order of the authorities does not matter either.
	slices.Reverse(n.cfg.Authorities)
	if got := encode(t, n.mustCompute(votes, reveals).Document); !bytes.Equal(got, want) {
		t.Fatal("authority order changed the document")
	}
}

func TestDescriptorMajority(t *testing.T) {
	n := newNet(t, 5, 3, 1, 1, 7)
	mixes := n.mixes("m", 2)
	prov := n.node("p", pki.RoleProvider)
	base := append(slices.Clone(mixes), prov)
	two := n.node("two-votes", pki.RoleMix)
	three := n.node("three-votes", pki.RoleMix)
	// "split": three authorities saw a descriptor, but two of them a
	// different one (new address, same keys).
	split := n.node("split", pki.RoleMix)
	splitOther := n.node("split", pki.RoleMix)
	splitOther.Descriptor.Addresses = []string{"tcp://127.0.0.1:4444"}
	splitOther.Resign()
	votes := [][]byte{
		n.vote(0, append(slices.Clone(base), two, three, split), nil),
		n.vote(1, append(slices.Clone(base), two, three, splitOther), nil),
		n.vote(2, append(slices.Clone(base), three, splitOther), nil),
		n.vote(3, slices.Clone(base), nil),
		n.vote(4, slices.Clone(base), nil),
	}
	doc := n.mustCompute(votes, n.reveals(0, 1, 2, 3, 4)).Document
	if in(doc, two) || !in(doc, three) || in(doc, split) {
		t.Fatalf("nodes: %v", names(doc.Layers[0]))
	}
	// Three identical descriptors are enough.
	votes[3] = n.vote(3, append(slices.Clone(base), split), nil)
	votes[4] = n.vote(4, append(slices.Clone(base), split), nil)
	doc = n.mustCompute(votes, n.reveals(0, 1, 2, 3, 4)).Document
	d, ok := doc.Node(split.Descriptor.ID)
	if !ok || d.Addresses[0] != split.Descriptor.Addresses[0] {
		t.Fatal("the majority descriptor is not the one in the document")
	}
}

func TestTooFewNodes(t *testing.T) {
	n := newNet(t, 3, 2, 3, 2, 7)
	mixes := n.mixes("m", 5)
	prov := n.node("p", pki.RoleProvider)
	check := func(nodes []*pkitest.Node, wantProv, wantMix int) {
		t.Helper()
		var votes [][]byte
		for i := range 3 {
			votes = append(votes, n.vote(i, nodes, nil))
		}
		_, err := n.compute(votes, n.reveals(0, 1, 2))
		var tf *consensus.TooFewNodesError
		if !errors.Is(err, consensus.ErrTooFewNodes) || !errors.As(err, &tf) {
			t.Fatalf("got %v", err)
		}
		if tf.Providers != wantProv || tf.Mixes != wantMix || tf.NeedMixes != 6 {
			t.Fatalf("got %+v", tf)
		}
	}
	check(append(slices.Clone(mixes), prov), 1, 5)
	check(n.mixes("m", 6), 0, 6)
	// Minority-only mixes do not count towards the minimum.
	extra := n.node("extra", pki.RoleMix)
	votes := [][]byte{
		n.vote(0, append(slices.Clone(mixes), prov, extra), nil),
		n.vote(1, append(slices.Clone(mixes), prov), nil),
		n.vote(2, append(slices.Clone(mixes), prov), nil),
	}
	if _, err := n.compute(votes, n.reveals(0, 1, 2)); !errors.Is(err, consensus.ErrTooFewNodes) {
		t.Fatalf("got %v", err)
	}
	votes[1] = n.vote(1, append(slices.Clone(mixes), prov, extra), nil)
	if _, err := n.compute(votes, n.reveals(0, 1, 2)); err != nil {
		t.Fatal(err)
	}
}

func TestQuorumAndIgnoredInputs(t *testing.T) {
	n := newNet(t, 3, 2, 1, 1, 7)
	nodes := append(n.mixes("m", 2), n.node("p", pki.RoleProvider))
	good := [][]byte{n.vote(0, nodes, nil), n.vote(1, nodes, nil), n.vote(2, nodes, nil)}
	reveals := n.reveals(0, 1, 2)

	// One vote is not enough.
	if _, err := n.compute(good[:1], reveals); !errors.Is(err, consensus.ErrNoQuorum) {
		t.Fatalf("one vote: %v", err)
	}
	// A vote for another epoch, by an outsider, or equivocating, is ignored.
	wrongEpoch := n.vote(2, nil, nil, func(v *pki.Vote) { v.Epoch = 8 })
	outsider := newNet(t, 1, 1, 1, 1, 7)
	outsider.auths[0] = pkitest.Identity("outsider")
	foreign := outsider.vote(0, nodes, nil)
	equivocal := n.vote(1, nodes[:2], nil)
	res := n.mustCompute([][]byte{good[0], good[1], wrongEpoch, foreign}, reveals)
	if len(res.Voters) != 2 || len(res.Ignored) != 3 {
		t.Fatalf("voters %d, ignored %v", len(res.Voters), res.Ignored)
	}
	kinds := map[error]bool{}
	for _, ig := range res.Ignored {
		for _, e := range []error{pki.ErrWrongEpoch, pki.ErrUnknownSigner, consensus.ErrEquivocation} {
			if errors.Is(ig.Err, e) {
				kinds[e] = true
			}
		}
	}
	if !kinds[pki.ErrWrongEpoch] || !kinds[pki.ErrUnknownSigner] {
		t.Fatalf("ignored %v", res.Ignored)
	}
	_, err := n.compute([][]byte{good[0], good[1], equivocal}, reveals)
	if !errors.Is(err, consensus.ErrNoQuorum) {
		t.Fatalf("equivocation counted: %v", err)
	}
	res = n.mustCompute([][]byte{good[0], good[1], good[2], equivocal}, reveals)
	if len(res.Voters) != 2 || !slices.ContainsFunc(res.Ignored, func(ig consensus.Ignored) bool { return errors.Is(ig.Err, consensus.ErrEquivocation) }) {
		t.Fatalf("equivocation: %+v", res.Ignored)
	}
}

func TestSharedRandom(t *testing.T) {
	n := newNet(t, 3, 2, 1, 1, 7)
	nodes := append(n.mixes("m", 2), n.node("p", pki.RoleProvider))
	votes := [][]byte{n.vote(0, nodes, nil), n.vote(1, nodes, nil), n.vote(2, nodes, nil)}
	all := n.mustCompute(votes, n.reveals(0, 1, 2)).Document.SharedRandom
	two := n.mustCompute(votes, n.reveals(0, 1)).Document.SharedRandom
	if all == two || all == ([32]byte{}) {
		t.Fatal("shared random value ignores a reveal")
	}
	if _, err := n.compute(votes, n.reveals(2)); !errors.Is(err, consensus.ErrNoSharedRandom) {
		t.Fatalf("one reveal: %v", err)
	}
	// A reveal that does not match its commit does not count.
	r := n.revealValue(1)
	r.Value[0] ^= 1
	sr, _ := pki.SignReveal(n.auths[1], r)
	bad, _ := sr.MarshalBinary()
	res, err := n.compute(votes, [][]byte{n.reveal(0), bad})
	if !errors.Is(err, consensus.ErrNoSharedRandom) || res != nil {
		t.Fatalf("mismatched reveal counted: %v", err)
	}
	// Another epoch's reveal does not count either.
	r = n.revealValue(1)
	r.Epoch = 6
	sr, _ = pki.SignReveal(n.auths[1], r)
	old, _ := sr.MarshalBinary()
	if _, err := n.compute(votes, [][]byte{n.reveal(0), old}); !errors.Is(err, consensus.ErrNoSharedRandom) {
		t.Fatalf("old reveal counted: %v", err)
	}
	// A reveal whose authority's vote did not count does not count.
	if _, err := n.compute(votes[:2], n.reveals(0, 2)); !errors.Is(err, consensus.ErrNoSharedRandom) {
		t.Fatalf("reveal without a vote counted: %v", err)
	}
	// The value differs by epoch.
	n2 := newNet(t, 3, 2, 1, 1, 8)
	nodes2 := append(n2.mixes("m", 2), n2.node("p", pki.RoleProvider))
	v2 := [][]byte{n2.vote(0, nodes2, nil), n2.vote(1, nodes2, nil)}
	if n2.mustCompute(v2, n2.reveals(0, 1)).Document.SharedRandom == two {
		t.Fatal("shared random value repeats across epochs")
	}
}

func TestParameterAgreement(t *testing.T) {
	n := newNet(t, 3, 2, 1, 1, 7)
	nodes := append(n.mixes("m", 2), n.node("p", pki.RoleProvider))
	slow := func(v *pki.Vote) { v.Parameters.LambdaPMean *= 2 }
	slower := func(v *pki.Vote) { v.Parameters.LambdaPMean *= 3 }
	votes := [][]byte{n.vote(0, nodes, nil), n.vote(1, nodes, nil, slow), n.vote(2, nodes, nil, slower)}
	if _, err := n.compute(votes, n.reveals(0, 1, 2)); !errors.Is(err, consensus.ErrNoAgreement) || !strings.Contains(err.Error(), "parameters") {
		t.Fatalf("three different parameter sets: %v", err)
	}
	votes[2] = n.vote(2, nodes, nil, slow)
	doc := n.mustCompute(votes, n.reveals(0, 1, 2)).Document
	if doc.Parameters.LambdaPMean != 2*pkitest.Parameters().LambdaPMean {
		t.Fatal("the majority's parameters were not chosen")
	}
	big := func(v *pki.Vote) { v.Geometry.UserPayloadLength++ }
	bigger := func(v *pki.Vote) { v.Geometry.UserPayloadLength += 2 }
	votes = [][]byte{n.vote(0, nodes, nil), n.vote(1, nodes, nil, big), n.vote(2, nodes, nil, bigger)}
	if _, err := n.compute(votes, n.reveals(0, 1, 2)); !errors.Is(err, consensus.ErrNoAgreement) || !strings.Contains(err.Error(), "geometry") {
		t.Fatalf("three different geometries: %v", err)
	}
	// A geometry that does not fit the configured layers.
	hops := func(v *pki.Vote) { v.Geometry.Hops = 5 }
	votes = [][]byte{n.vote(0, nodes, nil, hops), n.vote(1, nodes, nil, hops)}
	if _, err := n.compute(votes, n.reveals(0, 1)); !errors.Is(err, consensus.ErrConfig) {
		t.Fatalf("geometry for 3 layers with 1 configured: %v", err)
	}
}

func TestStickiness(t *testing.T) {
	n := newNet(t, 3, 2, 3, 1, 50)
	old := n.mixes("old", 9)
	prov := n.node("p", pki.RoleProvider)
	prior := [][]pki.NodeID{ids(old[0:3]...), ids(old[3:6]...), ids(old[6:9]...)}
	run := func(nodes []*pkitest.Node, prior [][]pki.NodeID) *consensus.Result {
		t.Helper()
		nodes = append(slices.Clone(nodes), prov)
		var votes [][]byte
		for i := range 3 {
			votes = append(votes, n.vote(i, nodes, prior))
		}
		return n.mustCompute(votes, n.reveals(0, 1, 2))
	}
	layerOf := func(doc *pki.Document, nd *pkitest.Node) int {
		l, ok := doc.Layer(nd.Descriptor.ID)
		if !ok {
			t.Fatalf("%s missing", nd.Descriptor.Name)
		}
		return l
	}
	sizes := func(doc *pki.Document) []int {
		var s []int
		for _, l := range doc.Layers {
			s = append(s, len(l))
		}
		return s
	}

	// Everybody stays, and three newcomers spread one per layer.
	fresh := n.mixes("new", 3)
	res := run(append(slices.Clone(old), fresh...), prior)
	for i, nd := range old {
		if layerOf(res.Document, nd) != i/3 {
			t.Fatalf("%s left its layer", nd.Descriptor.Name)
		}
	}
	if res.Moved != 0 || !slices.Equal(sizes(res.Document), []int{4, 4, 4}) {
		t.Fatalf("moved %d, sizes %v", res.Moved, sizes(res.Document))
	}

	// Layer 0 loses all three mixes: exactly two mixes must move there,
	// one from each other layer, and everyone else stays.
	res = run(old[3:], prior)
	if res.Moved != 2 || !slices.Equal(sizes(res.Document), []int{2, 2, 2}) {
		t.Fatalf("moved %d, sizes %v", res.Moved, sizes(res.Document))
	}
	stayed := 0
	for i, nd := range old[3:] {
		if layerOf(res.Document, nd) == 1+i/3 {
			stayed++
		}
	}
	if stayed != 4 {
		t.Fatalf("%d of 6 stayed", stayed)
	}

	// Without a majority for one prior assignment, nodes are placed afresh
	// (and still balanced).
	var votes [][]byte
	other := [][]pki.NodeID{ids(old[6:9]...), ids(old[0:3]...), ids(old[3:6]...)}
	nodes := append(slices.Clone(old), prov)
	votes = append(votes, n.vote(0, nodes, prior), n.vote(1, nodes, other), n.vote(2, nodes, nil))
	res = n.mustCompute(votes, n.reveals(0, 1, 2))
	if !slices.Equal(sizes(res.Document), []int{3, 3, 3}) || res.Moved != 0 {
		t.Fatalf("fresh placement: sizes %v moved %d", sizes(res.Document), res.Moved)
	}

	// A prior assignment with more layers than configured: the extra
	// layer's nodes are placed as new ones.
	wide := append(slices.Clone(prior), ids(fresh...))
	res = run(append(slices.Clone(old), fresh...), wide)
	for i, nd := range old {
		if layerOf(res.Document, nd) != i/3 {
			t.Fatalf("%s left its layer", nd.Descriptor.Name)
		}
	}
}

func TestConflicts(t *testing.T) {
	n := newNet(t, 3, 2, 1, 1, 9)
	a := n.node("a", pki.RoleMix)
	b := n.node("b", pki.RoleMix)
	c := n.node("c", pki.RoleMix)
	p := n.node("p", pki.RoleProvider)
	// b claims a's address; c is innocent.
	b.Descriptor.Addresses = []string{"tcp4://" + strings.TrimPrefix(a.Descriptor.Addresses[0], "tcp://")}
	b.Resign()
	run := func(prior [][]pki.NodeID) *consensus.Result {
		var votes [][]byte
		for i := range 3 {
			votes = append(votes, n.vote(i, []*pkitest.Node{a, b, c, p}, prior))
		}
		return n.mustCompute(votes, n.reveals(0, 1, 2))
	}
	res := run(nil)
	if in(res.Document, a) || in(res.Document, b) || !in(res.Document, c) || len(res.Excluded) != 2 {
		t.Fatalf("without a prior owner both go: %v, excluded %v", names(res.Document.Layers[0]), res.Excluded)
	}
	if !strings.Contains(res.Excluded[0].Reason, "shares address 127.0.0.1:") {
		t.Fatalf("reason %q", res.Excluded[0].Reason)
	}
	res = run([][]pki.NodeID{ids(a)})
	if !in(res.Document, a) || in(res.Document, b) || len(res.Excluded) != 1 || res.Excluded[0].Name != "b" {
		t.Fatalf("the prior owner keeps its address: %v, excluded %v", names(res.Document.Layers[0]), res.Excluded)
	}
}

func TestConfig(t *testing.T) {
	k := []keys.IdentityPublicKey{pkitest.Identity("a").Public(), pkitest.Identity("b").Public(), pkitest.Identity("c").Public()}
	for _, c := range []consensus.Config{
		{Authorities: nil, Threshold: 1, Layers: 3, MinMixesPerLayer: 1},
		{Authorities: k, Threshold: 1, Layers: 3, MinMixesPerLayer: 1},
		{Authorities: k, Threshold: 4, Layers: 3, MinMixesPerLayer: 1},
		{Authorities: append(k, k[0]), Threshold: 2, Layers: 3, MinMixesPerLayer: 1},
		{Authorities: []keys.IdentityPublicKey{{}}, Threshold: 1, Layers: 3, MinMixesPerLayer: 1},
		{Authorities: k, Threshold: 2, Layers: 0, MinMixesPerLayer: 1},
		{Authorities: k, Threshold: 2, Layers: 9, MinMixesPerLayer: 1},
		{Authorities: k, Threshold: 2, Layers: 3, MinMixesPerLayer: 0},
		{Authorities: k, Threshold: 2, Layers: 8, MinMixesPerLayer: 1000},
	} {
		if err := c.Validate(); !errors.Is(err, consensus.ErrConfig) {
			t.Errorf("%+v: %v", c, err)
		}
		if _, err := consensus.Compute(c, 1, nil, nil); !errors.Is(err, consensus.ErrConfig) {
			t.Errorf("Compute %+v: %v", c, err)
		}
	}
	ok := consensus.Config{Authorities: k, Threshold: 2, Layers: 3, MinMixesPerLayer: 2}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestSingleAuthority is the testnet's embedded default: one authority,
// threshold 1.
func TestSingleAuthority(t *testing.T) {
	n := newNet(t, 1, 1, 3, 1, 1)
	nodes := append(n.mixes("m", 3), n.node("p", pki.RoleProvider))
	res := n.mustCompute([][]byte{n.vote(0, nodes, nil)}, n.reveals(0))
	sd, err := pki.NewSignedDocument(res.Document)
	if err != nil {
		t.Fatal(err)
	}
	sd.Sign(n.auths[0])
	raw, _ := sd.MarshalBinary()
	if _, err := pki.VerifyDocument(raw, n.cfg.Authorities, 1); err != nil {
		t.Fatal(err)
	}
}

func FuzzCompute(f *testing.F) {
	n, votes, reveals, _ := goldenInputs(f)
	f.Add(votes[0], votes[1], reveals[0], reveals[1])
	f.Fuzz(func(t *testing.T, v0, v1, r0, r1 []byte) {
		a, errA := consensus.Compute(n.cfg, n.epoch, [][]byte{v0, v1, votes[2]}, [][]byte{r0, r1, reveals[2]})
		b, errB := consensus.Compute(n.cfg, n.epoch, [][]byte{votes[2], v1, v0}, [][]byte{reveals[2], r1, r0})
		if (errA == nil) != (errB == nil) {
			t.Fatalf("order changed the outcome: %v / %v", errA, errB)
		}
		if errA == nil && !bytes.Equal(encode(t, a.Document), encode(t, b.Document)) {
			t.Fatal("order changed the document")
		}
	})
}

// TestChain runs two epochs: the second epoch's votes carry the first
// document's layer assignment, and every mix keeps its layer.
func TestChain(t *testing.T) {
	first := newNet(t, 3, 2, 3, 2, 20)
	nodes := append(first.mixes("m", 7), first.node("p", pki.RoleProvider))
	var votes [][]byte
	for i := range 3 {
		votes = append(votes, first.vote(i, nodes, nil))
	}
	doc1 := first.mustCompute(votes, first.reveals(0, 1, 2)).Document

	second := newNet(t, 3, 2, 3, 2, 21)
	nodes = append(second.mixes("m", 7), second.node("p", pki.RoleProvider))
	votes = nil
	for i := range 3 {
		votes = append(votes, second.vote(i, nodes, doc1.LayerAssignment()))
	}
	res := second.mustCompute(votes, second.reveals(0, 1, 2))
	if res.Document.SharedRandom == doc1.SharedRandom {
		t.Fatal("shared random value repeated")
	}
	if !slices.EqualFunc(doc1.LayerAssignment(), res.Document.LayerAssignment(), slices.Equal) || res.Moved != 0 {
		t.Fatalf("layers changed between epochs (moved %d)", res.Moved)
	}
}
