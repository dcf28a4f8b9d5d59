package testnet

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
)

// TestParameters are the traffic parameters the test network's
// authorities vote for: the Loopix processes of a real network, only
// faster, so a message crosses the network in a fraction of a second and a
// fragmented one in a few seconds. A real network's defaults
// (configs/chorus-authority.toml) are several times slower.
func TestParameters() pki.Parameters {
	return pki.Parameters{
		MuMean:            20 * time.Millisecond,  // mean per-hop delay
		MaxDelay:          500 * time.Millisecond, // longest per-hop delay accepted
		LambdaPMean:       50 * time.Millisecond,  // a client's send slots: 20 a second
		LambdaLMean:       500 * time.Millisecond, // client loop cover
		LambdaDMean:       500 * time.Millisecond, // client drop cover
		LambdaMMean:       time.Second,            // mix and provider loop cover
		RetrievalInterval: 50 * time.Millisecond,  // mailbox polling
	}
}

// shutdownTimeout is the drain bound written into every daemon's config;
// Stop waits a little longer before it sends SIGKILL.
const shutdownTimeout = 10 * time.Second

// writeTOML encodes v into path (mode 0600: configs name key files and
// passphrase-free state) after a header comment.
func writeTOML(path, header string, v any) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s\n# Written by chorus-testnet; every start of the network rewrites it.\n\n", header)
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// The config files below mirror the daemons' own config structs (which
// live in their package main) key for key. A key that a daemon does not
// know, or a value it refuses, fails WriteConfigs: every written file is
// checked with the daemon's own -validate.

type epochSection struct {
	Genesis time.Time       `toml:"genesis"`
	Period  daemon.Duration `toml:"period"`
}

type parametersSection struct {
	MuMean            daemon.Duration `toml:"mu_mean"`
	MaxDelay          daemon.Duration `toml:"max_delay"`
	LambdaPMean       daemon.Duration `toml:"lambda_p_mean"`
	LambdaLMean       daemon.Duration `toml:"lambda_l_mean"`
	LambdaDMean       daemon.Duration `toml:"lambda_d_mean"`
	LambdaMMean       daemon.Duration `toml:"lambda_m_mean"`
	RetrievalInterval daemon.Duration `toml:"retrieval_interval"`
}

func parametersFile(p pki.Parameters) parametersSection {
	return parametersSection{
		MuMean:            daemon.Duration(p.MuMean),
		MaxDelay:          daemon.Duration(p.MaxDelay),
		LambdaPMean:       daemon.Duration(p.LambdaPMean),
		LambdaLMean:       daemon.Duration(p.LambdaLMean),
		LambdaDMean:       daemon.Duration(p.LambdaDMean),
		LambdaMMean:       daemon.Duration(p.LambdaMMean),
		RetrievalInterval: daemon.Duration(p.RetrievalInterval),
	}
}

// authorityFile is configs/chorus-authority.toml's shape.
type authorityFile struct {
	DataDir          string                `toml:"data_dir"`
	Listen           string                `toml:"listen"`
	Threshold        int                   `toml:"threshold"`
	ShutdownTimeout  daemon.Duration       `toml:"shutdown_timeout"`
	Layers           int                   `toml:"layers"`
	MinMixesPerLayer int                   `toml:"min_mixes_per_layer"`
	Epoch            epochSection          `toml:"epoch"`
	Parameters       parametersSection     `toml:"parameters"`
	Peers            []dirclient.Authority `toml:"peers"`
	Logging          daemon.LogConfig      `toml:"logging"`
	Metrics          daemon.MetricsConfig  `toml:"metrics"`
}

// logging is every daemon's [logging]: text to standard error, which the
// testnet sends to the process's log file.
func logging() daemon.LogConfig {
	return daemon.LogConfig{Level: "info", Format: "text"}
}

// authorityKey creates (first start) or loads an authority's identity key
// in its data directory, where chorus-authority looks for it, so the
// other authorities and the nodes can name it in their configs before it
// ever runs.
func authorityKey(dataDir string) (keys.IdentityPublicKey, error) {
	k, err := keys.LoadOrCreateIdentity(filepath.Join(dataDir, "identity.key"), rand.Reader)
	if err != nil {
		return keys.IdentityPublicKey{}, fmt.Errorf("authority key: %w", err)
	}
	defer k.Zero()
	return k.Public(), nil
}

func daemonDuration(d time.Duration) daemon.Duration { return daemon.Duration(d) }

// shutdownTimeoutFile is shutdown_timeout in every config.
const shutdownTimeoutFile = daemon.Duration(shutdownTimeout)

func metricsSection(addr string) daemon.MetricsConfig { return daemon.MetricsConfig{Address: addr} }

// writeNode writes a mix's or a provider's config.
func (n *Network) writeNode(nd Node) error {
	return fmt.Errorf("%w: %s", errNotLanded, nd.Role.binary())
}

// writeClient writes a chorusd config.
func (n *Network) writeClient(nd Node) error {
	return fmt.Errorf("%w: %s", errNotLanded, nd.Role.binary())
}

var errNotLanded = errors.New("the testnet cannot configure this daemon yet")
