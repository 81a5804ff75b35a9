package resources

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// realNet is netSys on the running system, in the network namespace at
// nsPath, or the process's own when nsPath is empty.
type realNet struct {
	nsPath string
}

func (r realNet) handle() (*netlink.Handle, error) {
	if r.nsPath == "" {
		return netlink.NewHandle()
	}
	ns, err := netns.GetFromPath(r.nsPath)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", r.nsPath, err)
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

// dumpRetries bounds the retries of a netlink dump the kernel interrupted
// because the table changed under it.
const dumpRetries = 5

func (r realNet) links() ([]netLink, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var (
		ls []netlink.Link
		as []netlink.Addr
	)
	for i := 0; ; i++ {
		ls, err = h.LinkList()
		if err == nil {
			as, err = h.AddrList(nil, netlink.FAMILY_ALL)
		}
		if err == nil || !errors.Is(err, netlink.ErrDumpInterrupted) || i == dumpRetries {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	byIndex := make(map[int]int, len(ls))
	out := make([]netLink, 0, len(ls))
	for _, l := range ls {
		a := l.Attrs()
		byIndex[a.Index] = len(out)
		out = append(out, netLink{
			index:    a.Index,
			name:     a.Name,
			up:       a.Flags&net.FlagUp != 0,
			oper:     a.OperState.String(),
			hwAddr:   a.HardwareAddr,
			loopback: a.Flags&net.FlagLoopback != 0,
		})
	}
	for _, a := range as {
		i, ok := byIndex[a.LinkIndex]
		if !ok || a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out[i].addrs = append(out[i].addrs, netAddr{prefix: netip.PrefixFrom(ip.Unmap(), ones), flags: a.Flags})
	}
	return out, nil
}

func toNetlinkAddr(index int, p netip.Prefix, flags int) *netlink.Addr {
	a := p.Addr()
	return &netlink.Addr{
		IPNet:     &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())},
		Flags:     flags,
		LinkIndex: index,
	}
}

func (r realNet) addrReplace(index int, p netip.Prefix, flags int, lifetime time.Duration) error {
	h, err := r.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	a := toNetlinkAddr(index, p, flags)
	if lifetime > 0 {
		s := int(min((lifetime+time.Second-1)/time.Second, math.MaxUint32-1))
		a.ValidLft, a.PreferedLft = s, s
	}
	return h.AddrReplace(nil, a)
}

func (r realNet) addrDel(index int, p netip.Prefix) error {
	h, err := r.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	return h.AddrDel(nil, toNetlinkAddr(index, p, 0))
}

// announcer returns the sender of an address's announcements: gratuitous
// ARP for IPv4, unsolicited neighbour advertisements for IPv6. Its socket
// is opened inside the namespace, on a thread locked there, and stays
// there.
func (r realNet) announcer(l netLink, addr netip.Addr) (announcer, error) {
	if l.loopback || len(l.hwAddr) < 6 {
		return nil, nil
	}
	var an announcer
	err := inNetNS(r.nsPath, func() error {
		ifi, err := net.InterfaceByIndex(l.index)
		if err != nil {
			return err
		}
		if addr.Is4() {
			c, err := arp.Dial(ifi)
			if err != nil {
				return fmt.Errorf("open ARP socket on %s: %w", l.name, err)
			}
			an = &garp{c: c, hw: l.hwAddr, ip: addr}
			return nil
		}
		c, err := listenNDP(ifi, addr)
		if err != nil {
			return fmt.Errorf("open ICMPv6 socket on %s: %w", l.name, err)
		}
		an = newUnsolicitedNA(c, l.hwAddr, addr)
		return nil
	})
	return an, err
}

// listenNDP opens an NDP socket that sends from addr, or from the
// link-local address when addr cannot be bound (still tentative, when
// something else added it with duplicate address detection). It receives
// nothing: the floating address only speaks.
func listenNDP(ifi *net.Interface, addr netip.Addr) (*ndp.Conn, error) {
	c, _, err := ndp.Listen(ifi, ndp.Addr(addr.String()))
	if err != nil {
		var lerr error
		if c, _, lerr = ndp.Listen(ifi, ndp.LinkLocal); lerr != nil {
			return nil, errors.Join(err, lerr)
		}
	}
	var none ipv6.ICMPFilter
	none.SetAll(true)
	if err := c.SetICMPFilter(&none); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// announceWriteTimeout bounds one round's writes.
const announceWriteTimeout = time.Second

// garp sends gratuitous ARP for one address.
type garp struct {
	c  *arp.Client
	hw net.HardwareAddr
	ip netip.Addr
}

// announce broadcasts the address in both forms neighbours heed: a request
// for the address from itself with an empty target hardware address (the
// ARP announcement of RFC 5227), and an unsolicited reply to the broadcast
// address, which some switches and hosts only learn from.
func (g *garp) announce() error {
	if err := g.c.SetWriteDeadline(time.Now().Add(announceWriteTimeout)); err != nil {
		return err
	}
	req, err := arp.NewPacket(arp.OperationRequest, g.hw, g.ip, make(net.HardwareAddr, len(g.hw)), g.ip)
	if err != nil {
		return err
	}
	if err := g.c.WriteTo(req, ethernet.Broadcast); err != nil {
		return fmt.Errorf("send ARP request: %w", err)
	}
	rep, err := arp.NewPacket(arp.OperationReply, g.hw, g.ip, ethernet.Broadcast, g.ip)
	if err != nil {
		return err
	}
	if err := g.c.WriteTo(rep, ethernet.Broadcast); err != nil {
		return fmt.Errorf("send ARP reply: %w", err)
	}
	return nil
}

func (g *garp) close() error { return g.c.Close() }

// ndpConn is what an unsolicited NA is sent through; *ndp.Conn is one.
type ndpConn interface {
	WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error
	SetWriteDeadline(t time.Time) error
	Close() error
}

// allNodes is the link-local all-nodes multicast address, ff02::1.
var allNodes = netip.IPv6LinkLocalAllNodes()

// unsolicitedNA sends unsolicited neighbour advertisements for one
// address (RFC 4861 7.2.6).
type unsolicitedNA struct {
	c  ndpConn
	na *ndp.NeighborAdvertisement
}

// newUnsolicitedNA returns the sender of NAs for ip at hw: not solicited,
// with the override flag, so that neighbours replace the link-layer
// address they have for ip; the target link-layer address option carries
// hw (an NA has no source link-layer address option: RFC 4861 4.4).
func newUnsolicitedNA(c ndpConn, hw net.HardwareAddr, ip netip.Addr) *unsolicitedNA {
	return &unsolicitedNA{c: c, na: &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: ip,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      hw,
		}},
	}}
}

