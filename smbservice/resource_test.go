package smbservice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/resources"
)

// fakeSupervisor plays smbd's process without one.
type fakeSupervisor struct {
	mu       sync.Mutex
	running  bool
	died     error // what Alive says once the process has died
	launches int
	halts    int
	onLaunch func()
}

func (f *fakeSupervisor) Launch(ctx context.Context) error {
	f.mu.Lock()
	f.launches++
	if !f.running {
		f.running, f.died = true, nil
	}
	cb := f.onLaunch
	f.mu.Unlock()
	if cb != nil {
		cb()
	}
	return nil
}

func (f *fakeSupervisor) Alive(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.died != nil:
		return f.died
	case !f.running:
		return fmt.Errorf("fake: %w", ErrNotRunning)
	}
	return nil
}

func (f *fakeSupervisor) Halt(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.halts++
	f.running, f.died = false, nil
	return nil
}

func (f *fakeSupervisor) die(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.died = err
}

// fakeNet answers dials as a server would. Each dial asks behave what to
// do: refuse, hang, or answer with a server GUID.
type fakeNet struct {
	dials  atomic.Int64
	behave func(n int) (refuse, hang bool, guid byte)
	hold   chan struct{}
}

func (f *fakeNet) dial(t *testing.T) func(context.Context, netip.AddrPort) (net.Conn, error) {
	f.hold = make(chan struct{})
	t.Cleanup(func() { close(f.hold) })
	return func(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
		n := int(f.dials.Add(1))
		refuse, hang, guid := f.behave(n)
		if refuse {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		client, server := net.Pipe()
		go func() {
			defer server.Close()
			req := make([]byte, requestLen)
			if _, err := io.ReadFull(server, req); err != nil {
				return
			}
			if hang {
				select {
				case <-f.hold:
				case <-ctx.Done():
				}
				return
			}
			b := sambaReply(t)
			b[4+64+8] = guid
			server.Write(b)
		}()
		return client, nil
	}
}

func testResource(t *testing.T, fn *fakeNet) (*Resource, *fakeSupervisor, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	r, err := New(Params{
		Name:           "smb",
		Config:         "/etc/samba/smb.conf",
		Address:        netip.MustParseAddr("198.18.0.50"),
		StartTimeout:   time.Second,
		MonitorTimeout: 100 * time.Millisecond,
		Logger:         logs.logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	sup := &fakeSupervisor{}
	r.sup = sup
	r.dial = fn.dial(t)
	r.listeners = func(uint16) ([]netip.AddrPort, error) { return nil, nil }
	return r, sup, logs
}

func TestResourceStartWaitsForAnswer(t *testing.T) {
	fn := &fakeNet{behave: func(n int) (bool, bool, byte) { return n <= 3, false, 't' }}
	r, sup, logs := testResource(t, fn)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Three refusals, then an answer and its confirmation.
	if n := fn.dials.Load(); n != 5 {
		t.Errorf("%d dials, want 5", n)
	}
	if sup.launches != 1 {
		t.Errorf("%d launches", sup.launches)
	}
	if !strings.Contains(logs.String(), "smbd ready") {
		t.Errorf("no readiness logged:\n%s", logs)
	}
	if err := r.Monitor(context.Background()); err != nil {
		t.Errorf("Monitor: %v", err)
	}
}

func TestResourceStartNeedsStableGUID(t *testing.T) {
	fn := &fakeNet{behave: func(n int) (bool, bool, byte) {
		if n <= 4 {
			return false, false, byte('a' + n) // a new GUID each time
		}
		return false, false, 'z'
	}}
	r, _, logs := testResource(t, fn)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := fn.dials.Load(); n != 6 {
		t.Errorf("%d dials, want 6: four changing answers, then two alike", n)
	}
	if !strings.Contains(logs.String(), "server GUID changed") {
		t.Errorf("GUID change not logged:\n%s", logs)
	}
	if r.guid[0] != 'z' {
		t.Errorf("recorded GUID %v", r.guid)
	}
}

func TestResourceStartSmbdDies(t *testing.T) {
	fn := &fakeNet{behave: func(int) (bool, bool, byte) { return true, false, 0 }}
	r, sup, _ := testResource(t, fn)
	sup.onLaunch = func() {
		sup.die(errors.New("smbd pid 9 exited: exit status 1; last output: open_sockets_smbd: No sockets available to bind to."))
	}
	start := time.Now()
	err := r.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "start: smbd pid") || !strings.Contains(err.Error(), "No sockets") {
		t.Fatalf("Start: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Start took %v to notice the death", d)
	}
	if sup.halts != 1 {
		t.Errorf("%d halts after the failed start, want 1", sup.halts)
	}
}

func TestResourceStartTimeout(t *testing.T) {
	fn := &fakeNet{behave: func(int) (bool, bool, byte) { return false, true, 0 }}
	r, sup, _ := testResource(t, fn)
	r.p.StartTimeout = 300 * time.Millisecond
	err := r.Start(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "does not answer SMB2 NEGOTIATE on 198.18.0.50:445 within 300ms") {
		t.Fatalf("Start: %v", err)
	}
	if sup.halts != 1 || sup.running {
		t.Errorf("smbd left running after the failed start (halts %d)", sup.halts)
	}
}

// Start on a started resource changes nothing, and a failure to get an
// answer then does not stop the smbd it did not launch.
func TestResourceStartIdempotent(t *testing.T) {
	fn := &fakeNet{behave: func(int) (bool, bool, byte) { return false, false, 't' }}
	r, sup, _ := testResource(t, fn)
	for range 2 {
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if !sup.running {
		t.Fatal("not running")
	}
	fn.behave = func(int) (bool, bool, byte) { return true, false, 0 }
	r.p.StartTimeout = 50 * time.Millisecond
	if err := r.Start(context.Background()); err == nil {
		t.Fatal("Start succeeded without an answer")
	}
	if sup.halts != 0 {
		t.Errorf("Start halted an smbd it had not launched")
	}
}

func TestResourceMonitor(t *testing.T) {
	var mode atomic.Value
	mode.Store("answer")
	fn := &fakeNet{behave: func(int) (bool, bool, byte) {
		switch mode.Load() {
		case "hang":
			return false, true, 0
		case "refuse":
			return true, false, 0
		case "other":
			return false, false, 'o'
		}
		return false, false, 't'
	}}
	r, sup, _ := testResource(t, fn)
	ctx := context.Background()
	if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
		t.Fatalf("Monitor before Start: %v, want ErrStopped", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Monitor(ctx); err != nil {
		t.Fatalf("Monitor: %v", err)
	}

	mode.Store("hang") // a frozen smbd: the connection opens, no answer comes
	start := time.Now()
	err := r.Monitor(ctx)
	if err == nil || errors.Is(err, resources.ErrStopped) || !strings.Contains(err.Error(), "does not serve") {
		t.Fatalf("Monitor of a frozen smbd: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Monitor took %v with a 100 ms timeout", d)
	}

	mode.Store("other")
	if err := r.Monitor(ctx); err == nil || !strings.Contains(err.Error(), "server GUID on 198.18.0.50:445 changed") {
		t.Fatalf("Monitor with another server answering: %v", err)
	}

	mode.Store("answer")
	sup.die(errors.New("smbd pid 9 exited: signal: killed"))
	if err := r.Monitor(ctx); err == nil || errors.Is(err, resources.ErrStopped) || !strings.Contains(err.Error(), "signal: killed") {
		t.Fatalf("Monitor of a dead smbd: %v", err)
	}

	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
		t.Fatalf("Monitor after Stop: %v, want ErrStopped", err)
	}
}

func TestResourceStopChecksListeners(t *testing.T) {
	fn := &fakeNet{behave: func(int) (bool, bool, byte) { return false, false, 't' }}
	r, _, _ := testResource(t, fn)
	ctx := context.Background()
	r.listeners = func(uint16) ([]netip.AddrPort, error) {
		return []netip.AddrPort{netip.MustParseAddrPort("198.18.0.7:445"), netip.MustParseAddrPort("[::]:445")}, nil
	}
	err := r.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "[::]:445 still listen(s) for 198.18.0.50:445") || strings.Contains(err.Error(), "198.18.0.7") {
		t.Fatalf("Stop with a wildcard listener: %v", err)
	}
	r.listeners = func(uint16) ([]netip.AddrPort, error) {
		return []netip.AddrPort{netip.MustParseAddrPort("198.18.0.7:445")}, nil
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop with a listener on another address: %v", err)
	}
	r.listeners = func(uint16) ([]netip.AddrPort, error) { return nil, errors.New("netlink: operation not permitted") }
	if err := r.Stop(ctx); err == nil || !strings.Contains(err.Error(), "operation not permitted") {
		t.Fatalf("Stop that cannot check listeners: %v", err)
	}
}

func TestCovers(t *testing.T) {
	a4, a6 := netip.MustParseAddr("198.18.0.50"), netip.MustParseAddr("2001:db8::50")
	for _, tt := range []struct {
		l    string
		addr netip.Addr
		want bool
	}{
		{"198.18.0.50", a4, true},
		{"::ffff:198.18.0.50", a4, true},
		{"0.0.0.0", a4, true},
		{"::", a4, true},
		{"198.18.0.51", a4, false},
		{"0.0.0.0", a6, false},
		{"::", a6, true},
		{"2001:db8::50", a6, true},
	} {
		if got := covers(netip.MustParseAddr(tt.l), tt.addr); got != tt.want {
			t.Errorf("covers(%s, %s) = %v", tt.l, tt.addr, got)
		}
	}
}

func TestNewChecksParams(t *testing.T) {
	a := netip.MustParseAddr("198.18.0.50")
	for _, tt := range []struct {
		p    Params
		want string
	}{
		{Params{Config: "c", Address: a}, "empty name"},
		{Params{Name: "a/b", Config: "c", Address: a}, "must not contain"},
		{Params{Name: "smb", Address: a}, "empty smb.conf path"},
		{Params{Name: "smb", Config: "c"}, "address: none given"},
	} {
		if _, err := New(tt.p); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v): %v, want an error containing %q", tt.p, err, tt.want)
		}
	}
	r, err := New(Params{Name: "smb", Config: "c", Address: a})
	if err != nil {
		t.Fatal(err)
	}
	if r.AddrPort().String() != "198.18.0.50:445" || r.Name() != "smb" {
		t.Errorf("defaults: %v %q", r.AddrPort(), r.Name())
	}
	if p := r.sup.(*Process); p.PidFile() != "/run/tandem/smbd-smb.pid" {
		t.Errorf("pid file %s", p.PidFile())
	}
}
