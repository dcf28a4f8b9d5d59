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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
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

var badConfigs = []struct {
	name, body, key string
}{
	{"unknown key", "colour = \"red\"\n", "colour"},
	{"unknown nested key", "[parameters]\nmu_meen = \"1s\"\n", "parameters.mu_meen"},
	{"bare integer duration", "[epoch]\nperiod = 20\n", "epoch.period"},
	{"bad duration", "[parameters]\nmax_delay = \"soon\"\n", "parameters.max_delay"},
	{"missing required field", "", "data_dir"},
	{"missing genesis", "", "epoch.genesis"},
	{"bad peer key", "[[peers]]\nname = \"x\"\nidentity_key = \"nope\"\naddress = \"x:1\"\n", "peers.identity_key"},
	{"bad listen address", "listen = \"nowhere\"\n", "listen"},
	{"threshold", "threshold = 1\n[[peers]]\nname = \"x\"\nidentity_key = \"7xKg9AnDtFBfCcAIHPIYZfV0STow/CR5kGautTuNHFc=\"\naddress = \"x:1\"\n", "threshold"},
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestValidate runs the main logic in process: -validate exits 2 and names
// the offending key.
func TestValidate(t *testing.T) {
	for _, tc := range badConfigs {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := daemon.Main(daemon.Program{Name: "chorus-authority", Args: []string{"-config", writeConfig(t, tc.body), "-validate"},
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
	code := daemon.Main(daemon.Program{Name: "chorus-authority", Args: []string{"-config", writeConfig(t, validConfig(t.TempDir(), "127.0.0.1:0", "")), "-validate"},
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
	bin := filepath.Join(t.TempDir(), "chorus-authority")
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

// TestBinary builds chorus-authority and runs it: -validate on bad and good
// configs, -version, then a real start, /healthz, and a clean stop on SIGTERM.
func TestBinary(t *testing.T) {
	bin := buildBinary(t)
	for _, tc := range badConfigs[:5] {
		out, err := exec.Command(bin, "-config", writeConfig(t, tc.body), "-validate").CombinedOutput()
		if code := exitCode(err); code != 2 || !strings.Contains(string(out), tc.key+":") {
			t.Errorf("%s: exit %d, output %q; want exit 2 naming %q", tc.name, code, out, tc.key)
		}
	}
	if out, err := exec.Command(bin, "-config", exampleConfig, "-validate").CombinedOutput(); err != nil {
		t.Errorf("example config: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "-version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "chorus-authority ") {
		t.Errorf("-version: %v %q", err, out)
	}
	if err := exec.Command(bin).Run(); exitCode(err) != 2 {
		t.Errorf("no flags: %v, want exit 2", err)
	}

	dir := t.TempDir()
	metrics := freeAddr(t)
	cmd := exec.Command(bin, "-config", writeConfig(t, validConfig(dir, freeAddr(t), metrics)))
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
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(body.String(), "chorus_authority_descriptors_rejected_total") {
		t.Error("/metrics lacks the authority's metrics")
	}
	if st, err := os.Stat(filepath.Join(dir, "data")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v %v", st, err)
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
	if !strings.Contains(stderr.String(), "identity_key=") {
		t.Errorf("identity key not logged at start:\n%s", stderr.String())
	}
}
