package provider

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/mix"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/mixtest"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
	"github.com/chorus-mixnet/chorus/provider/providertest"
	"github.com/chorus-mixnet/chorus/provider/users"
)

func randomID() (id [16]byte) {
	rand.Read(id[:])
	return id
}

// queued is the number of messages in mailbox.
func (n *testNet) queued(mailbox [32]byte) int {
	_, _, remaining, ok, err := n.p.spool.Peek(mailbox)
	if err != nil {
		n.t.Fatal(err)
	}
	if !ok {
		return 0
	}
	return remaining + 1
}

// userPayload returns the user payload of a stored forward entry.
func (n *testNet) userPayload(entry []byte) []byte {
	n.t.Helper()
	d, err := sphinx.ParseDelivery(n.geo, entry)
	if err != nil {
		n.t.Fatalf("parse stored entry: %v", err)
	}
	if d.IsSURBReply {
		n.t.Fatal("stored entry is a SURB reply, want a message")
	}
	return d.Payload[payloadHeader+n.geo.SURBLength():]
}

func text(i int) []byte { return fmt.Appendf(nil, "message %03d", i) }

// TestStoreRetrieveAck: Alice's packets for Bob are stored in Bob's
// mailbox; Bob retrieves each exactly once, in order, the same entry
// until he acknowledges it; Alice's SURB-ACKs come back into her own
// mailbox as SURB replies that decrypt to an all-zero body, and are not
// acknowledged in turn.
func TestStoreRetrieveAck(t *testing.T) {
	n := startNet(t, nil, nil)
	alice, bob := n.connect(), n.connect()
	const count = 5
	tokens := map[[16]byte][]byte{}
	for i := range count {
		id := randomID()
		surb, surbKeys := n.surb(provName, alice.mailbox, id)
		tokens[id] = surbKeys
		alice.send(link.SendPacket{Packet: n.packet(bob.mailbox, n.forwardPayload(surb, text(i)))})
		waitFor(t, "the message stored", func() bool { return n.queued(bob.mailbox) == i+1 })
	}
	for i := range count {
		m := bob.retrieve()
		if m.Empty {
			t.Fatalf("retrieval %d: empty", i)
		}
		if got := n.userPayload(m.Payload); !bytes.HasPrefix(got, text(i)) {
			t.Fatalf("retrieval %d: got %q, want %q", i, got[:11], text(i))
		}
		if m.QueueHint != uint32(count-i-1) {
			t.Errorf("retrieval %d: queue hint %d, want %d", i, m.QueueHint, count-i-1)
		}
		again := bob.retrieve()
		if again.Empty || again.Seq != m.Seq || !bytes.Equal(again.Payload, m.Payload) {
			t.Fatalf("retrieval %d without an acknowledgement returned another entry", i)
		}
		bob.send(link.MessageAck{Seq: m.Seq})
	}
	if m := bob.retrieve(); !m.Empty || len(m.Payload) != 0 {
		t.Fatalf("mailbox not empty after every acknowledgement: %+v", m)
	}

	waitFor(t, "every ACK in Alice's mailbox", func() bool { return n.queued(alice.mailbox) == count })
	for i := range count {
		m := alice.retrieve()
		d, err := sphinx.ParseDelivery(n.geo, m.Payload)
		if err != nil || !d.IsSURBReply {
			t.Fatalf("ACK %d: %v, reply %v", i, err, d.IsSURBReply)
		}
		surbKeys, ok := tokens[d.SURBID]
		if !ok {
			t.Fatalf("ACK %d: unknown SURB ID", i)
		}
		delete(tokens, d.SURBID)
		body, err := sphinx.DecryptSURBPayload(n.geo, d.Payload, surbKeys)
		if err != nil {
			t.Fatalf("ACK %d: %v", i, err)
		}
		if !bytes.Equal(body, make([]byte, len(body))) {
			t.Fatalf("ACK %d: body not all zero", i)
		}
		alice.send(link.MessageAck{Seq: m.Seq})
	}
	if m := alice.retrieve(); !m.Empty {
		t.Fatal("Alice's mailbox not empty")
	}
	if v := n.metric("chorus_provider_replies_sent_total", "kind", "ack"); v != count {
		t.Errorf("ACKs sent: %v, want %d (one per message, none for the replies)", v, count)
	}
	if v := n.metric("chorus_provider_spool_messages_delivered_total"); v != 2*count {
		t.Errorf("messages delivered: %v, want %d", v, 2*count)
	}
	if v := n.metric("chorus_provider_deliveries_total", "kind", "reply"); v != count {
		t.Errorf("replies delivered: %v, want %d", v, count)
	}
}

