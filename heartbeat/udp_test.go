package heartbeat

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// loopbackPair returns two UDP media on 127.0.0.1 that send to each other.
func loopbackPair(t *testing.T, name string) (*UDP, *UDP) {
	t.Helper()
	a := listenLoopback(t)
	b := listenLoopback(t)
	ma := newUDP(name, a, b.LocalAddr())
	mb := newUDP(name, b, a.LocalAddr())
	t.Cleanup(func() { ma.Close(); mb.Close() })
	return ma, mb
}

func listenLoopback(t *testing.T) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type received struct {
	msg  []byte
	from string
	err  error
}

// receiveAsync runs one Receive in the background.
func receiveAsync(m Medium) <-chan received {
	ch := make(chan received, 1)
	go func() {
		msg, from, err := m.Receive()
		ch <- received{msg, from, err}
	}()
	return ch
}

func waitReceived(t *testing.T, ch <-chan received) received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no datagram within 5 s")
		return received{}
	}
}

func TestUDPPair(t *testing.T) {
	a, b := loopbackPair(t, "lan")
	if a.Name() != "lan" {
		t.Fatalf("name %q", a.Name())
	}
	sendBoth(t, a, b)
}

// sendBoth sends a short and a longest datagram from a to b and checks
// what arrives and whence.
func sendBoth(t *testing.T, a, b *UDP) {
	t.Helper()
	for i, m := range [][]byte{[]byte("one"), bytes.Repeat([]byte{0xa5}, MaxMessageSize)} {
		ch := receiveAsync(b)
		if err := a.Send(m); err != nil {
			t.Fatal(err)
		}
		r := waitReceived(t, ch)
		if r.err != nil || !bytes.Equal(r.msg, m) {
			t.Fatalf("datagram %d: got %d bytes, %v", i, len(r.msg), r.err)
		}
		if r.from != a.LocalAddr().String() {
			t.Errorf("from %q, want %v", r.from, a.LocalAddr())
		}
	}
}

func TestUDPDialUnicastLoopback(t *testing.T) {
	// One socket on 127.0.0.1 whose peer is itself: the real dial path,
	// with a port found free a moment before.
	probe := listenLoopback(t)
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	u, err := DialUDP(UDPConfig{Local: loopback, Peer: loopback, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if u.Name() != "udp" || u.Destination().String() != probe.LocalAddr().String() {
		t.Fatalf("name %q, destination %v", u.Name(), u.Destination())
	}
	ch := receiveAsync(u)
	if err := u.Send([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if r := waitReceived(t, ch); r.err != nil || string(r.msg) != "ping" {
		t.Fatalf("got %q, %v", r.msg, r.err)
	}
}

func TestUDPCloseUnblocksReceive(t *testing.T) {
	a, _ := loopbackPair(t, "udp")
	ch := receiveAsync(a)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	r := waitReceived(t, ch)
	if !errors.Is(r.err, net.ErrClosed) {
		t.Fatalf("Receive after Close: %v, want net.ErrClosed", r.err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestUDPOversized(t *testing.T) {
	a, b := loopbackPair(t, "udp")
	if err := a.Send(make([]byte, MaxMessageSize+1)); err == nil || !strings.Contains(err.Error(), "limit 1386") {
		t.Fatalf("oversized Send: %v", err)
	}
	// A datagram larger than any message arrives cut, one byte over the
	// limit, so the decoder rejects it.
	raw := listenLoopback(t)
	defer raw.Close()
	ch := receiveAsync(b)
	if _, err := raw.WriteTo(make([]byte, 4000), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	r := waitReceived(t, ch)
	if r.err != nil || len(r.msg) != MaxMessageSize+1 {
		t.Fatalf("got %d bytes, %v", len(r.msg), r.err)
	}
}

func TestDialUDPRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  UDPConfig
		want string
	}{
		{"no local", UDPConfig{Peer: loopback}, "no local address"},
		{"no peer", UDPConfig{Local: loopback}, "no peer address"},
		{"mixed families", UDPConfig{Local: loopback, Peer: netip.MustParseAddr("::1")}, "different families"},
		{"port", UDPConfig{Local: loopback, Peer: loopback, Port: 70000}, "port 70000 out of range"},
		{"mode", UDPConfig{Mode: 9}, "unknown mode"},
		{"group not multicast", UDPConfig{Mode: Multicast, Group: loopback}, "not a multicast address"},
		{"no interface", UDPConfig{Mode: Multicast, Group: netip.MustParseAddr("239.255.0.1")}, "neither interface nor local address"},
		{"missing interface", UDPConfig{Mode: Broadcast, Interface: "tandem-none0"}, "interface tandem-none0"},
		{"address not here", UDPConfig{Mode: Broadcast, Local: netip.MustParseAddr("127.1.2.3")}, "no interface holds local address 127.1.2.3"},
		{"broadcast on IPv6", UDPConfig{Mode: Broadcast, Local: netip.MustParseAddr("::1")}, "broadcast needs IPv4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := DialUDP(tc.cfg)
			if err == nil {
				u.Close()
				t.Fatal("dialled")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "heartbeat: ") {
				t.Fatalf("got %q, want %q", err, tc.want)
			}
		})
	}
}

func TestUDPMode(t *testing.T) {
	for _, m := range []UDPMode{Unicast, Multicast, Broadcast} {
		got, err := ParseUDPMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseUDPMode(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseUDPMode("anycast"); err == nil || !strings.Contains(err.Error(), `"anycast"`) {
		t.Errorf("ParseUDPMode(anycast): %v", err)
	}
}

func TestBroadcastOfLoopback(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no lo interface:", err)
	}
	got, err := broadcastOf(lo, loopback)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr("127.255.255.255"); got != want {
		t.Fatalf("broadcast of 127.0.0.1/8 is %v, want %v", got, want)
	}
	if _, err := broadcastOf(lo, netip.MustParseAddr("127.9.9.9")); err == nil {
		t.Fatal("found a subnet for an address lo does not hold")
	}
}
