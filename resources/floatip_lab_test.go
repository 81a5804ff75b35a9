package resources

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"github.com/tandem-ha/tandem/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// These tests run floating addresses on the lab's nodes and watch them
// from the lab's client, as a client on the LAN sees a takeover.

// frame is a captured Ethernet frame carrying IPv4 or IPv6.
type frame struct {
	eth      ethernet.Frame
	src, dst netip.Addr
	proto    uint8  // IPv4 protocol or IPv6 next header
	hopLimit uint8  // IPv6 only
	payload  []byte // what follows the IP header
}

// capture reads frames of one EtherType on a host's public interface,
// both ways.
type capture struct {
	conn *packet.Conn
}

func captureOn(t *testing.T, h *testenv.Host, etherType ethernet.EtherType) *capture {
	t.Helper()
	var conn *packet.Conn
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(testenv.PublicIf)
		if err != nil {
			return err
		}
		conn, err = packet.Listen(ifi, packet.Raw, int(etherType), nil)
		return err
	})
	if err != nil {
		t.Fatalf("capture on %s of %s: %v", testenv.PublicIf, h.Name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &capture{conn: conn}
}

// next returns the next frame that match accepts, before the deadline.
func (c *capture) next(deadline time.Time, match func(*frame) bool) (*frame, error) {
	if err := c.conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	buf := make([]byte, 2048)
	for {
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			return nil, err
		}
		var f frame
		if err := f.eth.UnmarshalBinary(append([]byte(nil), buf[:n]...)); err != nil || !f.parseIP() {
			continue
		}
		if match(&f) {
			return &f, nil
		}
	}
}

// all returns every frame match accepts until the line is quiet for quiet.
func (c *capture) all(quiet time.Duration, match func(*frame) bool) []*frame {
	var out []*frame
	for {
		f, err := c.next(time.Now().Add(quiet), match)
		if err != nil {
			return out
		}
		out = append(out, f)
	}
}

func (f *frame) parseIP() bool {
	p := f.eth.Payload
	switch f.eth.EtherType {
	case ethernet.EtherTypeIPv6:
		if len(p) < 40 {
			return false
		}
		f.proto, f.hopLimit = p[6], p[7]
		f.src, _ = netip.AddrFromSlice(p[8:24])
		f.dst, _ = netip.AddrFromSlice(p[24:40])
		f.payload = p[40:]
	case ethernet.EtherTypeIPv4:
		if len(p) < 20 || p[0]>>4 != 4 || len(p) < int(p[0]&0xf)*4 {
			return false
		}
		f.proto = p[9]
		f.src, _ = netip.AddrFromSlice(p[12:16])
		f.dst, _ = netip.AddrFromSlice(p[16:20])
		f.payload = p[int(p[0]&0xf)*4:]
	default:
		return false
	}
	return true
}

// ndp returns the frame's NDP message, or nil.
func (f *frame) ndp() ndp.Message {
	if f.proto != unix.IPPROTO_ICMPV6 {
		return nil
	}
	m, err := ndp.ParseMessage(f.payload)
	if err != nil {
		return nil
	}
	return m
}

// dhcp returns the frame's DHCP message to a server, or nil.
func (f *frame) dhcpToServer() *dhcpv4.DHCPv4 {
	if f.proto != unix.IPPROTO_UDP || len(f.payload) < 8 || binary.BigEndian.Uint16(f.payload[2:4]) != 67 {
		return nil
	}
	m, err := dhcpv4.FromBytes(f.payload[8:])
	if err != nil {
		return nil
	}
	return m
}

