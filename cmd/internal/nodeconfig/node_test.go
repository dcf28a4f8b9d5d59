package nodeconfig

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/mix"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
)

// fileConfig is a node daemon's file in the shape the real ones take:
// Ops and Node embedded, and a section of the role's own.
type fileConfig struct {
	daemon.Ops
	Node

	Extra struct {
		Limit int `toml:"limit"`
	} `toml:"extra"`
}

func defaultFileConfig() *fileConfig {
	return &fileConfig{Ops: daemon.DefaultOps("127.0.0.1:0"), Node: Default("0.0.0.0:29485")}
}

func (f *fileConfig) Validate() []error {
	errs := append(f.Ops.Validate(), f.Node.Validate(pki.RoleMix, f.ShutdownTimeout)...)
	if f.Extra.Limit < 0 {
		errs = append(errs, daemon.Problemf("extra.limit", "must not be negative"))
	}
	return errs
}

const authKey = "7xKg9AnDtFBfCcAIHPIYZfV0STow/CR5kGautTuNHFc="

// full sets every key of the node's part, none to its default.
const full = `data_dir = "/var/lib/node"
name = "mix-a"
listen = "127.0.0.1:7000"
addresses = ["tcp://192.0.2.1:7000", "tcp://mix-a.example.org:7000"]
threshold = 1
workers = 3
max_packet_rate = 500
delay_max_packets = 600
forward_queue = 700
link_credit = 8
drain_timeout = "3s"
key_grace = "2m"
shutdown_timeout = "10s"
[epoch]
genesis = 2026-01-01T00:00:00Z
period = "1h"
[[authorities]]
name = "auth-a"
identity_key = "` + authKey + `"
address = "auth-a.example.org:29483"
[extra]
limit = 4
`

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "node.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDecodeEmbedded checks that the embedded Node's keys stand at the top
// level of the file and decode into it.
func TestDecodeEmbedded(t *testing.T) {
	f := defaultFileConfig()
	if err := daemon.LoadConfig(writeFile(t, full), f); err != nil {
		t.Fatal(err)
	}
	n := f.Node
	genesis := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if n.DataDir != "/var/lib/node" || n.Name != "mix-a" || n.Listen != "127.0.0.1:7000" || len(n.Addresses) != 2 ||
		n.Threshold != 1 || n.Workers != 3 || n.MaxPacketRate != 500 || n.DelayMaxPackets != 600 || n.ForwardQueue != 700 ||
		n.LinkCredit != 8 || n.DrainTimeout.Std() != 3*time.Second || n.KeyGrace.Std() != 2*time.Minute ||
		!n.Epoch.Genesis.Equal(genesis) || n.Epoch.Period.Std() != time.Hour ||
		len(n.Authorities) != 1 || n.Authorities[0].Name != "auth-a" || n.Authorities[0].Address != "auth-a.example.org:29483" {
		t.Errorf("decoded oddly: %+v", n)
	}
	if f.ShutdownTimeout.Std() != 10*time.Second || f.Extra.Limit != 4 {
		t.Errorf("the other parts decoded oddly: %+v", f)
	}
}

