package quorum

import (
	"bytes"
	"errors"
	"testing"
)

// checkRejection asserts that a decode error is a *SectorError pointing
// inside (or just past) the input.
func checkRejection(t *testing.T, b []byte, err error) {
	t.Helper()
	var se *SectorError
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not a *SectorError", err)
	}
	if se.Offset < 0 || se.Offset > len(b) || se.Field == "" || se.Err == nil {
		t.Fatalf("error %v: offset %d outside %d bytes of input, or no field", err, se.Offset, len(b))
	}
}

// FuzzDecodeHeader feeds arbitrary bytes to the header decoder: it must
// never panic, reject with a *SectorError, and re-encode whatever it
// accepts to the same bytes. The seed corpus in testdata/fuzz runs with
// every go test.
func FuzzDecodeHeader(f *testing.F) {
	f.Add(must(testHeader(512).Marshal()))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHeader(b)
		if err != nil {
			checkRejection(t, b, err)
			return
		}
		again, err := h.Marshal()
		if err != nil {
			t.Fatalf("accepted %+v but cannot re-encode it: %v", h, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("accepted header does not re-encode to itself")
		}
	})
}

// FuzzDecodeSlot does the same for status slots of a 512-byte layout.
func FuzzDecodeSlot(f *testing.F) {
	h := testHeader(512)
	f.Add(must(h.MarshalSlot(1, &Slot{Generation: 2, Counter: 9, Role: RoleActive, Flags: FlagLease, AckFrom: NoSlot, Payload: []byte("tndm")})))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := h.DecodeSlot(1, b)
		if err != nil {
			checkRejection(t, b, err)
			return
		}
		again, err := h.MarshalSlot(1, s)
		if err != nil {
			t.Fatalf("accepted %+v but cannot re-encode it: %v", s, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("accepted slot does not re-encode to itself")
		}
	})
}

// FuzzDecodeMailbox does the same for mailboxes of a 512-byte layout.
func FuzzDecodeMailbox(f *testing.F) {
	h := testHeader(512)
	f.Add(must(h.MarshalMailbox(0, &Mailbox{Kind: MsgOff, From: 1, Sequence: 3})))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := h.DecodeMailbox(0, b)
		if err != nil {
			checkRejection(t, b, err)
			return
		}
		again, err := h.MarshalMailbox(0, m)
		if err != nil {
			t.Fatalf("accepted %+v but cannot re-encode it: %v", m, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("accepted mailbox does not re-encode to itself")
		}
	})
}
