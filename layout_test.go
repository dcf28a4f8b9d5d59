// Package chorus_test holds repository-wide checks: the import rules of
// DESIGN §4 and formatting.
package chorus_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"path"
	"strings"
	"testing"
)

const module = "github.com/chorus-mixnet/chorus"

type goPackage struct {
	ImportPath string
	Name       string
	Deps       []string
	Imports    []string
}

// listPackages runs `go list -deps`-style queries over the whole module.
func listPackages(t *testing.T) []goPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=ImportPath,Name,Deps,Imports", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

func under(pkg, dir string) bool {
	p := module + "/" + dir
	return pkg == p || strings.HasPrefix(pkg, p+"/")
}

// TestImportRules enforces DESIGN §4: the mix never depends on the provider
// or the client; the client never links the authority or the provider.
func TestImportRules(t *testing.T) {
	rules := []struct {
		from      string
		forbidden []string
	}{
		{"mix", []string{"provider", "client"}},
		{"client", []string{"pki/authority", "provider"}},
		{"pki", []string{"mix/link", "provider", "client"}},
		{"cmd/chorus", []string{"pki/authority", "provider", "mix/hop", "mix/delay", "mix/forward", "mix/replay", "mix/rotation"}},
		{"cmd/chorusd", []string{"pki/authority", "provider"}},
	}
	for _, p := range listPackages(t) {
		for _, r := range rules {
			// "cmd/chorus" must not match "cmd/chorus-authority".
			if !under(p.ImportPath, r.from) {
				continue
			}
			for _, d := range p.Deps {
				for _, f := range r.forbidden {
					if under(d, f) && !under(d, r.from) {
						t.Errorf("%s depends on %s (DESIGN §4 forbids %s → %s)", p.ImportPath, d, r.from, f)
					}
				}
			}
		}
	}
}

// TestPackageNames enforces that no package is named common, util(s) or glue,
// or after a standard-library package.
func TestPackageNames(t *testing.T) {
	std := map[string]bool{}
	out, err := exec.Command("go", "list", "std").Output()
	if err != nil {
		t.Fatalf("go list std: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if !strings.Contains(p, "internal") && !strings.HasPrefix(p, "vendor/") {
			std[path.Base(p)] = true
		}
	}
	banned := map[string]bool{"common": true, "util": true, "utils": true, "glue": true, "helpers": true, "misc": true}
	for _, p := range listPackages(t) {
		if p.Name == "main" || p.ImportPath == module {
			continue
		}
		base := path.Base(p.ImportPath)
		if banned[base] || banned[p.Name] {
			t.Errorf("%s: package name %q says nothing about its job", p.ImportPath, base)
		}
		if std[base] && base != "internal" {
			t.Errorf("%s: named after the standard library package %q", p.ImportPath, base)
		}
	}
}

// TestGofmt fails if any file needs formatting.
func TestGofmt(t *testing.T) {
	out, err := exec.Command("gofmt", "-l", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("gofmt: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("gofmt -l reports:\n%s", s)
	}
}
