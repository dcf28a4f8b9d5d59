package testnet

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// The tests of this package and the end-to-end tests share one build of
// the programs per test binary.
var shared struct {
	once sync.Once
	dir  string
	err  error
}

// SharedBinaries builds every program once per test binary and returns
// the directory that holds them. TestMain removes it.
func SharedBinaries(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		src, err := FindSource(ctx)
		if err != nil {
			shared.err = err
			return
		}
		if shared.dir, err = os.MkdirTemp("", "chorus-testnet-bin-"); err != nil {
			shared.err = err
			return
		}
		shared.err = Build(ctx, src, shared.dir)
	})
	if shared.err != nil {
		t.Fatalf("build the programs: %v", shared.err)
	}
	return shared.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}
