package smbservice

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"github.com/tandem-ha/tandem/resources"
)

// fakeUnit is one unit of fakeSystemd. Its state changes as systemd's would
// on start, stop and kill, unless told to misbehave.
type fakeUnit struct {
	load, active, sub, result string

	startResult string // result of start jobs; "done" when empty
	stopResult  string // result of stop jobs; "done" when empty
	hang        bool   // jobs never end
	stayActive  bool   // a stop job leaves the unit active
	killIgnored bool   // SIGKILL leaves the unit active too

	// real, when set, backs the unit with a supervised process: start
	// launches it, stop halts it, and its state is read from it.
	real *Process
}

// fakeSystemd plays systemd behind its D-Bus API.
type fakeSystemd struct {
	mu       sync.Mutex
	units    map[string]*fakeUnit
	calls    []string // "start smbd.service", "stop …", "kill …", "reset …"
	gen      int      // bumped when the bus restarts: older connections are lost
	connects int
	// dropOnJob, when > 0, makes that many jobs lose the connection instead
	// of ending.
	dropOnJob int
	// dropBeforeCall, when > 0, makes that many calls lose the connection
	// first.
	dropBeforeCall int
	// pipeOnCall, when > 0, makes that many calls fail as a write to a bus
	// daemon that just went away does: before the connection knows.
	pipeOnCall int
}

func newFakeSystemd(units ...string) *fakeSystemd {
	f := &fakeSystemd{units: map[string]*fakeUnit{}}
	for _, u := range units {
		f.units[u] = &fakeUnit{load: "loaded", active: "inactive", sub: "dead"}
	}
	return f
}

func (f *fakeSystemd) connect(ctx context.Context) (systemdConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connects++
	return &fakeConn{f: f, gen: f.gen}, nil
}

// restartBus loses every open connection, as a restarted D-Bus daemon does.
func (f *fakeSystemd) restartBus() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
}

func (f *fakeSystemd) unit(name string) *fakeUnit {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.units[name]
}

func (f *fakeSystemd) set(name string, edit func(u *fakeUnit)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	edit(f.units[name])
}

func (f *fakeSystemd) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// callsOf lists the units of the calls of one kind, in order.
func (f *fakeSystemd) callsOf(kind string) []string {
	var out []string
	for _, c := range f.callList() {
		if u, ok := strings.CutPrefix(c, kind+" "); ok {
			out = append(out, u)
		}
	}
	return out
}

type fakeConn struct {
	f      *fakeSystemd
	gen    int
	closed bool
}

func (c *fakeConn) Connected() bool {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	return !c.closed && c.gen == c.f.gen
}

func (c *fakeConn) Close() {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.closed = true
}

// enter checks the connection and finds the unit; f.mu is held on success.
func (c *fakeConn) enter(name string) (*fakeUnit, error) {
	c.f.mu.Lock()
	if c.f.dropBeforeCall > 0 {
		c.f.dropBeforeCall--
		c.f.gen++
	}
	if c.closed || c.gen != c.f.gen {
		c.f.mu.Unlock()
		return nil, dbus.ErrClosed
	}
	if c.f.pipeOnCall > 0 {
		c.f.pipeOnCall--
		c.f.mu.Unlock()
		return nil, &net.OpError{Op: "write", Net: "unix", Err: os.NewSyscallError("write", syscall.EPIPE)}
	}
	u := c.f.units[name]
	if u == nil {
		c.f.mu.Unlock()
		return nil, dbus.Error{Name: "org.freedesktop.systemd1.NoSuchUnit", Body: []any{"Unit " + name + " not found."}}
	}
	return u, nil
}

