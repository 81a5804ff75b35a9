package resources

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// fakeDHCP is a DHCP server on the fake link: it leases one address and
// answers (or not) as told, and records what it received.
type fakeDHCP struct {
	server netip.Addr
	lease  netip.Prefix

	mu              sync.Mutex
	leaseTime       time.Duration // zero sends no lease time
	t1, t2          time.Duration // zero sends none
	noMask          bool
	answerUnicast   bool
	answerBroadcast bool
	nak             bool
	seen            []seenDHCP
}

// seenDHCP is one message the server received.
type seenDHCP struct {
	typ      dhcpv4.MessageType
	local    netip.Addr // the client socket's address; invalid for the raw one
	dst      string
	clientID string
	ciaddr   string
	serverID string
	xid      dhcpv4.TransactionID
}

func (s seenDHCP) String() string {
	from := "raw"
	if s.local.IsValid() {
		from = s.local.String()
	}
	return fmt.Sprintf("%s from %s to %s ciaddr=%s server=%q id=%q", s.typ, from, s.dst, s.ciaddr, s.serverID, s.clientID)
}

func newFakeDHCP() *fakeDHCP {
	return &fakeDHCP{
		server: netip.MustParseAddr("198.18.0.254"), lease: netip.MustParsePrefix("198.18.0.150/24"),
		leaseTime: time.Hour, answerUnicast: true, answerBroadcast: true,
	}
}

func (s *fakeDHCP) set(fn func(s *fakeDHCP)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

func (s *fakeDHCP) received() []seenDHCP {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenDHCP(nil), s.seen...)
}

// handle records req and returns the reply, or nil.
func (s *fakeDHCP) handle(req *dhcpv4.DHCPv4, local netip.Addr, dst net.Addr) *dhcpv4.DHCPv4 {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := seenDHCP{typ: req.MessageType(), local: local, dst: dst.String(), xid: req.TransactionID,
		ciaddr: req.ClientIPAddr.String(), clientID: string(req.Options.Get(dhcpv4.OptionClientIdentifier))}
	if id := req.Options.Get(dhcpv4.OptionServerIdentifier); id != nil {
		seen.serverID = net.IP(id).String()
	}
	s.seen = append(s.seen, seen)
	broadcast := dst.String() == "255.255.255.255:67"
	if (!broadcast && !s.answerUnicast) || (broadcast && !s.answerBroadcast) {
		return nil
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithYourIP(s.lease.Addr().AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.server.AsSlice())),
	}
	if !s.noMask {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(s.lease.Bits(), 32))))
	}
	if s.leaseTime > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(s.leaseTime)))
	}
	if s.t1 > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(s.t1)))
	}
	if s.t2 > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(s.t2)))
	}
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		mods = append(mods, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer))
	case dhcpv4.MessageTypeRequest:
		if s.nak {
			mods = []dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.server.AsSlice())),
				dhcpv4.WithOption(dhcpv4.OptMessage("address in use"))}
		} else {
			mods = append(mods, dhcpv4.WithMessageType(dhcpv4.MessageTypeAck))
		}
	default:
		return nil
	}
	reply, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		panic(err)
	}
	return reply
}

// fakeDHCPConn is a client socket on the fake link.
type fakeDHCPConn struct {
	srv    *fakeDHCP
	local  netip.Addr
	in     chan []byte
	once   sync.Once
	closed chan struct{}
}

func (n *fakeNet) dhcpConn(l netLink, local netip.Addr) (net.PacketConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dhcp == nil {
		return nil, errors.New("no DHCP on this fake link")
	}
	n.event("dhcp socket %s %v", l.name, local)
	return &fakeDHCPConn{srv: n.dhcp, local: local, in: make(chan []byte, 16), closed: make(chan struct{})}, nil
}

func (c *fakeDHCPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	req, err := dhcpv4.FromBytes(b)
	if err != nil {
		return 0, err
	}
	if reply := c.srv.handle(req, c.local, addr); reply != nil {
		select {
		case c.in <- reply.ToBytes():
		default:
		}
	}
	return len(b), nil
}

