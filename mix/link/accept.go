package link

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// AcceptLoop accepts connections on ln until ctx ends or ln is closed, and
// closes ln when ctx ends. Each connection goes to handshake in a goroutine
// of its own, at most limit at once (DefaultMaxHandshakes if limit ≤ 0), so
// a peer that stalls or sends garbage holds up no one else; the function
// handshake returns, if not nil, then runs in the same goroutine outside
// that limit, typically to serve the link. A failed Accept that is not a
// closed listener (out of file descriptors, say) is logged and retried with
// backoff. AcceptLoop returns when every goroutine it started has returned.
//
// Listener uses it; so do the mix and the provider, which run the
// handshake themselves (Server) to decide per connection what to do.
func AcceptLoop(ctx context.Context, ln net.Listener, limit int, log *slog.Logger, handshake func(ctx context.Context, nc net.Conn) (serve func())) {
	if limit <= 0 {
		limit = DefaultMaxHandshakes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var backoff time.Duration
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		nc, err := ln.Accept()
		if err != nil {
			<-sem
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("link: accept failed; retrying", "err", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		wg.Go(func() {
			serve := handshake(ctx, nc)
			<-sem
			if serve != nil {
				serve()
			}
		})
	}
}