// TestMailboxIsolation: a client can neither retrieve nor acknowledge
// another client's messages: the mailbox is the link's.
func TestMailboxIsolation(t *testing.T) {
	n := startNet(t, nil, nil)
	alice, bob, mallory := n.connect(), n.connect(), n.connect()
	alice.send(link.SendPacket{Packet: n.packet(bob.mailbox, n.forwardPayload(nil, text(1)))})
	waitFor(t, "the message stored", func() bool { return n.queued(bob.mailbox) == 1 })

	if m := mallory.retrieve(); !m.Empty {
		t.Fatal("Mallory retrieved from a mailbox that is not hers")
	}
	m := bob.retrieve()
	if m.Empty {
		t.Fatal("Bob's message missing")
	}
	for _, seq := range []uint64{m.Seq, 0, 1, 2, m.Seq + 1} {
		mallory.send(link.MessageAck{Seq: seq})
	}
	if m := mallory.retrieve(); !m.Empty { // answered after her acks were handled
		t.Fatal("Mallory's mailbox not empty")
	}
	again := bob.retrieve()
	if again.Empty || again.Seq != m.Seq {
		t.Fatal("Mallory's acknowledgement deleted Bob's message")
	}
	if got := n.userPayload(again.Payload); !bytes.HasPrefix(got, text(1)) {
		t.Fatalf("Bob got %q", got[:11])
	}
}

// TestClosedRegistration: under closed registration a key the operator
// did not add is refused, and counted; once added it connects.
func TestClosedRegistration(t *testing.T) {
	n := startNet(t, nil, nil)
	k := newKey(t)
	if _, err := n.dialKey(k); !errors.Is(err, link.ErrRefused) {
		t.Fatalf("unregistered key: %v, want ErrRefused", err)
	}
	if v := n.metric("chorus_provider_users_registrations_refused_total", "reason", "closed"); v != 1 {
		t.Errorf("refusals{closed} = %v, want 1", v)
	}
	if err := n.p.users.Add(k.Public()); err != nil {
		t.Fatal(err)
	}
	c := n.connectKey(k)
	if m := c.retrieve(); !m.Empty {
		t.Fatal("new client's mailbox not empty")
	}
}

// TestMailboxLimits: a mailbox at its count or byte limit refuses more
// packets: they are not stored and not acknowledged (their senders will
// retransmit), and nothing is evicted for room. Room made by the owner's
// acknowledgement takes the next one.
func TestMailboxLimits(t *testing.T) {
	geo, err := sphinx.NewGeometry(pkitest.Geometry(1).Hops, pkitest.Geometry(1).UserPayloadLength, true)
	if err != nil {
		t.Fatal(err)
	}
	entry := geo.DeliveryLength()
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"count", func(c *Config) { c.MaxMessages = 3 }},
		{"bytes", func(c *Config) { c.MaxBytes = int64(3*entry + entry/2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startNet(t, tc.mutate, nil)
			alice, bob := n.connect(), n.connect()
			ids := make([][16]byte, 6)
			send := func(i int) {
				ids[i] = randomID()
				surb, _ := n.surb(otherName, [32]byte{1}, ids[i])
				alice.send(link.SendPacket{Packet: n.packet(bob.mailbox, n.forwardPayload(surb, text(i)))})
				waitFor(t, "the packet handled", func() bool {
					return n.metric("chorus_provider_deliveries_total", "kind", "message") == float64(i+1) && n.p.storing.Load() == 0 &&
						n.metric("chorus_provider_spool_messages_stored_total")+n.metric("chorus_provider_deliveries_refused_total", "reason", "mailbox_full") == float64(i+1)
				})
			}
			for i := range 5 {
				send(i)
			}
			if v := n.metric("chorus_provider_deliveries_refused_total", "reason", "mailbox_full"); v != 2 {
				t.Fatalf("refused{mailbox_full} = %v, want 2", v)
			}
			waitFor(t, "three ACKs", func() bool { return len(n.relay.Arrivals()) >= 3 })
			// Let a wrongly sent ACK show up before counting.
			waitFor(t, "the store queue idle", func() bool { return n.p.storing.Load() == 0 })
			if v := n.metric("chorus_provider_replies_sent_total", "kind", "ack"); v != 3 {
				t.Fatalf("ACKs sent: %v, want 3", v)
			}
			acked := map[[16]byte]bool{}
			for _, a := range n.relay.Arrivals() {
				acked[a.SURBID] = true
			}
			for i := range 5 {
				if acked[ids[i]] != (i < 3) {
					t.Errorf("message %d: acknowledged %v", i, acked[ids[i]])
				}
			}
			for r := range []string{"age", "count", "bytes"} {
				if v := n.metric("chorus_provider_spool_messages_evicted_total", "reason", []string{"age", "count", "bytes"}[r]); v != 0 {
					t.Errorf("evicted: %v", v)
				}
			}
			m := bob.retrieve()
			if got := n.userPayload(m.Payload); !bytes.HasPrefix(got, text(0)) {
				t.Fatalf("head is %q", got[:11])
			}
			bob.send(link.MessageAck{Seq: m.Seq})
			bob.retrieve() // the ack is handled
			send(5)
			if n.queued(bob.mailbox) != 3 {
				t.Fatalf("after room was made: %d queued, want 3", n.queued(bob.mailbox))
			}
			waitFor(t, "the fourth ACK", func() bool { return len(n.relay.Arrivals()) == 4 })
		})
	}
}

