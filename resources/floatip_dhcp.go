package resources

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// A DHCP-leased floating address runs the client side of RFC 2131 with a
// fixed client identifier:
//
//	INIT ── DISCOVER/OFFER/REQUEST/ACK (Start) ──► BOUND
//	BOUND ── T1 ──► RENEWING: REQUEST unicast to the server that leased it
//	RENEWING ── T2 ──► REBINDING: REQUEST broadcast to any server
//	RENEWING, REBINDING ── ACK ──► BOUND with the new times
//	RENEWING, REBINDING ── NAK, or the lease's end ──► lost
//
// Unanswered requests are sent again after half the time left to T2 (to
// the lease's end when rebinding), and no sooner than minRetry. A lost
// lease removes the address at once, since the server may give it to
// another client, and Monitor reports the loss as a failure; getting a
// lease again is Start's job, after the cluster has decided where the
// service runs.

// DHCPLease describes the lease a DHCP floating address holds.
type DHCPLease struct {
	// Prefix is the leased address with the lease's prefix length.
	Prefix netip.Prefix
	// Server is the server identifier of the server that granted it.
	Server netip.Addr
	// Obtained is when the request that was acknowledged was sent; the
	// times below count from it.
	Obtained time.Time
	// Renew (T1), Rebind (T2) and Expiry are when renewal starts, when
	// rebinding starts and when the lease ends; all zero for an infinite
	// lease.
	Renew, Rebind, Expiry time.Time
}

// Lease returns the lease held, and false when none is held (not DHCP,
// not started, stopped, or lost).
func (f *FloatIP) Lease() (DHCPLease, bool) {
	f.lmu.Lock()
	defer f.lmu.Unlock()
	if f.lease == nil || f.lost != nil {
		return DHCPLease{}, false
	}
	return f.lease.DHCPLease, true
}

// dhcpLease is a lease with the messages that renew it.
type dhcpLease struct {
	DHCPLease
	ack *dhcpv4.DHCPv4 // the latest ACK, from which renewals are built
}

// infinite reports whether the lease never ends.
func (l *dhcpLease) infinite() bool { return l.Expiry.IsZero() }