// TestUnknownKeys checks that the strict check names unknown keys by
// their place in the file, wherever they are, all at once.
func TestUnknownKeys(t *testing.T) {
	body := "colour = \"red\"\n" + strings.NewReplacer(
		"[epoch]\n", "[epoch]\nperiodd = \"1s\"\n",
		"address = \"auth-a", "adress = \"x:1\"\naddress = \"auth-a",
		"[extra]\n", "[extra]\nlimitt = 1\n",
	).Replace(full) + "[node]\nname = \"nested\"\n"
	err := daemon.LoadConfig(writeFile(t, body), defaultFileConfig())
	var ce *daemon.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *daemon.ConfigError", err)
	}
	var got []string
	for _, p := range ce.Problems {
		if !errors.Is(p, daemon.ErrUnknownKey) {
			t.Errorf("unexpected problem: %v", p)
		}
		got = append(got, p.Error())
	}
	want := []string{"authorities.adress: unknown key", "colour: unknown key", "epoch.periodd: unknown key", "extra.limitt: unknown key", "node: unknown key"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func authority(t *testing.T, name, key, addr string) dirclient.Authority {
	t.Helper()
	a := dirclient.Authority{Name: name, Address: addr}
	if err := a.IdentityKey.UnmarshalText([]byte(key)); err != nil {
		t.Fatal(err)
	}
	return a
}

// minimal is the smallest valid node.
func minimal(t *testing.T) Node {
	n := Default("0.0.0.0:29485")
	n.DataDir, n.Name, n.Addresses = "/tmp/x", "m", []string{"tcp://127.0.0.1:1"}
	n.Epoch.Genesis = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n.Authorities = []dirclient.Authority{authority(t, "a", authKey, "a:1")}
	return n
}

const shutdown = daemon.Duration(30 * time.Second)

// TestValidate breaks one key at a time and requires the problem to name
// it, for either role.
func TestValidate(t *testing.T) {
	for _, role := range []pki.Role{pki.RoleMix, pki.RoleProvider} {
		n := minimal(t)
		if errs := n.Validate(role, shutdown); len(errs) != 0 {
			t.Fatalf("%v: minimal node: %v", role, errs)
		}
	}
	other := "OFSQkRmcYZDl5eJNHt/KVVg+M+/nr6/57OaR+sZ+omw="
	for _, tc := range []struct {
		name   string
		mutate func(*Node)
		key    string
	}{
		{"missing data_dir", func(n *Node) { n.DataDir = "" }, "data_dir"},
		{"missing name", func(n *Node) { n.Name = "" }, "name"},
		{"long name", func(n *Node) { n.Name = strings.Repeat("n", pki.MaxNameLength+1) }, "name"},
		{"bad name", func(n *Node) { n.Name = "m m" }, "name"},
		{"bad listen", func(n *Node) { n.Listen = "nowhere" }, "listen"},
		{"missing addresses", func(n *Node) { n.Addresses = nil }, "addresses"},
		{"too many addresses", func(n *Node) {
			for i := range pki.MaxAddresses {
				n.Addresses = append(n.Addresses, "tcp://127.0.0.1:"+strconv.Itoa(2+i))
			}
		}, "addresses"},
		{"bad scheme", func(n *Node) { n.Addresses = []string{"tcp://127.0.0.1:1", "udp://127.0.0.1:1"} }, "addresses[1]"},
		{"upper-case host", func(n *Node) { n.Addresses = []string{"tcp://Mix.example.org:1"} }, "addresses[0]"},
		{"missing genesis", func(n *Node) { n.Epoch.Genesis = time.Time{} }, "epoch.genesis"},
		{"zero period", func(n *Node) { n.Epoch.Period = 0 }, "epoch.period"},
		{"no authorities", func(n *Node) { n.Authorities = nil }, "authorities"},
		{"authority without key", func(n *Node) { n.Authorities[0].IdentityKey = keys.IdentityPublicKey{} }, "authorities[0].identity_key"},
		{"authority without address", func(n *Node) { n.Authorities[0].Address = "" }, "authorities[0].address"},
		{"repeated authority", func(n *Node) {
			n.Authorities = append(n.Authorities, authority(t, "b", other, "b:1"), authority(t, "c", authKey, "c:1"))
		}, "authorities[2].identity_key"},
		{"threshold not a majority", func(n *Node) {
			n.Authorities = append(n.Authorities, authority(t, "b", other, "b:1"))
			n.Threshold = 1
		}, "threshold"},
		{"threshold above the authorities", func(n *Node) { n.Threshold = 2 }, "threshold"},
		{"negative workers", func(n *Node) { n.Workers = -1 }, "workers"},
		{"negative max_packet_rate", func(n *Node) { n.MaxPacketRate = -1 }, "max_packet_rate"},
		{"negative delay_max_packets", func(n *Node) { n.DelayMaxPackets = -1 }, "delay_max_packets"},
		{"negative forward_queue", func(n *Node) { n.ForwardQueue = -1 }, "forward_queue"},
		{"negative link_credit", func(n *Node) { n.LinkCredit = -1 }, "link_credit"},
		{"zero drain_timeout", func(n *Node) { n.DrainTimeout = 0 }, "drain_timeout"},
		{"drain longer than shutdown", func(n *Node) { n.DrainTimeout = shutdown }, "drain_timeout"},
		{"negative key_grace", func(n *Node) { n.KeyGrace = -1 }, "key_grace"},
		{"key_grace longer than the epoch", func(n *Node) { n.KeyGrace = n.Epoch.Period + 1 }, "key_grace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := minimal(t)
			tc.mutate(&n)
			errs := n.Validate(pki.RoleMix, shutdown)
			if len(errs) != 1 {
				t.Fatalf("%d problems, want 1: %v", len(errs), errs)
			}
			var fe *daemon.FieldError
			if !errors.As(errs[0], &fe) || fe.Key != tc.key {
				t.Errorf("problem %q, want one naming %q", errs[0], tc.key)
			}
		})
	}
}

