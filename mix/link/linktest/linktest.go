// Package linktest gives other packages' tests real links without sockets.
//
// Pair runs the real handshake of package link over an in-memory buffered
// connection (Pipe) and returns both ends: the frames, encryption, keepalives
// and closing behave exactly as over TCP, and everything works inside a
// testing/synctest bubble, where the keepalive and idle timers run on the
// fake clock.
//
//	a, b := linktest.Pair(t, linktest.NewConfig(t, 3082), linktest.NewConfig(t, 3082))
//	a.Send(ctx, link.SendPacket{Packet: pkt})
//	cmd, err := b.Recv(ctx)
package linktest

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
)

// NewConfig returns a link configuration with a fresh link key and the given
// packet length. Everything else is left to link's defaults.
func NewConfig(t testing.TB, packetLength int) link.Config {
	t.Helper()
	k, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatalf("linktest: %v", err)
	}
	t.Cleanup(k.Zero)
	return link.Config{PrivateKey: k, PacketLength: packetLength}
}

// Pair connects a (the dialer) to b (the listener) with the real handshake
// over a Pipe and returns a's end and b's end. If b.Authorize is nil, b
// accepts exactly a's key. Both ends are closed when the test ends. Call Pair
// inside a synctest bubble to use the fake clock.
func Pair(t testing.TB, a, b link.Config) (*link.Conn, *link.Conn) {
	t.Helper()
	if b.Authorize == nil && a.PrivateKey != nil {
		want := a.PrivateKey.Public()
		b.Authorize = func(k keys.LinkPublicKey) bool { return k.Equal(want) }
	}
	if b.PrivateKey == nil {
		t.Fatalf("linktest: Pair: b has no private key")
	}
	na, nb := Pipe()
	type result struct {
		c   *link.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := link.Server(context.Background(), nb, b)
		done <- result{c, err}
	}()
	ca, err := link.Client(context.Background(), na, a, b.PrivateKey.Public())
	r := <-done
	if err != nil || r.err != nil {
		if ca != nil {
			ca.Close()
		}
		if r.c != nil {
			r.c.Close()
		}
		t.Fatalf("linktest: Pair: handshake failed: dialer: %v; listener: %v", err, r.err)
	}
	t.Cleanup(func() {
		ca.Close()
		r.c.Close()
	})
	return ca, r.c
}
