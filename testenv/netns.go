package testenv

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const netnsDir = "/run/netns"

// onThread runs fn on an OS thread of its own that is thrown away
// afterwards, so fn may change the thread's namespaces freely.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread exits with this goroutine and takes
		// whatever namespaces fn entered with it.
		errc <- fn()
	}()
	return <-errc
}

// enterNetns switches the calling (locked) thread into the namespace at path.
func enterNetns(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("testenv: open %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("testenv: enter %s: %w", path, err)
	}
	return nil
}

// createNetns makes a named network namespace, pinned at /run/netns/NAME the
// way iproute2 does it, and returns its path.
func createNetns(name string) (string, error) {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(netnsDir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return "", fmt.Errorf("testenv: create %s: %w", path, err)
	}
	f.Close()
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return err
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		return unix.Mount(self, path, "none", unix.MS_BIND, "")
	})
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("testenv: pin network namespace %s: %w", path, err)
	}
	return path, nil
}

func deleteNetns(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("testenv: unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// nsHandle is a netlink handle bound to one namespace.
type nsHandle struct {
	path string
	ns   netns.NsHandle
	*netlink.Handle
}

func openNs(path string) (*nsHandle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("testenv: open %s: %w", path, err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE, unix.NETLINK_INET_DIAG)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("testenv: netlink in %s: %w", path, err)
	}
	return &nsHandle{path: path, ns: ns, Handle: h}, nil
}

func (h *nsHandle) close() {
	h.Handle.Close()
	h.ns.Close()
}

func (h *nsHandle) up(name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("testenv: %s in %s: %w", name, h.path, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("testenv: set %s up in %s: %w", name, h.path, err)
	}
	return nil
}

func (h *nsHandle) down(name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("testenv: %s in %s: %w", name, h.path, err)
	}
	if err := h.LinkSetDown(l); err != nil {
		return fmt.Errorf("testenv: set %s down in %s: %w", name, h.path, err)
	}
	return nil
}

// setAddrs makes addrs the only addresses on the interface (IPv6 link-local
// addresses are the kernel's and stay). IPv6 addresses skip duplicate
// address detection, so they serve at once.
func (h *nsHandle) setAddrs(ifname string, addrs ...netip.Prefix) error {
	l, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("testenv: %s in %s: %w", ifname, h.path, err)
	}
	have, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	for _, a := range have {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		// Removing a primary IPv4 address takes its secondaries with it.
		if err := h.AddrDel(l, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("testenv: remove %s from %s in %s: %w", a.IPNet, ifname, h.path, err)
		}
	}
	for _, p := range addrs {
		a := &netlink.Addr{IPNet: prefixNet(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrReplace(l, a); err != nil {
			return fmt.Errorf("testenv: add %s to %s in %s: %w", p, ifname, h.path, err)
		}
	}
	return nil
}

// hasAddr reports whether any interface of the namespace holds ip.
func (h *nsHandle) hasAddr(ip netip.Addr) (bool, error) {
	fam := netlink.FAMILY_V4
	if ip.Is6() && !ip.Is4In6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := h.AddrList(nil, fam)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip.Unmap() {
			return true, nil
		}
	}
	return false, nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// network is the lab's wiring: a switch namespace with two bridges, and a
// veth per host and network.
type network struct {
	sw *nsHandle
}

const (
	bridgePublic    = "br-pub"
	bridgeHeartbeat = "br-hb"
)

func newNetwork(swPath string) (*network, error) {
	sw, err := openNs(swPath)
	if err != nil {
		return nil, err
	}
	n := &network{sw: sw}
	off := false
	for _, name := range []string{bridgePublic, bridgeHeartbeat} {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}, MulticastSnooping: &off}
		if err := sw.LinkAdd(br); err != nil {
			sw.close()
			return nil, fmt.Errorf("testenv: bridge %s: %w", name, err)
		}
		if err := sw.up(name); err != nil {
			sw.close()
			return nil, err
		}
	}
	if err := sw.up("lo"); err != nil {
		sw.close()
		return nil, err
	}
	return n, nil
}

// switchPort is the switch-side name of a host's cable on one network.
func switchPort(host, ifname string) string {
	if ifname == HeartbeatIf {
		return host + "-hb"
	}
	return host + "-pub"
}

// plug runs a cable from the bridge to the host: a veth whose switch end is
// a bridge port and whose host end is ifname.
func (n *network) plug(host *nsHandle, hostName, ifname, bridge string) error {
	port := switchPort(hostName, ifname)
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: port},
		PeerName:      ifname,
		PeerNamespace: netlink.NsFd(int(host.ns)),
	}
	if err := n.sw.LinkAdd(veth); err != nil {
		return fmt.Errorf("testenv: veth %s/%s: %w", port, ifname, err)
	}
	br, err := n.sw.LinkByName(bridge)
	if err != nil {
		return err
	}
	l, err := n.sw.LinkByName(port)
	if err != nil {
		return err
	}
	if err := n.sw.LinkSetMaster(l, br); err != nil {
		return fmt.Errorf("testenv: attach %s to %s: %w", port, bridge, err)
	}
	return n.sw.up(port)
}

func (n *network) close() { n.sw.close() }
