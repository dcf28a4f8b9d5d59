package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
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

var badConfigs = []struct {
	name, body, key string
}{
	{"unknown key", "colour = \"red\"\n" + minimal, "colour"},
	{"unknown nested key", strings.Replace(minimal, "[epoch]\n", "[epoch]\nperiodd = \"1s\"\n", 1), "epoch.periodd"},
	{"bare integer duration", "drain_timeout = 10\n" + minimal, "drain_timeout"},
	{"bad duration", "key_grace = \"soon\"\n" + minimal, "key_grace"},
	{"missing data dir", strings.Replace(minimal, "data_dir = \"/tmp/x\"\n", "", 1), "data_dir"},
	{"missing name", strings.Replace(minimal, "name = \"m\"\n", "", 1), "name"},
	{"bad name", strings.Replace(minimal, "name = \"m\"", "name = \"m m\"", 1), "name"},
	{"missing addresses", strings.Replace(minimal, "addresses = [\"tcp://127.0.0.1:1\"]\n", "", 1), "addresses"},
	{"bad address", strings.Replace(minimal, "tcp://127.0.0.1:1", "udp://127.0.0.1:1", 1), "addresses[0]"},
	{"uppercase host", strings.Replace(minimal, "tcp://127.0.0.1:1", "tcp://Mix.example.org:1", 1), "addresses[0]"},
	{"missing genesis", strings.Replace(minimal, "genesis = 2026-01-01T00:00:00Z\n", "", 1), "epoch.genesis"},
	{"no authorities", minimal[:strings.Index(minimal, "[[authorities]]")], "authorities"},
	{"bad authority key", strings.Replace(minimal, "7xKg9AnDtFBfCcAIHPIYZfV0STow/CR5kGautTuNHFc=", "nope", 1), "authorities.identity_key"},
	{"threshold", "threshold = 2\n" + minimal, "threshold"},
	{"bad listen", "listen = \"nowhere\"\n" + minimal, "listen"},
	{"negative workers", "workers = -1\n" + minimal, "workers"},
	{"drain longer than shutdown", "drain_timeout = \"1m\"\n" + minimal, "drain_timeout"},
	{"grace longer than epoch", "key_grace = \"1h\"\n" + minimal, "key_grace"},
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestValidate runs main's logic in process: -validate exits 2 and names
// the offending key.
func TestValidate(t *testing.T) {
	for _, tc := range badConfigs {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := daemon.Main(daemon.Program{Name: "chorus-mixnode", Args: []string{"-config", writeConfig(t, tc.body), "-validate"},
				Stdout: &stdout, Stderr: &stderr, Config: defaultFileConfig(),
				Build: func(daemon.Env) (daemon.Service, error) { return nil, errors.New("built") }})
			if code != daemon.ExitUsage {
				t.Errorf("exit %d, want %d", code, daemon.ExitUsage)
			}
			if !strings.Contains(stderr.String(), tc.key+":") {
				t.Errorf("stderr does not name %q:\n%s", tc.key, stderr.String())
			}
		})
	}
	var stdout, stderr bytes.Buffer
	code := daemon.Main(daemon.Program{Name: "chorus-mixnode", Args: []string{"-config", writeConfig(t, minimal), "-validate"},
		Stdout: &stdout, Stderr: &stderr, Config: defaultFileConfig()})
	if code != daemon.ExitOK {
		t.Errorf("valid config: exit %d: %s", code, stderr.String())
	}
}

func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "chorus-mixnode")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var identityLine = regexp.MustCompile(`identity_key=(\S+)`)

// start runs the binary with cfg until /healthz answers, checks /readyz
// says not ready (no authority answers), stops it with SIGTERM, and
// returns its standard error.
func start(t *testing.T, bin, cfg, metrics string) string {
	t.Helper()
	cmd := exec.Command(bin, "-config", cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + metrics + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no /healthz; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get("http://" + metrics + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz without any document: %d, want 503", resp.StatusCode)
	}
	resp, err = http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"chorus_mix_packets_dropped_total", "chorus_mix_replay_fill_ratio", "chorus_link_handshakes_completed_total"} {
		if !strings.Contains(body.String(), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if code := exitCode(err); code != 0 {
			t.Errorf("after SIGTERM: exit %d; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("did not stop after SIGTERM; stderr:\n%s", stderr.String())
	}
	return stderr.String()
}

// TestBinary builds chorus-mixnode and runs it: -validate on bad and good
// configs, -version, then two starts on the same data directory: the keys
// are created on the first and kept for the second, and SIGTERM stops it
// cleanly while it waits for a document.
func TestBinary(t *testing.T) {
	bin := buildBinary(t)
	for _, tc := range badConfigs {
		out, err := exec.Command(bin, "-config", writeConfig(t, tc.body), "-validate").CombinedOutput()
		if code := exitCode(err); code != 2 || !strings.Contains(string(out), tc.key+":") {
			t.Errorf("%s: exit %d, output %q; want exit 2 naming %q", tc.name, code, out, tc.key)
		}
	}
	if out, err := exec.Command(bin, "-config", exampleConfig, "-validate").CombinedOutput(); err != nil {
		t.Errorf("example config: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "-version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "chorus-mixnode ") {
		t.Errorf("-version: %v %q", err, out)
	}

	dir := t.TempDir()
	metrics := freeAddr(t)
	cfg := writeConfig(t, validConfig(dir, freeAddr(t), metrics, freeAddr(t)))
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
