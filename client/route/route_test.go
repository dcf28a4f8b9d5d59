package route_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/client/route"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

const epoch = 7

func seeded(seed uint64) *route.Selector {
	return route.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// network is a document with real keys, and each node's Sphinx key.
type network struct {
	doc  *pki.Document
	keys map[pki.NodeID]*keys.SphinxPrivateKey
	geo  *sphinx.Geometry
}

func newNetwork(t testing.TB, layers, mixes, providers int) *network {
	t.Helper()
	doc, nodes := pkitest.Network(epoch, layers, mixes, providers)
	n := &network{doc: doc, keys: map[pki.NodeID]*keys.SphinxPrivateKey{}}
	for _, node := range nodes {
		n.keys[node.Descriptor.ID] = pkitest.Sphinx(node.Descriptor.Name, epoch)
	}
	geo, err := sphinx.NewGeometry(doc.Geometry.Hops, doc.Geometry.UserPayloadLength, doc.Geometry.WithSURB)
	if err != nil {
		t.Fatal(err)
	}
	n.geo = geo
	return n
}

func (n *network) provider(i int) pki.NodeID { return n.doc.Providers[i].ID }

func mailbox(b byte) route.MailboxID {
	var m route.MailboxID
	for i := range m {
		m[i] = b
	}
	return m
}

// checkShape checks what every route must be: the document's hop count,
// from at hop 0, a mix of layer i at hop i+1, the epoch's keys, one
// NodeDelay on every hop but the last, and Delay their sum.
func checkShape(t *testing.T, n *network, r *route.Route, from pki.NodeID) {
	t.Helper()
	if r.Epoch != epoch {
		t.Errorf("epoch %d, want %d", r.Epoch, epoch)
	}
	if len(r.Hops) != len(n.doc.Layers)+2 {
		t.Fatalf("%d hops, want %d", len(r.Hops), len(n.doc.Layers)+2)
	}
	if r.Hops[0].ID != from {
		t.Errorf("hop 0 is not the first provider")
	}
	var sum time.Duration
	for i, h := range r.Hops {
		layer, ok := n.doc.Layer(h.ID)
		switch {
		case !ok:
			t.Errorf("hop %d: node not in the document", i)
		case i == 0 || i == len(r.Hops)-1:
			if layer != pki.ProviderLayer {
				t.Errorf("hop %d: layer %d, want a provider", i, layer)
			}
		case layer != i-1:
			t.Errorf("hop %d: layer %d, want %d", i, layer, i-1)
		}
		desc, _ := n.doc.Node(h.ID)
		if k, _ := desc.SphinxKey(epoch); !k.Equal(h.PublicKey) {
			t.Errorf("hop %d: not the node's key for epoch %d", i, epoch)
		}
		if i == len(r.Hops)-1 {
			continue
		}
		if len(h.Commands) != 1 {
			t.Fatalf("hop %d: %d commands, want one NodeDelay", i, len(h.Commands))
		}
		d, ok := h.Commands[0].(sphinx.NodeDelay)
		if !ok {
			t.Fatalf("hop %d: %T, want NodeDelay", i, h.Commands[0])
		}
		if time.Duration(d.Delay)*time.Millisecond > n.doc.Parameters.MaxDelay {
			t.Errorf("hop %d: delay %dms above the maximum", i, d.Delay)
		}
		sum += time.Duration(d.Delay) * time.Millisecond
	}
	if sum != r.Delay {
		t.Errorf("Delay %v, hops ask for %v", r.Delay, sum)
	}
}

// lastHop returns the last hop's Recipient and SURBReply (nil if none).
func lastHop(t *testing.T, r *route.Route) (sphinx.Recipient, *sphinx.SURBReply) {
	t.Helper()
	var (
		rcpt  *sphinx.Recipient
		reply *sphinx.SURBReply
	)
	for _, c := range r.Hops[len(r.Hops)-1].Commands {
		switch c := c.(type) {
		case sphinx.Recipient:
			if rcpt != nil {
				t.Fatal("two Recipient commands")
			}
			rcpt = &c
		case sphinx.SURBReply:
			if reply != nil {
				t.Fatal("two SURBReply commands")
			}
			reply = &c
		default:
			t.Fatalf("last hop carries %T", c)
		}
	}
	if rcpt == nil {
		t.Fatal("last hop has no Recipient")
	}
	return *rcpt, reply
}

func TestForwardCommands(t *testing.T) {
	n := newNetwork(t, 3, 2, 3)
	s := seeded(1)
	to := route.Address{Provider: n.provider(2), Mailbox: mailbox(0xbb)}
	for range 100 {
		r, err := s.Forward(n.doc, n.provider(0), to)
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, n, r, n.provider(0))
		if r.Hops[len(r.Hops)-1].ID != to.Provider {
			t.Fatal("forward route does not end at the recipient's provider")
		}
		rcpt, reply := lastHop(t, r)
		if rcpt.ID != to.Mailbox || reply != nil {
			t.Fatalf("last hop: recipient %x, reply %v", rcpt.ID[:2], reply)
		}
	}
}

