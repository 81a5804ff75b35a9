package smbservice

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// tcpEstablished is TCP_ESTABLISHED in the kernel's socket states.
const tcpEstablished = 1

// Tracker keeps the set of established TCP connections to given floating
// addresses and ports, as sock_diag lists them. Each Poll is one dump of
// the namespace's TCP sockets, IPv4 and IPv6: its cost follows the number
// of sockets, not the time since the last poll, and nothing runs between
// polls. A Tracker is not safe for concurrent use; its zero value tracks
// nothing.
type Tracker struct {
	// Addrs are the floating addresses; v4-mapped ones count as IPv4.
	Addrs []netip.Addr
	// Ports are the server ports, 445 and 139 for SMB.
	Ports []uint16
	// Netns is the path of the network namespace to list, such as
	// /var/run/netns/NAME or /proc/PID/ns/net; empty means the namespace
	// of the thread that first polls.
	Netns string

	h    *netlink.Handle
	cur  map[Conn]struct{}
	list []Conn
}

// Poll lists the connections now established and returns those that
// appeared and those that went since the previous poll, each sorted. The
// first poll reports every connection as added.
func (t *Tracker) Poll() (added, removed []Conn, err error) {
	if t.h == nil {
		h, err := openDiag(t.Netns)
		if err != nil {
			return nil, nil, err
		}
		t.h = h
	}
	now, err := listConns(t.h, t.Addrs, t.Ports)
	if err != nil {
		return nil, nil, fmt.Errorf("track connections%s: %w", nsSuffix(t.Netns), err)
	}
	added, removed = t.update(now)
	return added, removed, nil
}

// update replaces the current set with now, which is sorted and has no
// duplicates, and returns the difference.
func (t *Tracker) update(now []Conn) (added, removed []Conn) {
	next := make(map[Conn]struct{}, len(now))
	for _, c := range now {
		next[c] = struct{}{}
		if _, ok := t.cur[c]; !ok {
			added = append(added, c)
		}
	}
	for _, c := range t.list {
		if _, ok := next[c]; !ok {
			removed = append(removed, c)
		}
	}
	t.cur, t.list = next, now
	return added, removed
}

// Conns returns the connections found by the last poll, sorted. The slice
// is shared: do not modify it.
func (t *Tracker) Conns() []Conn { return t.list }

// Close releases the netlink sockets. A later Poll opens them again.
func (t *Tracker) Close() error {
	if t.h != nil {
		t.h.Close()
		t.h = nil
	}
	return nil
}

func nsSuffix(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}

// openDiag opens a sock_diag handle in the namespace at path, or in the
// calling thread's namespace when path is empty.
func openDiag(path string) (*netlink.Handle, error) {
	if path == "" {
		h, err := netlink.NewHandle(unix.NETLINK_INET_DIAG)
		if err != nil {
			return nil, fmt.Errorf("open sock_diag: %w", err)
		}
		return h, nil
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE, unix.NETLINK_INET_DIAG)
	if err != nil {
		return nil, fmt.Errorf("open sock_diag in %s: %w", path, err)
	}
	return h, nil
}

// dumpRetries bounds the dumps redone because the socket table changed
// while the kernel walked it.
const dumpRetries = 3

// listConns dumps the TCP sockets of both families and returns the
// established ones whose local end is one of addrs and ports, sorted, with
// v4-mapped addresses unmapped.
func listConns(h *netlink.Handle, addrs []netip.Addr, ports []uint16) ([]Conn, error) {
	want := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		want[a.Unmap()] = true
	}
	var out []Conn
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		var socks []*netlink.Socket
		var err error
		for try := 0; ; try++ {
			socks, err = h.SocketDiagTCP(family)
			if err == nil || !errors.Is(err, netlink.ErrDumpInterrupted) || try == dumpRetries {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("sock_diag dump of %s: %w", familyName(family), err)
		}
		for _, s := range socks {
			if s.State != tcpEstablished || !slices.Contains(ports, s.ID.SourcePort) {
				continue
			}
			local, ok1 := netip.AddrFromSlice(s.ID.Source)
			remote, ok2 := netip.AddrFromSlice(s.ID.Destination)
			if !ok1 || !ok2 || !want[local.Unmap()] {
				continue
			}
			c := Conn{
				Client: netip.AddrPortFrom(remote.Unmap(), s.ID.DestinationPort),
				Server: netip.AddrPortFrom(local.Unmap(), s.ID.SourcePort),
			}
			if c.valid() == nil {
				out = append(out, c)
			}
		}
	}
	slices.SortFunc(out, Conn.Compare)
	return slices.Compact(out), nil
}

