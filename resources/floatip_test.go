package resources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeNet is a network stack with interfaces, addresses and an event log.
type fakeNet struct {
	mu     sync.Mutex
	ls     []netLink
	events []string
	sent   int  // announcement rounds sent
	closed bool // the last announcer was closed
	dialed int
	dhcp   *fakeDHCP // the DHCP server on the link, or nil
}

func (n *fakeNet) event(format string, args ...any) {
	n.events = append(n.events, fmt.Sprintf(format, args...))
}

func (n *fakeNet) took() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := strings.Join(n.events, "; ")
	n.events = nil
	return s
}

func (n *fakeNet) links() ([]netLink, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]netLink, len(n.ls))
	for i, l := range n.ls {
		l.addrs = append([]netAddr(nil), l.addrs...)
		out[i] = l
	}
	return out, nil
}

func (n *fakeNet) link(index int) *netLink {
	for i := range n.ls {
		if n.ls[i].index == index {
			return &n.ls[i]
		}
	}
	return nil
}

func (n *fakeNet) addrReplace(index int, p netip.Prefix, flags int, lifetime time.Duration) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.link(index)
	if lifetime > 0 {
		n.event("replace %s %s flags=%#x lifetime=%v", l.name, p, flags, lifetime)
	} else {
		n.event("replace %s %s flags=%#x", l.name, p, flags)
	}
	for i, a := range l.addrs {
		if a.prefix == p {
			l.addrs[i].flags = flags
			return nil
		}
	}
	l.addrs = append(l.addrs, netAddr{prefix: p, flags: flags})
	return nil
}

func (n *fakeNet) addrDel(index int, p netip.Prefix) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.link(index)
	n.event("del %s %s", l.name, p)
	for i, a := range l.addrs {
		if a.prefix == p {
			l.addrs = append(l.addrs[:i], l.addrs[i+1:]...)
			return nil
		}
	}
	return unix.EADDRNOTAVAIL
}

func (n *fakeNet) announcer(l netLink, addr netip.Addr) (announcer, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dialed++
	n.closed = false
	return &fakeAnnouncer{n: n, ifname: l.name}, nil
}

type fakeAnnouncer struct {
	n      *fakeNet
	ifname string
}

func (a *fakeAnnouncer) announce() error {
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	a.n.sent++
	a.n.event("announce %s", a.ifname)
	return nil
}

func (a *fakeAnnouncer) close() error {
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	a.n.closed = true
	a.n.event("close %s", a.ifname)
	return nil
}

func (n *fakeNet) counts() (sent int, closed bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sent, n.closed
}

func pfx(s string) netAddr { return netAddr{prefix: netip.MustParsePrefix(s)} }

var hw = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}

func twoLANs() *fakeNet {
	return &fakeNet{ls: []netLink{
		{index: 1, name: "lo", up: true, oper: "unknown", loopback: true, addrs: []netAddr{pfx("127.0.0.1/8"), pfx("::1/128")}},
		{index: 2, name: "eth0", up: true, oper: "up", hwAddr: hw, addrs: []netAddr{pfx("198.18.0.1/24"), pfx("2001:db8::1/64"), pfx("fe80::1/64")}},
		{index: 3, name: "eth1", up: true, oper: "up", hwAddr: hw, addrs: []netAddr{pfx("198.18.1.1/24")}},
	}}
}

func testIP(n *fakeNet, p FloatIPParams) *FloatIP {
	if p.Name == "" {
		p.Name = "vip"
	}
	p.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	return newFloatIP(p, n)
}