// TestValidateAll requires every problem at once, and the addresses hint
// of the role.
func TestValidateAll(t *testing.T) {
	var n Node
	want := []string{"data_dir", "name", "listen", "addresses", "epoch.genesis", "epoch.period", "authorities", "drain_timeout"}
	for role, hint := range map[pki.Role]string{pki.RoleMix: "other nodes", pki.RoleProvider: "clients and mixes"} {
		errs := n.Validate(role, shutdown)
		var keys []string
		for _, err := range errs {
			var fe *daemon.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("%v: not a field error: %v", role, err)
			}
			keys = append(keys, fe.Key)
			if fe.Key == "addresses" && !strings.Contains(fe.Msg, hint) {
				t.Errorf("%v: %v does not say %q", role, err, hint)
			}
		}
		if strings.Join(keys, " ") != strings.Join(want, " ") {
			t.Errorf("%v: problems with %q, want %q", role, keys, want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Validate with no role did not panic")
		}
	}()
	n.Validate(0, shutdown)
}

// TestConversions checks that every setting reaches the pipeline's and the
// directory client's configs.
func TestConversions(t *testing.T) {
	f := defaultFileConfig()
	if err := daemon.LoadConfig(writeFile(t, full), f); err != nil {
		t.Fatal(err)
	}
	mc := f.MixConfig(pki.RoleProvider)
	want := mix.Config{
		Name: "mix-a", Role: pki.RoleProvider, Addresses: f.Addresses, Listen: "127.0.0.1:7000", DataDir: "/var/lib/node",
		Workers: 3, LinkCredit: 8, MaxPacketRate: 500, DelayMaxPackets: 600, ForwardQueue: 700,
		DrainTimeout: 3 * time.Second, KeyGrace: 2 * time.Minute,
	}
	if !reflect.DeepEqual(mc, want) {
		t.Errorf("MixConfig:\n%+v\nwant\n%+v", mc, want)
	}
	dc := f.DirConfig()
	if len(dc.Authorities) != 1 || !dc.Authorities[0].IdentityKey.Equal(f.Authorities[0].IdentityKey) || dc.Threshold != 1 ||
		dc.CacheDir != "/var/lib/node/documents" {
		t.Errorf("DirConfig: %+v", dc)
	}
	if f.IdentityKeyFile() != "/var/lib/node/identity.key" || f.LinkKeyFile() != "/var/lib/node/link.key" {
		t.Errorf("key files: %s %s", f.IdentityKeyFile(), f.LinkKeyFile())
	}
}

// runner stands in for a built node.
type runner struct{ ran, closed bool }

func (r *runner) Run(ctx context.Context) error { r.ran = true; return nil }
func (r *runner) Close() error                  { r.closed = true; return errors.New("closed") }
func (r *runner) Ready() error                  { return nil }

// TestOpen opens a node twice on one data directory: the keys are made
// on the first, with the right modes, and kept for the second; the parts
// carry them and the schedule; Service closes the node and wipes them.
func TestOpen(t *testing.T) {
	n := minimal(t)
	n.DataDir = filepath.Join(t.TempDir(), "data")
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	p, err := n.Open(pki.RoleMix, log)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(n.DataDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v %v", st, err)
	}
	for _, f := range []string{n.IdentityKeyFile(), n.LinkKeyFile()} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, st, err)
		}
	}
	c := p.Config
	if c.Identity == nil || c.LinkKey == nil || c.Schedule == nil || c.Name != "m" || c.Role != pki.RoleMix || p.Directory == nil {
		t.Fatalf("parts: %+v", p)
	}
	if g := c.Schedule.Genesis(); !g.Equal(n.Epoch.Genesis) {
		t.Errorf("schedule genesis %v", g)
	}
	idText, _ := c.Identity.Public().MarshalText()
	if !strings.Contains(logged.String(), "msg=\"node keys\"") || !strings.Contains(logged.String(), string(idText)) {
		t.Errorf("the keys are not logged:\n%s", logged.String())
	}
	if d := p.Deps(log, nil); d.Documents != p.Directory || d.Uploader != p.Directory || d.Log != log {
		t.Errorf("deps: %+v", d)
	}

	again, err := n.Open(pki.RoleProvider, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Config.Identity.Public().Equal(c.Identity.Public()) || !again.Config.LinkKey.Public().Equal(c.LinkKey.Public()) {
		t.Error("the keys changed on the second open")
	}
	again.Wipe()

	r := &runner{}
	svc := p.Service(r)
	if err := svc.Run(context.Background()); err == nil || err.Error() != "closed" || !r.ran || !r.closed {
		t.Errorf("Run: %v, ran %v, closed %v", err, r.ran, r.closed)
	}
	msg := []byte("after the node stopped")
	if c.Identity.Public().Verify(msg, c.Identity.Sign(msg)) || *c.LinkKey.Scalar() != [keys.ScalarSize]byte{} {
		t.Error("the keys are not wiped after Run")
	}

	n.DataDir = filepath.Join(n.DataDir, "identity.key") // a file, not a directory
	if _, err := n.Open(pki.RoleMix, log); err == nil {
		t.Error("Open on a file succeeded")
	}
}
