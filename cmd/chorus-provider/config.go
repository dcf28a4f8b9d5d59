package main

import (
	"path/filepath"
	"time"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/cmd/internal/nodeconfig"
	"github.com/chorus-mixnet/chorus/mix"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/provider"
	"github.com/chorus-mixnet/chorus/provider/users"
)

// fileConfig is the TOML file of chorus-provider: the node's settings,
// the epoch schedule and the directory authorities (nodeconfig.Node, as
// for chorus-mixnode), the client registration policy, the mailbox
// limits, the client limits, and the operational sections of every
// daemon.
type fileConfig struct {
	daemon.Ops
	nodeconfig.Node

	Registration registrationSection `toml:"registration"`
	Mailboxes    mailboxesSection    `toml:"mailboxes"`
	Clients      clientsSection      `toml:"clients"`
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
	DefaultPerAddressLimit = 5
	DefaultWindow          = time.Hour
)

// defaultFileConfig holds every default, in one place.
func defaultFileConfig() *fileConfig {
	return &fileConfig{
		Ops:  daemon.DefaultOps(DefaultMetricsAddress),
		Node: nodeconfig.Default(DefaultListen),
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

// usersFile is the client registry in the data directory.
func (f *fileConfig) usersFile() string { return filepath.Join(f.DataDir, provider.UsersFile) }

// Validate lists every problem in the file. It is pure.
func (f *fileConfig) Validate() []error {
	errs := append(f.Ops.Validate(), f.Node.Validate(pki.RoleProvider, f.ShutdownTimeout)...)
	add := func(key, format string, args ...any) { errs = append(errs, daemon.Problemf(key, format, args...)) }
	for _, v := range []struct {
		key string
		n   int64
	}{
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
	return errs
}

// providerConfig converts the file to the provider's config around
// pipeline, the node's part (nodeconfig.Parts.Config).
func (f *fileConfig) providerConfig(pipeline mix.Config) provider.Config {
	m := f.Mailboxes
	return provider.Config{
		Pipeline:           pipeline,
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
