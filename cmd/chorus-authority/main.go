// Command chorus-authority runs a Chorus directory authority (DESIGN §5.3):
// it collects the nodes' signed descriptors, votes with its peer authorities
// every epoch and publishes the signed consensus document.
//
//	chorus-authority -config /etc/chorus/chorus-authority.toml
//	chorus-authority -config FILE -validate   # list every config problem; exit 0 or 2
//	chorus-authority -version
//
// configs/chorus-authority.toml is an annotated example. The identity key is
// created in the data directory on first start; its public half, which the
// peers and the nodes list in their configs, is logged at start.
package main

import (
	"os"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/pki/authority"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg := defaultFileConfig()
	return daemon.Main(daemon.Program{
		Name:   "chorus-authority",
		Args:   args,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Config: cfg,
		Build: func(env daemon.Env) (daemon.Service, error) {
			acfg := cfg.authority()
			if err := daemon.EnsureDataDir(acfg.DataDir); err != nil {
				return nil, err
			}
			return authority.New(acfg, authority.Deps{Log: env.Log, Registry: env.Registry})
		},
	})
}
