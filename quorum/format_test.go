package quorum

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testHeader(size int) *Header {
	return &Header{
		SectorSize: size, Cluster: "filer", Nodes: []string{"alpha", "beta"},
		Interval: 200 * time.Millisecond, Watchdog: 5 * time.Second, Lease: 3 * time.Second, MsgWait: 10 * time.Second,
		CreationID: 0x0123456789abcdef,
	}
}

// must returns an encoding that a test expects to succeed.
func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// reseal recomputes the CRC after a test changed a field.
func reseal(b []byte) []byte {
	n := len(b) - crcLen
	binary.BigEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
	return b
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, size := range []int{512, 4096, MaxSectorSize} {
		for _, nodes := range [][]string{{"alpha", "beta"}, {"a", "b", "c", strings.Repeat("n", MaxNameLen)}} {
			h := testHeader(size)
			h.Nodes = nodes
			b := must(h.Marshal())
			if len(b) != size {
				t.Fatalf("header of %d bytes, want %d", len(b), size)
			}
			got, err := DecodeHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, h) {
				t.Errorf("got %+v, want %+v", got, h)
			}
		}
	}
}

func TestSlotAndMailboxRoundTrip(t *testing.T) {
	h := testHeader(512)
	for _, s := range []*Slot{
		{AckFrom: NoSlot},
		{Generation: 7, Counter: 1 << 40, Role: RoleActive, Flags: FlagLease, AckKind: MsgReset, AckFrom: 0, AckSequence: 3,
			Payload: bytes.Repeat([]byte{0xa5}, MaxPayload(512))},
	} {
		b := must(h.MarshalSlot(1, s))
		got, err := h.DecodeSlot(1, b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Payload == nil {
			got.Payload = s.Payload
		}
		if len(got.Payload) == 0 && len(s.Payload) == 0 {
			got.Payload = s.Payload
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("got %+v, want %+v", got, s)
		}
	}
	for _, m := range []*Mailbox{{From: NoSlot}, {Kind: MsgOff, From: 1, Sequence: 42}} {
		b := must(h.MarshalMailbox(0, m))
		got, err := h.DecodeMailbox(0, b)
		if err != nil {
			t.Fatal(err)
		}
		if *got != *m {
			t.Errorf("got %+v, want %+v", got, m)
		}
	}
}

func TestMarshalRejects(t *testing.T) {
	h := testHeader(512)
	for name, f := range map[string]func() error{
		"payload":      func() error { _, err := h.MarshalSlot(0, &Slot{Payload: make([]byte, MaxPayload(512)+1)}); return err },
		"slot index":   func() error { _, err := h.MarshalSlot(2, &Slot{AckFrom: NoSlot}); return err },
		"flags":        func() error { _, err := h.MarshalSlot(0, &Slot{Flags: 0x80, AckFrom: NoSlot}); return err },
		"ack from":     func() error { _, err := h.MarshalSlot(0, &Slot{AckFrom: 2}); return err },
		"ack kind":     func() error { _, err := h.MarshalSlot(0, &Slot{AckKind: 9, AckFrom: NoSlot}); return err },
		"message kind": func() error { _, err := h.MarshalMailbox(0, &Mailbox{Kind: 3, From: 1}); return err },
		"sender":       func() error { _, err := h.MarshalMailbox(0, &Mailbox{From: 5}); return err },
		"sector size": func() error {
			h := testHeader(1000)
			_, err := h.Marshal()
			return err
		},
		"one node": func() error {
			h := testHeader(512)
			h.Nodes = h.Nodes[:1]
			_, err := h.Marshal()
			return err
		},
		"twice": func() error {
			h := testHeader(512)
			h.Nodes = []string{"a", "a"}
			_, err := h.Marshal()
			return err
		},
		"interval": func() error {
			h := testHeader(512)
			h.Interval = 1500 * time.Microsecond
			_, err := h.Marshal()
			return err
		},
		"long name": func() error {
			h := testHeader(512)
			h.Cluster = strings.Repeat("x", MaxNameLen+1)
			_, err := h.Marshal()
			return err
		},
	} {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// wantSectorError checks the class, field and offset of a decode error.
func wantSectorError(t *testing.T, name string, err error, class error, field string, off int) {
	t.Helper()
	var se *SectorError
	if !errors.As(err, &se) {
		t.Errorf("%s: error %v is not a *SectorError", name, err)
		return
	}
	if !errors.Is(err, class) || se.Field != field || se.Offset != off {
		t.Errorf("%s: got %v (field %q at %d), want %v in field %q at byte %d", name, err, se.Field, se.Offset, class, field, off)
	}
}

func TestDecodeHeaderErrors(t *testing.T) {
	h := testHeader(512)
	good := must(h.Marshal())
	for _, tc := range []struct {
		name   string
		edit   func(b []byte) []byte
		class  error
		field  string
		offset int
	}{
		{"short", func(b []byte) []byte { return b[:20] }, ErrTruncated, "sector", 20},
		{"cut", func(b []byte) []byte { return b[:256] }, ErrTruncated, "sector", 256},
		{"zeroes", func(b []byte) []byte { return make([]byte, 512) }, ErrMagic, "magic", 0},
		{"sbd", func(b []byte) []byte { copy(b, "SBD_SECT"); return b }, ErrMagic, "magic", 0},
		{"sector size", func(b []byte) []byte { binary.BigEndian.PutUint32(b[24:], 1000); return b }, ErrField, "sector size", 24},
		{"larger sector", func(b []byte) []byte { binary.BigEndian.PutUint32(b[24:], 1024); return b }, ErrTruncated, "sector", 512},
		{"bit flip", func(b []byte) []byte { b[60] ^= 0x04; return b }, ErrChecksum, "crc32c", 508},
		{"torn", func(b []byte) []byte { copy(b[256:], make([]byte, 256)); return b }, ErrChecksum, "crc32c", 508},
		{"version", func(b []byte) []byte { b[9] = 2; return reseal(b) }, ErrVersion, "version", 8},
		{"kind", func(b []byte) []byte { b[10] = byte(KindSlot); return reseal(b) }, ErrMisplaced, "kind", 10},
		{"index", func(b []byte) []byte { b[11] = 1; return reseal(b) }, ErrMisplaced, "index", 11},
		{"reserved", func(b []byte) []byte { b[13] = 1; return reseal(b) }, ErrField, "reserved", 13},
		{"creation", func(b []byte) []byte { copy(b[16:24], make([]byte, 8)); return reseal(b) }, ErrField, "creation id", 16},
		{"slot count", func(b []byte) []byte { b[28] = 9; return reseal(b) }, ErrField, "slot count", 28},
		{"header pad", func(b []byte) []byte { b[30] = 1; return reseal(b) }, ErrField, "reserved", 30},
		{"interval", func(b []byte) []byte { copy(b[32:36], make([]byte, 4)); return reseal(b) }, ErrField, "interval", 32},
		{"cluster length", func(b []byte) []byte { b[48] = 0; return reseal(b) }, ErrField, "cluster name length", 48},
		{"cluster NUL", func(b []byte) []byte { b[50] = 0; return reseal(b) }, ErrField, "cluster name", 50},
		{"cluster pad", func(b []byte) []byte { b[60] = 'x'; return reseal(b) }, ErrField, "cluster name padding", 60},
		{"pad 2", func(b []byte) []byte { b[115] = 1; return reseal(b) }, ErrField, "reserved", 115},
		{"node length", func(b []byte) []byte { b[196] = 65; return reseal(b) }, ErrField, "node 1 name length", 196},
		{"node twice", func(b []byte) []byte { b[196] = 5; copy(b[197:], "alpha"); return reseal(b) }, ErrField, "node 1 name", 197},
		{"node reserved", func(b []byte) []byte { b[120+66] = 1; return reseal(b) }, ErrField, "node 0 reserved", 186},
		{"slot sector", func(b []byte) []byte { b[120+71] = 5; return reseal(b) }, ErrField, "node 0 slot sector", 188},
		{"mailbox sector", func(b []byte) []byte { b[196+75] = 9; return reseal(b) }, ErrField, "node 1 mailbox sector", 268},
		{"padding", func(b []byte) []byte { b[400] = 1; return reseal(b) }, ErrField, "padding", 400},
	} {
		_, err := DecodeHeader(tc.edit(bytes.Clone(good)))
		wantSectorError(t, tc.name, err, tc.class, tc.field, tc.offset)
	}
	_, err := DecodeHeader(good[:20])
	if !strings.HasPrefix(err.Error(), "quorum: sector 0 (header): field sector at byte 20: truncated sector") {
		t.Errorf("message %q", err)
	}
}

func TestDecodeSlotErrors(t *testing.T) {
	h := testHeader(512)
	s := &Slot{Generation: 3, Counter: 99, Role: RoleActive, AckFrom: NoSlot, Payload: []byte("signed heartbeat")}
	good := must(h.MarshalSlot(1, s))
	other := must(h.MarshalSlot(1, &Slot{Generation: 3, Counter: 100, AckFrom: NoSlot, Payload: bytes.Repeat([]byte{7}, 400)}))
	slot0 := must(h.MarshalSlot(0, s))
	box := must(h.MarshalMailbox(1, &Mailbox{From: NoSlot}))
	foreign := *h
	foreign.CreationID++
	stale := must(foreign.MarshalSlot(1, s))
	for _, tc := range []struct {
		name   string
		b      []byte
		class  error
		field  string
		offset int
	}{
		{"torn", append(bytes.Clone(other[:256]), good[256:]...), ErrChecksum, "crc32c", 508},
		{"bit flip", func() []byte { b := bytes.Clone(good); b[70] ^= 1; return b }(), ErrChecksum, "crc32c", 508},
		{"never written", make([]byte, 512), ErrMagic, "magic", 0},
		{"other slot", slot0, ErrMisplaced, "index", 11},
		{"mailbox", box, ErrMisplaced, "kind", 10},
		{"earlier init", stale, ErrForeign, "creation id", 16},
		{"role", reseal(func() []byte { b := bytes.Clone(good); b[40] = 6; return b }()), ErrField, "role", 40},
		{"flags", reseal(func() []byte { b := bytes.Clone(good); b[41] = 0x10; return b }()), ErrField, "flags", 41},
		{"ack kind", reseal(func() []byte { b := bytes.Clone(good); b[42] = 3; return b }()), ErrField, "ack kind", 42},
		{"ack from", reseal(func() []byte { b := bytes.Clone(good); b[43] = 2; return b }()), ErrField, "ack from", 43},
		{"reserved", reseal(func() []byte { b := bytes.Clone(good); b[46] = 2; return b }()), ErrField, "reserved", 46},
		{"payload length", reseal(func() []byte { b := bytes.Clone(good); binary.BigEndian.PutUint16(b[56:], 451); return b }()), ErrField, "payload length", 56},
		{"padding", reseal(func() []byte { b := bytes.Clone(good); b[500] = 1; return b }()), ErrField, "padding", 500},
		{"short", good[:511], ErrTruncated, "sector", 511},
		{"long", append(bytes.Clone(good), 0), ErrField, "sector", 512},
	} {
		_, err := h.DecodeSlot(1, tc.b)
		wantSectorError(t, tc.name, err, tc.class, tc.field, tc.offset)
		var se *SectorError
		if errors.As(err, &se) && (se.Sector != 3 || se.Kind != KindSlot || se.Index != 1) {
			t.Errorf("%s: sector %d %v %d, want sector 3, slot 1", tc.name, se.Sector, se.Kind, se.Index)
		}
	}
	b := bytes.Clone(good)
	b[70] ^= 1
	_, err := h.DecodeSlot(1, b)
	if want := "quorum: sector 3 (slot 1): field crc32c at byte 508: checksum mismatch: stored 0x"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q, want it to start %q", err, want)
	}
}

func TestDecodeMailboxErrors(t *testing.T) {
	h := testHeader(512)
	good := must(h.MarshalMailbox(0, &Mailbox{Kind: MsgOff, From: 1, Sequence: 5}))
	edit := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return reseal(b) }
	for _, tc := range []struct {
		name   string
		b      []byte
		class  error
		field  string
		offset int
	}{
		{"bit flip", func() []byte { b := bytes.Clone(good); b[33] ^= 0x80; return b }(), ErrChecksum, "crc32c", 508},
		{"kind", edit(func(b []byte) { b[24] = 4 }), ErrField, "message kind", 24},
		{"sender", edit(func(b []byte) { b[25] = 3 }), ErrField, "sender", 25},
		{"reserved", edit(func(b []byte) { b[31] = 3 }), ErrField, "reserved", 31},
		{"padding", edit(func(b []byte) { b[40] = 3 }), ErrField, "padding", 40},
		{"slot", must(h.MarshalSlot(0, &Slot{AckFrom: NoSlot})), ErrMisplaced, "kind", 10},
	} {
		_, err := h.DecodeMailbox(0, tc.b)
		wantSectorError(t, tc.name, err, tc.class, tc.field, tc.offset)
	}
}

func TestNames(t *testing.T) {
	for r := RoleUnknown; r <= RoleFencing; r++ {
		if ParseRole(r.String()) != r {
			t.Errorf("role %v does not parse back", r)
		}
	}
	if ParseRole("dead") != RoleUnknown || Role(9).String() != "role 0x09" {
		t.Error("unknown roles")
	}
	if MsgOff.String() != "off" || MsgReset.String() != "reset" || MsgNone.String() != "none" || KindMailbox.String() != "mailbox" {
		t.Error("names")
	}
}