// lifetime is what remains of the lease at now, rounded up to the second
// the kernel counts in; zero for an infinite lease.
func (l *dhcpLease) lifetime(now time.Time) time.Duration {
	if l.infinite() {
		return 0
	}
	d := l.Expiry.Sub(now)
	if d < time.Second {
		return time.Second
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

// dhcpTiming paces a DHCP client's exchanges.
type dhcpTiming struct {
	// wait is how long the first transmission of an exchange waits for an
	// answer; each retransmission waits twice as long as the one before.
	wait time.Duration
	// tries is how many transmissions one renewal attempt makes.
	tries int
	// minRetry is the least time between renewal attempts (RFC 2131
	// 4.4.5: 60 seconds).
	minRetry time.Duration
}

var defaultDHCPTiming = dhcpTiming{wait: time.Second, tries: 3, minRetry: time.Minute}

// clock is the keeper's time, so that tests can run a lease's life fast.
type clock interface {
	now() time.Time
	after(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) now() time.Time                         { return time.Now() }
func (realClock) after(d time.Duration) <-chan time.Time { return time.After(d) }

// maxClientID is the longest client id: an option holds 255 bytes, one of
// which is the type.
const maxClientID = 254

// parseDHCPParams checks the parameters of a DHCP floating address and
// returns option 61 as sent.
func parseDHCPParams(p FloatIPParams) ([]byte, error) {
	switch {
	case p.Address != "":
		return nil, fmt.Errorf("address %q: not used with DHCP: the address comes from the lease", p.Address)
	case p.ClientID == "":
		return nil, errors.New("DHCP needs a client id, the same on both nodes, so that the server leases either the same address")
	case len(p.ClientID) > maxClientID:
		return nil, fmt.Errorf("client id %q: %d bytes, at most %d fit in DHCP option 61", p.ClientID, len(p.ClientID), maxClientID)
	case p.Interface == "":
		return nil, fmt.Errorf("DHCP client id %q: give the interface to ask on", p.ClientID)
	}
	return append([]byte{0}, p.ClientID...), nil
}

// holdLease returns the lease held, or obtains one when none is held or
// the last one was lost. f.mu is held.
func (f *FloatIP) holdLease(ctx context.Context, l netLink) (*dhcpLease, error) {
	f.lmu.Lock()
	lease, lost := f.lease, f.lost
	f.lmu.Unlock()
	if lease != nil && lost == nil {
		return lease, nil
	}
	// A keeper that lost its lease has ended or is about to.
	if err := f.keeper.stop(ctx); err != nil {
		return nil, f.errorf("DHCP lease keeper of %s did not stop: %w", f.subject(), err)
	}
	f.keeper = nil
	lease, err := f.acquire(ctx, l)
	if err != nil {
		return nil, err
	}
	f.lmu.Lock()
	f.lease, f.lost = lease, nil
	f.lmu.Unlock()
	return lease, nil
}

// forgetLease drops the lease and its loss. f.mu is held.
func (f *FloatIP) forgetLease() {
	f.lmu.Lock()
	f.lease, f.lost = nil, nil
	f.lmu.Unlock()
}

// dhcpClient opens a DHCP client on l that sends to dest (broadcast when
// nil) from local (through a raw socket that needs no address, when
// invalid).
func (f *FloatIP) dhcpClient(l netLink, local netip.Addr, dest *net.UDPAddr, tries int) (*nclient4.Client, error) {
	if len(l.hwAddr) == 0 {
		return nil, fmt.Errorf("interface %s has no link-layer address", l.name)
	}
	conn, err := f.sys.dhcpConn(l, local)
	if err != nil {
		return nil, fmt.Errorf("open DHCP socket on %s: %w", l.name, err)
	}
	opts := []nclient4.ClientOpt{nclient4.WithTimeout(f.dhcp.wait), nclient4.WithRetry(tries)}
	if dest != nil {
		opts = append(opts, nclient4.WithServerAddr(dest))
	}
	c, err := nclient4.NewWithConn(conn, l.hwAddr, opts...)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("DHCP client on %s: %w", l.name, err)
	}
	return c, nil
}

// dhcpTries is how many transmissions obtaining a lease may make; the
// context's deadline ends them sooner.
const dhcpTries = 16

// acquire obtains a lease on l: DISCOVER, OFFER, REQUEST, ACK.
func (f *FloatIP) acquire(ctx context.Context, l netLink) (*dhcpLease, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.p.DHCPTimeout)
		defer cancel()
	}
	c, err := f.dhcpClient(l, netip.Addr{}, nil, dhcpTries)
	if err != nil {
		return nil, f.errorf("%s: %w", f.subject(), err)
	}
	defer c.Close()
	cid := dhcpv4.WithOption(dhcpv4.OptClientIdentifier(f.clientID))
	offer, err := c.DiscoverOffer(ctx, cid)
	if err != nil {
		return nil, f.errorf("%s on %s: no offer from any server: %w", f.subject(), l.name, unwrapDHCP(err))
	}
	server := serverOf(offer)
	// The lease's times count from the REQUEST (RFC 2131 4.4.1); a server
	// may take seconds to offer (it pings the address first).
	sent := f.clock.now()
	ack, err := c.RequestFromOffer(ctx, offer, cid)
	if err != nil {
		return nil, f.errorf("%s on %s: request for %s to server %s: %w", f.subject(), l.name, offer.YourIPAddr, server, unwrapDHCP(err))
	}
	lease, err := f.leaseFrom(l, ack.ACK, sent)
	if err != nil {
		return nil, f.errorf("%s on %s: %w", f.subject(), l.name, err)
	}
	f.p.Log.Info("DHCP lease obtained", "resource", f.p.Name, "address", lease.Prefix.String(),
		"server", lease.Server.String(), "interface", l.name, "expiry", lease.Expiry)
	return lease, nil
}

