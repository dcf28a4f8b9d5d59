package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chorus-mixnet/chorus/client"
	"github.com/chorus-mixnet/chorus/client/api"
	"github.com/chorus-mixnet/chorus/client/arq"
	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// fileConfig is chorusd's TOML file (configs/chorusd.toml is the
// annotated example).
type fileConfig struct {
	daemon.Ops

	// DataDir holds the encrypted state (state/) and the API socket.
	DataDir string `toml:"data_dir"`
	// APISocket is the local API's Unix socket; empty means
	// <data_dir>/chorusd.sock.
	APISocket string `toml:"api_socket"`
	// PassphraseFile holds the state's passphrase; empty means the
	// CHORUS_PASSPHRASE environment variable, else a terminal prompt.
	PassphraseFile string `toml:"passphrase_file"`
	// Threshold is how many of the authorities must sign a document; 0
	// means a majority.
	Threshold   int                `toml:"threshold"`
	Provider    providerSection    `toml:"provider"`
	Authorities []authoritySection `toml:"authorities"`
	Epoch       epochSection       `toml:"epoch"`
	Geometry    geometrySection    `toml:"geometry"`
	ARQ         arqSection         `toml:"arq"`
}

type providerSection struct {
	// ID names the provider: its node ID in hex, or its identity key in
	// base64.
	ID      providerID         `toml:"id"`
	Address string             `toml:"address"`
	LinkKey keys.LinkPublicKey `toml:"link_key"`
}

type authoritySection struct {
	Name        string                 `toml:"name"`
	IdentityKey keys.IdentityPublicKey `toml:"identity_key"`
	// Address is where the authority publishes; chorusd never contacts
	// authorities (documents come through the provider), so it is
	// informational.
	Address string `toml:"address"`
}

type epochSection struct {
	Genesis time.Time       `toml:"genesis"`
	Period  daemon.Duration `toml:"period"`
}

type geometrySection struct {
	Hops              int  `toml:"hops"`
	UserPayloadLength int  `toml:"user_payload_length"`
	WithSURB          bool `toml:"with_surb"`
}

type arqSection struct {
	MaxAttempts int             `toml:"max_attempts"`
	Slack       daemon.Duration `toml:"slack"`
	MaxSlack    daemon.Duration `toml:"max_slack"`
}

// providerID is a node ID, written as 64 hex digits or as the provider's
// base64 identity key (whose BLAKE2b-256 hash is the node ID).
type providerID struct {
	id  pki.NodeID
	set bool
}

func (p *providerID) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if len(s) == 2*len(p.id) {
		if _, err := hex.Decode(p.id[:], []byte(s)); err == nil {
			p.set = true
			return nil
		}
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("must be the provider's node ID (64 hex digits) or its identity key (base64)")
	}
	k, err := keys.NewIdentityPublicKey(raw)
	if err != nil {
		return fmt.Errorf("must be the provider's node ID (64 hex digits) or its identity key (base64)")
	}
	p.id, p.set = k.NodeID(), true
	return nil
}

func (p providerID) MarshalText() ([]byte, error) {
	return []byte(hex.EncodeToString(p.id[:])), nil
}

// DefaultDataDir is the data directory unless the config names one:
// ~/.chorus, where chorus looks for the socket by default.
const DefaultDataDir = "~/.chorus"

// PassphraseEnv is the environment variable chorusd reads the passphrase
// from when the config names no passphrase file.
const PassphraseEnv = "CHORUS_PASSPHRASE"

// defaultFileConfig holds every default. The metrics listener is off.
func defaultFileConfig() *fileConfig {
	g := sphinx.DefaultGeometry()
	return &fileConfig{
		Ops:      daemon.DefaultOps(""),
		DataDir:  DefaultDataDir,
		Epoch:    epochSection{Period: daemon.Duration(20 * time.Minute)},
		Geometry: geometrySection{Hops: g.NrHops(), UserPayloadLength: g.UserPayloadLength(), WithSURB: g.WithSURB()},
		ARQ: arqSection{
			MaxAttempts: client.DefaultARQ.MaxAttempts,
			Slack:       daemon.Duration(client.DefaultARQ.Slack),
			MaxSlack:    daemon.Duration(client.DefaultARQ.MaxSlack),
		},
	}
}

// expandHome turns a leading "~/" into the user's home directory.
func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand %q: %w", p, err)
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}

// dataDir is the data directory with "~" expanded.
func (f *fileConfig) dataDir() (string, error) { return expandHome(f.DataDir) }

