package smbservice

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"github.com/tandem-ha/tandem/resources"
	"github.com/tandem-ha/tandem/testenv"
)

// The tests in this file run a private D-Bus daemon, a bus of their own on
// a socket in a temporary directory, and on it a fake systemd: the
// org.freedesktop.systemd1 manager and unit objects, backed by fakeSystemd.
// The resource talks to it through go-systemd's real connection, so the
// wire, the JobRemoved signals and a restarting bus are real.

// testBus is a dbus-daemon of a test.
type testBus struct {
	t    *testing.T
	dir  string
	addr string
	cmd  *exec.Cmd
	log  logBuffer // the daemon's complaints, shown when the test fails
}

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>tandem-test</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// newTestBus starts a dbus-daemon, stopped by the test's cleanup.
func newTestBus(t *testing.T) *testBus {
	t.Helper()
	testenv.RequireCommands(t, "dbus-daemon", "dbus-daemon")
	dir := t.TempDir()
	b := &testBus{t: t, dir: dir, addr: "unix:path=" + filepath.Join(dir, "bus")}
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, busConfig, filepath.Join(dir, "bus")), 0o644); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			t.Logf("dbus-daemon:\n%s", &b.log)
		}
	})
	return b
}

// start runs the daemon and returns once it accepts connections.
func (b *testBus) start() {
	b.t.Helper()
	os.Remove(filepath.Join(b.dir, "bus"))
	b.cmd = exec.Command("dbus-daemon", "--nofork", "--nopidfile", "--config-file="+filepath.Join(b.dir, "bus.conf"))
	b.cmd.Stdout, b.cmd.Stderr = &b.log, &b.log
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("start dbus-daemon: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := dbus.Dial(b.addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("dbus-daemon does not accept connections on %s within 10s: %v", b.addr, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends the daemon, which drops every connection.
func (b *testBus) stop() {
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		b.cmd.Process.Kill()
		<-done
	}
	b.cmd = nil
}

// dial connects to the bus as go-systemd does for the system bus.
func (b *testBus) dial() (*dbus.Conn, error) {
	c, err := dbus.Dial(b.addr)
	if err != nil {
		return nil, err
	}
	if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Hello(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// busManager serves org.freedesktop.systemd1.Manager from a fakeSystemd.
type busManager struct {
	conn *dbus.Conn
	fc   *fakeConn // never lost: the bus is what restarts here
	mu   sync.Mutex
	next uint32
}

func busErr(err error) *dbus.Error {
	var de dbus.Error
	if errors.As(err, &de) {
		return &de
	}
	return dbus.MakeFailedError(err)
}

func (m *busManager) job(name, kind string) (dbus.ObjectPath, *dbus.Error) {
	ch := make(chan string, 1)
	var err error
	if kind == "start" {
		_, err = m.fc.StartUnitContext(context.Background(), name, "replace", ch)
	} else {
		_, err = m.fc.StopUnitContext(context.Background(), name, "replace", ch)
	}
	if err != nil {
		return "", busErr(err)
	}
	m.mu.Lock()
	m.next++
	id := m.next
	m.mu.Unlock()
	path := dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))
	select {
	case result := <-ch:
		go m.conn.Emit("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager.JobRemoved", id, path, name, result)
	default: // a job that hangs never ends
	}
	return path, nil
}

func (m *busManager) StartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	return m.job(name, "start")
}

func (m *busManager) StopUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	return m.job(name, "stop")
}

func (m *busManager) KillUnit(name, who string, signal int32) *dbus.Error {
	if err := m.fc.KillUnitWithTarget(context.Background(), name, sddbus.Who(who), signal); err != nil {
		return busErr(err)
	}
	return nil
}

func (m *busManager) ResetFailedUnit(name string) *dbus.Error {
	if err := m.fc.ResetFailedUnitContext(context.Background(), name); err != nil {
		return busErr(err)
	}
	return nil
}

// busUnit serves org.freedesktop.DBus.Properties of one unit.
type busUnit struct {
	fc   *fakeConn
	name string
}

func (u *busUnit) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	if iface != "org.freedesktop.systemd1.Unit" {
		return nil, dbus.MakeFailedError(fmt.Errorf("fake: no interface %s", iface))
	}
	props, err := u.fc.GetUnitPropertiesContext(context.Background(), u.name)
	if err != nil {
		return nil, busErr(err)
	}
	out := map[string]dbus.Variant{}
	for k, v := range props {
		out[k] = dbus.MakeVariant(v)
	}
	return out, nil
}

func (u *busUnit) Get(iface, prop string) (dbus.Variant, *dbus.Error) {
	typ, _ := strings.CutPrefix(iface, "org.freedesktop.systemd1.")
	p, err := u.fc.GetUnitTypePropertyContext(context.Background(), u.name, typ, prop)
	if err != nil {
		return dbus.Variant{}, busErr(err)
	}
	return p.Value, nil
}

