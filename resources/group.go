package resources

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Restart restarts the named member in place, and with it every member
// after it, which may depend on it: those are stopped in reverse order, then
// all are started again in order. A stop that fails ends the restart with
// that error and starts nothing; a start that fails rolls back as Start does.
func (g *Group) Restart(ctx context.Context, name string) error {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	first := g.index(name)
	if first < 0 {
		return fmt.Errorf("resources: group %q: no resource %q", g.name, name)
	}
	for i := len(g.members) - 1; i >= first; i-- {
		if err := g.run(ctx, i, opStop); err != nil {
			return err
		}
	}
	return g.startFrom(ctx, first)
}

// ForceStopper is a Resource that can be stopped with escalation: where Stop
// asks politely, ForceStop uses every means short of fencing the node (the
// filesystem kills the processes holding the mount at once). The same rule
// holds as for Stop: nil only when the resource is really stopped.
type ForceStopper interface {
	ForceStop(ctx context.Context) error
}

// State is what a group knows of one member, as its last operation left it.
type State int

// The states of a member. A member is StateUnknown until an operation or a
// monitor has told.
const (
	StateUnknown State = iota
	StateStopped
	StateStarted
	StateFailed
)

var stateNames = [...]string{"unknown", "stopped", "started", "failed"}

// String returns the state's name as the status API shows it: "unknown",
// "stopped", "started" or "failed".
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// MarshalText encodes the state as its name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("resources: unknown state %q", b)
}

// Timeouts bounds each operation on one member. A zero field takes the value
// of DefaultTimeouts.
type Timeouts struct {
	Start    time.Duration
	Stop     time.Duration
	Monitor  time.Duration
	Validate time.Duration
}

// DefaultTimeouts are the bounds of a member whose Timeouts leave a field
// zero: the same as Pacemaker's default operation timeout, except for the
// stop, which gets more time because giving up on a stop means fencing.
var DefaultTimeouts = Timeouts{
	Start:    20 * time.Second,
	Stop:     60 * time.Second,
	Monitor:  20 * time.Second,
	Validate: 20 * time.Second,
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Start <= 0 {
		t.Start = DefaultTimeouts.Start
	}
	if t.Stop <= 0 {
		t.Stop = DefaultTimeouts.Stop
	}
	if t.Monitor <= 0 {
		t.Monitor = DefaultTimeouts.Monitor
	}
	if t.Validate <= 0 {
		t.Validate = DefaultTimeouts.Validate
	}
	return t
}

// Member is one resource of a group with the bounds of its operations.
type Member struct {
	Resource Resource
	Timeouts Timeouts
}

