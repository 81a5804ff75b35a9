package smbservice

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/resources"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The tests in this file run the real smbd, as root, in a network namespace
// each test makes and removes, with 198.18.0.1 on its loopback.

var nsSeq atomic.Int64

// testAddr is the floating address inside the test namespaces.
var testAddr = netip.MustParseAddr("198.18.0.1")

func needSmbd(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to make a network namespace and run smbd on port 445 in it")
	}
	if _, err := os.Stat(DefaultSmbd); err != nil {
		t.Skipf("skipped: smbd not installed (Debian package samba): %v", err)
	}
	if _, err := exec.LookPath("testparm"); err != nil {
		t.Skipf("skipped: testparm not installed (Debian package samba-common-bin): %v", err)
	}
}

// labNS is a network namespace of a test.
type labNS struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
}

// newNS makes a named namespace "tdlsmb…" with lo up and testAddr on it,
// removed by the test's cleanup together with any process left in it.
func newNS(t testing.TB) *labNS {
	t.Helper()
	n := &labNS{name: fmt.Sprintf("tdlsmb%d-%d", os.Getpid(), nsSeq.Add(1))}
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Never unlocked: the thread, now in the new namespace, ends
		// with this goroutine.
		runtime.LockOSThread()
		n.ns, err = netns.NewNamed(n.name)
	}()
	<-done
	if err != nil {
		t.Fatalf("create namespace %s: %v", n.name, err)
	}
	t.Cleanup(func() {
		n.killAll(t)
		n.ns.Close()
		if err := netns.DeleteNamed(n.name); err != nil {
			t.Errorf("remove namespace %s: %v", n.name, err)
		}
	})
	n.h, err = netlink.NewHandleAt(n.ns, unix.NETLINK_ROUTE, unix.NETLINK_INET_DIAG)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", n.name, err)
	}
	t.Cleanup(n.h.Close)
	lo, err := n.h.LinkByName("lo")
	if err == nil {
		err = n.h.LinkSetUp(lo)
	}
	if err == nil {
		err = n.h.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: testAddr.AsSlice(), Mask: net.CIDRMask(32, 32)}})
	}
	if err != nil {
		t.Fatalf("set up lo in %s: %v", n.name, err)
	}
	return n
}

// do runs fn on an OS thread inside the namespace.
func (n *labNS) do(fn func() error) error {
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: see newNS
		if err = netns.Set(n.ns); err != nil {
			err = fmt.Errorf("enter namespace %s: %w", n.name, err)
			return
		}
		err = fn()
	}()
	<-done
	return err
}

// procs lists the processes inside the namespace.
func (n *labNS) procs(t testing.TB) []int {
	t.Helper()
	var fi unix.Stat_t
	if err := unix.Fstat(int(n.ns), &fi); err != nil {
		t.Fatalf("stat namespace: %v", err)
	}
	stats, err := allStats()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, s := range stats {
		var pi unix.Stat_t
		if s.pid == os.Getpid() {
			continue // never this test process
		}
		if unix.Stat("/proc/"+strconv.Itoa(s.pid)+"/ns/net", &pi) == nil && pi.Ino == fi.Ino && pi.Dev == fi.Dev && !s.gone() {
			out = append(out, s.pid)
		}
	}
	return out
}

// killAll kills what a failed test left in the namespace.
func (n *labNS) killAll(t testing.TB) {
	deadline := time.Now().Add(5 * time.Second)
	for ps := n.procs(t); len(ps) > 0; ps = n.procs(t) {
		if time.Now().After(deadline) {
			t.Errorf("processes %v survive in namespace %s", ps, n.name)
			return
		}
		for _, pid := range ps {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listeners returns the TCP sockets listening on port 445 in the namespace.
func (n *labNS) listeners(t testing.TB) []netip.AddrPort {
	t.Helper()
	ls, err := tcpListeners(n.h, 445)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// negotiate runs the exported Negotiate from inside the namespace.
func (n *labNS) negotiate(ctx context.Context, addr netip.AddrPort) (Reply, error) {
	var r Reply
	err := n.do(func() (err error) {
		r, err = Negotiate(ctx, addr)
		return err
	})
	return r, err
}

// bind makes r run smbd and open its connections inside the namespace.
func (n *labNS) bind(r *Resource) {
	r.sup.(*Process).start = func(cmd *exec.Cmd) error { return n.do(cmd.Start) }
	r.dial = func(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
		var c net.Conn
		err := n.do(func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, "tcp", addr.String())
			return err
		})
		return c, err
	}
	r.listeners = func(port uint16) ([]netip.AddrPort, error) { return tcpListeners(n.h, port) }
}

// smbConf writes the smb.conf of a test instance: every directory under a
// temporary directory, bound to addr only.
func smbConf(t testing.TB, addr netip.Addr) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"lock", "state", "cache", "pid", "private", "ncalrpc", "log", "data"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "private"), 0o700)
	conf := fmt.Sprintf(`[global]
  netbios name = TDLTEST
  interfaces = %[2]s
  bind interfaces only = yes
  disable netbios = yes
  smb ports = 445
  server multi channel support = no
  lock directory = %[1]s/lock
  state directory = %[1]s/state
  cache directory = %[1]s/cache
  pid directory = %[1]s/pid
  private dir = %[1]s/private
  ncalrpc dir = %[1]s/ncalrpc
  log file = %[1]s/log/log.%%m
  load printers = no
  printing = bsd
  printcap name = /dev/null
[data]
  path = %[1]s/data
  read only = yes
`, root, addr)
	p := filepath.Join(root, "smb.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// newSmb returns an smb resource for the namespace, stopped by the test's
// cleanup; its log is shown when the test fails.
func newSmb(t testing.TB, n *labNS, edit func(*Params)) *Resource {
	t.Helper()
	logs := &logBuffer{}
	root := t.TempDir()
	p := Params{
		Name:           "smb",
		Config:         smbConf(t, testAddr),
		Address:        testAddr,
		StartTimeout:   10 * time.Second,
		StopTimeout:    5 * time.Second,
		MonitorTimeout: 500 * time.Millisecond,
		RunDir:         filepath.Join(root, "run"),
		Logger:         logs.logger(),
	}
	if edit != nil {
		edit(&p)
	}
	r, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	n.bind(r)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if t.Failed() {
			t.Logf("log of smb resource:\n%s", logs)
		}
	})
	return r
}

