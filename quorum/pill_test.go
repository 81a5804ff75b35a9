package quorum

import (
	"errors"
	"strings"
	"testing"
)

func openImage(t *testing.T, path string) *Disk {
	t.Helper()
	d, err := Open(path, Options{Cluster: "filer"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestMessageRoundTrip(t *testing.T) {
	path := initImage(t, testParams)
	d := openImage(t, path)

	m, err := d.ReadMessage("beta")
	if err != nil || m != (Message{To: "beta"}) {
		t.Fatalf("fresh mailbox: %+v, %v", m, err)
	}
	if m.String() != "no message for beta" {
		t.Errorf("String: %q", m)
	}
	pill := Message{Kind: MsgReset, From: "alpha", To: "beta", Sequence: 7}
	if err := d.WriteMessage(pill); err != nil {
		t.Fatal(err)
	}
	// A second handle reads what the first wrote, as the other node does.
	other := openImage(t, path)
	if m, err := other.ReadMessage("beta"); err != nil || m != pill {
		t.Fatalf("read back: %+v, %v", m, err)
	}
	if m, err := other.ReadMessage("alpha"); err != nil || m.Kind != MsgNone {
		t.Fatalf("alpha's mailbox: %+v, %v", m, err)
	}
	if pill.String() != "reset #7 from alpha to beta" {
		t.Errorf("String: %q", pill)
	}

	// Nothing acknowledged yet; beta acknowledges, keeping its slot.
	if err := d.WriteSlot(1, &Slot{Generation: 3, Counter: 41, Role: RoleActive, Flags: FlagLease, AckFrom: NoSlot, Payload: []byte("hb")}); err != nil {
		t.Fatal(err)
	}
	if ack, cnt, err := d.ReadAck("beta"); err != nil || ack.Kind != MsgNone || cnt != 41 {
		t.Fatalf("before ack: %+v, %d, %v", ack, cnt, err)
	}
	if err := other.Acknowledge(pill); err != nil {
		t.Fatal(err)
	}
	ack, cnt, err := d.ReadAck("beta")
	if err != nil || ack != pill || cnt != 41 {
		t.Fatalf("after ack: %+v, %d, %v", ack, cnt, err)
	}
	s, err := d.ReadSlot(1)
	if err != nil || s.Generation != 3 || s.Role != RoleActive || s.Flags != FlagLease || string(s.Payload) != "hb" {
		t.Errorf("the acknowledgement changed the rest of the slot: %+v, %v", s, err)
	}

	// Clear keeps the sequence and says what it removed.
	c, err := d.ClearMailbox("beta")
	if err != nil || c.Previous != pill || !c.Acknowledged || c.Unreadable != nil {
		t.Fatalf("clear: %+v, %v", c, err)
	}
	if m, err := d.ReadMessage("beta"); err != nil || m != (Message{To: "beta", Sequence: 7}) {
		t.Fatalf("after clear: %+v, %v", m, err)
	}
	c, err = d.ClearMailbox("beta")
	if err != nil || c.Previous.Kind != MsgNone || c.Acknowledged {
		t.Fatalf("clearing an empty mailbox: %+v, %v", c, err)
	}
}

func TestMessageRefusals(t *testing.T) {
	path := initImage(t, testParams)
	d := openImage(t, path)
	for _, tc := range []struct {
		m    Message
		want string
	}{
		{Message{Kind: MsgReset, From: "alpha", To: "gamma"}, `quorum: ` + path + `: no node "gamma": the header names alpha, beta`},
		{Message{Kind: MsgReset, From: "gamma", To: "beta"}, `no node "gamma"`},
		{Message{Kind: MsgNone, From: "alpha", To: "beta"}, "quorum: " + path + ": sector 4 (mailbox of beta): write: message kind none: want off or reset"},
		{Message{Kind: MsgOff, From: "beta", To: "beta"}, "sector 4 (mailbox of beta): write: a message from beta to itself"},
	} {
		if err := d.WriteMessage(tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.m, err, tc.want)
		}
	}
	if err := d.Acknowledge(Message{Kind: MsgNone, From: "alpha", To: "beta"}); err == nil || !strings.Contains(err.Error(), "sector 3 (slot of beta): write: cannot acknowledge none") {
		t.Errorf("acknowledging nothing: %v", err)
	}
	if _, err := d.ReadMessage("gamma"); err == nil || !strings.Contains(err.Error(), `no node "gamma"`) {
		t.Errorf("unknown node: %v", err)
	}
	if m, _ := d.ReadMessage("beta"); m.Kind != MsgNone {
		t.Errorf("a refused write changed the mailbox: %+v", m)
	}
}

func TestMessageCorruptSectors(t *testing.T) {
	path := initImage(t, testParams)
	d := openImage(t, path)
	if err := d.WriteMessage(Message{Kind: MsgOff, From: "alpha", To: "beta", Sequence: 5}); err != nil {
		t.Fatal(err)
	}
	// A bit flip in beta's mailbox (sector 4).
	poke(t, path, 4*4096+100, []byte{0x40})
	_, err := d.ReadMessage("beta")
	var ne *NodeError
	if !errors.As(err, &ne) || !errors.Is(err, ErrChecksum) || ne.Node != "beta" || ne.Sector != 4 || ne.Kind != KindMailbox {
		t.Fatalf("corrupt mailbox: %v", err)
	}
	want := "quorum: " + path + ": sector 4 (mailbox of beta): read: field crc32c at byte 4092: checksum mismatch: stored 0x"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error\n%v\nwant prefix\n%s", err, want)
	}

	// Clear overwrites it, numbering after beta's acknowledgement.
	if err := d.Acknowledge(Message{Kind: MsgOff, From: "alpha", To: "beta", Sequence: 5}); err != nil {
		t.Fatal(err)
	}
	c, err := d.ClearMailbox("beta")
	if err != nil || c.Unreadable == nil || !errors.Is(c.Unreadable, ErrChecksum) || c.Previous.Kind != MsgNone || c.Acknowledged {
		t.Fatalf("clear of a corrupt mailbox: %+v, %v", c, err)
	}
	if m, err := d.ReadMessage("beta"); err != nil || m != (Message{To: "beta", Sequence: 5}) {
		t.Fatalf("after clear: %+v, %v", m, err)
	}

	// A torn status slot (sector 3): nothing to acknowledge into, and the
	// slot is left as it is.
	poke(t, path, 3*4096+10, []byte{0x09})
	err = d.Acknowledge(Message{Kind: MsgOff, From: "alpha", To: "beta", Sequence: 6})
	if !errors.As(err, &ne) || ne.Sector != 3 || ne.Kind != KindSlot ||
		!strings.HasPrefix(err.Error(), "quorum: "+path+": sector 3 (slot of beta): read: field ") {
		t.Errorf("acknowledge into a corrupt slot: %v", err)
	}
	if _, _, err := d.ReadAck("beta"); !errors.As(err, &ne) || ne.Sector != 3 {
		t.Errorf("read ack of a corrupt slot: %v", err)
	}

	// The sender's slot index must name a node of the disk.
	h := d.Header()
	b, err := h.MarshalMailbox(0, &Mailbox{Kind: MsgOff, From: 1, Sequence: 2})
	if err != nil {
		t.Fatal(err)
	}
	poke(t, path, 2*4096, b)
	if m, err := d.ReadMessage("alpha"); err != nil || m != (Message{Kind: MsgOff, From: "beta", To: "alpha", Sequence: 2}) {
		t.Fatalf("alpha's mailbox: %+v, %v", m, err)
	}
}

func TestNodeErrorIO(t *testing.T) {
	path := initImage(t, testParams)
	d := openImage(t, path)
	d.Close()
	err := d.WriteMessage(Message{Kind: MsgOff, From: "alpha", To: "beta", Sequence: 1})
	want := "quorum: " + path + ": sector 4 (mailbox of beta): write: file already closed"
	if err == nil || err.Error() != want {
		t.Errorf("write on a closed disk:\n%v\nwant\n%s", err, want)
	}
}
