// Command chorus-testnet runs a complete Chorus network on this machine,
// on 127.0.0.1, for trying Chorus out and for testing it by hand:
//
//	go run ./cmd/chorus-testnet                 # build, start, send a first message, stay up until Ctrl-C
//	go run ./cmd/chorus-testnet -demo-and-exit  # the same first message, then stop; exit 0 on success
//
// It builds every binary (go build), writes keys and configs into a
// directory (./testnet unless -dir says otherwise) and starts, each as its
// own process: three directory authorities (threshold 2), six mixes for
// three layers, two providers, and two users' client daemons, alice on the
// first provider and bob on the second, each in the other's contacts.
// Epochs are short (one minute unless -epoch says otherwise) and the
// traffic rates fast, so a message crosses the network in well under a
// second.
//
// It shows its progress while the network starts (which processes are
// up, the first consensus document, the links between the nodes), then
// sends a first message from alice to bob and prints when it was sent,
// when bob had it and when alice had its ACK. Then it prints the chorus
// commands to send more, and stays up until Ctrl-C, which stops every
// process (SIGTERM, then SIGKILL after a bound) and reports any that
// exited badly, with the end of its log. A second Ctrl-C kills everything
// at once.
//
// Every process logs to DIR/logs/NAME.log. Running chorus-testnet again
// with the same directory restarts the same network (same keys, ports,
// mailboxes and contacts); -fresh starts a new one.
//
// Exit status: 0 when everything went well and every process stopped
// cleanly, 1 on a failure (the reason is printed), 2 for bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chorus-mixnet/chorus/cmd/internal/testnet"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chorus-testnet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "testnet", "the network's `directory`: binaries, keys, configs, data and logs")
	epoch := fs.Duration("epoch", 0, "epoch `period` of a new network (default 1m; a restarted network keeps its own)")
	fresh := fs.Bool("fresh", false, "discard the network in -dir and make a new one")
	demo := fs.Bool("demo-and-exit", false, "send the first message, stop every process and exit: 0 on success")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long the network may take to be ready and to deliver the first message")
	source := fs.String("source", "", "the Chorus source `tree` to build (default: the module around the current directory)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: chorus-testnet [-dir DIR] [-epoch D] [-fresh] [-demo-and-exit] [-timeout D] [-source DIR]\n\n"+
			"Runs a whole Chorus network on 127.0.0.1: 3 authorities, 6 mixes, 2 providers,\n"+
			"and the users alice and bob; sends alice's first message to bob; stays up until Ctrl-C.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chorus-testnet: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}

	t0 := time.Now()
	out := &printer{w: stdout, t0: t0}

	// The first Ctrl-C (or SIGTERM) stops the network in order; a second
	// kills every process at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var net *testnet.Network
	abort := make(chan struct{})
	go func() {
		select {
		case <-sigs:
		case <-abort:
			return
		}
		out.printf("interrupted: stopping (Ctrl-C again to kill every process at once)")
		cancel()
		select {
		case <-sigs:
		case <-abort:
			return
		}
		out.printf("second interrupt: killing every process")
		if net != nil {
			net.Abort()
		}
		os.Exit(exitFailure)
	}()
	defer close(abort)

	n, err := testnet.Open(testnet.Options{Dir: *dir, Epoch: *epoch, Fresh: *fresh, Source: *source, Logf: out.printf})
	if err != nil {
		fmt.Fprintf(stderr, "chorus-testnet: %v\n", err)
		return exitFailure
	}
	net = n
	if n.Reused() {
		out.printf("restarting the network in %s (-fresh for a new one)", n.Dir())
	} else {
		out.printf("making a new network in %s", n.Dir())
	}

	fail := func(err error) int {
		if ctx.Err() != nil {
			out.printf("interrupted before the first message was delivered")
		} else {
			out.printf("FAILED: %v", err)
		}
		stopAll(n, out)
		return exitFailure
	}
	out.printf("building %s", strings.Join(testnet.Binaries, ", "))
	if err := n.Build(ctx); err != nil {
		return fail(err)
	}
	out.printf("built")
	if err := n.WriteConfigs(ctx); err != nil {
		return fail(err)
	}
	out.printf("keys and configs written; epochs of %v", n.Schedule().Period())

	readyCtx, readyCancel := context.WithTimeout(ctx, *timeout)
	defer readyCancel()
	if err := n.Start(readyCtx); err != nil {
		return fail(err)
	}
	r, err := n.WaitReady(readyCtx)
	if err != nil {
		return fail(err)
	}
	if err := n.Introduce(readyCtx); err != nil {
		return fail(err)
	}
	text := fmt.Sprintf("Hello Bob! Alice here, writing at %s through the Chorus test network.", time.Now().Format("15:04:05"))
	d, err := n.Deliver(readyCtx, testnet.Alice, testnet.Bob, []byte(text))
	if err != nil {
		return fail(err)
	}
	out.printf("first message delivered: bob had it %v after alice queued it, alice had its ACK after %v", d.Received.Round(time.Millisecond), d.Acked.Round(time.Millisecond))
	out.printf("timings: first document %.1fs after the first process started; network ready after %.1fs",
		r.FirstDocument.Seconds(), r.ClientsReady.Seconds())

	if *demo {
		if !stopAll(n, out) {
			return exitFailure
		}
		return exitOK
	}

	fmt.Fprintf(stdout, "\nThe network is up. Logs are in %s. Try, in another terminal:\n\n", n.LogDir())
	for _, c := range n.Commands() {
		fmt.Fprintf(stdout, "  # %s\n  %s\n\n", c.Note, c.Line)
	}
	fmt.Fprintf(stdout, "Press Ctrl-C to stop every process.\n\n")
	for {
		select {
		case <-ctx.Done():
			if !stopAll(n, out) {
				return exitFailure
			}
			return exitOK
		case e := <-n.Crashes():
			out.printf("unexpected exit: %v; the end of %s:\n%s", e, n.LogPath(e.Name), indent(e.LogTail))
		}
	}
}

// stopAll stops the network and reports every process that exited badly;
// it returns whether all stopped cleanly.
func stopAll(n *testnet.Network, out *printer) bool {
	if len(n.Processes()) == 0 {
		n.Stop()
		return true
	}
	out.printf("stopping every process (SIGTERM; SIGKILL for any still running after the bound)")
	exits := n.Stop()
	bad := testnet.BadExits(exits)
	for _, e := range bad {
		out.printf("%v; the end of %s:\n%s", e, n.LogPath(e.Name), indent(e.LogTail))
	}
	if len(bad) > 0 {
		out.printf("%d of %d processes exited badly", len(bad), len(exits))
		return false
	}
	out.printf("all %d processes stopped cleanly", len(exits))
	return true
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// printer writes progress lines with the time since the start.
type printer struct {
	mu sync.Mutex
	w  io.Writer
	t0 time.Time
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.t0).Seconds(), fmt.Sprintf(format, args...))
}