func (r *Resource) process() *Process { return r.sup.(*Process) }

// assertGone checks that no smbd of the session sid is left, nothing listens
// in the namespace and no pid file remains.
func assertGone(t *testing.T, n *labNS, r *Resource, sid int) {
	t.Helper()
	if left := sessionProcs(t, sid); len(left) > 0 {
		t.Errorf("smbd processes %v left", left)
	}
	if ps := n.procs(t); len(ps) > 0 {
		t.Errorf("processes %v left in the namespace", ps)
	}
	if ls := n.listeners(t); len(ls) > 0 {
		t.Errorf("sockets %v still listen", ls)
	}
	if _, err := os.Stat(r.process().PidFile()); !os.IsNotExist(err) {
		t.Errorf("pid file: %v", err)
	}
}

func TestSmbdStartMonitorStop(t *testing.T) {
	needSmbd(t)
	n := newNS(t)
	r := newSmb(t, n, nil)
	ctx := context.Background()
	if err := r.Validate(ctx); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
		t.Fatalf("Monitor before Start: %v, want ErrStopped", err)
	}
	began := time.Now()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	// Start returned: the very first NEGOTIATE is answered.
	reply, err := n.negotiate(ctx, r.AddrPort())
	if err != nil {
		t.Fatalf("NEGOTIATE right after Start: %v", err)
	}
	golden, _ := ParseReply(sambaReply(t))
	if reply.ServerGUID != golden.ServerGUID || reply.Dialect != Dialect302 {
		t.Errorf("reply GUID %v dialect %v, want %v and 3.0.2", reply.ServerGUID, reply.Dialect, golden.ServerGUID)
	}
	t.Logf("Start took %v", took)

	pid := r.process().Pid()
	if pid == 0 || !slices.Contains(sessionProcs(t, pid), pid) {
		t.Fatalf("main smbd pid %d not found in its session", pid)
	}
	if err := r.Monitor(ctx); err != nil {
		t.Fatalf("Monitor: %v", err)
	}
	if err := r.Start(ctx); err != nil || r.process().Pid() != pid {
		t.Fatalf("second Start: %v, pid %d; want nil and pid %d kept", err, r.process().Pid(), pid)
	}
	if ls := n.listeners(t); !slices.Equal(ls, []netip.AddrPort{r.AddrPort()}) {
		t.Errorf("listening sockets %v, want only %v", ls, r.AddrPort())
	}
	// The sock_diag query Stop makes in production, from a thread in the
	// namespace, sees the same.
	var ls []netip.AddrPort
	if err := n.do(func() (err error) { ls, err = tcpListeners(&netlink.Handle{}, 445); return err }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ls, []netip.AddrPort{r.AddrPort()}) {
		t.Errorf("listening sockets by the default handle %v, want only %v", ls, r.AddrPort())
	}

	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n, r, pid)
	if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
		t.Fatalf("Monitor after Stop: %v, want ErrStopped", err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := n.negotiate(ctx, r.AddrPort()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("NEGOTIATE after Stop: %v, want connection refused", err)
	}
}

// A frozen smbd still completes TCP connects; only the NEGOTIATE round trip
// shows that it does not serve.
func TestSmbdFrozen(t *testing.T) {
	needSmbd(t)
	n := newNS(t)
	r := newSmb(t, n, func(p *Params) { p.MonitorTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := r.process().Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "smbd stopped", func() bool { s, err := readStat(pid); return err == nil && s.state == 'T' })

	conn, err := r.dial(ctx, r.AddrPort())
	if err != nil {
		t.Fatalf("TCP connect to the frozen smbd: %v", err)
	}
	conn.Close()
	began := time.Now()
	err = r.Monitor(ctx)
	if err == nil || errors.Is(err, resources.ErrStopped) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Monitor of a frozen smbd: %v; want a failure by timeout", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Monitor took %v with a 300 ms timeout", d)
	}
	t.Logf("Monitor of the frozen smbd: %v", err)

	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "Monitor recovers after SIGCONT", func() bool { return r.Monitor(ctx) == nil })

	// Stop copes with a frozen smbd too.
	syscall.Kill(pid, syscall.SIGSTOP)
	eventually(t, 5*time.Second, "smbd stopped", func() bool { s, err := readStat(pid); return err == nil && s.state == 'T' })
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n, r, pid)
}

