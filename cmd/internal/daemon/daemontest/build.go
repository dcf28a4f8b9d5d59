package daemontest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// built is the one build of the package under test.
var built struct {
	mu     sync.Mutex
	inMain bool   // Main is running the tests
	dir    string // the temporary directory of the binary; Main removes it
	bin    string
	err    error
}

// Main runs the tests of m and then removes the binary Build made. Call it
// from TestMain, and nothing after it: when TestMain returns, the test
// process exits with the tests' result.
func Main(m *testing.M) {
	built.mu.Lock()
	built.inMain = true
	built.mu.Unlock()
	defer func() {
		built.mu.Lock()
		defer built.mu.Unlock()
		if built.dir != "" {
			os.RemoveAll(built.dir)
		}
	}()
	m.Run()
}

// Build returns the binary of the package under test (the current
// directory, where `go test` runs a package's tests), built with
// `go build -o` into a temporary directory the first time a test of the
// process asks. It skips the test in -short mode, and fails it if the
// build failed or TestMain does not call Main.
func Build(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	built.mu.Lock()
	defer built.mu.Unlock()
	if !built.inMain {
		t.Fatal("daemontest.Build: the package's TestMain must call daemontest.Main, which removes the binary")
	}
	if built.bin == "" && built.err == nil {
		built.bin, built.err = build(&built.dir)
	}
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// build compiles the package in the current directory into a new
// temporary directory, which it records in *dir.
func build(dir *string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	if *dir, err = os.MkdirTemp("", "daemontest-"); err != nil {
		return "", err
	}
	bin := filepath.Join(*dir, filepath.Base(wd))
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}
