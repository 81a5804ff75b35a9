package resources

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// vethPair is two network namespaces joined by a veth pair: the node's end
// (198.18.0.1/24) and the peer's (198.18.0.2/24).
type vethPair struct {
	nodeNS, peerNS     string // paths under /run/netns
	nodeLink, peerLink string
	nodeHW             net.HardwareAddr
}

// newVethPair creates the namespaces tdlres<pid>n and tdlres<pid>p and
// removes them when the test ends.
func newVethPair(tb testing.TB) *vethPair {
	tb.Helper()
	needRoot(tb)
	base := fmt.Sprintf("tdlres%d", os.Getpid())
	v := &vethPair{nodeLink: "tdlres0", peerLink: "tdlres1"}
	var handles []netns.NsHandle
	for _, name := range []string{base + "n", base + "p"} {
		ns, err := newNamedNS(name)
		if err != nil {
			tb.Fatalf("create network namespace %s: %v", name, err)
		}
		handles = append(handles, ns)
		tb.Cleanup(func() {
			ns.Close()
			if err := netns.DeleteNamed(name); err != nil {
				tb.Errorf("delete network namespace %s: %v", name, err)
			}
		})
	}
	v.nodeNS, v.peerNS = filepath.Join("/run/netns", base+"n"), filepath.Join("/run/netns", base+"p")

	hn, err := netlink.NewHandleAt(handles[0])
	if err != nil {
		tb.Fatal(err)
	}
	defer hn.Close()
	hp, err := netlink.NewHandleAt(handles[1])
	if err != nil {
		tb.Fatal(err)
	}
	defer hp.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: v.nodeLink}, PeerName: v.peerLink, PeerNamespace: netlink.NsFd(int(handles[1]))}
	if err := hn.LinkAdd(veth); err != nil {
		tb.Fatalf("add veth %s/%s: %v", v.nodeLink, v.peerLink, err)
	}
	for _, s := range []struct {
		h    *netlink.Handle
		link string
		addr string
	}{{hn, v.nodeLink, "198.18.0.1/24"}, {hp, v.peerLink, "198.18.0.2/24"}} {
		l, err := s.h.LinkByName(s.link)
		if err != nil {
			tb.Fatal(err)
		}
		a, _ := netlink.ParseAddr(s.addr)
		if err := s.h.AddrAdd(l, a); err != nil {
			tb.Fatalf("add %s to %s: %v", s.addr, s.link, err)
		}
		if err := s.h.LinkSetUp(l); err != nil {
			tb.Fatal(err)
		}
		if s.link == v.nodeLink {
			v.nodeHW = l.Attrs().HardwareAddr
		}
	}
	// Wait for carrier on both ends.
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := hn.LinkByName(v.nodeLink)
		if err == nil && l.Attrs().OperState == netlink.OperUp {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s has no carrier after 5s", v.nodeLink)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return v
}

// newNamedNS creates a named network namespace from a thread that it then
// returns to its own namespace; a thread that cannot return stays locked
// and ends with its goroutine.
func newNamedNS(name string) (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			c <- result{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name)
		if serr := netns.Set(orig); serr != nil {
			c <- result{ns: ns, err: errors.Join(err, serr)}
			return
		}
		runtime.UnlockOSThread()
		c <- result{ns: ns, err: err}
	}()
	r := <-c
	return r.ns, r.err
}

// arpCapture reads ARP packets on the peer's end.
type arpCapture struct {
	conn *packet.Conn
}

func captureARP(tb testing.TB, v *vethPair) *arpCapture {
	tb.Helper()
	var conn *packet.Conn
	err := inNetNS(v.peerNS, func() error {
		ifi, err := net.InterfaceByName(v.peerLink)
		if err != nil {
			return err
		}
		conn, err = packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
		return err
	})
	if err != nil {
		tb.Fatalf("capture on %s: %v", v.peerLink, err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &arpCapture{conn: conn}
}

// next returns the next gratuitous ARP for ip before the deadline.
func (c *arpCapture) next(ip netip.Addr, deadline time.Time) (*arp.Packet, *ethernet.Frame, error) {
	if err := c.conn.SetReadDeadline(deadline); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			return nil, nil, err
		}
		var f ethernet.Frame
		if err := f.UnmarshalBinary(buf[:n]); err != nil || f.EtherType != ethernet.EtherTypeARP {
			continue
		}
		var p arp.Packet
		if err := p.UnmarshalBinary(f.Payload); err != nil {
			continue
		}
		if p.SenderIP == ip && p.TargetIP == ip {
			return &p, &f, nil
		}
	}
}

