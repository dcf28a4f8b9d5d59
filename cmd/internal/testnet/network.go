package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// Options configure a Network.
type Options struct {
	// Dir is the network's directory: binaries, configs, keys, state and
	// logs. Default "testnet".
	Dir string
	// Epoch is the epoch period of a new network; default one minute. A
	// restarted network keeps the period it was made with.
	Epoch time.Duration
	// Fresh discards a network already in Dir and makes a new one.
	Fresh bool
	// Source is the root of the Chorus module Build compiles; default the
	// module around the current directory (FindSource).
	Source string
	// Bin, if set, is a directory that already holds every program of
	// Binaries; Build then does nothing. The e2e tests build once and
	// share the binaries between networks.
	Bin string
	// Logf receives one line of progress at a time; nil discards.
	Logf func(format string, args ...any)
}

// DefaultEpoch is the epoch period of a new test network.
const DefaultEpoch = time.Minute

// Passphrase encrypts the test clients' state; chorusd reads it from
// CHORUS_PASSPHRASE. The testnet is for trying Chorus out on one machine:
// the passphrase protects nothing.
const Passphrase = "chorus testnet passphrase (not secret)"

// Network is a test network in a directory: the layout, the processes
// once started, and what is known about its state.
type Network struct {
	opts  Options
	dir   string // absolute
	bin   string
	st    *state
	sched *epoch.Schedule
	nodes []Node
	// reused reports that the directory held a network already.
	reused bool
	// authorities are the directory authorities as every node names them.
	authorities []dirclient.Authority

	mu    sync.Mutex
	procs map[string]*Process
	// began is when the first process was started.
	began time.Time
	// crashes receives the exit of every process that ends without being
	// told to.
	crashes chan Exit
	stopped bool
	// lock holds the directory's lock file (flock) from Open until Stop or
	// Abort.
	lock *os.File
}

// ErrNotTestnetDir is returned when Dir exists, is not empty and is not a
// test network's directory: the testnet never deletes or writes into a
// directory it did not make.
var ErrNotTestnetDir = errors.New("testnet: directory exists and is not a test network's")

// Open prepares the network in opts.Dir: a new one if the directory is
// missing or empty or opts.Fresh is set, else the one already there. It
// starts nothing.
func Open(opts Options) (*Network, error) {
	if opts.Dir == "" {
		opts.Dir = "testnet"
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	n := &Network{opts: opts, dir: dir, nodes: nodes(), procs: map[string]*Process{}, crashes: make(chan Exit, 64)}
	n.bin = filepath.Join(dir, "bin")
	if opts.Bin != "" {
		if n.bin, err = filepath.Abs(opts.Bin); err != nil {
			return nil, fmt.Errorf("testnet: %w", err)
		}
	}

	if l := len(n.SocketPath(Alice)) + len(".sock0123456789/"); l > maxSocketPath {
		return nil, fmt.Errorf("%w: %s", ErrDirTooLong, dir)
	}

	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	entries = slices.DeleteFunc(entries, func(e os.DirEntry) bool { return e.Name() == lockFile })
	if len(entries) > 0 && !exists(filepath.Join(dir, stateFile)) {
		return nil, fmt.Errorf("%w: %s", ErrNotTestnetDir, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	if n.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	switch {
	case len(entries) > 0 && opts.Fresh:
		// Only what the testnet writes is removed, and the binaries
		// are kept for the build cache's sake.
		for _, e := range entries {
			if e.Name() == "bin" {
				continue
			}
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				n.unlock()
				return nil, fmt.Errorf("testnet: remove the old network: %w", err)
			}
		}
	case len(entries) > 0:
		st, err := loadState(dir)
		if err == nil && opts.Epoch != 0 && opts.Epoch != st.period() {
			err = fmt.Errorf("%w: it runs %v epochs, not %v", ErrStaleDirectory, st.period(), opts.Epoch)
		}
		if err != nil {
			n.unlock()
			return nil, err
		}
		n.st, n.reused = st, true
	}
	if n.st == nil {
		period := opts.Epoch
		if period == 0 {
			period = DefaultEpoch
		}
		if period < 2*time.Second {
			n.unlock()
			return nil, fmt.Errorf("testnet: epoch %v is shorter than the authorities' minimum of 2s", period)
		}
		n.st = newState(time.Now(), period)
	}
	if n.sched, err = epoch.New(n.st.Genesis, n.st.period(), nil); err != nil {
		n.unlock()
		return nil, fmt.Errorf("testnet: %w", err)
	}
	for _, d := range []string{filepath.Join(dir, "configs"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			n.unlock()
			return nil, fmt.Errorf("testnet: %w", err)
		}
	}
	if err := n.st.save(dir); err != nil {
		n.unlock()
		return nil, fmt.Errorf("testnet: %w", err)
	}
	return n, nil
}

// lockFile is the file in the directory that a running network holds
// locked, so two runs never share (or -fresh removes) one directory.
const lockFile = "testnet.lock"

// ErrBusy is returned by Open when another process runs the network in
// the directory.
var ErrBusy = errors.New("testnet: another chorus-testnet is running the network in this directory")

// maxSocketPath is the longest path a Unix socket may be bound to.
const maxSocketPath = 107

// ErrDirTooLong is returned by Open when the directory's path leaves no
// room for chorusd's API socket within maxSocketPath.
var ErrDirTooLong = errors.New("testnet: the directory's path is too long for chorusd's API socket (a Unix socket path has at most 107 bytes); choose a shorter one")

// lockDir takes the directory's lock, or fails with ErrBusy.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrBusy, dir)
		}
		return nil, fmt.Errorf("testnet: lock %s: %w", dir, err)
	}
	return f, nil
}

