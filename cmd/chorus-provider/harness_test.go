package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon/daemontest"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/authority"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
	"github.com/chorus-mixnet/chorus/provider/providertest"
)

// The process tests run the real chorus-provider binary against a network
// in the test process: a real directory authority (pki/authority, a
// threshold of one, hour-long epochs so that no epoch ends during a test)
// and a relay (providertest.Relay) that plays the one mix of the one layer
// ("mix-0-0", pkitest keys) and a second provider ("provider-1"). The
// relay removes the mix's layer of what the provider sends it; packets for
// the provider go back to it over a node link, packets for provider-1 (the
// SURB-ACKs and echo answers the tests ask for) it unwraps once more and
// records. So the test sees every ACK the moment it has left the provider.

const (
	mixName   = providertest.MixName
	otherName = providertest.OtherName
	provName  = "provider-0"
)

// params are traffic parameters for fast tests.
var params = pki.Parameters{
	MuMean:            5 * time.Millisecond,
	MaxDelay:          100 * time.Millisecond,
	LambdaPMean:       10 * time.Millisecond,
	LambdaLMean:       200 * time.Millisecond,
	LambdaDMean:       200 * time.Millisecond,
	LambdaMMean:       200 * time.Millisecond,
	RetrievalInterval: 10 * time.Millisecond,
}

// network is the authority and the relay.
type network struct {
	t        testing.TB
	genesis  time.Time
	period   time.Duration
	authAddr string
	authKey  keys.IdentityPublicKey
	dir      *dirclient.Client
	geo      *sphinx.Geometry
	relay    *providertest.Relay
}

func startNetwork(t testing.TB) *network {
	t.Helper()
	n := &network{t: t, period: time.Hour}
	// The current epoch has half an hour to go.
	n.genesis = time.Now().Add(30*time.Minute - 11*n.period).Truncate(time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.authAddr = ln.Addr().String()
	cfg := authority.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "authority")
	cfg.Listen = n.authAddr
	cfg.Genesis, cfg.Period = n.genesis, n.period
	cfg.Layers, cfg.MinMixesPerLayer = 1, 1
	cfg.Parameters = params
	a, err := authority.New(cfg, authority.Deps{Listener: ln})
	if err != nil {
		t.Fatal(err)
	}
	n.authKey = a.Identity()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("authority: %v", err)
		}
		a.Close()
	})
	if n.dir, err = dirclient.New(dirclient.Config{
		Authorities: []dirclient.Authority{{Name: "auth", IdentityKey: n.authKey, Address: n.authAddr}},
	}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if n.geo, err = sphinx.NewGeometry(3, cfg.UserPayloadLength, true); err != nil {
		t.Fatal(err)
	}
	n.relay = providertest.StartRelay(t, n.geo, n.epoch())
	// The mix's descriptors for this epoch and the next.
	for e := n.epoch(); e <= n.epoch()+1; e++ {
		node := pkitest.NewNode(mixName, pki.RoleMix, e, "tcp://"+n.relay.Addr())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := n.dir.Upload(ctx, node.Signed)
		cancel()
		if err != nil {
			t.Fatalf("upload the mix's descriptor: %v", err)
		}
	}
	return n
}

func (n *network) epoch() uint64 { return uint64(time.Since(n.genesis) / n.period) }

// document waits for the current document, with the provider in it, and
// points the relay at the provider.
func (n *network) document() *pki.Document {
	n.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		doc, _, err := n.dir.Document(ctx, n.epoch())
		cancel()
		if err == nil {
			p := doc.Providers[0]
			addr, _ := strings.CutPrefix(p.Addresses[0], "tcp://")
			n.relay.SetProvider(addr, p.ID, p.LinkKey)
			return doc
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("no document: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// config returns a provider config for this network; extra is appended
// (TOML sections).
func (n *network) config(dataDir, listen, metrics, extra string) string {
	return fmt.Sprintf(`data_dir = %q
name = %q
listen = %q
addresses = ["tcp://%s"]
shutdown_timeout = "30s"
drain_timeout = "5s"
max_packet_rate = 100

[epoch]
genesis = %s
period = %q

[[authorities]]
name = "auth"
identity_key = %q
address = %q

[metrics]
address = %q
%s`, dataDir, provName, listen, listen, n.genesis.UTC().Format(time.RFC3339), n.period.String(), keyText(n.authKey), n.authAddr, metrics, extra)
}

func keyText(k interface{ MarshalText() ([]byte, error) }) string {
	b, err := k.MarshalText()
	if err != nil {
		panic(err)
	}
	return string(b)
}

// packets builds what a client of the provider sends.
type packets struct {
	t   testing.TB
	geo *sphinx.Geometry
	doc *pki.Document
}

func (p *packets) hop(desc *pki.Descriptor, cmds ...sphinx.Command) sphinx.PathHop {
	k, ok := desc.SphinxKey(p.doc.Epoch)
	if !ok {
		p.t.Fatalf("%s has no key", desc.Name)
	}
	return sphinx.PathHop{ID: desc.ID, PublicKey: k, Commands: cmds}
}

// message is a packet for mailbox rcpt at the provider carrying user,
// with a SURB for its ACK to provider-1 named id.
func (p *packets) message(rcpt [32]byte, user []byte, id [16]byte) []byte {
	prov, mix := p.doc.Providers[0], p.doc.Layers[0][0]
	other := pkitest.NewNode(otherName, pki.RoleProvider, p.doc.Epoch, "tcp://127.0.0.1:3").Descriptor
	surb, _, err := sphinx.NewSURB(rand.Reader, p.geo, []sphinx.PathHop{
		p.hop(prov, sphinx.NodeDelay{}), p.hop(mix, sphinx.NodeDelay{}),
		p.hop(other, sphinx.Recipient{ID: [32]byte{1}}, sphinx.SURBReply{ID: id}),
	})
	if err != nil {
		p.t.Fatal(err)
	}
	payload := make([]byte, p.geo.ForwardPayloadLength())
	payload[0] = 1 // a SURB follows
	copy(payload[2:], surb)
	copy(payload[2+p.geo.SURBLength():], user)
	pkt, err := sphinx.NewPacket(rand.Reader, p.geo, []sphinx.PathHop{
		p.hop(prov, sphinx.NodeDelay{}), p.hop(mix, sphinx.NodeDelay{}), p.hop(prov, sphinx.Recipient{ID: rcpt}),
	}, payload)
	if err != nil {
		p.t.Fatal(err)
	}
	return pkt
}

// userPayload is the user payload of a stored message entry.
func (p *packets) userPayload(entry []byte) ([]byte, error) {
	d, err := sphinx.ParseDelivery(p.geo, entry)
	if err != nil {
		return nil, err
	}
	if d.IsSURBReply {
		return nil, errors.New("a SURB reply")
	}
	return d.Payload[2+p.geo.SURBLength():], nil
}

// scrape returns the value of an unlabelled metric line "name value", or
// of the line "name{labels} value" when labels is given.
func scrape(t testing.TB, metrics, name, labels string) float64 {
	t.Helper()
	_, body, err := daemontest.Get(metrics, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	want := name
	if labels != "" {
		want += "{" + labels + "}"
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == want {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}
