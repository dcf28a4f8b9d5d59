package nodeconfig

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/mix"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
)

// Node is the node's part of the file: who it is, where it listens and is
// reached, the network's schedule and authorities, and the pipeline's
// limits. Embed it, untagged, in the file type.
type Node struct {
	DataDir   string   `toml:"data_dir"`
	Name      string   `toml:"name"`
	Listen    string   `toml:"listen"`
	Addresses []string `toml:"addresses"`

	Epoch       Epoch                 `toml:"epoch"`
	Threshold   int                   `toml:"threshold"`
	Authorities []dirclient.Authority `toml:"authorities"`

	Workers         int             `toml:"workers"`
	MaxPacketRate   int             `toml:"max_packet_rate"`
	DelayMaxPackets int             `toml:"delay_max_packets"`
	ForwardQueue    int             `toml:"forward_queue"`
	LinkCredit      int             `toml:"link_credit"`
	DrainTimeout    daemon.Duration `toml:"drain_timeout"`
	KeyGrace        daemon.Duration `toml:"key_grace"`
}

// Epoch is the [epoch] section: the network's schedule, the same on every
// node and authority.
type Epoch struct {
	Genesis time.Time       `toml:"genesis"`
	Period  daemon.Duration `toml:"period"`
}

// DefaultPeriod is the epoch period when the file gives none.
const DefaultPeriod = 20 * time.Minute

// Default returns every default of the node's part of the file, for a
// node that listens on listen unless told otherwise.
func Default(listen string) Node {
	return Node{
		Listen:          listen,
		Epoch:           Epoch{Period: daemon.Duration(DefaultPeriod)},
		MaxPacketRate:   mix.DefaultMaxPacketRate,
		DelayMaxPackets: mix.DefaultDelayMaxPackets,
		ForwardQueue:    mix.DefaultForwardQueue,
		LinkCredit:      mix.DefaultLinkCredit,
		DrainTimeout:    daemon.Duration(mix.DefaultDrainTimeout),
		KeyGrace:        daemon.Duration(mix.DefaultKeyGrace),
	}
}

// Files in the data directory.

// IdentityKeyFile is the node's Ed25519 identity key.
func (n *Node) IdentityKeyFile() string { return filepath.Join(n.DataDir, "identity.key") }

// LinkKeyFile is the node's X25519 link key.
func (n *Node) LinkKeyFile() string { return filepath.Join(n.DataDir, "link.key") }

// DocumentCache is the directory client's cache of verified documents.
func (n *Node) DocumentCache() string { return filepath.Join(n.DataDir, "documents") }

// addressesHint says, for each role, what the addresses are, with an
// example at the role's default port.
var addressesHint = map[pki.Role]string{
	pki.RoleMix:      `where other nodes reach this one, like "tcp://203.0.113.7:29485"`,
	pki.RoleProvider: `where clients and mixes reach this provider, like "tcp://203.0.113.7:29487"`,
}

// Validate lists every problem in the node's part of the file, each naming
// its key. role is the node's: its addresses are checked as the
// authorities check that role's descriptors. shutdownTimeout is the
// daemon's shutdown_timeout, which drain_timeout must fit in. It is pure;
// it panics if role is neither pki.RoleMix nor pki.RoleProvider.
func (n *Node) Validate(role pki.Role, shutdownTimeout daemon.Duration) []error {
	checkRole(role)
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, daemon.Problemf(key, format, args...)) }
	if n.DataDir == "" {
		add("data_dir", "is required")
	}
	if err := validName(n.Name); err != "" {
		add("name", "%s", err)
	}
	if err := daemon.CheckAddress("listen", n.Listen); err != nil {
		errs = append(errs, err)
	}
	switch {
	case len(n.Addresses) == 0:
		add("addresses", "is required: %s", addressesHint[role])
	case len(n.Addresses) > pki.MaxAddresses:
		add("addresses", "has %d entries, at most %d", len(n.Addresses), pki.MaxAddresses)
	}
	for i, a := range n.Addresses {
		if msg := checkNodeAddress(role, a); msg != "" {
			add(fmt.Sprintf("addresses[%d]", i), "%s", msg)
		}
	}
	if n.Epoch.Genesis.IsZero() {
		add("epoch.genesis", "is required (the network's, like 2026-01-01T00:00:00Z)")
	}
	if n.Epoch.Period <= 0 {
		add("epoch.period", "must be positive")
	}
	if len(n.Authorities) == 0 {
		add("authorities", "is required: at least one [[authorities]] with name, identity_key and address")
	}
	for i, a := range n.Authorities {
		key := fmt.Sprintf("authorities[%d]", i)
		if a.IdentityKey.IsZero() {
			add(key+".identity_key", "is required")
		}
		if a.Address == "" {
			add(key+".address", "is required")
		}
		for j := range i {
			if !a.IdentityKey.IsZero() && a.IdentityKey.Equal(n.Authorities[j].IdentityKey) {
				add(key+".identity_key", "repeats authorities[%d]", j)
			}
		}
	}
	if k := len(n.Authorities); n.Threshold != 0 && (n.Threshold <= k/2 || n.Threshold > k) {
		add("threshold", "%d is not a majority of the %d authorities (0 means the smallest majority)", n.Threshold, k)
	}
	for _, v := range []struct {
		key string
		n   int
	}{{"workers", n.Workers}, {"max_packet_rate", n.MaxPacketRate}, {"delay_max_packets", n.DelayMaxPackets},
		{"forward_queue", n.ForwardQueue}, {"link_credit", n.LinkCredit}} {
		if v.n < 0 {
			add(v.key, "must not be negative")
		}
	}
	if n.DrainTimeout <= 0 {
		add("drain_timeout", "must be positive")
	} else if shutdownTimeout > 0 && n.DrainTimeout >= shutdownTimeout {
		add("drain_timeout", "%v must be shorter than shutdown_timeout (%v)", n.DrainTimeout, shutdownTimeout)
	}
	if n.KeyGrace < 0 || (n.Epoch.Period > 0 && n.KeyGrace > n.Epoch.Period) {
		add("key_grace", "%v must be from 0 to the epoch period", n.KeyGrace)
	}
	return errs
}

