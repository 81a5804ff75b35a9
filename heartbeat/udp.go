package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// DefaultPort is the UDP port heartbeats use unless configured otherwise
// (the port registered for Linux-HA heartbeat).
const DefaultPort = 694

// tosNetworkControl is DSCP CS6, the class for network control traffic,
// so switches that honour DSCP queue heartbeats ahead of bulk data.
const tosNetworkControl = 0xc0

// UDPMode says how the UDP medium reaches the peer.
type UDPMode uint8

// UDP modes.
const (
	// Unicast sends to the peer's heartbeat address.
	Unicast UDPMode = iota
	// Multicast sends to a group joined on the heartbeat interface.
	Multicast
	// Broadcast sends to the broadcast address of the heartbeat subnet
	// (IPv4 only).
	Broadcast
)

// String returns the mode's name in tandem.toml: "unicast", "multicast" or
// "broadcast".
func (m UDPMode) String() string {
	switch m {
	case Unicast:
		return "unicast"
	case Multicast:
		return "multicast"
	case Broadcast:
		return "broadcast"
	}
	return fmt.Sprintf("mode %d", uint8(m))
}

// ParseUDPMode parses the mode's name as String writes it.
func ParseUDPMode(s string) (UDPMode, error) {
	for _, m := range []UDPMode{Unicast, Multicast, Broadcast} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("heartbeat: udp mode %q: want unicast, multicast or broadcast", s)
}

// MarshalText returns the mode's name.
func (m UDPMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses the mode's name, so a TOML or JSON decoder can fill
// a UDPMode directly.
func (m *UDPMode) UnmarshalText(b []byte) error {
	v, err := ParseUDPMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// UDPConfig says how to open a UDP medium.
type UDPConfig struct {
	// Name of the medium; "udp" when empty.
	Name string
	// Mode is unicast, multicast or broadcast.
	Mode UDPMode
	// Local is this node's address on the heartbeat LAN. In unicast mode
	// the socket is bound to it; in the other modes it selects the
	// interface, unless Interface is set.
	Local netip.Addr
	// Port is the UDP port on both nodes; DefaultPort when 0.
	Port int
	// Peer is the peer's heartbeat address (unicast).
	Peer netip.Addr
	// Group is the multicast group, IPv4 or IPv6 (multicast).
	Group netip.Addr
	// Interface names the heartbeat interface (multicast, broadcast);
	// found from Local when empty.
	Interface string
	// BroadcastAddr is where broadcast mode sends; the broadcast address
	// of Local's subnet when invalid (zero).
	BroadcastAddr netip.Addr
	// TTL bounds multicast hops; 1 (this link only) when 0.
	TTL int
}

// UDP is the heartbeat medium over UDP.
//
// Send never waits: a datagram the socket has no room for is an error at
// once, not a wait for the interface to drain, so a Node sends on its
// other media without delay.
type UDP struct {
	name string
	conn net.PacketConn
	dst  net.Addr
	// raw and sa send and receive with raw system calls (see rawio.go);
	// raw is nil when conn is not a UDP socket of this host, and then
	// Send may wait in WriteTo.
	raw syscall.RawConn
	sa  rawSockaddr
}

var _ Medium = (*UDP)(nil)

// DialUDP opens a UDP medium: it binds the socket, and in multicast mode
// joins the group on the heartbeat interface with loopback off; in
// broadcast mode it binds to the interface (SO_BINDTODEVICE, which needs
// CAP_NET_RAW) and listens on every address, since a socket bound to one
// unicast address receives no broadcasts. Its own broadcasts come back to
// it; a Node drops them.
func DialUDP(cfg UDPConfig) (*UDP, error) {
	if cfg.Name == "" {
		cfg.Name = "udp"
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("heartbeat: udp port %d out of range", cfg.Port)
	}
	if cfg.TTL == 0 {
		cfg.TTL = 1
	}
	var (
		u   *UDP
		err error
	)
	switch cfg.Mode {
	case Unicast:
		u, err = dialUnicast(cfg)
	case Multicast:
		u, err = dialMulticast(cfg)
	case Broadcast:
		u, err = dialBroadcast(cfg)
	default:
		err = fmt.Errorf("unknown mode %v", cfg.Mode)
	}
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %s medium (%v): %w", cfg.Name, cfg.Mode, err)
	}
	return u, nil
}

// newUDP wraps an open packet connection that sends to dst, so tests can
// hand in any net.PacketConn.
func newUDP(name string, conn net.PacketConn, dst net.Addr) *UDP {
	u := &UDP{name: name, conn: conn, dst: dst}
	u.raw, u.sa = rawDestination(conn, dst)
	return u
}

// rawDestination returns the socket under conn and dst as a socket
// address of the socket's family, or a nil RawConn when conn is not a UDP
// socket or dst cannot be put so.
func rawDestination(conn net.PacketConn, dst net.Addr) (syscall.RawConn, rawSockaddr) {
	c, ok := conn.(*net.UDPConn)
	a, ok2 := dst.(*net.UDPAddr)
	if !ok || !ok2 {
		return nil, rawSockaddr{}
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, rawSockaddr{}
	}
	family := -1
	rc.Control(func(fd uintptr) {
		if v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN); err == nil {
			family = v
		}
	})
	var zone uint32
	if a.Zone != "" {
		ifi, err := net.InterfaceByName(a.Zone)
		if err != nil {
			return nil, rawSockaddr{}
		}
		zone = uint32(ifi.Index)
	}
	sa, ok := newRawSockaddr(family, a.AddrPort(), zone)
	if !ok {
		return nil, rawSockaddr{}
	}
	return rc, sa
}

