package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-mixnet/chorus/client/arq"
	"github.com/chorus-mixnet/chorus/client/message"
	"github.com/chorus-mixnet/chorus/client/store"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultMaxAttempts       = 8
	DefaultSlack             = 5 * time.Second
	DefaultMaxSlack          = time.Minute
	DefaultMinBackoff        = time.Second
	DefaultMaxBackoff        = time.Minute
	DefaultPingTimeout       = time.Minute
	DefaultRetrievalInterval = time.Second
	// MaxAttemptsLimit bounds Config.ARQ.MaxAttempts: client/store keeps
	// at most 32 SURB IDs per fragment, one per attempt.
	MaxAttemptsLimit = 32
)

// DefaultARQ is the retransmission policy unless configured otherwise:
// 8 attempts, the first waiting the drawn round trip plus 5s, the slack
// doubling up to a minute (about five minutes in all before a message
// fails on the default network parameters).
var DefaultARQ = arq.Config{MaxAttempts: DefaultMaxAttempts, Slack: DefaultSlack, MaxSlack: DefaultMaxSlack}

// Config configures a Client. The network's parameters (geometry,
// schedule, authorities) must match what its authorities use.
type Config struct {
	// ProviderID is the node ID of the user's provider, as the documents
	// list it. Required.
	ProviderID pki.NodeID
	// ProviderAddress is where the provider accepts client links
	// ("host:port"). Required unless Deps.Dial is set.
	ProviderAddress string
	// ProviderLinkKey is the provider's static link key; the link is
	// refused unless the provider proves it holds it. Required.
	ProviderLinkKey keys.LinkPublicKey

	// Authorities are the identity keys of the directory authorities and
	// Threshold how many of them must sign a document (a majority; 0
	// means the smallest majority). The provider serves the documents;
	// their signatures, not the provider, are what the client trusts.
	Authorities []keys.IdentityPublicKey
	Threshold   int
	// Schedule is the network's epoch calendar. Required.
	Schedule *epoch.Schedule
	// Geometry is the network's Sphinx geometry; it fixes the link's
	// frame size before any document is known, and documents with
	// another geometry are refused. It must leave room for a SURB.
	// nil means sphinx.DefaultGeometry().
	Geometry *sphinx.Geometry

	// ARQ is the retransmission policy; zero means DefaultARQ.
	// MaxAttempts may not exceed MaxAttemptsLimit.
	ARQ arq.Config
	// MinBackoff and MaxBackoff bound the wait between attempts to
	// (re)connect to the provider; it doubles after each failure, with
	// jitter. Zero means DefaultMinBackoff, DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// PollInterval is how often a missing document (the current epoch's,
	// or the next one's once it should be published) is asked for again.
	// Zero means a 64th of the epoch period, at least 50ms and at most 5s.
	PollInterval time.Duration
	// RetrievalInterval is the retrieval rate used until the first
	// document is known (then the document's RetrievalInterval applies).
	// Zero means DefaultRetrievalInterval.
	RetrievalInterval time.Duration
	// PingTimeout bounds a ping's wait for the echo. Zero means
	// DefaultPingTimeout.
	PingTimeout time.Duration
	// MaxMessageSize bounds a message sent or received; zero means
	// message.DefaultMaxMessageSize.
	MaxMessageSize int

	// LinkKeepAlive and LinkIdleTimeout configure the provider link (see
	// link.Config); zero means link's defaults.
	LinkKeepAlive, LinkIdleTimeout time.Duration
}