func (c *fakeDHCPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case m := <-c.in:
		return copy(b, m), &net.UDPAddr{IP: c.srv.server.AsSlice(), Port: 67}, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *fakeDHCPConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeDHCPConn) LocalAddr() net.Addr                { return &net.UDPAddr{IP: c.local.AsSlice(), Port: 68} }
func (c *fakeDHCPConn) SetDeadline(t time.Time) error      { return nil }
func (c *fakeDHCPConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *fakeDHCPConn) SetWriteDeadline(t time.Time) error { return nil }

// fakeClock is a clock that moves only when the test says.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	c  chan time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.t
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.t.Add(d), c: ch})
	return ch
}

// advance moves the clock by d and wakes the waiters that are due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.t) {
			keep = append(keep, w)
			continue
		}
		w.c <- c.t
	}
	c.waiters = keep
}

// advanceTo moves the clock to t.
func (c *fakeClock) advanceTo(t time.Time) { c.advance(t.Sub(c.now())) }

// waitingUntil returns when the earliest waiter is due, or the zero time.
func (c *fakeClock) waitingUntil() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first time.Time
	for _, w := range c.waiters {
		if first.IsZero() || w.at.Before(first) {
			first = w.at
		}
	}
	return first
}

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// dhcpIP is a DHCP floating address on eth0 of twoLANs, its server, and
// a clock that starts at epoch.
func dhcpIP(t *testing.T) (*FloatIP, *fakeNet, *fakeDHCP, *fakeClock) {
	t.Helper()
	n := twoLANs()
	n.dhcp = newFakeDHCP()
	f := testIP(n, FloatIPParams{DHCP: true, ClientID: "filer-vip", Interface: "eth0", ARPRounds: -1})
	clk := &fakeClock{t: epoch}
	f.clock = clk
	f.dhcp = dhcpTiming{wait: 5 * time.Millisecond, tries: 2, minRetry: time.Minute}
	t.Cleanup(func() { f.Stop(context.Background()) })
	return f, n, n.dhcp, clk
}

// keeperWaits waits until the lease keeper sleeps until at.
func keeperWaits(t *testing.T, clk *fakeClock, at time.Time) {
	t.Helper()
	waitFor(t, "the lease keeper to wait until "+at.Format(time.TimeOnly), 5*time.Second, func() bool {
		return clk.waitingUntil().Equal(at)
	})
}

const wantClientID = "\x00filer-vip"

func TestFloatIPDHCPObtain(t *testing.T) {
	f, n, srv, clk := dhcpIP(t)
	ctx := context.Background()
	if err := f.Monitor(ctx); !errors.Is(err, ErrStopped) {
		t.Fatalf("monitor before start: %v, want ErrStopped", err)
	}
	if p := f.Prefix(); p.IsValid() {
		t.Errorf("prefix before start: %v, want none", p)
	}
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := n.took(), "dhcp socket eth0 invalid IP; replace eth0 198.18.0.150/24 flags=0x0 lifetime=1h0m0s"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	seen := srv.received()
	if len(seen) != 2 {
		t.Fatalf("server received %v, want a DISCOVER and a REQUEST", seen)
	}
	for i, typ := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest} {
		s := seen[i]
		if s.typ != typ || s.local.IsValid() || s.dst != "255.255.255.255:67" || s.clientID != wantClientID {
			t.Errorf("message %d: %v, want a broadcast %s with client id %q", i, s, typ, wantClientID)
		}
	}
	if seen[1].serverID != "198.18.0.254" {
		t.Errorf("REQUEST names server %q, want the one that offered, 198.18.0.254", seen[1].serverID)
	}
	lease, ok := f.Lease()
	want := DHCPLease{Prefix: netip.MustParsePrefix("198.18.0.150/24"), Server: srv.server, Obtained: epoch,
		Renew: epoch.Add(30 * time.Minute), Rebind: epoch.Add(52*time.Minute + 30*time.Second), Expiry: epoch.Add(time.Hour)}
	if !ok || lease != want {
		t.Errorf("lease %+v (%v), want %+v", lease, ok, want)
	}
	if got := f.Prefix(); got != want.Prefix {
		t.Errorf("prefix %v, want %v", got, want.Prefix)
	}
	keeperWaits(t, clk, want.Renew)
	if err := f.Monitor(ctx); err != nil {
		t.Errorf("monitor: %v", err)
	}
	// A second start keeps the lease: no new DHCP exchange.
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.received()); got != 2 {
		t.Errorf("second start sent %d more messages, want none", got-2)
	}
	// The leased address gone while the lease is held is a failure, not
	// a clean stop.
	if err := n.addrDel(2, want.Prefix); err != nil {
		t.Fatal(err)
	}
	err := f.Monitor(ctx)
	if err == nil || errors.Is(err, ErrStopped) || err.Error() != `resources: floatip "vip": leased address 198.18.0.150 is on no interface` {
		t.Errorf("monitor without the address: %v", err)
	}
}

