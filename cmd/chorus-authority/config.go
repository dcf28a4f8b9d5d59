package main

import (
	"time"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/authority"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
)

// fileConfig is the TOML file: authority.Config with its durations as
// daemon.Duration, plus the operational sections of every daemon.
type fileConfig struct {
	daemon.Ops

	DataDir          string                   `toml:"data_dir"`
	Listen           string                   `toml:"listen"`
	IdentityKeyFile  string                   `toml:"identity_key_file"`
	Threshold        int                      `toml:"threshold"`
	Peers            []dirclient.Authority    `toml:"peers"`
	Epoch            epochSection             `toml:"epoch"`
	Layers           int                      `toml:"layers"`
	MinMixesPerLayer int                      `toml:"min_mixes_per_layer"`
	Geometry         geometrySection          `toml:"geometry"`
	Parameters       parametersSection        `toml:"parameters"`
	AllowedNodes     []keys.IdentityPublicKey `toml:"allowed_nodes"`
}

type epochSection struct {
	Genesis time.Time       `toml:"genesis"`
	Period  daemon.Duration `toml:"period"`
}

type geometrySection struct {
	UserPayloadLength int  `toml:"user_payload_length"`
	WithSURB          bool `toml:"with_surb"`
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

// DefaultMetricsAddress is where /metrics, /healthz and /readyz listen
// unless the config says otherwise.
const DefaultMetricsAddress = "127.0.0.1:29484"

// defaultFileConfig holds every default, taken from authority.DefaultConfig.
func defaultFileConfig() *fileConfig {
	d := authority.DefaultConfig()
	p := d.Parameters
	return &fileConfig{
		Ops:              daemon.DefaultOps(DefaultMetricsAddress),
		Listen:           d.Listen,
		Threshold:        d.Threshold,
		Epoch:            epochSection{Period: daemon.Duration(d.Period)},
		Layers:           d.Layers,
		MinMixesPerLayer: d.MinMixesPerLayer,
		Geometry:         geometrySection{UserPayloadLength: d.UserPayloadLength, WithSURB: d.WithSURB},
		Parameters: parametersSection{
			MuMean:            daemon.Duration(p.MuMean),
			MaxDelay:          daemon.Duration(p.MaxDelay),
			LambdaPMean:       daemon.Duration(p.LambdaPMean),
			LambdaLMean:       daemon.Duration(p.LambdaLMean),
			LambdaDMean:       daemon.Duration(p.LambdaDMean),
			LambdaMMean:       daemon.Duration(p.LambdaMMean),
			RetrievalInterval: daemon.Duration(p.RetrievalInterval),
		},
	}
}

// authority converts the file to the authority's config.
func (f *fileConfig) authority() authority.Config {
	p := f.Parameters
	return authority.Config{
		DataDir:           f.DataDir,
		Listen:            f.Listen,
		IdentityKeyFile:   f.IdentityKeyFile,
		Peers:             f.Peers,
		Threshold:         f.Threshold,
		Genesis:           f.Epoch.Genesis,
		Period:            f.Epoch.Period.Std(),
		Layers:            f.Layers,
		MinMixesPerLayer:  f.MinMixesPerLayer,
		UserPayloadLength: f.Geometry.UserPayloadLength,
		WithSURB:          f.Geometry.WithSURB,
		Parameters: pki.Parameters{
			MuMean:            p.MuMean.Std(),
			MaxDelay:          p.MaxDelay.Std(),
			LambdaPMean:       p.LambdaPMean.Std(),
			LambdaLMean:       p.LambdaLMean.Std(),
			LambdaDMean:       p.LambdaDMean.Std(),
			LambdaMMean:       p.LambdaMMean.Std(),
			RetrievalInterval: p.RetrievalInterval.Std(),
		},
		AllowedNodes: f.AllowedNodes,
	}
}

// Validate lists every problem: the operational sections' and the
// authority's.
func (f *fileConfig) Validate() []error {
	errs := f.Ops.Validate()
	if f.Listen != "" {
		if err := daemon.CheckAddress("listen", f.Listen); err != nil {
			errs = append(errs, err)
		}
	}
	ac := f.authority()
	return append(errs, ac.Validate()...)
}
