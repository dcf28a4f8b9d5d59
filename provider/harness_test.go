package provider

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chorus-mixnet/chorus/mix"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/mixtest"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/epoch"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
	"github.com/chorus-mixnet/chorus/provider/providertest"
)

// The test network: the provider under test ("provider-0"), one mix layer
// with one mix ("mix-0-0") and a second provider ("provider-1"). The mix
// and provider-1 are played by a providertest.Relay with pkitest keys: it
// accepts provider-0's links, removes mix-0-0's layer, and sends packets
// for provider-0 back to it over a node link; packets for provider-1 it
// unwraps again and hands to the test, which is how the tests watch ACKs
// and echo answers leave provider-0. A mixtest.Directory makes the
// documents.

const (
	provName  = "provider-0"
	mixName   = providertest.MixName
	otherName = providertest.OtherName
)

// authority signs the documents.
var authority = pkitest.Identity(mixtest.AuthorityName)

// newTestDir is the document source and uploader of provider-0, with the
// mix at mixAddr, around epoch e: the document for an epoch is made, and
// frozen, once provider-0 uploaded its descriptor for it.
func newTestDir(mixAddr string, e uint64) *mixtest.Directory {
	d := mixtest.NewDirectory(1)
	d.Expect(provName, pki.ProviderLayer)
	d.AddStatic(mixName, 0, mixAddr, e-2, e+3)
	d.AddStatic(otherName, pki.ProviderLayer, "127.0.0.1:3", e-2, e+3) // nobody dials provider-1
	return d
}

// testNet is a provider under test with its relay.
type testNet struct {
	t     testing.TB
	dir   *mixtest.Directory
	relay *providertest.Relay
	p     *Provider
	reg   *prometheus.Registry
	sched *epoch.Schedule
	geo   *sphinx.Geometry
	stop  func() error
}

