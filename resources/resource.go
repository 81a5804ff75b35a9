package resources

import (
	"context"
	"errors"
)

// ErrStopped is what Monitor returns for a resource that is cleanly stopped:
// not running, and not failed either.
var ErrStopped = errors.New("stopped")

// Resource is one part of the service a node holds: a mount, an address, a
// daemon. Every method is safe to call in any state:
//
//   - Start on a started resource succeeds and changes nothing.
//   - Stop on a stopped resource succeeds and changes nothing. Stop returns nil
//     only when the resource is really stopped; a resource it cannot stop is
//     an error, never a quiet success.
//   - Monitor returns nil while the resource runs and is healthy, ErrStopped
//     (possibly wrapped) when it is cleanly stopped, and any other error when
//     it has failed.
//   - Validate checks the parameters and the host (binaries, devices) without
//     changing anything.
//
// Methods honour the context's deadline; a method that overruns it returns an
// error that wraps the context's error.
type Resource interface {
	// Name is the resource's name from the configuration.
	Name() string
	// Start brings the resource up.
	Start(ctx context.Context) error
	// Stop brings the resource down.
	Stop(ctx context.Context) error
	// Monitor reports whether the resource runs and is healthy.
	Monitor(ctx context.Context) error
	// Validate checks parameters and host without side effects.
	Validate(ctx context.Context) error
}