func TestLoopEndsAtOwnMailbox(t *testing.T) {
	n := newNetwork(t, 3, 2, 3)
	s := seeded(2)
	self := route.Address{Provider: n.provider(1), Mailbox: mailbox(0xaa)}
	id := route.SURBID{1, 2, 3}
	for range 100 {
		r, err := s.Loop(n.doc, self, id)
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, n, r, self.Provider)
		if r.Hops[len(r.Hops)-1].ID != self.Provider {
			t.Fatal("loop does not come back to own provider")
		}
		rcpt, reply := lastHop(t, r)
		if rcpt.ID != self.Mailbox || reply == nil || reply.ID != id {
			t.Fatal("loop does not end at own mailbox with its id")
		}
	}
}

func TestDropEndsAtProviderWithDropRecipient(t *testing.T) {
	n := newNetwork(t, 3, 2, 3)
	s := seeded(3)
	if !route.IsDropRecipient(route.MailboxID{}) || route.IsDropRecipient(mailbox(1)) {
		t.Fatal("the drop recipient is the all-zero ID and only that")
	}
	for range 100 {
		r, err := s.Drop(n.doc, n.provider(0))
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, n, r, n.provider(0))
		rcpt, reply := lastHop(t, r)
		if !route.IsDropRecipient(rcpt.ID) || reply != nil {
			t.Fatal("drop route does not end at the drop recipient")
		}
	}
}

func TestSURBRoute(t *testing.T) {
	n := newNetwork(t, 3, 2, 3)
	s := seeded(4)
	self := route.Address{Provider: n.provider(0), Mailbox: mailbox(0xaa)}
	r, err := s.SURB(n.doc, n.provider(2), self, route.SURBID{9})
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, n, r, n.provider(2))
	if r.Hops[len(r.Hops)-1].ID != self.Provider {
		t.Fatal("SURB route does not end at own provider")
	}
	rcpt, reply := lastHop(t, r)
	if rcpt.ID != self.Mailbox || reply == nil || reply.ID != (route.SURBID{9}) {
		t.Fatal("SURB route does not end at own mailbox with its id")
	}
}

// chiSquare returns Pearson's statistic for counts against a uniform
// expectation.
func chiSquare(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	e := float64(total) / float64(len(counts))
	var x float64
	for _, c := range counts {
		x += (float64(c) - e) * (float64(c) - e) / e
	}
	return x
}

// chi2Critical999 is the 0.999 quantile of the chi-square distribution
// with 1 to 5 degrees of freedom: a uniform choice exceeds it with
// probability 0.001 (and with a fixed seed, never).
var chi2Critical999 = []float64{0, 10.828, 13.816, 16.266, 18.467, 20.515}

func TestUniformChoice(t *testing.T) {
	const draws = 30000
	n := newNetwork(t, 3, 5, 4)
	s := seeded(5)
	layerCounts := make([][]int, len(n.doc.Layers))
	index := map[pki.NodeID]int{}
	for l, layer := range n.doc.Layers {
		layerCounts[l] = make([]int, len(layer))
		for i, d := range layer {
			index[d.ID] = i
		}
	}
	for i, p := range n.doc.Providers {
		index[p.ID] = i
	}
	dest := make([]int, len(n.doc.Providers))
	for range draws {
		r, err := s.Drop(n.doc, n.provider(0))
		if err != nil {
			t.Fatal(err)
		}
		for l := range n.doc.Layers {
			layerCounts[l][index[r.Hops[l+1].ID]]++
		}
		dest[index[r.Hops[len(r.Hops)-1].ID]]++
	}
	for l, c := range layerCounts {
		x := chiSquare(c)
		t.Logf("layer %d: counts %v, chi-square %.2f (df %d)", l, c, x, len(c)-1)
		if x > chi2Critical999[len(c)-1] {
			t.Errorf("layer %d: chi-square %.2f > %.3f: choice is not uniform", l, x, chi2Critical999[len(c)-1])
		}
	}
	x := chiSquare(dest)
	t.Logf("drop destinations: counts %v, chi-square %.2f (df %d)", dest, x, len(dest)-1)
	if x > chi2Critical999[len(dest)-1] {
		t.Errorf("drop destination: chi-square %.2f: choice is not uniform", x)
	}
}