func udpAddr(a netip.Addr, port int) *net.UDPAddr {
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, uint16(port)))
}

func dialUnicast(cfg UDPConfig) (*UDP, error) {
	if !cfg.Local.IsValid() {
		return nil, errors.New("no local address")
	}
	if !cfg.Peer.IsValid() {
		return nil, errors.New("no peer address")
	}
	if cfg.Local.Is4() != cfg.Peer.Is4() {
		return nil, fmt.Errorf("local %v and peer %v are of different families", cfg.Local, cfg.Peer)
	}
	conn, err := listen(udpAddr(cfg.Local, cfg.Port), sockOpts{})
	if err != nil {
		return nil, err
	}
	setTOS(conn)
	return newUDP(cfg.Name, conn, udpAddr(cfg.Peer, cfg.Port)), nil
}

func dialMulticast(cfg UDPConfig) (*UDP, error) {
	g := cfg.Group
	if !g.IsValid() || !g.IsMulticast() {
		return nil, fmt.Errorf("group %v is not a multicast address", g)
	}
	ifi, err := heartbeatInterface(cfg)
	if err != nil {
		return nil, err
	}
	bind := udpAddr(g, cfg.Port)
	if g.Is6() {
		bind.Zone = ifi.Name
	}
	conn, err := listen(bind, sockOpts{multicast: true})
	if err != nil {
		return nil, err
	}
	group := &net.UDPAddr{IP: g.AsSlice()}
	if g.Is4() {
		p := ipv4.NewPacketConn(conn)
		err = errors.Join(
			p.JoinGroup(ifi, group),
			p.SetMulticastInterface(ifi),
			p.SetMulticastTTL(cfg.TTL),
			p.SetMulticastLoopback(false),
		)
	} else {
		p := ipv6.NewPacketConn(conn)
		err = errors.Join(
			p.JoinGroup(ifi, group),
			p.SetMulticastInterface(ifi),
			p.SetMulticastHopLimit(cfg.TTL),
			p.SetMulticastLoopback(false),
		)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("group %v on %s: %w", g, ifi.Name, err)
	}
	setTOS(conn)
	dst := udpAddr(g, cfg.Port)
	if g.Is6() {
		dst.Zone = ifi.Name
	}
	return newUDP(cfg.Name, conn, dst), nil
}

func dialBroadcast(cfg UDPConfig) (*UDP, error) {
	if cfg.Local.IsValid() && !cfg.Local.Is4() {
		return nil, fmt.Errorf("local %v: broadcast needs IPv4", cfg.Local)
	}
	ifi, err := heartbeatInterface(cfg)
	if err != nil {
		return nil, err
	}
	bcast := cfg.BroadcastAddr
	if !bcast.IsValid() {
		if bcast, err = broadcastOf(ifi, cfg.Local); err != nil {
			return nil, err
		}
	}
	if !bcast.Is4() {
		return nil, fmt.Errorf("broadcast address %v is not IPv4", bcast)
	}
	conn, err := listen(&net.UDPAddr{IP: net.IPv4zero, Port: cfg.Port}, sockOpts{device: ifi.Name, broadcast: true})
	if err != nil {
		return nil, err
	}
	setTOS(conn)
	return newUDP(cfg.Name, conn, udpAddr(bcast, cfg.Port)), nil
}

// sockOpts are the socket options listen sets before binding.
type sockOpts struct {
	device    string // SO_BINDTODEVICE
	broadcast bool   // SO_BROADCAST
	multicast bool   // IP_MULTICAST_ALL / IPV6_MULTICAST_ALL off
}

// listen opens a UDP socket on addr with SO_REUSEADDR and the given options.
// Multicast sockets take only the groups they joined themselves on their
// interface, not every group some socket on the host joined.
func listen(addr *net.UDPAddr, o sockOpts) (net.PacketConn, error) {
	v4 := addr.IP.To4() != nil
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			set := func(what string, level, opt, v int) {
				if serr == nil {
					if e := unix.SetsockoptInt(int(fd), level, opt, v); e != nil {
						serr = fmt.Errorf("%s: %w", what, e)
					}
				}
			}
			set("SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if o.broadcast {
				set("SO_BROADCAST", unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
			}
			if o.multicast && v4 {
				set("IP_MULTICAST_ALL", unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
			}
			if o.multicast && !v4 {
				set("IPV6_MULTICAST_ALL", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0)
			}
			if serr == nil && o.device != "" {
				if e := unix.BindToDevice(int(fd), o.device); e != nil {
					serr = fmt.Errorf("bind to device %s: %w", o.device, e)
				}
			}
		})
		return errors.Join(err, serr)
	}}
	network := "udp4"
	if !v4 {
		network = "udp6"
	}
	return lc.ListenPacket(context.Background(), network, addr.String())
}

