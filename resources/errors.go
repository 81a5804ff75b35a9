package resources

import "fmt"

// Error is the error a resource of this package returns: which kind of
// resource, which one, and what went wrong. Its message reads
//
//	resources: filesystem "data": unmount /srv/samba: device busy, held by pid 123 (sleep)
type Error struct {
	// Kind is the resource type: "filesystem", "floatip".
	Kind string
	// Name is the resource's name from the configuration.
	Name string
	// Err is what went wrong, naming the object (device, path, address).
	Err error
}

// Error returns the message, prefixed with the kind and name.
func (e *Error) Error() string {
	return fmt.Sprintf("resources: %s %q: %v", e.Kind, e.Name, e.Err)
}

// Unwrap returns the underlying error, so errors.Is finds ErrStopped and
// the context's errors.
func (e *Error) Unwrap() error { return e.Err }