func TestDelays(t *testing.T) {
	t.Run("mean", func(t *testing.T) {
		n := newNetwork(t, 3, 1, 1)
		n.doc.Parameters.MuMean = 50 * time.Millisecond
		n.doc.Parameters.MaxDelay = time.Hour
		s := seeded(6)
		const routes = 5000
		var sum time.Duration
		for range routes {
			r, err := s.Drop(n.doc, n.provider(0))
			if err != nil {
				t.Fatal(err)
			}
			sum += r.Delay
		}
		hops := float64(routes * (len(n.doc.Layers) + 1))
		mean := float64(sum) / hops
		// The sample mean of k exponentials has standard deviation
		// MuMean/√k; allow 5σ, plus rounding to milliseconds.
		sigma := float64(n.doc.Parameters.MuMean) / math.Sqrt(hops)
		if d := math.Abs(mean - float64(n.doc.Parameters.MuMean)); d > 5*sigma+float64(time.Millisecond)/2 {
			t.Errorf("mean delay %v, want %v ± %v", time.Duration(mean), n.doc.Parameters.MuMean, time.Duration(5*sigma))
		}
	})
	t.Run("clamped", func(t *testing.T) {
		n := newNetwork(t, 3, 1, 1)
		n.doc.Parameters.MuMean = 10 * time.Millisecond
		n.doc.Parameters.MaxDelay = 10*time.Millisecond + 700*time.Microsecond
		s := seeded(7)
		atMax, total := 0, 0
		for range 2000 {
			r, err := s.Forward(n.doc, n.provider(0), route.Address{Provider: n.provider(0)})
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range r.Hops[:len(r.Hops)-1] {
				d := h.Commands[0].(sphinx.NodeDelay).Delay
				total++
				if d > 10 {
					t.Fatalf("delay %dms above the maximum of 10.7ms rounded down", d)
				}
				if d == 10 {
					atMax++
				}
			}
		}
		// P(Exp(10ms) ≥ 9.5ms) = e^-0.95 ≈ 0.39 of the draws hit the cap.
		if f := float64(atMax) / float64(total); f < 0.3 || f > 0.48 {
			t.Errorf("%.2f of delays at the cap, want about 0.39", f)
		}
	})
}

func TestDeterministicWithSeed(t *testing.T) {
	n := newNetwork(t, 3, 4, 3)
	a, b := seeded(8), seeded(8)
	for range 50 {
		ra, _ := a.Drop(n.doc, n.provider(0))
		rb, _ := b.Drop(n.doc, n.provider(0))
		if fmt.Sprint(ra) != fmt.Sprint(rb) {
			t.Fatal("same seed, different routes")
		}
	}
	// The production source works too.
	if _, err := route.New(nil).Drop(n.doc, n.provider(0)); err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	n := newNetwork(t, 3, 2, 2)
	s := seeded(9)
	mix := n.doc.Layers[0][0].ID
	if _, err := s.Forward(n.doc, mix, route.Address{Provider: n.provider(0)}); !errors.Is(err, route.ErrNotProvider) {
		t.Errorf("from a mix: %v", err)
	}
	if _, err := s.Forward(n.doc, n.provider(0), route.Address{Provider: mix}); !errors.Is(err, route.ErrNotProvider) {
		t.Errorf("to a mix: %v", err)
	}
	if _, err := s.Drop(nil, n.provider(0)); !errors.Is(err, route.ErrDocument) {
		t.Errorf("nil document: %v", err)
	}
	delete(n.doc.Layers[1][0].SphinxKeys, epoch)
	delete(n.doc.Layers[1][1].SphinxKeys, epoch)
	if _, err := s.Drop(n.doc, n.provider(0)); !errors.Is(err, route.ErrNoKey) {
		t.Errorf("missing key: %v", err)
	}
}

