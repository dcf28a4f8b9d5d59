package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon/daemontest"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
)

// ledger is what the test knows about each message, by index.
type ledger struct {
	mu        sync.Mutex
	delivered map[uint64]int  // times the recipient got it
	confirmed map[uint64]bool // its acknowledgement was handled (a later answer came on the same link)
	violation []string        // delivered after a handled acknowledgement
}

func newLedger() *ledger {
	return &ledger{delivered: map[uint64]int{}, confirmed: map[uint64]bool{}}
}

// session is one client link that reconnects when the provider dies.
type session struct {
	t    testing.TB
	addr string
	key  *keys.LinkPrivateKey
	peer keys.LinkPublicKey
	pl   int
	c    *link.Conn
}

// conn returns the link, dialling until it comes up or ctx ends.
func (s *session) conn(ctx context.Context) *link.Conn {
	for s.c == nil && ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := link.Dial(dctx, "tcp", s.addr, link.Config{PrivateKey: s.key, PacketLength: s.pl}, s.peer)
		cancel()
		if err == nil {
			s.c = c
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s.c
}

func (s *session) drop() {
	if s.c != nil {
		s.c.Close()
		s.c = nil
	}
}

// TestKill9Durability kills the provider process with SIGKILL, five
// times, while one client sends messages to another and that one
// retrieves and acknowledges them, and restarts it each time. Then every
// message whose ACK left the provider must still be retrievable, and no
// message whose acknowledgement the provider handled is ever delivered
// again.
func TestKill9Durability(t *testing.T) {
	bin := daemontest.Build(t)
	n := startNetwork(t)
	dir := t.TempDir()
	listen, metrics := daemontest.FreeAddr(t), daemontest.FreeAddr(t)
	config := daemontest.WriteFile(t, "provider.toml", n.config(filepath.Join(dir, "data"), listen, metrics, `
[clients]
# The test's clients go as fast as the test needs; rate limits would
# refuse some acknowledgements and muddle what the test counts.
send_burst = "1h"
control_burst = 1000000
`))
	sender, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	recipient, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*keys.LinkPrivateKey{sender, recipient} {
		if code := run([]string{"users", "add", "-config", config, keyText(k.Public())}, nopWriter{}, nopWriter{}); code != 0 {
			t.Fatalf("users add: exit %d", code)
		}
	}
	proc := daemontest.Start(t, exec.Command(bin, "-config", config))
	doc := n.document()
	proc.WaitHTTP(metrics, "/readyz")
	prov := doc.Providers[0]
	pk := &packets{t: t, geo: n.geo, doc: doc}
	rcpt := recipient.Public().MailboxID()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	var wg sync.WaitGroup
	defer wg.Wait()
	var sent atomic.Uint64
	led := newLedger()

	// The sender: message i carries "message i" and a SURB for its ACK
	// named i, one every 5ms.
	wg.Go(func() {
		s := &session{t: t, addr: listen, key: sender, peer: prov.LinkKey, pl: n.geo.PacketLength()}
		defer s.drop()
		for i := uint64(0); sendCtx.Err() == nil; {
			c := s.conn(sendCtx)
			if c == nil {
				return
			}
			var id [16]byte
			binary.BigEndian.PutUint64(id[:], i)
			pkt := pk.message(rcpt, fmt.Appendf(nil, "message %d.", i), id)
			if err := c.Send(sendCtx, link.SendPacket{Packet: pkt}); err != nil {
				s.drop()
				continue
			}
			i++
			sent.Store(i)
			time.Sleep(5 * time.Millisecond)
		}
	})

	// The recipient: retrieve, acknowledge, and count an acknowledgement
	// as handled once the next answer on the same link came back.
	recvDone := make(chan struct{})
	wg.Go(func() {
		defer close(recvDone)
		s := &session{t: t, addr: listen, key: recipient, peer: prov.LinkKey, pl: n.geo.PacketLength()}
		defer s.drop()
		var pending []uint64 // acknowledged on this link, not yet known to be handled
		for ctx.Err() == nil {
			c := s.conn(ctx)
			if c == nil {
				return
			}
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.Send(rctx, link.RetrieveMessage{})
			var cmd link.Command
			if err == nil {
				cmd, err = c.Recv(rctx)
			}
			rcancel()
			m, ok := cmd.(link.Message)
			if err != nil || !ok {
				s.drop()
				pending = nil // the provider may have died before handling them
				continue
			}
			led.mu.Lock()
			for _, i := range pending {
				led.confirmed[i] = true
			}
			pending = nil
			led.mu.Unlock()
			if m.Empty {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			user, err := pk.userPayload(m.Payload)
			if err != nil {
				t.Errorf("retrieved entry: %v", err)
				return
			}
			var i uint64
			if _, err := fmt.Sscanf(string(user), "message %d.", &i); err != nil {
				t.Errorf("retrieved payload %q: %v", user[:16], err)
				return
			}
			led.mu.Lock()
			led.delivered[i]++
			if led.confirmed[i] {
				led.violation = append(led.violation, fmt.Sprintf("message %d delivered again after its acknowledgement was handled", i))
			}
			led.mu.Unlock()
			if err := c.Send(ctx, link.MessageAck{Seq: m.Seq}); err != nil {
				s.drop()
				continue
			}
			pending = append(pending, i)
		}
	})

	acked := func() map[uint64]bool {
		out := map[uint64]bool{}
		for _, a := range n.relay.Arrivals() {
			if a.IsReply {
				out[binary.BigEndian.Uint64(a.SURBID[:8])] = true
			}
		}
		return out
	}
	waitProgress := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(120 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; provider log:\n%s", what, proc.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	const kills = 5
	for k := 1; k <= kills; k++ {
		target := len(acked()) + 20
		waitProgress(strconv.Itoa(target)+" ACKs", func() bool { return len(acked()) >= target })
		// Somewhere in the middle of storing, acknowledging and retrieving.
		time.Sleep(time.Duration(mrand.Int64N(int64(50 * time.Millisecond))))
		proc.Kill()
		t.Logf("kill %d: %d sent, %d ACKs left the provider", k, sent.Load(), len(acked()))
		proc = daemontest.Start(t, exec.Command(bin, "-config", config))
	}
	target := len(acked()) + 20
	waitProgress("ACKs after the last restart", func() bool { return len(acked()) >= target })
	stopSending()

	// Every message whose ACK left the provider is retrieved in the end.
	var missing []uint64
	waitProgress("every acknowledged message retrieved", func() bool {
		missing = missing[:0]
		led.mu.Lock()
		defer led.mu.Unlock()
		for i := range acked() {
			if led.delivered[i] == 0 {
				missing = append(missing, i)
			}
		}
		return len(missing) == 0
	})
	// Let the recipient drain what else is there, then stop.
	time.Sleep(time.Second)
	cancel()
	<-recvDone

	led.mu.Lock()
	defer led.mu.Unlock()
	for _, v := range led.violation {
		t.Error(v)
	}
	again := 0
	for _, c := range led.delivered {
		if c > 1 {
			again += c - 1
		}
	}
	ids := make([]uint64, 0, len(acked()))
	for i := range acked() {
		ids = append(ids, i)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	t.Logf("%d messages sent, %d ACKs left the provider, %d distinct messages retrieved, %d retrieved again before their acknowledgement was handled (at-least-once across kills), %d acknowledgements handled",
		sent.Load(), len(ids), len(led.delivered), again, len(led.confirmed))
	if v := scrape(t, metrics, "chorus_provider_rate_limited_total", `command="ack"`); v != 0 {
		t.Errorf("%v acknowledgements were rate-limited", v)
	}
	proc.Stop()
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