func (c *fakeConn) job(name, kind string, ch chan<- string) (int, error) {
	u, err := c.enter(name)
	if err != nil {
		return 0, err
	}
	f := c.f
	f.calls = append(f.calls, kind+" "+name)
	real := u.real
	f.mu.Unlock()
	// A real process is started and stopped outside the lock, as
	// systemd's jobs run apart from its bus.
	var rerr error
	if real != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if kind == "start" {
			rerr = real.Launch(ctx)
		} else {
			rerr = real.Halt(ctx)
		}
		cancel()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	result := "done"
	switch {
	case rerr != nil:
		result = "failed"
		u.active, u.sub = "failed", "failed"
	case kind == "start":
		if u.startResult != "" {
			result = u.startResult
		}
		if result == "done" {
			u.active, u.sub, u.result = "active", "running", "success"
		}
	case kind == "stop":
		if u.stopResult != "" {
			result = u.stopResult
		}
		if !u.stayActive && u.active != "failed" {
			u.active, u.sub = "inactive", "dead"
		}
	}
	switch {
	case f.dropOnJob > 0:
		f.dropOnJob--
		f.gen++
	case !u.hang:
		ch <- result
	}
	return len(f.calls), nil
}

func (c *fakeConn) StartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	return c.job(name, "start", ch)
}

func (c *fakeConn) StopUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	return c.job(name, "stop", ch)
}

func (c *fakeConn) KillUnitWithTarget(ctx context.Context, name string, target sddbus.Who, signal int32) error {
	u, err := c.enter(name)
	if err != nil {
		return err
	}
	defer c.f.mu.Unlock()
	c.f.calls = append(c.f.calls, fmt.Sprintf("kill %s", name))
	if target != sddbus.All || signal != int32(syscall.SIGKILL) {
		return fmt.Errorf("fake: kill %s %d, want all and SIGKILL", target, signal)
	}
	if !u.killIgnored {
		u.active, u.sub, u.result, u.stayActive = "failed", "failed", "signal", false
	}
	return nil
}

func (c *fakeConn) ResetFailedUnitContext(ctx context.Context, name string) error {
	u, err := c.enter(name)
	if err != nil {
		return err
	}
	defer c.f.mu.Unlock()
	c.f.calls = append(c.f.calls, "reset "+name)
	if u.active == "failed" {
		u.active, u.sub, u.result = "inactive", "dead", "success"
	}
	return nil
}

func (c *fakeConn) GetUnitPropertiesContext(ctx context.Context, name string) (map[string]any, error) {
	u, err := c.enter(name)
	if err != nil {
		return nil, err
	}
	defer c.f.mu.Unlock()
	if u.real != nil && u.active == "active" {
		// A unit whose main process died fails, as a service does.
		if err := u.real.Alive(ctx); err != nil {
			u.active, u.sub, u.result = "failed", "failed", "signal"
		}
	}
	return map[string]any{"Id": name, "LoadState": u.load, "ActiveState": u.active, "SubState": u.sub}, nil
}

func (c *fakeConn) GetUnitTypePropertyContext(ctx context.Context, name, typ, prop string) (*sddbus.Property, error) {
	u, err := c.enter(name)
	if err != nil {
		return nil, err
	}
	defer c.f.mu.Unlock()
	if typ != "Service" || prop != "Result" {
		return nil, fmt.Errorf("fake: no property %s.%s", typ, prop)
	}
	return &sddbus.Property{Name: prop, Value: dbus.MakeVariant(u.result)}, nil
}

var threeUnits = []string{"smbd.service", "nmbd.service", "winbind.service"}

