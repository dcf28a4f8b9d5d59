package mixtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// StopTimeout bounds how long stop waits for run to return.
const StopTimeout = 60 * time.Second

// Run runs run in a goroutine until the returned stop is called, or the
// test ends: stop cancels run's context, waits for it to return (for at
// most StopTimeout), then calls closeFn, and returns the first error of
// the two. Stop may be called more than once; the test fails if the stop
// at its end finds an error.
func Run(t testing.TB, run func(context.Context) error, closeFn func() error) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(StopTimeout):
				err = fmt.Errorf("did not stop within %v", StopTimeout)
			}
			if cerr := closeFn(); err == nil {
				err = cerr
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return stop
}