// announce sends one NA to all nodes of the link.
func (u *unsolicitedNA) announce() error {
	if err := u.c.SetWriteDeadline(time.Now().Add(announceWriteTimeout)); err != nil {
		return err
	}
	if err := u.c.WriteTo(u.na, nil, allNodes); err != nil {
		return fmt.Errorf("send neighbour advertisement: %w", err)
	}
	return nil
}

func (u *unsolicitedNA) close() error { return u.c.Close() }

// dhcpConn opens a DHCP client's socket on l inside the namespace: a raw
// socket that broadcasts from port 68 when local is invalid, else a UDP
// socket on local:68, bound to l, allowed to broadcast, that shares the
// port with any other DHCP client of the node.
func (r realNet) dhcpConn(l netLink, local netip.Addr) (net.PacketConn, error) {
	var c net.PacketConn
	err := inNetNS(r.nsPath, func() error {
		var err error
		if !local.IsValid() {
			c, err = nclient4.NewRawUDPConn(l.name, nclient4.ClientPort)
			return err
		}
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = errors.Join(
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1),
					unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, l.name))
			})
			return errors.Join(err, serr)
		}}
		c, err = lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(local, nclient4.ClientPort).String())
		return err
	})
	return c, err
}

// inNetNS runs fn on an OS thread that is in the network namespace at path,
// so the sockets fn opens belong to that namespace; the empty path runs fn
// where the caller is. When the thread cannot return to its namespace it is
// left locked, and the runtime ends it with the goroutine.
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave network namespace %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
