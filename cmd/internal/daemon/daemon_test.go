package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testConfig is a small daemon config in the shape real ones take.
type testConfig struct {
	Ops
	DataDir string   `toml:"data_dir"`
	Period  Duration `toml:"period"`
	Peers   []struct {
		Name    string `toml:"name"`
		Address string `toml:"address"`
	} `toml:"peers"`
}

func defaultTestConfig() *testConfig {
	return &testConfig{Ops: DefaultOps("127.0.0.1:0"), Period: Duration(20 * time.Minute)}
}

func (c *testConfig) Validate() []error {
	errs := c.Ops.Validate()
	if c.DataDir == "" {
		errs = append(errs, Problemf("data_dir", "is required"))
	}
	if c.Period <= 0 {
		errs = append(errs, Problemf("period", "must be positive"))
	}
	return errs
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, body string) (*testConfig, error) {
	t.Helper()
	c := defaultTestConfig()
	return c, LoadConfig(writeFile(t, body), c)
}

func TestLoadConfigValid(t *testing.T) {
	c, err := load(t, `
data_dir = "/var/lib/x"
period = "90s"
shutdown_timeout = "5s"
[logging]
format = "json"
[[peers]]
name = "a"
address = "127.0.0.1:1"
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Period.Std() != 90*time.Second || c.ShutdownTimeout.Std() != 5*time.Second {
		t.Errorf("durations: got %v, %v", c.Period, c.ShutdownTimeout)
	}
	if c.Logging.Level != "info" || c.Logging.Format != "json" {
		t.Errorf("logging defaults not kept: %+v", c.Logging)
	}
	if len(c.Peers) != 1 || c.Peers[0].Name != "a" {
		t.Errorf("peers: %+v", c.Peers)
	}
}

// problems returns the messages of a *ConfigError.
func problems(t *testing.T, err error) []string {
	t.Helper()
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *ConfigError", err)
	}
	var out []string
	for _, p := range ce.Problems {
		out = append(out, p.Error())
	}
	return out
}

func TestLoadConfigUnknownKeysAndMissingFieldAllListed(t *testing.T) {
	_, err := load(t, `
colour = "red"
perod = "1m"
[logging]
levle = "debug"
[metrics]
adress = "x"
[[peers]]
name = "a"
addr = "b"
[extra]
a = 1
b = 2
`)
	got := problems(t, err)
	want := []string{"colour", "extra", "logging.levle", "metrics.adress", "peers.addr", "perod", "data_dir: is required"}
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("problem %d = %q, want it to start with %q", i, got[i], w)
		}
	}
	if !errors.Is(err, ErrUnknownKey) {
		t.Error("errors.Is(err, ErrUnknownKey) = false")
	}
	// The message names every key.
	msg := err.Error()
	for _, k := range []string{"colour", "perod", "levle", "adress", "addr", "extra", "data_dir"} {
		if !strings.Contains(msg, k) {
			t.Errorf("error does not name %q:\n%s", k, msg)
		}
	}
}

func TestDurationRejectsBareInteger(t *testing.T) {
	for _, body := range []string{
		"data_dir = \"d\"\nperiod = 20\n",
		"data_dir = \"d\"\nperiod = 1.5\n",
		"data_dir = \"d\"\nperiod = \"20\"\n",
		"data_dir = \"d\"\nperiod = \"soon\"\n",
		"data_dir = \"d\"\n[logging]\nlevel = \"info\"\n[metrics]\naddress = \"127.0.0.1:1\"\n[x]\n",
	} {
		_, err := load(t, body)
		if strings.Contains(body, "[x]") {
			// Control: only the unknown table, no duration problem.
			if got := problems(t, err); len(got) != 1 || !strings.HasPrefix(got[0], "x: unknown key") {
				t.Errorf("control: %q", got)
			}
			continue
		}
		got := problems(t, err)
		if len(got) != 1 || !strings.HasPrefix(got[0], "period: ") || !strings.Contains(got[0], `"20m"`) {
			t.Errorf("body %q: got %q, want one problem naming period and showing the form \"20m\"", body, got)
		}
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	_, err := load(t, `
period = "-1s"
shutdown_timeout = "0s"
[logging]
level = "loud"
format = "xml"
[metrics]
address = "nohost"
`)
	got := strings.Join(problems(t, err), "\n")
	for _, k := range []string{"shutdown_timeout", "logging.level", "logging.format", "metrics.address", "data_dir", "period"} {
		if !strings.Contains(got, k+":") {
			t.Errorf("missing problem for %s in:\n%s", k, got)
		}
	}
}

func TestLoadConfigMissingFileAndSyntax(t *testing.T) {
	c := defaultTestConfig()
	err := LoadConfig(filepath.Join(t.TempDir(), "nope.toml"), c)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
	_, err = load(t, "data_dir = \n")
	if len(problems(t, err)) != 1 {
		t.Errorf("syntax error: %v", err)
	}
}

func TestDurationMarshalRoundTrip(t *testing.T) {
	d := Duration(90 * time.Second)
	b, _ := d.MarshalText()
	var back Duration
	if err := back.UnmarshalTOML(string(b)); err != nil || back != d {
		t.Fatalf("round trip: %v %v", back, err)
	}
}

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := ParseFlags("x", nil, &stderr); err == nil {
		t.Error("no -config accepted")
	}
	if _, err := ParseFlags("x", []string{"-config", "a", "extra"}, &stderr); err == nil {
		t.Error("extra argument accepted")
	}
	f, err := ParseFlags("x", []string{"-config", "a", "-validate"}, &stderr)
	if err != nil || f.Config != "a" || !f.Validate {
		t.Errorf("got %+v, %v", f, err)
	}
	if f, err := ParseFlags("x", []string{"-version"}, &stderr); err != nil || !f.Version {
		t.Errorf("-version: %+v %v", f, err)
	}
}

func TestMainValidateExitCodes(t *testing.T) {
	good := writeFile(t, "data_dir = \"d\"\n")
	bad := writeFile(t, "period = 20\n")
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"-config", good, "-validate"}, ExitOK, "valid"},
		{[]string{"-config", bad, "-validate"}, ExitUsage, "period"},
		{[]string{"-config", bad}, ExitUsage, "period"},
		{[]string{"-bogus"}, ExitUsage, "bogus"},
		{[]string{"-version"}, ExitOK, "x dev"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(Program{Name: "x", Args: tc.args, Stdout: &stdout, Stderr: &stderr, Config: defaultTestConfig(),
			Build: func(Env) (Service, error) { t.Fatal("built"); return nil, nil }})
		if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
			t.Errorf("%q: exit %d (want %d), output %q (want %q)", tc.args, code, tc.code, stdout.String()+stderr.String(), tc.out)
		}
	}
}

func TestHandleSignals(t *testing.T) {
	sigs := make(chan os.Signal)
	hups := make(chan struct{}, 1)
	exits := make(chan int, 1)
	ctx, stop := handleSignals(context.Background(), sigs, slog.New(slog.DiscardHandler),
		func() { hups <- struct{}{} }, func(c int) { exits <- c })
	defer stop()

	sigs <- syscall.SIGHUP
	<-hups
	if ctx.Err() != nil {
		t.Fatal("SIGHUP cancelled the context")
	}
	sigs <- syscall.SIGTERM
	<-ctx.Done()
	select {
	case c := <-exits:
		t.Fatalf("first signal exited with %d", c)
	default:
	}
	sigs <- syscall.SIGINT
	if c := <-exits; c != ExitFailure {
		t.Errorf("second signal: exit %d, want %d", c, ExitFailure)
	}
}

// TestNotifyContextRealSignals sends real signals to the test process.
func TestNotifyContextRealSignals(t *testing.T) {
	hups := make(chan struct{}, 1)
	ctx, stop := NotifyContext(context.Background(), slog.New(slog.DiscardHandler),
		func() { hups <- struct{}{} }, func(int) { t.Error("exit called") })
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	<-hups
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
}

func TestLogFileReopen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.log")
	l, err := OpenLog(LogConfig{Level: "info", Format: "json", File: p, UnsafeDebugLogging: true}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Info("first")
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Info("second")
	old, _ := os.ReadFile(p + ".1")
	cur, _ := os.ReadFile(p)
	if !strings.Contains(string(old), "UNSAFE DEBUG LOGGING") || !strings.Contains(string(old), "first") || strings.Contains(string(old), "second") {
		t.Errorf("rotated file: %s", old)
	}
	if !strings.Contains(string(cur), "second") {
		t.Errorf("new file: %s", cur)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v", st.Mode())
	}
}

func TestEnsureDataDir(t *testing.T) {
	d := filepath.Join(t.TempDir(), "a", "b")
	if err := EnsureDataDir(d); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(d); st.Mode().Perm() != 0o700 {
		t.Errorf("mode %v", st.Mode())
	}
	os.Chmod(d, 0o755)
	if err := EnsureDataDir(d); !errors.Is(err, ErrDataDirPermissions) {
		t.Errorf("loose directory: %v", err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthListener(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "chorus_test_things_total", Help: "things"})
	reg.MustRegister(c)
	c.Add(3)
	var mu sync.Mutex
	readyErr := errors.New("no document yet")
	ready := func() error { mu.Lock(); defer mu.Unlock(); return readyErr }

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, HealthHandler(reg, ready), slog.New(slog.DiscardHandler)) }()
	base := "http://" + ln.Addr().String()

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "no document yet") {
		t.Errorf("/readyz before: %d %q", code, body)
	}
	mu.Lock()
	readyErr = nil
	mu.Unlock()
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz after: %d", code)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "chorus_test_things_total 3") {
		t.Errorf("/metrics: %d %q", code, body)
	}
	if code, _ := get(t, base+"/other"); code != 404 {
		t.Errorf("/other: %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

type fakeService struct {
	ran chan struct{}
	err error
}

func (s *fakeService) Ready() error { return nil }
func (s *fakeService) Run(ctx context.Context) error {
	close(s.ran)
	<-ctx.Done()
	return s.err
}

type stuckService struct{}

func (stuckService) Ready() error { return nil }
func (stuckService) Run(context.Context) error {
	select {}
}

func TestRunDrainsAndTimesOut(t *testing.T) {
	ops := DefaultOps("127.0.0.1:0")
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	s := &fakeService{ran: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- run(ctx, log, s, prometheus.NewRegistry(), &ops) }()
	<-s.ran
	cancel()
	if err := <-done; err != nil {
		t.Errorf("clean stop: %v", err)
	}

	ops.ShutdownTimeout = Duration(10 * time.Millisecond)
	ops.Metrics.Address = ""
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := run(ctx, log, stuckService{}, prometheus.NewRegistry(), &ops); !errors.Is(err, ErrShutdownTimeout) {
		t.Errorf("stuck service: %v", err)
	}
}