// TestAgeExpiry: messages older than MaxAge are evicted, and counted.
func TestAgeExpiry(t *testing.T) {
	n := startNet(t, func(c *Config) { c.MaxAge = 300 * time.Millisecond; c.ExpireInterval = 20 * time.Millisecond }, nil)
	alice, bob := n.connect(), n.connect()
	alice.send(link.SendPacket{Packet: n.packet(bob.mailbox, n.forwardPayload(nil, text(1)))})
	waitFor(t, "the message evicted by age", func() bool {
		return n.metric("chorus_provider_spool_messages_evicted_total", "reason", "age") == 1
	})
	if m := bob.retrieve(); !m.Empty {
		t.Fatal("expired message retrieved")
	}
	if v := n.metric("chorus_provider_spool_messages_stored_total"); v != 1 {
		t.Fatalf("stored %v, want 1", v)
	}
}

// TestACKAfterDurable: every SURB-ACK leaves the provider only after the
// store of its message returned. The store is slowed down and the relay
// checks, as each ACK reaches the next hop, that its message's store had
// returned and that the message is in the spool.
func TestACKAfterDurable(t *testing.T) {
	var (
		mu         sync.Mutex
		stored     = map[string]bool{} // message text → its Put returned nil
		violations []string
	)
	var n *testNet
	n = startNet(t, nil, func(p *Provider) {
		put := p.put
		p.put = func(mailbox [32]byte, entry []byte) error {
			time.Sleep(20 * time.Millisecond) // a slow disk
			err := put(mailbox, entry)
			if err == nil {
				d, _ := sphinx.ParseDelivery(p.geometry(), entry)
				if !d.IsSURBReply {
					mu.Lock()
					stored[string(d.Payload[payloadHeader+p.geometry().SURBLength():][:11])] = true
					mu.Unlock()
				}
			}
			return err
		}
	})
	alice, bob := n.connect(), n.connect()
	const count = 20
	msgOf := map[[16]byte]string{}
	var pkts [][]byte
	for i := range count {
		id := randomID()
		msgOf[id] = string(text(i))
		surb, _ := n.surb(otherName, [32]byte{1}, id)
		pkts = append(pkts, n.packet(bob.mailbox, n.forwardPayload(surb, text(i))))
	}
	n.relay.OnArrive(func(a providertest.Arrival) {
		msg := msgOf[a.SURBID]
		mu.Lock()
		ok := stored[msg]
		held := len(stored)
		mu.Unlock()
		if st := n.p.spool.Stats(); !ok || st.Messages < int64(held) {
			mu.Lock()
			violations = append(violations, fmt.Sprintf("ACK for %q arrived before its store returned (%v) or the spool holds %d < %d", msg, ok, st.Messages, held))
			mu.Unlock()
		}
	})
	for _, pkt := range pkts {
		alice.send(link.SendPacket{Packet: pkt})
	}
	waitFor(t, "every ACK", func() bool { return len(n.relay.Arrivals()) == count })
	mu.Lock()
	defer mu.Unlock()
	for _, v := range violations {
		t.Error(v)
	}
	if n.queued(bob.mailbox) != count {
		t.Errorf("%d messages stored, want %d", n.queued(bob.mailbox), count)
	}
}

