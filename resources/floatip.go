package resources

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// FloatIPParams are the parameters of a floating IP resource.
type FloatIPParams struct {
	// Name is the resource's name.
	Name string
	// Address is the address with its prefix length: "198.18.0.50/24",
	// "2001:db8::50/64". The prefix also finds the interface when Interface
	// is empty. A bare address is taken as a host address (/32, /128) and
	// then needs Interface. Empty when DHCP is set.
	Address string
	// Interface is the interface to put the address on. Empty: the one
	// interface that has an address inside Address's prefix. Required when
	// DHCP is set.
	Interface string
	// DHCP takes the address from a DHCPv4 server on Interface instead of
	// from Address: Start obtains a lease (DISCOVER, OFFER, REQUEST, ACK)
	// sending ClientID, adds the leased address with the lease's prefix
	// length, and keeps the lease renewed until Stop.
	DHCP bool
	// ClientID is the DHCP client identifier (option 61) that both nodes
	// send, so that the server leases either of them the same address. It
	// is sent as type 0 followed by the bytes of the string, at most 254
	// bytes. Required when DHCP is set, and only used then.
	ClientID string
	// DHCPTimeout bounds obtaining a lease when Start's context has no
	// deadline. Zero means DefaultDHCPTimeout.
	DHCPTimeout time.Duration
	// ARPRounds is how many rounds of announcements follow adding the
	// address: for IPv4 gratuitous ARP (each round a request and a reply),
	// for IPv6 an unsolicited neighbour advertisement. The first round is
	// sent before Start returns, the rest in the background, ARPInterval
	// apart. Zero means DefaultARPRounds; negative sends none.
	ARPRounds int
	// ARPInterval is the time between rounds. Zero means DefaultARPInterval.
	ARPInterval time.Duration
	// NetNS is the path of a network namespace to act in
	// (/run/netns/NAME); empty is the namespace of the process.
	NetNS string
	// Log receives the failures of background rounds, which no caller
	// waits for. Nil is slog.Default().
	Log *slog.Logger
}

// Defaults of a floating IP resource. Rounds spread over seconds reach
// switches and clients that ignore a first burst (a port still coming up,
// a neighbour entry in its locktime).
// DefaultDHCPTimeout leaves a server that checks the address with a ping
// before offering it (as dnsmasq and ISC dhcpd do) time to answer.
const (
	DefaultARPRounds   = 3
	DefaultARPInterval = time.Second
	DefaultDHCPTimeout = 20 * time.Second
)

// FloatIP is an IP address that moves between nodes. See the package
// documentation for what each operation does.
type FloatIP struct {
	p        FloatIPParams
	prefix   netip.Prefix // the static address; invalid with DHCP
	clientID []byte       // option 61 as sent, with DHCP
	parseErr error
	sys      netSys
	clock    clock
	dhcp     dhcpTiming

	mu     sync.Mutex // serialises Start and Stop; guards rounds and keeper
	rounds *task      // the latest background announcements, or nil
	keeper *task      // the DHCP lease keeper, or nil

	lmu   sync.Mutex // guards lease and lost
	lease *dhcpLease // the lease held, or nil
	lost  error      // why the lease was lost, until Stop or Start
}

// netSys is the floating IP's access to the network stack.
type netSys interface {
	links() ([]netLink, error)
	// addrReplace adds p or updates it; a lifetime above zero makes the
	// kernel drop the address after it, zero keeps it forever.
	addrReplace(index int, p netip.Prefix, flags int, lifetime time.Duration) error
	addrDel(index int, p netip.Prefix) error
	// announcer returns what tells the neighbours that addr is now at l,
	// or nil when nothing needs telling (no link-layer address, or a
	// family whose announcement this package does not send).
	announcer(l netLink, addr netip.Addr) (announcer, error)
	// dhcpConn opens a DHCP client's connection on l: with local invalid,
	// one that broadcasts on the link from port 68 and needs no address;
	// with local valid, a UDP socket on local:68 for unicast to a server.
	dhcpConn(l netLink, local netip.Addr) (net.PacketConn, error)
}

// netLink is an interface with its addresses.
type netLink struct {
	index    int
	name     string
	up       bool   // administratively up
	oper     string // operational state: "up", "down", "unknown", …
	hwAddr   net.HardwareAddr
	loopback bool
	addrs    []netAddr
}

type netAddr struct {
	prefix netip.Prefix
	flags  int // IFA_F_*
}

// announcer sends one round of announcements of an address.
type announcer interface {
	announce() error
	close() error
}

