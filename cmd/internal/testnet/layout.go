package testnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Role is what a process of the network is.
type Role string

// The roles, in the order the network starts them.
const (
	RoleAuthority Role = "authority"
	RoleMix       Role = "mix"
	RoleProvider  Role = "provider"
	RoleClient    Role = "client"
)

// binary returns the name of the program that plays r.
func (r Role) binary() string {
	switch r {
	case RoleAuthority:
		return "chorus-authority"
	case RoleMix:
		return "chorus-mixnode"
	case RoleProvider:
		return "chorus-provider"
	case RoleClient:
		return "chorusd"
	}
	panic("testnet: unknown role " + string(r))
}

// Binaries are the programs Build makes: every daemon and the chorus CLI.
var Binaries = []string{"chorus-authority", "chorus-mixnode", "chorus-provider", "chorusd", "chorus"}

// The shape of the network (issue 8): three authorities with threshold
// two, six mixes for three layers, two providers, and the two users.
const (
	numAuthorities = 3
	threshold      = 2
	numMixes       = 6
	numLayers      = 3
	numProviders   = 2
)

// Node is one process of the network as the layout names it.
type Node struct {
	Name string
	Role Role
	// Provider is a client's provider (a node name); empty otherwise.
	Provider string
}

// Alice and Bob are the two users: alice on the first provider, bob on the
// second.
const (
	Alice = "alice"
	Bob   = "bob"
)

// nodes returns every process of the network in start order: the
// authorities first (the others need them), then the mixes and providers,
// then the clients.
func nodes() []Node {
	var ns []Node
	for i := 1; i <= numAuthorities; i++ {
		ns = append(ns, Node{Name: "auth" + strconv.Itoa(i), Role: RoleAuthority})
	}
	for i := 1; i <= numMixes; i++ {
		ns = append(ns, Node{Name: "mix" + strconv.Itoa(i), Role: RoleMix})
	}
	for i := 1; i <= numProviders; i++ {
		ns = append(ns, Node{Name: "provider" + strconv.Itoa(i), Role: RoleProvider})
	}
	ns = append(ns,
		Node{Name: Alice, Role: RoleClient, Provider: "provider1"},
		Node{Name: Bob, Role: RoleClient, Provider: "provider2"})
	return ns
}

// stateFile is the name, in the network's directory, of the file that
// remembers what a restart must reuse.
const stateFile = "testnet.json"

// stateVersion changes when a directory of an older layout can no longer
// be restarted; Open then asks for -fresh.
const stateVersion = 1

// state is what a restart reuses: the epoch schedule (the authorities'
// stored rounds are numbered by it) and every port (the configs and the
// documents name them).
type state struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	// Genesis and Period are the epoch schedule of every node.
	Genesis time.Time `json:"genesis"`
	Period  string    `json:"period"`
	// Ports maps "node.purpose" (e.g. "auth1.listen") to a TCP port on
	// 127.0.0.1.
	Ports map[string]int `json:"ports"`
}

func (s *state) period() time.Duration {
	d, _ := time.ParseDuration(s.Period)
	return d
}

// ErrStaleDirectory is returned when a directory holds a network of an
// older layout, or of a different epoch period than asked for.
var ErrStaleDirectory = errors.New("testnet: directory holds an incompatible network (run with -fresh)")

func loadState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read %s: %w", stateFile, err)
	}
	if s.Version != stateVersion || s.period() <= 0 || s.Genesis.IsZero() {
		return nil, fmt.Errorf("%w: %s is of layout %d", ErrStaleDirectory, stateFile, s.Version)
	}
	if s.Ports == nil {
		s.Ports = map[string]int{}
	}
	return &s, nil
}

func (s *state) save(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", stateFile, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("write %s: %w", stateFile, err)
	}
	return nil
}

// newState lays out a fresh network whose first epoch starts now, so the
// first document is made at the start of an epoch, with the whole epoch
// ahead for the next round. Epoch 0 is avoided: it also holds every time
// before genesis.
func newState(now time.Time, period time.Duration) *state {
	start := now.Truncate(time.Second)
	return &state{
		Version: stateVersion,
		Created: now.UTC().Truncate(time.Second),
		Genesis: start.Add(-period).UTC(),
		Period:  period.String(),
		Ports:   map[string]int{},
	}
}

// allocatePorts gives every key a free port on 127.0.0.1 and records it.
// Keys that already have one keep it. Ports are picked below the kernel's
// ephemeral range when it can be read, so an outgoing connection of some
// other program cannot take a port between its choice here and the
// daemon's bind.
func (s *state) allocatePorts(keys []string) error {
	lo, hi := 20000, 32000
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if eph, err := strconv.Atoi(f[0]); err == nil && eph > 2048 {
				hi = eph
				lo = max(1024, min(lo, hi-8000))
			}
		}
	}
	taken := map[int]bool{}
	for _, p := range s.Ports {
		taken[p] = true
	}
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for _, k := range keys {
		if _, ok := s.Ports[k]; ok {
			continue
		}
		port := 0
		for try := 0; try < 200 && port == 0; try++ {
			p := lo + rand.IntN(hi-lo)
			if taken[p] {
				continue
			}
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				continue
			}
			held = append(held, l)
			port = p
		}
		if port == 0 {
			// Fall back to a kernel-chosen port.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("allocate a port: %w", err)
			}
			held = append(held, l)
			port = l.Addr().(*net.TCPAddr).Port
		}
		taken[port] = true
		s.Ports[k] = port
	}
	return nil
}

// checkPortsFree reports the ports of a restarted network that something
// else now holds: usually processes of an earlier run that are still up.
func (s *state) checkPortsFree() error {
	var busy []string
	for k, p := range s.Ports {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			busy = append(busy, fmt.Sprintf("%d (%s)", p, k))
			continue
		}
		l.Close()
	}
	if len(busy) > 0 {
		slices.Sort(busy)
		return fmt.Errorf("%w: %s", ErrPortsBusy, strings.Join(busy, ", "))
	}
	return nil
}

// ErrPortsBusy is returned by Start when a port of the network is taken:
// an earlier run's processes are probably still running.
var ErrPortsBusy = errors.New("testnet: ports in use (is an earlier run of this network still up?)")

// addr returns "127.0.0.1:port" for a port key.
func (s *state) addr(key string) string {
	p, ok := s.Ports[key]
	if !ok {
		panic("testnet: no port allocated for " + key)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