// TestEchoDropUnknown: the echo service answers through the SURB with the
// same user payload and stores nothing; drop decoys are discarded and
// counted; packets for mailboxes nobody owns are dropped and counted; a
// SURB that starts at the mix is answered through the mix; one that starts
// at a node the provider does not send to is dropped and counted.
func TestEchoDropUnknown(t *testing.T) {
	n := startNet(t, nil, nil)
	alice := n.connect()
	id := randomID()
	surb, surbKeys := n.surb(otherName, [32]byte{7}, id)
	ping := []byte("ping 42")
	alice.send(link.SendPacket{Packet: n.packet(sphinx.EchoRecipient(), n.forwardPayload(surb, ping))})
	waitFor(t, "the echo answer", func() bool { return len(n.relay.Arrivals()) == 1 })
	a := n.relay.Arrivals()[0]
	if !a.IsReply || a.SURBID != id || a.Recipient != [32]byte{7} {
		t.Fatalf("echo answer: reply %v, recipient %x", a.IsReply, a.Recipient[:4])
	}
	body, err := sphinx.DecryptSURBPayload(n.geo, a.Payload, surbKeys)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body[:n.geo.UserPayloadLength()][:len(ping)], ping) || !bytes.Equal(body[len(ping):], make([]byte, len(body)-len(ping))) {
		t.Fatalf("echo body %q", body[:16])
	}

	alice.send(link.SendPacket{Packet: n.packet(sphinx.EchoRecipient(), n.forwardPayload(nil, ping))})
	alice.send(link.SendPacket{Packet: n.packet(sphinx.DropRecipient(), n.forwardPayload(nil, ping))})
	alice.send(link.SendPacket{Packet: n.packet([32]byte{1, 2, 3}, n.forwardPayload(nil, ping))})
	// A SURB made to start at the mix: the reply goes straight to it.
	id2 := randomID()
	path := []sphinx.PathHop{n.hop(mixName, delay(0)), n.hop(otherName, sphinx.Recipient{ID: [32]byte{8}}, sphinx.SURBReply{ID: id2})}
	viaMix, surbKeys2, err := sphinx.NewSURB(rand.Reader, n.geo, path)
	if err != nil {
		t.Fatal(err)
	}
	alice.send(link.SendPacket{Packet: n.packet(sphinx.EchoRecipient(), n.forwardPayload(viaMix, ping))})
	// One that starts at a node the provider never sends to: dropped.
	path = []sphinx.PathHop{n.hop(otherName, sphinx.Recipient{ID: [32]byte{8}}, sphinx.SURBReply{ID: id2})}
	elsewhere, _, err := sphinx.NewSURB(rand.Reader, n.geo, path)
	if err != nil {
		t.Fatal(err)
	}
	alice.send(link.SendPacket{Packet: n.packet(sphinx.EchoRecipient(), n.forwardPayload(elsewhere, ping))})
	waitFor(t, "every packet counted", func() bool {
		return n.metric("chorus_provider_replies_dropped_total", "kind", "echo", "reason", "no_surb") == 1 &&
			n.metric("chorus_provider_deliveries_total", "kind", "drop") == 1 &&
			n.metric("chorus_provider_deliveries_refused_total", "reason", "unknown_mailbox") == 1 &&
			n.metric("chorus_provider_replies_dropped_total", "kind", "echo", "reason", "first_hop") == 1 &&
			len(n.relay.Arrivals()) == 2
	})
	if a := n.relay.Arrivals()[1]; a.SURBID != id2 {
		t.Fatal("second echo answer has the wrong SURB ID")
	} else if body, err := sphinx.DecryptSURBPayload(n.geo, a.Payload, surbKeys2); err != nil || !bytes.HasPrefix(body, ping) {
		t.Fatalf("echo through a SURB that starts at the mix: %v", err)
	}
	if v := n.metric("chorus_provider_replies_sent_total", "kind", "echo"); v != 2 {
		t.Errorf("echo answers %v, want 2", v)
	}
	if st := n.p.spool.Stats(); st.Messages != 0 {
		t.Errorf("the echo service, decoys or strangers' packets stored %d messages", st.Messages)
	}
}

