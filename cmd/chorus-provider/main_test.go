package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/cmd/internal/daemon/daemontest"
	"github.com/chorus-mixnet/chorus/mix"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/provider/users"
)

const exampleConfig = "../../configs/chorus-provider.toml"

// TestExampleConfig loads the shipped example strictly.
func TestExampleConfig(t *testing.T) {
	cfg := defaultFileConfig()
	if err := daemon.LoadConfig(exampleConfig, cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Authorities) != 3 || cfg.Epoch.Period.Std() != 20*time.Minute || cfg.Registration.Policy != users.RegistrationClosed ||
		cfg.Mailboxes.MaxAge.Std() != 7*24*time.Hour {
		t.Errorf("example config decoded oddly: %+v", cfg)
	}
	// The example shows the defaults: decoding it over the defaults changes
	// nothing but the required keys.
	def := defaultFileConfig()
	def.DataDir, def.Name, def.Addresses, def.Epoch.Genesis, def.Authorities = cfg.DataDir, cfg.Name, cfg.Addresses, cfg.Epoch.Genesis, cfg.Authorities
	if def.providerConfig(mix.Config{}).MaxBytes != cfg.providerConfig(mix.Config{}).MaxBytes || def.Clients != cfg.Clients || def.Mailboxes != cfg.Mailboxes ||
		def.Registration != cfg.Registration || def.Listen != cfg.Listen || def.Metrics != cfg.Metrics {
		t.Errorf("example differs from the defaults:\n%+v\n%+v", def, cfg)
	}
}

func validConfig(dir string) string {
	return `data_dir = "` + filepath.Join(dir, "data") + `"
name = "provider-a"
listen = "127.0.0.1:0"
addresses = ["tcp://127.0.0.1:29487"]
[epoch]
genesis = 2026-01-01T00:00:00Z
[[authorities]]
name = "a"
identity_key = "iGNgvIo6xbZFv9ELZ7Y8sFA7lSDRCvPDMqq7iLPWBi4="
address = "127.0.0.1:1"
[metrics]
address = ""
`
}

var badConfigs = []daemontest.Invalid{
	{Name: "unknown key", Body: "colour = \"red\"\n", Key: "colour"},
	{Name: "unknown nested key", Body: "[mailboxes]\nmax_agee = \"1h\"\n", Key: "mailboxes.max_agee"},
	{Name: "bare integer duration", Body: "[mailboxes]\nmax_age = 20\n", Key: "mailboxes.max_age"},
	{Name: "bad policy", Body: "[registration]\npolicy = \"maybe\"\n", Key: "registration.policy"},
	{Name: "missing data_dir", Body: "", Key: "data_dir"},
	{Name: "missing name", Body: "", Key: "name"},
	{Name: "missing addresses", Body: "", Key: "addresses"},
	{Name: "missing genesis", Body: "", Key: "epoch.genesis"},
	{Name: "missing authorities", Body: "", Key: "authorities"},
	{Name: "bad address", Body: "addresses = [\"udp://x:1\"]\n", Key: "addresses[0]"},
	{Name: "bad listen", Body: "listen = \"nowhere\"\n", Key: "listen"},
	{Name: "open without limit", Body: "[registration]\npolicy = \"open\"\nper_address_limit = 0\n", Key: "registration.per_address_limit"},
	{Name: "negative max_messages", Body: "[mailboxes]\nmax_messages = -1\n", Key: "mailboxes.max_messages"},
	{Name: "zero store workers", Body: "[mailboxes]\nstore_workers = 0\n", Key: "mailboxes.store_workers"},
	{Name: "zero max clients", Body: "[clients]\nmax_clients = 0\n", Key: "clients.max_clients"},
	{Name: "drain longer than shutdown", Body: "drain_timeout = \"1m\"\n", Key: "drain_timeout"},
}

func TestMain(m *testing.M) { daemontest.Main(m) }

// TestValidate runs the main logic in process: -validate exits 2 and
// names the offending key.
func TestValidate(t *testing.T) {
	daemontest.CheckInvalid(t, run, badConfigs)
	daemontest.CheckValid(t, run, daemontest.WriteFile(t, "provider.toml", validConfig(t.TempDir())), exampleConfig)
}

// TestUsersCommand adds, lists and removes client keys in process.
func TestUsersCommand(t *testing.T) {
	cfg := daemontest.WriteFile(t, "provider.toml", validConfig(t.TempDir()))
	users := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"users"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	var texts []string
	for range 2 {
		k, err := keys.GenerateLinkKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, keyText(k.Public()))
	}
	if code, _, stderr := users("add", "-config", cfg, texts[0]); code != 0 {
		t.Fatalf("add: exit %d: %s", code, stderr)
	}
	if code, _, stderr := users("add", texts[1], "-config", cfg); code != 0 { // key before the flag
		t.Fatalf("add: exit %d: %s", code, stderr)
	}
	if code, _, _ := users("add", "-config", cfg, texts[0]); code != 0 {
		t.Fatal("adding a key twice failed")
	}
	code, out, _ := users("list", "-config", cfg)
	if code != 0 || len(strings.Fields(out)) != 2 || !strings.Contains(out, texts[0]) || !strings.Contains(out, texts[1]) {
		t.Fatalf("list: exit %d: %q", code, out)
	}
	if code, _, stderr := users("rm", "-config", cfg, texts[0]); code != 0 {
		t.Fatalf("rm: exit %d: %s", code, stderr)
	}
	if code, _, stderr := users("rm", "-config", cfg, texts[0]); code != daemon.ExitFailure || !strings.Contains(stderr, "not registered") {
		t.Fatalf("rm of an unknown key: exit %d: %s", code, stderr)
	}
	if _, out, _ := users("list", "-config", cfg); strings.TrimSpace(out) != texts[1] {
		t.Fatalf("list after rm: %q", out)
	}
	for _, args := range [][]string{
		{}, {"frob", "-config", cfg}, {"add", "-config", cfg}, {"add", "-config", cfg, "not-a-key"},
		{"list", "-config", cfg, texts[0]}, {"add", texts[0]}, {"list", "-config", daemontest.WriteFile(t, "provider.toml", "colour = 1\n")},
	} {
		if code, _, stderr := users(args...); code != daemon.ExitUsage || !strings.Contains(stderr, "usage") && !strings.Contains(stderr, "config") {
			t.Errorf("users %q: exit %d, want %d: %s", args, code, daemon.ExitUsage, stderr)
		}
	}
}

