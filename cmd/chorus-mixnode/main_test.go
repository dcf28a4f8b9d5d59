package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/cmd/internal/daemon/daemontest"
)

const exampleConfig = "../../configs/chorus-mixnode.toml"

// TestExampleConfig loads the shipped example strictly.
func TestExampleConfig(t *testing.T) {
	cfg := defaultFileConfig()
	if err := daemon.LoadConfig(exampleConfig, cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Authorities) != 3 || cfg.Epoch.Period.Std() != 20*time.Minute || cfg.Epoch.Genesis.IsZero() || cfg.Name != "mix-a" {
		t.Errorf("example config decoded oddly: %+v", cfg)
	}
	if d := defaultFileConfig(); cfg.MaxPacketRate != d.MaxPacketRate || cfg.DrainTimeout != d.DrainTimeout || cfg.Listen != d.Listen {
		t.Errorf("the example's values differ from the defaults it claims")
	}
}

// validConfig is a config for a node in dir whose one authority is at
// authority.
func validConfig(dir, listen, metrics, authority string) string {
	return fmt.Sprintf(`
data_dir = %q
name = "mix-test"
listen = %q
addresses = ["tcp://%s"]
shutdown_timeout = "20s"
drain_timeout = "2s"
[epoch]
genesis = 2026-01-01T00:00:00Z
period = "20m"
[[authorities]]
name = "auth"
identity_key = "7xKg9AnDtFBfCcAIHPIYZfV0STow/CR5kGautTuNHFc="
address = %q
[metrics]
address = %q
`, filepath.Join(dir, "data"), listen, listen, authority, metrics)
}

const minimal = `data_dir = "/tmp/x"
name = "m"
addresses = ["tcp://127.0.0.1:1"]
[epoch]
genesis = 2026-01-01T00:00:00Z
[[authorities]]
name = "a"
identity_key = "7xKg9AnDtFBfCcAIHPIYZfV0STow/CR5kGautTuNHFc="
address = "a:1"
`

var badConfigs = []daemontest.Invalid{
	{Name: "unknown key", Body: "colour = \"red\"\n" + minimal, Key: "colour"},
	{Name: "unknown nested key", Body: strings.Replace(minimal, "[epoch]\n", "[epoch]\nperiodd = \"1s\"\n", 1), Key: "epoch.periodd"},
	{Name: "bare integer duration", Body: "drain_timeout = 10\n" + minimal, Key: "drain_timeout"},
	{Name: "bad duration", Body: "key_grace = \"soon\"\n" + minimal, Key: "key_grace"},
	{Name: "missing data dir", Body: strings.Replace(minimal, "data_dir = \"/tmp/x\"\n", "", 1), Key: "data_dir"},
	{Name: "missing name", Body: strings.Replace(minimal, "name = \"m\"\n", "", 1), Key: "name"},
	{Name: "bad name", Body: strings.Replace(minimal, "name = \"m\"", "name = \"m m\"", 1), Key: "name"},
	{Name: "missing addresses", Body: strings.Replace(minimal, "addresses = [\"tcp://127.0.0.1:1\"]\n", "", 1), Key: "addresses"},
	{Name: "bad address", Body: strings.Replace(minimal, "tcp://127.0.0.1:1", "udp://127.0.0.1:1", 1), Key: "addresses[0]"},
	{Name: "uppercase host", Body: strings.Replace(minimal, "tcp://127.0.0.1:1", "tcp://Mix.example.org:1", 1), Key: "addresses[0]"},
	{Name: "missing genesis", Body: strings.Replace(minimal, "genesis = 2026-01-01T00:00:00Z\n", "", 1), Key: "epoch.genesis"},
	{Name: "no authorities", Body: minimal[:strings.Index(minimal, "[[authorities]]")], Key: "authorities"},
	{Name: "bad authority key", Body: strings.Replace(minimal, "7xKg9AnDtFBfCcAIHPIYZfV0STow/CR5kGautTuNHFc=", "nope", 1), Key: "authorities.identity_key"},
	{Name: "threshold", Body: "threshold = 2\n" + minimal, Key: "threshold"},
	{Name: "bad listen", Body: "listen = \"nowhere\"\n" + minimal, Key: "listen"},
	{Name: "negative workers", Body: "workers = -1\n" + minimal, Key: "workers"},
	{Name: "drain longer than shutdown", Body: "drain_timeout = \"1m\"\n" + minimal, Key: "drain_timeout"},
	{Name: "grace longer than epoch", Body: "key_grace = \"1h\"\n" + minimal, Key: "key_grace"},
}

func TestMain(m *testing.M) { daemontest.Main(m) }

// inProcess is main's logic run in the test process, never building the
// node.
var inProcess = daemontest.InProcess("chorus-mixnode", func() daemon.Config { return defaultFileConfig() })

// TestValidate runs main's logic in process: -validate exits 2 and names
// the offending key.
func TestValidate(t *testing.T) {
	daemontest.CheckInvalid(t, inProcess, badConfigs)
	daemontest.CheckValid(t, inProcess, daemontest.WriteFile(t, "c.toml", minimal))
}

var identityLine = regexp.MustCompile(`identity_key=(\S+)`)

// start runs the binary with cfg until /healthz answers, checks /readyz
// says not ready (no authority answers), stops it with SIGTERM, and
// returns its log.
func start(t *testing.T, bin, cfg, metrics string) string {
	t.Helper()
	p := daemontest.Start(t, exec.Command(bin, "-config", cfg))
	p.WaitHTTP(metrics, "/healthz")
	if code, _, err := daemontest.Get(metrics, "/readyz"); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("/readyz without any document: %d %v, want 503", code, err)
	}
	_, body, err := daemontest.Get(metrics, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"chorus_mix_packets_dropped_total", "chorus_mix_replay_fill_ratio", "chorus_link_handshakes_completed_total"} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	p.Stop()
	return p.Log()
}

// TestBinary builds chorus-mixnode and runs it: -validate on bad and good
// configs, -version, then two starts on the same data directory: the keys
// are created on the first and kept for the second, and SIGTERM stops it
// cleanly while it waits for a document.
func TestBinary(t *testing.T) {
	bin := daemontest.Build(t)
	daemontest.CheckInvalid(t, daemontest.Binary(bin), badConfigs)
	daemontest.CheckValid(t, daemontest.Binary(bin), exampleConfig)
	daemontest.CheckFlags(t, daemontest.Binary(bin), "chorus-mixnode")

	dir := t.TempDir()
	metrics := daemontest.FreeAddr(t)
	cfg := daemontest.WriteFile(t, "c.toml", validConfig(dir, daemontest.FreeAddr(t), metrics, daemontest.FreeAddr(t)))
	first := start(t, bin, cfg, metrics)
	data := filepath.Join(dir, "data")
	for _, f := range []string{"identity.key", "link.key"} {
		st, err := os.Stat(filepath.Join(data, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, st, err)
		}
	}
	if st, err := os.Stat(data); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v %v", st, err)
	}
	second := start(t, bin, cfg, metrics)
	a, b := identityLine.FindStringSubmatch(first), identityLine.FindStringSubmatch(second)
	if a == nil || b == nil || a[1] != b[1] {
		t.Errorf("identity key not logged, or changed across restarts: %q, %q", a, b)
	}
}