// serveSystemd puts sd on the bus as org.freedesktop.systemd1. It serves
// until the bus stops; call it again after a restart.
func serveSystemd(t *testing.T, b *testBus, sd *fakeSystemd) {
	t.Helper()
	conn, err := b.dial()
	if err != nil {
		t.Fatalf("fake systemd: connect to the bus: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	fc := &fakeConn{f: sd, gen: sd.gen}
	if err := conn.Export(&busManager{conn: conn, fc: fc}, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}
	sd.mu.Lock()
	names := make([]string, 0, len(sd.units))
	for n := range sd.units {
		names = append(names, n)
	}
	sd.mu.Unlock()
	for _, n := range names {
		path := dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + sddbus.PathBusEscape(n))
		if err := conn.Export(&busUnit{fc: fc, name: n}, path, "org.freedesktop.DBus.Properties"); err != nil {
			t.Fatal(err)
		}
	}
	reply, err := conn.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("fake systemd: own org.freedesktop.systemd1: %v, reply %v", err, reply)
	}
}

// Unit names that no real host has: nothing here can reach a real unit.
var busUnits = []string{"tandem-test-smbd.service", "tandem-test-nmbd.service"}

func TestSystemdOverDBus(t *testing.T) {
	b := newTestBus(t)
	sd := newFakeSystemd(busUnits...)
	serveSystemd(t, b, sd)
	// The production dial over the system bus, pointed at the test's bus.
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", b.addr)
	connect := func(ctx context.Context) (systemdConn, error) {
		return connectFirst(ctx, dialer{"system bus", sddbus.NewSystemConnectionContext})
	}
	fn := &fakeNet{behave: func(int) (bool, bool, byte) {
		return sd.unit(busUnits[0]).active != "active", false, 't'
	}}
	logs := &logBuffer{}
	r, err := newSystemd(Params{
		Name:           "smb",
		Config:         "/etc/samba/smb.conf",
		Address:        netip.MustParseAddr("198.18.0.50"),
		StartTimeout:   5 * time.Second,
		StopTimeout:    time.Second,
		MonitorTimeout: 200 * time.Millisecond,
		Logger:         logs.logger(),
	}, busUnits, connect)
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
		t.Fatalf("Monitor before Start: %v, want ErrStopped", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sd.callsOf("start"); !slices.Equal(got, busUnits) {
		t.Errorf("started %v, want %v", got, busUnits)
	}
	if err := r.Monitor(ctx); err != nil {
		t.Fatalf("Monitor: %v", err)
	}
	sd.set(busUnits[1], func(u *fakeUnit) { u.active, u.sub, u.result = "failed", "failed", "core-dump" })
	if err := r.Monitor(ctx); err == nil || err.Error() != `smb "smb": tandem-test-nmbd.service is failed (failed), result "core-dump"` {
		t.Fatalf("Monitor with a failed unit: %v", err)
	}

	// The bus restarts: every connection drops. The next operation
	// connects again.
	b.stop()
	b.start()
	serveSystemd(t, b, sd)
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop after the bus restarted: %v", err)
	}
	if !strings.Contains(logs.String(), "connection to systemd lost; reconnecting") {
		t.Errorf("reconnection not logged")
	}
	if got := sd.callsOf("reset"); !slices.Equal(got, busUnits[1:]) {
		t.Errorf("reset %v, want the failed unit", got)
	}
	if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
		t.Fatalf("Monitor after Stop: %v, want ErrStopped", err)
	}

	// A failed start job, over the wire, with the unit's state.
	sd.set(busUnits[0], func(u *fakeUnit) { u.startResult = "timeout" })
	err = r.Start(ctx)
	if err == nil || err.Error() != `smb "smb": start: tandem-test-smbd.service: start job failed: result "timeout"; unit inactive (dead)` {
		t.Fatalf("Start with a timed-out job: %v", err)
	}

	// systemd's own errors come through as it words them.
	sd.mu.Lock()
	delete(sd.units, busUnits[0])
	sd.mu.Unlock()
	err = r.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "tandem-test-smbd.service: start: Unit tandem-test-smbd.service not found.") {
		t.Fatalf("Start of a unit systemd does not know: %v", err)
	}

	// No bus at all: a clear error, and no wait past the context.
	b.stop()
	err = r.Monitor(ctx)
	if err == nil || errors.Is(err, resources.ErrStopped) || !strings.Contains(err.Error(), "read state: connect to systemd: system bus: dial unix") {
		t.Fatalf("Monitor without a bus: %v", err)
	}
}