func hwAddr(t *testing.T, h *testenv.Host) net.HardwareAddr {
	t.Helper()
	var hw net.HardwareAddr
	if err := h.Do(func() error {
		ifi, err := net.InterfaceByName(testenv.PublicIf)
		if err == nil {
			hw = ifi.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return hw
}

// neighbour returns the host's neighbour entry for ip on its public
// interface: link-layer address and state, or nil.
func neighbour(t *testing.T, h *testenv.Host, ip netip.Addr) (net.HardwareAddr, int) {
	t.Helper()
	ns, err := netns.GetFromPath(h.NetnsPath())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(testenv.PublicIf)
	if err != nil {
		t.Fatal(err)
	}
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	ns2, err := nh.NeighList(l.Attrs().Index, fam)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns2 {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip {
			return n.HardwareAddr, n.State
		}
	}
	return nil, 0
}

func pingFrom(t *testing.T, h *testenv.Host, ip netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.Run(ctx, "ping", "-c1", "-W2", ip.String()); err != nil {
		t.Fatal(err)
	}
}

// startOn starts a floating address built from p on node h and stops it
// when the test ends.
func startOn(t *testing.T, ctx context.Context, h *testenv.Host, p FloatIPParams) *FloatIP {
	t.Helper()
	p.NetNS = h.NetnsPath()
	p.Log = slog.New(slog.NewTextHandler(t.Output(), nil))
	f := NewFloatIP(p)
	t.Cleanup(func() { f.Stop(context.Background()) })
	if err := f.Start(ctx); err != nil {
		t.Fatalf("start on %s: %v", h.Name, err)
	}
	return f
}

func TestFloatIPv6TakeoverLab(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{})
	testenv.RequireCommands(t, "ping", "iputils-ping")
	a, b, client := lab.Node("a"), lab.Node("b"), lab.Client()
	aMAC, bMAC, clientMAC := hwAddr(t, a), hwAddr(t, b), hwAddr(t, client)
	vip := testenv.FloatIP6.Addr()
	capture := captureOn(t, client, ethernet.EtherTypeIPv6)
	isNA := func(f *frame) bool {
		na, ok := f.ndp().(*ndp.NeighborAdvertisement)
		return ok && na.TargetAddress == vip
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	params := FloatIPParams{Name: "vip6", Address: testenv.FloatIP6.String(), ARPRounds: 2, ARPInterval: 300 * time.Millisecond}

	fa := startOn(t, ctx, a, params)
	// The client sees a's unsolicited NA: to all nodes, hop limit 255,
	// override set, solicited not, a's MAC as the target's.
	f, err := capture.next(time.Now().Add(2*time.Second), isNA)
	if err != nil {
		t.Fatalf("no neighbour advertisement for %s reached the client: %v", vip, err)
	}
	na := f.ndp().(*ndp.NeighborAdvertisement)
	if !bytes.Equal(f.eth.Source, aMAC) || !bytes.Equal(f.eth.Destination, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}) ||
		f.dst != netip.MustParseAddr("ff02::1") || f.hopLimit != 255 {
		t.Errorf("NA frame %s → %s, IPv6 %s → %s, hop limit %d: want from a (%s) to all nodes, hop limit 255",
			f.eth.Source, f.eth.Destination, f.src, f.dst, f.hopLimit, aMAC)
	}
	if !na.Override || na.Solicited || na.Router || len(na.Options) != 1 {
		t.Errorf("NA %+v: want override only and one option", na)
	} else if lla, ok := na.Options[0].(*ndp.LinkLayerAddress); !ok || lla.Direction != ndp.Target || !bytes.Equal(lla.Addr, aMAC) {
		t.Errorf("NA option %+v: want a's MAC %s as the target link-layer address", na.Options[0], aMAC)
	}
	// The second round, 300ms later.
	if _, err := capture.next(time.Now().Add(2*time.Second), isNA); err != nil {
		t.Fatalf("second round: %v", err)
	}
	// The client talks to the floating address: its entry is a's.
	pingFrom(t, client, vip)
	if mac, state := neighbour(t, client, vip); !bytes.Equal(mac, aMAC) {
		t.Fatalf("client's neighbour entry for %s: %s (state %#x), want a's %s", vip, mac, state, aMAC)
	}

	if err := fa.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	capture.all(100*time.Millisecond, func(*frame) bool { return true })
	startOn(t, ctx, b, params)
	// b's first NA was sent before Start returned; the client's kernel
	// takes it in as soon as the bridge delivers it.
	deadline := time.Now().Add(2 * time.Second)
	for {
		mac, state := neighbour(t, client, vip)
		if bytes.Equal(mac, bMAC) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client's neighbour entry for %s: %s (state %#x) 2s after b took over, want b's %s", vip, mac, state, bMAC)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// And the client asked nobody: no solicitation for the address left it.
	for _, f := range capture.all(200*time.Millisecond, func(f *frame) bool {
		ns, ok := f.ndp().(*ndp.NeighborSolicitation)
		return ok && ns.TargetAddress == vip && bytes.Equal(f.eth.Source, clientMAC)
	}) {
		t.Errorf("the client solicited %s (to %s): the NA did not update it", vip, f.dst)
	}
	pingFrom(t, client, vip)
}

func TestFloatIPDHCPLab(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{})
	testenv.RequireCommands(t, "ping", "iputils-ping")
	const t1 = 3 * time.Second
	srv := testenv.StartDHCP(t, lab, testenv.DHCPOptions{RenewTime: t1})
	a, b, client := lab.Node("a"), lab.Node("b"), lab.Client()
	aMAC, bMAC, serverMAC := hwAddr(t, a), hwAddr(t, b), hwAddr(t, client)
	server := client.PublicAddr.Addr()
	capture := captureOn(t, client, ethernet.EtherTypeIPv4)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	params := FloatIPParams{Name: "vip", DHCP: true, ClientID: "filer-vip", Interface: testenv.PublicIf, ARPRounds: 1}
	clientID := []byte("\x00filer-vip")

	// Node a obtains X with client id C.
	fa := startOn(t, ctx, a, params)
	lease, ok := fa.Lease()
	if !ok {
		t.Fatal("started without a lease")
	}
	x := lease.Prefix
	if x.Bits() != 24 || x.Addr().Less(testenv.DHCPRange[0]) || testenv.DHCPRange[1].Less(x.Addr()) || lease.Server != server {
		t.Fatalf("lease %+v: want an address in %v with the /24 of the network, from %v", lease, testenv.DHCPRange, server)
	}
	if has, _ := a.HasAddr(x.Addr()); !has {
		t.Fatalf("a does not hold its lease %s", x)
	}
	if err := fa.Monitor(ctx); err != nil {
		t.Fatal(err)
	}
	leases, err := srv.Leases()
	if err != nil || len(leases) != 1 || leases[0].Addr != x.Addr() || !bytes.Equal(leases[0].MAC, aMAC) || !bytes.Equal(leases[0].ClientID, clientID) {
		t.Fatalf("server's leases %+v (%v): want %s to a (%s) for client id % x", leases, err, x.Addr(), aMAC, clientID)
	}

	// At T1 a renews, by a REQUEST unicast from X to the server.
	renewal, err := capture.next(time.Now().Add(t1+5*time.Second), func(f *frame) bool {
		m := f.dhcpToServer()
		// Not the REQUEST of the first exchange: that one has no ciaddr.
		return m != nil && m.MessageType() == dhcpv4.MessageTypeRequest && bytes.Equal(f.eth.Source, aMAC) &&
			!m.ClientIPAddr.IsUnspecified()
	})
	if err != nil {
		t.Fatalf("no renewal within T1 (%v) and 5s: %v\n%s", t1, err, srv.Log())
	}
	m := renewal.dhcpToServer()
	if renewal.src != x.Addr() || renewal.dst != server || !bytes.Equal(renewal.eth.Destination, serverMAC) ||
		!m.ClientIPAddr.Equal(x.Addr().AsSlice()) || m.Options.Get(dhcpv4.OptionServerIdentifier) != nil ||
		!bytes.Equal(m.Options.Get(dhcpv4.OptionClientIdentifier), clientID) {
		t.Errorf("renewal %s → %s (frame to %s), ciaddr %s, server id %v, client id % x: want unicast from %s to the server %s (%s) with ciaddr, no server id, client id % x",
			renewal.src, renewal.dst, renewal.eth.Destination, m.ClientIPAddr, m.Options.Get(dhcpv4.OptionServerIdentifier),
			m.Options.Get(dhcpv4.OptionClientIdentifier), x.Addr(), server, serverMAC, clientID)
	}
	waitFor(t, "the renewed lease", 5*time.Second, func() bool {
		l, ok := fa.Lease()
		return ok && l.Obtained.After(lease.Obtained)
	})
	renewed, _ := fa.Lease()
	if d := renewed.Obtained.Sub(lease.Obtained); d < t1-time.Second || d > t1+3*time.Second {
		t.Errorf("renewed %v after the lease was obtained, want about T1 (%v)", d, t1)
	}
	// The address's lifetime follows the lease: about 2 minutes again.
	if lft := validLifetime(t, a, x.Addr()); lft < 100 || lft > 120 {
		t.Errorf("valid lifetime of %s on a: %ds, want the lease's 120s or a little less", x, lft)
	}

	// Rebinding (what T2 brings when the server does not answer at T1)
	// is a broadcast REQUEST from X that the server acknowledges too;
	// asked for here directly, since dnsmasq answers every renewal.
	links, err := realNet{nsPath: a.NetnsPath()}.links()
	if err != nil {
		t.Fatal(err)
	}
	fa.lmu.Lock()
	held := fa.lease
	fa.lmu.Unlock()
	var pub netLink
	for _, l := range links {
		if l.name == testenv.PublicIf {
			pub = l
		}
	}
	rebound, err := fa.extend(ctx, pub, held, true, time.Now().Add(10*time.Second))
	if err != nil || rebound.Prefix != x {
		t.Fatalf("rebinding: %+v, %v", rebound, err)
	}
	rebind, err := capture.next(time.Now().Add(time.Second), func(f *frame) bool {
		m := f.dhcpToServer()
		return m != nil && m.MessageType() == dhcpv4.MessageTypeRequest && f.dst == netip.MustParseAddr("255.255.255.255")
	})
	if err != nil || rebind.src != x.Addr() || !bytes.Equal(rebind.eth.Destination, ethernet.Broadcast) ||
		!rebind.dhcpToServer().ClientIPAddr.Equal(x.Addr().AsSlice()) {
		t.Errorf("rebinding request %+v, %v: want a broadcast from %s with ciaddr", rebind, err, x.Addr())
	}

	// a stops: the address goes, and no DHCPRELEASE leaves a.
	if err := fa.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if has, _ := a.HasAddr(x.Addr()); has {
		t.Fatalf("a still holds %s after stop", x)
	}
	for _, f := range capture.all(200*time.Millisecond, func(f *frame) bool {
		m := f.dhcpToServer()
		return m != nil && m.MessageType() == dhcpv4.MessageTypeRelease
	}) {
		t.Errorf("a released its lease on stop: %s → %s", f.src, f.dst)
	}

	// b, with the same client id, obtains the same X.
	fb := startOn(t, ctx, b, params)
	if got, _ := fb.Lease(); got.Prefix != x {
		t.Fatalf("b leased %v, want a's %v", got.Prefix, x)
	}
	if has, _ := b.HasAddr(x.Addr()); !has {
		t.Fatalf("b does not hold %s", x)
	}
	waitFor(t, "the server's lease to move to b", 5*time.Second, func() bool {
		ls, err := srv.Leases()
		return err == nil && len(ls) == 1 && ls[0].Addr == x.Addr() && bytes.Equal(ls[0].MAC, bMAC)
	})
	// The client reaches X, now on b.
	pingFrom(t, client, x.Addr())
	if mac, _ := neighbour(t, client, x.Addr()); !bytes.Equal(mac, bMAC) {
		t.Errorf("client reaches %s at %s, want b's %s", x.Addr(), mac, bMAC)
	}
}

// validLifetime returns the valid lifetime, in seconds, of ip on the
// host's public interface.
func validLifetime(t *testing.T, h *testenv.Host, ip netip.Addr) int {
	t.Helper()
	ls, err := (realNet{nsPath: h.NetnsPath()}).handle()
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	addrs, err := ls.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
			return a.ValidLft
		}
	}
	t.Fatalf("%s is not on %s", ip, h.Name)
	return 0
}
