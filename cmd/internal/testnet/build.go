package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNoSource is returned when the Chorus source tree to build from cannot
// be found.
var ErrNoSource = errors.New("testnet: not inside the chorus source tree (run from the repository, or set Options.Source)")

// module is the import path whose source Build compiles.
const module = "github.com/chorus-mixnet/chorus"

// FindSource returns the root of the Chorus module that contains the
// current directory, using the go command.
func FindSource(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find source: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", ErrNoSource
	}
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("find source: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == module {
			return filepath.Dir(gomod), nil
		}
	}
	return "", ErrNoSource
}

// Build compiles programs (every one of Binaries if none are named) from
// the module at src into binDir with one `go build -o binDir/ ./cmd/...`
// (the go command caches, so a rebuild of unchanged code takes about a
// second). It returns the compiler's output in the error if the build
// fails.
func Build(ctx context.Context, src, binDir string, programs ...string) error {
	if len(programs) == 0 {
		programs = Binaries
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	abs, err := filepath.Abs(binDir)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	args := []string{"build", "-o", abs + string(filepath.Separator)}
	for _, b := range programs {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = src
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("build: go %s: %w\n%s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
