package client

import (
	"bytes"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorus-mixnet/chorus/client/clienttest"
	"github.com/chorus-mixnet/chorus/client/route"
	"github.com/chorus-mixnet/chorus/client/store"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// newTestClient is a Client on a fresh store, not running.
func newTestClient(t testing.TB) (*Client, *clienttest.Network) {
	t.Helper()
	sched, err := epoch.New(time.Now().Add(-10*time.Hour-time.Minute), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := clienttest.New(clienttest.Config{Epoch: sched.Now})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Create(filepath.Join(t.TempDir(), "s"), []byte("pass"), store.Options{KDF: store.TestingKDF})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := New(Config{
		ProviderID: n.ProviderID(), ProviderAddress: "127.0.0.1:1", ProviderLinkKey: n.ProviderLinkKey(),
		Authorities: []keys.IdentityPublicKey{clienttest.Authority()}, Schedule: sched, Geometry: n.Geometry(),
	}, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, n
}

// chunks splits a document as a provider sends it.
func chunks(raw []byte, size int, e uint64) []link.Consensus {
	var out []link.Consensus
	n := (len(raw) + size - 1) / size
	for i := range n {
		out = append(out, link.Consensus{Epoch: e, Chunk: uint32(i), Chunks: uint32(n), Data: raw[i*size : min(len(raw), (i+1)*size)]})
	}
	return out
}

func TestConsensusAssembly(t *testing.T) {
	c, n := newTestClient(t)
	raw := n.Document(10)
	parts := chunks(raw, 1000, 10)
	if len(parts) < 3 {
		t.Fatalf("document of %d bytes: want several chunks", len(raw))
	}
	rejected := func() float64 { return testutil.ToFloat64(c.m.documents.WithLabelValues("rejected")) }

	// Out of order: refused, nothing adopted.
	c.handleConsensus(parts[1])
	if rejected() != 1 || c.currentDoc(time.Now()) != nil {
		t.Fatal("out-of-order chunk accepted")
	}
	// A chunk claiming another count mid-way restarts nothing but is refused.
	c.handleConsensus(parts[0])
	bad := parts[1]
	bad.Chunks++
	c.handleConsensus(bad)
	if rejected() != 2 || c.currentDoc(time.Now()) != nil {
		t.Fatal("inconsistent chunk accepted")
	}
	// The document for another epoch than the frame says: refused.
	for _, p := range chunks(n.Document(11), 1000, 10) {
		c.handleConsensus(p)
	}
	if rejected() != 3 || c.currentDoc(time.Now()) != nil {
		t.Fatal("document for the wrong epoch accepted")
	}
	// A tampered document: refused.
	tampered := append([]byte(nil), raw...)
	tampered[len(tampered)/2] ^= 1
	for _, p := range chunks(tampered, 1000, 10) {
		c.handleConsensus(p)
	}
	if rejected() != 4 || c.currentDoc(time.Now()) != nil {
		t.Fatal("tampered document accepted")
	}
	// In order: adopted, and saved for the next start.
	for _, p := range parts {
		c.handleConsensus(p)
	}
	if d := c.currentDoc(time.Now()); d == nil || d.Epoch != 10 {
		t.Fatalf("document not adopted: %v", d)
	}
	if saved, err := c.store.Config(storeDocument); err != nil || string(saved) != string(raw) {
		t.Errorf("document not saved: %v", err)
	}
	// A NotFound answer changes nothing.
	c.handleConsensus(link.Consensus{Epoch: 11, Status: link.ConsensusNotFound})
	if d := c.currentDoc(time.Now()); d == nil || d.Epoch != 10 {
		t.Fatal("lost the document")
	}
}

// TestGeometryMismatch: a document for another geometry is refused.
func TestGeometryMismatch(t *testing.T) {
	c, n := newTestClient(t)
	g, err := sphinx.NewGeometry(5, 1000, true)
	if err != nil {
		t.Fatal(err)
	}
	c.cfg.Geometry = g
	if _, err := c.verify(n.Document(10), 10); err == nil {
		t.Fatal("document with another geometry accepted")
	}
}

// TestControlOrder: an entry handled is acknowledged before anything
// else; a missing document is asked for; one retrieval is outstanding at
// a time.
func TestControlOrder(t *testing.T) {
	c, _ := newTestClient(t)
	ct := (*control)(c)
	if cmd, ok := ct.NextControl().(link.GetConsensus); !ok || cmd.Epoch != 10 {
		t.Fatalf("first slot: %#v, want GetConsensus{10}", cmd)
	}
	if _, ok := ct.NextControl().(link.RetrieveMessage); !ok {
		t.Fatal("second slot: want a retrieval")
	}
	if _, ok := ct.NextControl().(link.NoOp); !ok {
		t.Fatal("a second retrieval while one is outstanding")
	}
	c.handleMessage(link.Message{Seq: 7, Payload: make([]byte, 10)}) // garbage: handled (dropped), acknowledged
	if cmd, ok := ct.NextControl().(link.MessageAck); !ok || cmd.Seq != 7 {
		t.Fatalf("after an entry: %#v, want MessageAck{7}", cmd)
	}
	if cmd, ok := ct.NextControl().(link.RetrieveMessage); !ok || cmd.Seq != 7 {
		t.Fatalf("then %#v, want RetrieveMessage{7}", cmd)
	}
	c.handleMessage(link.Message{Empty: true})
	if _, ok := ct.NextControl().(link.RetrieveMessage); !ok {
		t.Fatal("after an empty answer: want a retrieval")
	}
}

// FuzzHandleEntry feeds arbitrary mailbox entries to the receiver: it
// must never panic, and anything it cannot use is dropped (acknowledged
// to the provider, so it does not come back).
func FuzzHandleEntry(f *testing.F) {
	geo := sphinx.DefaultGeometry()
	good, _ := sphinx.AppendDelivery(nil, geo, sphinx.Delivery{Payload: make([]byte, geo.ForwardPayloadLength())})
	reply, _ := sphinx.AppendDelivery(nil, geo, sphinx.Delivery{IsSURBReply: true, SURBID: [16]byte{1}, Payload: make([]byte, geo.PayloadLength())})
	f.Add(good)
	f.Add(reply)
	f.Add([]byte{})
	f.Add([]byte{2})
	c, _ := newTestClient(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if !c.handleEntry(b) {
			t.Fatal("entry neither handled nor dropped")
		}
	})
}

// TestAckAfterRestart: the token of an attempt made before a restart
// comes from the store, so an ACK for it is authenticated exactly like
// one whose token is in memory. The genuine ACK is accepted; a forged one
// on the same SURB ID, or one whose token is unknown, is refused.
func TestAckAfterRestart(t *testing.T) {
	c, n := newTestClient(t)
	ctx := t.Context()
	geo := c.cfg.Geometry
	for _, p := range chunks(n.Document(10), 1000, 10) {
		c.handleConsensus(p)
	}
	doc := c.currentDoc(time.Now())
	if doc == nil {
		t.Fatal("no document")
	}
	if err := c.AddContact(ctx, "me", c.card); err != nil {
		t.Fatal(err)
	}
	id, err := c.Send(ctx, "me", []byte("a note to self"))
	if err != nil {
		t.Fatal(err)
	}
	b := c.buildReal(doc, time.Now())
	if b == nil || b.kind != "fragment" {
		t.Fatalf("built %+v, want the fragment", b)
	}

	// The network stores the fragment in our mailbox and sends the ACK
	// back to it; take both out as the client would.
	conn, err := n.Dial(ctx)(ctx, c.linkCfg, n.ProviderLinkKey())
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Send(ctx, link.SendPacket{Packet: b.pkt}); err != nil {
		t.Fatal(err)
	}
	var ack sphinx.Delivery
	for {
		if err := conn.Send(ctx, link.RetrieveMessage{}); err != nil {
			t.Fatal(err)
		}
		cmd, err := conn.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, ok := cmd.(link.Message)
		if !ok {
			continue
		}
		if m.Empty {
			break
		}
		if d, err := sphinx.ParseDelivery(geo, m.Payload); err == nil && d.IsSURBReply {
			ack = d
			ack.Payload = bytes.Clone(d.Payload)
		}
		if err := conn.Send(ctx, link.MessageAck{Seq: m.Seq}); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	n.Wait()
	if !ack.IsSURBReply {
		t.Fatal("no ACK came back")
	}
	encode := func(d sphinx.Delivery) []byte {
		t.Helper()
		b, err := sphinx.AppendDelivery(nil, geo, d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	genuine := encode(ack)
	var forged [][]byte
	for _, tamper := range []func([]byte){
		func(p []byte) { p[len(p)/2] ^= 1 },
		func(p []byte) { rand.Read(p) },
		func(p []byte) { clear(p) },
	} {
		d := ack
		d.Payload = bytes.Clone(ack.Payload)
		tamper(d.Payload)
		forged = append(forged, encode(d))
	}
	status := func(c *Client) store.OutboxStatus {
		t.Helper()
		m, err := c.store.OutboxMessage(id)
		if err != nil {
			t.Fatal(err)
		}
		return m.Status
	}
	count := func(c *Client, kind string) float64 {
		return testutil.ToFloat64(c.m.deliveries.WithLabelValues(kind))
	}

	// Before the restart, with the token in memory: forgeries refused.
	for _, f := range forged {
		if !c.handleEntry(f) {
			t.Fatal("forged ACK not dropped")
		}
	}
	if count(c, "invalid") != float64(len(forged)) || count(c, "ack") != 0 || status(c) != store.Pending {
		t.Fatal("a forged ACK was accepted with the token in memory")
	}

	// Restart: a new Client over the same store, before the ACK arrives.
	c.Close()
	c2, err := New(c.cfg, Deps{Store: c.store})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if len(c2.tokens) != 0 || !c2.restored[ack.SURBID] {
		t.Fatal("the attempt was not restored from the store alone")
	}
	if tok, err := c2.store.SURBToken(store.SURBID(ack.SURBID)); err != nil || len(tok) != geo.SURBKeysLength(geo.NrHops()) {
		t.Fatalf("stored token: %d bytes, %v", len(tok), err)
	}
	for _, f := range forged {
		if !c2.handleEntry(f) {
			t.Fatal("forged ACK not dropped")
		}
	}
	if count(c2, "invalid") != float64(len(forged)) || count(c2, "ack") != 0 || status(c2) != store.Pending {
		t.Fatal("a forged ACK was accepted after the restart")
	}
	// A SURB ID the client knows but whose token the store lacks (an
	// attempt recorded before tokens were kept): refused too.
	var other route.SURBID
	other[0] = ^ack.SURBID[0]
	c2.restored[other] = true
	d := ack
	d.SURBID = other
	if !c2.handleEntry(encode(d)) || count(c2, "unknown") != 1 || count(c2, "ack") != 0 {
		t.Fatal("an ACK without a token was accepted")
	}
	delete(c2.restored, other)

	// The genuine ACK decrypts under the stored token: accepted, the
	// message is delivered, and the token is gone.
	if !c2.handleEntry(genuine) {
		t.Fatal("genuine ACK not handled")
	}
	if count(c2, "ack") != 1 || status(c2) != store.Delivered {
		t.Fatalf("genuine ACK after the restart: %v acks, %v", count(c2, "ack"), status(c2))
	}
	if _, err := c2.store.SURBToken(store.SURBID(ack.SURBID)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("token kept after the ACK: %v", err)
	}
	if c2.restored[ack.SURBID] {
		t.Error("SURB ID still restored after the ACK")
	}
	// Again: nothing more happens.
	if !c2.handleEntry(genuine) || count(c2, "ack") != 1 || count(c2, "unknown") != 2 {
		t.Error("a replayed ACK was counted")
	}
}
