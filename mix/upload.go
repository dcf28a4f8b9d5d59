package mix

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
)

// upload publishes the node's descriptor: during epoch E the descriptor
// for E+1 (with Sphinx keys for E+1..E+3), and, while there is no
// document for E (a network starting up), the one for E too. Each is
// uploaded until the threshold of authorities accepted it, retried every
// poll interval.
func (p *Pipeline) upload(ctx context.Context) error {
	up := p.deps.Uploader
	if up == nil {
		return nil
	}
	done := make(map[uint64]bool)
	for {
		e := p.cfg.Schedule.Now()
		for _, target := range []uint64{e, e + 1} {
			if done[target] || p.haveDocument(target) {
				continue // published, or decided without us: too late either way
			}
			err := p.uploadOne(ctx, up, target)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				p.m.uploads.WithLabelValues("failed").Inc()
				p.log.Warn("mix: descriptor upload failed; retrying", "epoch", target, "err", err)
				continue
			}
			done[target] = true
			p.m.uploads.WithLabelValues("accepted").Inc()
			p.log.Info("mix: descriptor published", "epoch", target)
		}
		for t := range done {
			if t < e {
				delete(done, t)
			}
		}
		wait := p.uploadInterval()
		if done[e+1] {
			wait = max(wait, min(p.cfg.Schedule.UntilNext(), time.Minute))
		}
		if !sleepCtx(ctx, jitterDuration(wait)) {
			return nil
		}
	}
}

// haveDocument reports whether the pipeline holds the document for epoch.
func (p *Pipeline) haveDocument(epoch uint64) bool {
	s := p.docs.Load()
	return s != nil && s.get(epoch) != nil
}

func (p *Pipeline) uploadInterval() time.Duration {
	return min(max(p.cfg.Schedule.Period()/16, 100*time.Millisecond), time.Minute)
}

// jitterDuration draws from [d/2, d).
func jitterDuration(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d-d/2)
}

func (p *Pipeline) uploadOne(ctx context.Context, up Uploader, epoch uint64) error {
	sd, err := p.Descriptor(epoch)
	if err != nil {
		return err
	}
	err = up.Upload(ctx, sd)
	var ue *dirclient.UploadError
	if err == nil || (errors.As(err, &ue) && ue.Accepted >= up.Threshold()) {
		return nil
	}
	return err
}

// Descriptor returns the node's signed descriptor for epoch, with its
// Sphinx public keys for epoch, epoch+1 and epoch+2.
func (p *Pipeline) Descriptor(epoch uint64) (*pki.SignedDescriptor, error) {
	sphinxKeys, err := p.keys.PublicKeys(epoch)
	if err != nil {
		return nil, fmt.Errorf("mix: descriptor for epoch %d: %w", epoch, err)
	}
	d := &pki.Descriptor{
		Name:        p.cfg.Name,
		ID:          p.self,
		IdentityKey: p.cfg.Identity.Public(),
		LinkKey:     p.cfg.LinkKey.Public(),
		Role:        p.cfg.Role,
		Addresses:   slices.Clone(p.cfg.Addresses),
		Epoch:       epoch,
		SphinxKeys:  sphinxKeys,
	}
	return pki.SignDescriptor(p.cfg.Identity, d)
}
