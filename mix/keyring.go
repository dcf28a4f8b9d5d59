package mix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/replay"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// keyRing holds the node's Sphinx keys by epoch: generated three epochs
// ahead (a descriptor uploaded in epoch E carries E+1..E+3), kept one
// epoch after their own for late packets, then erased with their replay
// filter. Keys live in files in DataDir/sphinx so a restarted node keeps
// the keys it published.
type keyRing struct {
	dir    string
	sched  *epoch.Schedule
	rand   io.Reader
	replay *replay.Set
	log    *slog.Logger

	mu   sync.RWMutex
	keys map[uint64]*keys.SphinxPrivateKey
}

const (
	keysAhead  = 3 // epochs after the current one with a key
	keysBehind = 1 // epochs before the current one whose key is kept
)

func openKeyRing(cfg Config, deps Deps, rand io.Reader, rs *replay.Set, log *slog.Logger) (*keyRing, error) {
	r := &keyRing{
		dir:    filepath.Join(cfg.DataDir, "sphinx"),
		sched:  cfg.Schedule,
		rand:   rand,
		replay: rs,
		log:    log,
		keys:   make(map[uint64]*keys.SphinxPrivateKey),
	}
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return nil, fmt.Errorf("open sphinx keys: %w", err)
	}
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("open sphinx keys: %w", err)
	}
	for _, ent := range ents {
		e, ok := parseKeyName(ent.Name())
		if !ok {
			continue
		}
		k, err := keys.LoadSphinx(filepath.Join(r.dir, ent.Name()))
		if err != nil {
			r.close()
			return nil, fmt.Errorf("open sphinx keys: %w", err)
		}
		r.keys[e] = k
	}
	if err := r.rotate(r.sched.Now()); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func keyName(e uint64) string { return "epoch-" + strconv.FormatUint(e, 10) + ".key" }

func parseKeyName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, "epoch-")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".key")
	if !ok {
		return 0, false
	}
	e, err := strconv.ParseUint(s, 10, 64)
	return e, err == nil
}

// Key implements hop.KeySource.
func (r *keyRing) Key(e uint64) (*keys.SphinxPrivateKey, bool) {
	r.mu.RLock()
	k, ok := r.keys[e]
	r.mu.RUnlock()
	return k, ok
}

// Public returns the public key for epoch e, if held.
func (r *keyRing) Public(e uint64) (keys.SphinxPublicKey, bool) {
	k, ok := r.Key(e)
	if !ok {
		return keys.SphinxPublicKey{}, false
	}
	return k.Public(), true
}

// rotate makes sure keys exist for now..now+keysAhead and retires those
// before now-keysBehind.
func (r *keyRing) rotate(now uint64) error {
	for e := now; e <= now+keysAhead; e++ {
		if _, ok := r.Key(e); ok {
			continue
		}
		k, err := keys.GenerateSphinxKey(r.rand)
		if err != nil {
			return fmt.Errorf("generate sphinx key: %w", err)
		}
		if err := keys.SaveSphinx(filepath.Join(r.dir, keyName(e)), k); err != nil {
			k.Zero()
			return fmt.Errorf("save sphinx key: %w", err)
		}
		r.mu.Lock()
		r.keys[e] = k
		r.mu.Unlock()
	}
	// Create the replay filters of this epoch and the next ahead of
	// need: creating one takes a while, and a worker should not wait.
	for e := now; e <= now+1; e++ {
		if _, err := r.replay.Filter(e); err != nil {
			return fmt.Errorf("create replay filter: %w", err)
		}
	}
	if now < keysBehind+1 {
		return nil
	}
	floor := now - keysBehind - 1 // retire this epoch and all before it
	var gone []uint64
	r.mu.Lock()
	for e, k := range r.keys {
		if e <= floor {
			delete(r.keys, e)
			k.Zero()
			gone = append(gone, e)
		}
	}
	r.mu.Unlock()
	var errs []error
	for _, e := range gone {
		errs = append(errs, keys.Erase(filepath.Join(r.dir, keyName(e))))
	}
	if len(gone) > 0 {
		errs = append(errs, r.replay.Retire(floor))
	}
	return errors.Join(errs...)
}

// run rotates at each epoch boundary until ctx ends.
func (r *keyRing) run(ctx context.Context) error {
	for {
		if !sleepCtx(ctx, r.sched.UntilNext()) {
			return nil
		}
		if err := r.rotate(r.sched.Now()); err != nil {
			r.log.Error("mix: sphinx key rotation", "err", err)
		}
	}
}

// close wipes the keys held in memory; the files stay.
func (r *keyRing) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for e, k := range r.keys {
		k.Zero()
		delete(r.keys, e)
	}
	return nil
}