// testSystemd returns a systemd-mode smb resource over a fake systemd whose
// units are those named, and whose NEGOTIATE goes to fn. Unless fn says
// otherwise, only a started smbd.service answers.
func testSystemd(t *testing.T, fn *fakeNet, units ...string) (*SystemdResource, *fakeSystemd, *logBuffer) {
	t.Helper()
	if len(units) == 0 {
		units = threeUnits
	}
	sd := newFakeSystemd(units...)
	if fn.behave == nil {
		fn.behave = func(int) (bool, bool, byte) {
			return sd.unit("smbd.service").active != "active", false, 't'
		}
	}
	logs := &logBuffer{}
	r, err := newSystemd(Params{
		Name:           "smb",
		Config:         "/etc/samba/smb.conf",
		Address:        netip.MustParseAddr("198.18.0.50"),
		StartTimeout:   2 * time.Second,
		StopTimeout:    200 * time.Millisecond,
		MonitorTimeout: 100 * time.Millisecond,
		Logger:         logs.logger(),
	}, units, sd.connect)
	if err != nil {
		t.Fatal(err)
	}
	r.dial = fn.dial(t)
	r.listeners = func(uint16) ([]netip.AddrPort, error) { return nil, nil }
	t.Cleanup(func() {
		r.Close()
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	return r, sd, logs
}

func TestSystemdStartStopOrder(t *testing.T) {
	fn := &fakeNet{}
	r, sd, _ := testSystemd(t, fn)
	ctx := context.Background()
	if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
		t.Fatalf("Monitor before Start: %v, want ErrStopped", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sd.callsOf("start"); !slices.Equal(got, threeUnits) {
		t.Errorf("started %v, want %v in this order", got, threeUnits)
	}
	if fn.dials.Load() < 2 {
		t.Errorf("%d NEGOTIATE dials: Start did not wait for an answer", fn.dials.Load())
	}
	if err := r.Monitor(ctx); err != nil {
		t.Fatalf("Monitor: %v", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(threeUnits)
	slices.Reverse(want)
	if got := sd.callsOf("stop"); !slices.Equal(got, want) {
		t.Errorf("stopped %v, want %v in this order", got, want)
	}
	if k := sd.callsOf("kill"); len(k) > 0 {
		t.Errorf("units %v killed on a clean stop", k)
	}
	if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
		t.Fatalf("Monitor after Stop: %v, want ErrStopped", err)
	}
	if sd.connects != 1 {
		t.Errorf("%d connections to systemd, want 1 kept open", sd.connects)
	}
}

func TestSystemdStartJobFails(t *testing.T) {
	for _, result := range []string{"failed", "timeout", "canceled", "dependency"} {
		t.Run(result, func(t *testing.T) {
			r, sd, _ := testSystemd(t, &fakeNet{})
			sd.set("nmbd.service", func(u *fakeUnit) {
				u.startResult = result
				if result == "failed" {
					u.active, u.sub, u.result = "failed", "failed", "exit-code"
				}
			})
			err := r.Start(context.Background())
			want := fmt.Sprintf(`smb "smb": start: nmbd.service: start job failed: result %q; unit `, result)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Start: %v\nwant it to contain %s", err, want)
			}
			if result == "failed" && !strings.Contains(err.Error(), `unit failed (failed), result "exit-code"`) {
				t.Errorf("Start: %v; want the unit's state and result", err)
			}
			if got := sd.callsOf("start"); !slices.Equal(got, threeUnits[:2]) {
				t.Errorf("started %v, want only the units up to the failed one", got)
			}
		})
	}
}

func TestSystemdStartUnknownUnit(t *testing.T) {
	r, sd, _ := testSystemd(t, &fakeNet{})
	sd.mu.Lock()
	delete(sd.units, "winbind.service")
	sd.mu.Unlock()
	err := r.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), `smb "smb": start: winbind.service: start: Unit winbind.service not found.`) {
		t.Fatalf("Start: %v", err)
	}
}

// systemd reports the start done before smbd listens: Start waits for the
// answer, and when none comes it stops the units it started.
func TestSystemdReadinessTimeout(t *testing.T) {
	fn := &fakeNet{behave: func(int) (bool, bool, byte) { return true, false, 0 }}
	r, sd, _ := testSystemd(t, fn)
	r.p.StartTimeout = 300 * time.Millisecond
	began := time.Now()
	err := r.Start(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "does not answer SMB2 NEGOTIATE on 198.18.0.50:445 within 300ms") {
		t.Fatalf("Start: %v", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Start took %v with a 300 ms start timeout", d)
	}
	if fn.dials.Load() < 3 {
		t.Errorf("%d NEGOTIATE attempts: Start did not keep trying", fn.dials.Load())
	}
	for _, u := range threeUnits {
		if st := sd.unit(u).active; st != "inactive" {
			t.Errorf("%s left %s after the failed start", u, st)
		}
	}
	if got := sd.callsOf("stop"); len(got) != 3 || got[0] != "winbind.service" {
		t.Errorf("stopped %v after the failed start, want all three in reverse", got)
	}
}

// A unit that stays active after its stop job gets SIGKILL within the stop
// timeout; Stop succeeds only once it is inactive.
func TestSystemdStopEscalates(t *testing.T) {
	r, sd, logs := testSystemd(t, &fakeNet{})
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sd.set("nmbd.service", func(u *fakeUnit) { u.stayActive = true })
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sd.callsOf("kill"); !slices.Equal(got, []string{"nmbd.service"}) {
		t.Errorf("killed %v, want nmbd.service only", got)
	}
	// Killed, the unit failed; its state is reset so it reads as stopped.
	if got := sd.callsOf("reset"); !slices.Equal(got, []string{"nmbd.service"}) {
		t.Errorf("reset %v, want nmbd.service", got)
	}
	if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
		t.Fatalf("Monitor after Stop: %v, want ErrStopped", err)
	}
	if !strings.Contains(logs.String(), "unit did not stop; sending SIGKILL") {
		t.Errorf("escalation not logged:\n%s", logs)
	}
}

// A stop job that never ends is given up after the stop timeout and the
// unit killed.
func TestSystemdStopJobHangs(t *testing.T) {
	r, sd, _ := testSystemd(t, &fakeNet{}, "smbd.service")
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sd.set("smbd.service", func(u *fakeUnit) { u.hang, u.stayActive = true, true })
	began := time.Now()
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("Stop took %v with a 200 ms stop timeout", d)
	}
	if got := sd.callsOf("kill"); len(got) != 1 {
		t.Errorf("killed %v, want smbd.service", got)
	}
}

