package testnet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chorus-mixnet/chorus/pki"
)

// Readiness is what WaitReady observed, with times measured from the start
// of the first process.
type Readiness struct {
	// Up is when every process served /healthz.
	Up time.Duration
	// FirstDocument is when an authority first served a document for the
	// current epoch, and Document that document.
	FirstDocument time.Duration
	Document      *pki.Document
	// NodesReady is when every mix and provider reported ready: in the
	// document, holding its keys, linked to its next layer.
	NodesReady time.Duration
	// ClientsReady is when alice and bob were connected to their
	// providers.
	ClientsReady time.Duration
}

// pollInterval is how often WaitReady looks at the network.
const pollInterval = 200 * time.Millisecond

// WaitReady waits until the network can carry a message, reporting each
// step through Options.Logf: every process serving, the first document,
// every node ready with its links, the clients connected. It fails at once
// if a process exits, with the tail of its log; ctx bounds the wait.
func (n *Network) WaitReady(ctx context.Context) (Readiness, error) {
	var r Readiness
	procs := n.running()
	if err := n.waitUp(ctx, procs); err != nil {
		return r, err
	}
	r.Up = n.Since()
	n.logf("all %d processes serve (%.1fs after start)", len(procs), r.Up.Seconds())

	doc, err := n.waitDocument(ctx)
	if err != nil {
		return r, err
	}
	r.FirstDocument, r.Document = n.Since(), doc
	if err := n.waitNodes(ctx); err != nil {
		return r, err
	}
	r.NodesReady = n.Since()
	n.logf("every mix and provider is ready (%.1fs after start)", r.NodesReady.Seconds())
	if err := n.WaitConnected(ctx); err != nil {
		return r, err
	}
	r.ClientsReady = n.Since()
	return r, nil
}

// running returns the started processes in layout order.
func (n *Network) running() []*Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ps []*Process
	for _, nd := range n.nodes {
		if p := n.procs[nd.Name]; p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// checkAlive returns ErrExited, with the log's tail, for the first of
// procs that has exited although nobody stopped it.
func checkAlive(procs []*Process) error {
	for _, p := range procs {
		if p.Running() {
			continue
		}
		p.mu.Lock()
		told := p.terminated || p.killed
		p.mu.Unlock()
		if told {
			continue
		}
		e := p.exit()
		return fmt.Errorf("%w: %v; the end of %s:\n%s", ErrExited, e, p.LogPath, indent(e.LogTail))
	}
	return nil
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// poll calls f every pollInterval until it reports done, a process of
// procs exits, or ctx ends; then wait describes what was still awaited.
func poll(ctx context.Context, procs []*Process, wait func() string, f func() bool) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if err := checkAlive(procs); err != nil {
			return err
		}
		if f() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testnet: %w while waiting for %s", ctx.Err(), wait())
		case <-t.C:
		}
	}
}

func (n *Network) waitUp(ctx context.Context, procs []*Process) error {
	up := map[string]bool{}
	return poll(ctx, procs, func() string {
		var missing []string
		for _, p := range procs {
			if !up[p.Name] {
				missing = append(missing, p.Name)
			}
		}
		return "processes to serve /healthz: " + strings.Join(missing, ", ")
	}, func() bool {
		for _, p := range procs {
			if up[p.Name] {
				continue
			}
			if ok, _ := health(ctx, n.metricsAddr(p.Name)); ok {
				up[p.Name] = true
				n.logf("%-9s is up (%.1fs)", p.Name, n.Since().Seconds())
			}
		}
		return len(up) == len(procs)
	})
}

// waitDocument waits until an authority serves a document for the current
// epoch.
func (n *Network) waitDocument(ctx context.Context) (*pki.Document, error) {
	var doc *pki.Document
	var sigs int
	var lastErr error
	announced := uint64(0)
	err := poll(ctx, n.running(), func() string {
		s := fmt.Sprintf("the document for epoch %d", n.sched.Now())
		if lastErr != nil {
			s += " (last error: " + lastErr.Error() + ")"
		}
		return s
	}, func() bool {
		e := n.sched.Now()
		if e != announced {
			announced = e
			n.logf("waiting for the document for epoch %d (it ends in %v)", e, n.sched.UntilNext().Round(time.Second))
		}
		for _, a := range n.authorities {
			d, s, err := fetchDocument(ctx, a, e, n.authorities)
			if err != nil {
				lastErr = err
				continue
			}
			if d != nil {
				doc, sigs = d, s
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	n.logf("document for epoch %d after %.1fs: %s, signed by %d of %d authorities",
		doc.Epoch, n.Since().Seconds(), describeDocument(doc), sigs, len(n.authorities))
	return doc, nil
}

// Document returns the current epoch's document from the first authority
// that serves it.
func (n *Network) Document(ctx context.Context) (*pki.Document, error) {
	e := n.sched.Now()
	var errs []error
	for _, a := range n.authorities {
		d, _, err := fetchDocument(ctx, a, e, n.authorities)
		if err == nil && d != nil {
			return d, nil
		}
		if err == nil {
			err = fmt.Errorf("%s has no document for epoch %d", a.Name, e)
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("testnet: %w", errors.Join(errs...))
}

// describeDocument summarises who is in a document.
func describeDocument(d *pki.Document) string {
	var layers []string
	mixes := 0
	for _, l := range d.Layers {
		var names []string
		for _, m := range l {
			names = append(names, m.Name)
		}
		slices.Sort(names)
		mixes += len(l)
		layers = append(layers, strings.Join(names, "+"))
	}
	var provs []string
	for _, p := range d.Providers {
		provs = append(provs, p.Name)
	}
	slices.Sort(provs)
	return fmt.Sprintf("%d mixes in %d layers (%s), providers %s", mixes, len(d.Layers), strings.Join(layers, " | "), strings.Join(provs, ", "))
}

// The link metrics of every mix and provider (package mix/forward): next
// hops the document asks for, and those with an established link.
const (
	metricPeers     = "chorus_mix_forward_peers"
	metricConnected = "chorus_mix_forward_peers_connected"
)

// waitNodes waits until every mix and provider is ready, reporting the
// links as they come up.
func (n *Network) waitNodes(ctx context.Context) error {
	procs := n.running()
	ready := map[string]bool{}
	reasons := map[string]string{}
	lastLinks := ""
	var nodes []*Process
	for _, p := range procs {
		if p.Role == RoleMix || p.Role == RoleProvider {
			nodes = append(nodes, p)
		}
	}
	return poll(ctx, procs, func() string {
		var missing []string
		for _, p := range nodes {
			if !ready[p.Name] {
				missing = append(missing, p.Name+" ("+reasons[p.Name]+")")
			}
		}
		return "nodes to be ready: " + strings.Join(missing, ", ")
	}, func() bool {
		var peers, connected float64
		for _, p := range nodes {
			addr := n.metricsAddr(p.Name)
			if m, err := scrape(ctx, addr, metricPeers, metricConnected); err == nil {
				peers += m[metricPeers]
				connected += m[metricConnected]
			}
			if ready[p.Name] {
				continue
			}
			if _, err := health(ctx, addr); err != nil {
				reasons[p.Name] = err.Error()
			} else {
				ready[p.Name] = true
			}
		}
		if links := fmt.Sprintf("%.0f of %.0f links to next hops connected", connected, peers); links != lastLinks && peers > 0 {
			lastLinks = links
			n.logf("%s; %d of %d nodes ready (%.1fs)", links, len(ready), len(nodes), n.Since().Seconds())
		}
		return len(ready) == len(nodes)
	})
}
