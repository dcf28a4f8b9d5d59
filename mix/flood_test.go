package mix

import (
	"context"
	"crypto/rand"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

// flood attacks the mix at addr as provider-1, a peer the document allows,
// until ctx ends: random packets on a link, links that send random frames
// after the handshake, and connections that send random bytes instead of
// a handshake.
func flood(ctx context.Context, t testing.TB, n *smallNet, wg *sync.WaitGroup) {
	mixKey := node(t, n.doc, "mix-0-0").LinkKey
	cfg := link.Config{PrivateKey: pkitest.Link("provider-1"), PacketLength: n.pl}
	garbage := make([][]byte, 16)
	for i := range garbage {
		garbage[i] = make([]byte, n.pl)
		rand.Read(garbage[i])
		garbage[i][0], garbage[i][1] = 0, 0 // the right AD: each costs a MAC check per key
	}
	wg.Go(func() { // random packets in valid frames
		for ctx.Err() == nil {
			c, err := link.Dial(ctx, "tcp", n.mix.addr, cfg, mixKey)
			if err != nil {
				continue
			}
			for i := 0; ctx.Err() == nil; i++ {
				if c.Send(ctx, link.SendPacket{Packet: garbage[i%len(garbage)]}) != nil {
					break
				}
			}
			c.Close()
		}
	})
	wg.Go(func() { // random frames after a good handshake
		junk := make([]byte, 4*(link.FrameLength(n.pl)+16))
		rand.Read(junk)
		var d net.Dialer
		for ctx.Err() == nil {
			nc, err := d.DialContext(ctx, "tcp", n.mix.addr)
			if err != nil {
				continue
			}
			c, err := link.Client(ctx, nc, cfg, mixKey)
			if err == nil {
				nc.Write(junk)
				c.Close()
			}
		}
	})
	wg.Go(func() { // random bytes instead of a handshake
		junk := make([]byte, 1232)
		rand.Read(junk)
		var d net.Dialer
		for ctx.Err() == nil {
			nc, err := d.DialContext(ctx, "tcp", n.mix.addr)
			if err != nil {
				continue
			}
			nc.Write(junk)
			nc.Close()
		}
	})
}

// TestGarbageFlood: while an allowed peer floods the mix with garbage,
// valid traffic from another peer still gets through, all of it.
func TestGarbageFlood(t *testing.T) {
	n := startSmallNet(t, nil)
	const count = 300
	pkts := make([][]byte, count)
	for i := range pkts {
		pkts[i] = newPacket(t, n.doc, n.path2(t, 0), nil)
	}
	c, err := dialAs(t, "provider-0", n.mix.addr, node(t, n.doc, "mix-0-0").LinkKey, n.pl)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	flood(ctx, t, n, &wg)
	waitFor(t, "the flood under way", func() bool { return dropped(n.mix, "invalid") > 100 })

	invalid0 := dropped(n.mix, "invalid")
	start := time.Now()
	for _, p := range pkts {
		send(t, c, p)
	}
	waitFor(t, "every valid packet forwarded", func() bool { return n.sink.count() == count })
	elapsed := time.Since(start)
	garbage := dropped(n.mix, "invalid") - invalid0
	cancel()
	wg.Wait()
	t.Logf("under the flood: %d valid packets forwarded in %v (%.0f/s) while %.0f garbage packets were dropped (%.0f/s); %v malformed frames, %v failed handshakes",
		count, elapsed.Round(time.Millisecond), count/elapsed.Seconds(), garbage, garbage/elapsed.Seconds(),
		labelled(t, n.mix.reg, "chorus_link_malformed_frames_total", "kind", "decrypt"),
		labelled(t, n.mix.reg, "chorus_link_handshakes_failed_total", "reason", "protocol")+
			labelled(t, n.mix.reg, "chorus_link_handshakes_failed_total", "reason", "io"))
	if v := testutil.ToFloat64(n.mix.p.m.in); v < count+garbage {
		t.Errorf("packets in %v, want at least %v", v, count+garbage)
	}
}