// unwrapDHCP shortens the client library's nested messages to what went
// wrong: no answer, a NAK with its message, or the context's error.
func unwrapDHCP(err error) error {
	var nak *nclient4.ErrNak
	switch {
	case errors.As(err, &nak):
		if msg := nak.Nak.Message(); msg != "" {
			return fmt.Errorf("refused (NAK: %s)", msg)
		}
		return errors.New("refused (NAK)")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("no answer: %w", err)
	case errors.Is(err, nclient4.ErrNoResponse):
		return errors.New("no answer")
	}
	return err
}

func serverOf(m *dhcpv4.DHCPv4) netip.Addr {
	a, _ := netip.AddrFromSlice(m.ServerIdentifier().To4())
	return a
}

// leaseFrom reads the lease an ACK grants, its times counted from sent.
// A server that sends no subnet mask gets the prefix length of the
// interface's own subnet that holds the address.
func (f *FloatIP) leaseFrom(l netLink, ack *dhcpv4.DHCPv4, sent time.Time) (*dhcpLease, error) {
	server := serverOf(ack)
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	switch {
	case !server.IsValid():
		return nil, fmt.Errorf("ACK for %s names no server", ack.YourIPAddr)
	case !ok || !(ip.IsGlobalUnicast() || ip.IsPrivate()):
		return nil, fmt.Errorf("server %s leased %s, not a unicast address", server, ack.YourIPAddr)
	}
	bits := -1
	if m := ack.SubnetMask(); m != nil {
		ones, size := m.Size()
		if size != 32 {
			return nil, fmt.Errorf("server %s leased %s with subnet mask %s, not a valid mask", server, ip, net.IP(m))
		}
		bits = ones
	} else {
		for _, a := range l.addrs {
			if a.prefix.Addr().Is4() && a.prefix.Contains(ip) {
				bits = a.prefix.Bits()
			}
		}
		if bits < 0 {
			return nil, fmt.Errorf("server %s leased %s without a subnet mask, and %s has no address in its subnet", server, ip, l.name)
		}
	}
	lease := &dhcpLease{ack: ack, DHCPLease: DHCPLease{Prefix: netip.PrefixFrom(ip, bits), Server: server, Obtained: sent}}
	total := ack.IPAddressLeaseTime(0)
	switch {
	case total == math.MaxUint32*time.Second:
		return lease, nil // infinite
	case total <= 0:
		return nil, fmt.Errorf("server %s leased %s without a lease time", server, ip)
	}
	t1 := ack.IPAddressRenewalTime(total / 2)
	t2 := ack.IPAddressRebindingTime(total * 7 / 8)
	if t2 <= 0 || t2 > total {
		t2 = total * 7 / 8
	}
	if t1 <= 0 || t1 > t2 {
		t1 = min(total/2, t2)
	}
	lease.Renew, lease.Rebind, lease.Expiry = sent.Add(t1), sent.Add(t2), sent.Add(total)
	return lease, nil
}

// keepLease renews the lease on l until ctx ends or the lease is lost.
func (f *FloatIP) keepLease(ctx context.Context, l netLink, lease *dhcpLease) {
	if lease.infinite() {
		return
	}
	next := lease.Renew
	for {
		next = minTime(next, lease.Expiry)
		select {
		case <-ctx.Done():
			return
		case <-f.clock.after(next.Sub(f.clock.now())):
		}
		now := f.clock.now()
		if !now.Before(lease.Expiry) {
			f.loseLease(l, lease, f.errorf("DHCP lease of %s from server %s on %s expired at %s without renewal",
				lease.Prefix, lease.Server, l.name, lease.Expiry.Format(time.RFC3339)))
			return
		}
		rebinding := !now.Before(lease.Rebind)
		limit := lease.Rebind
		if rebinding {
			limit = lease.Expiry
		}
		renewed, err := f.extend(ctx, l, lease, rebinding, limit)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			lease = renewed
			f.lmu.Lock()
			f.lease = lease
			f.lmu.Unlock()
			if err := f.sys.addrReplace(l.index, lease.Prefix, 0, lease.lifetime(f.clock.now())); err != nil {
				f.p.Log.Warn("DHCP lease renewed, but the address's lifetime was not", "resource", f.p.Name,
					"address", lease.Prefix.String(), "interface", l.name, "err", err)
			}
			next = lease.Renew
		case errors.Is(err, errNAK):
			f.loseLease(l, lease, f.errorf("DHCP lease of %s on %s lost: %w", lease.Prefix, l.name, err))
			return
		default:
			f.p.Log.Warn("DHCP renewal unanswered", "resource", f.p.Name, "address", lease.Prefix.String(),
				"interface", l.name, "rebinding", rebinding, "err", err)
			next = retryAt(now, limit, f.dhcp.minRetry)
		}
	}
}

