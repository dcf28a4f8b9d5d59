package main

import (
	"context"
	"crypto/rand"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/cmd/internal/daemon/daemontest"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
)

// BenchmarkIdleClients connects b.N idle clients to one chorus-provider
// process and reports what each costs the provider, read from its own
// /metrics: heap and goroutine stacks in use, resident memory, and
// goroutines per client; ns/op is the time to connect one (the hybrid
// handshake on both sides, on this machine). Run it with an explicit
// count, for example
//
//	go test -run - -bench IdleClients -benchtime 5000x ./cmd/chorus-provider
//
// (each client holds a file descriptor in the test process and one in the
// provider; mind ulimit -n).
func BenchmarkIdleClients(b *testing.B) {
	bin := daemontest.Build(b)
	n := startNetwork(b)
	listen, metrics := daemontest.FreeAddr(b), daemontest.FreeAddr(b)
	config := daemontest.WriteFile(b, "provider.toml", n.config(filepath.Join(b.TempDir(), "data"), listen, metrics, `
[registration]
policy = "open"
per_address_limit = 1000000
[clients]
max_clients = 1000000
`))
	proc := daemontest.Start(b, exec.Command(bin, "-config", config))
	doc := n.document()
	proc.WaitHTTP(metrics, "/readyz")
	peer := doc.Providers[0].LinkKey

	// Keys first: generating them is not the provider's cost.
	ks := make([]*keys.LinkPrivateKey, b.N)
	for i := range ks {
		k, err := keys.GenerateLinkKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		ks[i] = k
	}
	type usage struct{ heap, stack, rss, goroutines float64 }
	read := func() usage {
		return usage{
			heap:       scrape(b, metrics, "go_memstats_heap_inuse_bytes", ""),
			stack:      scrape(b, metrics, "go_memstats_stack_inuse_bytes", ""),
			rss:        scrape(b, metrics, "process_resident_memory_bytes", ""),
			goroutines: scrape(b, metrics, "go_goroutines", ""),
		}
	}
	before := read()

	conns := make([]*link.Conn, b.N)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				c, err := link.Dial(ctx, "tcp", listen, link.Config{PrivateKey: ks[i], PacketLength: n.geo.PacketLength()}, peer)
				cancel()
				if err != nil {
					b.Errorf("client %d: %v", i, err)
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	deadline := time.Now().Add(time.Minute)
	for scrape(b, metrics, "chorus_provider_clients_connected", "") != float64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("%v clients connected, want %d", scrape(b, metrics, "chorus_provider_clients_connected", ""), b.N)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // let handshake garbage be collected
	after := read()
	per := func(a, b float64, n int) float64 { return (a - b) / float64(n) }
	b.ReportMetric(float64(b.N), "clients")
	b.ReportMetric(per(after.heap+after.stack, before.heap+before.stack, b.N), "heap+stack-B/client")
	b.ReportMetric(per(after.rss, before.rss, b.N), "rss-B/client")
	b.ReportMetric(per(after.goroutines, before.goroutines, b.N), "goroutines/client")
	b.Logf("%d idle clients: heap %.1f MiB → %.1f MiB, stacks %.1f → %.1f MiB, RSS %.1f → %.1f MiB, goroutines %.0f → %.0f",
		b.N, before.heap/(1<<20), after.heap/(1<<20), before.stack/(1<<20), after.stack/(1<<20),
		before.rss/(1<<20), after.rss/(1<<20), before.goroutines, after.goroutines)
	proc.Stop()
}
