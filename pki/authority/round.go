package authority

import (
	"bytes"
	"fmt"
	"time"

	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/consensus"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// The timetable of the round that makes the document for epoch T, during
// epoch T-1 (the phases of pki/epoch, in fractions of the period P from the
// start of T-1):
//
//	upload  0    – 2P/8  descriptors for T are accepted
//	vote    2P/8 – 3P/8  vote (the accepted descriptors, this authority's
//	                     geometry and parameters, a commit to a fresh random
//	                     value, the layers of the latest document); votes are
//	                     fetched from the peers; the reveal is published as
//	                     soon as every authority's vote is in, at 3P/8 at the
//	                     latest, and no vote is taken after it
//	reveal  3P/8 – 4P/8  reveals are fetched; the document is computed as soon
//	                     as every voter's reveal is in, at 4P/8 at the latest,
//	                     and signed
//	sign    4P/8 – …     signatures are fetched; the document is published
//	                     once threshold authorities signed the identical
//	                     bytes, and more signatures are added as they come,
//	                     until T ends
//
// Every step that waits for the peers moves on as soon as all of them have
// answered, so with every authority up a round takes a few poll intervals;
// the deadlines matter only when one is down.
//
// Bootstrap: when there is no document for the current epoch E — a fresh
// network, or one back from an outage — and no peer has one either, the
// authority runs the same round for E itself at once, without waiting for
// the timetable: it votes as soon as it holds enough descriptors for E (the
// configured layers filled with min_mixes_per_layer mixes each, and a
// provider) and no new descriptor has arrived for a short settling time
// (P/16, 100 ms to 5 s), then follows the steps above with deadlines of P/8
// and P/4 after its vote. A fresh network thus gets its first document
// within seconds of its nodes uploading descriptors for the current epoch.
// An authority votes at most once per epoch, so a failed bootstrap is not
// retried: the next epoch's round (or its bootstrap) follows.

func (a *Authority) voteAt(T uint64) time.Time {
	return a.sched.PhaseStart(T-1, epoch.Vote)
}

// deadlines returns when the reveal and the computation are due at the latest.
func (a *Authority) deadlines(T uint64) (reveal, compute time.Time) {
	if t, ok := a.bootVotes[T]; ok {
		return t.Add(a.cfg.Period / 8), t.Add(a.cfg.Period / 4)
	}
	return a.sched.Deadline(T-1, epoch.Vote), a.sched.Deadline(T-1, epoch.Reveal)
}

// have reports whether a record exists.
func (a *Authority) have(k kind, T uint64, sub subject) bool {
	return a.store.get(k, T, sub) != nil
}

func (a *Authority) published(T uint64) bool { return a.have(kindPublished, T, subject{}) }
func (a *Authority) failed(T uint64) bool    { return a.have(kindFailed, T, subject{}) }
func (a *Authority) voted(T uint64) bool     { return a.have(kindVote, T, a.self) }
func (a *Authority) revealed(T uint64) bool  { return a.have(kindReveal, T, a.self) }
func (a *Authority) computed(T uint64) bool  { return a.have(kindDocument, T, subject{}) }

// viable reports whether the descriptors held for T could fill a document.
func (a *Authority) viable(T uint64) bool {
	mixes, providers := 0, 0
	for _, raw := range a.store.list(kindDescriptor, T) {
		sd, err := pki.UnmarshalSignedDescriptor(raw)
		if err != nil {
			continue
		}
		d, err := pki.UnmarshalDescriptor(sd.Body)
		if err != nil {
			continue
		}
		switch d.Role {
		case pki.RoleMix:
			mixes++
		case pki.RoleProvider:
			providers++
		}
	}
	return providers >= 1 && mixes >= a.cfg.Layers*a.cfg.MinMixesPerLayer
}

// maybeBootstrap votes for the current epoch when it has no document.
func (a *Authority) maybeBootstrap(cur uint64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.published(cur) || a.voted(cur) || a.failed(cur) {
		return
	}
	if now.After(a.sched.Start(cur).Add(a.cfg.Period * 3 / 4)) {
		return // too late to be useful; the next epoch's round takes over
	}
	if len(a.docChecked[cur]) < len(a.peers) {
		return // first ask every peer whether it already has a document
	}
	last, ok := a.lastDescriptor[cur]
	if !ok {
		// After a restart: count the settling time from now.
		a.lastDescriptor[cur] = now
		return
	}
	if now.Sub(last) < a.settle || !a.viable(cur) {
		return
	}
	if err := a.vote(cur); err != nil {
		a.log.Error("bootstrap vote", "epoch", cur, "err", err)
		return
	}
	a.bootVotes[cur] = now
	a.log.Info("bootstrap: voted for the current epoch", "epoch", cur)
}

// maybeVote votes for the next epoch T on the timetable.
func (a *Authority) maybeVote(T uint64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.published(T) || a.voted(T) || a.failed(T) {
		return
	}
	revealAt, _ := a.deadlines(T)
	if now.Before(a.voteAt(T)) || !now.Before(revealAt) || !a.viable(T) {
		return
	}
	if err := a.vote(T); err != nil {
		a.log.Error("vote", "epoch", T, "err", err)
		return
	}
	a.log.Info("voted", "epoch", T, "late_by", now.Sub(a.voteAt(T)))
}

// vote makes, signs and stores this authority's vote for T. a.mu is held.
func (a *Authority) vote(T uint64) error {
	var sds []*pki.SignedDescriptor
	for _, raw := range a.store.list(kindDescriptor, T) {
		sd, err := pki.UnmarshalSignedDescriptor(raw)
		if err != nil {
			return fmt.Errorf("vote: stored descriptor: %w", err)
		}
		sds = append(sds, sd)
	}
	r, err := a.reveal(T)
	if err != nil {
		return err
	}
	v := &pki.Vote{
		Epoch:       T,
		Authority:   a.key.Public(),
		Descriptors: sds,
		Geometry:    a.cfg.geometry(),
		Parameters:  a.cfg.Parameters,
		Commit:      r.Commit(),
		PriorLayers: a.priorLayers(T),
	}
	sv, err := pki.SignVote(a.key, v)
	if err != nil {
		return fmt.Errorf("vote: %w", err)
	}
	raw, err := sv.MarshalBinary()
	if err != nil {
		return fmt.Errorf("vote: %w", err)
	}
	_, err = a.store.putOnce(kindVote, T, a.self, raw)
	return err
}

// reveal returns this authority's reveal for T, drawing and storing its
// value the first time.
func (a *Authority) reveal(T uint64) (*pki.Reveal, error) {
	fresh, err := pki.NewReveal(a.rand, T, a.key.Public())
	if err != nil {
		return nil, fmt.Errorf("draw reveal: %w", err)
	}
	val, err := a.store.putOnce(kindSecret, T, subject{}, fresh.Value[:])
	if err != nil {
		return nil, err
	}
	if len(val) != len(fresh.Value) {
		return nil, fmt.Errorf("stored reveal value for epoch %d: %d bytes", T, len(val))
	}
	r := &pki.Reveal{Epoch: T, Authority: a.key.Public()}
	copy(r.Value[:], val)
	return r, nil
}

// priorLayers returns the layers of the latest published document of the
// three epochs before T.
func (a *Authority) priorLayers(T uint64) [][]pki.NodeID {
	for back := uint64(1); back <= 3 && back <= T; back++ {
		raw := a.store.get(kindPublished, T-back, subject{})
		if raw == nil {
			continue
		}
		sd, err := pki.UnmarshalSignedDocument(raw)
		if err != nil {
			return nil
		}
		doc, err := pki.UnmarshalDocument(sd.Body)
		if err != nil {
			return nil
		}
		return doc.LayerAssignment()
	}
	return nil
}

// advance moves the round for T past every step whose inputs are complete
// or whose deadline has passed.
func (a *Authority) advance(T uint64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.voted(T) || a.failed(T) {
		return
	}
	revealAt, computeAt := a.deadlines(T)
	if !a.revealed(T) {
		if a.store.count(kindVote, T) < len(a.all) && now.Before(revealAt) {
			return
		}
		if err := a.publishReveal(T); err != nil {
			a.log.Error("reveal", "epoch", T, "err", err)
			return
		}
	}
	if !a.computed(T) && !a.published(T) {
		if !a.allRevealed(T) && now.Before(computeAt) {
			return
		}
		a.compute(T)
		return
	}
	if a.computed(T) {
		a.publish(T, now)
	}
}

func (a *Authority) publishReveal(T uint64) error {
	r, err := a.reveal(T)
	if err != nil {
		return err
	}
	sr, err := pki.SignReveal(a.key, r)
	if err != nil {
		return err
	}
	raw, err := sr.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = a.store.putOnce(kindReveal, T, a.self, raw)
	return err
}

// allRevealed reports whether every authority that voted has revealed.
func (a *Authority) allRevealed(T uint64) bool {
	reveals := a.store.list(kindReveal, T)
	for sub := range a.store.list(kindVote, T) {
		if reveals[sub] == nil {
			return false
		}
	}
	return true
}

// compute runs the consensus over the stored votes and reveals (which
// consensus.Compute verifies again) and signs the result. A failure is final
// for T.
func (a *Authority) compute(T uint64) {
	var votes, reveals [][]byte
	for _, raw := range a.store.list(kindVote, T) {
		votes = append(votes, raw)
	}
	for _, raw := range a.store.list(kindReveal, T) {
		reveals = append(reveals, raw)
	}
	res, err := consensus.Compute(a.consensusConfig(), T, votes, reveals)
	if err == nil {
		for _, ig := range res.Ignored {
			a.log.Warn("consensus ignored an input", "epoch", T, "kind", ig.Kind, "authority", ig.Authority, "err", ig.Err)
		}
		var sd *pki.SignedDocument
		if sd, err = pki.NewSignedDocument(res.Document); err == nil {
			err = a.store.put(kindDocument, T, subject{}, sd.Body)
			sd.Sign(a.key)
			if err == nil {
				err = a.store.put(kindSignature, T, a.self, sd.Signatures[0].Signature)
			}
		}
	}
	if err != nil {
		a.fail(T, err)
		return
	}
	a.log.Info("document computed and signed", "epoch", T, "voters", len(res.Voters), "revealers", len(res.Revealers),
		"mixes", countMixes(res.Document), "providers", len(res.Document.Providers))
}

func countMixes(d *pki.Document) int {
	n := 0
	for _, l := range d.Layers {
		n += len(l)
	}
	return n
}

func (a *Authority) consensusConfig() consensus.Config {
	return consensus.Config{
		Authorities:      a.all,
		Threshold:        a.threshold,
		Layers:           a.cfg.Layers,
		MinMixesPerLayer: a.cfg.MinMixesPerLayer,
	}
}

func (a *Authority) fail(T uint64, err error) {
	if perr := a.store.put(kindFailed, T, subject{}, []byte(err.Error())); perr != nil {
		a.log.Error("record failed consensus", "epoch", T, "err", perr)
	}
	a.m.consensus.WithLabelValues("failed").Inc()
	a.log.Warn("no consensus", "epoch", T, "err", err)
}

// signedDocument returns this authority's computed document for T with
// every valid signature collected over it.
func (a *Authority) signedDocument(T uint64) (*pki.SignedDocument, bool) {
	body := a.store.get(kindDocument, T, subject{})
	if body == nil {
		return nil, false
	}
	sd := &pki.SignedDocument{Body: body}
	for _, k := range a.all {
		sig := a.store.get(kindSignature, T, k.Array())
		if sig == nil {
			continue
		}
		if err := sd.AddSignature(pki.Signature{Signer: k, Signature: sig}); err != nil {
			a.log.Error("stored signature does not verify", "epoch", T, "err", err)
		}
	}
	return sd, true
}

// publish stores the document with its signatures once threshold
// authorities signed, and again whenever a signature is added; it declares
// the round failed when T ends without enough signatures.
func (a *Authority) publish(T uint64, now time.Time) {
	sd, ok := a.signedDocument(T)
	if !ok {
		return
	}
	if len(sd.Signatures) < a.threshold {
		if !now.Before(a.sched.Start(T+1)) && !a.published(T) {
			a.fail(T, fmt.Errorf("%d of %d signatures needed", len(sd.Signatures), a.threshold))
		}
		return
	}
	old := a.store.get(kindPublished, T, subject{})
	if old != nil {
		if prev, err := pki.UnmarshalSignedDocument(old); err == nil && bytes.Equal(prev.Body, sd.Body) && len(prev.Signatures) >= len(sd.Signatures) {
			return
		}
	}
	if _, err := sd.Verify(a.all, a.threshold); err != nil {
		a.log.Error("own document does not verify", "epoch", T, "err", err)
		return
	}
	raw, err := sd.MarshalBinary()
	if err == nil {
		err = a.store.put(kindPublished, T, subject{}, raw)
	}
	if err != nil {
		a.log.Error("publish document", "epoch", T, "err", err)
		return
	}
	if old == nil {
		a.m.consensus.WithLabelValues("reached").Inc()
		a.log.Info("document published", "epoch", T, "signatures", len(sd.Signatures))
	}
}
