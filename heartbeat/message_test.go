package heartbeat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func testCodec(t testing.TB) *Codec {
	t.Helper()
	c, err := NewCodec("filer", testKey)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustMarshal(t testing.TB, c *Codec, m *Message) []byte {
	t.Helper()
	b, err := c.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMarshalRoundTrip(t *testing.T) {
	c := testCodec(t)
	for _, m := range []Message{
		{Type: TypeHeartbeat, Sender: "alpha", Generation: 1, Sequence: 1},
		{Type: TypeHeartbeat, Sender: "beta", Generation: 1<<64 - 1, Sequence: 1<<64 - 1, Payload: []byte("status")},
		{Type: TypeAppFirst, Sender: strings.Repeat("n", MaxNameLen), Payload: bytes.Repeat([]byte{0xff}, MaxPayload)},
		{Type: TypeAppLast, Sender: "x", Payload: []byte{}},
	} {
		b := mustMarshal(t, c, &m)
		if len(b) > MaxMessageSize {
			t.Errorf("%v: %d bytes, over MaxMessageSize %d", m.Type, len(b), MaxMessageSize)
		}
		got, err := c.Unmarshal(b)
		if err != nil {
			t.Fatalf("%v from %q: %v", m.Type, m.Sender, err)
		}
		if got.Type != m.Type || got.Sender != m.Sender || got.Generation != m.Generation ||
			got.Sequence != m.Sequence || !bytes.Equal(got.Payload, m.Payload) {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func TestMaxMessageSizeFitsOneDatagram(t *testing.T) {
	// 1500-byte MTU less the IPv6 and UDP headers.
	if MaxMessageSize > 1500-40-8 {
		t.Fatalf("MaxMessageSize %d does not fit one IPv6 datagram on a 1500-byte MTU", MaxMessageSize)
	}
	c, err := NewCodec(strings.Repeat("c", MaxNameLen), testKey)
	if err != nil {
		t.Fatal(err)
	}
	b := mustMarshal(t, c, &Message{Type: TypeAppFirst, Sender: strings.Repeat("s", MaxNameLen), Payload: make([]byte, MaxPayload)})
	if len(b) != MaxMessageSize {
		t.Fatalf("largest message is %d bytes, MaxMessageSize says %d", len(b), MaxMessageSize)
	}
}

func TestMarshalRejects(t *testing.T) {
	c := testCodec(t)
	for _, tc := range []struct {
		name string
		m    Message
		want string
	}{
		{"type zero", Message{Sender: "a"}, "cannot send type 0x00"},
		{"type between ranges", Message{Type: 0x20, Sender: "a"}, "cannot send type 0x20"},
		{"no sender", Message{Type: TypeHeartbeat}, "empty sender name"},
		{"long sender", Message{Type: TypeHeartbeat, Sender: strings.Repeat("a", 65)}, "65 bytes, limit 64"},
		{"big payload", Message{Type: TypeHeartbeat, Sender: "a", Payload: make([]byte, MaxPayload+1)}, "payload is 1201 bytes, limit 1200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Marshal(&tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNewCodecRejects(t *testing.T) {
	for _, tc := range []struct {
		cluster string
		key     []byte
		want    string
	}{
		{"", testKey, "empty cluster name"},
		{strings.Repeat("c", 65), testKey, "limit 64"},
		{"filer", []byte("short"), "key is 5 bytes, at least 16"},
		{"filer", nil, "key is 0 bytes"},
	} {
		if _, err := NewCodec(tc.cluster, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewCodec(%q, %d-byte key): got %v, want %q", tc.cluster, len(tc.key), err, tc.want)
		}
	}
}

func TestUnmarshalErrors(t *testing.T) {
	c := testCodec(t)
	// "filer" and "alpha": the cluster name is at 7..11, the sender length
	// at 12, the sender at 13..17, generation at 18, sequence at 26,
	// payload length at 34, payload at 36, MAC at 36+len(payload).
	good := mustMarshal(t, c, &Message{Type: TypeHeartbeat, Sender: "alpha", Generation: 3, Sequence: 9, Payload: []byte("hi")})
	macOff := 38
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	other, err := NewCodec("other", testKey)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := NewCodec("filer", bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		in     []byte
		class  error
		offset int
		detail string
	}{
		{"empty", nil, ErrTruncated, 0, "magic needs 4 bytes, 0 left"},
		{"three bytes", good[:3], ErrTruncated, 0, "magic needs 4 bytes, 3 left"},
		{"bad magic", mod(func(b []byte) []byte { b[0] = 'x'; return b }), ErrBadMagic, 0, "78 6e 64 6d"},
		{"no version", good[:4], ErrTruncated, 4, "version and type needs 2 bytes, 0 left"},
		{"version 2", mod(func(b []byte) []byte { b[4] = 2; return b }), ErrVersion, 4, "version 2, this node reads 1"},
		{"type 0", mod(func(b []byte) []byte { b[5] = 0; return b }), ErrType, 5, "0x00"},
		{"type 0x80", mod(func(b []byte) []byte { b[5] = 0x80; return b }), ErrType, 5, "0x80"},
		{"no cluster length", good[:6], ErrTruncated, 6, "cluster name length needs 1 bytes"},
		{"cluster length 0", mod(func(b []byte) []byte { b[6] = 0; return b }), ErrLength, 6, "cluster name length 0, want 1 to 64"},
		{"cluster length 65", mod(func(b []byte) []byte { b[6] = 65; return b }), ErrLength, 6, "cluster name length 65"},
		{"cluster cut", good[:9], ErrTruncated, 7, "cluster name needs 5 bytes, 2 left"},
		{"sender length 0", mod(func(b []byte) []byte { b[12] = 0; return b }), ErrLength, 12, "sender name length 0"},
		{"sender length 200", mod(func(b []byte) []byte { b[12] = 200; return b }), ErrLength, 12, "sender name length 200"},
		{"sender cut", good[:15], ErrTruncated, 13, "sender name needs 5 bytes, 2 left"},
		{"generation cut", good[:20], ErrTruncated, 18, "generation needs 8 bytes, 2 left"},
		{"sequence cut", good[:26], ErrTruncated, 26, "sequence needs 8 bytes, 0 left"},
		{"payload length cut", good[:35], ErrTruncated, 34, "payload length needs 2 bytes, 1 left"},
		{"payload length over bound", mod(func(b []byte) []byte { binary.BigEndian.PutUint16(b[34:], MaxPayload+1); return b }), ErrLength, 34, "payload length 1201, limit 1200"},
		{"payload length past end", mod(func(b []byte) []byte { binary.BigEndian.PutUint16(b[34:], 500); return b }), ErrTruncated, 36, "payload needs 500 bytes, 34 left"},
		{"MAC cut", good[:len(good)-1], ErrTruncated, macOff, "MAC needs 32 bytes, 31 left"},
		{"trailing bytes", append(bytes.Clone(good), 0, 0), ErrLength, len(good), "2 bytes after the MAC"},
		{"bad MAC", mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrBadMAC, macOff, `heartbeat from "alpha"`},
		{"payload flipped", mod(func(b []byte) []byte { b[36] ^= 0x20; return b }), ErrBadMAC, macOff, ""},
		{"sequence flipped", mod(func(b []byte) []byte { b[33]++; return b }), ErrBadMAC, macOff, ""},
		{"other key", mustMarshal(t, otherKey, &Message{Type: TypeHeartbeat, Sender: "alpha"}), ErrBadMAC, 36, ""},
		{"foreign cluster", mustMarshal(t, other, &Message{Type: TypeHeartbeat, Sender: "alpha"}), ErrForeignCluster, 7, `cluster "other", want "filer"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := c.Unmarshal(tc.in)
			if err == nil {
				t.Fatalf("accepted %+v", m)
			}
			if !errors.Is(err, tc.class) {
				t.Fatalf("error %q is not %v", err, tc.class)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %q is not a *DecodeError", err)
			}
			if de.Offset != tc.offset {
				t.Errorf("offset %d, want %d (%v)", de.Offset, tc.offset, err)
			}
			if !strings.Contains(de.Detail, tc.detail) {
				t.Errorf("detail %q does not contain %q", de.Detail, tc.detail)
			}
			if !strings.HasPrefix(err.Error(), "heartbeat: message byte ") {
				t.Errorf("error %q lacks the package and offset prefix", err)
			}
		})
	}
}

// Flipping any single bit of a signed message must make it rejected.
func TestEveryBitFlipRejected(t *testing.T) {
	c := testCodec(t)
	good := mustMarshal(t, c, &Message{Type: TypeAppFirst + 3, Sender: "beta", Generation: 7, Sequence: 100, Payload: []byte("takeover")})
	for i := range good {
		for bit := range 8 {
			b := bytes.Clone(good)
			b[i] ^= 1 << bit
			if m, err := c.Unmarshal(b); err == nil {
				t.Fatalf("byte %d bit %d flipped: accepted %+v", i, bit, m)
			}
		}
	}
}

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{
		TypeHeartbeat:    "heartbeat",
		TypeAppFirst:     "app+0",
		TypeAppFirst + 5: "app+5",
		TypeAppLast:      "app+63",
		0x99:             "type 0x99",
	} {
		if got := typ.String(); got != want {
			t.Errorf("Type(0x%02x).String() = %q, want %q", uint8(typ), got, want)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	c := testCodec(b)
	m := &Message{Type: TypeHeartbeat, Sender: "alpha", Generation: 5, Payload: make([]byte, 64)}
	buf := make([]byte, 0, MaxMessageSize)
	b.ReportAllocs()
	for b.Loop() {
		m.Sequence++
		if _, err := c.AppendMarshal(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	c := testCodec(b)
	msg := mustMarshal(b, c, &Message{Type: TypeHeartbeat, Sender: "alpha", Generation: 5, Sequence: 1, Payload: make([]byte, 64)})
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Unmarshal(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalMaxSize(b *testing.B) {
	c := testCodec(b)
	msg := mustMarshal(b, c, &Message{Type: TypeAppFirst, Sender: "alpha", Payload: make([]byte, MaxPayload)})
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Unmarshal(msg); err != nil {
			b.Fatal(err)
		}
	}
}
