package daemontest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
)

func TestMain(m *testing.M) { Main(m) }

// fakeConfig is testdata/fakedaemon's config, for InProcess.
type fakeConfig struct {
	daemon.Ops
	Name       string `toml:"name"`
	FailOnStop bool   `toml:"fail_on_stop"`
}

func (c *fakeConfig) Validate() []error {
	errs := c.Ops.Validate()
	if c.Name == "" {
		errs = append(errs, daemon.Problemf("name", "is required"))
	}
	return errs
}

var invalid = []Invalid{
	{"unknown key", "name = \"x\"\ncolour = \"red\"\n", "colour"},
	{"missing name", "", "name"},
	{"bad duration", "name = \"x\"\nshutdown_timeout = 5\n", "shutdown_timeout"},
}

// buildFake builds testdata/fakedaemon, twice: the second is the first.
func buildFake(t *testing.T) string {
	t.Chdir("testdata/fakedaemon")
	bin := Build(t)
	if again := Build(t); again != bin {
		t.Errorf("a second Build gave %s, not %s", again, bin)
	}
	if st, err := os.Stat(bin); err != nil || st.Mode()&0o100 == 0 || !strings.HasSuffix(bin, "/fakedaemon") {
		t.Fatalf("binary %s: %v %v", bin, st, err)
	}
	return bin
}

func TestCommands(t *testing.T) {
	in := InProcess("fakedaemon", func() daemon.Config { return &fakeConfig{Ops: daemon.DefaultOps("")} })
	valid := WriteFile(t, "valid.toml", "name = \"x\"\n")
	for name, c := range map[string]Command{"in process": in, "binary": Binary(buildFake(t))} {
		t.Run(name, func(t *testing.T) {
			CheckInvalid(t, c, invalid)
			CheckValid(t, c, valid)
			CheckFlags(t, c, "fakedaemon")
		})
	}
	// In process, a command that gets past -validate is not built.
	var stderr strings.Builder
	if code := in([]string{"-config", valid}, &stderr, &stderr); code != daemon.ExitFailure {
		t.Errorf("in process without -validate: exit %d, want %d", code, daemon.ExitFailure)
	}
	if code := Binary("/nonexistent/binary")(nil, &stderr, &stderr); code != -1 {
		t.Errorf("a binary that does not exist: exit %d, want -1", code)
	}
}

// recorder is a testing.TB whose Errorf is recorded, not failed.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestProcess(t *testing.T) {
	bin := buildFake(t)
	start := func(tb testing.TB, extra string) (*Process, string) {
		metrics := FreeAddr(t)
		cfg := WriteFile(t, "c.toml", fmt.Sprintf("name = \"fake-7\"\n%s\n[metrics]\naddress = %q\n", extra, metrics))
		p := Start(tb, exec.Command(bin, "-config", cfg))
		p.WaitHTTP(metrics, "/healthz")
		return p, metrics
	}

	p, metrics := start(t, "")
	if code, body, err := Get(metrics, "/readyz"); err != nil || code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz: %d %q %v", code, body, err)
	}
	if !strings.Contains(p.Log(), "name=fake-7") {
		t.Errorf("the log is not captured:\n%s", p.Log())
	}
	if !p.Stop() {
		t.Error("Stop of a clean daemon reported a failure")
	}
	select {
	case <-p.Exited():
	default:
		t.Error("Exited is open after Stop")
	}

	rec := &recorder{TB: t}
	p, _ = start(rec, "fail_on_stop = true")
	if p.Stop() || len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "exit 1") {
		t.Errorf("Stop of a failing daemon: errors %q", rec.errors)
	}

	p, _ = start(t, "")
	p.Kill()
	if code, ok := p.Wait(0); !ok || code != -1 {
		t.Errorf("after Kill: exit %d, exited %v", code, ok)
	}
}
