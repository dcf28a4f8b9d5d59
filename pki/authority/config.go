package authority

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
)

// Config configures an authority. chorus-authority fills it from the TOML
// file; the comments give each field's key there. DefaultConfig holds every
// default; Validate lists every problem, naming the keys.
type Config struct {
	// DataDir (data_dir) holds the identity key, unless IdentityKeyFile
	// says otherwise, and the state database. Required.
	DataDir string
	// Listen (listen) is the address of the HTTP API for nodes and peers.
	Listen string
	// IdentityKeyFile (identity_key_file) is the authority's Ed25519
	// identity key, created on first start; default DataDir/identity.key.
	IdentityKeyFile string

	// Peers ([[peers]]) are the other authorities; none for a single
	// authority.
	Peers []dirclient.Authority
	// Threshold (threshold) is how many authorities must sign a document:
	// a majority of len(Peers)+1. 0 means the smallest majority.
	Threshold int

	// Genesis (epoch.genesis) is the start of epoch 0 and Period
	// (epoch.period) the length of an epoch; every authority and node must
	// share them.
	Genesis time.Time
	Period  time.Duration

	// Layers (layers) is the number of mix layers; MinMixesPerLayer
	// (min_mixes_per_layer) the fewest mixes in each for a document.
	Layers           int
	MinMixesPerLayer int

	// Geometry ([geometry]; its hop count is Layers+2) and Parameters
	// ([parameters]) are what this authority votes for.
	UserPayloadLength int  // geometry.user_payload_length
	WithSURB          bool // geometry.with_surb
	Parameters        pki.Parameters

	// AllowedNodes (allowed_nodes), if not empty, lists the identity keys
	// of the only nodes whose descriptors are accepted.
	AllowedNodes []keys.IdentityPublicKey
}

// Defaults.
const (
	DefaultListen = "127.0.0.1:29483"
	DefaultPeriod = 20 * time.Minute
	// MinPeriod is the shortest epoch the timetable supports.
	MinPeriod = 2 * time.Second
)

// DefaultConfig returns a config holding every default. DataDir and Genesis
// have none.
func DefaultConfig() Config {
	return Config{
		Listen:            DefaultListen,
		Period:            DefaultPeriod,
		Layers:            3,
		MinMixesPerLayer:  1,
		UserPayloadLength: 2000,
		WithSURB:          true,
		Parameters: pki.Parameters{
			MuMean:            100 * time.Millisecond,
			MaxDelay:          2 * time.Second,
			LambdaPMean:       200 * time.Millisecond,
			LambdaLMean:       2 * time.Second,
			LambdaDMean:       2 * time.Second,
			LambdaMMean:       2 * time.Second,
			RetrievalInterval: time.Second,
		},
	}
}

// Validate returns every problem in c, each naming its TOML key. It is pure.
func (c *Config) Validate() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		add("data_dir", "is required")
	}
	if c.Listen == "" {
		add("listen", "is required")
	}
	n := len(c.Peers) + 1
	if c.Threshold != 0 && (c.Threshold <= n/2 || c.Threshold > n) {
		add("threshold", "%d is not a majority of the %d authorities (this one and %d peers)", c.Threshold, n, len(c.Peers))
	}
	for i, p := range c.Peers {
		key := func(k string) string { return "peers[" + strconv.Itoa(i) + "]." + k }
		if p.Name == "" {
			add(key("name"), "is required")
		}
		if p.IdentityKey.IsZero() {
			add(key("identity_key"), "is required")
		}
		if p.Address == "" {
			add(key("address"), "is required")
		}
		for j := range i {
			if !p.IdentityKey.IsZero() && c.Peers[j].IdentityKey.Equal(p.IdentityKey) {
				add(key("identity_key"), "repeats peers[%d]", j)
			}
			if p.Name != "" && c.Peers[j].Name == p.Name {
				add(key("name"), "repeats peers[%d]", j)
			}
		}
	}
	if c.Genesis.IsZero() {
		add("epoch.genesis", "is required (a date-time such as 2025-01-01T00:00:00Z)")
	}
	if c.Period < MinPeriod {
		add("epoch.period", "%v is shorter than the minimum %v", c.Period, MinPeriod)
	}
	if c.Layers < 1 || c.Layers > pki.MaxLayers {
		add("layers", "%d, want 1 to %d", c.Layers, pki.MaxLayers)
	}
	if c.MinMixesPerLayer < 1 {
		add("min_mixes_per_layer", "%d, want at least 1", c.MinMixesPerLayer)
	}
	if l := c.UserPayloadLength; l < 1 || l > pki.MaxUserPayloadLength {
		add("geometry.user_payload_length", "%d, want 1 to %d", l, pki.MaxUserPayloadLength)
	}
	p := c.Parameters
	for _, f := range []struct {
		key string
		d   time.Duration
	}{
		{"mu_mean", p.MuMean}, {"max_delay", p.MaxDelay}, {"lambda_p_mean", p.LambdaPMean},
		{"lambda_l_mean", p.LambdaLMean}, {"lambda_d_mean", p.LambdaDMean},
		{"lambda_m_mean", p.LambdaMMean}, {"retrieval_interval", p.RetrievalInterval},
	} {
		if f.d < pki.MinInterval || f.d > pki.MaxInterval {
			add("parameters."+f.key, "%v, want %v to %v", f.d, pki.MinInterval, pki.MaxInterval)
		}
	}
	if p.MaxDelay < p.MuMean {
		add("parameters.max_delay", "%v is below mu_mean %v", p.MaxDelay, p.MuMean)
	}
	for i, k := range c.AllowedNodes {
		if k.IsZero() {
			add("allowed_nodes["+strconv.Itoa(i)+"]", "zero key")
		}
	}
	return errs
}

// threshold returns the configured threshold or the smallest majority.
func (c *Config) threshold() int {
	if c.Threshold != 0 {
		return c.Threshold
	}
	return (len(c.Peers)+1)/2 + 1
}

func (c *Config) identityKeyFile() string {
	if c.IdentityKeyFile != "" {
		return c.IdentityKeyFile
	}
	return filepath.Join(c.DataDir, "identity.key")
}

func (c *Config) geometry() pki.Geometry {
	return pki.Geometry{Hops: c.Layers + 2, UserPayloadLength: c.UserPayloadLength, WithSURB: c.WithSURB}
}

// allowed reports whether a node's identity key may upload.
func (c *Config) allowed(k keys.IdentityPublicKey) bool {
	return len(c.AllowedNodes) == 0 || slices.ContainsFunc(c.AllowedNodes, k.Equal)
}