// socketPath is the API socket's path.
func (f *fileConfig) socketPath() (string, error) {
	if f.APISocket != "" {
		return expandHome(f.APISocket)
	}
	d, err := f.dataDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, api.SocketName), nil
}

// client converts the file to the client core's config.
func (f *fileConfig) client() (client.Config, error) {
	sched, err := epoch.New(f.Epoch.Genesis, f.Epoch.Period.Std(), nil)
	if err != nil {
		return client.Config{}, err
	}
	geo, err := sphinx.NewGeometry(f.Geometry.Hops, f.Geometry.UserPayloadLength, f.Geometry.WithSURB)
	if err != nil {
		return client.Config{}, err
	}
	auths := make([]keys.IdentityPublicKey, len(f.Authorities))
	for i, a := range f.Authorities {
		auths[i] = a.IdentityKey
	}
	return client.Config{
		ProviderID:      f.Provider.ID.id,
		ProviderAddress: f.Provider.Address,
		ProviderLinkKey: f.Provider.LinkKey,
		Authorities:     auths,
		Threshold:       f.Threshold,
		Schedule:        sched,
		Geometry:        geo,
		ARQ:             f.arq(),
	}, nil
}

// Validate lists every problem.
func (f *fileConfig) Validate() []error {
	errs := f.Ops.Validate()
	p := daemon.Problemf
	if f.DataDir == "" {
		errs = append(errs, p("data_dir", "is required"))
	}
	if !f.Provider.ID.set {
		errs = append(errs, p("provider.id", "is required: the provider's node ID (hex) or identity key (base64)"))
	}
	if err := daemon.CheckAddress("provider.address", f.Provider.Address); err != nil {
		errs = append(errs, err)
	}
	if f.Provider.LinkKey.IsZero() {
		errs = append(errs, p("provider.link_key", "is required: the provider's link key (base64)"))
	}
	if len(f.Authorities) == 0 {
		errs = append(errs, p("authorities", "at least one authority is required, to verify documents"))
	}
	seen := map[[keys.PublicKeySize]byte]bool{}
	for i, a := range f.Authorities {
		if a.IdentityKey.IsZero() {
			errs = append(errs, p(fmt.Sprintf("authorities[%d].identity_key", i), "is required (base64)"))
		} else if seen[a.IdentityKey.Array()] {
			errs = append(errs, p(fmt.Sprintf("authorities[%d].identity_key", i), "is listed twice"))
		}
		seen[a.IdentityKey.Array()] = true
	}
	if n := len(f.Authorities); f.Threshold != 0 && (f.Threshold <= n/2 || f.Threshold > n) {
		errs = append(errs, p("threshold", "must be a majority of the %d authorities (%d to %d), or 0 for the smallest majority", n, n/2+1, n))
	}
	if f.Epoch.Genesis.IsZero() {
		errs = append(errs, p("epoch.genesis", "is required: the network's genesis instant (as the authorities' configs)"))
	}
	if per := f.Epoch.Period.Std(); per < epoch.MinPeriod || per > epoch.MaxPeriod {
		errs = append(errs, p("epoch.period", "must be %v to %v", epoch.MinPeriod, epoch.MaxPeriod))
	}
	if _, err := sphinx.NewGeometry(f.Geometry.Hops, f.Geometry.UserPayloadLength, f.Geometry.WithSURB); err != nil {
		errs = append(errs, p("geometry", "%v", err))
	} else if !f.Geometry.WithSURB {
		errs = append(errs, p("geometry.with_surb", "must be true: every fragment carries a SURB for its ACK"))
	}
	if a := f.ARQ; a.MaxAttempts < 1 || a.MaxAttempts > client.MaxAttemptsLimit {
		errs = append(errs, p("arq.max_attempts", "must be 1 to %d", client.MaxAttemptsLimit))
	}
	if f.ARQ.Slack <= 0 {
		errs = append(errs, p("arq.slack", "must be positive"))
	}
	if f.ARQ.MaxSlack < f.ARQ.Slack {
		errs = append(errs, p("arq.max_slack", "must be at least arq.slack"))
	}
	return errs
}

// arq is the retransmission policy.
func (f *fileConfig) arq() arq.Config {
	return arq.Config{MaxAttempts: f.ARQ.MaxAttempts, Slack: f.ARQ.Slack.Std(), MaxSlack: f.ARQ.MaxSlack.Std()}
}
