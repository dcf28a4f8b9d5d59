// Package daemon is the scaffolding shared by every Chorus daemon's main
// (chorus-authority, chorus-mixnode, chorus-provider, chorusd): everything a
// main does before and after it hands control to the role's New/Run.
//
// A daemon's main is a few lines:
//
//	func main() {
//		os.Exit(daemon.Main(daemon.Program{
//			Name:   "chorus-authority",
//			Args:   os.Args[1:],
//			Stdout: os.Stdout,
//			Stderr: os.Stderr,
//			Config: authority.DefaultConfig(),
//			Build:  build,
//		}))
//	}
//
// Main parses the common flags (-config FILE, -validate, -version), loads
// the config strictly (LoadConfig), sets up logging (OpenLog), starts the
// metrics and health listener (HealthHandler, Serve), turns signals into a
// context (NotifyContext) and runs the service until it stops. It returns
// the process exit code: ExitOK after a clean stop, ExitFailure for a
// runtime failure, ExitUsage for bad flags or a bad config.
//
// Config rules (DESIGN §6, STYLE 11):
//
//   - The file is TOML, decoded with toml.DecodeFile into a struct that
//     already holds the defaults, so defaults live in one place (the role's
//     DefaultConfig) and are applied in one step.
//   - Every key the struct does not know is an error naming the key.
//   - Durations are strings ("20m", "1h30m"): the Duration type rejects a
//     bare integer with an error naming the key, because "period = 20"
//     could mean seconds, minutes or nanoseconds.
//   - Validate is pure and returns every problem at once; LoadConfig
//     collects the unknown keys and the Validate problems into one
//     *ConfigError, so an operator fixes a config in one round.
//
// Operational sections shared by every daemon live in Ops, which a role's
// config embeds: [logging], [metrics] and shutdown_timeout.
//
// Logging is log/slog, text or JSON, to stderr or to a file that SIGHUP
// reopens (for logrotate). Per-packet data, client addresses and mailbox IDs
// never go to the log at info or above; packet-level debug logging needs
// unsafe_debug_logging = true, and OpenLog warns loudly when it is set.
//
// The metrics listener serves /metrics from a private Prometheus registry
// (never the global one), /healthz (the process is serving) and /readyz (the
// service's own readiness function). It binds to loopback by default; any
// other address must be configured explicitly.
//
// Shutdown: the first SIGINT or SIGTERM cancels the context; the service
// drains and Run returns within shutdown_timeout or the process exits with
// ExitFailure. A second signal exits at once.
package daemon