// task is a goroutine owned by the resource: background announcement
// rounds, or the DHCP lease keeper. Stop cancels it and waits for it.
type task struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startTask runs fn in a goroutine that ends when its context is
// cancelled.
func startTask(fn func(ctx context.Context)) *task {
	ctx, cancel := context.WithCancel(context.Background())
	t := &task{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		fn(ctx)
	}()
	return t
}

// running reports whether t is still at work; nil is not.
func (t *task) running() bool {
	if t == nil {
		return false
	}
	select {
	case <-t.done:
		return false
	default:
		return true
	}
}

// stop cancels t and waits for it to end, within ctx.
func (t *task) stop(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.cancel()
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NewFloatIP returns the floating IP resource of p. Parameter errors are
// reported by Validate and by every operation.
func NewFloatIP(p FloatIPParams) *FloatIP {
	return newFloatIP(p, realNet{nsPath: p.NetNS})
}

func newFloatIP(p FloatIPParams, sys netSys) *FloatIP {
	if p.ARPRounds == 0 {
		p.ARPRounds = DefaultARPRounds
	}
	if p.ARPInterval <= 0 {
		p.ARPInterval = DefaultARPInterval
	}
	if p.DHCPTimeout <= 0 {
		p.DHCPTimeout = DefaultDHCPTimeout
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	f := &FloatIP{p: p, sys: sys, clock: realClock{}, dhcp: defaultDHCPTiming}
	if p.DHCP {
		f.clientID, f.parseErr = parseDHCPParams(p)
	} else {
		f.parseErr = checkStaticParams(p)
		if f.parseErr == nil {
			f.prefix, f.parseErr = parseFloatAddress(p.Address, p.Interface)
		}
	}
	return f
}

// checkStaticParams refuses the DHCP parameters without DHCP.
func checkStaticParams(p FloatIPParams) error {
	if p.ClientID != "" {
		return fmt.Errorf("client id %q is only used with DHCP", p.ClientID)
	}
	return nil
}

// parseFloatAddress parses the Address parameter.
func parseFloatAddress(s, ifname string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("no address")
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return netip.Prefix{}, fmt.Errorf("address %q: want an address with its prefix length, as 198.18.0.50/24", s)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("address %q: a zone is not allowed", s)
		}
		if ifname == "" {
			return netip.Prefix{}, fmt.Errorf("address %q has no prefix length, so the interface cannot be found from its subnet: give one, or the interface", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	a := p.Addr()
	switch {
	case a.Zone() != "":
		return netip.Prefix{}, fmt.Errorf("address %q: a zone is not allowed", s)
	case a.Is4In6():
		return netip.Prefix{}, fmt.Errorf("address %q: give an IPv4 address as such", s)
	case !a.IsGlobalUnicast() && !a.IsPrivate():
		return netip.Prefix{}, fmt.Errorf("address %q is not a unicast address", s)
	}
	if a.Is4() && p.Bits() < 31 {
		if m := p.Masked().Addr(); a == m {
			return netip.Prefix{}, fmt.Errorf("address %q is the network address of its subnet", s)
		}
	}
	return p, nil
}

// Name returns the resource's name.
func (f *FloatIP) Name() string { return f.p.Name }

// Params returns the resource's parameters, defaults filled in.
func (f *FloatIP) Params() FloatIPParams { return f.p }

// Prefix returns the address with its prefix length: the parsed Address,
// or with DHCP the address of the lease held. It is invalid when Address
// does not parse, or with DHCP while no lease is held.
func (f *FloatIP) Prefix() netip.Prefix {
	if !f.p.DHCP {
		return f.prefix
	}
	f.lmu.Lock()
	defer f.lmu.Unlock()
	if f.lease == nil {
		return netip.Prefix{}
	}
	return f.lease.Prefix
}

func (f *FloatIP) errorf(format string, args ...any) error {
	return &Error{Kind: "floatip", Name: f.p.Name, Err: fmt.Errorf(format, args...)}
}

func (f *FloatIP) paramErr() error {
	if f.parseErr != nil {
		return f.errorf("%w", f.parseErr)
	}
	return nil
}

// subject names the address in messages: the address itself, or the DHCP
// client id that obtains it.
func (f *FloatIP) subject() string {
	if f.p.DHCP {
		return fmt.Sprintf("DHCP client id %q", f.p.ClientID)
	}
	return f.prefix.String()
}

func (f *FloatIP) listLinks() ([]netLink, error) {
	ls, err := f.sys.links()
	if err != nil {
		return nil, f.errorf("list interfaces: %w", err)
	}
	return ls, nil
}

// pickLink returns the interface for the address: the one named, else the
// one that already holds the address, else the one interface with an
// address inside the prefix.
func (f *FloatIP) pickLink(links []netLink) (netLink, error) {
	ip := f.prefix.Addr()
	if f.p.Interface != "" {
		for _, l := range links {
			if l.name == f.p.Interface {
				return l, nil
			}
		}
		return netLink{}, f.errorf("interface %s for %s not found", f.p.Interface, f.subject())
	}
	var holding, inSubnet []netLink
	subnet := f.prefix.Masked()
	for _, l := range links {
		has, in := false, false
		for _, a := range l.addrs {
			if a.prefix.Addr() == ip {
				has = true
			} else if subnet.Contains(a.prefix.Addr()) {
				in = true
			}
		}
		if has {
			holding = append(holding, l)
		}
		if in {
			inSubnet = append(inSubnet, l)
		}
	}
	if len(holding) == 1 {
		return holding[0], nil
	}
	switch len(inSubnet) {
	case 1:
		return inSubnet[0], nil
	case 0:
		return netLink{}, f.errorf("no interface has an address in %s, the subnet of %s: give the interface", subnet, f.prefix)
	default:
		names := make([]string, len(inSubnet))
		for i, l := range inSubnet {
			names[i] = l.name
		}
		return netLink{}, f.errorf("interfaces %s all have addresses in %s, the subnet of %s: give the interface", strings.Join(names, ", "), subnet, f.prefix)
	}
}

// Validate checks that the address parses (or, with DHCP, that the client
// id and interface are given) and that its interface exists or is found
// from the subnet.
func (f *FloatIP) Validate(ctx context.Context) error {
	if err := f.paramErr(); err != nil {
		return err
	}
	links, err := f.listLinks()
	if err != nil {
		return err
	}
	_, err = f.pickLink(links)
	return err
}

// Start adds the address to its interface (IPv6 without duplicate address
// detection, so it is usable at once) and announces it: gratuitous ARP for
// IPv4, an unsolicited neighbour advertisement for IPv6. The first round
// is sent before Start returns, the others in the background. With DHCP,
// Start first obtains a lease within its context's deadline (or
// DHCPTimeout), adds the leased address with the lease's prefix length and
// a lifetime that ends with the lease, and keeps the lease renewed in the
// background.
//
// Start on a started resource changes nothing, except that it announces the
// address again when no rounds are running. When the first round cannot be
// sent, Start fails, since clients whose neighbour caches still point at
// the old node would not reach this one; the address stays until Stop
// removes it (a group's rollback does).
func (f *FloatIP) Start(ctx context.Context) error {
	if err := f.paramErr(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	links, err := f.listLinks()
	if err != nil {
		return err
	}
	l, err := f.pickLink(links)
	if err != nil {
		return err
	}
	if !l.up {
		return f.errorf("interface %s for %s is down", l.name, f.subject())
	}
	p, lifetime := f.prefix, time.Duration(0)
	var lease *dhcpLease
	if f.p.DHCP {
		if lease, err = f.holdLease(ctx, l); err != nil {
			return err
		}
		p, lifetime = lease.Prefix, lease.lifetime(f.clock.now())
	}
	flags := 0
	if p.Addr().Is6() {
		flags = unix.IFA_F_NODAD
	}
	if err := f.sys.addrReplace(l.index, p, flags, lifetime); err != nil {
		return f.errorf("add %s to %s: %w", p, l.name, err)
	}
	if lease != nil && !f.keeper.running() {
		f.keeper = startTask(func(ctx context.Context) { f.keepLease(ctx, l, lease) })
	}
	return f.announce(ctx, l, p.Addr())
}

// announce sends the first round of announcements of ip on l and starts
// the others in the background, unless rounds still run. f.mu is held.
func (f *FloatIP) announce(ctx context.Context, l netLink, ip netip.Addr) error {
	if f.rounds.running() || f.p.ARPRounds < 0 {
		return nil
	}
	f.rounds = nil
	if err := ctx.Err(); err != nil {
		return f.errorf("announce %s on %s: %w", ip, l.name, err)
	}
	an, err := f.sys.announcer(l, ip)
	if err != nil {
		return f.errorf("announce %s on %s: %w", ip, l.name, err)
	}
	if an == nil {
		return nil
	}
	if err := an.announce(); err != nil {
		an.close()
		return f.errorf("announce %s on %s: %w", ip, l.name, err)
	}
	if f.p.ARPRounds <= 1 {
		an.close()
		return nil
	}
	f.rounds = startTask(func(ctx context.Context) { f.announceRounds(ctx, an, ip, l.name) })
	return nil
}

// announceRounds sends rounds 2..ARPRounds, then closes the announcer.
func (f *FloatIP) announceRounds(ctx context.Context, an announcer, ip netip.Addr, ifname string) {
	defer an.close()
	t := time.NewTicker(f.p.ARPInterval)
	defer t.Stop()
	for i := 2; i <= f.p.ARPRounds; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := an.announce(); err != nil {
			f.p.Log.Warn("address announcement failed", "resource", f.p.Name, "address", ip.String(),
				"interface", ifname, "round", i, "err", err)
		}
	}
}

// stopTasks ends the lease keeper and the announcements and waits for
// them, so that nothing renews or announces the address once Stop removes
// it. f.mu is held.
func (f *FloatIP) stopTasks(ctx context.Context) error {
	if err := f.keeper.stop(ctx); err != nil {
		return f.errorf("DHCP lease keeper of %s did not stop: %w", f.subject(), err)
	}
	f.keeper = nil
	if err := f.rounds.stop(ctx); err != nil {
		return f.errorf("announcements of %s did not stop: %w", f.subject(), err)
	}
	f.rounds = nil
	return nil
}

// Stop ends the announcements (and with DHCP the renewals), then removes
// the address from every interface that has it. An address already gone is
// no error. With DHCP, Stop forgets the lease without sending DHCPRELEASE:
// the server keeps the address bound to the client id, so the peer that
// takes over, asking with the same client id, gets the same address, and
// no other client can be given it in between. A DHCP resource that holds
// no lease has nothing to remove.
func (f *FloatIP) Stop(ctx context.Context) error {
	if err := f.paramErr(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stopTasks(ctx); err != nil {
		return err
	}
	ip := f.Prefix().Addr()
	if !ip.IsValid() {
		f.forgetLease()
		return nil
	}
	if err := f.removeAddr(ip); err != nil {
		return err
	}
	f.forgetLease()
	return nil
}

// removeAddr removes ip from every interface that has it and checks that
// it is gone.
func (f *FloatIP) removeAddr(ip netip.Addr) error {
	links, err := f.listLinks()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		for _, a := range l.addrs {
			if a.prefix.Addr() != ip {
				continue
			}
			if err := f.sys.addrDel(l.index, a.prefix); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				errs = append(errs, f.errorf("remove %s from %s: %w", a.prefix, l.name, err))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	links, err = f.listLinks()
	if err != nil {
		return err
	}
	if on := linksWith(links, ip); len(on) > 0 {
		return f.errorf("remove %s: still on %s", ip, on[0].name)
	}
	return nil
}

// linksWith returns the interfaces that have ip.
func linksWith(links []netLink, ip netip.Addr) []netLink {
	var out []netLink
	for _, l := range links {
		for _, a := range l.addrs {
			if a.prefix.Addr() == ip {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// Monitor checks that the address is on its interface with its prefix
// length, usable (not failed duplicate address detection), and that the
// interface is up with a carrier. It returns an error wrapping ErrStopped
// when the address is on no interface. With DHCP it returns ErrStopped
// while no lease is held, and a failure once the lease is lost (refused
// or expired without renewal) until Stop.
func (f *FloatIP) Monitor(ctx context.Context) error {
	if err := f.paramErr(); err != nil {
		return err
	}
	want := f.prefix
	if f.p.DHCP {
		f.lmu.Lock()
		lease, lost := f.lease, f.lost
		f.lmu.Unlock()
		switch {
		case lost != nil:
			return lost
		case lease == nil:
			return f.errorf("no DHCP lease for %s: %w", f.subject(), ErrStopped)
		}
		want = lease.Prefix
	}
	ip := want.Addr()
	links, err := f.listLinks()
	if err != nil {
		return err
	}
	on := linksWith(links, ip)
	switch {
	case len(on) == 0 && f.p.DHCP:
		return f.errorf("leased address %s is on no interface", ip)
	case len(on) == 0:
		return f.errorf("%s is on no interface: %w", ip, ErrStopped)
	case len(on) > 1:
		return f.errorf("%s is on both %s and %s", ip, on[0].name, on[1].name)
	}
	l := on[0]
	if f.p.Interface != "" && l.name != f.p.Interface {
		return f.errorf("%s is on %s, not on %s", ip, l.name, f.p.Interface)
	}
	for _, a := range l.addrs {
		if a.prefix.Addr() != ip {
			continue
		}
		if a.prefix.Bits() != want.Bits() {
			return f.errorf("%s is on %s as %s, not as %s", ip, l.name, a.prefix, want)
		}
		if a.flags&unix.IFA_F_DADFAILED != 0 {
			return f.errorf("%s on %s failed duplicate address detection: another host has it", ip, l.name)
		}
	}
	if !l.up {
		return f.errorf("interface %s of %s is down", l.name, ip)
	}
	if l.oper != "up" && l.oper != "unknown" {
		return f.errorf("interface %s of %s has no carrier (state %s)", l.name, ip, l.oper)
	}
	return nil
}
