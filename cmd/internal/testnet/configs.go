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

// Parameters are the traffic parameters the test network's
// authorities vote for: the Loopix processes of a real network, only
// faster, so a message crosses the network in a fraction of a second and a
// fragmented one in a few seconds. A real network's defaults
// (configs/chorus-authority.toml) are several times slower.
func Parameters() pki.Parameters {
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

// mixFile is configs/chorus-mixnode.toml's shape.
type mixFile struct {
	DataDir         string                `toml:"data_dir"`
	Name            string                `toml:"name"`
	Listen          string                `toml:"listen"`
	Addresses       []string              `toml:"addresses"`
	ShutdownTimeout daemon.Duration       `toml:"shutdown_timeout"`
	DrainTimeout    daemon.Duration       `toml:"drain_timeout"`
	Workers         int                   `toml:"workers"`
	MaxPacketRate   int                   `toml:"max_packet_rate"`
	KeyGrace        daemon.Duration       `toml:"key_grace"`
	Threshold       int                   `toml:"threshold"`
	Epoch           epochSection          `toml:"epoch"`
	Authorities     []dirclient.Authority `toml:"authorities"`
	Logging         daemon.LogConfig      `toml:"logging"`
	Metrics         daemon.MetricsConfig  `toml:"metrics"`
}

// Sizing of the test network's nodes: thirteen processes share a small
// machine, and the traffic is a few hundred packets a second in all.
const (
	nodeWorkers       = 1
	nodeMaxPacketRate = 2000 // sizes the replay filters
	nodeDrainTimeout  = 3 * time.Second
)

// keyGrace is how long into an epoch the previous epoch's Sphinx key still
// opens packets: far more than a packet's time in flight here.
func keyGrace(period time.Duration) daemon.Duration {
	return daemon.Duration(min(period/2, 30*time.Second))
}

// writeNode writes a mix's or a provider's config.
func (n *Network) writeNode(nd Node) error {
	if nd.Role == RoleProvider {
		return n.writeProvider(nd)
	}
	return writeTOML(n.configPath(nd.Name), "chorus-mixnode "+nd.Name+" of the test network in "+n.dir, n.nodeFile(nd))
}

// nodeFile is the part of a config that mixes and providers share.
func (n *Network) nodeFile(nd Node) mixFile {
	listen := n.st.addr(nd.Name + ".listen")
	return mixFile{
		DataDir:         n.dataDir(nd.Name),
		Name:            nd.Name,
		Listen:          listen,
		Addresses:       []string{"tcp://" + listen},
		ShutdownTimeout: shutdownTimeoutFile,
		DrainTimeout:    daemon.Duration(nodeDrainTimeout),
		Workers:         nodeWorkers,
		MaxPacketRate:   nodeMaxPacketRate,
		KeyGrace:        keyGrace(n.st.period()),
		Threshold:       threshold,
		Epoch:           epochSection{Genesis: n.st.Genesis, Period: daemonDuration(n.st.period())},
		Authorities:     n.authorities,
		Logging:         logging(),
		Metrics:         metricsSection(n.metricsAddr(nd.Name)),
	}
}

// providerFile is configs/chorus-provider.toml's shape: a mix node's
// keys and its own sections.
type providerFile struct {
	mixFile
	Registration providerRegistration `toml:"registration"`
	Mailboxes    providerMailboxes    `toml:"mailboxes"`
}

type providerRegistration struct {
	Policy          string `toml:"policy"` // "open" or "closed"
	PerAddressLimit int    `toml:"per_address_limit"`
}

type providerMailboxes struct {
	StoreWorkers int `toml:"store_workers"`
}

// writeProvider writes a provider's config. Registration is open: each
// user's chorusd registers its key with its provider on first contact,
// all from 127.0.0.1. The provider's keys are made ahead (nodeKeys) for
// its users' configs.
func (n *Network) writeProvider(nd Node) error {
	if _, _, err := nodeKeys(n.dataDir(nd.Name)); err != nil {
		return err
	}
	return writeTOML(n.configPath(nd.Name), "chorus-provider "+nd.Name+" of the test network in "+n.dir, providerFile{
		mixFile:      n.nodeFile(nd),
		Registration: providerRegistration{Policy: "open", PerAddressLimit: 20},
		Mailboxes:    providerMailboxes{StoreWorkers: 4},
	})
}

// clientFile is configs/chorusd.toml's shape.
type clientFile struct {
	DataDir         string               `toml:"data_dir"`
	Threshold       int                  `toml:"threshold"`
	ShutdownTimeout daemon.Duration      `toml:"shutdown_timeout"`
	Provider        clientProvider       `toml:"provider"`
	Epoch           epochSection         `toml:"epoch"`
	Geometry        clientGeometry       `toml:"geometry"`
	ARQ             clientARQ            `toml:"arq"`
	Authorities     []clientAuthority    `toml:"authorities"`
	Logging         daemon.LogConfig     `toml:"logging"`
	Metrics         daemon.MetricsConfig `toml:"metrics"`
}

type clientProvider struct {
	// ID is the provider's identity key (base64), which chorusd hashes
	// into its node ID.
	ID      keys.IdentityPublicKey `toml:"id"`
	Address string                 `toml:"address"`
	LinkKey keys.LinkPublicKey     `toml:"link_key"`
}

type clientGeometry struct {
	Hops              int  `toml:"hops"`
	UserPayloadLength int  `toml:"user_payload_length"`
	WithSURB          bool `toml:"with_surb"`
}

type clientARQ struct {
	MaxAttempts int             `toml:"max_attempts"`
	Slack       daemon.Duration `toml:"slack"`
	MaxSlack    daemon.Duration `toml:"max_slack"`
}

type clientAuthority struct {
	Name        string                 `toml:"name"`
	IdentityKey keys.IdentityPublicKey `toml:"identity_key"`
	Address     string                 `toml:"address"`
}

// The clients' retransmission policy: on this fast network a round trip
// takes well under a second, so a fragment is sent again a second after
// its ACK was due, and often (a path through a dead mix is chosen again
// with some luck), before its message fails.
const (
	clientMaxAttempts = 32
	clientSlack       = time.Second
	clientMaxSlack    = 8 * time.Second
)

// userPayloadLength is the Sphinx geometry's user payload, the
// authorities' default, which the clients must agree with.
const userPayloadLength = 2000

// writeClient writes a chorusd config: the user's provider (its keys were
// made ahead, see nodeKeys), the authorities, the schedule and geometry.
// The passphrase comes from CHORUS_PASSPHRASE, set by Start.
func (n *Network) writeClient(nd Node) error {
	id, link, err := nodeKeys(n.dataDir(nd.Provider))
	if err != nil {
		return err
	}
	var auths []clientAuthority
	for _, a := range n.authorities {
		auths = append(auths, clientAuthority{Name: a.Name, IdentityKey: a.IdentityKey, Address: a.Address})
	}
	return writeTOML(n.configPath(nd.Name), "chorusd of "+nd.Name+" (on "+nd.Provider+") in the test network in "+n.dir, clientFile{
		DataDir:         n.dataDir(nd.Name),
		Threshold:       threshold,
		ShutdownTimeout: shutdownTimeoutFile,
		Provider:        clientProvider{ID: id, Address: n.st.addr(nd.Provider + ".listen"), LinkKey: link},
		Epoch:           epochSection{Genesis: n.st.Genesis, Period: daemonDuration(n.st.period())},
		Geometry:        clientGeometry{Hops: numLayers + 2, UserPayloadLength: userPayloadLength, WithSURB: true},
		ARQ:             clientARQ{MaxAttempts: clientMaxAttempts, Slack: daemon.Duration(clientSlack), MaxSlack: daemon.Duration(clientMaxSlack)},
		Authorities:     auths,
		Logging:         logging(),
		Metrics:         metricsSection(n.metricsAddr(nd.Name)),
	})
}

// nodeKeys creates (first start) or loads a mix's or provider's identity
// and link keys where the daemon looks for them, identity.key and
// link.key in its data directory, so the clients' configs can name their
// provider before it ever ran.
func nodeKeys(dataDir string) (keys.IdentityPublicKey, keys.LinkPublicKey, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return keys.IdentityPublicKey{}, keys.LinkPublicKey{}, err
	}
	id, err := keys.LoadOrCreateIdentity(filepath.Join(dataDir, "identity.key"), rand.Reader)
	if err != nil {
		return keys.IdentityPublicKey{}, keys.LinkPublicKey{}, fmt.Errorf("node keys: %w", err)
	}
	defer id.Zero()
	link, err := keys.LoadOrCreateLink(filepath.Join(dataDir, "link.key"), rand.Reader)
	if err != nil {
		return keys.IdentityPublicKey{}, keys.LinkPublicKey{}, fmt.Errorf("node keys: %w", err)
	}
	defer link.Zero()
	return id.Public(), link.Public(), nil
}

var errNotLanded = errors.New("the testnet cannot configure this daemon yet")
