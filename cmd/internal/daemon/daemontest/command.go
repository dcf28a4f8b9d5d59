package daemontest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
)

// A Command runs a daemon's command line to completion and returns its
// exit code: the binary (Binary), or its main in the test process.
type Command func(args []string, stdout, stderr io.Writer) int

// Binary is the Command that runs bin as a process.
func Binary(bin string) Command {
	return func(args []string, stdout, stderr io.Writer) int {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		err := cmd.Run()
		if err != nil && ExitCode(err) == -1 {
			fmt.Fprintf(stderr, "daemontest: %v\n", err)
		}
		return ExitCode(err)
	}
}

// InProcess is the Command that runs daemon.Main in the test process with
// the config newConfig returns (the daemon's defaults). The daemon is
// never built: a command that gets as far as starting it exits
// daemon.ExitFailure.
func InProcess(name string, newConfig func() daemon.Config) Command {
	return func(args []string, stdout, stderr io.Writer) int {
		return daemon.Main(daemon.Program{
			Name: name, Args: args, Stdout: stdout, Stderr: stderr, Config: newConfig(),
			Build: func(daemon.Env) (daemon.Service, error) { return nil, errors.New("daemontest: not built in process") },
		})
	}
}

// ExitCode is the exit code in an error from exec.Cmd's Run or Wait: 0 for
// nil, -1 if the process did not start or a signal ended it.
func ExitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// Invalid is a config that -validate refuses.
type Invalid struct {
	Name string // what is wrong with it
	Body string // the file
	Key  string // the key the refusal names
}

// CheckInvalid runs `-config FILE -validate` on each config, in a subtest
// of its name, and requires exit daemon.ExitUsage with standard error
// naming its key ("key:").
func CheckInvalid(t *testing.T, c Command, configs []Invalid) {
	t.Helper()
	for _, tc := range configs {
		t.Run(tc.Name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := c([]string{"-config", WriteFile(t, "config.toml", tc.Body), "-validate"}, &stdout, &stderr)
			if code != daemon.ExitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, daemon.ExitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.Key+":") {
				t.Errorf("stderr does not name %q:\n%s", tc.Key, stderr.String())
			}
		})
	}
}

// CheckValid requires `-config FILE -validate` to exit daemon.ExitOK for
// each of the config files.
func CheckValid(t *testing.T, c Command, files ...string) {
	t.Helper()
	for _, f := range files {
		var stdout, stderr bytes.Buffer
		if code := c([]string{"-config", f, "-validate"}, &stdout, &stderr); code != daemon.ExitOK {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", f, code, daemon.ExitOK, stderr.String())
		}
	}
}

// CheckFlags requires -version to print the daemon's name and exit
// daemon.ExitOK, and no flags at all to exit daemon.ExitUsage.
func CheckFlags(t *testing.T, c Command, name string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := c([]string{"-version"}, &stdout, &stderr); code != daemon.ExitOK || !strings.HasPrefix(stdout.String(), name+" ") {
		t.Errorf("-version: exit %d, output %q", code, stdout.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := c(nil, &stdout, &stderr); code != daemon.ExitUsage {
		t.Errorf("no flags: exit %d, want %d", code, daemon.ExitUsage)
	}
}

// WriteFile writes body to a file called name in a new temporary directory
// of t, with mode 0600, and returns its path.
func WriteFile(t testing.TB, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
