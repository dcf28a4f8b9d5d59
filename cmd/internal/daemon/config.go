package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is what a daemon's config type provides to LoadConfig and Main.
type Config interface {
	// Validate is pure and returns every problem in the config at once,
	// each naming its key (use FieldError).
	Validate() []error
	// Operations returns the shared operational sections. A config that
	// embeds Ops gets this method for free.
	Operations() *Ops
}

// Duration is a config duration. In TOML it must be a string accepted by
// time.ParseDuration ("20m", "1h30m", "500ms"); a bare integer is an error,
// since its unit would be a guess.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText encodes d as a duration string, so configs written with a TOML
// encoder (the testnet does) load again.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalTOML implements toml.Unmarshaler.
func (d *Duration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		switch v := v.(type) {
		case int64:
			return fmt.Errorf("must be a duration string with a unit like \"20m\" or \"30s\", not the bare number %d", v)
		default:
			return fmt.Errorf("must be a duration string with a unit like \"20m\" or \"30s\", not a TOML %T", v)
		}
	}
	p, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("must be a duration string with a unit like \"20m\" or \"30s\", not %q", s)
	}
	*d = Duration(p)
	return nil
}

// FieldError is a problem with one config key.
type FieldError struct {
	Key string // dotted TOML key, e.g. "epoch.period" or "peers[1].address"
	Msg string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

// Problemf returns a *FieldError for key.
func Problemf(key, format string, args ...any) error {
	return &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// ConfigError lists every problem found in one config file.
type ConfigError struct {
	Path     string
	Problems []error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config %s: %d problem", e.Path, len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the individual problems, for errors.Is and errors.As.
func (e *ConfigError) Unwrap() []error { return e.Problems }

// ErrUnknownKey is wrapped by the problem reported for a key the config does
// not know.
var ErrUnknownKey = errors.New("unknown key")

type unknownKeyError struct{ key string }

func (e *unknownKeyError) Error() string { return e.key + ": unknown key" }
func (e *unknownKeyError) Unwrap() error { return ErrUnknownKey }

// LoadConfig decodes the TOML file at path into cfg, which must be a pointer
// already holding the defaults, and checks it strictly: a decoding error
// (syntax, a wrong type, a bare-integer duration) is reported alone with its
// key and line; otherwise every unknown key and every problem from
// cfg.Validate is reported together. Any failure is a *ConfigError.
func LoadConfig(path string, cfg Config) error {
	md, err := toml.DecodeFile(path, cfg)
	if err != nil {
		var pe toml.ParseError
		switch {
		case errors.As(err, &pe) && pe.LastKey != "":
			err = Problemf(pe.LastKey, "%s (line %d)", pe.Message, pe.Position.Line)
		case errors.As(err, &pe):
			err = fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)
		case errors.Is(err, fs.ErrNotExist):
			err = fmt.Errorf("read config: %w", fs.ErrNotExist)
		}
		return &ConfigError{Path: path, Problems: []error{err}}
	}
	problems := unknownKeys(md)
	problems = append(problems, cfg.Validate()...)
	if len(problems) > 0 {
		return &ConfigError{Path: path, Problems: problems}
	}
	return nil
}

// unknownKeys names every key the decoder did not use. The keys inside an
// unknown table are not listed again.
func unknownKeys(md toml.MetaData) []error {
	var names []string
	for _, k := range md.Undecoded() {
		names = append(names, k.String())
	}
	sort.Strings(names)
	var out []error
	var last string
	for _, n := range names {
		if last != "" && strings.HasPrefix(n, last+".") {
			continue
		}
		last = n
		out = append(out, &unknownKeyError{key: n})
	}
	return out
}

// Ops are the operational settings every daemon has. A role's config
// embeds it, so these appear at the top level of its file:
//
//	shutdown_timeout = "30s"
//	[logging]
//	level = "info"
//	[metrics]
//	address = "127.0.0.1:9100"
type Ops struct {
	// ShutdownTimeout bounds the graceful drain after SIGINT/SIGTERM.
	ShutdownTimeout Duration      `toml:"shutdown_timeout"`
	Logging         LogConfig     `toml:"logging"`
	Metrics         MetricsConfig `toml:"metrics"`
}

// LogConfig is the [logging] section.
type LogConfig struct {
	Level  string `toml:"level"`  // "debug", "info", "warn" or "error"
	Format string `toml:"format"` // "text" or "json"
	// File is the log file; empty means standard error. SIGHUP reopens it.
	File string `toml:"file"`
	// UnsafeDebugLogging allows packet-level debug logs, which reveal
	// traffic metadata. Only for debugging a test network.
	UnsafeDebugLogging bool `toml:"unsafe_debug_logging"`
}

// MetricsConfig is the [metrics] section.
type MetricsConfig struct {
	// Address is where /metrics, /healthz and /readyz listen; empty
	// disables the listener. The default is a loopback address.
	Address string `toml:"address"`
}

// DefaultOps returns the operational defaults with the metrics listener on
// loopback at metricsAddr.
func DefaultOps(metricsAddr string) Ops {
	return Ops{
		ShutdownTimeout: Duration(30 * time.Second),
		Logging:         LogConfig{Level: "info", Format: "text"},
		Metrics:         MetricsConfig{Address: metricsAddr},
	}
}

// Operations implements Config for every config that embeds Ops.
func (o *Ops) Operations() *Ops { return o }

// Validate returns every problem in the operational sections.
func (o *Ops) Validate() []error {
	var errs []error
	if o.ShutdownTimeout <= 0 {
		errs = append(errs, Problemf("shutdown_timeout", "must be positive"))
	}
	if _, ok := parseLevel(o.Logging.Level); !ok {
		errs = append(errs, Problemf("logging.level", "must be one of debug, info, warn, error; got %q", o.Logging.Level))
	}
	if o.Logging.Format != "text" && o.Logging.Format != "json" {
		errs = append(errs, Problemf("logging.format", "must be \"text\" or \"json\"; got %q", o.Logging.Format))
	}
	if a := o.Metrics.Address; a != "" {
		if err := CheckAddress("metrics.address", a); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// CheckAddress returns a problem for key unless addr is a host:port with a
// numeric port.
func CheckAddress(key, addr string) error {
	if addr == "" {
		return Problemf(key, "is required")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return Problemf(key, "must be host:port; got %q", addr)
	}
	return nil
}
