package fence

import (
	"fmt"
	"strings"
)

// Error is a failed agent operation. Its message names the agent, the
// action, the node, the exit status and the agent's own complaint:
//
//	fence: agent fence_ipmilan: off for beta: exit 1: Failed: Unable to connect/login to fencing device
//
// Any secret the agent was given is replaced by "***" before it gets here.
type Error struct {
	// Agent is the agent as configured: a name such as fence_ipmilan, or a
	// path.
	Agent string
	// Action is the action that failed: off, on, status, monitor or
	// metadata.
	Action string
	// Node is the node acted on; empty for monitor and metadata.
	Node string
	// ExitCode is the agent's exit status, or -1 when it did not exit by
	// itself (it could not start, timed out or was killed).
	ExitCode int
	// Stderr is what the agent wrote on standard error, condensed to one
	// line, secrets redacted; when it wrote nothing there, the same of its
	// standard output.
	Stderr string
	// Err is the cause other than an exit status: a timeout, a
	// cancellation, a start failure, a bad parameter or an unexpected power
	// state. Nil when the agent simply exited with a failure status.
	Err error
	// Attempts is how many attempts the operation made in all, when more
	// than one was allowed; zero otherwise.
	Attempts int

	// final marks an error that another attempt cannot cure, such as a
	// bad parameter or a missing agent.
	final bool
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fence: agent %s: %s", e.Agent, e.Action)
	if e.Node != "" {
		fmt.Fprintf(&b, " for %s", e.Node)
	}
	switch {
	case e.Err != nil:
		fmt.Fprintf(&b, ": %v", e.Err)
	case e.ExitCode >= 0:
		fmt.Fprintf(&b, ": exit %d", e.ExitCode)
	}
	if e.Stderr != "" {
		fmt.Fprintf(&b, ": %s", e.Stderr)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }
