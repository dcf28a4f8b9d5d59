package testnet_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/client/api"
	"github.com/chorus-mixnet/chorus/cmd/internal/testnet"
)

// The end-to-end tests run the whole test network as real processes on
// loopback, as chorus-testnet does (DESIGN §7, STYLE 18). They are skipped
// with -short. Every wait is bounded generously for a loaded two-core
// machine; no timing is asserted, only reported.

// startTimeout bounds a network's start: processes up, first document,
// links, clients connected.
const startTimeout = 2 * time.Minute

// start runs a fresh network with epochs of the given period (0: the
// default) in a temporary directory and returns it ready, alice and bob
// contacts of each other. Cleanup kills whatever still runs and, if the
// test failed, logs the end of every process's log.
func start(t *testing.T, period time.Duration) *testnet.Network {
	t.Helper()
	if testing.Short() {
		t.Skip("end to end: runs the whole network as processes")
	}
	bin := testnet.SharedBinaries(t)
	n, err := testnet.Open(testnet.Options{Dir: filepath.Join(t.TempDir(), "net"), Epoch: period, Bin: bin, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Abort()
		if t.Failed() {
			for _, nd := range n.Nodes() {
				t.Logf("--- the end of %s's log:\n%s", nd.Name, testnet.Tail(n.LogPath(nd.Name), 40))
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := n.WriteConfigs(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := n.WaitReady(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("start → first document %.1fs, nodes ready %.1fs, clients connected %.1fs",
		r.FirstDocument.Seconds(), r.NodesReady.Seconds(), r.ClientsReady.Seconds())
	if err := n.Introduce(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

// stop stops the network and requires every process to exit 0, but for
// those listed in killed (killed on purpose).
func stop(t *testing.T, n *testnet.Network) {
	t.Helper()
	for _, e := range n.Stop() {
		if !e.OK() && !e.Killed {
			t.Errorf("%v; the end of its log:\n%s", e, e.LogTail)
		}
	}
}

func randomBody(t *testing.T, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// deliveryTimeout bounds one message's delivery and ACKs.
const deliveryTimeout = 90 * time.Second

// TestEndToEnd: the whole network, a message each way (the one from bob
// larger than a packet, so fragmented), delivery and ACK asserted, and a
// clean exit of every process.
func TestEndToEnd(t *testing.T) {
	n := start(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()

	d, err := n.Deliver(ctx, testnet.Alice, testnet.Bob, []byte("Hello Bob, this is Alice."))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("alice → bob: %d fragment, received after %v, ACKed after %v", d.Fragments, d.Received, d.Acked)
	if d.Fragments != 1 {
		t.Errorf("a short message took %d fragments", d.Fragments)
	}

	big := randomBody(t, 10_000)
	d, err = n.Deliver(ctx, testnet.Bob, testnet.Alice, big)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bob → alice: %d bytes in %d fragments, received after %v, ACKed after %v", d.Size, d.Fragments, d.Received, d.Acked)
	if d.Fragments < 2 {
		t.Errorf("a %d-byte message took %d fragment(s), want it fragmented", len(big), d.Fragments)
	}
	stop(t, n)
}

// TestMixCrashDuringTransfer kills a mix with SIGKILL in the middle of a
// many-fragment transfer: the fragments it held are lost, and their
// retransmissions on other paths still bring the whole message.
//
// The dead mix stays in the documents until the authorities make one
// without it: its descriptor for the next epoch was uploaded before it
// died, so the epoch after next. Until then every retransmission crosses
// its layer twice (the fragment, and the SURB of its ACK) and avoids it
// with probability 1/4; the last ACKs typically come once it is gone.
// Short epochs keep that wait short.
func TestMixCrashDuringTransfer(t *testing.T) {
	n := start(t, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*deliveryTimeout)
	defer cancel()

	doc, err := n.Document(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A mix of the middle layer: every path crosses that layer.
	victim := doc.Layers[len(doc.Layers)/2][0].Name

	body := randomBody(t, 150_000)
	tr, err := n.Send(ctx, testnet.Alice, testnet.Bob, body)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until part of the message is acknowledged, then kill.
	for {
		st, err := tr.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == api.StateDelivered {
			t.Fatalf("the whole message was delivered before the mix could be killed; make it larger")
		}
		if st.Delivered > 0 {
			t.Logf("killing %s with %d of %d fragments acknowledged", victim, st.Delivered, st.Fragments)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no fragment acknowledged: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := n.Kill(victim); err != nil {
		t.Fatal(err)
	}
	d, err := tr.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes in %d fragments arrived complete after %v, ACKed after %v, despite %s's crash", d.Size, d.Fragments, d.Received, d.Acked, victim)
	stop(t, n)
}

// TestProviderRestartKeepsMailbox restarts bob's provider while messages
// for bob wait in his mailbox (bob's chorusd is stopped, so nothing is
// collected): once both are back, every message arrives, once.
func TestProviderRestartKeepsMailbox(t *testing.T) {
	n := start(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*deliveryTimeout)
	defer cancel()

	bobProvider := "provider2"
	if e, err := n.StopProcess(testnet.Bob); err != nil || !e.OK() {
		t.Fatalf("stop bob: %v %v\n%s", e, err, e.LogTail)
	}
	bodies := [][]byte{
		[]byte("first, while bob is away"),
		randomBody(t, 6_000),
		[]byte("third"),
	}
	var transfers []*testnet.Transfer
	for _, b := range bodies {
		tr, err := n.Send(ctx, testnet.Alice, testnet.Bob, b)
		if err != nil {
			t.Fatal(err)
		}
		transfers = append(transfers, tr)
	}
	// An ACK comes from bob's provider once it has stored the fragment:
	// when every message is acknowledged, all of it waits in the mailbox.
	for _, tr := range transfers {
		if err := waitState(ctx, tr, api.StateDelivered); err != nil {
			t.Fatal(err)
		}
	}
	e, err := n.Restart(bobProvider)
	if err != nil {
		t.Fatal(err)
	}
	if !e.OK() {
		t.Errorf("%s did not stop cleanly for its restart: %v\n%s", bobProvider, e, e.LogTail)
	}
	if err := n.StartProcess(testnet.Bob); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitConnected(ctx, testnet.Bob); err != nil {
		t.Fatal(err)
	}
	for _, tr := range transfers {
		d, err := tr.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("message %x (%d bytes) arrived after the restart, %v after it was queued", d.ID[:4], d.Size, d.Received)
	}
	// Nothing else arrived: the inbox holds these messages and no more.
	bob := n.Client(testnet.Bob)
	defer bob.Close()
	msgs, err := bob.Inbox(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(bodies) {
		t.Errorf("bob's inbox holds %d messages, want %d", len(msgs), len(bodies))
	}
	for _, m := range msgs {
		found := false
		for _, b := range bodies {
			found = found || bytes.Equal(m.Body, b)
		}
		if !found {
			t.Errorf("bob's inbox holds an unexpected message of %d bytes", len(m.Body))
		}
	}
	stop(t, n)
}

// waitState polls a transfer until the sender reports state.
func waitState(ctx context.Context, tr *testnet.Transfer, state api.MessageState) error {
	for {
		st, err := tr.Status(ctx)
		if err != nil {
			return err
		}
		if st.State == state {
			return nil
		}
		if st.State == api.StateFailed {
			return errors.New("the message failed")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: the message is %s (%d of %d fragments acknowledged), want %s", ctx.Err(), st.State, st.Delivered, st.Fragments, state)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
