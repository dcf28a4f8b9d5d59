package mix

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
)

// send sends pkt on c.
func send(t testing.TB, c *link.Conn, pkt []byte) {
	t.Helper()
	if err := c.Send(context.Background(), link.SendPacket{Packet: pkt}); err != nil {
		t.Fatal(err)
	}
}

// labelled sums the counter name over the series with label=value.
func labelled(t testing.TB, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					sum += m.GetCounter().GetValue()
					found = true
				}
			}
		}
	}
	if !found {
		t.Fatalf("no metric %s{%s=%q}", name, label, value)
	}
	return sum
}

// TestDrops feeds the layer-0 mix, over a link from a provider, a valid
// packet, its replay, garbage, a packet for a key the mix does not hold,
// and one asking for too long a delay; only the first gets through, and
// each of the others is counted under its reason. Links from a stranger
// and from a node of the wrong layer are refused.
func TestDrops(t *testing.T) {
	n := startSmallNet(t, nil)
	mixDesc := node(t, n.doc, "mix-0-0")
	c, err := dialAs(t, "provider-0", n.mix.addr, mixDesc.LinkKey, n.pl)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	valid := newPacket(t, n.doc, n.path2(t, 0), []byte("hello"))
	send(t, c, valid)
	waitFor(t, "the valid packet at the sink", func() bool { return n.sink.count() == 1 })

	send(t, c, valid)
	waitFor(t, "the replay dropped", func() bool { return dropped(n.mix, "replay") == 1 })

	garbage := make([]byte, n.pl)
	rand.Read(garbage)
	send(t, c, garbage)
	waitFor(t, "garbage dropped", func() bool { return dropped(n.mix, "invalid") == 1 })

	stranger, err := keys.GenerateSphinxKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := n.path2(t, 0)
	path[0].PublicKey = stranger.Public() // not a key the mix holds, for any epoch
	send(t, c, newPacket(t, n.doc, path, nil))
	waitFor(t, "unknown-key packet dropped", func() bool { return dropped(n.mix, "invalid") == 2 })

	far := n.path2(t, 0)
	far[0] = hopFor(t, mixDesc, n.epoch+2, sphinx.NodeDelay{}) // a key for two epochs ahead: not tried
	send(t, c, newPacket(t, n.doc, far, nil))
	waitFor(t, "far-epoch packet dropped", func() bool { return dropped(n.mix, "invalid") == 3 })

	send(t, c, newPacket(t, n.doc, n.path2(t, n.doc.Parameters.MaxDelay+time.Second), nil))
	waitFor(t, "too-late packet dropped", func() bool { return dropped(n.mix, dropTooLate) == 1 })

	if got := n.sink.count(); got != 1 {
		t.Errorf("the sink received %d packets, want 1", got)
	}
	if v := testutil.ToFloat64(n.mix.p.m.in); v != 6 {
		t.Errorf("packets in: %v, want 6", v)
	}

	// Peers the document does not allow to send to layer 0.
	for _, name := range []string{"stranger", "mix-2-0"} {
		if _, err := dialAs(t, name, n.mix.addr, mixDesc.LinkKey, n.pl); !errors.Is(err, link.ErrRefused) {
			t.Errorf("link from %s: %v, want ErrRefused", name, err)
		}
	}
	waitFor(t, "refusals counted", func() bool {
		return labelled(t, n.mix.reg, "chorus_link_peers_refused_total", "side", "listen") == 2
	})
}

// TestReplayAfterRestart replays a packet to a mix that was restarted
// with the same data directory: the replay filter and the keys survive.
func TestReplayAfterRestart(t *testing.T) {
	n := startSmallNet(t, nil)
	mixDesc := node(t, n.doc, "mix-0-0")
	c, err := dialAs(t, "provider-0", n.mix.addr, mixDesc.LinkKey, n.pl)
	if err != nil {
		t.Fatal(err)
	}
	valid := newPacket(t, n.doc, n.path2(t, 0), []byte("once"))
	send(t, c, valid)
	waitFor(t, "the packet at the sink", func() bool { return n.sink.count() == 1 })
	c.Close()

	if err := n.mix.stop(); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	waitFor(t, "the old address free", func() bool {
		ln, err = net.Listen("tcp", n.mix.addr)
		return err == nil
	})
	s := n.mix.p.cfg.Schedule
	again := startNode(t, n.dir, s, "mix-0-0", 0, ln, n.mix.dir, func(c *Config) { c.DisableLoops = true })
	waitForReady(t, again)

	c, err = dialAs(t, "provider-0", again.addr, mixDesc.LinkKey, n.pl)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send(t, c, valid)
	waitFor(t, "the replay dropped after the restart", func() bool { return dropped(again, "replay") == 1 })
	send(t, c, newPacket(t, n.doc, n.path2(t, 0), []byte("fresh")))
	waitFor(t, "a fresh packet forwarded", func() bool { return n.sink.count() == 2 })
}

// TestDrain stops a mix while it holds packets for their delays: Run
// returns only after they have left.
func TestDrain(t *testing.T) {
	n := startSmallNet(t, nil)
	c, err := dialAs(t, "provider-0", n.mix.addr, node(t, n.doc, "mix-0-0").LinkKey, n.pl)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const count = 20
	for range count {
		send(t, c, newPacket(t, n.doc, n.path2(t, 80*time.Millisecond), nil))
	}
	waitFor(t, "the packets taken in", func() bool { return testutil.ToFloat64(n.mix.p.m.in) == count })
	if err := n.mix.stop(); err != nil {
		t.Fatal(err)
	}
	if d := dropCounts(n.mix); len(d) != 0 {
		t.Errorf("drops during the drain: %v", d)
	}
	waitFor(t, "every packet at the sink", func() bool { return n.sink.count() == count })
}
