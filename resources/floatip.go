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
	// then needs Interface.
	Address string
	// Interface is the interface to put the address on. Empty: the one
	// interface that has an address inside Address's prefix.
	Interface string
	// ARPRounds is how many rounds of gratuitous ARP follow adding an IPv4
	// address; each round is a request and a reply. The first round is sent
	// before Start returns, the rest in the background, ARPInterval apart.
	// Zero means DefaultARPRounds; negative sends none.
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
const (
	DefaultARPRounds   = 3
	DefaultARPInterval = time.Second
)

// FloatIP is an IP address that moves between nodes. See the package
// documentation for what each operation does.
type FloatIP struct {
	p        FloatIPParams
	prefix   netip.Prefix
	parseErr error
	sys      netSys

	mu     sync.Mutex // serialises Start and Stop; guards rounds
	rounds *rounds    // the latest background announcements, or nil
}

// netSys is the floating IP's access to the network stack.
type netSys interface {
	links() ([]netLink, error)
	addrReplace(index int, p netip.Prefix, flags int) error
	addrDel(index int, p netip.Prefix) error
	// announcer returns what tells the neighbours that addr is now at l,
	// or nil when nothing needs telling (no link-layer address, or a
	// family whose announcement this package does not send).
	announcer(l netLink, addr netip.Addr) (announcer, error)
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

// rounds are background announcement rounds, owned by the resource.
type rounds struct {
	cancel context.CancelFunc
	done   chan struct{}
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
	if p.Log == nil {
		p.Log = slog.Default()
	}
	f := &FloatIP{p: p, sys: sys}
	f.prefix, f.parseErr = parseFloatAddress(p.Address, p.Interface)
	return f
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

// Prefix returns the parsed address; it is invalid when Address does not
// parse.
func (f *FloatIP) Prefix() netip.Prefix { return f.prefix }

func (f *FloatIP) errorf(format string, args ...any) error {
	return &Error{Kind: "floatip", Name: f.p.Name, Err: fmt.Errorf(format, args...)}
}

func (f *FloatIP) paramErr() error {
	if f.parseErr != nil {
		return f.errorf("%w", f.parseErr)
	}
	return nil
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
		return netLink{}, f.errorf("interface %s for %s not found", f.p.Interface, f.prefix)
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

// Validate checks that the address parses and that its interface exists or
// is found from the subnet.
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
// detection, so it is usable at once) and, for IPv4, sends the first round
// of gratuitous ARP before returning and the others in the background.
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
		return f.errorf("interface %s for %s is down", l.name, f.prefix)
	}
	flags := 0
	if f.prefix.Addr().Is6() {
		flags = unix.IFA_F_NODAD
	}
	if err := f.sys.addrReplace(l.index, f.prefix, flags); err != nil {
		return f.errorf("add %s to %s: %w", f.prefix, l.name, err)
	}
	if f.rounds != nil {
		select {
		case <-f.rounds.done:
			f.rounds = nil
		default:
			return nil // still announcing
		}
	}
	if f.p.ARPRounds < 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return f.errorf("announce %s on %s: %w", f.prefix.Addr(), l.name, err)
	}
	an, err := f.sys.announcer(l, f.prefix.Addr())
	if err != nil {
		return f.errorf("announce %s on %s: %w", f.prefix.Addr(), l.name, err)
	}
	if an == nil {
		return nil
	}
	if err := an.announce(); err != nil {
		an.close()
		return f.errorf("announce %s on %s: %w", f.prefix.Addr(), l.name, err)
	}
	if f.p.ARPRounds <= 1 {
		an.close()
		return nil
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &rounds{cancel: cancel, done: make(chan struct{})}
	f.rounds = r
	go f.announceRounds(rctx, r, an, l.name)
	return nil
}

// announceRounds sends rounds 2..ARPRounds and closes r.done when it ends,
// after closing the announcer.
func (f *FloatIP) announceRounds(ctx context.Context, r *rounds, an announcer, ifname string) {
	defer close(r.done)
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
			f.p.Log.Warn("gratuitous ARP failed", "resource", f.p.Name, "address", f.prefix.Addr().String(),
				"interface", ifname, "round", i, "err", err)
		}
	}
}

// stopRounds cancels the background rounds and waits for them to end, so
// that nothing announces the address once Stop removes it. f.mu is held.
func (f *FloatIP) stopRounds(ctx context.Context) error {
	r := f.rounds
	if r == nil {
		return nil
	}
	r.cancel()
	select {
	case <-r.done:
		f.rounds = nil
		return nil
	case <-ctx.Done():
		return f.errorf("announcements of %s did not stop: %w", f.prefix.Addr(), ctx.Err())
	}
}

// Stop ends the announcements, then removes the address from every
// interface that has it. An address already gone is no error.
func (f *FloatIP) Stop(ctx context.Context) error {
	if err := f.paramErr(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stopRounds(ctx); err != nil {
		return err
	}
	ip := f.prefix.Addr()
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
// when the address is on no interface.
func (f *FloatIP) Monitor(ctx context.Context) error {
	if err := f.paramErr(); err != nil {
		return err
	}
	ip := f.prefix.Addr()
	links, err := f.listLinks()
	if err != nil {
		return err
	}
	on := linksWith(links, ip)
	switch {
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
		if a.prefix.Bits() != f.prefix.Bits() {
			return f.errorf("%s is on %s as %s, not as %s", ip, l.name, a.prefix, f.prefix)
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
