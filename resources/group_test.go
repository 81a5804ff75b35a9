package resources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// journal records the operations fake resources see, in order.
type journal struct {
	mu  sync.Mutex
	ops []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ops = append(j.ops, s)
}

func (j *journal) take() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := strings.Join(j.ops, " ")
	j.ops = nil
	return s
}

// fake is an idempotent resource whose operations can be made to fail.
type fake struct {
	name    string
	j       *journal
	mu      sync.Mutex
	running bool

	startErr, stopErr, monitorErr, validateErr error
	// onStart runs inside Start, with its context.
	onStart func(ctx context.Context)
	// onStop runs inside Stop, with its context.
	onStop func(ctx context.Context)
}

func (f *fake) Name() string { return f.name }

func (f *fake) Start(ctx context.Context) error {
	f.j.add("start:" + f.name)
	if f.onStart != nil {
		f.onStart(ctx)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return f.startErr
	}
	f.running = true
	return nil
}

func (f *fake) Stop(ctx context.Context) error {
	f.j.add("stop:" + f.name)
	if f.onStop != nil {
		f.onStop(ctx)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopErr != nil {
		return f.stopErr
	}
	f.running = false
	return nil
}

func (f *fake) Monitor(ctx context.Context) error {
	f.j.add("monitor:" + f.name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.monitorErr != nil {
		return f.monitorErr
	}
	if !f.running {
		return fmt.Errorf("%s: %w", f.name, ErrStopped)
	}
	return nil
}

func (f *fake) Validate(ctx context.Context) error {
	f.j.add("validate:" + f.name)
	return f.validateErr
}

// forceFake is a fake that can be force-stopped.
type forceFake struct{ *fake }

func (f forceFake) ForceStop(ctx context.Context) error {
	f.j.add("force:" + f.name)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running = false
	return nil
}

func newFakes(j *journal, names ...string) []*fake {
	out := make([]*fake, len(names))
	for i, n := range names {
		out[i] = &fake{name: n, j: j}
	}
	return out
}

func group(t *testing.T, rs ...Resource) *Group {
	t.Helper()
	ms := make([]Member, len(rs))
	for i, r := range rs {
		ms[i] = Member{Resource: r}
	}
	g, err := NewGroup("svc", ms...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func states(g *Group) string {
	var s []string
	for _, r := range g.Records() {
		s = append(s, r.Name+"="+r.State.String())
	}
	return strings.Join(s, " ")
}

func TestGroupOrder(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "data", "vip", "smb")
	g := group(t, fs[0], fs[1], fs[2])
	ctx := context.Background()

	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := j.take(), "start:data start:vip start:smb"; got != want {
		t.Errorf("start order %q, want %q", got, want)
	}
	if got, want := states(g), "data=started vip=started smb=started"; got != want {
		t.Errorf("states %q, want %q", got, want)
	}
	// Start on a started group is a start of every member, each idempotent.
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	j.take()
	if err := g.Monitor(ctx); err != nil {
		t.Fatalf("monitor of a started group: %v", err)
	}
	j.take()

	if err := g.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := j.take(), "stop:smb stop:vip stop:data"; got != want {
		t.Errorf("stop order %q, want %q", got, want)
	}
	if got, want := states(g), "data=stopped vip=stopped smb=stopped"; got != want {
		t.Errorf("states %q, want %q", got, want)
	}
	if err := g.Stop(ctx); err != nil {
		t.Fatalf("stop of a stopped group: %v", err)
	}
}

func TestGroupRollback(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "data", "vip", "smb")
	boom := errors.New("address in use")
	fs[1].startErr = boom
	g := group(t, fs[0], fs[1], fs[2])

	err := g.Start(context.Background())
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("start error %v (%T), want *StartError", err, err)
	}
	if got, want := j.take(), "start:data start:vip stop:vip stop:data"; got != want {
		t.Errorf("operations %q, want %q", got, want)
	}
	if se.Failed.Resource != "vip" || se.Failed.Op != "start" || len(se.Rollback) != 0 {
		t.Errorf("start error %+v, want vip's start and a clean rollback", se)
	}
	if !errors.Is(err, boom) {
		t.Errorf("start error %v does not wrap the member's error", err)
	}
	if got, want := err.Error(), `resources: start "vip": address in use (group rolled back)`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if got, want := states(g), "data=stopped vip=stopped smb=unknown"; got != want {
		t.Errorf("states %q, want %q", got, want)
	}
	if r, _ := g.Record("vip"); r.LastError != "address in use" || r.LastErrorOp != "start" {
		t.Errorf("vip record %+v: want the start's error kept", r)
	}
}

func TestGroupRollbackFailure(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "data", "vip", "smb")
	fs[2].startErr = errors.New("smbd exited")
	fs[0].stopErr = errors.New("device busy")
	g := group(t, fs[0], fs[1], fs[2])

	err := g.Start(context.Background())
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("start error %v, want *StartError", err)
	}
	if got, want := j.take(), "start:data start:vip start:smb stop:smb stop:vip stop:data"; got != want {
		t.Errorf("operations %q, want %q", got, want)
	}
	if len(se.Rollback) != 1 || se.Rollback[0].Resource != "data" {
		t.Fatalf("rollback failures %v, want data's", se.Rollback)
	}
	msg := err.Error()
	for _, want := range []string{`start "smb": smbd exited`, `rollback failed: resources: stop "data": device busy`} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if got, want := states(g), "data=failed vip=stopped smb=stopped"; got != want {
		t.Errorf("states %q, want %q", got, want)
	}
}

