package main

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
	"github.com/chorus-mixnet/chorus/provider"
	"github.com/chorus-mixnet/chorus/provider/users"
)

// fileConfig is the TOML file of chorus-provider: the node's settings
// (as for chorus-mixnode), the epoch schedule, the directory authorities,
// the client registration policy, the mailbox limits, the client limits,
// and the operational sections of every daemon.
type fileConfig struct {
	daemon.Ops

	DataDir   string   `toml:"data_dir"`
	Name      string   `toml:"name"`
	Listen    string   `toml:"listen"`
	Addresses []string `toml:"addresses"`

	Epoch       epochSection          `toml:"epoch"`
	Threshold   int                   `toml:"threshold"`
	Authorities []dirclient.Authority `toml:"authorities"`

	Workers         int             `toml:"workers"`
	MaxPacketRate   int             `toml:"max_packet_rate"`
	DelayMaxPackets int             `toml:"delay_max_packets"`
	ForwardQueue    int             `toml:"forward_queue"`
	LinkCredit      int             `toml:"link_credit"`
	DrainTimeout    daemon.Duration `toml:"drain_timeout"`
	KeyGrace        daemon.Duration `toml:"key_grace"`

	Registration registrationSection `toml:"registration"`
	Mailboxes    mailboxesSection    `toml:"mailboxes"`
	Clients      clientsSection      `toml:"clients"`
}

type epochSection struct {
	Genesis time.Time       `toml:"genesis"`
	Period  daemon.Duration `toml:"period"`
}

type registrationSection struct {
	Policy          users.Registration `toml:"policy"`
	PerAddressLimit int                `toml:"per_address_limit"`
	Window          daemon.Duration    `toml:"window"`
	MaxUsers        int                `toml:"max_users"`
}

type mailboxesSection struct {
	MaxAge         daemon.Duration `toml:"max_age"`
	MaxMessages    int             `toml:"max_messages"`
	MaxBytes       int64           `toml:"max_bytes"`
	ExpireInterval daemon.Duration `toml:"expire_interval"`
	StoreWorkers   int             `toml:"store_workers"`
	StoreQueue     int             `toml:"store_queue"`
}

type clientsSection struct {
	MaxClients   int             `toml:"max_clients"`
	SendBurst    daemon.Duration `toml:"send_burst"`
	ControlBurst int             `toml:"control_burst"`
}

// Defaults for the keys of the file (see configs/chorus-provider.toml).
const (
	DefaultMetricsAddress  = "127.0.0.1:29488"
	DefaultListen          = "0.0.0.0:29487"
	DefaultPeriod          = 20 * time.Minute
	DefaultPerAddressLimit = 5
	DefaultWindow          = time.Hour
)

// defaultFileConfig holds every default, in one place.
func defaultFileConfig() *fileConfig {
	return &fileConfig{
		Ops:             daemon.DefaultOps(DefaultMetricsAddress),
		Listen:          DefaultListen,
		Epoch:           epochSection{Period: daemon.Duration(DefaultPeriod)},
		MaxPacketRate:   mix.DefaultMaxPacketRate,
		DelayMaxPackets: mix.DefaultDelayMaxPackets,
		ForwardQueue:    mix.DefaultForwardQueue,
		LinkCredit:      mix.DefaultLinkCredit,
		DrainTimeout:    daemon.Duration(mix.DefaultDrainTimeout),
		KeyGrace:        daemon.Duration(mix.DefaultKeyGrace),
		Registration: registrationSection{
			Policy:          users.RegistrationClosed,
			PerAddressLimit: DefaultPerAddressLimit,
			Window:          daemon.Duration(DefaultWindow),
		},
		Mailboxes: mailboxesSection{
			MaxAge:         daemon.Duration(provider.DefaultMaxAge),
			MaxMessages:    provider.DefaultMaxMessages,
			MaxBytes:       provider.DefaultMaxBytes,
			ExpireInterval: daemon.Duration(provider.DefaultExpireInterval),
			StoreWorkers:   provider.DefaultStoreWorkers,
			StoreQueue:     provider.DefaultStoreQueue,
		},
		Clients: clientsSection{
			MaxClients:   provider.DefaultMaxClients,
			SendBurst:    daemon.Duration(provider.DefaultSendBurst),
			ControlBurst: provider.DefaultControlBurst,
		},
	}
}