func TestFloatIPPickLink(t *testing.T) {
	for _, tc := range []struct {
		name  string
		net   func() *fakeNet
		p     FloatIPParams
		want  string
		error string
	}{
		{"subnet eth0", twoLANs, FloatIPParams{Address: "198.18.0.50/24"}, "eth0", ""},
		{"subnet eth1", twoLANs, FloatIPParams{Address: "198.18.1.50/24"}, "eth1", ""},
		{"ipv6", twoLANs, FloatIPParams{Address: "2001:db8::50/64"}, "eth0", ""},
		{"named", twoLANs, FloatIPParams{Address: "198.18.0.50/24", Interface: "eth1"}, "eth1", ""},
		{"bare with interface", twoLANs, FloatIPParams{Address: "198.18.9.9", Interface: "eth1"}, "eth1", ""},
		{"no such interface", twoLANs, FloatIPParams{Address: "198.18.0.50/24", Interface: "eth9"}, "", `resources: floatip "vip": interface eth9 for 198.18.0.50/24 not found`},
		{"no subnet", twoLANs, FloatIPParams{Address: "198.19.0.50/24"}, "", `resources: floatip "vip": no interface has an address in 198.19.0.0/24, the subnet of 198.19.0.50/24: give the interface`},
		{"two subnets", twoLANs, FloatIPParams{Address: "198.18.0.50/23"}, "", `resources: floatip "vip": interfaces eth0, eth1 all have addresses in 198.18.0.0/23, the subnet of 198.18.0.50/23: give the interface`},
		{"already held", func() *fakeNet {
			n := twoLANs()
			n.ls[2].addrs = append(n.ls[2].addrs, pfx("198.18.0.50/23"))
			return n
		}, FloatIPParams{Address: "198.18.0.50/23"}, "eth1", ""},
		{"bad address", twoLANs, FloatIPParams{Address: "198.18.0.300/24"}, "", `address "198.18.0.300/24": want an address with its prefix length`},
		{"bare without interface", twoLANs, FloatIPParams{Address: "198.18.0.50"}, "", "has no prefix length"},
		{"network address", twoLANs, FloatIPParams{Address: "198.18.0.0/24"}, "", "network address"},
		{"multicast", twoLANs, FloatIPParams{Address: "239.1.1.1/24"}, "", "not a unicast address"},
		{"zone", twoLANs, FloatIPParams{Address: "fe80::5%eth0/64"}, "", "not allowed"},
		{"empty", twoLANs, FloatIPParams{}, "", "no address"},
	} {
		n := tc.net()
		f := testIP(n, tc.p)
		err := f.Validate(context.Background())
		if tc.error != "" {
			if err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.error)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		ls, _ := n.links()
		l, _ := f.pickLink(ls)
		if l.name != tc.want {
			t.Errorf("%s: picked %q, want %q", tc.name, l.name, tc.want)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestFloatIPRounds(t *testing.T) {
	n := twoLANs()
	f := testIP(n, FloatIPParams{Address: "198.18.0.50/24", ARPInterval: 10 * time.Millisecond})
	ctx := context.Background()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if sent, _ := n.counts(); sent < 1 {
		t.Fatal("Start returned before the first round")
	}
	waitFor(t, "three rounds and the socket closed", 5*time.Second, func() bool {
		sent, closed := n.counts()
		return sent == 3 && closed
	})
	if got, want := n.took(), "replace eth0 198.18.0.50/24 flags=0x0; announce eth0; announce eth0; announce eth0; close eth0"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if err := f.Monitor(ctx); err != nil {
		t.Errorf("monitor: %v", err)
	}
	// Start again: the address is replaced (idempotent), and announced
	// again since no rounds run.
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Monitor(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("monitor after stop: %v, want ErrStopped", err)
	}
}

func TestFloatIPStopCancelsRounds(t *testing.T) {
	n := twoLANs()
	f := testIP(n, FloatIPParams{Address: "198.18.0.50/24", ARPInterval: time.Hour})
	ctx := context.Background()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// A second start while rounds run adds nothing and announces nothing.
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := "replace eth0 198.18.0.50/24 flags=0x0; announce eth0; replace eth0 198.18.0.50/24 flags=0x0; close eth0; del eth0 198.18.0.50/24"
	if got := n.took(); got != want {
		t.Errorf("events %q, want %q (announcements end before the address goes)", got, want)
	}
	if err := f.Stop(ctx); err != nil {
		t.Errorf("second stop: %v", err)
	}
	if got := n.took(); got != "" {
		t.Errorf("second stop: events %q", got)
	}
}

func TestFloatIPStopRemovesEverywhere(t *testing.T) {
	n := twoLANs()
	n.ls[1].addrs = append(n.ls[1].addrs, pfx("198.18.0.50/24"))
	n.ls[2].addrs = append(n.ls[2].addrs, pfx("198.18.0.50/32"))
	f := testIP(n, FloatIPParams{Address: "198.18.0.50/24"})
	err := f.Monitor(context.Background())
	if err == nil || !strings.Contains(err.Error(), "198.18.0.50 is on both eth0 and eth1") {
		t.Errorf("monitor: %v", err)
	}
	if err := f.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := n.took(), "del eth0 198.18.0.50/24; del eth1 198.18.0.50/32"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestFloatIPv6(t *testing.T) {
	n := twoLANs()
	f := testIP(n, FloatIPParams{Address: "2001:db8::50/64", ARPRounds: 2, ARPInterval: 10 * time.Millisecond})
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two rounds and the socket closed", 5*time.Second, func() bool {
		sent, closed := n.counts()
		return sent == 2 && closed
	})
	// The same rounds as IPv4's ARP: the first within Start.
	if got, want := n.took(), fmt.Sprintf("replace eth0 2001:db8::50/64 flags=%#x; announce eth0; announce eth0; close eth0", unix.IFA_F_NODAD); got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if err := f.Monitor(context.Background()); err != nil {
		t.Errorf("monitor: %v", err)
	}
	n.mu.Lock()
	for i, a := range n.ls[1].addrs {
		if a.prefix.Addr() == netip.MustParseAddr("2001:db8::50") {
			n.ls[1].addrs[i].flags |= unix.IFA_F_DADFAILED
		}
	}
	n.mu.Unlock()
	if err := f.Monitor(context.Background()); err == nil || !strings.Contains(err.Error(), "duplicate address detection") {
		t.Errorf("monitor of a DAD-failed address: %v", err)
	}
}

func TestFloatIPMonitor(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(n *fakeNet)
		p    FloatIPParams
		want string
	}{
		{"healthy", nil, FloatIPParams{}, ""},
		{"down", func(n *fakeNet) { n.ls[1].up = false }, FloatIPParams{}, "interface eth0 of 198.18.0.50 is down"},
		{"no carrier", func(n *fakeNet) { n.ls[1].oper = "lower-layer-down" }, FloatIPParams{}, "interface eth0 of 198.18.0.50 has no carrier (state lower-layer-down)"},
		{"wrong prefix", func(n *fakeNet) { n.ls[1].addrs[len(n.ls[1].addrs)-1] = pfx("198.18.0.50/25") }, FloatIPParams{}, "198.18.0.50 is on eth0 as 198.18.0.50/25, not as 198.18.0.50/24"},
		{"wrong interface", nil, FloatIPParams{Interface: "eth1"}, "198.18.0.50 is on eth0, not on eth1"},
	} {
		n := twoLANs()
		n.ls[1].addrs = append(n.ls[1].addrs, pfx("198.18.0.50/24"))
		if tc.mod != nil {
			tc.mod(n)
		}
		p := tc.p
		p.Address = "198.18.0.50/24"
		err := testIP(n, p).Monitor(context.Background())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		case tc.want != "" && errors.Is(err, ErrStopped):
			t.Errorf("%s: a failure reported as stopped: %v", tc.name, err)
		}
	}
}

func TestFloatIPStartOnDownInterface(t *testing.T) {
	n := twoLANs()
	n.ls[1].up = false
	err := testIP(n, FloatIPParams{Address: "198.18.0.50/24"}).Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "interface eth0 for 198.18.0.50/24 is down") {
		t.Errorf("start: %v", err)
	}
	if got := n.took(); got != "" {
		t.Errorf("events %q, want none", got)
	}
}
