package cluster

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Signals returns a context that is done at the first SIGINT or SIGTERM
// (stop: drain) and a channel that is closed at the second (Config.Force:
// stop now). stop releases the signals; call it before returning.
func Signals(parent context.Context) (ctx context.Context, force <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	forced := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-sigs:
			cancel()
		case <-quit:
			return
		}
		select {
		case <-sigs:
			close(forced)
		case <-quit:
		}
	}()
	return ctx, forced, func() {
		signal.Stop(sigs)
		close(quit)
		<-done
		cancel()
	}
}