func TestFloatIPDHCPRenewAtT1(t *testing.T) {
	f, n, srv, clk := dhcpIP(t)
	srv.set(func(s *fakeDHCP) { s.t1, s.t2 = 20*time.Minute, 40*time.Minute })
	ctx := context.Background()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	n.took()
	t1 := epoch.Add(20 * time.Minute)
	keeperWaits(t, clk, t1)
	clk.advanceTo(t1)
	// Renewed at T1: the next renewal is 20 minutes later.
	keeperWaits(t, clk, t1.Add(20*time.Minute))
	seen := srv.received()
	if len(seen) != 3 {
		t.Fatalf("server received %v, want DISCOVER, REQUEST, and one renewal", seen)
	}
	r := seen[2]
	if r.typ != dhcpv4.MessageTypeRequest || r.local != srv.lease.Addr() || r.dst != "198.18.0.254:67" ||
		r.ciaddr != "198.18.0.150" || r.serverID != "" || r.clientID != wantClientID || r.xid == seen[1].xid {
		t.Errorf("renewal %v (xid %v, first %v): want a REQUEST unicast from 198.18.0.150 to the server with ciaddr, client id, no server id and a new xid", r, r.xid, seen[1].xid)
	}
	lease, _ := f.Lease()
	if !lease.Obtained.Equal(t1) || !lease.Expiry.Equal(t1.Add(time.Hour)) {
		t.Errorf("renewed lease %+v, want obtained at T1 and ending an hour later", lease)
	}
	if got, want := n.took(), "dhcp socket eth0 198.18.0.150; replace eth0 198.18.0.150/24 flags=0x0 lifetime=1h0m0s"; got != want {
		t.Errorf("events %q, want %q (the address's lifetime follows the lease)", got, want)
	}
	if err := f.Monitor(ctx); err != nil {
		t.Errorf("monitor: %v", err)
	}
}