// unlock releases the directory's lock.
func (n *Network) unlock() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lock != nil {
		n.lock.Close()
		n.lock = nil
	}
}

// Dir returns the network's directory.
func (n *Network) Dir() string { return n.dir }

// Reused reports whether Open found a network in the directory to restart.
func (n *Network) Reused() bool { return n.reused }

// Schedule returns the network's epoch schedule.
func (n *Network) Schedule() *epoch.Schedule { return n.sched }

// Nodes returns every process of the layout in start order.
func (n *Network) Nodes() []Node { return slices.Clone(n.nodes) }

func (n *Network) logf(format string, args ...any) { n.opts.Logf(format, args...) }

// Build compiles the programs into the network's bin directory, unless
// Options.Bin names prebuilt ones.
func (n *Network) Build(ctx context.Context) error {
	if n.opts.Bin != "" {
		for _, b := range Binaries {
			if !exists(filepath.Join(n.bin, b)) {
				return fmt.Errorf("testnet: %s is not in %s", b, n.bin)
			}
		}
		return nil
	}
	src := n.opts.Source
	if src == "" {
		var err error
		if src, err = FindSource(ctx); err != nil {
			return err
		}
	}
	return Build(ctx, src, n.bin)
}

// path returns a path inside the network's directory.
func (n *Network) path(elem ...string) string {
	return filepath.Join(append([]string{n.dir}, elem...)...)
}

func (n *Network) dataDir(name string) string    { return n.path(name) }
func (n *Network) configPath(name string) string { return n.path("configs", name+".toml") }
func (n *Network) logPath(name string) string    { return n.path("logs", name+".log") }

// LogDir returns the directory of the processes' logs.
func (n *Network) LogDir() string { return n.path("logs") }

// LogPath returns the log file of the named process.
func (n *Network) LogPath(name string) string { return n.logPath(name) }

func (n *Network) binary(r Role) string { return filepath.Join(n.bin, r.binary()) }

// metricsAddr returns where a process serves /metrics, /healthz and
// /readyz.
func (n *Network) metricsAddr(name string) string { return n.st.addr(name + ".metrics") }

// portKeys lists every port the layout needs.
func (n *Network) portKeys() []string {
	var ks []string
	for _, nd := range n.nodes {
		ks = append(ks, nd.Name+".metrics")
		if nd.Role != RoleClient {
			ks = append(ks, nd.Name+".listen")
		}
	}
	return ks
}