// schedule returns a schedule in which the current epoch is 10 and has
// half an hour to go.
func schedule(t testing.TB) *epoch.Schedule {
	t.Helper()
	s, err := epoch.New(time.Now().Add(30*time.Minute-11*time.Hour), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testConfig(dataDir string, s *epoch.Schedule) Config {
	return Config{
		Pipeline: mix.Config{
			Name:          provName,
			Addresses:     []string{"tcp://127.0.0.1:1"}, // nobody dials a provider in these tests
			DataDir:       dataDir,
			Identity:      pkitest.Identity(provName),
			LinkKey:       pkitest.Link(provName),
			Schedule:      s,
			DrainTimeout:  5 * time.Second,
			MinBackoff:    20 * time.Millisecond,
			MaxBackoff:    500 * time.Millisecond,
			PollInterval:  20 * time.Millisecond,
			MaxPacketRate: 10, // small replay filters
			DisableLoops:  true,
		},
		StoreWorkers: 4,
		ControlBurst: 1 << 20, // tests retrieve as fast as they like, unless they test the limit
	}
}

// startNet starts provider-0 with the config mutate leaves, and its
// relay, and waits until the provider is ready. setup runs after New and
// before Run.
func startNet(t testing.TB, mutate func(*Config), setup func(*Provider)) *testNet {
	t.Helper()
	s := schedule(t)
	n := &testNet{t: t, sched: s, reg: prometheus.NewRegistry()}
	geo, err := sphinx.NewGeometry(3, 2000, true)
	if err != nil {
		t.Fatal(err)
	}
	n.geo = geo
	n.relay = providertest.StartRelay(t, geo, s.Now())
	n.dir = newTestDir(n.relay.Addr(), s.Now())
	cfg := testConfig(filepath.Join(t.TempDir(), provName), s)
	if mutate != nil {
		mutate(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.relay.SetProvider(ln.Addr().String(), pkitest.Identity(provName).Public().NodeID(), pkitest.Link(provName).Public())
	p, err := New(cfg, mix.Deps{Log: testLog(), Registerer: n.reg, Documents: n.dir, Uploader: n.dir, Listener: ln})
	if err != nil {
		t.Fatal(err)
	}
	n.p = p
	if setup != nil {
		setup(p)
	}
	n.stop = mixtest.Run(t, p.Run, p.Close)
	var notReady error
	waitFor(t, "the provider ready", func() bool { notReady = p.Ready(); return notReady == nil },
		func() string { return fmt.Sprint(notReady) })
	return n
}

// waitFor polls cond until it holds or a generous timeout passes; it
// asserts an outcome, never a timing.
func waitFor(t testing.TB, what string, cond func() bool, why ...func() string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for _, w := range why {
				what += ": " + w()
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testLog logs to stderr when PROVIDER_TEST_LOG is set, else discards.
func testLog() *slog.Logger {
	if os.Getenv("PROVIDER_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// metric returns the value of the counter or gauge name with the given
// labels (name=value pairs) in reg; 0 if absent.
func metric(t testing.TB, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			if matches(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	return 0
}

func matches(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.Label {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (n *testNet) metric(name string, labels ...string) float64 {
	return metric(n.t, n.reg, name, labels...)
}

func (n *testNet) doc() *pki.Document {
	doc, _, err := n.dir.Document(context.Background(), n.sched.Now())
	if err != nil {
		n.t.Fatal(err)
	}
	return doc
}

// hop is the path hop of node name in the current document.
func (n *testNet) hop(name string, cmds ...sphinx.Command) sphinx.PathHop {
	doc := n.doc()
	var desc *pki.Descriptor
	for _, d := range append(append([]*pki.Descriptor(nil), doc.Providers...), doc.Layers[0]...) {
		if d.Name == name {
			desc = d
		}
	}
	if desc == nil {
		n.t.Fatalf("no node %s", name)
	}
	k, ok := desc.SphinxKey(doc.Epoch)
	if !ok {
		n.t.Fatalf("%s has no key", name)
	}
	return sphinx.PathHop{ID: desc.ID, PublicKey: k, Commands: cmds}
}

func delay(ms uint32) sphinx.Command { return sphinx.NodeDelay{Delay: ms} }

// surb makes a SURB from provider-0 through the mix to dest ("provider-0"
// or "provider-1"), for mailbox rcpt, named id.
func (n *testNet) surb(dest string, rcpt [32]byte, id [16]byte) (surb, surbKeys []byte) {
	path := []sphinx.PathHop{n.hop(provName, delay(0)), n.hop(mixName, delay(0)),
		n.hop(dest, sphinx.Recipient{ID: rcpt}, sphinx.SURBReply{ID: id})}
	surb, surbKeys, err := sphinx.NewSURB(rand.Reader, n.geo, path)
	if err != nil {
		n.t.Fatal(err)
	}
	return surb, surbKeys
}

// forwardPayload lays out a client's forward payload: flags, reserved,
// the SURB (or zeros), the user payload.
func (n *testNet) forwardPayload(surb, user []byte) []byte {
	b := make([]byte, n.geo.ForwardPayloadLength())
	if surb != nil {
		b[0] = flagSURB
		copy(b[payloadHeader:], surb)
	}
	copy(b[payloadHeader+n.geo.SURBLength():], user)
	return b
}

// packet builds a packet from a client of provider-0 through the mix to
// rcpt at provider-0, carrying payload.
func (n *testNet) packet(rcpt [32]byte, payload []byte) []byte {
	path := []sphinx.PathHop{n.hop(provName, delay(0)), n.hop(mixName, delay(0)), n.hop(provName, sphinx.Recipient{ID: rcpt})}
	pkt, err := sphinx.NewPacket(rand.Reader, n.geo, path, payload)
	if err != nil {
		n.t.Fatal(err)
	}
	return pkt
}

// testClient is a client of provider-0.
type testClient struct {
	t       testing.TB
	key     *keys.LinkPrivateKey
	c       *link.Conn
	mailbox [32]byte
}

func newKey(t testing.TB) *keys.LinkPrivateKey {
	t.Helper()
	k, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// register adds a fresh client key to the registry.
func (n *testNet) register() *keys.LinkPrivateKey {
	k := newKey(n.t)
	if err := n.p.users.Add(k.Public()); err != nil {
		n.t.Fatal(err)
	}
	return k
}

func (n *testNet) dialKey(k *keys.LinkPrivateKey) (*link.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return link.Dial(ctx, "tcp", n.p.Addr().String(), link.Config{PrivateKey: k, PacketLength: n.geo.PacketLength()},
		pkitest.Link(provName).Public())
}

// connect registers a new client and connects it.
func (n *testNet) connect() *testClient {
	return n.connectKey(n.register())
}

func (n *testNet) connectKey(k *keys.LinkPrivateKey) *testClient {
	c, err := n.dialKey(k)
	if err != nil {
		n.t.Fatalf("dial provider: %v", err)
	}
	n.t.Cleanup(func() { c.Close() })
	return &testClient{t: n.t, key: k, c: c, mailbox: k.Public().MailboxID()}
}

func (tc *testClient) send(cmd link.Command) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tc.c.Send(ctx, cmd); err != nil {
		tc.t.Fatalf("send: %v", err)
	}
}

func (tc *testClient) recv() link.Command {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, err := tc.c.Recv(ctx)
	if err != nil {
		tc.t.Fatalf("recv: %v", err)
	}
	return cmd
}

// retrieve asks for the head of the mailbox and returns the answer, with
// its payload copied.
func (tc *testClient) retrieve() link.Message {
	tc.t.Helper()
	tc.send(link.RetrieveMessage{})
	m, ok := tc.recv().(link.Message)
	if !ok {
		tc.t.Fatalf("answer to RetrieveMessage is not a Message")
	}
	m.Payload = append([]byte(nil), m.Payload...)
	return m
}