// Deps are a Client's collaborators.
type Deps struct {
	// Store is the user's open state. Required; the Client does not close
	// it (close it after Run has returned and Close was called).
	Store *store.Store
	// Log receives the logs; nil discards them. Nothing about individual
	// packets, mailboxes, contacts or addresses is logged above debug.
	Log *slog.Logger
	// Registerer receives the chorus_client_* and chorus_link_* metrics;
	// nil registers nothing.
	Registerer prometheus.Registerer
	// Dial opens the link to the provider; nil means link.Dial over TCP
	// to Config.ProviderAddress. Tests use it for in-memory links.
	Dial func(ctx context.Context, cfg link.Config, provider keys.LinkPublicKey) (*link.Conn, error)
	// Rand supplies keys, SURB IDs and message IDs; nil means
	// crypto/rand. It is used from several goroutines at once and must
	// be safe for that.
	Rand io.Reader
}

// ErrConfig wraps every problem New finds in a Config or Deps.
var ErrConfig = errors.New("client: invalid config")

// check validates c and returns it with defaults applied.
func (c Config) check(d Deps) (Config, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if c.ProviderID == (pki.NodeID{}) {
		bad("no provider ID")
	}
	if c.ProviderAddress == "" && d.Dial == nil {
		bad("no provider address")
	}
	if c.ProviderLinkKey.IsZero() {
		bad("no provider link key")
	}
	if len(c.Authorities) == 0 {
		bad("no authorities")
	}
	if c.Threshold < 0 || c.Threshold > len(c.Authorities) {
		bad("threshold %d with %d authorities", c.Threshold, len(c.Authorities))
	}
	if c.Schedule == nil {
		bad("no epoch schedule")
	}
	if c.Geometry == nil {
		c.Geometry = sphinx.DefaultGeometry()
	}
	if !c.Geometry.WithSURB() {
		bad("geometry %v has no room for a SURB", c.Geometry)
	}
	if c.Geometry.UserPayloadLength() <= message.SealOverhead {
		bad("geometry %v: user payload too small for a sealed fragment", c.Geometry)
	}
	if c.Geometry.PacketLength() > link.MaxPacketLength {
		bad("geometry %v: packets too long for a link", c.Geometry)
	}
	if c.ARQ == (arq.Config{}) {
		c.ARQ = DefaultARQ
	}
	if err := c.ARQ.Validate(); err != nil {
		bad("%v", err)
	}
	if c.ARQ.MaxAttempts > MaxAttemptsLimit {
		bad("arq max attempts %d, at most %d", c.ARQ.MaxAttempts, MaxAttemptsLimit)
	}
	for _, v := range []struct {
		name string
		v    time.Duration
	}{
		{"min backoff", c.MinBackoff}, {"max backoff", c.MaxBackoff}, {"poll interval", c.PollInterval},
		{"retrieval interval", c.RetrievalInterval}, {"ping timeout", c.PingTimeout},
	} {
		if v.v < 0 {
			bad("negative %s", v.name)
		}
	}
	if c.MaxMessageSize < 0 || c.MaxMessageSize > 1<<30 {
		bad("max message size %d", c.MaxMessageSize)
	}
	if d.Store == nil {
		bad("no store")
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	if c.Threshold == 0 {
		c.Threshold = len(c.Authorities)/2 + 1
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.PollInterval == 0 {
		c.PollInterval = min(max(c.Schedule.Period()/64, 50*time.Millisecond), 5*time.Second)
	}
	if c.RetrievalInterval == 0 {
		c.RetrievalInterval = DefaultRetrievalInterval
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = DefaultPingTimeout
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = message.DefaultMaxMessageSize
	}
	return c, nil
}

// bootstrapParameters are the egress rates before any document is known:
// retrieval (and so consensus requests) at the configured rate, the
// Poisson clocks practically stopped, since no packet can be built
// without a document.
func (c Config) bootstrapParameters() pki.Parameters {
	return pki.Parameters{
		MuMean:            time.Second,
		MaxDelay:          time.Second,
		LambdaPMean:       pki.MaxInterval,
		LambdaLMean:       pki.MaxInterval,
		LambdaDMean:       pki.MaxInterval,
		LambdaMMean:       pki.MaxInterval,
		RetrievalInterval: c.RetrievalInterval,
	}
}
