package authority

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// testPeriod is the epoch length of the integration tests: long enough for
// a round on a loaded 2-core machine, short enough to see several epochs.
const testPeriod = 5 * time.Second

// waitTimeout bounds every wait for a condition; generous, since the tests
// never assert timings.
const waitTimeout = 40 * time.Second

// testNode is a node with real keys, as a mix or provider would have.
type testNode struct {
	name     string
	role     pki.Role
	addr     string
	identity *keys.IdentityPrivateKey
	link     *keys.LinkPrivateKey
	sphinx   map[uint64]*keys.SphinxPrivateKey

	mu    sync.Mutex
	descs map[uint64]*pki.SignedDescriptor
}

func newTestNode(t *testing.T, name string, role pki.Role, port int) *testNode {
	t.Helper()
	id, err := keys.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	link, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testNode{name: name, role: role, addr: fmt.Sprintf("tcp://127.0.0.1:%d", port), identity: id, link: link,
		sphinx: map[uint64]*keys.SphinxPrivateKey{}, descs: map[uint64]*pki.SignedDescriptor{}}
}

// descriptor returns the node's signed descriptor for epoch e.
func (n *testNode) descriptor(t *testing.T, e uint64) *pki.SignedDescriptor {
	n.mu.Lock()
	defer n.mu.Unlock()
	if sd := n.descs[e]; sd != nil {
		return sd
	}
	d := &pki.Descriptor{
		Name: n.name, ID: n.identity.Public().NodeID(), IdentityKey: n.identity.Public(),
		LinkKey: n.link.Public(), Role: n.role, Addresses: []string{n.addr}, Epoch: e,
		SphinxKeys: map[uint64]keys.SphinxPublicKey{},
	}
	for k := e; k < e+pki.SphinxKeyEpochs; k++ {
		if n.sphinx[k] == nil {
			s, err := keys.GenerateSphinxKey(rand.Reader)
			if err != nil {
				panic(err)
			}
			n.sphinx[k] = s
		}
		d.SphinxKeys[k] = n.sphinx[k].Public()
	}
	sd, err := pki.SignDescriptor(n.identity, d)
	if err != nil {
		panic(err)
	}
	n.descs[e] = sd
	return sd
}

func newNodes(t *testing.T, mixes, providers int) []*testNode {
	var out []*testNode
	for i := range mixes {
		out = append(out, newTestNode(t, fmt.Sprintf("mix%d", i), pki.RoleMix, 40000+i))
	}
	for i := range providers {
		out = append(out, newTestNode(t, fmt.Sprintf("provider%d", i), pki.RoleProvider, 41000+i))
	}
	return out
}

// testAuth is one authority of a test network.
type testAuth struct {
	name   string
	cfg    Config
	reg    *prometheus.Registry
	a      *Authority
	cancel context.CancelFunc
	done   chan error
}

type testNet struct {
	t     *testing.T
	sched *epoch.Schedule
	auths []*testAuth
	nodes []*testNode
}