// A unit that will not stop even after SIGKILL is an error, never a quiet
// success.
func TestSystemdStopFails(t *testing.T) {
	r, sd, _ := testSystemd(t, &fakeNet{}, "smbd.service")
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sd.set("smbd.service", func(u *fakeUnit) { u.stayActive, u.killIgnored = true, true })
	err := r.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), `smb "smb": stop: smbd.service: still active (running) 2s after SIGKILL`) {
		t.Fatalf("Stop: %v", err)
	}
	// The deadline of the caller is kept, and said.
	dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	began := time.Now()
	err = r.Stop(dctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still active (running) after SIGKILL") {
		t.Fatalf("Stop with a deadline: %v", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("Stop took %v with a 500 ms deadline", d)
	}
	sd.set("smbd.service", func(u *fakeUnit) { u.killIgnored = false })
}

func TestSystemdForceStop(t *testing.T) {
	r, sd, _ := testSystemd(t, &fakeNet{})
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var _ resources.ForceStopper = r
	if err := r.ForceStop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"kill winbind.service", "stop winbind.service", "reset winbind.service",
		"kill nmbd.service", "stop nmbd.service", "reset nmbd.service",
		"kill smbd.service", "stop smbd.service", "reset smbd.service"}
	if got := sd.callList()[3:]; !slices.Equal(got[:len(want)], want) {
		t.Errorf("calls %v, want %v first", got, want)
	}
	if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
		t.Fatalf("Monitor after ForceStop: %v, want ErrStopped", err)
	}
}

func TestSystemdMonitor(t *testing.T) {
	r, sd, _ := testSystemd(t, &fakeNet{})
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		unit, active, sub, result string
		want                      string
	}{
		{"nmbd.service", "failed", "failed", "exit-code", `smb "smb": nmbd.service is failed (failed), result "exit-code"`},
		{"winbind.service", "activating", "auto-restart", "", `smb "smb": winbind.service is activating (auto-restart)`},
		{"winbind.service", "inactive", "dead", "", `smb "smb": winbind.service is inactive (dead) while smbd.service runs`},
		{"smbd.service", "deactivating", "stop-sigterm", "", `smb "smb": smbd.service is deactivating (stop-sigterm)`},
	} {
		var was fakeUnit
		sd.set(c.unit, func(u *fakeUnit) {
			was = *u
			u.active, u.sub, u.result = c.active, c.sub, c.result
		})
		err := r.Monitor(ctx)
		if err == nil || errors.Is(err, resources.ErrStopped) || err.Error() != c.want {
			t.Errorf("Monitor with %s %s: %v\nwant %s", c.unit, c.active, err, c.want)
		}
		sd.set(c.unit, func(u *fakeUnit) { *u = was })
		if err := r.Monitor(ctx); err != nil {
			t.Fatalf("Monitor after %s recovered: %v", c.unit, err)
		}
	}
	// Active units are not enough: smbd must answer.
	r.dial = (&fakeNet{behave: func(int) (bool, bool, byte) { return false, true, 0 }}).dial(t)
	if err := r.Monitor(ctx); err == nil || !strings.Contains(err.Error(), "does not serve") {
		t.Fatalf("Monitor of a frozen smbd: %v", err)
	}
}

