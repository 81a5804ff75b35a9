package heartbeat

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// nsThread is an OS thread in a network namespace of its own, created for
// one test; work handed to do runs there. Sockets keep the namespace they
// were created in, so media opened through do can be used anywhere.
type nsThread struct {
	work chan func()
	ns   netns.NsHandle
}

func newNSThread(t *testing.T) *nsThread {
	t.Helper()
	th := &nsThread{work: make(chan func())}
	ready := make(chan error)
	go func() {
		// The thread stays locked: it is in another namespace, and Go
		// ends a locked thread when its goroutine returns.
		runtime.LockOSThread()
		ns, err := netns.New()
		th.ns = ns
		ready <- err
		if err != nil {
			return
		}
		for f := range th.work {
			f()
		}
	}()
	if err := <-ready; err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	t.Cleanup(func() {
		close(th.work)
		th.ns.Close()
	})
	return th
}

func (th *nsThread) do(f func()) {
	done := make(chan struct{})
	th.work <- func() { defer close(done); f() }
	<-done
}

// writeSysctl sets a sysctl of the calling thread's network namespace.
func writeSysctl(t *testing.T, path, value string) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/"+path, []byte(value), 0o644); err != nil {
		t.Fatalf("sysctl %s: %v", path, err)
	}
}

// vethPair builds two namespaces joined by a veth pair, va in A with
// 198.18.1.1/24 and vb in B with 198.18.1.2/24, both up.
func vethPair(t *testing.T) (a, b *nsThread) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	a, b = newNSThread(t), newNSThread(t)
	for _, th := range []*nsThread{a, b} {
		th.do(func() {
			// Link-local IPv6 addresses usable at once, without DAD.
			writeSysctl(t, "net/ipv6/conf/default/accept_dad", "0")
			writeSysctl(t, "net/ipv6/conf/default/dad_transmits", "0")
		})
	}
	a.do(func() {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "va"}, PeerName: "vb"}); err != nil {
			t.Fatalf("veth: %v", err)
		}
		vb, err := netlink.LinkByName("vb")
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetNsFd(vb, int(b.ns)); err != nil {
			t.Fatalf("move vb: %v", err)
		}
	})
	up := func(th *nsThread, name, cidr, brd string) {
		th.do(func() {
			l, err := netlink.LinkByName(name)
			if err != nil {
				t.Fatal(err)
			}
			ipnet, err := netlink.ParseIPNet(cidr)
			if err != nil {
				t.Fatal(err)
			}
			if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipnet, Broadcast: net.ParseIP(brd)}); err != nil {
				t.Fatalf("address %s on %s: %v", cidr, name, err)
			}
			if err := netlink.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		})
	}
	up(a, "va", "198.18.1.1/24", "198.18.1.255")
	up(b, "vb", "198.18.1.2/24", "198.18.1.255")
	return a, b
}

// exchange sends from one medium until the other receives the message,
// within a deadline: a fresh veth may drop the first packets while its
// carrier comes up.
func exchange(t *testing.T, from, to Medium, payload string) string {
	t.Helper()
	got := make(chan received, 16)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			msg, src, err := to.Receive()
			select {
			case got <- received{msg, src, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if err := from.Send([]byte(payload)); err != nil {
			t.Fatalf("%s: %v", from.Name(), err)
		}
		select {
		case r := <-got:
			if r.err != nil {
				t.Fatalf("%s: %v", to.Name(), r.err)
			}
			if bytes.Equal(r.msg, []byte(payload)) {
				return r.from
			}
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%q sent on %s never arrived", payload, from.Name())
		}
	}
}

func TestUDPModesInNamespaces(t *testing.T) {
	a, b := vethPair(t)
	addrA, addrB := netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.1.2")
	for _, tc := range []struct {
		name   string
		ca, cb UDPConfig
	}{
		{"unicast",
			UDPConfig{Local: addrA, Peer: addrB},
			UDPConfig{Local: addrB, Peer: addrA}},
		{"multicast IPv4",
			UDPConfig{Mode: Multicast, Local: addrA, Group: netip.MustParseAddr("239.255.6.94")},
			UDPConfig{Mode: Multicast, Local: addrB, Group: netip.MustParseAddr("239.255.6.94")}},
		{"multicast IPv6",
			UDPConfig{Mode: Multicast, Interface: "va", Group: netip.MustParseAddr("ff12::694")},
			UDPConfig{Mode: Multicast, Interface: "vb", Group: netip.MustParseAddr("ff12::694")}},
		{"broadcast",
			UDPConfig{Mode: Broadcast, Local: addrA},
			UDPConfig{Mode: Broadcast, Local: addrB}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ua, ub *UDP
			var err error
			a.do(func() { ua, err = DialUDP(tc.ca) })
			if err != nil {
				t.Fatal(err)
			}
			defer ua.Close()
			b.do(func() { ub, err = DialUDP(tc.cb) })
			if err != nil {
				t.Fatal(err)
			}
			defer ub.Close()
			if p := ua.LocalAddr().(*net.UDPAddr).Port; p != DefaultPort {
				t.Errorf("bound to port %d, want %d", p, DefaultPort)
			}
			from := exchange(t, ua, ub, "alpha to beta "+tc.name)
			t.Logf("%s: A sends to %v, B heard it from %s", tc.name, ua.Destination(), from)
			exchange(t, ub, ua, "beta to alpha "+tc.name)
			if tc.ca.Mode == Broadcast {
				if got := ua.Destination().String(); got != "198.18.1.255:694" {
					t.Errorf("broadcast destination %s", got)
				}
			}
		})
	}
}
