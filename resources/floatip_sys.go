package resources

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
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

func (r realNet) addrReplace(index int, p netip.Prefix, flags int) error {
	h, err := r.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	return h.AddrReplace(nil, toNetlinkAddr(index, p, flags))
}

func (r realNet) addrDel(index int, p netip.Prefix) error {
	h, err := r.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	return h.AddrDel(nil, toNetlinkAddr(index, p, 0))
}

// announcer returns the gratuitous ARP sender for an IPv4 address. IPv6
// addresses get none here: their unsolicited neighbour advertisement is a
// second announcer of the same shape.
func (r realNet) announcer(l netLink, addr netip.Addr) (announcer, error) {
	if !addr.Is4() || l.loopback || len(l.hwAddr) < 6 {
		return nil, nil
	}
	var c *arp.Client
	err := inNetNS(r.nsPath, func() error {
		ifi, err := net.InterfaceByIndex(l.index)
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open ARP socket on %s: %w", l.name, err)
	}
	return &garp{c: c, hw: l.hwAddr, ip: addr}, nil
}

// garp sends gratuitous ARP for one address.
type garp struct {
	c  *arp.Client
	hw net.HardwareAddr
	ip netip.Addr
}

// garpWriteTimeout bounds one round's writes.
const garpWriteTimeout = time.Second

// announce broadcasts the address in both forms neighbours heed: a request
// for the address from itself with an empty target hardware address (the
// ARP announcement of RFC 5227), and an unsolicited reply to the broadcast
// address, which some switches and hosts only learn from.
func (g *garp) announce() error {
	if err := g.c.SetWriteDeadline(time.Now().Add(garpWriteTimeout)); err != nil {
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
