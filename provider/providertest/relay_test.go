package providertest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
	"github.com/chorus-mixnet/chorus/provider/providertest"
)

const (
	provName = "provider-0"
	epoch    = 10
)

func hop(t *testing.T, name string, cmds ...sphinx.Command) sphinx.PathHop {
	t.Helper()
	desc := pkitest.NewNode(name, pki.RoleProvider, epoch, "tcp://127.0.0.1:1").Descriptor
	k, ok := desc.SphinxKey(epoch)
	if !ok {
		t.Fatalf("%s has no key", name)
	}
	return sphinx.PathHop{ID: desc.ID, PublicKey: k, Commands: cmds}
}

// TestRelay plays the provider: its packets through the relay come back
// to it over a node link, its replies and messages for provider-1 are
// recorded, and links from any key but the provider's are refused.
func TestRelay(t *testing.T) {
	geo, err := sphinx.NewGeometry(3, 2000, true)
	if err != nil {
		t.Fatal(err)
	}
	r := providertest.StartRelay(t, geo, epoch)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The provider: a listener the relay dials back as mix-0-0.
	mixKey := pkitest.Link(providertest.MixName).Public()
	ln, err := link.Listen(ctx, "tcp", "127.0.0.1:0", link.Config{
		PrivateKey: pkitest.Link(provName), PacketLength: geo.PacketLength(),
		Authorize: func(k keys.LinkPublicKey) bool { return k.Equal(mixKey) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lcfg := link.Config{PrivateKey: pkitest.Link(provName), PacketLength: geo.PacketLength()}
	if _, err := link.Dial(ctx, "tcp", r.Addr(), lcfg, mixKey); !errors.Is(err, link.ErrRefused) {
		t.Errorf("dial before SetProvider: %v, want ErrRefused", err)
	}
	r.SetProvider(ln.Addr().String(), pkitest.Identity(provName).Public().NodeID(), pkitest.Link(provName).Public())
	stranger, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := link.Dial(ctx, "tcp", r.Addr(), link.Config{PrivateKey: stranger, PacketLength: geo.PacketLength()}, mixKey); !errors.Is(err, link.ErrRefused) {
		t.Errorf("dial as a stranger: %v, want ErrRefused", err)
	}
	c, err := link.Dial(ctx, "tcp", r.Addr(), lcfg, mixKey)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send := func(pkt []byte) {
		t.Helper()
		if err := c.Send(ctx, link.SendPacket{Packet: pkt}); err != nil {
			t.Fatal(err)
		}
	}

	// Through the mix back to the provider.
	payload := make([]byte, geo.ForwardPayloadLength())
	copy(payload, "for a mailbox here")
	pkt, err := sphinx.NewPacket(rand.Reader, geo, []sphinx.PathHop{hop(t, providertest.MixName), hop(t, provName, sphinx.Recipient{ID: [32]byte{5}})}, payload)
	if err != nil {
		t.Fatal(err)
	}
	send(pkt)
	back, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	cmd, err := back.Recv(ctx)
	sp, ok := cmd.(link.SendPacket)
	if err != nil || !ok {
		t.Fatalf("from the relay: %v %T", err, cmd)
	}
	res, err := sphinx.Unwrap(geo, pkitest.Sphinx(provName, epoch), sp.Packet)
	if err != nil || res.Action != sphinx.Deliver || res.Recipient != [32]byte{5} || !bytes.Equal(res.Payload, payload) {
		t.Fatalf("the packet back at the provider: %v %+v", err, res)
	}

	// A message and a SURB reply for provider-1, recorded in order.
	arrived := make(chan providertest.Arrival, 2)
	r.OnArrive(func(a providertest.Arrival) { arrived <- a })
	pkt, err = sphinx.NewPacket(rand.Reader, geo, []sphinx.PathHop{hop(t, providertest.MixName), hop(t, providertest.OtherName, sphinx.Recipient{ID: [32]byte{6}})}, payload)
	if err != nil {
		t.Fatal(err)
	}
	send(pkt)
	id := [16]byte{7}
	surb, surbKeys, err := sphinx.NewSURB(rand.Reader, geo, []sphinx.PathHop{
		hop(t, providertest.MixName), hop(t, providertest.OtherName, sphinx.Recipient{ID: [32]byte{8}}, sphinx.SURBReply{ID: id}),
	})
	if err != nil {
		t.Fatal(err)
	}
	reply, _, err := sphinx.NewPacketFromSURB(geo, surb, []byte("ack"))
	if err != nil {
		t.Fatal(err)
	}
	send(reply)
	for range 2 {
		select {
		case <-arrived:
		case <-ctx.Done():
			t.Fatal("nothing arrived at provider-1")
		}
	}
	got := r.Arrivals()
	if len(got) != 2 || got[0].IsReply || got[0].Recipient != [32]byte{6} || !bytes.Equal(got[0].Payload, payload) {
		t.Fatalf("arrivals: %+v", got)
	}
	if a := got[1]; !a.IsReply || a.SURBID != id || a.Recipient != [32]byte{8} {
		t.Fatalf("the reply: %+v", a)
	} else if body, err := sphinx.DecryptSURBPayload(geo, a.Payload, surbKeys); err != nil || !bytes.HasPrefix(body, []byte("ack")) {
		t.Fatalf("the reply's payload: %v %q", err, body)
	}
}
