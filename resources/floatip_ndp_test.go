package resources

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// fakeNDPConn records what is written to it.
type fakeNDPConn struct {
	sent     [][]byte
	dsts     []netip.Addr
	deadline time.Time
	closed   bool
}

func (c *fakeNDPConn) WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error {
	b, err := ndp.MarshalMessage(m)
	if err != nil {
		return err
	}
	c.sent = append(c.sent, b)
	c.dsts = append(c.dsts, dst)
	return nil
}

func (c *fakeNDPConn) SetWriteDeadline(t time.Time) error { c.deadline = t; return nil }
func (c *fakeNDPConn) Close() error                       { c.closed = true; return nil }

func TestUnsolicitedNA(t *testing.T) {
	c := &fakeNDPConn{}
	ip := netip.MustParseAddr("2001:2::50")
	u := newUnsolicitedNA(c, hw, ip)
	before := time.Now()
	for range 2 {
		if err := u.announce(); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.sent) != 2 {
		t.Fatalf("%d messages sent, want one per round", len(c.sent))
	}
	want := []byte{
		136, 0, 0, 0, // ICMPv6 neighbour advertisement; the kernel fills the checksum
		0x20, 0, 0, 0, // flags: override only (not router, not solicited)
		0x20, 0x01, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, // target: the floating address
		2, 1, 0x02, 0, 0, 0, 0, 1, // option 2, target link-layer address, 8 bytes: the MAC
	}
	if !bytes.Equal(c.sent[0], want) {
		t.Errorf("NA\n% x\nwant\n% x", c.sent[0], want)
	}
	if c.dsts[0] != netip.MustParseAddr("ff02::1") {
		t.Errorf("sent to %v, want all nodes, ff02::1", c.dsts[0])
	}
	if c.deadline.Before(before) || c.deadline.After(time.Now().Add(announceWriteTimeout)) {
		t.Errorf("write deadline %v, want within %v", c.deadline, announceWriteTimeout)
	}
	// What a neighbour parses.
	m, err := ndp.ParseMessage(c.sent[1])
	if err != nil {
		t.Fatal(err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok || !na.Override || na.Solicited || na.Router || na.TargetAddress != ip || len(na.Options) != 1 {
		t.Fatalf("parsed %#v", m)
	}
	if lla, ok := na.Options[0].(*ndp.LinkLayerAddress); !ok || lla.Direction != ndp.Target || !bytes.Equal(lla.Addr, hw) {
		t.Errorf("option %#v, want the target link-layer address %v", na.Options[0], hw)
	}
	if err := u.close(); err != nil || !c.closed {
		t.Errorf("close: %v, closed %v", err, c.closed)
	}
}
