package daemon

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// NotifyContext returns a context that the first SIGINT or SIGTERM cancels,
// so the daemon drains. A second SIGINT or SIGTERM calls exit(ExitFailure)
// at once. SIGHUP calls hup (reopen the log file); hup may be nil. stop
// releases the signals and must be called.
func NotifyContext(parent context.Context, log *slog.Logger, hup func(), exit func(int)) (ctx context.Context, stop func()) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	ctx, stopHandling := handleSignals(parent, sigs, log, hup, exit)
	return ctx, func() {
		signal.Stop(sigs)
		stopHandling()
	}
}

// handleSignals is NotifyContext without the os/signal registration, so
// tests can feed it signals.
func handleSignals(parent context.Context, sigs <-chan os.Signal, log *slog.Logger, hup func(), exit func(int)) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		draining := false
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				switch s {
				case syscall.SIGHUP:
					log.Info("SIGHUP: reopening log")
					if hup != nil {
						hup()
					}
				default:
					if draining {
						log.Error("second signal: exiting at once", "signal", s.String())
						exit(ExitFailure)
						return
					}
					draining = true
					log.Info("signal received: shutting down; send it again to exit at once", "signal", s.String())
					cancel()
				}
			}
		}
	}()
	return ctx, func() {
		close(done)
		<-finished
		cancel()
	}
}