func TestSystemdContextCancel(t *testing.T) {
	r, sd, _ := testSystemd(t, &fakeNet{})
	sd.set("smbd.service", func(u *fakeUnit) { u.hang = true })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	began := time.Now()
	err := r.Start(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "smbd.service: start job: no result") {
		t.Fatalf("Start: %v", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("Start returned %v after it was cancelled at 50 ms", d)
	}
	if got := sd.callsOf("start"); !slices.Equal(got, threeUnits[:1]) {
		t.Errorf("started %v after cancellation", got)
	}
}

func TestSystemdReconnect(t *testing.T) {
	ctx := context.Background()
	t.Run("between operations", func(t *testing.T) {
		r, sd, logs := testSystemd(t, &fakeNet{})
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		sd.restartBus()
		if err := r.Monitor(ctx); err != nil {
			t.Fatalf("Monitor after the bus restarted: %v", err)
		}
		if sd.connects != 2 {
			t.Errorf("%d connections, want 2", sd.connects)
		}
		if !strings.Contains(logs.String(), "connection to systemd lost; reconnecting") {
			t.Errorf("reconnection not logged:\n%s", logs)
		}
	})
	t.Run("during a call", func(t *testing.T) {
		r, sd, _ := testSystemd(t, &fakeNet{})
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		sd.mu.Lock()
		sd.dropBeforeCall = 1
		sd.mu.Unlock()
		if err := r.Stop(ctx); err != nil {
			t.Fatalf("Stop with the bus restarting: %v", err)
		}
		if sd.connects != 2 {
			t.Errorf("%d connections, want 2", sd.connects)
		}
	})
	t.Run("write fails first", func(t *testing.T) {
		r, sd, _ := testSystemd(t, &fakeNet{})
		sd.mu.Lock()
		sd.pipeOnCall = 1
		sd.mu.Unlock()
		if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
			t.Fatalf("Monitor with a broken pipe: %v, want ErrStopped", err)
		}
		if sd.connects != 2 {
			t.Errorf("%d connections, want 2", sd.connects)
		}
		// Systemd's own errors are no reason to reconnect.
		sd.mu.Lock()
		delete(sd.units, "winbind.service")
		sd.mu.Unlock()
		if err := r.Monitor(ctx); err == nil || !strings.Contains(err.Error(), "Unit winbind.service not found.") {
			t.Fatalf("Monitor of an unknown unit: %v", err)
		}
		if sd.connects != 2 {
			t.Errorf("%d connections after an error from systemd, want 2", sd.connects)
		}
	})
	t.Run("during a job", func(t *testing.T) {
		r, sd, _ := testSystemd(t, &fakeNet{})
		sd.mu.Lock()
		sd.dropOnJob = 1
		sd.mu.Unlock()
		if err := r.Start(ctx); err != nil {
			t.Fatalf("Start with the bus restarting: %v", err)
		}
		// The job whose result was lost is queued again.
		if got := sd.callsOf("start"); !slices.Equal(got, append([]string{"smbd.service"}, threeUnits...)) {
			t.Errorf("started %v", got)
		}
	})
	t.Run("lost twice", func(t *testing.T) {
		r, sd, _ := testSystemd(t, &fakeNet{})
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		sd.mu.Lock()
		sd.dropBeforeCall = 2
		sd.mu.Unlock()
		err := r.Monitor(ctx)
		if err == nil || err.Error() != `smb "smb": smbd.service: read state: the connection to systemd was lost again after reconnecting: dbus: connection closed by user` {
			t.Fatalf("Monitor: %v", err)
		}
		// The next operation may reconnect again.
		if err := r.Monitor(ctx); err != nil {
			t.Fatalf("Monitor after: %v", err)
		}
		if sd.connects != 3 {
			t.Errorf("%d connections, want 3", sd.connects)
		}
	})
	t.Run("cannot connect", func(t *testing.T) {
		r, _, _ := testSystemd(t, &fakeNet{})
		r.units.connect = func(context.Context) (systemdConn, error) {
			return nil, errors.New("dial unix /run/dbus/system_bus_socket: connect: no such file or directory")
		}
		r.units.Close()
		err := r.Monitor(ctx)
		if err == nil || errors.Is(err, resources.ErrStopped) || !strings.Contains(err.Error(), `smb "smb": smbd.service: read state: connect to systemd: dial unix`) {
			t.Fatalf("Monitor: %v", err)
		}
	})
}

