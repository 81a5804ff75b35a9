package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"syscall"
)

// Errors a Daemon marks its errors with (Errorf, or fmt.Errorf with %w) to
// choose the HTTP status of its answer. A Client's *Error matches the same values with errors.Is,
// so a caller can tell them apart on either side of the socket. Any other
// error is a 500.
var (
	// ErrInvalid: the request makes no sense as given (an unknown node,
	// fencing the local node without self). 400 Bad Request.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: the request names something that does not exist, such
	// as a resource to clean up. 404 Not Found.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request is valid but not now (a takeover while the
	// peer holds the service and cannot be reached, a move while another
	// is under way). 409 Conflict.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the daemon cannot answer yet, for instance while it
	// starts. 503 Service Unavailable.
	ErrUnavailable = errors.New("unavailable")
	// ErrForbidden: the peer is not root. 403 Forbidden. Only the server
	// itself answers with it.
	ErrForbidden = errors.New("forbidden")
	// ErrUnreachable: a Client could not reach the daemon at all, or lost
	// the connection before an answer. See *UnreachableError.
	ErrUnreachable = errors.New("tandemd unreachable")
)

// Errorf formats an error like fmt.Errorf, %w included, and marks it as
// kind (ErrInvalid, ErrNotFound, ErrConflict, ErrUnavailable) without adding
// kind's text to the message, so that the client sees only what the format
// says:
//
//	return admin.Errorf(admin.ErrNotFound, "no resource %q in the group", name)
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

// kindError is an error marked with a kind that chooses its HTTP status.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// statusOf maps a Daemon's error to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// Error is an answer of the server with a status of 400 or more, as a
// Client returns it.
type Error struct {
	// Op is the Client method that failed, such as "takeover".
	Op string
	// Status is the HTTP status code.
	Status int
	// Message is the server's message, from the "error" field of the body.
	Message string
}

// Error returns the operation and the server's message, as
// "takeover: peer beta holds the service".
func (e *Error) Error() string {
	return e.Op + ": " + e.Message
}

// Is reports whether the status of e is the one the server gives for
// target, one of ErrInvalid, ErrNotFound, ErrConflict, ErrUnavailable,
// ErrForbidden, or context.DeadlineExceeded.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrInvalid, ErrNotFound, ErrConflict, ErrUnavailable, ErrForbidden, context.DeadlineExceeded:
		return statusOf(target) == e.Status
	}
	return false
}

// UnreachableError says that a Client could not talk to the daemon: the
// socket does not exist, nothing listens on it, the caller may not open it,
// or the connection broke before an answer came. It matches ErrUnreachable
// with errors.Is.
type UnreachableError struct {
	// Op is the Client method that failed, such as "status".
	Op string
	// Socket is the path of the socket dialled.
	Socket string
	// Err is what went wrong.
	Err error
}

// Error names the socket, says why, and hints at the usual cause.
func (e *UnreachableError) Error() string {
	hint := "is tandemd running?"
	if errors.Is(e.Err, syscall.EACCES) || errors.Is(e.Err, syscall.EPERM) {
		hint = "the admin socket is root's only"
	}
	return fmt.Sprintf("%s: cannot reach tandemd at %s (%s): %v", e.Op, e.Socket, hint, e.Err)
}

// Unwrap returns Err.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Is matches ErrUnreachable.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }
