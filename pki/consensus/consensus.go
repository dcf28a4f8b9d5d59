package consensus

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"golang.org/x/crypto/blake2b"
)

// Errors from Compute. A failure to reach consensus wraps one of them.
var (
	// ErrConfig: the Config is unusable, or the agreed geometry does not
	// fit the configured number of layers.
	ErrConfig = errors.New("bad consensus configuration")
	// ErrNoQuorum: fewer valid votes for the epoch than the threshold.
	ErrNoQuorum = errors.New("too few valid votes")
	// ErrNoAgreement: no geometry, or no set of parameters, was proposed
	// identically by at least the threshold of votes.
	ErrNoAgreement = errors.New("no majority")
	// ErrNoSharedRandom: fewer valid reveals matching their commits than
	// the threshold.
	ErrNoSharedRandom = errors.New("too few valid reveals")
	// ErrTooFewNodes: the agreed nodes do not make a usable network; the
	// error is a *TooFewNodesError.
	ErrTooFewNodes = errors.New("too few nodes")
)

// TooFewNodesError says how far the agreed nodes fall short of a usable
// network: at least one provider and Layers × MinMixesPerLayer mixes.
type TooFewNodesError struct {
	Providers, Mixes int
	NeedMixes        int
}

func (e *TooFewNodesError) Error() string {
	return fmt.Sprintf("consensus: %v: %d providers (need 1), %d mixes (need %d)", ErrTooFewNodes, e.Providers, e.Mixes, e.NeedMixes)
}

// Unwrap makes errors.Is(err, ErrTooFewNodes) hold.
func (e *TooFewNodesError) Unwrap() error { return ErrTooFewNodes }

// Config is the consensus configuration, the same at every authority.
type Config struct {
	// Authorities are the identity keys of all configured authorities,
	// in any order.
	Authorities []keys.IdentityPublicKey
	// Threshold is how many authorities must agree on anything: votes
	// needed, votes carrying a descriptor, votes proposing the geometry and
	// parameters, reveals. It must be a majority of Authorities.
	Threshold int
	// Layers is the number of mix layers.
	Layers int
	// MinMixesPerLayer is the fewest mixes a layer may have.
	MinMixesPerLayer int
}

// Validate checks the configuration. The error wraps ErrConfig.
func (c *Config) Validate() error {
	_, err := c.authorities()
	return err
}

// authorities validates c and returns the authority keys sorted by their
// bytes, so that nothing depends on the configured order.
func (c *Config) authorities() ([]keys.IdentityPublicKey, error) {
	var set []keys.IdentityPublicKey
	for _, a := range c.Authorities {
		if a.IsZero() {
			return nil, fmt.Errorf("consensus: validate config: %w: zero authority key", ErrConfig)
		}
		if slices.ContainsFunc(set, a.Equal) {
			return nil, fmt.Errorf("consensus: validate config: %w: authority %v listed twice", ErrConfig, a)
		}
		set = append(set, a)
	}
	switch {
	case len(set) == 0:
		return nil, fmt.Errorf("consensus: validate config: %w: no authorities", ErrConfig)
	case c.Threshold > len(set) || c.Threshold <= len(set)/2:
		return nil, fmt.Errorf("consensus: validate config: %w: threshold %d is not a majority of %d authorities", ErrConfig, c.Threshold, len(set))
	case c.Layers < 1 || c.Layers > pki.MaxLayers:
		return nil, fmt.Errorf("consensus: validate config: %w: %d layers, want 1 to %d", ErrConfig, c.Layers, pki.MaxLayers)
	case c.MinMixesPerLayer < 1:
		return nil, fmt.Errorf("consensus: validate config: %w: minimum of %d mixes per layer", ErrConfig, c.MinMixesPerLayer)
	case c.Layers*c.MinMixesPerLayer+1 > pki.MaxNodes:
		return nil, fmt.Errorf("consensus: validate config: %w: %d layers of at least %d mixes exceed %d nodes", ErrConfig, c.Layers, c.MinMixesPerLayer, pki.MaxNodes)
	}
	slices.SortFunc(set, compareKeys)
	return set, nil
}

func compareKeys(a, b keys.IdentityPublicKey) int {
	x, y := a.Array(), b.Array()
	return bytes.Compare(x[:], y[:])
}

// Result is a computed consensus and a report of how it was reached.
type Result struct {
	Document *pki.Document
	// Voters and Revealers are the authorities whose vote and reveal
	// counted, sorted by key.
	Voters, Revealers []keys.IdentityPublicKey
	// Ignored lists the votes and reveals that did not count, and why.
	Ignored []Ignored
	// Excluded lists nodes that a majority voted for but that were left
	// out because they conflict with another node.
	Excluded []Excluded
	// Moved counts mixes that were in the prior layer assignment and had
	// to change layer to keep the layers balanced.
	Moved int
}

