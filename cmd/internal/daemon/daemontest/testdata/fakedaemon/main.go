// Command fakedaemon is a daemon for the tests of daemontest: it logs its
// name, serves the health listener, and stops on SIGTERM with exit 0, or
// with exit 1 if fail_on_stop is set.
package main

import (
	"context"
	"errors"
	"os"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
)

type config struct {
	daemon.Ops
	Name       string `toml:"name"`
	FailOnStop bool   `toml:"fail_on_stop"`
}

func (c *config) Validate() []error {
	errs := c.Ops.Validate()
	if c.Name == "" {
		errs = append(errs, daemon.Problemf("name", "is required"))
	}
	return errs
}

type service struct{ fail bool }

func (s service) Run(ctx context.Context) error {
	<-ctx.Done()
	if s.fail {
		return errors.New("told to fail")
	}
	return nil
}

func (service) Ready() error { return nil }

func main() {
	cfg := &config{Ops: daemon.DefaultOps("")}
	os.Exit(daemon.Main(daemon.Program{
		Name: "fakedaemon", Args: os.Args[1:], Stdout: os.Stdout, Stderr: os.Stderr, Config: cfg,
		Build: func(env daemon.Env) (daemon.Service, error) {
			env.Log.Info("serving", "name", cfg.Name)
			return service{fail: cfg.FailOnStop}, nil
		},
	}))
}