func TestFloatIPDHCPRebindAtT2(t *testing.T) {
	f, _, srv, clk := dhcpIP(t)
	srv.set(func(s *fakeDHCP) { s.answerUnicast = false })
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// T1 at 30m; unanswered renewals again after half the time left to T2
	// (52m30s), at least a minute apart, the last at T2.
	at := func(m, s int, ms time.Duration) time.Time {
		return epoch.Add(time.Duration(m)*time.Minute + time.Duration(s)*time.Second + ms*time.Millisecond)
	}
	wants := []time.Time{at(30, 0, 0), at(41, 15, 0), at(46, 52, 500), at(49, 41, 250), at(51, 5, 625), at(52, 5, 625), at(52, 30, 0)}
	for i, want := range wants {
		keeperWaits(t, clk, want)
		clk.advanceTo(want)
		if i < len(wants)-1 {
			keeperWaits(t, clk, wants[i+1])
		}
	}
	// At T2 the keeper broadcasts, and the server answers that.
	t2 := wants[len(wants)-1]
	waitFor(t, "a renewed lease", 5*time.Second, func() bool {
		l, ok := f.Lease()
		return ok && l.Obtained.Equal(t2)
	})
	var unicast, broadcast int
	for _, s := range srv.received()[2:] {
		switch {
		case s.typ == dhcpv4.MessageTypeRequest && s.local == srv.lease.Addr() && s.dst == "198.18.0.254:67":
			unicast++
		case s.typ == dhcpv4.MessageTypeRequest && s.local == srv.lease.Addr() && s.dst == "255.255.255.255:67" && s.ciaddr == "198.18.0.150" && s.serverID == "" && s.clientID == wantClientID:
			broadcast++
		default:
			t.Errorf("unexpected %v", s)
		}
	}
	// Six renewal attempts of two transmissions each, then one rebinding
	// request that is answered.
	if unicast != 12 || broadcast != 1 {
		t.Errorf("%d unicast and %d broadcast requests, want 12 and 1", unicast, broadcast)
	}
}

func TestFloatIPDHCPNAKLosesLease(t *testing.T) {
	f, n, srv, clk := dhcpIP(t)
	ctx := context.Background()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	n.took()
	srv.set(func(s *fakeDHCP) { s.nak = true })
	t1 := epoch.Add(30 * time.Minute)
	keeperWaits(t, clk, t1)
	clk.advanceTo(t1)
	waitFor(t, "the lease to be lost", 5*time.Second, func() bool {
		_, ok := f.Lease()
		return !ok
	})
	err := f.Monitor(ctx)
	want := `resources: floatip "vip": DHCP lease of 198.18.0.150/24 on eth0 lost: renew 198.18.0.150/24 with server 198.18.0.254: server 198.18.0.254 refused it (NAK: address in use)`
	if err == nil || err.Error() != want || errors.Is(err, ErrStopped) {
		t.Errorf("monitor: %v, want %q, a failure", err, want)
	}
	if got := n.took(); !strings.HasSuffix(got, "del eth0 198.18.0.150/24") {
		t.Errorf("events %q, want the address removed", got)
	}
	// Start again obtains a new lease.
	srv.set(func(s *fakeDHCP) { s.nak = false })
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Monitor(ctx); err != nil {
		t.Errorf("monitor after a new start: %v", err)
	}
}

func TestFloatIPDHCPExpiry(t *testing.T) {
	f, n, srv, clk := dhcpIP(t)
	ctx := context.Background()
	srv.set(func(s *fakeDHCP) { s.leaseTime = 2 * time.Minute })
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv.set(func(s *fakeDHCP) { s.answerUnicast, s.answerBroadcast = false, false })
	expiry := epoch.Add(2 * time.Minute)
	for i := 0; i < 20; i++ {
		_, ok := f.Lease()
		if !ok {
			break
		}
		var at time.Time
		waitFor(t, "the keeper to wait", 5*time.Second, func() bool {
			at = clk.waitingUntil()
			return !at.IsZero()
		})
		if at.After(expiry) {
			t.Fatalf("the keeper waits until %v, past the lease's end %v", at, expiry)
		}
		clk.advanceTo(at)
		waitFor(t, "the keeper to move on", 5*time.Second, func() bool {
			_, ok := f.Lease()
			return !ok || clk.waitingUntil().After(at)
		})
	}
	err := f.Monitor(ctx)
	want := `resources: floatip "vip": DHCP lease of 198.18.0.150/24 from server 198.18.0.254 on eth0 expired at 2030-01-01T00:02:00Z without renewal`
	if err == nil || err.Error() != want {
		t.Errorf("monitor: %v, want %q", err, want)
	}
	if got := n.took(); !strings.HasSuffix(got, "del eth0 198.18.0.150/24") {
		t.Errorf("events %q, want the address removed at expiry", got)
	}
	if err := f.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Monitor(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("monitor after stop: %v, want ErrStopped", err)
	}
}

