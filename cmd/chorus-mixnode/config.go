package main

import (
	"github.com/chorus-mixnet/chorus/cmd/internal/daemon"
	"github.com/chorus-mixnet/chorus/cmd/internal/nodeconfig"
	"github.com/chorus-mixnet/chorus/pki"
)

// fileConfig is the TOML file of chorus-mixnode: the node's settings, the
// epoch schedule and the directory authorities (nodeconfig.Node), and the
// operational sections of every daemon.
type fileConfig struct {
	daemon.Ops
	nodeconfig.Node
}

// Defaults for the keys of the file (see configs/chorus-mixnode.toml).
const (
	DefaultMetricsAddress = "127.0.0.1:29486"
	DefaultListen         = "0.0.0.0:29485"
)

// defaultFileConfig holds every default, in one place.
func defaultFileConfig() *fileConfig {
	return &fileConfig{
		Ops:  daemon.DefaultOps(DefaultMetricsAddress),
		Node: nodeconfig.Default(DefaultListen),
	}
}

// Validate lists every problem in the file. It is pure.
func (f *fileConfig) Validate() []error {
	return append(f.Ops.Validate(), f.Node.Validate(pki.RoleMix, f.ShutdownTimeout)...)
}
