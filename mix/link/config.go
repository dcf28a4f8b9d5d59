package link

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

// Defaults applied by Config for zero fields.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultKeepAlive        = 10 * time.Second
	DefaultIdleTimeout      = 60 * time.Second
	DefaultMaxHandshakes    = 64
)

// closeTimeout bounds the best-effort Disconnect that Close sends.
const closeTimeout = time.Second

// Config configures both ends of a link. The same Config can be used for
// many Dial calls and a Listener at once; it is not modified.
type Config struct {
	// PrivateKey is this endpoint's static link key. Required. The link
	// reads it during every handshake and never wipes it: it belongs to the
	// caller.
	PrivateKey *keys.LinkPrivateKey

	// PacketLength is the length of one Sphinx packet in the network's
	// geometry (sphinx.Geometry.PacketLength). Every frame carries exactly
	// one packet's worth of body, so it fixes the frame size; both ends
	// must agree, or the handshake fails. Required, 1..MaxPacketLength.
	PacketLength int

	// Authorize decides, after a listener's handshake, whether the peer's
	// static key may connect: for nodes, whether the consensus lists it;
	// for providers, whether the user registry knows it. It runs in the
	// handshake's goroutine and may block up to the handshake timeout. A
	// refused peer is disconnected without a word. Required by Listen and
	// Server; Dial and Client check the responder against the key they are
	// given instead and ignore it.
	Authorize func(keys.LinkPublicKey) bool

	// HandshakeTimeout bounds a whole handshake, from connection to the
	// first frame. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// KeepAlive is how long a link may stay silent before it sends a NoOp.
	// Zero means DefaultKeepAlive; negative disables keepalives.
	KeepAlive time.Duration

	// IdleTimeout is how long Recv waits for any frame (NoOps included)
	// before it declares the peer gone, and how long one frame may take to
	// write. It must exceed the peer's KeepAlive. Zero means
	// DefaultIdleTimeout; negative disables it.
	IdleTimeout time.Duration

	// MaxHandshakes bounds a Listener's concurrent handshakes; further
	// connections wait in the kernel's backlog. Zero means
	// DefaultMaxHandshakes.
	MaxHandshakes int

	// Logger receives the link's logs; nil discards them. Peer addresses
	// appear only at debug level.
	Logger *slog.Logger

	// Metrics, shared by every link of a daemon, counts handshakes and
	// frames; nil disables them. See NewMetrics.
	Metrics *Metrics

	// rekeyEvery overrides defaultRekeyInterval in tests. Both ends must
	// agree on it.
	rekeyEvery uint64
}

// ErrConfig is returned for an unusable Config.
var ErrConfig = errors.New("link: invalid config")

// check validates c and returns a copy with defaults applied.
func (c Config) check(listening bool) (Config, error) {
	var errs []error
	if c.PrivateKey == nil {
		errs = append(errs, fmt.Errorf("%w: no private key", ErrConfig))
	}
	if c.PacketLength < 1 || c.PacketLength > MaxPacketLength {
		errs = append(errs, fmt.Errorf("%w: packet length %d, want 1..%d", ErrConfig, c.PacketLength, MaxPacketLength))
	}
	if listening && c.Authorize == nil {
		errs = append(errs, fmt.Errorf("%w: a listener needs Authorize", ErrConfig))
	}
	if c.HandshakeTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: negative handshake timeout", ErrConfig))
	}
	if c.MaxHandshakes < 0 {
		errs = append(errs, fmt.Errorf("%w: negative handshake limit", ErrConfig))
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxHandshakes == 0 {
		c.MaxHandshakes = DefaultMaxHandshakes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.rekeyEvery == 0 {
		c.rekeyEvery = defaultRekeyInterval
	}
	return c, nil
}
