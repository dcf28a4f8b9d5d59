package client

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorus-mixnet/chorus/client/arq"
	"github.com/chorus-mixnet/chorus/client/clienttest"
	"github.com/chorus-mixnet/chorus/client/store"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// TestSlackMatchesARQ: the deadline the store records is the one the
// tracker set.
func TestSlackMatchesARQ(t *testing.T) {
	for _, cfg := range []arq.Config{DefaultARQ, {MaxAttempts: 32, Slack: 3 * time.Second, MaxSlack: 50 * time.Second}, {MaxAttempts: 5, Slack: time.Second, MaxSlack: time.Second}} {
		tr, err := arq.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		id := arq.MessageID{1}
		tr.Track(id, 1)
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for attempt := 1; attempt <= cfg.MaxAttempts; attempt++ {
			rtt := time.Duration(attempt) * 300 * time.Millisecond
			if _, err := tr.Sent(arq.FragmentID{Message: id}, arq.SURBID{byte(attempt)}, rtt, now); err != nil {
				t.Fatal(err)
			}
			got := tr.Snapshot().Messages[0].Fragments[0].Deadline
			if want := now.Add(rtt + slack(cfg, attempt)); !got.Equal(want) {
				t.Fatalf("%+v attempt %d: tracker deadline %v, ours %v", cfg, attempt, got, want)
			}
			now = got
			tr.Due(now)
		}
	}
}

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
