package smbservice

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// privateNetns is a network namespace of a test's own, with lo up, held by
// one locked thread that runs functions in it.
type privateNetns struct {
	path string
	fns  chan func()
}

// newPrivateNetns makes the namespace, or skips the test when that takes
// privileges it lacks. The namespace goes with the test.
func newPrivateNetns(t testing.TB) *privateNetns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	n := &privateNetns{fns: make(chan func())}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with the namespace.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("unshare: %w", err)
			return
		}
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err == nil {
			var lo netlink.Link
			if lo, err = h.LinkByName("lo"); err == nil {
				err = h.LinkSetUp(lo)
			}
			h.Close()
		}
		if err != nil {
			ready <- fmt.Errorf("lo up: %w", err)
			return
		}
		n.path = fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		ready <- nil
		for fn := range n.fns {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		t.Skipf("private network namespace: %v", err)
	}
	t.Cleanup(func() { close(n.fns) })
	return n
}

// do runs fn inside the namespace.
func (n *privateNetns) do(fn func() error) error {
	errc := make(chan error, 1)
	n.fns <- func() { errc <- fn() }
	return <-errc
}

// vanish closes c without a FIN or RST, as if its host had died: a socket
// in repair mode closes silently.
func vanish(t testing.TB, c net.Conn) {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_REPAIR, 1) })
	if serr != nil {
		t.Fatalf("TCP_REPAIR: %v", serr)
	}
	c.Close()
}

// readErr reads from c with a deadline and returns the error.
func readErr(c net.Conn, within time.Duration) error {
	c.SetReadDeadline(time.Now().Add(within))
	_, err := c.Read(make([]byte, 1))
	return err
}

// connOf returns the Conn of a client socket.
func connOf(c net.Conn) Conn {
	l, r := c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
	return Conn{
		Client: netip.AddrPortFrom(l.Addr().Unmap(), l.Port()),
		Server: netip.AddrPortFrom(r.Addr().Unmap(), r.Port()),
	}
}

// loopbackPair dials to a dual-stack listener on port 445 from 127.0.0.1
// and from ::1 inside n and returns the client and server sides.
func loopbackPair(t *testing.T, n *privateNetns) (clients, servers []net.Conn) {
	t.Helper()
	err := n.do(func() error {
		ln, err := net.Listen("tcp", ":445")
		if err != nil {
			return err
		}
		defer ln.Close()
		for _, addr := range []string{"127.0.0.1:445", "[::1]:445"} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			s, err := ln.Accept()
			if err != nil {
				return err
			}
			clients, servers = append(clients, c), append(servers, s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range append(clients, servers...) {
			c.Close()
		}
	})
	return clients, servers
}

var loopbackAddrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}

// The whole path on loopback, IPv4 and IPv6, through a dual-stack listener:
// the tracker lists both connections (the IPv4 one unmapped), the server
// sockets vanish as with a dead node, the clients stay open until tickled,
// then get a RST.
func TestTrackAndTickleLoopback(t *testing.T) {
	n := newPrivateNetns(t)
	clients, servers := loopbackPair(t, n)
	want := []Conn{connOf(clients[0]), connOf(clients[1])}
	if !want[0].Is4() || want[1].Is4() {
		t.Fatalf("connections %v: want one IPv4 and one IPv6", want)
	}

	tr := &Tracker{Addrs: loopbackAddrs, Ports: []uint16{445, 139}, Netns: n.path}
	defer tr.Close()
	added, removed, err := tr.Poll()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(added) != fmt.Sprint(want) || len(removed) != 0 {
		t.Fatalf("first poll: added %v removed %v; want %v added", added, removed, want)
	}
	if added, removed, err = tr.Poll(); err != nil || len(added)+len(removed) != 0 {
		t.Fatalf("second poll: added %v removed %v, %v; want no change", added, removed, err)
	}

	for _, s := range servers {
		vanish(t, s)
	}
	if added, removed, err = tr.Poll(); err != nil || len(added) != 0 || fmt.Sprint(removed) != fmt.Sprint(want) {
		t.Fatalf("poll after the server sockets went: added %v removed %v, %v", added, removed, err)
	}
	for i, c := range clients {
		if err := readErr(c, 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s before the tickle: %v; want it still open", want[i], err)
		}
	}

	tk := &Tickler{Netns: n.path, Rounds: 1}
	res, err := tk.Tickle(context.Background(), want)
	if err != nil || res.Sent != 2 {
		t.Fatalf("Tickle: %+v, %v", res, err)
	}
	for i, c := range clients {
		if err := readErr(c, time.Second); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s after the tickle: %v; want ECONNRESET", want[i], err)
		}
	}
}