// Files in the data directory.
func (f *fileConfig) identityKeyFile() string { return filepath.Join(f.DataDir, "identity.key") }
func (f *fileConfig) linkKeyFile() string     { return filepath.Join(f.DataDir, "link.key") }
func (f *fileConfig) documentCache() string   { return filepath.Join(f.DataDir, "documents") }
func (f *fileConfig) usersFile() string       { return filepath.Join(f.DataDir, provider.UsersFile) }

// Validate lists every problem in the file. It is pure.
func (f *fileConfig) Validate() []error {
	errs := f.Ops.Validate()
	add := func(key, format string, args ...any) { errs = append(errs, daemon.Problemf(key, format, args...)) }
	if f.DataDir == "" {
		add("data_dir", "is required")
	}
	if err := validName(f.Name); err != "" {
		add("name", "%s", err)
	}
	if err := daemon.CheckAddress("listen", f.Listen); err != nil {
		errs = append(errs, err)
	}
	switch {
	case len(f.Addresses) == 0:
		add("addresses", "is required: where clients and mixes reach this provider, like \"tcp://203.0.113.7:29487\"")
	case len(f.Addresses) > pki.MaxAddresses:
		add("addresses", "has %d entries, at most %d", len(f.Addresses), pki.MaxAddresses)
	}
	for i, a := range f.Addresses {
		if msg := checkNodeAddress(a); msg != "" {
			add(fmt.Sprintf("addresses[%d]", i), "%s", msg)
		}
	}
	if f.Epoch.Genesis.IsZero() {
		add("epoch.genesis", "is required (the network's, like 2026-01-01T00:00:00Z)")
	}
	if f.Epoch.Period <= 0 {
		add("epoch.period", "must be positive")
	}
	if len(f.Authorities) == 0 {
		add("authorities", "is required: at least one [[authorities]] with name, identity_key and address")
	}
	for i, a := range f.Authorities {
		key := fmt.Sprintf("authorities[%d]", i)
		if a.IdentityKey.IsZero() {
			add(key+".identity_key", "is required")
		}
		if a.Address == "" {
			add(key+".address", "is required")
		}
		for j := range i {
			if !a.IdentityKey.IsZero() && a.IdentityKey.Equal(f.Authorities[j].IdentityKey) {
				add(key+".identity_key", "repeats authorities[%d]", j)
			}
		}
	}
	if n := len(f.Authorities); f.Threshold != 0 && (f.Threshold <= n/2 || f.Threshold > n) {
		add("threshold", "%d is not a majority of the %d authorities (0 means the smallest majority)", f.Threshold, n)
	}
	for _, v := range []struct {
		key string
		n   int64
	}{
		{"workers", int64(f.Workers)}, {"max_packet_rate", int64(f.MaxPacketRate)}, {"delay_max_packets", int64(f.DelayMaxPackets)},
		{"forward_queue", int64(f.ForwardQueue)}, {"link_credit", int64(f.LinkCredit)},
		{"registration.max_users", int64(f.Registration.MaxUsers)},
		{"mailboxes.max_age", int64(f.Mailboxes.MaxAge)}, {"mailboxes.max_messages", int64(f.Mailboxes.MaxMessages)},
		{"mailboxes.max_bytes", f.Mailboxes.MaxBytes},
	} {
		if v.n < 0 {
			add(v.key, "must not be negative")
		}
	}
	for _, v := range []struct {
		key string
		n   int64
	}{
		{"mailboxes.expire_interval", int64(f.Mailboxes.ExpireInterval)}, {"mailboxes.store_workers", int64(f.Mailboxes.StoreWorkers)},
		{"mailboxes.store_queue", int64(f.Mailboxes.StoreQueue)}, {"clients.max_clients", int64(f.Clients.MaxClients)},
		{"clients.send_burst", int64(f.Clients.SendBurst)}, {"clients.control_burst", int64(f.Clients.ControlBurst)},
	} {
		if v.n <= 0 {
			add(v.key, "must be positive")
		}
	}
	if f.Registration.Policy == users.RegistrationOpen {
		if f.Registration.PerAddressLimit <= 0 {
			add("registration.per_address_limit", "must be positive under open registration")
		}
		if f.Registration.Window <= 0 {
			add("registration.window", "must be positive under open registration")
		}
	}
	if f.DrainTimeout <= 0 {
		add("drain_timeout", "must be positive")
	} else if f.ShutdownTimeout > 0 && f.DrainTimeout >= f.ShutdownTimeout {
		add("drain_timeout", "%v must be shorter than shutdown_timeout (%v)", f.DrainTimeout, f.ShutdownTimeout)
	}
	if f.KeyGrace < 0 || (f.Epoch.Period > 0 && f.KeyGrace > f.Epoch.Period) {
		add("key_grace", "%v must be from 0 to the epoch period", f.KeyGrace)
	}
	return errs
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
// authorities apply to descriptors, by validating a throwaway descriptor.
func checkNodeAddress(a string) string {
	d := probe
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

// probe is a valid provider descriptor made from fixed throwaway keys.
var probe = func() pki.Descriptor {
	seed := func(b byte) []byte { s := make([]byte, 32); s[1] = b; return s }
	id, err1 := keys.NewIdentityPrivateKey(seed(1))
	lk, err2 := keys.NewLinkPrivateKey(seed(2))
	if err := errors.Join(err1, err2); err != nil {
		panic(err)
	}
	d := pki.Descriptor{
		Name: "probe", ID: id.Public().NodeID(), IdentityKey: id.Public(), LinkKey: lk.Public(),
		Role: pki.RoleProvider, SphinxKeys: map[uint64]keys.SphinxPublicKey{},
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

// providerConfig converts the file to the provider's config; the keys
// and schedule come from main.
func (f *fileConfig) providerConfig() provider.Config {
	m := f.Mailboxes
	return provider.Config{
		Pipeline: mix.Config{
			Name:            f.Name,
			Addresses:       f.Addresses,
			Listen:          f.Listen,
			DataDir:         f.DataDir,
			Workers:         f.Workers,
			LinkCredit:      f.LinkCredit,
			MaxPacketRate:   f.MaxPacketRate,
			DelayMaxPackets: f.DelayMaxPackets,
			ForwardQueue:    f.ForwardQueue,
			DrainTimeout:    f.DrainTimeout.Std(),
			KeyGrace:        f.KeyGrace.Std(),
		},
		Registration:       f.Registration.Policy,
		PerAddressLimit:    f.Registration.PerAddressLimit,
		RegistrationWindow: f.Registration.Window.Std(),
		MaxUsers:           f.Registration.MaxUsers,
		// In the file 0 means no limit; in provider.Config, negative.
		MaxAge:         noLimit(m.MaxAge.Std()),
		MaxMessages:    noLimit(m.MaxMessages),
		MaxBytes:       noLimit(m.MaxBytes),
		ExpireInterval: m.ExpireInterval.Std(),
		StoreWorkers:   m.StoreWorkers,
		StoreQueue:     m.StoreQueue,
		MaxClients:     f.Clients.MaxClients,
		SendBurst:      f.Clients.SendBurst.Std(),
		ControlBurst:   f.Clients.ControlBurst,
	}
}

func noLimit[T int | int64 | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