// WriteConfigs allocates the ports a new network needs, creates the
// authorities' identity keys (so every config can name them before any
// daemon ran) and writes every daemon's config, each checked with the
// daemon's own -validate. A restart rewrites the configs from the same
// state, so they follow changes to the testnet's code; keys and data are
// kept.
func (n *Network) WriteConfigs(ctx context.Context) error {
	if !n.reused {
		// A new network's first epoch starts now, not when Open ran
		// (a first build takes a while).
		n.st.Genesis = newState(time.Now(), n.st.period()).Genesis
		sched, err := epoch.New(n.st.Genesis, n.st.period(), nil)
		if err != nil {
			return fmt.Errorf("testnet: %w", err)
		}
		n.sched = sched
	}
	if err := n.st.allocatePorts(n.portKeys()); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	if err := n.st.save(n.dir); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	n.authorities = n.authorities[:0]
	for _, nd := range n.nodes {
		if nd.Role != RoleAuthority {
			continue
		}
		if err := os.MkdirAll(n.dataDir(nd.Name), 0o700); err != nil {
			return fmt.Errorf("testnet: %w", err)
		}
		k, err := authorityKey(n.dataDir(nd.Name))
		if err != nil {
			return fmt.Errorf("testnet: %s: %w", nd.Name, err)
		}
		n.authorities = append(n.authorities, dirclient.Authority{Name: nd.Name, IdentityKey: k, Address: n.st.addr(nd.Name + ".listen")})
	}
	for _, nd := range n.nodes {
		var err error
		switch nd.Role {
		case RoleAuthority:
			err = n.writeAuthority(nd)
		case RoleMix, RoleProvider:
			err = n.writeNode(nd)
		case RoleClient:
			err = n.writeClient(nd)
		}
		if err != nil {
			return fmt.Errorf("testnet: config of %s: %w", nd.Name, err)
		}
	}
	return n.validateConfigs(ctx)
}

// validateConfigs runs every daemon's -validate on its config.
func (n *Network) validateConfigs(ctx context.Context) error {
	var errs []error
	for _, nd := range n.nodes {
		out, err := exec.CommandContext(ctx, n.binary(nd.Role), "-config", n.configPath(nd.Name), "-validate").CombinedOutput()
		if err != nil {
			errs = append(errs, fmt.Errorf("testnet: %s refuses the config written for %s: %w\n%s", nd.Role.binary(), nd.Name, err, strings.TrimSpace(string(out))))
		}
	}
	return errors.Join(errs...)
}

func (n *Network) writeAuthority(nd Node) error {
	var peers []dirclient.Authority
	for _, a := range n.authorities {
		if a.Name != nd.Name {
			peers = append(peers, a)
		}
	}
	return writeTOML(n.configPath(nd.Name), "chorus-authority "+nd.Name+" of the test network in "+n.dir, authorityFile{
		DataDir:          n.dataDir(nd.Name),
		Listen:           n.st.addr(nd.Name + ".listen"),
		Threshold:        threshold,
		ShutdownTimeout:  shutdownTimeoutFile,
		Layers:           numLayers,
		MinMixesPerLayer: 1,
		Epoch:            epochSection{Genesis: n.st.Genesis, Period: daemonDuration(n.st.period())},
		Parameters:       parametersFile(Parameters()),
		Peers:            peers,
		Logging:          logging(),
		Metrics:          metricsSection(n.metricsAddr(nd.Name)),
	})
}

// Start starts every process, the authorities first. It returns once all
// are started, not once they are ready (WaitReady).
func (n *Network) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.procs) > 0 {
		return errors.New("testnet: already started")
	}
	if err := n.st.checkPortsFree(); err != nil {
		return err
	}
	n.began = time.Now()
	for _, nd := range n.nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := n.startLocked(nd)
		if err != nil {
			return err
		}
		n.logf("started %-9s (%s, pid %d)", nd.Name, nd.Role.binary(), p.PID())
	}
	return nil
}

// startLocked starts one process and watches it. n.mu is held.
func (n *Network) startLocked(nd Node) (*Process, error) {
	env := os.Environ()
	if nd.Role == RoleClient {
		env = append(env, "CHORUS_PASSPHRASE="+Passphrase)
	}
	p, err := startProcess(nd, n.binary(nd.Role), []string{"-config", n.configPath(nd.Name)}, env, n.dir, n.logPath(nd.Name))
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	n.procs[nd.Name] = p
	go n.watch(p)
	return p, nil
}

// watch reports a process that ends without being told to.
func (n *Network) watch(p *Process) {
	<-p.Done()
	p.mu.Lock()
	told := p.terminated || p.killed
	p.mu.Unlock()
	if told {
		return
	}
	e := p.exit()
	select {
	case n.crashes <- e:
	default:
	}
}

// Crashes delivers the exit of every process that ends on its own (not by
// Stop, Kill or Restart).
func (n *Network) Crashes() <-chan Exit { return n.crashes }

