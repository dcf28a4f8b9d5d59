package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/cmd/internal/daemon/daemontest"
)

const exampleConfig = "../../configs/chorus-authority.toml"

// TestExampleConfig loads the shipped example strictly.
func TestExampleConfig(t *testing.T) {
	cfg := defaultFileConfig()
	if err := daemon.LoadConfig(exampleConfig, cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Peers) != 2 || cfg.Epoch.Period.Std() != 20*time.Minute || cfg.Epoch.Genesis.IsZero() {
		t.Errorf("example config decoded oddly: %+v", cfg)
	}
}

// validConfig is a config for a single authority in dir.
func validConfig(dir string, listen, metrics string) string {
	return fmt.Sprintf(`
data_dir = %q
listen = %q
[epoch]
genesis = 2026-01-01T00:00:00Z
period = "20m"
[metrics]
address = %q
`, filepath.Join(dir, "data"), listen, metrics)
}

var badConfigs = []daemontest.Invalid{
	{Name: "unknown key", Body: "colour = \"red\"\n", Key: "colour"},
	{Name: "unknown nested key", Body: "[parameters]\nmu_meen = \"1s\"\n", Key: "parameters.mu_meen"},
	{Name: "bare integer duration", Body: "[epoch]\nperiod = 20\n", Key: "epoch.period"},
	{Name: "bad duration", Body: "[parameters]\nmax_delay = \"soon\"\n", Key: "parameters.max_delay"},
	{Name: "missing required field", Body: "", Key: "data_dir"},
	{Name: "missing genesis", Body: "", Key: "epoch.genesis"},
	{Name: "bad peer key", Body: "[[peers]]\nname = \"x\"\nidentity_key = \"nope\"\naddress = \"x:1\"\n", Key: "peers.identity_key"},
	{Name: "bad listen address", Body: "listen = \"nowhere\"\n", Key: "listen"},
	{Name: "threshold", Body: "threshold = 1\n[[peers]]\nname = \"x\"\nidentity_key = \"7xKg9AnDtFBfCcAIHPIYZfV0STow/CR5kGautTuNHFc=\"\naddress = \"x:1\"\n", Key: "threshold"},
}

func TestMain(m *testing.M) { daemontest.Main(m) }

// inProcess is main's logic run in the test process, never building the
// authority.
var inProcess = daemontest.InProcess("chorus-authority", func() daemon.Config { return defaultFileConfig() })

// TestValidate runs the main logic in process: -validate exits 2 and names
// the offending key.
func TestValidate(t *testing.T) {
	daemontest.CheckInvalid(t, inProcess, badConfigs)
	daemontest.CheckValid(t, inProcess, daemontest.WriteFile(t, "c.toml", validConfig(t.TempDir(), "127.0.0.1:0", "")))
}

// TestBinary builds chorus-authority and runs it: -validate on bad and good
// configs, -version, then a real start, /healthz, and a clean stop on SIGTERM.
func TestBinary(t *testing.T) {
	bin := daemontest.Build(t)
	daemontest.CheckInvalid(t, daemontest.Binary(bin), badConfigs[:5])
	daemontest.CheckValid(t, daemontest.Binary(bin), exampleConfig)
	daemontest.CheckFlags(t, daemontest.Binary(bin), "chorus-authority")

	dir := t.TempDir()
	metrics := daemontest.FreeAddr(t)
	p := daemontest.Start(t, exec.Command(bin, "-config", daemontest.WriteFile(t, "c.toml", validConfig(dir, daemontest.FreeAddr(t), metrics))))
	p.WaitHTTP(metrics, "/healthz")
	_, body, err := daemontest.Get(metrics, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "chorus_authority_descriptors_rejected_total") {
		t.Error("/metrics lacks the authority's metrics")
	}
	if st, err := os.Stat(filepath.Join(dir, "data")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v %v", st, err)
	}
	p.Stop()
	if !strings.Contains(p.Log(), "identity_key=") {
		t.Errorf("identity key not logged at start:\n%s", p.Log())
	}
}