func TestGroupRollbackOutlivesCallerContext(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "data", "vip")
	ctx, cancel := context.WithCancel(context.Background())
	fs[1].onStart = func(context.Context) { cancel() }
	fs[1].startErr = context.Canceled
	var rollbackCtxErr error
	fs[0].onStop = func(ctx context.Context) { rollbackCtxErr = ctx.Err() }
	g := group(t, fs[0], fs[1])

	if err := g.Start(ctx); err == nil {
		t.Fatal("start succeeded")
	}
	if got, want := j.take(), "start:data start:vip stop:vip stop:data"; got != want {
		t.Errorf("operations %q, want %q", got, want)
	}
	if rollbackCtxErr != nil {
		t.Errorf("rollback ran with a done context: %v", rollbackCtxErr)
	}
}

func TestGroupStopHaltsAtFailure(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "data", "vip", "smb")
	g := group(t, fs[0], fs[1], fs[2])
	ctx := context.Background()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	j.take()
	fs[1].stopErr = errors.New("netlink: permission denied")

	err := g.Stop(ctx)
	var oe *OpError
	if !errors.As(err, &oe) || oe.Resource != "vip" || oe.Op != "stop" {
		t.Fatalf("stop error %v, want vip's stop", err)
	}
	if got, want := j.take(), "stop:smb stop:vip"; got != want {
		t.Errorf("operations %q, want %q (data must stay under a running vip)", got, want)
	}
	if got, want := states(g), "data=started vip=failed smb=stopped"; got != want {
		t.Errorf("states %q, want %q", got, want)
	}
}

func TestGroupForceStop(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "data", "vip", "smb")
	g := group(t, forceFake{fs[0]}, fs[1], fs[2])
	ctx := context.Background()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	j.take()
	fs[1].stopErr = errors.New("netlink: permission denied")

	err := g.ForceStop(ctx)
	if err == nil || !strings.Contains(err.Error(), `force-stop "vip"`) {
		t.Fatalf("force stop error %v, want vip's", err)
	}
	if got, want := j.take(), "stop:smb stop:vip force:data"; got != want {
		t.Errorf("operations %q, want %q", got, want)
	}
	if got, want := states(g), "data=stopped vip=failed smb=stopped"; got != want {
		t.Errorf("states %q, want %q", got, want)
	}
}

func TestGroupMonitorNamesFirstFailure(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "data", "vip", "smb")
	g := group(t, fs[0], fs[1], fs[2])
	ctx := context.Background()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	j.take()
	fs[1].monitorErr = &Error{Kind: "floatip", Name: "vip", Err: errors.New("interface eth0 of 198.18.0.50 is down")}
	fs[2].monitorErr = errors.New("no NEGOTIATE answer")

	err := g.Monitor(ctx)
	var oe *OpError
	if !errors.As(err, &oe) || oe.Resource != "vip" {
		t.Fatalf("monitor error %v, want vip's", err)
	}
	if got, want := err.Error(), `resources: floatip "vip": interface eth0 of 198.18.0.50 is down`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if got, want := j.take(), "monitor:data monitor:vip monitor:smb"; got != want {
		t.Errorf("operations %q, want %q (every member monitored)", got, want)
	}
	if got, want := states(g), "data=started vip=failed smb=failed"; got != want {
		t.Errorf("states %q, want %q", got, want)
	}

	// A stopped group reports its first member, wrapping ErrStopped.
	fs[1].monitorErr, fs[2].monitorErr = nil, nil
	if err := g.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	err = g.Monitor(ctx)
	if !errors.Is(err, ErrStopped) || !errors.As(err, &oe) || oe.Resource != "data" {
		t.Errorf("monitor of a stopped group: %v, want data's ErrStopped", err)
	}
	if got, want := states(g), "data=stopped vip=stopped smb=stopped"; got != want {
		t.Errorf("states %q, want %q", got, want)
	}
}

