package heartbeat

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestRawSockaddr(t *testing.T) {
	for _, tc := range []struct {
		name   string
		family int
		in     string
		zone   uint32
		ok     bool
		back   string // what the kernel's copy reads back as
	}{
		{"IPv4", unix.AF_INET, "198.18.0.1:694", 0, true, "198.18.0.1:694"},
		{"IPv6", unix.AF_INET6, "[2001:2::1]:694", 0, true, "[2001:2::1]:694"},
		{"IPv6 link-local with zone", unix.AF_INET6, "[fe80::1]:6940", 3, true, "[fe80::1%3]:6940"},
		{"IPv4 on an IPv6 socket", unix.AF_INET6, "198.18.0.1:694", 0, true, "198.18.0.1:694"},
		{"IPv4-mapped on an IPv4 socket", unix.AF_INET, "[::ffff:198.18.0.1]:694", 0, true, "198.18.0.1:694"},
		{"IPv6 on an IPv4 socket", unix.AF_INET, "[2001:2::1]:694", 0, false, ""},
		{"a Unix socket", unix.AF_UNIX, "198.18.0.1:694", 0, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ap := netip.MustParseAddrPort(tc.in)
			r, ok := newRawSockaddr(tc.family, ap, tc.zone)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if got := r.addrPort().String(); got != tc.back {
				t.Errorf("reads back as %s, want %s", got, tc.back)
			}
			// The layout is the kernel's, as x/sys/unix declares it.
			switch tc.family {
			case unix.AF_INET:
				k := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.buf[0]))
				port := (*[2]byte)(unsafe.Pointer(&k.Port))
				if r.len != unix.SizeofSockaddrInet4 || k.Family != unix.AF_INET ||
					binary.BigEndian.Uint16(port[:]) != ap.Port() || netip.AddrFrom4(k.Addr) != ap.Addr().Unmap() {
					t.Errorf("kernel layout: len %d, %+v", r.len, *k)
				}
			case unix.AF_INET6:
				k := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.buf[0]))
				port := (*[2]byte)(unsafe.Pointer(&k.Port))
				if r.len != unix.SizeofSockaddrInet6 || k.Family != unix.AF_INET6 ||
					binary.BigEndian.Uint16(port[:]) != ap.Port() || k.Addr != ap.Addr().As16() || k.Scope_id != tc.zone {
					t.Errorf("kernel layout: len %d, %+v", r.len, *k)
				}
			}
		})
	}
	var unknown rawSockaddr
	binary.NativeEndian.PutUint16(unknown.buf[0:], unix.AF_UNIX)
	if ap := unknown.addrPort(); ap.IsValid() {
		t.Errorf("an AF_UNIX address reads as %v", ap)
	}
}

// The raw path end to end over IPv6: what is sent arrives, and the
// sender's address is reported as the socket's own.
func TestUDPPairIPv6(t *testing.T) {
	listen := func() net.PacketConn {
		c, err := net.ListenPacket("udp6", "[::1]:0")
		if err != nil {
			t.Skipf("this host has no IPv6 loopback: %v", err)
		}
		return c
	}
	ca, cb := listen(), listen()
	a, b := newUDP("lan", ca, cb.LocalAddr()), newUDP("lan", cb, ca.LocalAddr())
	t.Cleanup(func() { a.Close(); b.Close() })
	if a.raw == nil || b.raw == nil {
		t.Fatal("the IPv6 sockets did not take the raw path")
	}
	sendBoth(t, a, b)
}
