package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/chorus-mixnet/chorus/client/egress"
	"github.com/chorus-mixnet/chorus/mix/link"
)

// connectLoop connects to the provider, runs a session until the link
// fails, and connects again after a backoff that doubles with each
// failure (with jitter, so that the clients of a provider that restarts
// do not come back in step). A session that lasted longer than the
// longest backoff resets it.
func (c *Client) connectLoop(ctx context.Context) error {
	backoff := c.cfg.MinBackoff
	failing := false
	for {
		start := time.Now()
		connected, err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if connected && time.Since(start) >= c.cfg.MaxBackoff {
			backoff = c.cfg.MinBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		switch {
		case connected:
			c.log.Warn("link to the provider lost; reconnecting", "reason", describeLinkError(err), "retry_in", wait.Round(time.Millisecond))
			failing = false
		case !failing:
			c.log.Warn("cannot connect to the provider; retrying with backoff", "reason", describeLinkError(err), "retry_in", wait.Round(time.Millisecond))
			failing = true
		}
		c.log.Debug("provider link error", "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
}

// describeLinkError classifies a link error for logs at info level and
// above without the provider's address, which network errors carry.
func describeLinkError(err error) string {
	switch {
	case err == nil:
		return "closed"
	case errors.Is(err, link.ErrRefused):
		return "the provider refused our link key (is this client registered with it?)"
	case errors.Is(err, link.ErrUnexpectedKey):
		return "the provider's link key is not the configured one"
	case errors.Is(err, link.ErrIdleTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return "timed out"
	case errors.Is(err, io.EOF):
		return "the provider closed the link"
	case errors.Is(err, link.ErrMalformed):
		return "malformed frame from the provider"
	case errors.Is(err, errUnexpectedCommand):
		return err.Error()
	}
	return "network error (details at debug level)"
}

var errUnexpectedCommand = errors.New("unexpected command from the provider")

// session dials the provider and runs the egress clocks and the receiver
// over the link until either fails or ctx ends. connected reports whether
// the link came up.
func (c *Client) session(ctx context.Context) (connected bool, err error) {
	conn, err := c.dial(ctx, c.linkCfg, c.cfg.ProviderLinkKey)
	if err != nil {
		c.m.connects.WithLabelValues("failed").Inc()
		return false, err
	}
	c.m.connects.WithLabelValues("ok").Inc()
	defer conn.Close()

	now := time.Now()
	c.mu.Lock()
	params, doc := c.parametersLocked(now)
	sender, err := egress.New(egress.Config{
		Parameters: params,
		Packets:    (*packets)(c),
		Control:    (*control)(c),
		Sink:       conn,
		Logger:     c.log,
	})
	if err != nil {
		c.mu.Unlock()
		return true, err
	}
	c.sender, c.paramsDoc = sender, doc
	c.connected = true
	c.retrieving, c.pendingAck = false, nil
	c.chunks.reset()
	clear(c.asked) // a new link may ask at once
	c.mu.Unlock()
	c.m.connected.Set(1)
	c.log.Info("connected to the provider")

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.prepare(gctx) })
	g.Go(func() error { return sender.Run(gctx) })
	g.Go(func() error { return c.receive(gctx, conn) })
	err = g.Wait()

	c.mu.Lock()
	c.connected = false
	c.sender, c.paramsDoc = nil, nil
	c.retrieving, c.pendingAck = false, nil
	c.mu.Unlock()
	c.m.connected.Set(0)
	return true, err
}

// receive reads the provider's answers: mailbox entries and consensus
// chunks. Each is handled before the next is read, since its slices
// alias the link's buffer.
func (c *Client) receive(ctx context.Context, conn *link.Conn) error {
	for {
		cmd, err := conn.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("client: receive: %w", err)
		}
		switch m := cmd.(type) {
		case link.Message:
			c.handleMessage(m)
		case link.Consensus:
			c.handleConsensus(m)
		default:
			return fmt.Errorf("client: %w: %T", errUnexpectedCommand, cmd)
		}
	}
}
