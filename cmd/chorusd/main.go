// Command chorusd is the Chorus client daemon (DESIGN §2, §3): it holds
// the user's keys, contacts and messages in an encrypted state, keeps a
// link to the user's provider with Poisson cover traffic, sends messages
// with SURB-ACK retransmission and receives them, and serves the local
// API on a Unix socket for the chorus CLI and other programs.
//
//	chorusd -config ~/.chorus/chorusd.toml
//	chorusd -config FILE -validate   # list every config problem; exit 0 or 2
//	chorusd -version
//
// configs/chorusd.toml is an annotated example. The state is encrypted
// with a passphrase, read from the file the config's passphrase_file
// names, else from the CHORUS_PASSPHRASE environment variable, else asked
// for on the terminal. On first start chorusd creates the state with
// fresh keys (asking twice on a terminal); afterwards a wrong passphrase
// stops it with an error saying so (exit 1).
//
// Exit codes: 0 after a clean stop (SIGINT or SIGTERM), 1 for a runtime
// failure (including a wrong passphrase), 2 for bad flags or config.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/chorus-mixnet/chorus/client"
	"github.com/chorus-mixnet/chorus/client/api"
	"github.com/chorus-mixnet/chorus/client/store"
	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg := defaultFileConfig()
	return daemon.Main(daemon.Program{
		Name:   "chorusd",
		Args:   args,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Config: cfg,
		Build: func(env daemon.Env) (daemon.Service, error) {
			return build(cfg, env, passphraseSource{file: cfg.PassphraseFile, prompt: terminalPrompt()})
		},
	})
}

// service is chorusd running: the client core and the API server.
type service struct {
	core   *client.Client
	st     *store.Store
	socket string
	env    daemon.Env
}

// build opens (or creates) the state and builds the client core. It
// starts nothing.
func build(cfg *fileConfig, env daemon.Env, pass passphraseSource) (_ daemon.Service, err error) {
	ccfg, err := cfg.client()
	if err != nil {
		return nil, err
	}
	dataDir, err := cfg.dataDir()
	if err != nil {
		return nil, err
	}
	socket, err := cfg.socketPath()
	if err != nil {
		return nil, err
	}
	if err := daemon.EnsureDataDir(dataDir); err != nil {
		return nil, err
	}
	if pass.file != "" {
		if pass.file, err = expandHome(pass.file); err != nil {
			return nil, err
		}
	}
	st, err := openState(filepath.Join(dataDir, "state"), pass, env.Log)
	if err != nil {
		return nil, err
	}
	core, err := client.New(ccfg, client.Deps{Store: st, Log: env.Log, Registerer: env.Registry})
	if err != nil {
		st.Close()
		return nil, err
	}
	return &service{core: core, st: st, socket: socket, env: env}, nil
}

// Run serves the API and runs the core until ctx ends, then closes the
// state.
func (s *service) Run(ctx context.Context) error {
	defer func() {
		s.core.Close()
		s.st.Close()
	}()
	ln, err := api.Listen(s.socket)
	if err != nil {
		return fmt.Errorf("local api: %w", err)
	}
	s.env.Log.Info("local API listening", "socket", s.socket)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return (&api.Server{Backend: s.core, Logger: s.env.Log}).Serve(ctx, ln)
	})
	g.Go(func() error { return s.core.Run(ctx) })
	return g.Wait()
}

// Ready backs /readyz: connected, with a document.
func (s *service) Ready() error { return s.core.Ready() }