func TestFloatIPDHCPStop(t *testing.T) {
	f, n, srv, clk := dhcpIP(t)
	ctx := context.Background()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	keeperWaits(t, clk, epoch.Add(30*time.Minute))
	n.took()
	keeper := f.keeper
	if err := f.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if keeper.running() {
		t.Error("the lease keeper runs after stop")
	}
	if got, want := n.took(), "del eth0 198.18.0.150/24"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	// No DHCPRELEASE: the server keeps the address for the client id.
	for _, s := range srv.received() {
		if s.typ == dhcpv4.MessageTypeRelease {
			t.Errorf("stop sent %v", s)
		}
	}
	if _, ok := f.Lease(); ok {
		t.Error("a lease after stop")
	}
	if err := f.Monitor(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("monitor after stop: %v, want ErrStopped", err)
	}
	// The keeper is gone: time passing sends nothing.
	before := len(srv.received())
	clk.advance(2 * time.Hour)
	if got := len(srv.received()); got != before {
		t.Errorf("%d messages after stop", got-before)
	}
	if err := f.Stop(ctx); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

func TestFloatIPDHCPNoServer(t *testing.T) {
	f, n, srv, _ := dhcpIP(t)
	srv.set(func(s *fakeDHCP) { s.answerBroadcast = false })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := f.Start(ctx)
	want := `resources: floatip "vip": DHCP client id "filer-vip" on eth0: no offer from any server: no answer`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("start: %v, want %q", err, want)
	}
	if got := n.took(); strings.Contains(got, "replace") {
		t.Errorf("events %q: an address without a lease", got)
	}
	// The default bound applies when the context has none.
	f.p.DHCPTimeout = 50 * time.Millisecond
	if err := f.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Errorf("start without a deadline: %v, want the DHCP timeout", err)
	}
}

func TestFloatIPDHCPNAKOnStart(t *testing.T) {
	f, _, srv, _ := dhcpIP(t)
	srv.set(func(s *fakeDHCP) { s.nak = true })
	err := f.Start(context.Background())
	want := `resources: floatip "vip": DHCP client id "filer-vip" on eth0: request for 198.18.0.150 to server 198.18.0.254: refused (NAK: address in use)`
	if err == nil || err.Error() != want {
		t.Errorf("start: %v, want %q", err, want)
	}
}

func TestFloatIPDHCPLeaseTimes(t *testing.T) {
	l := netLink{name: "eth0", addrs: []netAddr{pfx("198.18.0.1/23")}}
	for _, tc := range []struct {
		name string
		mod  func(s *fakeDHCP)
		want DHCPLease
		err  string
	}{
		{"defaults", nil, DHCPLease{Prefix: netip.MustParsePrefix("198.18.0.150/24"), Renew: epoch.Add(30 * time.Minute), Rebind: epoch.Add(52*time.Minute + 30*time.Second), Expiry: epoch.Add(time.Hour)}, ""},
		{"given", func(s *fakeDHCP) { s.t1, s.t2 = time.Minute, 2*time.Minute }, DHCPLease{Prefix: netip.MustParsePrefix("198.18.0.150/24"), Renew: epoch.Add(time.Minute), Rebind: epoch.Add(2 * time.Minute), Expiry: epoch.Add(time.Hour)}, ""},
		{"T1 after T2", func(s *fakeDHCP) { s.t1, s.t2 = 50*time.Minute, 40*time.Minute }, DHCPLease{Prefix: netip.MustParsePrefix("198.18.0.150/24"), Renew: epoch.Add(30 * time.Minute), Rebind: epoch.Add(40 * time.Minute), Expiry: epoch.Add(time.Hour)}, ""},
		{"T2 past the end", func(s *fakeDHCP) { s.t2 = 2 * time.Hour }, DHCPLease{Prefix: netip.MustParsePrefix("198.18.0.150/24"), Renew: epoch.Add(30 * time.Minute), Rebind: epoch.Add(52*time.Minute + 30*time.Second), Expiry: epoch.Add(time.Hour)}, ""},
		{"infinite", func(s *fakeDHCP) { s.leaseTime = 0xffffffff * time.Second }, DHCPLease{Prefix: netip.MustParsePrefix("198.18.0.150/24")}, ""},
		{"no mask: the interface's subnet", func(s *fakeDHCP) { s.noMask = true }, DHCPLease{Prefix: netip.MustParsePrefix("198.18.0.150/23"), Renew: epoch.Add(30 * time.Minute), Rebind: epoch.Add(52*time.Minute + 30*time.Second), Expiry: epoch.Add(time.Hour)}, ""},
		{"no mask, no subnet", func(s *fakeDHCP) { s.noMask, s.lease = true, netip.MustParsePrefix("198.18.5.5/24") }, DHCPLease{}, "server 198.18.0.254 leased 198.18.5.5 without a subnet mask, and eth0 has no address in its subnet"},
		{"no lease time", func(s *fakeDHCP) { s.leaseTime = 0 }, DHCPLease{}, "server 198.18.0.254 leased 198.18.0.150 without a lease time"},
	} {
		srv := newFakeDHCP()
		if tc.mod != nil {
			tc.mod(srv)
		}
		req, _ := dhcpv4.NewDiscovery(hw)
		req.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
		ack := srv.handle(req, netip.Addr{}, &net.UDPAddr{})
		f := testIP(twoLANs(), FloatIPParams{DHCP: true, ClientID: "x", Interface: "eth0"})
		got, err := f.leaseFrom(l, ack, epoch)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		tc.want.Server, tc.want.Obtained = srv.server, epoch
		if err != nil || got.DHCPLease != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got.DHCPLease, err, tc.want)
		}
	}
}

