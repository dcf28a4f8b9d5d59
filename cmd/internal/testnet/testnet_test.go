package testnet

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// sharedBin builds the programs once per test binary.
func buildOnce(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	bin := filepath.Join(os.TempDir(), "chorus-testnet-unit-bin")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src, err := FindSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := Build(ctx, src, bin, "chorus-authority"); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestAuthoritiesOnly(t *testing.T) {
	bin := buildOnce(t)
	dir := t.TempDir()
	n, err := Open(Options{Dir: filepath.Join(dir, "net"), Bin: bin, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	n.only = map[Role]bool{RoleAuthority: true}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := n.WriteConfigs(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Abort)
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range n.Stop() {
		t.Log(e)
		if !e.OK() {
			t.Errorf("%v\n%s", e, e.LogTail)
		}
	}
}
