package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Version is the release version, set at link time with
// -ldflags "-X github.com/chorus-mixnet/chorus/cmd/internal/daemon.Version=v1.2.3".
var Version = "dev"

// VersionString is what -version prints for the named binary.
func VersionString(name string) string {
	s := name + " " + Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		s += " (" + bi.GoVersion
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" && len(kv.Value) >= 12 {
				s += ", " + kv.Value[:12]
			}
		}
		s += ")"
	}
	return s
}

// Flags are the command-line flags every daemon accepts.
type Flags struct {
	Config   string // -config FILE
	Validate bool   // -validate: check the config and exit
	Version  bool   // -version: print the version and exit
}

// ErrHelp is returned by ParseFlags for -h or -help.
var ErrHelp = flag.ErrHelp

// ParseFlags parses the common flags. Usage and errors go to stderr.
func ParseFlags(name string, args []string, stderr io.Writer) (Flags, error) {
	var f Flags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.Config, "config", "", "path of the TOML config `file` (required)")
	fs.BoolVar(&f.Validate, "validate", false, "check the config, list every problem, and exit (0 valid, 2 invalid)")
	fs.BoolVar(&f.Version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", name, fs.Arg(0))
		fs.Usage()
		return f, errors.New("unexpected arguments")
	}
	if f.Config == "" && !f.Version {
		fmt.Fprintf(stderr, "%s: -config is required\n", name)
		fs.Usage()
		return f, errors.New("missing -config")
	}
	return f, nil
}

// Env is what Main hands to a daemon's Build function.
type Env struct {
	Log *slog.Logger
	// Registry is the daemon's private metrics registry; /metrics serves it.
	Registry *prometheus.Registry
	// UnsafeDebugLogging reports whether packet-level debug logs are allowed.
	UnsafeDebugLogging bool
}

// Service is a built daemon: Run blocks until ctx is done and every
// goroutine it started has stopped; Ready backs /readyz.
type Service interface {
	Run(ctx context.Context) error
	Ready() error
}

// Program describes one daemon binary to Main.
type Program struct {
	Name           string
	Args           []string // without the program name
	Stdout, Stderr io.Writer
	// Config holds the defaults; LoadConfig decodes the file over them.
	Config Config
	// Build constructs the service from the loaded config. It must start
	// nothing; Main calls Run.
	Build func(Env) (Service, error)
	// Exit is called by a second SIGINT/SIGTERM; nil means os.Exit.
	Exit func(int)
}

// Main runs a daemon from flags to exit code.
func Main(p Program) int {
	f, err := ParseFlags(p.Name, p.Args, p.Stderr)
	if errors.Is(err, ErrHelp) {
		return ExitOK
	}
	if err != nil {
		return ExitUsage
	}
	if f.Version {
		fmt.Fprintln(p.Stdout, VersionString(p.Name))
		return ExitOK
	}
	if err := LoadConfig(f.Config, p.Config); err != nil {
		fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
		return ExitUsage
	}
	if f.Validate {
		fmt.Fprintf(p.Stdout, "%s: config %s is valid\n", p.Name, f.Config)
		return ExitOK
	}
	ops := p.Config.Operations()
	logs, err := OpenLog(ops.Logging, p.Stderr)
	if err != nil {
		fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
		return ExitFailure
	}
	defer logs.Close()
	log := logs.Logger
	exit := p.Exit
	if exit == nil {
		exit = os.Exit
	}
	ctx, stop := NotifyContext(context.Background(), log, func() {
		if err := logs.Reopen(); err != nil {
			log.Error("reopen log", "err", err)
		}
	}, exit)
	defer stop()

	reg := NewRegistry()
	svc, err := p.Build(Env{Log: log, Registry: reg, UnsafeDebugLogging: ops.Logging.UnsafeDebugLogging})
	if err != nil {
		log.Error("start failed", "err", err)
		return ExitFailure
	}
	log.Info("starting", "version", VersionString(p.Name))
	if err := run(ctx, log, svc, reg, ops); err != nil {
		log.Error("stopped with an error", "err", err)
		return ExitFailure
	}
	log.Info("stopped cleanly")
	return ExitOK
}

// ErrShutdownTimeout is returned when a service does not stop within
// shutdown_timeout after its context is cancelled.
var ErrShutdownTimeout = errors.New("shutdown timed out")

// run runs the service and the metrics listener until ctx is done or one of
// them fails, then waits up to ops.ShutdownTimeout for both to stop.
func run(ctx context.Context, log *slog.Logger, svc Service, g prometheus.Gatherer, ops *Ops) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	n := 0
	if addr := ops.Metrics.Address; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen for metrics: %w", err)
		}
		if !isLoopback(ln.Addr()) {
			log.Warn("metrics and health listener is not on loopback", "address", ln.Addr().String())
		}
		n++
		go func() { errc <- Serve(ctx, ln, HealthHandler(g, svc.Ready), log) }()
	}
	n++
	go func() { errc <- svc.Run(ctx) }()

	var first error
	select {
	case first = <-errc:
		n--
	case <-ctx.Done():
	}
	cancel()
	timer := time.NewTimer(ops.ShutdownTimeout.Std())
	defer timer.Stop()
	for ; n > 0; n-- {
		select {
		case err := <-errc:
			if first == nil {
				first = err
			}
		case <-timer.C:
			return ErrShutdownTimeout
		}
	}
	return first
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
