// Package testnet runs a complete Chorus network on one machine, every
// daemon a real process on 127.0.0.1: the program chorus-testnet and the
// end-to-end tests are both built on it (DESIGN §2, §7; STYLE 18).
//
// # The network
//
//	auth1 auth2 auth3          directory authorities, threshold 2
//	mix1 … mix6                mixes; the authorities place them in 3 layers
//	provider1 provider2        providers (first and last hop, mailboxes)
//	alice  (on provider1)      client daemons (chorusd), each in the
//	bob    (on provider2)      other's contacts
//
// Epochs are short (DefaultEpoch, one minute) and the traffic parameters
// the authorities vote for fast (Parameters: 20 send slots a second, a
// mean per-hop delay of 20 ms), so a message crosses the network in a
// fraction of a second; a real network is configured far slower.
//
// # Using it
//
//	n, err := testnet.Open(testnet.Options{Dir: dir, Logf: log.Printf})
//	err = n.Build(ctx)            // go build -o DIR/bin/ ./cmd/...
//	err = n.WriteConfigs(ctx)     // ports, authority keys, every config (checked with -validate)
//	err = n.Start(ctx)            // every process, authorities first
//	r, err := n.WaitReady(ctx)    // serving, first document, links, clients connected
//	err = n.Introduce(ctx)        // alice and bob exchange contact cards
//	d, err := n.Deliver(ctx, testnet.Alice, testnet.Bob, body) // received intact, every ACK back; latencies
//	exits := n.Stop()             // SIGTERM, then SIGKILL after a bound; how each ended
//
// Send queues a message and returns a Transfer to follow with Wait, for
// tests that act while a message is on its way. Kill (SIGKILL: a crash),
// StopProcess, StartProcess and Restart act on one process. Every wait
// takes a context; nothing is timed but with the caller's deadline.
//
// # The directory
//
//	DIR/testnet.json     what a restart reuses: epoch schedule and ports
//	DIR/bin/             the programs
//	DIR/configs/NAME.toml
//	DIR/NAME/            each daemon's data directory (mode 0700): keys, state
//	DIR/logs/NAME.log    each process's standard output and error
//
// Opening a directory that already holds a network restarts that network:
// the same keys, ports, mailboxes and contacts; the configs are written
// again from the same state, so they follow changes to this package.
// Options.Fresh discards it first. A directory that exists, is not empty
// and holds no testnet.json is never touched, and one network holds its
// directory locked (DIR/testnet.lock) from Open until Stop or Abort, so a
// second run fails with ErrBusy instead of sharing it.
//
// A new network's genesis is set so that its first epoch begins as its
// configs are written: the authorities make the first document at once
// (their bootstrap rule, pki/authority) with the rest of the epoch ahead
// of it for the next round.
//
// # Keys
//
// The authorities' identity keys are created here, with mix/keys, in each
// authority's data directory where chorus-authority looks for them, before
// any authority starts: every authority's peers and every node's
// authority list need them in their configs. The mixes, providers and
// clients create their own keys on first start, as they would anywhere.
//
// # Processes
//
// Each process runs in its own process group, so a Ctrl-C in the terminal
// reaches only the supervising program, which then stops the daemons in
// order: clients, then mixes and providers, then authorities, each with
// SIGTERM and, after the daemons' own drain bound and a margin, SIGKILL.
// On Linux the kernel kills them (PR_SET_PDEATHSIG) if the supervisor
// dies without stopping them. A process that exits without being told to
// is reported on Crashes, and WaitReady fails at once with the end of its
// log.
//
// Ports are chosen once, below the kernel's ephemeral range, and kept in
// testnet.json, so a restarted network listens where its documents and
// configs say it does.
package testnet