// retryAt is when to try again after an unanswered attempt at now: half
// the time left until limit, at least minRetry, at most limit.
func retryAt(now, limit time.Time, minRetry time.Duration) time.Time {
	return minTime(now.Add(max(limit.Sub(now)/2, minRetry)), limit)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// errNAK marks a server's refusal of a renewal.
var errNAK = errors.New("refused")

// extend asks to extend the lease, before limit: renewing, a request
// unicast from the leased address to the server that granted it;
// rebinding, a request broadcast from it to any server.
func (f *FloatIP) extend(ctx context.Context, l netLink, lease *dhcpLease, rebinding bool, limit time.Time) (*dhcpLease, error) {
	ctx, cancel := context.WithTimeout(ctx, limit.Sub(f.clock.now()))
	defer cancel()
	what := fmt.Sprintf("renew %s with server %s", lease.Prefix, lease.Server)
	dest := &net.UDPAddr{IP: lease.Server.AsSlice(), Port: nclient4.ServerPort}
	if rebinding {
		what = fmt.Sprintf("rebind %s with any server", lease.Prefix)
		dest = &net.UDPAddr{IP: net.IPv4bcast, Port: nclient4.ServerPort}
	}
	// From the leased address either way: servers answer a request with
	// ciaddr set by unicast to it (RFC 2131 4.1).
	c, err := f.dhcpClient(l, lease.Prefix.Addr(), dest, f.dhcp.tries)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer c.Close()
	xid, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		return nil, err
	}
	req, err := dhcpv4.NewRenewFromAck(lease.ack, dhcpv4.WithTransactionID(xid),
		dhcpv4.WithHwAddr(l.hwAddr),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(f.clientID)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	match := nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	if !rebinding {
		match = nclient4.IsAll(nclient4.IsCorrectServer(lease.Server.AsSlice()), match)
	}
	sent := f.clock.now()
	resp, err := c.SendAndRead(ctx, c.RemoteAddr(), req, match)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, unwrapDHCP(err))
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		msg := resp.Message()
		if msg == "" {
			msg = "no reason given"
		}
		return nil, fmt.Errorf("%s: server %s %w it (NAK: %s)", what, serverOf(resp), errNAK, msg)
	}
	renewed, err := f.leaseFrom(l, resp, sent)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if renewed.Prefix.Addr() != lease.Prefix.Addr() {
		return nil, fmt.Errorf("%s: server %s %w it, and leased %s instead", what, renewed.Server, errNAK, renewed.Prefix)
	}
	f.p.Log.Info("DHCP lease renewed", "resource", f.p.Name, "address", renewed.Prefix.String(),
		"server", renewed.Server.String(), "interface", l.name, "rebinding", rebinding, "expiry", renewed.Expiry)
	return renewed, nil
}

// loseLease records why the lease is lost and removes its address: the
// server may lease it to another client from now on.
func (f *FloatIP) loseLease(l netLink, lease *dhcpLease, why error) {
	f.lmu.Lock()
	f.lost = why
	f.lmu.Unlock()
	f.p.Log.Error("DHCP lease lost", "resource", f.p.Name, "err", why)
	if err := f.sys.addrDel(l.index, lease.Prefix); err != nil {
		f.p.Log.Error("removing the address of a lost DHCP lease failed", "resource", f.p.Name,
			"address", lease.Prefix.String(), "interface", l.name, "err", err)
	}
}
