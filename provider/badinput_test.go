package provider

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
	"github.com/chorus-mixnet/chorus/provider/users"
)

// served checks, while an attack runs, that Bob still gets his mail: Alice
// sends him a message, he retrieves it, acknowledges it, and the mailbox
// is empty again. Rounds counts how often.
func served(ctx context.Context, t *testing.T, n *testNet, alice, bob *testClient, rounds *atomic.Int64) {
	for i := 0; ctx.Err() == nil; i++ {
		alice.send(link.SendPacket{Packet: n.packet(bob.mailbox, n.forwardPayload(nil, text(i)))})
		for {
			m := bob.retrieve()
			if !m.Empty {
				if got := n.userPayload(m.Payload); !bytes.HasPrefix(got, text(i)) {
					t.Errorf("Bob got %q, want %q", got[:11], text(i))
					return
				}
				time.Sleep(60 * time.Millisecond)
				bob.send(link.MessageAck{Seq: m.Seq})
				break
			}
			time.Sleep(60 * time.Millisecond) // the retrieval interval is 50ms
		}
		rounds.Add(1)
		time.Sleep(60 * time.Millisecond)
	}
}

// TestBadInput: malformed frames, commands only a provider sends, floods
// of retrievals and of packets, and garbage packets are refused and
// counted, while another client keeps being served.
func TestBadInput(t *testing.T) {
	n := startNet(t, func(c *Config) { c.ControlBurst = 8 }, nil)
	alice, bob := n.connect(), n.connect()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rounds atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { served(ctx, t, n, alice, bob, &rounds) })
	waitFor(t, "Bob served", func() bool { return rounds.Load() >= 1 })

	// A registered client that sends garbage after a good handshake.
	k := n.register()
	for range 3 {
		var d net.Dialer
		nc, err := d.Dial("tcp", n.p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c, err := link.Client(context.Background(), nc, link.Config{PrivateKey: k, PacketLength: n.geo.PacketLength()},
			pkitest.Link(provName).Public())
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, link.FrameLength(n.geo.PacketLength())+16)
		rand.Read(junk)
		nc.Write(junk)
		if _, err := c.Recv(context.Background()); err == nil {
			t.Fatal("link alive after a malformed frame")
		}
		c.Close()
	}
	waitFor(t, "malformed frames counted", func() bool {
		return n.metric("chorus_provider_client_disconnects_total", "reason", "malformed") == 3 &&
			n.metric("chorus_link_malformed_frames_total", "kind", "decrypt") >= 3
	}, func() string {
		return fmt.Sprintf("disconnects{malformed} %v, link malformed %v, disconnects{error} %v",
			n.metric("chorus_provider_client_disconnects_total", "reason", "malformed"),
			n.metric("chorus_link_malformed_frames_total", "kind", "decrypt"),
			n.metric("chorus_provider_client_disconnects_total", "reason", "error"))
	})

	// Commands that only a provider sends.
	for _, cmd := range []link.Command{link.Message{Empty: true}, link.Consensus{Status: link.ConsensusNotFound}} {
		c := n.connectKey(k)
		c.send(cmd)
		if _, err := c.c.Recv(context.Background()); err == nil {
			t.Fatal("link alive after an unexpected command")
		}
	}
	waitFor(t, "unexpected commands counted", func() bool {
		return n.metric("chorus_provider_client_disconnects_total", "reason", "unexpected_command") == 2
	})

	// A flood of retrievals: each gets exactly one answer, empty beyond
	// the client's rate.
	flooder := n.connect()
	const retrievals = 500
	var answers atomic.Int64
	wg.Go(func() {
		for range retrievals {
			if _, ok := flooder.recv().(link.Message); ok {
				answers.Add(1)
			}
		}
	})
	for range retrievals {
		flooder.send(link.RetrieveMessage{})
	}
	waitFor(t, "every retrieval answered", func() bool { return answers.Load() == retrievals })
	// The bucket holds 8 and refills 20 a second, so all but a few are
	// over the rate however slowly they were handled.
	limited := n.metric("chorus_provider_rate_limited_total", "command", "retrieve")
	if limited == 0 {
		t.Errorf("no retrieval of %d rate-limited", retrievals)
	}
	t.Logf("%v of %d retrievals over the rate, answered empty", limited, retrievals)
	// A flood of acknowledgements and consensus requests is ignored beyond
	// the rate.
	for range 100 {
		flooder.send(link.MessageAck{Seq: 1})
	}
	waitFor(t, "acknowledgements over the rate counted", func() bool {
		return n.metric("chorus_provider_rate_limited_total", "command", "ack") > 0
	})

	// Garbage packets in valid frames: unwrapping fails, each is counted.
	invalid0 := n.metric("chorus_mix_packets_dropped_total", "reason", "invalid")
	garbage := n.connect()
	junk := make([]byte, n.geo.PacketLength())
	for range 100 {
		rand.Read(junk)
		garbage.send(link.SendPacket{Packet: junk})
	}
	waitFor(t, "garbage packets dropped", func() bool {
		return n.metric("chorus_mix_packets_dropped_total", "reason", "invalid")-invalid0 == 100
	})
	// A packet flood beyond the client's rate (about 60/s, 300 burst with
	// the test parameters) is dropped at the door.
	for range 1000 {
		garbage.send(link.SendPacket{Packet: junk})
	}
	waitFor(t, "packets over the rate counted", func() bool {
		return n.metric("chorus_provider_rate_limited_total", "command", "send") > 0
	})

	// Connections that send random bytes instead of a handshake.
	for range 20 {
		nc, err := net.Dial("tcp", n.p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1232)
		rand.Read(b)
		nc.Write(b)
		nc.Close()
	}
	before := rounds.Load()
	waitFor(t, "Bob served after the attacks", func() bool { return rounds.Load() >= before+3 })
	cancel()
	wg.Wait()
	t.Logf("Bob was served %d times during the attacks", rounds.Load())
}

// TestRegistrationFlood: under open registration a flood of new keys from
// one address registers only the per-address allowance; the rest are
// refused and counted, and registered clients keep being served.
func TestRegistrationFlood(t *testing.T) {
	n := startNet(t, func(c *Config) {
		c.Registration = users.RegistrationOpen
		c.PerAddressLimit = 3
		c.RegistrationWindow = time.Hour
	}, nil)
	alice, bob := n.connect(), n.connect() // added by the operator
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rounds atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { served(ctx, t, n, alice, bob, &rounds) })

	const flood = 40
	var ok, refused atomic.Int64
	var fwg sync.WaitGroup
	for range flood {
		fwg.Go(func() {
			c, err := n.dialKey(newKey(t))
			switch {
			case err == nil:
				ok.Add(1)
				c.Close()
			case errors.Is(err, link.ErrRefused):
				refused.Add(1)
			default:
				t.Errorf("dial: %v", err)
			}
		})
	}
	fwg.Wait()
	if ok.Load() != 3 || refused.Load() != flood-3 {
		t.Fatalf("%d registered, %d refused; want 3 and %d", ok.Load(), refused.Load(), flood-3)
	}
	if v := n.metric("chorus_provider_users_registrations_refused_total", "reason", "rate_limited"); v != flood-3 {
		t.Errorf("refused{rate_limited} = %v, want %d", v, flood-3)
	}
	if v := n.metric("chorus_provider_users_registrations_total"); v != 3 {
		t.Errorf("registrations = %v, want 3", v)
	}
	before := rounds.Load()
	waitFor(t, "Bob served after the flood", func() bool { return rounds.Load() >= before+3 })
	cancel()
}
