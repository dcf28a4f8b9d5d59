package provider

import (
	"errors"
	"fmt"
	"time"

	"github.com/chorus-mixnet/chorus/mix"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/provider/users"
)

// Files in Config.Pipeline.DataDir besides the pipeline's own (sphinx/,
// replay/).
const (
	// UsersFile is the client registry (provider/users). The operator's
	// `chorus-provider users` subcommand opens it while the provider is
	// stopped.
	UsersFile = "users.db"
	// SpoolFile holds the mailboxes (provider/spool).
	SpoolFile = "spool.db"
)

// Defaults applied for zero Config fields.
const (
	DefaultMaxAge         = 7 * 24 * time.Hour
	DefaultMaxMessages    = 10_000
	DefaultMaxBytes       = 64 << 20
	DefaultExpireInterval = time.Minute
	DefaultMaxClients     = 50_000
	DefaultSendBurst      = 5 * time.Second
	DefaultControlBurst   = 8
	DefaultStoreWorkers   = 64
	DefaultStoreQueue     = 4096
)

// Config configures a Provider.
type Config struct {
	// Pipeline configures the mix pipeline the provider runs as first and
	// last hop (see package mix): name, published addresses, data
	// directory, keys, epoch schedule, queue bounds. Listen is where the
	// provider accepts links from clients and from the mixes of the last
	// layer. New sets Role to pki.RoleProvider and Deliver to the
	// provider's mailbox hook; they must be left zero.
	Pipeline mix.Config

	// Registration is the policy for client keys the registry does not
	// know (provider/users); PerAddressLimit registrations per
	// RegistrationWindow from one source address (an IPv4 address or an
	// IPv6 /64) under open registration, and at most MaxUsers keys
	// registered that way (0: no cap).
	Registration       users.Registration
	PerAddressLimit    int
	RegistrationWindow time.Duration
	MaxUsers           int

	// Retention bounds each mailbox: messages older than MaxAge are
	// evicted (by ExpireInterval's sweep, and by a store into their
	// mailbox); a packet that would take its mailbox over MaxMessages or
	// MaxBytes (payload bytes) is refused, never stored, never
	// acknowledged, so count and size never evict an acknowledged
	// message. Zero means the default; negative means no limit of that
	// kind (MaxAge: keep until acknowledged).
	MaxAge         time.Duration
	MaxMessages    int
	MaxBytes       int64
	ExpireInterval time.Duration

	// MaxClients bounds the client links open at once; a client beyond it
	// is refused after the handshake. Zero means DefaultMaxClients.
	MaxClients int
	// SendBurst sizes each client's token bucket for SendPacket: it holds
	// this long's worth of the rate the document allows a client
	// (1/LambdaPMean + 1/LambdaLMean + 1/LambdaDMean), at least 8 packets.
	// Zero means DefaultSendBurst.
	SendBurst time.Duration
	// ControlBurst is the burst of each client's bucket for the control
	// commands (RetrieveMessage, MessageAck, GetConsensus), which refills
	// at one per the document's RetrievalInterval. Zero means
	// DefaultControlBurst.
	ControlBurst int
	// StoreWorkers store delivered packets in the spool and send their
	// acknowledgements; concurrent stores share fsyncs (the spool's group
	// commit). StoreQueue bounds the deliveries waiting for them; a
	// delivery beyond it is refused (no acknowledgement). Zero means the
	// defaults.
	StoreWorkers int
	StoreQueue   int
}

// ErrConfig wraps every problem New finds in a Config.
var ErrConfig = errors.New("provider: invalid config")

// check validates c and returns it with defaults applied. The pipeline's
// own fields are checked by mix.NewPipeline.
func (c Config) check() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if c.Pipeline.Role != 0 && c.Pipeline.Role != pki.RoleProvider {
		bad("pipeline role %v", c.Pipeline.Role)
	}
	if c.Pipeline.Deliver != nil {
		bad("the pipeline's Deliver is the provider's")
	}
	if c.Pipeline.DataDir == "" {
		bad("no data directory")
	}
	if c.Registration != users.RegistrationClosed && c.Registration != users.RegistrationOpen {
		bad("registration policy %v", c.Registration)
	}
	if c.Registration == users.RegistrationOpen && (c.PerAddressLimit <= 0 || c.RegistrationWindow <= 0) {
		bad("open registration needs a positive per-address limit and window")
	}
	for _, v := range []struct {
		name string
		v    int64
	}{
		{"per-address limit", int64(c.PerAddressLimit)}, {"registration window", int64(c.RegistrationWindow)},
		{"max users", int64(c.MaxUsers)}, {"expire interval", int64(c.ExpireInterval)},
		{"max clients", int64(c.MaxClients)}, {"send burst", int64(c.SendBurst)}, {"control burst", int64(c.ControlBurst)},
		{"store workers", int64(c.StoreWorkers)}, {"store queue", int64(c.StoreQueue)},
	} {
		if v.v < 0 {
			bad("negative %s", v.name)
		}
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	c.Pipeline.Role = pki.RoleProvider
	c.MaxAge = limit(c.MaxAge, DefaultMaxAge)
	c.MaxMessages = limit(c.MaxMessages, DefaultMaxMessages)
	c.MaxBytes = limit(c.MaxBytes, DefaultMaxBytes)
	c.ExpireInterval = orDefault(c.ExpireInterval, DefaultExpireInterval)
	c.MaxClients = orDefault(c.MaxClients, DefaultMaxClients)
	c.SendBurst = orDefault(c.SendBurst, DefaultSendBurst)
	c.ControlBurst = orDefault(c.ControlBurst, DefaultControlBurst)
	c.StoreWorkers = orDefault(c.StoreWorkers, DefaultStoreWorkers)
	c.StoreQueue = orDefault(c.StoreQueue, DefaultStoreQueue)
	return c, nil
}

// limit maps a retention limit to the spool's form: zero is the default,
// negative is none (the spool's zero).
func limit[T int | int64 | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}
