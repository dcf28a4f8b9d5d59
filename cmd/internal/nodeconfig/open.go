package nodeconfig

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/mix"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// Parts is what Open makes of the node's part of the file.
type Parts struct {
	// Config is the pipeline's config (MixConfig) with the node's keys and
	// the epoch schedule filled in.
	Config mix.Config
	// Directory fetches the documents and uploads the node's descriptors.
	Directory *dirclient.Client
}

// keysMessage is the start-up log line that shows a node's public keys.
var keysMessage = map[pki.Role]string{
	pki.RoleMix:      "node keys",
	pki.RoleProvider: "provider keys",
}

// Open makes the data directory (daemon.EnsureDataDir), loads the node's
// identity and link keys from it, creating them on first start, logs
// their public halves, and makes the epoch schedule and the directory
// client for a node of role. If it fails, it has wiped the keys it
// loaded; if it succeeds, the caller owns them (see Parts.Wipe).
func (n *Node) Open(role pki.Role, log *slog.Logger) (*Parts, error) {
	checkRole(role)
	if err := daemon.EnsureDataDir(n.DataDir); err != nil {
		return nil, err
	}
	identity, err := keys.LoadOrCreateIdentity(n.IdentityKeyFile(), rand.Reader)
	if err != nil {
		return nil, err
	}
	link, err := keys.LoadOrCreateLink(n.LinkKeyFile(), rand.Reader)
	if err != nil {
		identity.Zero()
		return nil, err
	}
	p := &Parts{Config: n.MixConfig(role)}
	p.Config.Identity, p.Config.LinkKey = identity, link
	idText, _ := identity.Public().MarshalText()
	linkText, _ := link.Public().MarshalText()
	log.Info(keysMessage[role], "name", n.Name, "identity_key", string(idText), "link_key", string(linkText))

	if p.Config.Schedule, err = epoch.New(n.Epoch.Genesis, n.Epoch.Period.Std(), nil); err != nil {
		p.Wipe()
		return nil, err
	}
	if p.Directory, err = dirclient.New(n.DirConfig(), nil, log.With(slog.String("component", "dirclient"))); err != nil {
		p.Wipe()
		return nil, err
	}
	return p, nil
}

// Deps are the node's collaborators: the logger and the metrics registry
// given, and the directory as its document source and uploader.
func (p *Parts) Deps(log *slog.Logger, reg prometheus.Registerer) mix.Deps {
	return mix.Deps{
		Log:        log,
		Registerer: reg,
		Documents:  p.Directory,
		Uploader:   p.Directory,
	}
}

// Wipe zeroes the node's private keys. Call it if the node is never
// built; Service calls it once the node has stopped.
func (p *Parts) Wipe() {
	p.Config.Identity.Zero()
	p.Config.LinkKey.Zero()
}

// Runner is a node built from Parts: a *mix.Node or a *provider.Provider.
type Runner interface {
	Run(ctx context.Context) error
	Close() error
	Ready() error
}

// Service returns r as the daemon.Service main runs: its Run runs r and,
// once r has stopped, closes it and wipes the keys.
func (p *Parts) Service(r Runner) daemon.Service {
	return &service{r: r, parts: p}
}

type service struct {
	r     Runner
	parts *Parts
}

func (s *service) Run(ctx context.Context) error {
	err := s.r.Run(ctx)
	err = errors.Join(err, s.r.Close())
	s.parts.Wipe()
	return err
}

func (s *service) Ready() error { return s.r.Ready() }