func TestGroupRecords(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "data", "vip")
	g := group(t, fs[0], fs[1])
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	g.now = func() time.Time { return clock }
	ctx := context.Background()

	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	started := clock
	clock = clock.Add(time.Minute)
	if err := g.Monitor(ctx); err != nil {
		t.Fatal(err)
	}
	r, ok := g.Record("vip")
	if !ok {
		t.Fatal("no record for vip")
	}
	if r.State != StateStarted || !r.Since.Equal(started) || r.LastOp != "monitor" || !r.LastOpAt.Equal(clock) {
		t.Errorf("record %+v: want started since %v, last monitor at %v", r, started, clock)
	}

	clock = clock.Add(time.Minute)
	fs[1].monitorErr = errors.New("gone")
	g.Monitor(ctx)
	failedAt := clock
	clock = clock.Add(time.Minute)
	fs[1].monitorErr = nil
	if err := g.Monitor(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ = g.Record("vip")
	if r.State != StateStarted || !r.Since.Equal(clock) || r.LastError != "gone" || !r.LastErrorAt.Equal(failedAt) {
		t.Errorf("record %+v: want started again, the failure kept", r)
	}

	if err := g.Cleanup(ctx, "vip"); err != nil {
		t.Fatal(err)
	}
	r, _ = g.Record("vip")
	if r.LastError != "" || r.State != StateStarted {
		t.Errorf("record after cleanup %+v: want no error, started", r)
	}
	if err := g.Cleanup(ctx, "nosuch"); err == nil {
		t.Error("cleanup of an unknown member succeeded")
	}

	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"state":"started"`) || strings.Contains(string(b), "last_error") {
		t.Errorf("record JSON %s: want the state by name and no empty error", b)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil || back.State != StateStarted {
		t.Errorf("record JSON does not round-trip: %v, %+v", err, back)
	}
}

func TestGroupTimeoutOfHungMember(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "data", "vip")
	release := make(chan struct{})
	defer close(release)
	// vip ignores its context, as a broken resource would.
	fs[1].onStart = func(context.Context) { <-release }
	g, err := NewGroup("svc",
		Member{Resource: fs[0]},
		Member{Resource: fs[1], Timeouts: Timeouts{Start: 50 * time.Millisecond}},
	)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	err = g.Start(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("start error %v, want a deadline error", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("start took %v despite a 50ms bound", d)
	}
	if got := states(g); got != "data=stopped vip=stopped" {
		t.Errorf("states %q after the rollback", got)
	}
}

func TestGroupPanicIsAnError(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "data")
	fs[0].onStart = func(context.Context) { panic("nil map") }
	g := group(t, fs[0])
	err := g.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "panic: nil map") {
		t.Fatalf("start error %v, want the panic", err)
	}
}

func TestGroupValidateJoinsAll(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "data", "vip")
	fs[0].validateErr = errors.New("no such device")
	fs[1].validateErr = errors.New("bad prefix")
	g := group(t, fs[0], fs[1])
	err := g.Validate(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no such device") || !strings.Contains(err.Error(), "bad prefix") {
		t.Errorf("validate error %v, want both", err)
	}
	if got := states(g); got != "data=unknown vip=unknown" {
		t.Errorf("validate changed states: %q", got)
	}
}

func TestNewGroupRejects(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "a", "a", "")
	for _, tc := range []struct {
		name string
		ms   []Member
		want string
	}{
		{"duplicate", []Member{{Resource: fs[0]}, {Resource: fs[1]}}, `members 1 and 2 are both named "a"`},
		{"unnamed", []Member{{Resource: fs[2]}}, "member 1 has no name"},
		{"nil", []Member{{}}, "member 1 has no resource"},
	} {
		_, err := NewGroup("svc", tc.ms...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestGroupNests(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "a", "b", "c")
	inner := group(t, fs[1], fs[2])
	var _ ForceStopper = inner
	outer := group(t, fs[0], inner)
	ctx := context.Background()
	if err := outer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := outer.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := j.take(), "start:a start:b start:c stop:c stop:b stop:a"; got != want {
		t.Errorf("operations %q, want %q", got, want)
	}
}

func TestGroupRestartTakesDependentsAlong(t *testing.T) {
	j := &journal{}
	fs := newFakes(j, "data", "vip", "smb")
	g := group(t, fs[0], fs[1], fs[2])
	ctx := context.Background()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	j.take()
	if err := g.Restart(ctx, "vip"); err != nil {
		t.Fatal(err)
	}
	if got, want := j.take(), "stop:smb stop:vip start:vip start:smb"; got != want {
		t.Fatalf("restart of vip ran %q, want %q", got, want)
	}
	if err := g.Restart(ctx, "nfs"); err == nil || !strings.Contains(err.Error(), `no resource "nfs"`) {
		t.Fatalf("restart of an unknown resource: %v", err)
	}

	// A start that fails rolls back to the restarted member, not further.
	fs[2].startErr = errors.New("smbd would not start")
	err := g.Restart(ctx, "vip")
	var se *StartError
	if !errors.As(err, &se) || se.Failed.Resource != "smb" {
		t.Fatalf("restart with a failing dependent: %v", err)
	}
	if got, want := j.take(), "stop:smb stop:vip start:vip start:smb stop:smb stop:vip"; got != want {
		t.Fatalf("failed restart ran %q, want %q", got, want)
	}
	if !fs[0].running {
		t.Fatal("the failed restart of vip stopped data, which comes before it")
	}

	// A stop that fails starts nothing.
	fs[2].startErr = nil
	g.Start(ctx)
	j.take()
	fs[1].stopErr = errors.New("address stuck")
	if err := g.Restart(ctx, "vip"); err == nil {
		t.Fatal("restart succeeded though vip would not stop")
	}
	if got, want := j.take(), "stop:smb stop:vip"; got != want {
		t.Fatalf("restart with a failing stop ran %q, want %q", got, want)
	}
}