// newTestNet configures n authorities that know each other, with identity
// keys created in their data directories, on loopback listeners.
func newTestNet(t *testing.T, n int, configure func(*Config)) *testNet {
	t.Helper()
	// Start 10% into an epoch far from genesis.
	genesis := time.Now().Add(-100*testPeriod - testPeriod/10).Truncate(time.Millisecond)
	sched, err := epoch.New(genesis, testPeriod, nil)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNet{t: t, sched: sched}
	var lns []net.Listener
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		cfg := DefaultConfig()
		cfg.DataDir = filepath.Join(t.TempDir(), "data")
		cfg.Listen = ln.Addr().String()
		cfg.Genesis = genesis
		cfg.Period = testPeriod
		cfg.Parameters.MuMean = 5 * time.Millisecond
		id, err := keys.LoadOrCreateIdentity(cfg.identityKeyFile(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tn.auths = append(tn.auths, &testAuth{name: "auth" + strconv.Itoa(i), cfg: cfg})
		for j, other := range tn.auths[:i] {
			other.cfg.Peers = append(other.cfg.Peers, dirclient.Authority{Name: tn.auths[i].name, IdentityKey: id.Public(), Address: cfg.Listen})
			oid, err := keys.LoadIdentity(other.cfg.identityKeyFile())
			if err != nil {
				t.Fatal(err)
			}
			tn.auths[i].cfg.Peers = append(tn.auths[i].cfg.Peers, dirclient.Authority{Name: tn.auths[j].name, IdentityKey: oid.Public(), Address: other.cfg.Listen})
		}
	}
	for i, ta := range tn.auths {
		if configure != nil {
			configure(&ta.cfg)
		}
		tn.start(ta, lns[i])
	}
	t.Cleanup(func() {
		for _, ta := range tn.auths {
			tn.stop(ta)
		}
	})
	return tn
}

// start builds and runs an authority; ln may be nil to listen on its
// configured address (a restart).
func (tn *testNet) start(ta *testAuth, ln net.Listener) {
	tn.t.Helper()
	ta.reg = prometheus.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("CHORUS_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("authority", ta.name)
	}
	a, err := New(ta.cfg, Deps{Registry: ta.reg, Listener: ln, Log: log})
	if err != nil {
		tn.t.Fatalf("start %s: %v", ta.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta.a, ta.cancel, ta.done = a, cancel, make(chan error, 1)
	go func() { ta.done <- a.Run(ctx) }()
}

// stop stops an authority and waits for Run to return.
func (tn *testNet) stop(ta *testAuth) {
	if ta.cancel == nil {
		return
	}
	ta.cancel()
	ta.cancel = nil
	select {
	case err := <-ta.done:
		if err != nil {
			tn.t.Errorf("%s: Run: %v", ta.name, err)
		}
	case <-time.After(waitTimeout):
		tn.t.Fatalf("%s: Run did not return", ta.name)
	}
}

func (tn *testNet) authorities() []dirclient.Authority {
	var out []dirclient.Authority
	for _, ta := range tn.auths {
		out = append(out, dirclient.Authority{Name: ta.name, IdentityKey: ta.a.Identity(), Address: ta.cfg.Listen})
	}
	return out
}

// uploadLoop uploads every node's descriptors for the current and the next
// epoch, as real nodes do, until the test ends.
func (tn *testNet) uploadLoop(nodes []*testNode) {
	tn.nodes = nodes
	dc, err := dirclient.New(dirclient.Config{Authorities: tn.authorities()}, &http.Client{Timeout: 5 * time.Second}, nil)
	if err != nil {
		tn.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	tn.t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		accepted := map[*pki.SignedDescriptor]bool{}
		for ctx.Err() == nil {
			cur := tn.sched.Now()
			for _, n := range nodes {
				for _, e := range []uint64{cur, cur + 1} {
					sd := n.descriptor(tn.t, e)
					if !accepted[sd] {
						// Until every authority took it; rejections as
						// late and stopped authorities are expected.
						accepted[sd] = dc.Upload(ctx, sd) == nil
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(testPeriod / 16):
			}
		}
	}()
}

// document fetches the published document for e from ta, or nil.
func document(t *testing.T, ta *testAuth, e uint64) *pki.SignedDocument {
	t.Helper()
	resp, err := http.Get("http://" + ta.cfg.Listen + dirclient.DocumentPath + strconv.FormatUint(e, 10))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil
	}
	sd, err := pki.UnmarshalSignedDocument(raw)
	if err != nil {
		t.Fatalf("%s served a malformed document: %v", ta.name, err)
	}
	return sd
}

func signedBy(sd *pki.SignedDocument, k keys.IdentityPublicKey) bool {
	for _, s := range sd.Signatures {
		if s.Signer.Equal(k) {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAgreed waits for a document for an epoch from first on that every
// authority in by publishes with the same body, signed by each of signers,
// and returns its epoch and the document.
func (tn *testNet) waitAgreed(first uint64, by []*testAuth, signers []*testAuth) (uint64, *pki.SignedDocument) {
	tn.t.Helper()
	var gotE uint64
	var got *pki.SignedDocument
	waitFor(tn.t, fmt.Sprintf("a document from epoch %d signed by %d authorities", first, len(signers)), func() bool {
		for e := first; e <= tn.sched.Now()+1; e++ {
			var body []byte
			ok := true
			for _, ta := range by {
				sd := document(tn.t, ta, e)
				if sd == nil || (body != nil && !bytes.Equal(body, sd.Body)) {
					ok = false
					break
				}
				body = sd.Body
				for _, s := range signers {
					if !signedBy(sd, s.a.Identity()) {
						ok = false
					}
				}
				got = sd
			}
			if ok {
				gotE = e
				return true
			}
		}
		return false
	})
	return gotE, got
}

func TestThreeAuthorities(t *testing.T) {
	tn := newTestNet(t, 3, nil)
	a, b, c := tn.auths[0], tn.auths[1], tn.auths[2]
	start := tn.sched.Now()
	tn.uploadLoop(newNodes(t, 6, 2))

	// Bootstrap: the first document is for the current epoch (or, on a very
	// slow machine, a later one), identical at all three and signed by all.
	e0, sd := tn.waitAgreed(start, tn.auths, tn.auths)
	t.Logf("bootstrap: document for epoch %d (test started in %d) with %d signatures", e0, start, len(sd.Signatures))
	doc, err := pki.VerifyDocument(mustMarshal(t, sd), identities(tn.auths), 3)
	if err != nil {
		t.Fatalf("document signed by all three does not verify with threshold 3: %v", err)
	}
	if n := len(doc.Providers) + len(doc.Layers[0]) + len(doc.Layers[1]) + len(doc.Layers[2]); n != len(tn.nodes) {
		t.Errorf("document lists %d nodes, want %d", n, len(tn.nodes))
	}
	dc, err := dirclient.New(dirclient.Config{Authorities: tn.authorities()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dc.Document(context.Background(), e0); err != nil {
		t.Fatalf("dirclient: %v", err)
	}
	for _, ta := range tn.auths {
		if err := ta.a.Ready(); err != nil && tn.sched.Now() == e0 {
			t.Errorf("%s not ready: %v", ta.name, err)
		}
		if v := testutil.ToFloat64(ta.a.m.consensus.WithLabelValues("reached")); v < 1 {
			t.Errorf("%s: consensus reached = %v", ta.name, v)
		}
	}
	if v := testutil.ToFloat64(a.a.m.votes); v < 2 {
		t.Errorf("votes received = %v, want at least 2", v)
	}

	// Restart mid-round: once c has published its reveal for the next
	// document, stop it and start it again on the same data directory; it
	// must finish the round and sign.
	var T uint64
	waitFor(t, "c to reveal for a coming epoch", func() bool {
		for e := tn.sched.Now(); e <= tn.sched.Now()+1; e++ {
			if e > e0 && ok(t, c, pathReveal, e) && document(t, c, e) == nil {
				T = e
				return true
			}
		}
		return false
	})
	voteBefore := get(t, c, pathVote, T)
	tn.stop(c)
	tn.start(c, nil)
	waitFor(t, "the restarted authority to serve", func() bool { return get(t, c, pathVote, T) != nil })
	if !bytes.Equal(get(t, c, pathVote, T), voteBefore) {
		t.Error("the restarted authority serves a different vote")
	}
	te, _ := tn.waitAgreed(T, tn.auths, tn.auths)
	// On a loaded machine the interrupted round itself may fail for reasons
	// of timing (a late vote); the next one must include the authority.
	t.Logf("restarted authority: the interrupted round was for epoch %d; it signed the document for epoch %d", T, te)

	// One authority down: the other two still publish, and dirclient
	// (threshold 2 of 3) accepts it.
	tn.stop(c)
	down := tn.sched.Now()
	e2, sd := tn.waitAgreed(down+2, []*testAuth{a, b}, []*testAuth{a, b})
	if signedBy(sd, c.a.Identity()) || len(sd.Signatures) != 2 {
		t.Errorf("document for epoch %d made while c was down has %d signatures", e2, len(sd.Signatures))
	}
	dc2, err := dirclient.New(dirclient.Config{Authorities: tn.authorities()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, raw, err := dc2.Document(context.Background(), e2)
	if err != nil || got.Epoch != e2 {
		t.Fatalf("dirclient with one authority down: %v", err)
	}

	// A document signed by only one of the three is refused.
	one := &pki.SignedDocument{Body: sd.Body, Signatures: sd.Signatures[:1]}
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(mustMarshal(t, one))
	}))
	defer fake.Close()
	auths := tn.authorities()
	for i := range auths {
		auths[i].Address = fake.URL
	}
	dc3, err := dirclient.New(dirclient.Config{Authorities: auths}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dc3.Document(context.Background(), e2); !errors.Is(err, pki.ErrNotEnoughSignatures) {
		t.Errorf("document with one signature: got %v, want ErrNotEnoughSignatures", err)
	}
	if !bytes.Equal(raw, mustMarshal(t, sd)) && len(raw) == 0 {
		t.Error("dirclient returned no raw document")
	}
}

func ok(t *testing.T, ta *testAuth, path string, e uint64) bool { return get(t, ta, path, e) != nil }

// get fetches path for epoch e from ta: the body, or nil.
func get(t *testing.T, ta *testAuth, path string, e uint64) []byte {
	resp, err := http.Get("http://" + ta.cfg.Listen + path + strconv.FormatUint(e, 10))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	return b
}

func identities(as []*testAuth) []keys.IdentityPublicKey {
	var out []keys.IdentityPublicKey
	for _, ta := range as {
		out = append(out, ta.a.Identity())
	}
	return out
}

func mustMarshal(t *testing.T, sd *pki.SignedDocument) []byte {
	b, err := sd.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post uploads body as a descriptor to ta and returns the status, or 0 if
// the request failed (a server may close the connection on a huge body).
func post(t *testing.T, ta *testAuth, body io.Reader) int {
	t.Helper()
	resp, err := http.Post("http://"+ta.cfg.Listen+dirclient.DescriptorPath, "application/cbor", body)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func marshal(t *testing.T, sd *pki.SignedDescriptor) []byte {
	b, err := sd.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSingleAuthorityRejectsBadUploads(t *testing.T) {
	nodes := newNodes(t, 3, 1)
	tn := newTestNet(t, 1, func(c *Config) {
		for _, n := range nodes {
			c.AllowedNodes = append(c.AllowedNodes, n.identity.Public())
		}
	})
	a := tn.auths[0]
	start := tn.sched.Now()
	tn.uploadLoop(nodes)
	e0, _ := tn.waitAgreed(start, tn.auths, tn.auths)
	if a.cfg.threshold() != 1 {
		t.Fatalf("threshold %d", a.cfg.threshold())
	}

	rejected := func(reason string) float64 { return testutil.ToFloat64(a.a.m.rejected.WithLabelValues(reason)) }
	cur := tn.sched.Now()

	// A forged descriptor: a valid one with its signature altered.
	good := nodes[0].descriptor(t, cur+2)
	forged := &pki.SignedDescriptor{Body: good.Body, Signature: bytes.Clone(good.Signature)}
	forged.Signature[0] ^= 1
	if code := post(t, a, bytes.NewReader(marshal(t, forged))); code != http.StatusForbidden {
		t.Errorf("forged descriptor: status %d", code)
	}
	// A descriptor for a past epoch.
	if code := post(t, a, bytes.NewReader(marshal(t, nodes[1].descriptor(t, cur-3)))); code != http.StatusConflict {
		t.Errorf("past epoch: status %d", code)
	}
	// A 10 MB body, sent without a length so that only the size limit on
	// reading stops it.
	big := io.MultiReader(bytes.NewReader(make([]byte, 10<<20)))
	if code := post(t, a, big); code != http.StatusRequestEntityTooLarge && code != 0 {
		t.Errorf("10 MB body: status %d", code)
	}
	// A node not on the allowed list, and bytes that are no descriptor.
	outsider := newTestNode(t, "outsider", pki.RoleMix, 42000)
	if code := post(t, a, bytes.NewReader(marshal(t, outsider.descriptor(t, cur+1)))); code != http.StatusForbidden {
		t.Errorf("unknown node: status %d", code)
	}
	if code := post(t, a, bytes.NewReader([]byte("not cbor"))); code != http.StatusBadRequest {
		t.Errorf("garbage: status %d", code)
	}
	for reason, want := range map[string]float64{
		reasonBadSignature: 1, reasonWrongEpoch: 1, reasonTooLarge: 1, reasonUnknownNode: 1, reasonMalformed: 1,
	} {
		if got := rejected(reason); got != want {
			t.Errorf("rejected{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	// The authority keeps serving: documents, and good uploads.
	if document(t, a, e0) == nil {
		t.Error("document no longer served after the bad uploads")
	}
	if code := post(t, a, bytes.NewReader(marshal(t, good))); code != http.StatusOK {
		t.Errorf("good upload after the bad ones: status %d", code)
	}

	// A restart keeps everything: the published document, and the next
	// rounds go on.
	tn.stop(a)
	tn.start(a, nil)
	waitFor(t, "the restarted authority to serve its earlier document", func() bool { return document(t, a, e0) != nil })
	tn.waitAgreed(tn.sched.Now()+1, tn.auths, tn.auths)
}
