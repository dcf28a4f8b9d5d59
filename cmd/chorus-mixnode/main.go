// Command chorus-mixnode runs a Chorus mix node (DESIGN §2, §5.4): it
// accepts links from the nodes of the previous layer, removes its layer of
// each Sphinx packet, holds the packet for the delay its sender chose and
// forwards it to the next layer; it publishes its descriptor to the
// directory authorities every epoch and sends its own loop cover traffic.
//
//	chorus-mixnode -config /etc/chorus/chorus-mixnode.toml
//	chorus-mixnode -config FILE -validate   # list every config problem; exit 0 or 2
//	chorus-mixnode -version
//
// configs/chorus-mixnode.toml is an annotated example. On first start the
// node creates, in its data directory, its Ed25519 identity key
// (identity.key) and its X25519 link key (link.key); their public halves
// are logged at start (the authorities' allowed_nodes lists the identity
// key). The Sphinx keys (sphinx/), the replay filters (replay/) and the
// cached documents (documents/) live there too.
//
// SIGINT or SIGTERM drains the node: it stops accepting links and packets,
// lets the packets it holds leave (for at most drain_timeout), and exits;
// a second signal exits at once.
package main

import (
	"os"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/mix"
	"github.com/chorus-mixnet/chorus/pki"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg := defaultFileConfig()
	return daemon.Main(daemon.Program{
		Name:   "chorus-mixnode",
		Args:   args,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Config: cfg,
		Build:  func(env daemon.Env) (daemon.Service, error) { return build(cfg, env) },
	})
}

func build(f *fileConfig, env daemon.Env) (daemon.Service, error) {
	parts, err := f.Open(pki.RoleMix, env.Log)
	if err != nil {
		return nil, err
	}
	node, err := mix.New(parts.Config, parts.Deps(env.Log, env.Registry))
	if err != nil {
		parts.Wipe()
		return nil, err
	}
	return parts.Service(node), nil
}