// drain discards what is queued for ip: packets sent before the call are
// in the socket's queue already, so a short quiet spell means it is empty.
func (c *arpCapture) drain(ip netip.Addr) {
	for {
		if _, _, err := c.next(ip, time.Now().Add(50*time.Millisecond)); err != nil {
			return
		}
	}
}

func addrOn(tb testing.TB, nsPath, link string, ip netip.Addr) bool {
	tb.Helper()
	ls, err := realNet{nsPath: nsPath}.links()
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range ls {
		if l.name != link {
			continue
		}
		for _, a := range l.addrs {
			if a.prefix.Addr() == ip {
				return true
			}
		}
	}
	return false
}

func TestFloatIPReal(t *testing.T) {
	v := newVethPair(t)
	capture := captureARP(t, v)
	vip := netip.MustParseAddr("198.18.0.50")
	f := NewFloatIP(FloatIPParams{
		Name: "vip", Address: "198.18.0.50/24", NetNS: v.nodeNS,
		ARPRounds: 3, ARPInterval: 200 * time.Millisecond,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Cleanup(func() { f.Stop(context.Background()) })

	if err := f.Validate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Monitor(ctx); !errors.Is(err, ErrStopped) {
		t.Fatalf("monitor before start: %v, want ErrStopped", err)
	}
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !addrOn(t, v.nodeNS, v.nodeLink, vip) {
		t.Fatalf("%s is not on %s after start", vip, v.nodeLink)
	}
	if err := f.Monitor(ctx); err != nil {
		t.Fatalf("monitor: %v", err)
	}

	// Three rounds, 200ms apart, each a request and a reply.
	requests, replies := 0, 0
	deadline := time.Now().Add(5 * time.Second)
	for requests < 3 || replies < 3 {
		p, fr, err := capture.next(vip, deadline)
		if err != nil {
			t.Fatalf("after %d requests and %d replies: %v", requests, replies, err)
		}
		if !bytesEqual(p.SenderHardwareAddr, v.nodeHW) || !bytesEqual(fr.Source, v.nodeHW) || !bytesEqual(fr.Destination, ethernet.Broadcast) {
			t.Errorf("gratuitous ARP from %s (frame %s → %s), want from %s to broadcast", p.SenderHardwareAddr, fr.Source, fr.Destination, v.nodeHW)
		}
		switch p.Operation {
		case arp.OperationRequest:
			requests++
			if !bytesEqual(p.TargetHardwareAddr, net.HardwareAddr{0, 0, 0, 0, 0, 0}) {
				t.Errorf("request's target hardware address %s, want zero", p.TargetHardwareAddr)
			}
		case arp.OperationReply:
			replies++
		}
	}
	if requests != 3 || replies != 3 {
		t.Errorf("%d requests and %d replies, want 3 of each", requests, replies)
	}

	if err := f.Start(ctx); err != nil {
		t.Fatalf("second start: %v", err)
	}
	if err := f.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if addrOn(t, v.nodeNS, v.nodeLink, vip) {
		t.Fatalf("%s is still on %s after stop", vip, v.nodeLink)
	}
	if err := f.Monitor(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("monitor after stop: %v, want ErrStopped", err)
	}
	if err := f.Stop(ctx); err != nil {
		t.Errorf("second stop: %v", err)
	}

	// Stop cancels the rounds still to come: nothing is announced after it.
	// The second start announced once more; that is already queued.
	capture.drain(vip)
	slow := NewFloatIP(FloatIPParams{Name: "vip", Address: "198.18.0.50/24", NetNS: v.nodeNS, ARPRounds: 3, ARPInterval: 300 * time.Millisecond})
	if err := slow.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := capture.next(vip, time.Now().Add(2*time.Second)); err != nil {
		t.Fatalf("first round: %v", err)
	}
	if err := slow.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Drain what the first round left queued, then expect silence past the
	// time of the second round.
	quiet := time.Now().Add(700 * time.Millisecond)
	for {
		p, _, err := capture.next(vip, quiet)
		if err != nil {
			break
		}
		if p.Operation == arp.OperationRequest {
			t.Fatalf("an ARP request for %s after Stop: a later round was not cancelled", vip)
		}
	}
}

// BenchmarkFloatIPCycle measures Start, Monitor and Stop of a floating IP
// in a namespace, with the default rounds of gratuitous ARP (the first
// sent within Start, the rest cancelled by Stop).
func BenchmarkFloatIPCycle(b *testing.B) {
	v := newVethPair(b)
	f := NewFloatIP(FloatIPParams{Name: "vip", Address: "198.18.0.50/24", NetNS: v.nodeNS})
	ctx := context.Background()
	for b.Loop() {
		if err := f.Start(ctx); err != nil {
			b.Fatal(err)
		}
		if err := f.Monitor(ctx); err != nil {
			b.Fatal(err)
		}
		if err := f.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }
