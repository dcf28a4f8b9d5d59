package authority

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
)

// errNotAvailable: the peer does not have the object (yet).
var errNotAvailable = errors.New("not available")

// fetchLoop pulls from peer i whatever the rounds for the current and next
// epoch still miss from it, every poll interval. Each peer has its own loop,
// so a slow or dead peer delays nobody else.
func (a *Authority) fetchLoop(ctx context.Context, i int) error {
	t := time.NewTicker(a.poll)
	defer t.Stop()
	for {
		cur := a.sched.At(a.clock.Now())
		for _, T := range []uint64{cur, cur + 1} {
			a.fetchFrom(ctx, i, T)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// fetchFrom fetches what the round for T misses from peer i.
func (a *Authority) fetchFrom(ctx context.Context, i int, T uint64) {
	p := a.peers[i]
	sub := p.IdentityKey.Array()
	now := a.clock.Now()
	cur := a.sched.At(now)

	a.mu.Lock()
	_, computeAt := a.deadlines(T)
	wantDoc := !a.published(T) && (T == cur || !now.Before(computeAt))
	wantVote := !a.have(kindVote, T, sub) && !a.revealed(T) && !a.published(T) && !a.failed(T)
	wantReveal := a.have(kindVote, T, sub) && !a.have(kindReveal, T, sub) && a.revealed(T) && !a.computed(T) && !a.failed(T)
	wantSig := a.computed(T) && !a.have(kindSignature, T, sub) && now.Before(a.sched.Start(T+1))
	a.mu.Unlock()

	if wantDoc {
		err := a.fetchDocument(ctx, p, T)
		a.mu.Lock()
		if a.docChecked[T] == nil {
			a.docChecked[T] = make(map[int]bool)
		}
		a.docChecked[T][i] = true
		a.mu.Unlock()
		a.peerError(p, "document", T, err)
	}
	if wantVote {
		a.peerError(p, "vote", T, a.fetchVote(ctx, p, T))
	}
	if wantReveal {
		a.peerError(p, "reveal", T, a.fetchReveal(ctx, p, T))
	}
	if wantSig {
		a.peerError(p, "signature", T, a.fetchSignatures(ctx, p, T))
	}
}

func (a *Authority) peerError(p dirclient.Authority, what string, T uint64, err error) {
	if err == nil || errors.Is(err, errNotAvailable) || errors.Is(err, context.Canceled) {
		return
	}
	a.m.peerFailures.Inc()
	a.log.Debug("fetch from peer failed", "peer", p.Name, "what", what, "epoch", T, "err", err)
}

// get fetches path from p, reading at most limit bytes.
func (a *Authority) get(ctx context.Context, p dirclient.Authority, path string, T uint64, limit int) ([]byte, error) {
	a.m.peerResponses.Inc()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL(path+strconv.FormatUint(T, 10)), nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
		return nil, errNotAvailable
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("body over %d bytes", limit)
	}
	return b, nil
}

func (a *Authority) fetchVote(ctx context.Context, p dirclient.Authority, T uint64) error {
	raw, err := a.get(ctx, p, pathVote, T, pki.MaxVoteSize)
	if err != nil {
		return err
	}
	v, err := pki.VerifyVote(raw, a.all)
	if err != nil {
		return err
	}
	if v.Epoch != T || !v.Authority.Equal(p.IdentityKey) {
		return fmt.Errorf("vote for epoch %d by %v: %w", v.Epoch, v.Authority, pki.ErrWrongEpoch)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.revealed(T) {
		return nil // too late: the reveal was published without it
	}
	stored, err := a.store.putOnce(kindVote, T, p.IdentityKey.Array(), raw)
	if err == nil && bytes.Equal(stored, raw) {
		a.m.votes.Inc()
	}
	return err
}

func (a *Authority) fetchReveal(ctx context.Context, p dirclient.Authority, T uint64) error {
	raw, err := a.get(ctx, p, pathReveal, T, pki.MaxRevealSize)
	if err != nil {
		return err
	}
	r, err := pki.VerifyReveal(raw, a.all)
	if err != nil {
		return err
	}
	if r.Epoch != T || !r.Authority.Equal(p.IdentityKey) {
		return fmt.Errorf("reveal for epoch %d by %v: %w", r.Epoch, r.Authority, pki.ErrWrongEpoch)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.computed(T) || a.failed(T) {
		return nil
	}
	_, err = a.store.putOnce(kindReveal, T, p.IdentityKey.Array(), raw)
	return err
}

// fetchSignatures takes every valid authority signature the peer holds over
// the document this authority computed; a peer that computed different bytes
// contributes nothing.
func (a *Authority) fetchSignatures(ctx context.Context, p dirclient.Authority, T uint64) error {
	raw, err := a.get(ctx, p, pathSignature, T, pki.MaxDocumentSize)
	if err != nil {
		return err
	}
	theirs, err := pki.UnmarshalSignedDocument(raw)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	mine, ok := a.signedDocument(T)
	if !ok {
		return nil
	}
	if !bytes.Equal(mine.Body, theirs.Body) {
		return fmt.Errorf("peer computed a different document for epoch %d", T)
	}
	return a.mergeSignatures(T, mine, theirs.Signatures)
}

// mergeSignatures stores each signature by a configured authority that
// verifies over mine.Body. a.mu is held.
func (a *Authority) mergeSignatures(T uint64, mine *pki.SignedDocument, sigs []pki.Signature) error {
	for _, s := range sigs {
		if !slices.ContainsFunc(a.all, s.Signer.Equal) || a.have(kindSignature, T, s.Signer.Array()) {
			continue
		}
		if err := mine.AddSignature(s); err != nil {
			return err
		}
		if err := a.store.put(kindSignature, T, s.Signer.Array(), s.Signature); err != nil {
			return err
		}
	}
	return nil
}

// fetchDocument adopts a peer's published document for T if it verifies
// with the threshold: a late starter or an authority that missed the round
// then serves the network's document too.
func (a *Authority) fetchDocument(ctx context.Context, p dirclient.Authority, T uint64) error {
	raw, err := a.get(ctx, p, dirclient.DocumentPath, T, pki.MaxDocumentSize)
	if err != nil {
		return err
	}
	sd, err := pki.UnmarshalSignedDocument(raw)
	if err != nil {
		return err
	}
	doc, err := sd.Verify(a.all, a.threshold)
	if err != nil {
		return err
	}
	if doc.Epoch != T {
		return fmt.Errorf("document for epoch %d: %w", doc.Epoch, pki.ErrWrongEpoch)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.published(T) {
		return nil
	}
	if mine, ok := a.signedDocument(T); ok && bytes.Equal(mine.Body, sd.Body) {
		return a.mergeSignatures(T, mine, sd.Signatures)
	}
	if err := a.store.put(kindPublished, T, subject{}, raw); err != nil {
		return err
	}
	a.log.Info("adopted the document published by a peer", "epoch", T, "peer", p.Name)
	return nil
}