// Ignored is a vote or reveal that did not count.
type Ignored struct {
	Kind      string                 // "vote" or "reveal"
	Authority keys.IdentityPublicKey // zero if the input could not be attributed
	Err       error                  // wraps a pki sentinel or ErrEquivocation
}

// Excluded is a node left out of the document despite a majority.
type Excluded struct {
	ID     pki.NodeID
	Name   string
	Reason string
}

// ErrEquivocation marks an authority that signed two different votes for
// one epoch; none of its votes count.
var ErrEquivocation = errors.New("equivocation")

type counted struct {
	authority keys.IdentityPublicKey
	body      []byte
	vote      *pki.Vote
}

// Compute is the consensus function: from the signed votes and reveals the
// authorities exchanged for epoch, it derives the document every honest
// authority derives from the same inputs, byte for byte. It is pure and
// deterministic: the order of votes, reveals and configured authorities,
// and repeated inputs, change nothing.
//
// Rules, where "a majority" means at least cfg.Threshold distinct
// authorities:
//
//   - A vote counts if it verifies, is by a configured authority and is for
//     epoch. An authority that signed two different votes has none counted.
//     A majority of votes must count (ErrNoQuorum).
//   - Geometry and parameters are those proposed identically by a majority
//     of the counted votes (ErrNoAgreement); the geometry must have
//     cfg.Layers+2 hops (ErrConfig).
//   - A reveal counts if it verifies, is for epoch and matches the commit
//     in its authority's counted vote. A majority must count
//     (ErrNoSharedRandom). The shared random value is BLAKE2b-256 over a
//     context string, the epoch, and the counted (authority key, value)
//     pairs in key order.
//   - A node is in if a majority of counted votes carry its identical
//     signed descriptor bytes. Nodes sharing a link key or an address are
//     left out, unless exactly one of them held a layer in the prior
//     assignment, which then keeps its place.
//   - The prior layer assignment is the one a majority of votes carry
//     identically; without one, every mix is placed afresh.
//   - At least one provider and cfg.Layers × cfg.MinMixesPerLayer mixes
//     are needed (*TooFewNodesError).
//   - Layers: see assignLayers.
func Compute(cfg Config, epoch uint64, votes, reveals [][]byte) (*Result, error) {
	auths, err := cfg.authorities()
	if err != nil {
		return nil, err
	}
	res := &Result{}

	// Votes: verify, keep the distinct valid ones, drop equivocators.
	byAuth := make(map[[keys.PublicKeySize]byte][]counted)
	for _, raw := range votes {
		sv, err := pki.UnmarshalSignedVote(raw)
		if err != nil {
			res.ignore("vote", keys.IdentityPublicKey{}, err)
			continue
		}
		v, err := sv.Verify(auths)
		if err != nil {
			res.ignore("vote", keys.IdentityPublicKey{}, err)
			continue
		}
		if v.Epoch != epoch {
			res.ignore("vote", v.Authority, fmt.Errorf("consensus: count vote: %w: for epoch %d, want %d", pki.ErrWrongEpoch, v.Epoch, epoch))
			continue
		}
		k := v.Authority.Array()
		if !slices.ContainsFunc(byAuth[k], func(c counted) bool { return bytes.Equal(c.body, sv.Body) }) {
			byAuth[k] = append(byAuth[k], counted{v.Authority, sv.Body, v})
		}
	}
	var valid []counted
	for _, a := range auths {
		switch cs := byAuth[a.Array()]; len(cs) {
		case 0:
		case 1:
			valid = append(valid, cs[0])
			res.Voters = append(res.Voters, a)
		default:
			res.ignore("vote", a, fmt.Errorf("consensus: count vote: %w: %d different votes", ErrEquivocation, len(cs)))
		}
	}
	if len(valid) < cfg.Threshold {
		res.sortIgnored()
		return nil, fmt.Errorf("consensus: epoch %d: %w: %d of %d needed (%d ignored)", epoch, ErrNoQuorum, len(valid), cfg.Threshold, len(res.Ignored))
	}

	// Geometry and parameters.
	geometry, ok := majority(valid, cfg.Threshold, func(c counted) pki.Geometry { return c.vote.Geometry })
	if !ok {
		return nil, fmt.Errorf("consensus: epoch %d: %w: on the geometry", epoch, ErrNoAgreement)
	}
	if geometry.Hops != cfg.Layers+2 {
		return nil, fmt.Errorf("consensus: epoch %d: %w: agreed geometry has %d hops, %d layers need %d", epoch, ErrConfig, geometry.Hops, cfg.Layers, cfg.Layers+2)
	}
	params, ok := majority(valid, cfg.Threshold, func(c counted) pki.Parameters { return c.vote.Parameters })
	if !ok {
		return nil, fmt.Errorf("consensus: epoch %d: %w: on the parameters", epoch, ErrNoAgreement)
	}

	// Shared random value.
	srv, err := res.sharedRandom(cfg, epoch, auths, valid, reveals)
	if err != nil {
		return nil, err
	}

	// Prior layers, then the nodes.
	prior := priorLayers(valid, cfg.Threshold, cfg.Layers)
	nodes, err := agreedNodes(valid, cfg.Threshold)
	if err != nil {
		return nil, fmt.Errorf("consensus: epoch %d: %w", epoch, err)
	}
	nodes = res.resolveConflicts(nodes, prior)
	var mixes, providers []*pki.Descriptor
	for _, d := range nodes {
		if d.Role == pki.RoleProvider {
			providers = append(providers, d)
		} else {
			mixes = append(mixes, d)
		}
	}
	if len(providers) < 1 || len(mixes) < cfg.Layers*cfg.MinMixesPerLayer || len(nodes) > pki.MaxNodes {
		if len(nodes) > pki.MaxNodes {
			return nil, fmt.Errorf("consensus: epoch %d: %w: %d nodes, limit %d", epoch, ErrConfig, len(nodes), pki.MaxNodes)
		}
		return nil, &TooFewNodesError{Providers: len(providers), Mixes: len(mixes), NeedMixes: cfg.Layers * cfg.MinMixesPerLayer}
	}
	layers, moved := assignLayers(mixes, prior, cfg.Layers, srv)
	res.Moved = moved
	slices.SortFunc(providers, byID)

	res.Document = &pki.Document{
		Epoch:        epoch,
		Geometry:     geometry,
		Parameters:   params,
		Layers:       layers,
		Providers:    providers,
		SharedRandom: srv,
	}
	if err := res.Document.Validate(); err != nil {
		// Every input was validated, so this is a bug here, not bad input.
		return nil, fmt.Errorf("consensus: epoch %d: computed an invalid document: %w", epoch, err)
	}
	res.sortIgnored()
	return res, nil
}