// Record is what a group knows of one member, for a status API.
type Record struct {
	// Name is the member's name.
	Name string `json:"name"`
	// State is what the last operation left it in.
	State State `json:"state"`
	// Since is when it entered State.
	Since time.Time `json:"since,omitzero"`
	// LastOp is the last operation run on it: "start", "stop",
	// "force-stop" or "monitor".
	LastOp string `json:"last_op,omitempty"`
	// LastOpAt is when LastOp ended.
	LastOpAt time.Time `json:"last_op_at,omitzero"`
	// LastError is the message of the last failed operation, kept until
	// Cleanup, even once a later operation succeeded.
	LastError string `json:"last_error,omitempty"`
	// LastErrorOp is the operation that failed.
	LastErrorOp string `json:"last_error_op,omitempty"`
	// LastErrorAt is when it failed.
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// OpError is a group operation's failure on one member.
type OpError struct {
	// Op is "start", "stop", "force-stop", "monitor" or "validate".
	Op string
	// Resource is the member's name.
	Resource string
	// Err is the member's error.
	Err error
}

// Error returns the member's message when it already names the member (as
// this package's resources do), else the message prefixed with the operation
// and the member's name.
func (e *OpError) Error() string {
	var re *Error
	if errors.As(e.Err, &re) && re.Name == e.Resource {
		return e.Err.Error()
	}
	return fmt.Sprintf("resources: %s %q: %v", e.Op, e.Resource, e.Err)
}

// Unwrap returns the member's error.
func (e *OpError) Unwrap() error { return e.Err }

// StartError is a group start that failed part way. The group rolled back:
// it stopped, bottom to top, the member that failed and every member it had
// started before it. When Rollback is empty that left every member stopped;
// otherwise those members may still run, and the caller must escalate.
type StartError struct {
	// Failed is the start that failed.
	Failed *OpError
	// Rollback are the stops of the rollback that failed.
	Rollback []*OpError
}

// Error names the failed start and the rollback's outcome.
func (e *StartError) Error() string {
	if len(e.Rollback) == 0 {
		return e.Failed.Error() + " (group rolled back)"
	}
	msgs := make([]string, len(e.Rollback))
	for i, r := range e.Rollback {
		msgs[i] = r.Error()
	}
	return e.Failed.Error() + "; rollback failed: " + strings.Join(msgs, "; ")
}

// Unwrap returns the failed start followed by the rollback's failures.
func (e *StartError) Unwrap() []error {
	errs := []error{e.Failed}
	for _, r := range e.Rollback {
		errs = append(errs, r)
	}
	return errs
}

// Group is an ordered list of resources run as one: started top to bottom,
// stopped bottom to top. It is itself a Resource and a ForceStopper, so
// groups nest.
//
// Each member's operation runs under the member's own timeout. A member that
// does not return by its deadline (it breaks the Resource contract) is
// reported failed, with an error wrapping context.DeadlineExceeded, and left
// to finish in the background: the group never waits on a hung member past
// its bound, so an escalation can always proceed.
//
// Start, Stop, ForceStop, Monitor and Cleanup are serialised; Validate and
// Records may run at any time.
type Group struct {
	name    string
	members []Member
	now     func() time.Time

	opMu sync.Mutex // serialises Start, Stop, ForceStop, Monitor, Cleanup

	mu      sync.Mutex // guards records
	records []Record
}

// NewGroup returns a group of the members, in start order. Member names must
// be present and unique.
func NewGroup(name string, members ...Member) (*Group, error) {
	g := &Group{name: name, now: time.Now}
	seen := make(map[string]int)
	for i, m := range members {
		if m.Resource == nil {
			return nil, fmt.Errorf("resources: group %q: member %d has no resource", name, i+1)
		}
		n := m.Resource.Name()
		if n == "" {
			return nil, fmt.Errorf("resources: group %q: member %d has no name", name, i+1)
		}
		if j, ok := seen[n]; ok {
			return nil, fmt.Errorf("resources: group %q: members %d and %d are both named %q", name, j+1, i+1, n)
		}
		seen[n] = i
		m.Timeouts = m.Timeouts.withDefaults()
		g.members = append(g.members, m)
		g.records = append(g.records, Record{Name: n})
	}
	return g, nil
}

// Name returns the group's name.
func (g *Group) Name() string { return g.name }

// Start starts the members top to bottom. When one fails it stops, bottom to
// top, that member and those started before it, and returns a *StartError.
// The rollback runs even when ctx is done, each stop bounded by its member's
// stop timeout.
func (g *Group) Start(ctx context.Context) error {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	return g.startFrom(ctx, 0)
}

// startFrom starts the members from first on, in order. When one fails it
// stops, in reverse, the one that failed and those started before it, back
// to first, even if ctx is already done.
func (g *Group) startFrom(ctx context.Context, first int) error {
	for i := first; i < len(g.members); i++ {
		err := g.run(ctx, i, opStart)
		if err == nil {
			continue
		}
		se := &StartError{Failed: err}
		rctx := context.WithoutCancel(ctx)
		for j := i; j >= first; j-- {
			if err := g.run(rctx, j, opStop); err != nil {
				se.Rollback = append(se.Rollback, err)
			}
		}
		return se
	}
	return nil
}

// Stop stops the members bottom to top, each one whatever its recorded state
// (Stop is idempotent). At the first member that fails to stop it returns
// that member's *OpError and leaves the members above it in start order
// untouched: they are what the failed one depends on, and stopping them
// under it would pull the ground from a running resource. The caller
// escalates with ForceStop.
func (g *Group) Stop(ctx context.Context) error {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	for i := len(g.members) - 1; i >= 0; i-- {
		if err := g.run(ctx, i, opStop); err != nil {
			return err
		}
	}
	return nil
}

// ForceStop stops the members bottom to top with escalation: a member that is
// a ForceStopper is force-stopped, any other is stopped. Unlike Stop it goes
// on past failures, since it is the last step before fencing the node and
// each member stopped is one less to hold; it returns every failure joined.
func (g *Group) ForceStop(ctx context.Context) error {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	var errs []error
	for i := len(g.members) - 1; i >= 0; i-- {
		if err := g.run(ctx, i, opForceStop); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Monitor monitors every member, top to bottom, and returns the first that
// is not healthy as an *OpError naming it; a member that is cleanly stopped
// counts, and its error wraps ErrStopped. All members are monitored, so every
// record is fresh afterwards.
func (g *Group) Monitor(ctx context.Context) error {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	var first error
	for i := range g.members {
		if err := g.run(ctx, i, opMonitor); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Validate validates every member and returns all their failures joined.
func (g *Group) Validate(ctx context.Context) error {
	var errs []error
	for i := range g.members {
		if err := g.run(ctx, i, opValidate); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Records returns a copy of every member's record, in start order.
func (g *Group) Records() []Record {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Record(nil), g.records...)
}

// Record returns the named member's record.
func (g *Group) Record(name string) (Record, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.records {
		if r.Name == name {
			return r, true
		}
	}
	return Record{}, false
}

// Cleanup clears the named member's last error and monitors it afresh, so
// its record shows what holds now. It returns the monitor's error, except
// ErrStopped: a stopped member is clean.
func (g *Group) Cleanup(ctx context.Context, name string) error {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	i := g.index(name)
	if i < 0 {
		return fmt.Errorf("resources: group %q: no resource %q", g.name, name)
	}
	g.mu.Lock()
	r := &g.records[i]
	r.LastError, r.LastErrorOp, r.LastErrorAt = "", "", time.Time{}
	g.mu.Unlock()
	if err := g.run(ctx, i, opMonitor); err != nil && !errors.Is(err, ErrStopped) {
		return err
	}
	return nil
}

func (g *Group) index(name string) int {
	for i, m := range g.members {
		if m.Resource.Name() == name {
			return i
		}
	}
	return -1
}

const (
	opStart     = "start"
	opStop      = "stop"
	opForceStop = "force-stop"
	opMonitor   = "monitor"
	opValidate  = "validate"
)

// deadlineGrace is how long past its deadline a member still gets to return
// its own error, which says more than the group's "did not return".
const deadlineGrace = 100 * time.Millisecond

// run runs one operation on member i under the member's timeout and records
// the outcome.
func (g *Group) run(ctx context.Context, i int, op string) *OpError {
	m := g.members[i]
	var limit time.Duration
	var fn func(context.Context) error
	switch op {
	case opStart:
		limit, fn = m.Timeouts.Start, m.Resource.Start
	case opStop:
		limit, fn = m.Timeouts.Stop, m.Resource.Stop
	case opForceStop:
		limit, fn = m.Timeouts.Stop, m.Resource.Stop
		if f, ok := m.Resource.(ForceStopper); ok {
			fn = f.ForceStop
		}
	case opMonitor:
		limit, fn = m.Timeouts.Monitor, m.Resource.Monitor
	case opValidate:
		limit, fn = m.Timeouts.Validate, m.Resource.Validate
	}
	err := callBounded(ctx, limit, fn)
	if op != opValidate {
		g.record(i, op, err)
	}
	if err != nil {
		return &OpError{Op: op, Resource: m.Resource.Name(), Err: err}
	}
	return nil
}

// callBounded calls fn with a context bounded by limit and returns its
// error, or a deadline error when fn overruns the bound. A panic in fn is
// returned as an error: a resource's bug must not take down the node that has
// to escalate around it.
func callBounded(ctx context.Context, limit time.Duration, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("panic: %v", p)
			}
		}()
		done <- fn(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(deadlineGrace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("did not return in time (limit %v): %w", limit, ctx.Err())
	}
}

func (g *Group) record(i int, op string, err error) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	r := &g.records[i]
	var s State
	switch {
	case err == nil && op == opStart, err == nil && op == opMonitor:
		s = StateStarted
	case err == nil:
		s = StateStopped
	case op == opMonitor && errors.Is(err, ErrStopped):
		s = StateStopped
		err = nil
	default:
		s = StateFailed
	}
	if s != r.State || r.Since.IsZero() {
		r.State, r.Since = s, now
	}
	r.LastOp, r.LastOpAt = op, now
	if err != nil {
		r.LastError, r.LastErrorOp, r.LastErrorAt = err.Error(), op, now
	}
}
