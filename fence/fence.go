package fence

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Fencer powers one node off and confirms it. The daemon holds one per
// peer; a fence agent ([Agent]) is one kind, and other kinds (a message on
// the quorum disk) implement the same contract.
//
// Fence returns a nil error only when the node is known to be off. A Fencer
// does not decide when to fence, and its caller retries a failed Fence: an
// implementation keeps its own retries short.
type Fencer interface {
	Fence(ctx context.Context) (Result, error)
}

// Power is a node's power state as a fencing device reports it.
type Power int

// The power states. PowerUnknown is the zero value: nothing was confirmed.
const (
	PowerUnknown Power = iota
	PowerOn
	PowerOff
)

// String returns "unknown", "on" or "off".
func (p Power) String() string {
	switch p {
	case PowerOn:
		return "on"
	case PowerOff:
		return "off"
	default:
		return "unknown"
	}
}

// Result describes one fencing operation, whether it succeeded or not, so
// that status and logs can show it.
type Result struct {
	// Fencer names the means, such as "agent fence_ipmilan".
	Fencer string
	// Node is the node acted on; empty for a device check (monitor).
	Node string
	// Action is the operation: off, on, status or monitor.
	Action string
	// Power is the power state the device confirmed last, PowerUnknown
	// when it confirmed none.
	Power Power
	// Attempts counts the attempts made, at least 1 once anything ran.
	Attempts int
	// Duration is the wall time of the whole operation, retries and their
	// backoff included.
	Duration time.Duration
}

// String gives a one-line summary such as
// "agent fence_ipmilan: off for beta: power off, 1 attempt, 2.1s".
func (r Result) String() string {
	var b strings.Builder
	b.WriteString(r.Fencer)
	b.WriteString(": ")
	b.WriteString(r.Action)
	if r.Node != "" {
		b.WriteString(" for ")
		b.WriteString(r.Node)
	}
	fmt.Fprintf(&b, ": power %s, %d attempt", r.Power, r.Attempts)
	if r.Attempts != 1 {
		b.WriteString("s")
	}
	fmt.Fprintf(&b, ", %v", r.Duration.Round(time.Millisecond))
	return b.String()
}