func (r *Result) ignore(kind string, a keys.IdentityPublicKey, err error) {
	r.Ignored = append(r.Ignored, Ignored{Kind: kind, Authority: a, Err: err})
}

func (r *Result) sortIgnored() {
	slices.SortFunc(r.Ignored, func(a, b Ignored) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), compareKeys(a.Authority, b.Authority), cmp.Compare(a.Err.Error(), b.Err.Error()))
	})
	r.Ignored = slices.CompactFunc(r.Ignored, func(a, b Ignored) bool {
		return a.Kind == b.Kind && a.Authority.Equal(b.Authority) && a.Err.Error() == b.Err.Error()
	})
}

// majority returns the value of f that at least threshold of the votes
// share. Since threshold is a majority, there is at most one.
func majority[T comparable](votes []counted, threshold int, f func(counted) T) (T, bool) {
	count := make(map[T]int)
	for _, v := range votes {
		count[f(v)]++
	}
	for _, v := range votes {
		if x := f(v); count[x] >= threshold {
			return x, true
		}
	}
	var zero T
	return zero, false
}

func (r *Result) sharedRandom(cfg Config, epoch uint64, auths []keys.IdentityPublicKey, valid []counted, reveals [][]byte) ([32]byte, error) {
	commits := make(map[[keys.PublicKeySize]byte][32]byte, len(valid))
	for _, c := range valid {
		commits[c.authority.Array()] = c.vote.Commit
	}
	values := make(map[[keys.PublicKeySize]byte][32]byte)
	for _, raw := range reveals {
		rv, err := pki.VerifyReveal(raw, auths)
		if err != nil {
			r.ignore("reveal", keys.IdentityPublicKey{}, err)
			continue
		}
		k := rv.Authority.Array()
		commit, voted := commits[k]
		switch {
		case rv.Epoch != epoch:
			r.ignore("reveal", rv.Authority, fmt.Errorf("consensus: count reveal: %w: for epoch %d, want %d", pki.ErrWrongEpoch, rv.Epoch, epoch))
		case !voted:
			r.ignore("reveal", rv.Authority, fmt.Errorf("consensus: count reveal: %w: no counted vote", pki.ErrInvalid))
		case rv.Commit() != commit:
			r.ignore("reveal", rv.Authority, fmt.Errorf("consensus: count reveal: %w: does not match the commit", pki.ErrInvalid))
		default:
			// Only one value can match the commit, so repeats are equal.
			values[k] = rv.Value
		}
	}
	h, _ := blake2b.New256(nil)
	h.Write([]byte("chorus-shared-random-v1\x00"))
	h.Write(binary.BigEndian.AppendUint64(nil, epoch))
	for _, a := range auths { // sorted by key
		if v, ok := values[a.Array()]; ok {
			pk := a.Array()
			h.Write(pk[:])
			h.Write(v[:])
			r.Revealers = append(r.Revealers, a)
		}
	}
	if len(r.Revealers) < cfg.Threshold {
		r.sortIgnored()
		return [32]byte{}, fmt.Errorf("consensus: epoch %d: %w: %d of %d needed", epoch, ErrNoSharedRandom, len(r.Revealers), cfg.Threshold)
	}
	var srv [32]byte
	h.Sum(srv[:0])
	return srv, nil
}

