package link_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/link/linktest"
)

// metric returns the sum of every series of a metric in reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestKeepAlive: an idle link sends a NoOp every KeepAlive, counted from its
// last frame; the receiver never sees them and does not time out.
func TestKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		m, err := link.NewMetrics(reg)
		if err != nil {
			t.Fatal(err)
		}
		acfg := linktest.NewConfig(t, 3082)
		acfg.KeepAlive = time.Second
		acfg.Metrics = m
		bcfg := linktest.NewConfig(t, 3082)
		bcfg.KeepAlive = -1
		bcfg.IdleTimeout = 3 * time.Second // would fire without a's keepalives
		a, b := linktest.Pair(t, acfg, bcfg)
		start := time.Now()

		got := make(chan link.Command, 1)
		go func() {
			cmd, err := b.Recv(context.Background())
			if err != nil {
				t.Errorf("b.Recv: %v", err)
			}
			got <- cmd
		}()

		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		if n := metric(t, reg, "chorus_link_frames_sent_total"); n != 10 {
			t.Fatalf("after 10 idle seconds a sent %v frames, want 10 NoOps", n)
		}
		select {
		case cmd := <-got:
			t.Fatalf("Recv returned %+v while only NoOps flowed", cmd)
		default:
		}

		// A real frame at 10.5 s; the next keepalive waits a full second
		// after it, not after the last NoOp.
		time.Sleep(500 * time.Millisecond)
		if err := a.Send(context.Background(), link.MessageAck{Seq: 1}); err != nil {
			t.Fatal(err)
		}
		if cmd := <-got; cmd != (link.MessageAck{Seq: 1}) {
			t.Fatalf("got %+v", cmd)
		}
		time.Sleep(900 * time.Millisecond) // 11.4 s
		synctest.Wait()
		if n := metric(t, reg, "chorus_link_frames_sent_total"); n != 11 {
			t.Fatalf("at %v: %v frames sent, want 11", time.Since(start), n)
		}
		time.Sleep(200 * time.Millisecond) // 11.6 s
		synctest.Wait()
		if n := metric(t, reg, "chorus_link_frames_sent_total"); n != 12 {
			t.Fatalf("at %v: %v frames sent, want 12", time.Since(start), n)
		}
	})
}

// TestIdleTimeout: a peer that sends nothing at all, not even keepalives, is
// dropped after the idle timeout.
func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		acfg := linktest.NewConfig(t, 500)
		acfg.IdleTimeout = 5 * time.Second
		bcfg := linktest.NewConfig(t, 500)
		bcfg.KeepAlive = -1
		a, b := linktest.Pair(t, acfg, bcfg)
		start := time.Now()
		_, err := a.Recv(context.Background())
		if !errors.Is(err, link.ErrIdleTimeout) {
			t.Fatalf("Recv from a silent peer: %v", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("idle timeout after %v, want 5s", d)
		}
		// a dropped the link without a word; b sees it end.
		if _, err := b.Recv(context.Background()); err != io.EOF {
			t.Fatalf("b after a's idle timeout: %v", err)
		}
	})
}

// TestRecvDeadline: a Recv bounded by its context returns ctx's error and
// leaves the link working.
func TestRecvDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := linktest.Pair(t, linktest.NewConfig(t, 500), linktest.NewConfig(t, 500))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := b.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Recv with a deadline: %v", err)
		}
		if err := a.Send(context.Background(), link.RetrieveMessage{Seq: 3}); err != nil {
			t.Fatal(err)
		}
		cmd, err := b.Recv(context.Background())
		if err != nil || cmd != (link.RetrieveMessage{Seq: 3}) {
			t.Fatalf("after the deadline: %+v, %v", cmd, err)
		}
	})
}