func TestSmbdKilled(t *testing.T) {
	needSmbd(t)
	n := newNS(t)
	r := newSmb(t, n, nil)
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := r.process().Pid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "smbd dead", func() bool { s, err := readStat(pid); return err != nil || s.gone() })
	err := r.Monitor(ctx)
	if errors.Is(err, resources.ErrStopped) || !strings.Contains(err.Error(), "signal: killed") {
		t.Fatalf("Monitor of a killed smbd: %v; want a failure naming the signal", err)
	}
	t.Logf("Monitor of the killed smbd: %v", err)
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n, r, pid)
	// Restart in place.
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Monitor(ctx); err != nil {
		t.Fatalf("Monitor after restart: %v", err)
	}
}

func TestSmbdStalePidFile(t *testing.T) {
	needSmbd(t)
	n := newNS(t)
	r := newSmb(t, n, nil)
	ctx := context.Background()
	c := exec.Command("/bin/true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	pf := r.process().PidFile()
	os.MkdirAll(filepath.Dir(pf), 0o755)
	if err := os.WriteFile(pf, fmt.Appendf(nil, "%d 4242\n", c.Process.Pid), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Monitor(ctx); err == nil || errors.Is(err, resources.ErrStopped) || !strings.Contains(err.Error(), "no longer runs") {
		t.Fatalf("Monitor with a stale pid file: %v; want a failure", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Monitor(ctx); err != nil {
		t.Fatalf("Monitor: %v", err)
	}
	b, _ := os.ReadFile(pf)
	if !strings.HasPrefix(string(b), strconv.Itoa(r.process().Pid())+" ") {
		t.Errorf("pid file %q does not name the new smbd %d", b, r.process().Pid())
	}
}

// A restarted tandemd finds the smbd the previous one started, monitors and
// stops it.
func TestSmbdFoundAfterRestart(t *testing.T) {
	needSmbd(t)
	n := newNS(t)
	first := newSmb(t, n, nil)
	ctx := context.Background()
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := first.process().Pid()
	later, err := New(first.p)
	if err != nil {
		t.Fatal(err)
	}
	n.bind(later)
	if err := later.Monitor(ctx); err != nil {
		t.Fatalf("Monitor by a new instance: %v", err)
	}
	if err := later.Start(ctx); err != nil || later.process().Pid() != pid {
		t.Fatalf("Start by a new instance: %v, pid %d; want the running smbd %d kept", err, later.process().Pid(), pid)
	}
	if err := later.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n, later, pid)
}

func TestSmbdStartFailure(t *testing.T) {
	needSmbd(t)
	n := newNS(t)
	missing := netip.MustParseAddr("198.18.0.2") // not on any interface
	r := newSmb(t, n, func(p *Params) {
		p.Address = missing
		p.Config = smbConf(t, missing)
	})
	began := time.Now()
	err := r.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "start: smbd pid") || !strings.Contains(err.Error(), "No sockets available") {
		t.Fatalf("Start without the address: %v", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("took %v to notice", d)
	}
	t.Logf("Start without the address: %v", err)
	if ps := n.procs(t); len(ps) > 0 {
		t.Errorf("processes %v left after the failed start", ps)
	}
	if _, err := os.Stat(r.process().PidFile()); !os.IsNotExist(err) {
		t.Errorf("pid file after the failed start: %v", err)
	}
}

// BenchmarkSmbdReady measures the time from launching smbd to its first
// answered NEGOTIATE, polled every millisecond, and the time Start takes.
func BenchmarkSmbdReady(b *testing.B) {
	needSmbd(b)
	n := newNS(b)
	benchReady(b, newSmb(b, n, nil))
}

func benchReady(b *testing.B, r *Resource) {
	ctx := context.Background()
	var ready, start []time.Duration
	for b.Loop() {
		began := time.Now()
		if err := r.process().Launch(ctx); err != nil {
			b.Fatal(err)
		}
		for {
			actx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := r.negotiate(actx)
			cancel()
			if err == nil {
				break
			}
			if time.Since(began) > 10*time.Second {
				b.Fatalf("no answer within 10 s: %v", err)
			}
			time.Sleep(time.Millisecond)
		}
		ready = append(ready, time.Since(began))
		if err := r.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		began = time.Now()
		if err := r.Start(ctx); err != nil {
			b.Fatal(err)
		}
		start = append(start, time.Since(began))
		if err := r.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(ms(median(ready)), "ms-to-answer")
	b.ReportMetric(ms(median(start)), "ms-Start")
	b.ReportMetric(ms(slices.Min(ready)), "ms-to-answer-min")
	b.ReportMetric(ms(slices.Max(ready)), "ms-to-answer-max")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