func TestCheckUnits(t *testing.T) {
	for _, c := range []struct {
		units []string
		want  string
	}{
		{[]string{"smbd.service", "nmbd.service", "winbind.service"}, ""},
		{[]string{"samba-ad-dc.service", "smbd@a\\x2db.service", "x.socket"}, ""},
		{nil, "units: none given"},
		{[]string{"smbd.service", "smbd"}, `units[1]: "smbd" is not a unit name`},
		{[]string{"smbd.servic"}, `units[0]: "smbd.servic" is not a unit name`},
		{[]string{".service"}, `units[0]: ".service" is not a unit name`},
		{[]string{"smbd.service", "nmbd.service", "smbd.service"}, `units[2]: "smbd.service" is listed twice (also units[0])`},
		{[]string{"smbd@.service"}, `units[0]: unit "smbd@.service" is a template`},
		{[]string{"../smbd.service"}, `units[0]: unit name "../smbd.service": character '/' is not allowed`},
		{[]string{"smb d.service"}, `character ' ' is not allowed`},
		{[]string{strings.Repeat("a", 250) + ".service"}, "longer than 255 bytes"},
	} {
		err := checkUnits(c.units)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("checkUnits(%q): %v", c.units, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("checkUnits(%q): %v, want %s", c.units, err, c.want)
		}
	}
	_, err := NewSystemd(Params{Name: "smb", Config: "/etc/samba/smb.conf", Address: netip.MustParseAddr("198.18.0.50")}, []string{"smbd"})
	if err == nil || err.Error() != `smb "smb": units[0]: "smbd" is not a unit name: want NAME.TYPE, such as smbd.service` {
		t.Errorf("NewSystemd with a bad unit: %v", err)
	}
	_, err = NewSystemd(Params{Name: "smb", Config: "/etc/samba/smb.conf"}, []string{"smbd.service"})
	if err == nil || !strings.Contains(err.Error(), "address: none given") {
		t.Errorf("NewSystemd without an address: %v", err)
	}
}

func TestSystemdRunningAt(t *testing.T) {
	dir := t.TempDir()
	sys := filepath.Join(dir, "system")
	file := filepath.Join(dir, "file")
	link := filepath.Join(dir, "link")
	if err := os.Mkdir(sys, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sys, link); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		sys: true, file: false, link: false, filepath.Join(dir, "missing"): false,
	} {
		if got := systemdRunningAt(path); got != want {
			t.Errorf("systemdRunningAt(%s) = %v, want %v", path, got, want)
		}
	}
	_, err := os.Lstat(systemdRunDir)
	if got := SystemdRunning(); got != (err == nil) {
		t.Errorf("SystemdRunning() = %v with %s: %v", got, systemdRunDir, err)
	}
}

func TestSystemdValidate(t *testing.T) {
	r, sd, _ := testSystemd(t, &fakeNet{})
	ctx := context.Background()
	r.p.Config = filepath.Join(t.TempDir(), "smb.conf") // missing, and said so
	r.booted = func() bool { return false }
	err := r.Validate(ctx)
	if err == nil || err.Error() != `smb "smb": systemd mode: systemd is not running on this host (/run/systemd/system is not a directory): use mode "process"` {
		t.Fatalf("Validate without systemd: %v", err)
	}
	r.booted = func() bool { return true }
	sd.set("nmbd.service", func(u *fakeUnit) { u.load = "not-found" })
	sd.set("winbind.service", func(u *fakeUnit) { u.load = "masked" })
	err = r.Validate(ctx)
	for _, want := range []string{`smb "smb": nmbd.service: no such unit`, `winbind.service: load state "masked"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want it to contain %s", err, want)
		}
	}
	if strings.Contains(fmt.Sprint(err), "smbd.service") {
		t.Errorf("Validate blames smbd.service: %v", err)
	}
}