func checkRole(role pki.Role) {
	if role != pki.RoleMix && role != pki.RoleProvider {
		panic(fmt.Sprintf("nodeconfig: %v is not a node role", role))
	}
}

// validName checks a descriptor name: 1 to 64 bytes of [A-Za-z0-9._-].
func validName(name string) string {
	if name == "" {
		return "is required"
	}
	if len(name) > pki.MaxNameLength {
		return fmt.Sprintf("is %d bytes, at most %d", len(name), pki.MaxNameLength)
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("%q: only letters, digits, '.', '_' and '-'", name)
		}
	}
	return ""
}

// checkNodeAddress checks an address to publish with the rules the
// authorities apply to a descriptor of role (tcp://host:port, canonical IP
// address or lower-case host name), by validating a throwaway descriptor.
func checkNodeAddress(role pki.Role, a string) string {
	d := probe
	d.Role = role
	d.Addresses = []string{a}
	if err := d.Validate(); err != nil {
		_, msg, _ := strings.Cut(err.Error(), "address 0: ")
		if msg == "" {
			msg = err.Error()
		}
		return msg
	}
	return ""
}

// probe is a valid descriptor made from fixed throwaway keys.
var probe = func() pki.Descriptor {
	seed := func(b byte) []byte { s := make([]byte, 32); s[1] = b; return s }
	id, err1 := keys.NewIdentityPrivateKey(seed(1))
	lk, err2 := keys.NewLinkPrivateKey(seed(2))
	if err := errors.Join(err1, err2); err != nil {
		panic(err)
	}
	d := pki.Descriptor{
		Name: "probe", ID: id.Public().NodeID(), IdentityKey: id.Public(), LinkKey: lk.Public(),
		Role: pki.RoleMix, SphinxKeys: map[uint64]keys.SphinxPublicKey{},
	}
	for e := range uint64(pki.SphinxKeyEpochs) {
		k, err := keys.NewSphinxPrivateKey(seed(byte(3 + e)))
		if err != nil {
			panic(err)
		}
		d.SphinxKeys[e] = k.Public()
	}
	return d
}()

// MixConfig is the pipeline's config for a node of role, without the keys
// and the schedule (Open adds them).
func (n *Node) MixConfig(role pki.Role) mix.Config {
	checkRole(role)
	return mix.Config{
		Name:            n.Name,
		Role:            role,
		Addresses:       n.Addresses,
		Listen:          n.Listen,
		DataDir:         n.DataDir,
		Workers:         n.Workers,
		LinkCredit:      n.LinkCredit,
		MaxPacketRate:   n.MaxPacketRate,
		DelayMaxPackets: n.DelayMaxPackets,
		ForwardQueue:    n.ForwardQueue,
		DrainTimeout:    n.DrainTimeout.Std(),
		KeyGrace:        n.KeyGrace.Std(),
	}
}

// DirConfig is the directory client's config: the authorities, the
// threshold, and the document cache in the data directory.
func (n *Node) DirConfig() dirclient.Config {
	return dirclient.Config{
		Authorities: n.Authorities,
		Threshold:   n.Threshold,
		CacheDir:    n.DocumentCache(),
	}
}