// walk unwraps pkt hop by hop along r with the nodes' keys, checks that
// each hop forwards to the next with the delay it was given, and returns
// the last hop's result.
func walk(t *testing.T, n *network, r *route.Route, pkt []byte) *sphinx.Result {
	t.Helper()
	for i, h := range r.Hops {
		res, err := sphinx.Unwrap(n.geo, n.keys[h.ID], pkt)
		if err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if i == len(r.Hops)-1 {
			if res.Action != sphinx.Deliver {
				t.Fatalf("last hop: %v", res.Action)
			}
			return res
		}
		want := time.Duration(h.Commands[0].(sphinx.NodeDelay).Delay) * time.Millisecond
		if res.Action != sphinx.Forward || res.NextHop != r.Hops[i+1].ID || res.Delay != want {
			t.Fatalf("hop %d: %v after %v, want forward to hop %d after %v", i, res.Action, res.Delay, i+1, want)
		}
	}
	panic("unreachable")
}

func TestEndToEnd(t *testing.T) {
	n := newNetwork(t, 3, 2, 3)
	s := seeded(10)
	alice := route.Address{Provider: n.provider(0), Mailbox: mailbox(0xaa)}
	bob := route.Address{Provider: n.provider(2), Mailbox: mailbox(0xbb)}
	rng := rand.NewChaCha8([32]byte{1})

	t.Run("forward with SURB-ACK", func(t *testing.T) {
		// Alice makes a SURB for the ACK, from Bob's provider back to her.
		ackID := route.SURBID{0xac}
		back, err := s.SURB(n.doc, bob.Provider, alice, ackID)
		if err != nil {
			t.Fatal(err)
		}
		surb, surbKeys, err := sphinx.NewSURB(rng, n.geo, back.Hops)
		if err != nil {
			t.Fatal(err)
		}
		fwd, err := s.Forward(n.doc, alice.Provider, bob)
		if err != nil {
			t.Fatal(err)
		}
		payload := append(append([]byte(nil), surb...), "hello bob"...)
		pkt, err := sphinx.NewPacket(rng, n.geo, fwd.Hops, payload)
		if err != nil {
			t.Fatal(err)
		}
		res := walk(t, n, fwd, pkt)
		if res.Recipient != bob.Mailbox || res.IsSURBReply {
			t.Fatal("forward packet not delivered to bob's mailbox")
		}
		if !bytes.HasPrefix(res.Payload, payload) {
			t.Fatal("payload changed")
		}

		// Bob's provider answers through the SURB.
		reply, first, err := sphinx.NewPacketFromSURB(n.geo, res.Payload[:len(surb)], []byte("ack"))
		if err != nil {
			t.Fatal(err)
		}
		if first != bob.Provider {
			t.Fatal("the SURB does not start at bob's provider")
		}
		res = walk(t, n, back, reply)
		if res.Recipient != alice.Mailbox || !res.IsSURBReply || res.SURBID != ackID {
			t.Fatal("ACK not delivered to alice's mailbox with its id")
		}
		body, err := sphinx.DecryptSURBPayload(n.geo, res.Payload, surbKeys)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(body, []byte("ack")) {
			t.Fatal("ACK body changed")
		}
	})

	t.Run("loop looks like an ACK", func(t *testing.T) {
		id := route.SURBID{0x10}
		loop, err := s.Loop(n.doc, alice, id)
		if err != nil {
			t.Fatal(err)
		}
		surb, surbKeys, err := sphinx.NewSURB(rng, n.geo, loop.Hops)
		if err != nil {
			t.Fatal(err)
		}
		pkt, first, err := sphinx.NewPacketFromSURB(n.geo, surb, []byte("loop"))
		if err != nil {
			t.Fatal(err)
		}
		if first != alice.Provider {
			t.Fatal("the loop does not start at alice's provider")
		}
		res := walk(t, n, loop, pkt)
		if res.Recipient != alice.Mailbox || !res.IsSURBReply || res.SURBID != id {
			t.Fatal("loop not delivered to alice's mailbox with its id")
		}
		if bytes.Equal(res.Payload[:sphinx.PayloadTagLength], make([]byte, sphinx.PayloadTagLength)) {
			t.Fatal("the loop's payload arrives in the clear")
		}
		if body, err := sphinx.DecryptSURBPayload(n.geo, res.Payload, surbKeys); err != nil || !bytes.HasPrefix(body, []byte("loop")) {
			t.Fatalf("loop body: %v", err)
		}
	})

	t.Run("drop", func(t *testing.T) {
		drop, err := s.Drop(n.doc, alice.Provider)
		if err != nil {
			t.Fatal(err)
		}
		pkt, err := sphinx.NewPacket(rng, n.geo, drop.Hops, nil)
		if err != nil {
			t.Fatal(err)
		}
		res := walk(t, n, drop, pkt)
		if !route.IsDropRecipient(res.Recipient) {
			t.Fatal("drop not delivered to the drop recipient")
		}
	})
}
