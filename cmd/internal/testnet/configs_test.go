package testnet

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// daemons are the programs that read a config file.
var daemons = []string{"chorus-authority", "chorus-mixnode", "chorus-provider", "chorusd"}

// TestShippedConfigs loads every TOML file in configs/ strictly with its
// daemon's own loader: configs/NAME.toml is checked by `NAME -config
// configs/NAME.toml -validate`, which decodes the file, refuses unknown
// keys and bare-integer durations, and lists every problem. A TOML file
// that no daemon reads fails, and so does a daemon without an example.
func TestShippedConfigs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src, err := FindSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	configs := filepath.Join(src, "configs")
	var files []string
	err = filepath.WalkDir(configs, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".toml") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no TOML files in configs/")
	}
	var programs []string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".toml")
		if !slices.Contains(daemons, name) {
			t.Errorf("%s: no daemon reads it (name it after one of %v)", f, daemons)
			continue
		}
		programs = append(programs, name)
	}
	for _, d := range daemons {
		if exists(filepath.Join(src, "cmd", d)) && !slices.Contains(programs, d) {
			t.Errorf("cmd/%s has no example config configs/%s.toml", d, d)
		}
	}
	if len(programs) == 0 {
		return
	}
	bin := SharedBinaries(t)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".toml")
		if !slices.Contains(programs, name) {
			continue
		}
		out, err := exec.CommandContext(ctx, filepath.Join(bin, name), "-config", f, "-validate").CombinedOutput()
		if err != nil {
			rel, _ := filepath.Rel(src, f)
			t.Errorf("%s -config %s -validate: %v\n%s", name, rel, err, out)
		}
	}
}