// getConsensus asks for epoch's document and returns the reassembled
// bytes, or the status.
func (tc *testClient) getConsensus(epoch uint64) ([]byte, link.ConsensusStatus) {
	tc.t.Helper()
	tc.send(link.GetConsensus{Epoch: epoch})
	var raw []byte
	for next := uint32(0); ; next++ {
		c, ok := tc.recv().(link.Consensus)
		if !ok || c.Epoch != epoch {
			tc.t.Fatalf("unexpected answer to GetConsensus")
		}
		if c.Status != link.ConsensusOK {
			return nil, c.Status
		}
		if c.Chunk != next {
			tc.t.Fatalf("chunk %d, want %d", c.Chunk, next)
		}
		raw = append(raw, c.Data...)
		if c.Chunk == c.Chunks-1 {
			return raw, link.ConsensusOK
		}
	}
}

// TestConsensus: GetConsensus returns the signed document as the source
// served it, in chunks, which verifies against the authority's key; an
// epoch the provider does not hold is NotFound, one long gone is Gone.
func TestConsensus(t *testing.T) {
	n := startNet(t, nil, nil)
	c := n.connect()
	e := n.sched.Now()
	raw, status := c.getConsensus(e)
	if status != link.ConsensusOK {
		t.Fatalf("status %v", status)
	}
	_, want, _ := n.dir.Document(context.Background(), e)
	if !bytes.Equal(raw, want) {
		t.Fatal("served document differs from the source's bytes")
	}
	if len(raw) <= n.geo.PacketLength() {
		t.Logf("document of %d bytes fits one chunk", len(raw))
	}
	doc, err := pki.VerifyDocument(raw, []keys.IdentityPublicKey{authority.Public()}, 1)
	if err != nil || doc.Epoch != e {
		t.Fatalf("verify served document: %v", err)
	}
	if _, s := c.getConsensus(e + 5); s != link.ConsensusNotFound {
		t.Errorf("future epoch: status %v, want NotFound", s)
	}
	if _, s := c.getConsensus(e - 5); s != link.ConsensusGone {
		t.Errorf("old epoch: status %v, want Gone", s)
	}
}

// TestLargeConsensusChunks: a document larger than a frame goes out in
// several chunks that reassemble to the same bytes.
func TestLargeConsensusChunks(t *testing.T) {
	n := startNet(t, nil, nil)
	c := n.connect()
	big := bytes.Repeat([]byte("0123456789"), 3*n.geo.PacketLength()/10+7)
	doc := &pki.Document{Epoch: 99}
	n.p.docs.put(doc, big)
	raw, s := c.getConsensus(99)
	if s != link.ConsensusOK || !bytes.Equal(raw, big) {
		t.Fatalf("status %v, %d of %d bytes", s, len(raw), len(big))
	}
}

// TestLoops: the provider sends λM loop cover traffic through the mix
// layer back to itself, and sees it come back.
func TestLoops(t *testing.T) {
	n := startNet(t, func(c *Config) { c.Pipeline.DisableLoops = false }, nil)
	waitFor(t, "loops back", func() bool { return n.metric("chorus_mix_loop_received_total") >= 3 })
	if st := n.p.spool.Stats(); st.Messages != 0 {
		t.Errorf("loop packets stored: %d", st.Messages)
	}
}

// TestOneLinkPerClient: a client that connects again replaces its old
// link; MaxClients bounds the links.
func TestOneLinkPerClient(t *testing.T) {
	n := startNet(t, func(c *Config) { c.MaxClients = 2 }, nil)
	k := n.register()
	first := n.connectKey(k)
	second := n.connectKey(k)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := first.c.Recv(ctx); err == nil {
		t.Fatal("old link still open")
	}
	if m := second.retrieve(); !m.Empty {
		t.Fatal("unexpected message")
	}
	waitFor(t, "the replaced link counted", func() bool {
		return n.metric("chorus_provider_client_disconnects_total", "reason", "replaced") == 1
	})
	n.connect()
	if _, err := n.dialKey(n.register()); !errors.Is(err, link.ErrRefused) {
		t.Fatalf("third client: %v, want ErrRefused", err)
	}
	if v := n.metric("chorus_provider_clients_refused_total"); v != 1 {
		t.Errorf("clients refused %v, want 1", v)
	}
	if v := n.metric("chorus_provider_clients_connected"); v != 2 {
		t.Errorf("clients connected %v, want 2", v)
	}
}

