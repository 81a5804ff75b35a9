package quorum

import (
	"errors"
	"testing"
)

func TestReadSlotAndMailbox(t *testing.T) {
	path := initImage(t, testParams)
	d, err := Open(path, Options{Cluster: "filer"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.WriteSlot(1, &Slot{Generation: 3, Counter: 42, AckFrom: NoSlot}); err != nil {
		t.Fatal(err)
	}
	msg := Message{Kind: MsgReset, From: "beta", To: "alpha", Sequence: 7}
	if err := d.WriteMessage(msg); err != nil {
		t.Fatal(err)
	}
	// alpha polls beta's slot (sector 3) and its own mailbox (sector 2);
	// beta polls alpha's slot (1) and its own mailbox (4).
	s, mb, serr, merr, err := d.ReadSlotAndMailbox(1, 0)
	if err != nil || serr != nil || merr != nil {
		t.Fatal(err, serr, merr)
	}
	if s.Counter != 42 || s.Generation != 3 {
		t.Errorf("slot = %+v", s)
	}
	if got := d.MessageOf(0, mb); got != msg {
		t.Errorf("mailbox = %v, want %v", got, msg)
	}
	s, mb, serr, merr, err = d.ReadSlotAndMailbox(0, 1)
	if err != nil || serr != nil || merr != nil {
		t.Fatal(err, serr, merr)
	}
	if s.Counter != 0 || mb.Kind != MsgNone {
		t.Errorf("alpha's slot %+v, beta's mailbox %+v", s, mb)
	}

	// A torn mailbox does not spoil the slot read with it.
	poke(t, path, MailboxSector(0)*int64(d.Header().SectorSize)+20, []byte{0xff, 0xee})
	s, _, serr, merr, err = d.ReadSlotAndMailbox(1, 0)
	var se *SectorError
	if err != nil || serr != nil || !errors.As(merr, &se) || se.Device != path {
		t.Fatalf("torn mailbox: err %v, slot %v, mailbox %v", err, serr, merr)
	}
	if s.Counter != 42 {
		t.Errorf("slot beside a torn mailbox = %+v", s)
	}
	if _, _, _, _, err := d.ReadSlotAndMailbox(2, 0); err == nil {
		t.Error("slot 2 of a two-node disk read")
	}
}

// With the largest sectors the span of beta's poll (sectors 1 to 4) is
// more than one I/O carries: the slot and the mailbox are read apart.
func TestReadSlotAndMailboxLargeSectors(t *testing.T) {
	for _, size := range []int{16 << 10, 32 << 10, MaxSectorSize} {
		p := testParams
		p.SectorSize = size
		d, err := Open(initImage(t, p), Options{Cluster: "filer"})
		if err != nil {
			t.Fatal(err)
		}
		msg := Message{Kind: MsgReset, From: "alpha", To: "beta", Sequence: 9}
		if err := d.WriteSlot(0, &Slot{Generation: 5, Counter: 7, AckFrom: NoSlot}); err != nil {
			t.Fatal(err)
		}
		if err := d.WriteMessage(msg); err != nil {
			t.Fatal(err)
		}
		for _, poll := range [][2]int{{0, 1}, {1, 0}} {
			s, mb, serr, merr, err := d.ReadSlotAndMailbox(poll[0], poll[1])
			if err != nil || serr != nil || merr != nil {
				t.Fatalf("%d-byte sectors, slot %d and mailbox %d: %v, %v, %v", size, poll[0], poll[1], err, serr, merr)
			}
			if poll[0] == 0 && (s.Counter != 7 || d.MessageOf(1, mb) != msg) {
				t.Errorf("%d-byte sectors: slot %+v, mailbox %v", size, s, d.MessageOf(1, mb))
			}
		}
		d.Close()
	}
}