// Processes returns the processes started so far, in layout order.
func (n *Network) Processes() []*Process { return n.running() }

// Process returns the named process, nil if it was never started.
func (n *Network) Process(name string) *Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.procs[name]
}

// Since returns the time since the first process was started.
func (n *Network) Since() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.began.IsZero() {
		return 0
	}
	return time.Since(n.began)
}

// Kill kills the named process with SIGKILL (a crash, for the tests).
func (n *Network) Kill(name string) error {
	p := n.Process(name)
	if p == nil {
		return fmt.Errorf("testnet: no process %q", name)
	}
	p.kill()
	<-p.Done()
	return nil
}

// StopProcess stops the named process gracefully (SIGTERM, then SIGKILL
// after the bound) and returns how it ended.
func (n *Network) StopProcess(name string) (Exit, error) {
	p := n.Process(name)
	if p == nil {
		return Exit{}, fmt.Errorf("testnet: no process %q", name)
	}
	return p.stop(stopGrace), nil
}

// StartProcess starts the named process again, with the same config and
// data, after it was stopped or killed.
func (n *Network) StartProcess(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.procs[name]
	if p == nil {
		return fmt.Errorf("testnet: no process %q", name)
	}
	if p.Running() {
		return fmt.Errorf("testnet: %s is running", name)
	}
	if n.stopped {
		return errors.New("testnet: stopped")
	}
	_, err := n.startLocked(p.Node)
	return err
}

// Restart stops the named process gracefully and starts it again. It
// returns how the old process ended.
func (n *Network) Restart(name string) (Exit, error) {
	e, err := n.StopProcess(name)
	if err != nil {
		return e, err
	}
	return e, n.StartProcess(name)
}

// stopGrace is how long Stop waits after SIGTERM before SIGKILL: the
// daemons' own drain bound plus time for a loaded machine.
const stopGrace = shutdownTimeout + 10*time.Second

// stopOrder groups the roles in the order they are stopped: the clients
// first (they flush their state), then the nodes, then the authorities
// the nodes were fetching from.
var stopOrder = [][]Role{{RoleClient}, {RoleMix, RoleProvider}, {RoleAuthority}}

// Stop stops every process: SIGTERM, then SIGKILL for any still running
// after the bound. Groups are stopped in turn (clients, nodes,
// authorities), each group's processes at once. It returns how every
// process ever started ended, in layout order: a process killed earlier
// with Kill is reported with Killed set.
func (n *Network) Stop() []Exit {
	n.mu.Lock()
	n.stopped = true
	procs := make(map[string]*Process, len(n.procs))
	for k, v := range n.procs {
		procs[k] = v
	}
	n.mu.Unlock()
	exits := make(map[string]Exit, len(procs))
	var mu sync.Mutex
	for _, group := range stopOrder {
		var wg sync.WaitGroup
		for _, nd := range n.nodes {
			p := procs[nd.Name]
			if p == nil || !slices.Contains(group, nd.Role) {
				continue
			}
			wg.Go(func() {
				var e Exit
				if p.Running() {
					e = p.stop(stopGrace)
				} else {
					e = p.exit()
				}
				mu.Lock()
				exits[nd.Name] = e
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	n.unlock()
	var out []Exit
	for _, nd := range n.nodes {
		if e, ok := exits[nd.Name]; ok {
			out = append(out, e)
		}
	}
	return out
}

// Abort kills every process at once (a second Ctrl-C, a test's cleanup)
// and releases the directory.
func (n *Network) Abort() {
	n.mu.Lock()
	n.stopped = true
	procs := make([]*Process, 0, len(n.procs))
	for _, p := range n.procs {
		procs = append(procs, p)
	}
	n.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	for _, p := range procs {
		<-p.Done()
	}
	n.unlock()
}

// BadExits returns the exits that were neither clean nor a Kill.
func BadExits(exits []Exit) []Exit {
	var bad []Exit
	for _, e := range exits {
		if !e.expected() {
			bad = append(bad, e)
		}
	}
	return bad
}

// authorityKeys returns the authorities' identity keys.
func (n *Network) authorityKeys() []keys.IdentityPublicKey {
	ks := make([]keys.IdentityPublicKey, len(n.authorities))
	for i, a := range n.authorities {
		ks[i] = a.IdentityKey
	}
	return ks
}