// TestBinary builds chorus-provider and runs it: -validate, -version, a
// closed registry filled by the users subcommand, a start with key
// creation against a real authority, /healthz and /readyz, a client that
// is served and one that is refused, the users subcommand refused while
// the provider runs, and a clean stop on SIGTERM with the keys kept.
func TestBinary(t *testing.T) {
	bin := daemontest.Build(t)
	daemontest.CheckInvalid(t, daemontest.Binary(bin), badConfigs[:5])
	daemontest.CheckValid(t, daemontest.Binary(bin), exampleConfig)
	daemontest.CheckFlags(t, daemontest.Binary(bin), "chorus-provider")

	n := startNetwork(t)
	dir := t.TempDir()
	listen, metrics := daemontest.FreeAddr(t), daemontest.FreeAddr(t)
	config := daemontest.WriteFile(t, "provider.toml", n.config(filepath.Join(dir, "data"), listen, metrics, ""))
	client, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "users", "add", "-config", config, keyText(client.Public())).CombinedOutput(); err != nil {
		t.Fatalf("users add: %v\n%s", err, out)
	}

	p := daemontest.Start(t, exec.Command(bin, "-config", config))
	doc := n.document()
	p.WaitHTTP(metrics, "/readyz")
	if code, body, err := daemontest.Get(metrics, "/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("/healthz: %d %q %v", code, body, err)
	}
	if st, err := os.Stat(filepath.Join(dir, "data")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v %v", st, err)
	}
	for _, f := range []string{"identity.key", "link.key", "users.db", "spool.db"} {
		if st, err := os.Stat(filepath.Join(dir, "data", f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, st, err)
		}
	}
	prov := doc.Providers[0]
	if !strings.Contains(p.Log(), keyText(prov.LinkKey)) {
		t.Errorf("link key not logged at start")
	}

	// The registered client is served; a stranger is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lcfg := link.Config{PrivateKey: client, PacketLength: n.geo.PacketLength()}
	c, err := link.Dial(ctx, "tcp", listen, lcfg, prov.LinkKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, link.GetConsensus{Epoch: doc.Epoch}); err != nil {
		t.Fatal(err)
	}
	cmd, err := c.Recv(ctx)
	if cs, ok := cmd.(link.Consensus); err != nil || !ok || cs.Status != link.ConsensusOK {
		t.Fatalf("GetConsensus: %v %T", err, cmd)
	}
	clientAddr := c.LocalAddr().String()
	c.Close()
	stranger, _ := keys.GenerateLinkKey(rand.Reader)
	lcfg.PrivateKey = stranger
	if _, err := link.Dial(ctx, "tcp", listen, lcfg, prov.LinkKey); !errors.Is(err, link.ErrRefused) {
		t.Errorf("stranger: %v, want ErrRefused", err)
	}
	if v := scrape(t, metrics, "chorus_provider_users_registrations_refused_total", `reason="closed"`); v != 1 {
		t.Errorf("refusals{closed} = %v", v)
	}
	for _, m := range []string{"chorus_provider_clients_connected", "chorus_provider_spool_fsync_seconds_count", "chorus_mix_packets_in_total"} {
		if _, body, _ := daemontest.Get(metrics, "/metrics"); !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	// The registry is locked while the provider runs.
	out, err := exec.Command(bin, "users", "list", "-config", config).CombinedOutput()
	if daemontest.ExitCode(err) != 1 || !strings.Contains(string(out), "stop chorus-provider first") {
		t.Errorf("users list while running: %v %q", err, out)
	}
	if !p.Stop() {
		t.FailNow()
	}
	if !strings.Contains(p.Log(), "provider: stopped") {
		t.Errorf("no clean stop in the log:\n%s", p.Log())
	}
	// Nothing about the client at info level: neither its key nor its
	// address.
	if log := p.Log(); strings.Contains(log, keyText(client.Public())) || strings.Contains(log, clientAddr) {
		t.Errorf("the log names a client:\n%s", log)
	}

	// A restart keeps its keys.
	p = daemontest.Start(t, exec.Command(bin, "-config", config))
	p.WaitHTTP(metrics, "/readyz")
	if !strings.Contains(p.Log(), keyText(prov.LinkKey)) {
		t.Errorf("link key changed across a restart")
	}
	if !p.Stop() {
		t.FailNow()
	}
}
