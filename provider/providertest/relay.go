package providertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

// The pkitest names of the nodes the relay plays.
const (
	MixName   = "mix-0-0"
	OtherName = "provider-1"
)

// dialTimeout bounds the relay's dial of the provider; while the provider
// is down, the packet for it is lost.
const dialTimeout = 10 * time.Second

// Arrival is a packet delivered to provider-1.
type Arrival struct {
	Recipient [sphinx.RecipientIDLength]byte
	IsReply   bool // a SURB reply (an ACK or an echo answer)
	SURBID    [sphinx.SURBIDLength]byte
	Payload   []byte
}

// Relay plays mix-0-0 and provider-1 for the provider under test.
type Relay struct {
	t     testing.TB
	ln    *link.Listener
	geo   *sphinx.Geometry
	epoch uint64
	other pki.NodeID

	mu       sync.Mutex
	provAddr string
	provID   pki.NodeID
	provKey  keys.LinkPublicKey
	out      *link.Conn // to the provider, as mix-0-0
	arrived  []Arrival
	onArrive func(Arrival)
	stopped  bool
	wg       sync.WaitGroup
}

// StartRelay listens on loopback as mix-0-0, with packets of geometry geo
// made for epoch (or the one before or after it). It stops when the test
// ends. Until SetProvider names the provider, the relay accepts no link
// and forwards nothing.
func StartRelay(t testing.TB, geo *sphinx.Geometry, epoch uint64) *Relay {
	t.Helper()
	r := &Relay{t: t, geo: geo, epoch: epoch, other: pkitest.Identity(OtherName).Public().NodeID()}
	ln, err := link.Listen(context.Background(), "tcp", "127.0.0.1:0", link.Config{
		PrivateKey:   pkitest.Link(MixName),
		PacketLength: geo.PacketLength(),
		Authorize: func(k keys.LinkPublicKey) bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return !r.provKey.IsZero() && k.Equal(r.provKey)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.ln = ln
	r.wg.Go(r.accept)
	t.Cleanup(r.stop)
	return r
}

// Addr is where the relay listens, host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// SetProvider names the provider under test: the address the relay dials
// it at, its node ID, and its link key, which the relay also requires of
// the links it accepts.
func (r *Relay) SetProvider(addr string, id pki.NodeID, key keys.LinkPublicKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.provAddr, r.provID, r.provKey = addr, id, key
}

// OnArrive sets a function the relay calls with each arrival at
// provider-1, after recording it.
func (r *Relay) OnArrive(f func(Arrival)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onArrive = f
}

// Arrivals returns what reached provider-1 so far, in order.
func (r *Relay) Arrivals() []Arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Arrival(nil), r.arrived...)
}

func (r *Relay) stop() {
	r.mu.Lock()
	r.stopped = true
	out := r.out
	r.mu.Unlock()
	r.ln.Close()
	if out != nil {
		out.Close()
	}
	r.wg.Wait()
}

func (r *Relay) accept() {
	for {
		c, err := r.ln.Accept(context.Background())
		if err != nil {
			return
		}
		r.wg.Go(func() {
			defer c.Close()
			for {
				cmd, err := c.Recv(context.Background())
				if err != nil {
					return
				}
				if sp, ok := cmd.(link.SendPacket); ok {
					r.packet(append([]byte(nil), sp.Packet...))
				}
			}
		})
	}
}

// unwrap removes the layer of the pkitest node name, with its key for the
// relay's epoch or the ones around it.
func (r *Relay) unwrap(name string, pkt []byte) (*sphinx.Result, bool) {
	for _, e := range []uint64{r.epoch, r.epoch + 1, r.epoch - 1} {
		if res, err := sphinx.Unwrap(r.geo, pkitest.Sphinx(name, e), pkt); err == nil {
			return res, true
		}
	}
	return nil, false
}

func (r *Relay) packet(pkt []byte) {
	res, ok := r.unwrap(MixName, pkt)
	if !ok || res.Action != sphinx.Forward {
		return
	}
	r.mu.Lock()
	toProvider := !r.provKey.IsZero() && res.NextHop == r.provID
	r.mu.Unlock()
	switch {
	case toProvider:
		r.forward(pkt)
	case res.NextHop == r.other:
		res, ok := r.unwrap(OtherName, pkt)
		if !ok || res.Action != sphinx.Deliver {
			return
		}
		a := Arrival{Recipient: res.Recipient, IsReply: res.IsSURBReply, SURBID: res.SURBID, Payload: append([]byte(nil), res.Payload...)}
		r.mu.Lock()
		r.arrived = append(r.arrived, a)
		hook := r.onArrive
		r.mu.Unlock()
		if hook != nil {
			hook(a)
		}
	}
}

// forward sends pkt to the provider over the relay's node link, dialling
// it when needed.
func (r *Relay) forward(pkt []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.provAddr == "" {
		return
	}
	for range 2 {
		if r.out == nil {
			ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
			c, err := link.Dial(ctx, "tcp", r.provAddr, link.Config{PrivateKey: pkitest.Link(MixName), PacketLength: r.geo.PacketLength()}, r.provKey)
			cancel()
			if err != nil {
				return
			}
			r.out = c
			r.wg.Go(func() { // the provider sends nothing on it; read for keepalives
				for {
					if _, err := c.Recv(context.Background()); err != nil {
						return
					}
				}
			})
		}
		if r.out.Send(context.Background(), link.SendPacket{Packet: pkt}) == nil {
			return
		}
		r.out.Close()
		r.out = nil
	}
}
