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
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/mix"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
	"github.com/chorus-mixnet/chorus/pki/epoch"
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

// service runs the node and, once it has stopped, releases it and wipes
// the keys.
type service struct {
	node     *mix.Node
	identity *keys.IdentityPrivateKey
	link     *keys.LinkPrivateKey
}

func (s *service) Run(ctx context.Context) error {
	err := s.node.Run(ctx)
	err = errors.Join(err, s.node.Close())
	s.identity.Zero()
	s.link.Zero()
	return err
}

func (s *service) Ready() error { return s.node.Ready() }

func build(f *fileConfig, env daemon.Env) (daemon.Service, error) {
	if err := daemon.EnsureDataDir(f.DataDir); err != nil {
		return nil, err
	}
	identity, err := keys.LoadOrCreateIdentity(f.identityKeyFile(), rand.Reader)
	if err != nil {
		return nil, err
	}
	link, err := keys.LoadOrCreateLink(f.linkKeyFile(), rand.Reader)
	if err != nil {
		identity.Zero()
		return nil, err
	}
	fail := func(err error) (daemon.Service, error) {
		identity.Zero()
		link.Zero()
		return nil, err
	}
	idText, _ := identity.Public().MarshalText()
	linkText, _ := link.Public().MarshalText()
	env.Log.Info("node keys", "name", f.Name, "identity_key", string(idText), "link_key", string(linkText))

	sched, err := epoch.New(f.Epoch.Genesis, f.Epoch.Period.Std(), nil)
	if err != nil {
		return fail(err)
	}
	dir, err := dirclient.New(dirclient.Config{
		Authorities: f.Authorities,
		Threshold:   f.Threshold,
		CacheDir:    f.documentCache(),
	}, nil, env.Log.With(slog.String("component", "dirclient")))
	if err != nil {
		return fail(err)
	}
	mc := f.mixConfig()
	mc.Identity, mc.LinkKey, mc.Schedule = identity, link, sched
	node, err := mix.New(mc, mix.Deps{
		Log:        env.Log,
		Registerer: env.Registry,
		Documents:  dir,
		Uploader:   dir,
	})
	if err != nil {
		return fail(err)
	}
	return &service{node: node, identity: identity, link: link}, nil
}
