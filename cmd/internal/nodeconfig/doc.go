// Package nodeconfig is the part of the config files of chorus-mixnode
// and chorus-provider that is the same for both, and what it becomes when
// the daemon starts: the node's name, data directory and addresses, the
// epoch schedule, the directory authorities and the pipeline's limits.
//
// A node daemon's file type embeds daemon.Ops and Node. Both are anonymous
// fields without a toml tag, which BurntSushi/toml flattens the way
// encoding/json does, so their keys stand at the top level of the file and
// daemon.LoadConfig names an unknown key the same wherever it is
// ("colour", "epoch.periodd", "authorities.adress"):
//
//	type fileConfig struct {
//		daemon.Ops
//		nodeconfig.Node
//		Mailboxes mailboxesSection `toml:"mailboxes"` // the role's own sections
//	}
//
//	func (f *fileConfig) Validate() []error {
//		errs := append(f.Ops.Validate(), f.Node.Validate(pki.RoleProvider, f.ShutdownTimeout)...)
//		// ... the role's own checks
//		return errs
//	}
//
// Defaults come from Default, in the same one step as the rest of the
// file's (STYLE 11). Validate is pure and names every problem by its key.
//
// At start, Open makes the data directory, loads the node's identity and
// link keys from it (creating them on first start), makes the epoch
// schedule and the directory client, and returns them as Parts: a
// mix.Config ready for mix.New or provider.New, and the mix.Deps that go
// with it. Parts owns the private keys until the node is running: a
// main that fails before then calls Wipe, and Service wipes them once the
// node has stopped.
package nodeconfig