// Reset destroys live server sockets: the clients' reads fail at once.
func TestResetLoopback(t *testing.T) {
	n := newPrivateNetns(t)
	clients, _ := loopbackPair(t, n)
	conns := []Conn{connOf(clients[0]), connOf(clients[1])}
	began := time.Now()
	destroyed, err := Reset(n.path, conns)
	if err != nil || destroyed != 2 {
		t.Fatalf("Reset: %d destroyed, %v; want 2", destroyed, err)
	}
	for i, c := range clients {
		if err := readErr(c, time.Second); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s after Reset: %v; want ECONNRESET", conns[i], err)
		}
	}
	if d := time.Since(began); d > 500*time.Millisecond {
		t.Errorf("clients saw the reset %v after Reset", d)
	}
	// Gone sockets are not errors.
	if destroyed, err := Reset(n.path, conns); err != nil || destroyed != 0 {
		t.Errorf("second Reset: %d, %v; want 0 and no error", destroyed, err)
	}
}

const benchConns = 10000

// BenchmarkTrackerPoll10k measures one poll (median wall and CPU time), a sock_diag dump of both
// families, with 10,000 established connections to 127.0.0.1:445 in a
// namespace of the benchmark's own. The client sides are closed silently so
// that only the 10,000 server sockets hold descriptors (the hard limit here
// is 20,000).
func BenchmarkTrackerPoll10k(b *testing.B) {
	n := newPrivateNetns(b)
	var servers []net.Conn
	b.Cleanup(func() {
		for _, s := range servers {
			s.Close()
		}
	})
	err := n.do(func() error {
		ln, err := net.Listen("tcp4", "127.0.0.1:445")
		if err != nil {
			return err
		}
		defer ln.Close()
		for i := range benchConns {
			// A client address each: a silently closed client's port is
			// free again, and a new client on the same address and port
			// would collide with the server socket left behind.
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 1, byte(i>>8), byte(i))}}
			c, err := d.Dial("tcp4", "127.0.0.1:445")
			if err != nil {
				return err
			}
			s, err := ln.Accept()
			if err != nil {
				c.Close()
				return err
			}
			servers = append(servers, s)
			vanish(b, c)
		}
		return nil
	})
	if err != nil {
		b.Fatalf("make %d connections: %v", benchConns, err)
	}
	tr := &Tracker{Addrs: loopbackAddrs, Ports: []uint16{445, 139}, Netns: n.path}
	defer tr.Close()
	if _, _, err := tr.Poll(); err != nil {
		b.Fatal(err)
	}
	if got := len(tr.Conns()); got != benchConns {
		b.Fatalf("tracked %d connections, want %d", got, benchConns)
	}
	measure(b, func() {
		if _, _, err := tr.Poll(); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkTickle10k measures (median wall and CPU time) building and
// sending one round of 10,000
// tickles from 127.0.0.1:445 to clients spread over 127.0.0.0/8, inside a
// namespace of the benchmark's own.
func BenchmarkTickle10k(b *testing.B) {
	n := newPrivateNetns(b)
	conns := make([]Conn, benchConns)
	server := netip.MustParseAddrPort("127.0.0.1:445")
	for i := range conns {
		client := netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)})
		conns[i] = Conn{Client: netip.AddrPortFrom(client, uint16(40000+i%20000)), Server: server}
	}
	tk := &Tickler{Netns: n.path, Rounds: 1}
	measure(b, func() {
		res, err := tk.Tickle(context.Background(), conns)
		if err != nil || res.Sent != benchConns {
			b.Fatalf("Tickle: %+v, %v", res, err)
		}
	})
}

// measure runs fn b.N times and reports the medians of its wall time and
// of the process's CPU time (user and system, from getrusage) per call.
func measure(b *testing.B, fn func()) {
	var wall, cpu []time.Duration
	for b.Loop() {
		c0, t0 := cpuTime(b), time.Now()
		fn()
		wall = append(wall, time.Since(t0))
		cpu = append(cpu, cpuTime(b)-c0)
	}
	b.ReportMetric(ms(median(wall)), "wall-ms")
	b.ReportMetric(ms(median(cpu)), "cpu-ms")
}

// cpuTime is the process's user and system time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
