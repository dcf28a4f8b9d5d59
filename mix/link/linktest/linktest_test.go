package linktest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/link/linktest"
)

func TestPair(t *testing.T) {
	a, b := linktest.Pair(t, linktest.NewConfig(t, 3082), linktest.NewConfig(t, 3082))
	ctx := context.Background()
	pkt := bytes.Repeat([]byte{7}, 3082)
	// Buffered: one goroutine can send, then receive.
	for range 10 {
		if err := a.Send(ctx, link.SendPacket{Packet: pkt}); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		cmd, err := b.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(cmd.(link.SendPacket).Packet, pkt) {
			t.Fatal("packet garbled")
		}
	}
	if err := b.Send(ctx, link.Message{Seq: 1, Empty: true}); err != nil {
		t.Fatal(err)
	}
	if cmd, err := a.Recv(ctx); err != nil || cmd.(link.Message).Seq != 1 {
		t.Fatalf("%+v, %v", cmd, err)
	}
	a.Close()
	if _, err := b.Recv(ctx); err != io.EOF {
		t.Fatalf("after Close: %v", err)
	}
}

func TestPairRefused(t *testing.T) {
	// A listener that refuses: Pair would fail the test, so run the
	// handshake by hand over a Pipe.
	acfg, bcfg := linktest.NewConfig(t, 100), linktest.NewConfig(t, 100)
	bcfg.Authorize = func(keys.LinkPublicKey) bool { return false }
	na, nb := linktest.Pipe()
	go link.Server(context.Background(), nb, bcfg)
	if _, err := link.Client(context.Background(), na, acfg, bcfg.PrivateKey.Public()); !errors.Is(err, link.ErrRefused) {
		t.Fatalf("refused client: %v", err)
	}
}

func TestPipeInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x, y := linktest.Pipe()
		defer x.Close()
		x.SetReadDeadline(time.Now().Add(time.Second))
		start := time.Now()
		if _, err := x.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past deadline: %v", err)
		}
		if time.Since(start) != time.Second {
			t.Fatalf("deadline after %v", time.Since(start))
		}
		x.SetReadDeadline(time.Time{})
		y.Write([]byte("hi"))
		y.Close()
		got, err := io.ReadAll(x)
		if err != nil || string(got) != "hi" {
			t.Fatalf("read %q, %v", got, err)
		}
		if _, err := x.Write([]byte("x")); err == nil {
			t.Fatal("write to a closed peer succeeded")
		}
	})
}
