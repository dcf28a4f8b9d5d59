// Command chorus-provider runs a Chorus provider (DESIGN §2, §5.5): the
// edge of the network, where clients connect. It is the first hop of its
// clients' packets and the last hop of the packets for them; it keeps
// their mailboxes, answers their retrievals, serves them the consensus,
// acknowledges stored messages through the senders' SURBs, runs the echo
// service, publishes its descriptor every epoch and sends its own loop
// cover traffic.
//
//	chorus-provider -config /etc/chorus/chorus-provider.toml
//	chorus-provider -config FILE -validate   # list every config problem; exit 0 or 2
//	chorus-provider -version
//	chorus-provider users add  -config FILE KEY   # let a client key in (closed registration)
//	chorus-provider users rm   -config FILE KEY   # take it out again
//	chorus-provider users list -config FILE       # the keys in the registry
//
// configs/chorus-provider.toml is an annotated example. On first start the
// provider creates, in its data directory, its Ed25519 identity key
// (identity.key) and its X25519 link key (link.key); their public halves
// are logged at start (clients configure the link key). The Sphinx keys
// (sphinx/), the replay filters (replay/), the cached documents
// (documents/), the client registry (users.db) and the mailboxes
// (spool.db) live there too.
//
// The users subcommand edits the registry file, which the running provider
// holds locked: stop the provider, change the users, start it again. KEY
// is a client's link public key in base64, as chorusd shows it.
//
// The provider knows its clients' keys and addresses, and the debug logs
// of its links and registry name them: they are written only with
// unsafe_debug_logging = true, whatever the log level.
//
// SIGINT or SIGTERM drains the provider: it stops accepting links, closes
// the client links, stores (and acknowledges) what was delivered, lets the
// packets it holds leave (for at most drain_timeout), and exits; a second
// signal exits at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/provider"
	"github.com/chorus-mixnet/chorus/provider/users"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "users" {
		return usersCommand(args[1:], stdout, stderr)
	}
	cfg := defaultFileConfig()
	return daemon.Main(daemon.Program{
		Name:   "chorus-provider",
		Args:   args,
		Stdout: stdout,
		Stderr: stderr,
		Config: cfg,
		Build:  func(env daemon.Env) (daemon.Service, error) { return build(cfg, env) },
	})
}

func build(f *fileConfig, env daemon.Env) (daemon.Service, error) {
	parts, err := f.Open(pki.RoleProvider, env.Log)
	if err != nil {
		return nil, err
	}
	if f.Registration.Policy == users.RegistrationOpen {
		env.Log.Info("open registration: new client keys register on first connection",
			"per_address_limit", f.Registration.PerAddressLimit, "window", f.Registration.Window.String())
	}
	log := env.Log
	if !env.UnsafeDebugLogging {
		// The debug logs of links and of the registry name client keys
		// and addresses: a provider writes them only when the operator
		// said so.
		log = slog.New(atLeast{h: log.Handler(), min: slog.LevelInfo})
	}
	p, err := provider.New(f.providerConfig(parts.Config), parts.Deps(log, env.Registry))
	if err != nil {
		parts.Wipe()
		if errors.Is(err, users.ErrLocked) {
			err = fmt.Errorf("%w (is another chorus-provider, or a users subcommand, running on this data directory?)", err)
		}
		return nil, err
	}
	return parts.Service(p), nil
}

const usersUsage = `usage:
  chorus-provider users add  -config FILE KEY
  chorus-provider users rm   -config FILE KEY
  chorus-provider users list -config FILE

KEY is a client's link public key (base64). The provider must be stopped:
it holds the registry locked while it runs.
`

// usersCommand edits the client registry: add, rm, list.
func usersCommand(args []string, stdout, stderr io.Writer) int {
	usage := func(format string, a ...any) int {
		if format != "" {
			fmt.Fprintf(stderr, "chorus-provider users: "+format+"\n", a...)
		}
		fmt.Fprint(stderr, usersUsage)
		return daemon.ExitUsage
	}
	if len(args) == 0 {
		return usage("")
	}
	verb := args[0]
	if verb == "-h" || verb == "-help" || verb == "--help" || verb == "help" {
		fmt.Fprint(stdout, usersUsage)
		return daemon.ExitOK
	}
	wantKey := verb == "add" || verb == "rm"
	if !wantKey && verb != "list" {
		return usage("unknown command %q", verb)
	}
	fs := flag.NewFlagSet("chorus-provider users "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return usage("%v", err)
	}
	rest := fs.Args()
	if len(rest) > 0 && *configPath == "" {
		// Allow the key before the flag: users add KEY -config FILE.
		if err := fs.Parse(rest[1:]); err != nil {
			return usage("%v", err)
		}
		rest = append(rest[:1:1], fs.Args()...)
	}
	if *configPath == "" {
		return usage("-config is required")
	}
	switch {
	case wantKey && len(rest) != 1:
		return usage("%s takes one KEY", verb)
	case !wantKey && len(rest) != 0:
		return usage("list takes no KEY")
	}
	var key keys.LinkPublicKey
	if wantKey {
		if err := key.UnmarshalText([]byte(rest[0])); err != nil || key.IsZero() {
			return usage("KEY must be a link public key in base64 (32 bytes)")
		}
	}

	cfg := defaultFileConfig()
	if err := daemon.LoadConfig(*configPath, cfg); err != nil {
		fmt.Fprintf(stderr, "chorus-provider users: %v\n", err)
		return daemon.ExitUsage
	}
	if err := daemon.EnsureDataDir(cfg.DataDir); err != nil {
		fmt.Fprintf(stderr, "chorus-provider users: %v\n", err)
		return daemon.ExitFailure
	}
	reg, err := users.Open(cfg.usersFile(), users.Config{})
	if err != nil {
		if errors.Is(err, users.ErrLocked) {
			err = fmt.Errorf("%w: stop chorus-provider first", err)
		}
		fmt.Fprintf(stderr, "chorus-provider users: %v\n", err)
		return daemon.ExitFailure
	}
	defer reg.Close()
	switch verb {
	case "add":
		err = reg.Add(key)
		if err == nil {
			fmt.Fprintf(stdout, "added %s\n", rest[0])
		}
	case "rm":
		err = reg.Remove(key)
		if err == nil {
			fmt.Fprintf(stdout, "removed %s\n", rest[0])
		}
	case "list":
		for _, k := range reg.List() {
			b, _ := k.MarshalText()
			fmt.Fprintf(stdout, "%s\n", b)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "chorus-provider users: %v\n", err)
		return daemon.ExitFailure
	}
	if err := reg.Close(); err != nil {
		fmt.Fprintf(stderr, "chorus-provider users: %v\n", err)
		return daemon.ExitFailure
	}
	return daemon.ExitOK
}

// atLeast passes on only the records of level min and above.
type atLeast struct {
	h   slog.Handler
	min slog.Level
}

func (a atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= a.min && a.h.Enabled(ctx, l)
}
func (a atLeast) Handle(ctx context.Context, r slog.Record) error { return a.h.Handle(ctx, r) }
func (a atLeast) WithAttrs(attrs []slog.Attr) slog.Handler {
	return atLeast{h: a.h.WithAttrs(attrs), min: a.min}
}
func (a atLeast) WithGroup(name string) slog.Handler {
	return atLeast{h: a.h.WithGroup(name), min: a.min}
}
