package mix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-mixnet/chorus/mix/hop"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// Defaults applied for zero Config fields.
const (
	DefaultMaxPacketRate   = 10_000
	DefaultDelayMaxPackets = 200_000
	DefaultForwardQueue    = 4096
	DefaultLinkCredit      = 32
	DefaultDrainTimeout    = 10 * time.Second
	DefaultReplayFPRate    = 1e-6
	DefaultKeyGrace        = time.Minute
)

// Config configures a Pipeline, and a Node, which adds Listen.
type Config struct {
	// Name is the node's name in its descriptor ([A-Za-z0-9._-], at most
	// 64 bytes).
	Name string
	// Role is pki.RoleMix for a mix node, pki.RoleProvider for a
	// provider.
	Role pki.Role
	// Addresses are published in the descriptor: where other nodes dial
	// this one, "tcp://host:port".
	Addresses []string
	// Listen is the address a Node listens on for links (host:port). Not
	// used by a bare Pipeline: its owner accepts links.
	Listen string
	// DataDir holds the Sphinx keys (sphinx/) and the replay filters
	// (replay/); mode 0700. Required.
	DataDir string
	// Identity signs the descriptor; LinkKey is the static link key.
	// Both required; the caller keeps ownership.
	Identity *keys.IdentityPrivateKey
	LinkKey  *keys.LinkPrivateKey
	// Schedule is the network's epoch calendar. Required.
	Schedule *epoch.Schedule

	// Workers is the number of goroutines that unwrap packets; zero means
	// GOMAXPROCS.
	Workers int
	// LinkCredit bounds the packets one incoming link (or Ingress) may
	// have waiting for a worker; a link that reaches it is not read until
	// a worker takes one, so a flood from one peer fills only its own
	// share. Zero means DefaultLinkCredit.
	LinkCredit int
	// MaxPacketRate is the packet rate the node is provisioned for, in
	// packets per second; it sizes each epoch's replay filter (rate ×
	// key lifetime). Zero means DefaultMaxPacketRate.
	MaxPacketRate int
	// DelayMaxPackets bounds the packets held in the delay queue (the
	// byte bound follows from the packet length). Zero means
	// DefaultDelayMaxPackets.
	DelayMaxPackets int
	// ForwardQueue bounds each next hop's queue, in packets. Zero means
	// DefaultForwardQueue.
	ForwardQueue int
	// DrainTimeout bounds the graceful drain when Run's context ends:
	// held packets are released and sent for at most this long. Zero
	// means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// MinBackoff and MaxBackoff bound redials of next hops (see package
	// forward); zero means its defaults.
	MinBackoff, MaxBackoff time.Duration
	// PollInterval is how often a document that is missing (the first
	// one, or the next epoch's) is asked for again. Zero means a 64th of
	// the epoch period, at least 50ms and at most 5s.
	PollInterval time.Duration
	// KeyGrace is how long into epoch E the key of E-1 still opens
	// packets: the longest a packet made for E-1 can be in flight (the
	// delays of the hops before this one plus clock skew). Zero means
	// DefaultKeyGrace, or the epoch period if that is shorter.
	KeyGrace time.Duration
	// DisableLoops turns off the λM loop cover traffic (tests, benchmarks).
	DisableLoops bool

	// Deliver receives every packet that ends at this node and is not one
	// of its own loop packets: the provider's mailbox hook. It is called
	// from the worker goroutines, concurrently; d.Payload aliases a
	// packet buffer that is reused as soon as Deliver returns, so copy
	// what must be kept. nil: such packets are dropped and counted
	// (a mix is never a last hop but for its own loops).
	Deliver func(d *hop.Decision)
}

// DocumentSource gives verified documents by epoch: a *dirclient.Client
// in the daemons, a fixed set in tests. The error wraps
// dirclient.ErrNotFound while no document for the epoch exists yet.
type DocumentSource interface {
	Document(ctx context.Context, epoch uint64) (*pki.Document, []byte, error)
}

// Uploader publishes the node's descriptor: a *dirclient.Client. An
// upload counts as done once Threshold authorities accepted it (Upload
// returns nil, or a *dirclient.UploadError with enough Accepted).
type Uploader interface {
	Upload(ctx context.Context, sd *pki.SignedDescriptor) error
	Threshold() int
}

// Deps are the collaborators of a Pipeline or Node.
type Deps struct {
	// Log receives the logs; nil discards. Nothing per packet is logged.
	Log *slog.Logger
	// Registerer receives the chorus_mix_* and chorus_link_* metrics;
	// nil registers nothing.
	Registerer prometheus.Registerer
	// Documents is required.
	Documents DocumentSource
	// Uploader publishes the descriptor each epoch; nil: never uploaded
	// (tests with a fixed document).
	Uploader Uploader
	// Rand is the randomness for keys, loop packets and delays; nil means
	// crypto/rand.
	Rand io.Reader
	// Listener, if set, is what a Node accepts links on instead of
	// listening on Config.Listen; the Node closes it.
	Listener net.Listener
	// DialContext opens the connections of outgoing links; nil means a
	// net.Dialer. Tests use it for in-memory links.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ErrConfig wraps every problem New finds in a Config.
var ErrConfig = errors.New("mix: invalid config")

// check validates c and returns it with defaults applied.
func (c Config) check() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if c.Name == "" {
		bad("no name")
	}
	if c.Role != pki.RoleMix && c.Role != pki.RoleProvider {
		bad("role %v", c.Role)
	}
	if len(c.Addresses) == 0 {
		bad("no published address")
	}
	if c.DataDir == "" {
		bad("no data directory")
	}
	if c.Identity == nil || c.LinkKey == nil {
		bad("identity and link keys are required")
	}
	if c.Schedule == nil {
		bad("no epoch schedule")
	}
	for _, v := range []struct {
		name string
		v    int64
	}{
		{"workers", int64(c.Workers)}, {"link credit", int64(c.LinkCredit)}, {"max packet rate", int64(c.MaxPacketRate)},
		{"delay max packets", int64(c.DelayMaxPackets)}, {"forward queue", int64(c.ForwardQueue)},
		{"drain timeout", int64(c.DrainTimeout)}, {"poll interval", int64(c.PollInterval)}, {"key grace", int64(c.KeyGrace)}, {"min backoff", int64(c.MinBackoff)}, {"max backoff", int64(c.MaxBackoff)},
	} {
		if v.v < 0 {
			bad("negative %s", v.name)
		}
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.LinkCredit == 0 {
		c.LinkCredit = DefaultLinkCredit
	}
	if c.MaxPacketRate == 0 {
		c.MaxPacketRate = DefaultMaxPacketRate
	}
	if c.DelayMaxPackets == 0 {
		c.DelayMaxPackets = DefaultDelayMaxPackets
	}
	if c.ForwardQueue == 0 {
		c.ForwardQueue = DefaultForwardQueue
	}
	if c.PollInterval == 0 && c.Schedule != nil {
		c.PollInterval = min(max(c.Schedule.Period()/64, 50*time.Millisecond), 5*time.Second)
	}
	if c.KeyGrace == 0 {
		c.KeyGrace = min(DefaultKeyGrace, c.Schedule.Period())
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	return c, nil
}