func TestRetryAt(t *testing.T) {
	for _, tc := range []struct {
		left, want time.Duration
	}{
		{time.Hour, 30 * time.Minute},
		{3 * time.Minute, 90 * time.Second},
		{time.Minute + time.Second, time.Minute},
		{30 * time.Second, 30 * time.Second},
		{0, 0},
	} {
		if got := retryAt(epoch, epoch.Add(tc.left), time.Minute).Sub(epoch); got != tc.want {
			t.Errorf("%v left: retry after %v, want %v", tc.left, got, tc.want)
		}
	}
}

func TestFloatIPParamErrors(t *testing.T) {
	long := strings.Repeat("x", 255)
	for _, tc := range []struct {
		name string
		p    FloatIPParams
		want string
	}{
		{"dhcp without client id", FloatIPParams{DHCP: true, Interface: "eth0"}, "DHCP needs a client id, the same on both nodes"},
		{"dhcp with address", FloatIPParams{DHCP: true, ClientID: "c", Interface: "eth0", Address: "198.18.0.50/24"}, `address "198.18.0.50/24": not used with DHCP: the address comes from the lease`},
		{"dhcp without interface", FloatIPParams{DHCP: true, ClientID: "c"}, `DHCP client id "c": give the interface to ask on`},
		{"client id too long", FloatIPParams{DHCP: true, ClientID: long, Interface: "eth0"}, "255 bytes, at most 254 fit in DHCP option 61"},
		{"client id without dhcp", FloatIPParams{Address: "198.18.0.50/24", ClientID: "c"}, `client id "c" is only used with DHCP`},
		{"dhcp interface missing", FloatIPParams{DHCP: true, ClientID: "c", Interface: "eth9"}, `interface eth9 for DHCP client id "c" not found`},
	} {
		f := testIP(twoLANs(), tc.p)
		for op, fn := range map[string]func(context.Context) error{"validate": f.Validate, "start": f.Start, "stop": f.Stop, "monitor": f.Monitor} {
			err := fn(context.Background())
			if tc.name == "dhcp interface missing" && op != "validate" && op != "start" {
				continue
			}
			if err == nil || !strings.HasPrefix(err.Error(), `resources: floatip "vip": `) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %s: %v, want %q", tc.name, op, err, tc.want)
			}
		}
	}
}