func familyName(family uint8) string {
	if family == unix.AF_INET {
		return "IPv4"
	}
	return "IPv6"
}

// Reset destroys the server side of each connection through sock_diag
// (SOCK_DESTROY), in the network namespace at netnsPath or, when it is
// empty, the caller's: the kernel sends the client a RST and the client
// reconnects at once. It is meant for a planned release, while the sockets
// still exist. An IPv4 connection accepted by a dual-stack listener is
// found under its v4-mapped address. Connections already gone are not
// errors. Reset returns how many sockets it destroyed.
func Reset(netnsPath string, conns []Conn) (int, error) {
	var fd int
	err := inNetns(netnsPath, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_INET_DIAG)
		if err != nil {
			return fmt.Errorf("open sock_diag%s: %w", nsSuffix(netnsPath), err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("bind sock_diag socket%s: %w", nsSuffix(netnsPath), err)
	}
	var errs []error
	destroyed := 0
	buf := make([]byte, 4096)
	for i, c := range conns {
		if err := c.valid(); err != nil {
			errs = append(errs, fmt.Errorf("reset %s: %v", c, err))
			continue
		}
		err := destroy(fd, buf, uint32(i+1), unix.AF_INET6, c)
		if c.Is4() && errors.Is(err, unix.ENOENT) {
			err = destroy(fd, buf, uint32(i+1), unix.AF_INET, c)
		}
		switch {
		case err == nil:
			destroyed++
		case errors.Is(err, unix.ENOENT):
		default:
			errs = append(errs, fmt.Errorf("reset %s%s: %w", c, nsSuffix(netnsPath), err))
		}
	}
	return destroyed, errors.Join(errs...)
}

// destroy sends one SOCK_DESTROY request for the server socket of c, looked
// up in family, and waits for its acknowledgement.
func destroy(fd int, buf []byte, seq uint32, family uint8, c Conn) error {
	const (
		sockDestroy = 21 // SOCK_DESTROY
		hdrLen      = unix.SizeofNlMsghdr
		reqLen      = 56 // struct inet_diag_req_v2
	)
	msg := make([]byte, hdrLen+reqLen)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], sockDestroy)
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	ne.PutUint32(msg[8:], seq)
	r := msg[hdrLen:]
	r[0] = family
	r[1] = unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 1<<tcpEstablished)
	binary.BigEndian.PutUint16(r[8:], c.Server.Port())
	binary.BigEndian.PutUint16(r[10:], c.Client.Port())
	putDiagAddr(r[12:28], family, c.Server.Addr())
	putDiagAddr(r[28:44], family, c.Client.Addr())
	ne.PutUint32(r[48:], ^uint32(0)) // no cookie
	ne.PutUint32(r[52:], ^uint32(0))
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		for b := buf[:n]; len(b) >= hdrLen; {
			l := int(ne.Uint32(b))
			if l < hdrLen || l > len(b) {
				return fmt.Errorf("malformed netlink message of %d bytes", l)
			}
			typ, mseq, data := ne.Uint16(b[4:]), ne.Uint32(b[8:]), b[hdrLen:l]
			b = b[min(nlmAlign(l), len(b)):]
			if mseq != seq || typ != unix.NLMSG_ERROR {
				continue
			}
			if len(data) < 4 {
				return errors.New("short netlink acknowledgement")
			}
			if e := int32(ne.Uint32(data)); e != 0 {
				return unix.Errno(-e)
			}
			return nil
		}
	}
}

func nlmAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// putDiagAddr writes a in the 16-byte address field of an inet_diag_sockid:
// the first 4 bytes for AF_INET, v4-mapped for an IPv4 address in AF_INET6.
func putDiagAddr(b []byte, family uint8, a netip.Addr) {
	if family == unix.AF_INET {
		a4 := a.As4()
		copy(b, a4[:])
		return
	}
	a16 := a.As16()
	copy(b, a16[:])
}

// inNetns runs fn on a thread in the network namespace at path, or on the
// caller's goroutine when path is empty. Sockets fn opens stay in that
// namespace whatever thread uses them later. The thread is discarded after
// fn, so the namespace change never leaks to other goroutines.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with this goroutine.
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open network namespace %s: %w", path, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
