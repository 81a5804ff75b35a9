package failover

import (
	"errors"
	"reflect"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	h := Header{From: 7, To: 3}
	for _, m := range []Message{
		Report{Header: h, Seq: 1, Epoch: 4, MaintenanceVersion: 2, Role: RoleActive, Owner: true, Eligible: true, Releasing: true, Maintenance: true},
		Report{Header: Header{From: 1}, Seq: 1 << 60, Role: RoleUnknown, Quiescent: true, Eligible: true},
		Release{Header: h, Epoch: 9},
		ReleaseAck{Header: h, Epoch: 9},
		Request{Header: h, Epoch: 1},
		Refusal{Header: h, Epoch: 2, Reason: RefusedMaintenance},
		Refusal{Header: h, Epoch: 2, Reason: RefusedUnfit},
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if b[0] != WireVersion || MessageType(b[1]) != m.Type() {
			t.Errorf("%+v: header bytes % x", m, b[:2])
		}
		got, err := UnmarshalMessage(b)
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func TestMessageSizes(t *testing.T) {
	for _, c := range []struct {
		m    Message
		size int
	}{
		{Report{Header: Header{From: 1}, Seq: 1}, 44},
		{Release{Header: Header{From: 1, To: 2}, Epoch: 1}, 26},
		{Refusal{Header: Header{From: 1, To: 2}, Epoch: 1, Reason: RefusedUnfit}, 27},
	} {
		b, err := c.m.MarshalBinary()
		if err != nil || len(b) != c.size {
			t.Errorf("%v: %d bytes, %v; want %d", c.m.Type(), len(b), err, c.size)
		}
	}
}

func TestMarshalRejectsInvalid(t *testing.T) {
	for _, m := range []Message{
		Report{Seq: 1}, // no sender
		Report{Header: Header{From: 1}, Role: RoleDead}, // a role never sent
		Release{Header: Header{From: 1}, Epoch: 1},      // no addressee
		Release{Header: Header{From: 1, To: 2}},         // epoch 0
		Request{Header: Header{To: 2}, Epoch: 1},        // no sender
		Refusal{Header: Header{From: 1, To: 2}, Epoch: 1},
	} {
		if b, err := m.MarshalBinary(); err == nil {
			t.Errorf("%+v: encoded as % x, want an error", m, b)
		}
	}
}

func TestUnmarshalStrict(t *testing.T) {
	good := func(m Message) []byte {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	report := good(Report{Header: Header{From: 1, To: 2}, Seq: 5, Role: RoleStandby, Quiescent: true})
	release := good(Release{Header: Header{From: 1, To: 2}, Epoch: 3})
	refusal := good(Refusal{Header: Header{From: 1, To: 2}, Epoch: 3, Reason: RefusedUnfit})
	edit := func(b []byte, i int, v byte) []byte {
		c := append([]byte(nil), b...)
		c[i] = v
		return c
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"one byte", []byte{1}},
		{"unknown type", []byte{1, 99, 0}},
		{"version", edit(report, 0, 2)},
		{"short report", report[:len(report)-1]},
		{"long report", append(append([]byte(nil), report...), 0)},
		{"zero sender", edit(edit(report, 9, 0), 2, 0)},
		{"role", edit(report, 42, byte(RoleDead))},
		{"unknown flag", edit(report, 43, 0x80)},
		{"owner and quiescent", edit(report, 43, flagOwner|flagQuiescent)},
		{"report seq 0", edit(report, 25, 0)},
		{"short release", release[:20]},
		{"release to nobody", edit(release, 17, 0)},
		{"release epoch 0", edit(release, 25, 0)},
		{"refusal reason", edit(refusal, 26, 9)},
		{"refusal cut", refusal[:26]},
	} {
		m, err := UnmarshalMessage(c.b)
		if err == nil {
			t.Errorf("%s: decoded %+v, want an error", c.name, m)
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v does not wrap ErrMalformed", c.name, err)
		}
	}
	// The per-type decoders check the type byte too.
	var r Release
	if err := r.UnmarshalBinary(good(ReleaseAck{Header: Header{From: 1, To: 2}, Epoch: 3})); err == nil {
		t.Error("a ReleaseAck decoded as a Release")
	}
}

func FuzzUnmarshalMessage(f *testing.F) {
	for _, m := range []Message{
		Report{Header: Header{From: 1, To: 2}, Seq: 5, Role: RoleStandby, Quiescent: true},
		Release{Header: Header{From: 1, To: 2}, Epoch: 3},
		Refusal{Header: Header{From: 1, To: 2}, Epoch: 3, Reason: RefusedUnfit},
	} {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := UnmarshalMessage(b)
		if err != nil {
			return
		}
		// Whatever decodes encodes back to the same bytes.
		again, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if string(again) != string(b) {
			t.Fatalf("% x decoded to %+v, which encodes as % x", b, m, again)
		}
	})
}