// setTOS marks outgoing heartbeats as network control traffic. Failure
// only loses the marking.
func setTOS(conn net.PacketConn) {
	c, ok := conn.(*net.UDPConn)
	if !ok {
		return
	}
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil {
		ipv4.NewConn(c).SetTOS(tosNetworkControl)
		return
	}
	ipv6.NewConn(c).SetTrafficClass(tosNetworkControl)
}

// heartbeatInterface returns the configured interface, or the one that holds
// cfg.Local.
func heartbeatInterface(cfg UDPConfig) (*net.Interface, error) {
	if cfg.Interface != "" {
		ifi, err := net.InterfaceByName(cfg.Interface)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", cfg.Interface, err)
		}
		return ifi, nil
	}
	if !cfg.Local.IsValid() {
		return nil, errors.New("neither interface nor local address given")
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for i := range ifs {
		addrs, err := ifs[i].Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == cfg.Local.WithZone("") {
					return &ifs[i], nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no interface holds local address %v", cfg.Local)
}

// broadcastOf returns the broadcast address of the IPv4 subnet on ifi that
// holds local (or of its first IPv4 subnet when local is zero).
func broadcastOf(ifi *net.Interface, local netip.Addr) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("interface %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.To4() == nil {
			continue
		}
		ip, _ := netip.AddrFromSlice(n.IP.To4())
		if local.IsValid() && ip != local {
			continue
		}
		mask := net.IP(n.Mask).To4()
		if mask == nil {
			mask = net.IP(n.Mask)
		}
		b := n.IP.To4()
		out := make([]byte, 4)
		for i := range out {
			out[i] = b[i] | ^mask[i]
		}
		return netip.AddrFrom4([4]byte(out)), nil
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no IPv4 subnet holding %v", ifi.Name, local)
}

// Name returns the medium's name.
func (u *UDP) Name() string { return u.name }

// LocalAddr returns the address the socket is bound to.
func (u *UDP) LocalAddr() net.Addr { return u.conn.LocalAddr() }

// Destination returns where Send sends.
func (u *UDP) Destination() net.Addr { return u.dst }

// Send sends msg as one datagram. It fails at once, wrapping
// unix.EAGAIN, when the socket's send buffer is full.
func (u *UDP) Send(msg []byte) error {
	if len(msg) > MaxMessageSize {
		return fmt.Errorf("heartbeat: %s: message of %d bytes, limit %d", u.name, len(msg), MaxMessageSize)
	}
	var err error
	if u.raw != nil {
		err = u.sendNow(msg)
	} else {
		_, err = u.conn.WriteTo(msg, u.dst)
	}
	if err != nil {
		return fmt.Errorf("heartbeat: %s: send to %v: %w", u.name, u.dst, err)
	}
	return nil
}

// sendNow sends msg with one sendto(2) on the non-blocking socket. Unlike
// WriteTo it never parks the caller until the socket drains: a heartbeat
// that cannot leave now is stale by the time it could.
func (u *UDP) sendNow(msg []byte) error {
	var serr error
	err := u.raw.Write(rawOp(false, func(fd uintptr) error {
		serr = rawSendto(fd, msg, &u.sa)
		return serr
	}))
	if err != nil {
		return err
	}
	if serr == unix.EAGAIN {
		return fmt.Errorf("send buffer full: %w", serr)
	}
	return serr
}

func (u *UDP) sendsPromptly() bool { return u.raw != nil }

// Receive returns the next datagram. A datagram longer than MaxMessageSize
// is returned cut to MaxMessageSize+1 bytes, which no decoder accepts.
// After Close it returns an error wrapping net.ErrClosed.
func (u *UDP) Receive() ([]byte, string, error) {
	buf := make([]byte, MaxMessageSize+1)
	if u.raw != nil {
		return u.receiveRaw(buf)
	}
	n, from, err := u.conn.ReadFrom(buf)
	if err != nil {
		return nil, "", fmt.Errorf("heartbeat: %s: receive: %w", u.name, err)
	}
	src := ""
	if from != nil {
		src = strings.TrimSpace(from.String())
	}
	return buf[:n:n], src, nil
}

// receiveRaw receives into buf with recvfrom(2) on the non-blocking
// socket, waiting in the runtime's poller while nothing is there.
func (u *UDP) receiveRaw(buf []byte) ([]byte, string, error) {
	var (
		n    int
		rerr error
		from rawSockaddr
	)
	err := u.raw.Read(rawOp(true, func(fd uintptr) error {
		n, rerr = rawRecvfrom(fd, buf, &from)
		return rerr
	}))
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, "", fmt.Errorf("heartbeat: %s: receive: %w", u.name, err)
	}
	src := ""
	if ap := from.addrPort(); ap.IsValid() {
		src = ap.String()
	}
	return buf[:n:n], src, nil
}

// Close closes the socket; a blocked Receive returns.
func (u *UDP) Close() error {
	err := u.conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