// TestRunOnceAndClose: Run refuses a second call, Close is idempotent,
// and a stopped provider has closed its client links.
func TestRunOnceAndClose(t *testing.T) {
	n := startNet(t, nil, nil)
	c := n.connect()
	if err := n.p.Run(context.Background()); err == nil {
		t.Fatal("second Run did not fail")
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if err := n.p.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.c.Recv(ctx); err == nil {
		t.Fatal("client link open after Run returned")
	}
	if v := n.metric("chorus_provider_client_disconnects_total", "reason", "shutdown"); v != 1 {
		t.Errorf("disconnects{shutdown} = %v; closed %v error %v timeout %v", v, n.metric("chorus_provider_client_disconnects_total", "reason", "closed"), n.metric("chorus_provider_client_disconnects_total", "reason", "error"), n.metric("chorus_provider_client_disconnects_total", "reason", "timeout"))
	}
}

// TestNewStartsNothing: New opens files and listens nowhere; a provider
// that is never run can be closed.
func TestNewStartsNothing(t *testing.T) {
	s := schedule(t)
	cfg := testConfig(t.TempDir(), s)
	cfg.Pipeline.Listen = "127.0.0.1:0"
	p, err := New(cfg, mixDeps(newTestDir("127.0.0.1:2", s.Now())))
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr() != nil || p.Ready() == nil {
		t.Fatal("a new provider listens or is ready")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Invalid configs are refused with every problem.
	bad := testConfig("", s)
	bad.Registration = users.RegistrationOpen
	bad.StoreWorkers = -1
	_, err = New(bad, mixDeps(newTestDir("127.0.0.1:2", s.Now())))
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "data directory") || !strings.Contains(err.Error(), "store workers") ||
		!strings.Contains(err.Error(), "open registration") {
		t.Fatalf("bad config: %v", err)
	}
}

func mixDeps(d *mixtest.Directory) mix.Deps { return mix.Deps{Documents: d, Uploader: d} }

// TestDrainStoresQueued: deliveries still queued when the provider is
// told to stop are stored before Run returns.
func TestDrainStoresQueued(t *testing.T) {
	release := make(chan struct{})
	n := startNet(t, func(c *Config) { c.StoreWorkers = 1 }, func(p *Provider) {
		put := p.put
		p.put = func(mailbox [32]byte, entry []byte) error {
			<-release // a disk that stalls until the stop begins
			return put(mailbox, entry)
		}
	})
	alice, bob := n.connect(), n.connect()
	const count = 5
	for i := range count {
		alice.send(link.SendPacket{Packet: n.packet(bob.mailbox, n.forwardPayload(nil, text(i)))})
	}
	waitFor(t, "every packet delivered to the store queue", func() bool {
		return n.metric("chorus_provider_deliveries_total", "kind", "message") == count
	})
	go func() {
		time.Sleep(100 * time.Millisecond)
		close(release)
	}()
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if v := n.metric("chorus_provider_spool_messages_stored_total"); v != count {
		t.Fatalf("stored %v of %d queued deliveries", v, count)
	}
}

// FuzzSplitForward: any forward payload splits without a panic into a
// SURB of the geometry's length (or none) and the user payload.
func FuzzSplitForward(f *testing.F) {
	geo, err := sphinx.NewGeometry(3, 2000, true)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(make([]byte, geo.ForwardPayloadLength()), true)
	f.Add([]byte{1, 0, 2}, false)
	f.Fuzz(func(t *testing.T, b []byte, pad bool) {
		if pad && len(b) < geo.ForwardPayloadLength() {
			b = append(b, make([]byte, geo.ForwardPayloadLength()-len(b))...)
		}
		surb, user, ok := splitForward(geo, b)
		switch {
		case len(b) != geo.ForwardPayloadLength():
			if ok {
				t.Fatal("split a payload of the wrong length")
			}
		case ok != (b[0]&flagSURB != 0):
			t.Fatal("SURB flag ignored")
		case ok && len(surb) != geo.SURBLength():
			t.Fatalf("SURB of %d bytes", len(surb))
		case len(user) != geo.UserPayloadLength():
			t.Fatalf("user payload of %d bytes", len(user))
		}
	})
}
