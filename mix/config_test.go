package mix

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-mixnet/chorus/pki"
)

func TestConfigErrors(t *testing.T) {
	s := schedule(t, time.Hour, time.Minute)
	good := nodeConfig("mix-0-0", pki.RoleMix, "127.0.0.1:1", filepath.Join(t.TempDir(), "d"), s)
	good.Listen = "127.0.0.1:0"
	for name, mutate := range map[string]func(*Config){
		"no name":          func(c *Config) { c.Name = "" },
		"no role":          func(c *Config) { c.Role = 0 },
		"no address":       func(c *Config) { c.Addresses = nil },
		"no data dir":      func(c *Config) { c.DataDir = "" },
		"no keys":          func(c *Config) { c.Identity = nil },
		"no schedule":      func(c *Config) { c.Schedule = nil },
		"negative workers": func(c *Config) { c.Workers = -1 },
		"provider as mix":  func(c *Config) { c.Role = pki.RoleProvider },
		"no listen":        func(c *Config) { c.Listen = "" },
	} {
		cfg := good
		mutate(&cfg)
		if _, err := New(cfg, Deps{Documents: newTestDir(3)}); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
	if _, err := New(good, Deps{}); !errors.Is(err, ErrConfig) {
		t.Errorf("no document source: %v", err)
	}
	n, err := New(good, Deps{Documents: newTestDir(3)})
	if err != nil {
		t.Fatal(err)
	}
	if n.Ready() == nil {
		t.Error("ready before running")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestNewFailsCleanly: a failure half-way through NewPipeline (here a
// metrics name registered twice) releases what was opened.
func TestNewFailsCleanly(t *testing.T) {
	s := schedule(t, time.Hour, time.Minute)
	cfg := nodeConfig("mix-0-0", pki.RoleMix, "127.0.0.1:1", filepath.Join(t.TempDir(), "d"), s)
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "chorus_mix_packets_in_total"}))
	if _, err := NewPipeline(cfg, Deps{Documents: newTestDir(3), Registerer: reg}); err == nil {
		t.Fatal("no error for a metric registered twice")
	}
	// The key store and replay filters were released: a second pipeline
	// on the same directory opens them again.
	p, err := NewPipeline(cfg, Deps{Documents: newTestDir(3)})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}