// priorLayers returns the prior assignment (node → layer) that a majority
// of votes carry identically, dropping layers beyond the configured number;
// nil if there is none.
func priorLayers(valid []counted, threshold, layers int) map[pki.NodeID]int {
	key := func(c counted) string {
		var b []byte
		for _, l := range c.vote.PriorLayers {
			ids := slices.Clone(l)
			slices.SortFunc(ids, func(a, b pki.NodeID) int { return bytes.Compare(a[:], b[:]) })
			b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
			for _, id := range ids {
				b = append(b, id[:]...)
			}
		}
		return string(b)
	}
	k, ok := majority(valid, threshold, key)
	if !ok {
		return nil
	}
	for _, c := range valid {
		if key(c) != k {
			continue
		}
		prior := make(map[pki.NodeID]int)
		for l, ids := range c.vote.PriorLayers {
			if l >= layers {
				break
			}
			for _, id := range ids {
				prior[id] = l
			}
		}
		return prior
	}
	return nil
}

// agreedNodes returns the descriptors that a majority of votes carry with
// identical signed bytes, sorted by ID.
func agreedNodes(valid []counted, threshold int) ([]*pki.Descriptor, error) {
	type entry struct {
		signed *pki.SignedDescriptor
		votes  int
	}
	seen := make(map[string]*entry)
	for _, c := range valid {
		for _, sd := range c.vote.Descriptors {
			e := seen[string(sd.Body)]
			if e == nil {
				e = &entry{signed: sd}
				seen[string(sd.Body)] = e
			}
			e.votes++ // a vote lists a body at most once
		}
	}
	var out []*pki.Descriptor
	for _, e := range seen {
		if e.votes < threshold {
			continue
		}
		d, err := e.signed.Verify() // verified inside its votes already
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	slices.SortFunc(out, byID)
	// Two different descriptors of one node cannot both have a majority
	// when each vote carries one per node; drop both if it happens anyway.
	var kept []*pki.Descriptor
	for i, d := range out {
		if i > 0 && out[i-1].ID == d.ID || i+1 < len(out) && out[i+1].ID == d.ID {
			continue
		}
		kept = append(kept, d)
	}
	out = kept
	return out, nil
}

func byID(a, b *pki.Descriptor) int { return bytes.Compare(a.ID[:], b.ID[:]) }

// resolveConflicts drops nodes that share a link key or an endpoint with
// another node, except that when exactly one of the claimants of a key held
// a prior layer, that one keeps it.
func (r *Result) resolveConflicts(nodes []*pki.Descriptor, prior map[pki.NodeID]int) []*pki.Descriptor {
	type claim struct{ what, value string }
	claims := make(map[claim][]*pki.Descriptor)
	var order []claim
	add := func(c claim, d *pki.Descriptor) {
		if claims[c] == nil {
			order = append(order, c)
		}
		claims[c] = append(claims[c], d)
	}
	for _, d := range nodes {
		lk := d.LinkKey.Array()
		add(claim{"link key", string(lk[:])}, d)
		for _, a := range d.Addresses {
			_, ep, _ := strings.Cut(a, "://") // validated: scheme://host:port
			add(claim{"address", ep}, d)
		}
	}
	drop := make(map[pki.NodeID]string)
	for _, c := range order { // deterministic: nodes are sorted by ID
		ds := claims[c]
		if len(ds) < 2 {
			continue
		}
		var priors []*pki.Descriptor
		for _, d := range ds {
			if _, ok := prior[d.ID]; ok {
				priors = append(priors, d)
			}
		}
		reason := "shares its link key with another node"
		if c.what == "address" {
			reason = "shares address " + c.value + " with another node"
		}
		for _, d := range ds {
			if len(priors) == 1 && priors[0] == d {
				continue
			}
			if _, ok := drop[d.ID]; !ok {
				drop[d.ID] = reason
			}
		}
	}
	if len(drop) == 0 {
		return nodes
	}
	var kept []*pki.Descriptor
	for _, d := range nodes {
		if reason, ok := drop[d.ID]; ok {
			r.Excluded = append(r.Excluded, Excluded{ID: d.ID, Name: d.Name, Reason: reason})
			continue
		}
		kept = append(kept, d)
	}
	return kept
}
