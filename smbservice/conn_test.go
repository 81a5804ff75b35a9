package smbservice

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func mustConn(t testing.TB, s string) Conn {
	t.Helper()
	c, err := ParseConn(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConnText(t *testing.T) {
	for _, s := range []string{
		"198.18.0.100:51234->198.18.0.50:445",
		"[2001:db8::7]:51234->[2001:db8::50]:139",
	} {
		c := mustConn(t, s)
		b, err := c.MarshalText()
		if err != nil || string(b) != s {
			t.Errorf("MarshalText of %s: %q, %v", s, b, err)
		}
		var d Conn
		if err := d.UnmarshalText(b); err != nil || d != c {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", b, d, err, c)
		}
	}
	for s, want := range map[string]string{
		"198.18.0.100:51234":                          "want CLIENT->SERVER",
		"198.18.0.100->198.18.0.50:445":               "client",
		"198.18.0.100:1->198.18.0.50:0":               "port 0",
		"198.18.0.100:1->[2001:db8::50]:445":          "different families",
		"[::ffff:198.18.0.100]:1->[::ffff:1.2.3.4]:2": "v4-mapped",
		"[fe80::1%eth0]:1->[fe80::2%eth0]:445":        "zone",
	} {
		if _, err := ParseConn(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConn(%q): %v; want an error containing %q", s, err, want)
		}
	}
}

func TestConnBinary(t *testing.T) {
	for s, want := range map[string]string{
		"198.18.0.100:51234->198.18.0.50:445":     "04c6120064c822c612003201bd",
		"[2001:db8::7]:51234->[2001:db8::50]:139": "0620010db8000000000000000000000007c82220010db8000000000000000000000050008b",
	} {
		c := mustConn(t, s)
		b, err := c.MarshalBinary()
		if err != nil || hex.EncodeToString(b) != want {
			t.Errorf("MarshalBinary of %s: %x, %v; want %s", s, b, err, want)
			continue
		}
		var d Conn
		if err := d.UnmarshalBinary(b); err != nil || d != c {
			t.Errorf("UnmarshalBinary(%x) = %v, %v", b, d, err)
		}
		if err := d.UnmarshalBinary(b[:len(b)-1]); err == nil {
			t.Errorf("UnmarshalBinary of %d bytes succeeded", len(b)-1)
		}
	}
	if _, err := (Conn{}).MarshalBinary(); err == nil {
		t.Error("MarshalBinary of the zero Conn succeeded")
	}
}

func TestConnListCodec(t *testing.T) {
	conns := []Conn{
		mustConn(t, "198.18.0.101:40000->198.18.0.50:445"),
		mustConn(t, "198.18.0.100:51234->198.18.0.50:445"),
		mustConn(t, "198.18.0.100:51235->198.18.0.50:139"),
		mustConn(t, "[2001:db8::7]:51234->[2001:db8::50]:445"),
		mustConn(t, "198.18.0.100:51234->198.18.0.50:445"), // repeated
	}
	b, err := MarshalConns(conns)
	if err != nil {
		t.Fatal(err)
	}
	// Header, then groups: 139 with one client, 445 with two, the IPv6
	// server with one; then the CRC-32C.
	const want = "5444434c01" +
		"04c6120032008b01c6120064c823" +
		"04c612003201bd02c6120064c822c61200659c40" +
		"0620010db800000000000000000000005001bd0120010db8000000000000000000000007c822"
	if got := hex.EncodeToString(b[:len(b)-4]); got != want {
		t.Fatalf("encoding:\n%s\nwant:\n%s", got, want)
	}
	got, err := UnmarshalConns(b)
	if err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(conns[:4])
	slices.SortFunc(sorted, Conn.Compare)
	if !slices.Equal(got, sorted) {
		t.Fatalf("decoded %v, want %v", got, sorted)
	}
	empty, err := MarshalConns(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := UnmarshalConns(empty); err != nil || len(got) != 0 {
		t.Fatalf("empty list: %v, %v", got, err)
	}
	if _, err := MarshalConns([]Conn{{Client: netip.MustParseAddrPort("1.2.3.4:5")}}); err == nil {
		t.Fatal("MarshalConns of an invalid connection succeeded")
	}

	for _, tt := range []struct {
		name string
		b    []byte
		want string
	}{
		{"short", b[:6], "shorter than header"},
		{"magic", append([]byte("XDCL"), b[4:]...), "magic"},
		{"version", withCRC(append([]byte("TDCL\x02"), b[5:len(b)-4]...)), "version 2"},
		{"checksum", append(slices.Clone(b[:len(b)-1]), b[len(b)-1]^1), "checksum"},
		{"family", withCRC([]byte("TDCL\x01\x05")), "family byte 5"},
		{"cut server", withCRC([]byte("TDCL\x01\x04\xc6\x12")), "cut short"},
		{"count too big", withCRC(mustHex(t, "5444434c0104c612003201bd02c6120064c822")), "does not fit"},
		{"count zero", withCRC(mustHex(t, "5444434c0104c612003201bd00")), "client count 0"},
		{"clients out of order", withCRC(mustHex(t, "5444434c0104c612003201bd02c6120064c822c6120064c822")), "not after"},
		{"servers out of order", withCRC(mustHex(t, "5444434c0104c612003201bd01c6120064c82204c6120032008b01c6120064c823")), "server 198.18.0.50:139 not after"},
		{"mapped", withCRC(mustHex(t, "5444434c010600000000000000000000ffffc612003201bd0100000000000000000000ffffc6120064c822")), "v4-mapped"},
	} {
		if _, err := UnmarshalConns(tt.b); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: UnmarshalConns: %v; want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// withCRC appends the list checksum to body.
func withCRC(body []byte) []byte {
	return binary.BigEndian.AppendUint32(slices.Clone(body), crc32.Checksum(body, castagnoli))
}

// A list that decodes is in canonical form: encoding it again gives the
// same bytes.
func FuzzUnmarshalConns(f *testing.F) {
	seed, _ := MarshalConns([]Conn{
		mustConn(f, "198.18.0.100:51234->198.18.0.50:445"),
		mustConn(f, "[2001:db8::7]:51234->[2001:db8::50]:445"),
	})
	f.Add(seed)
	empty, _ := MarshalConns(nil)
	f.Add(empty)
	f.Fuzz(func(t *testing.T, b []byte) {
		conns, err := UnmarshalConns(b)
		if err != nil {
			return
		}
		again, err := MarshalConns(conns)
		if err != nil {
			t.Fatalf("decoded list %v does not encode: %v", conns, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}

func TestTrackerUpdate(t *testing.T) {
	c1 := mustConn(t, "198.18.0.100:1->198.18.0.50:445")
	c2 := mustConn(t, "198.18.0.100:2->198.18.0.50:445")
	c3 := mustConn(t, "[2001:db8::7]:3->[2001:db8::50]:445")
	var tr Tracker
	for i, step := range []struct {
		now            []Conn
		added, removed []Conn
	}{
		{[]Conn{c1, c2}, []Conn{c1, c2}, nil},
		{[]Conn{c1, c2}, nil, nil},
		{[]Conn{c2, c3}, []Conn{c3}, []Conn{c1}},
		{nil, nil, []Conn{c2, c3}},
	} {
		added, removed := tr.update(step.now)
		if !slices.Equal(added, step.added) || !slices.Equal(removed, step.removed) {
			t.Errorf("step %d: added %v removed %v; want %v and %v", i, added, removed, step.added, step.removed)
		}
		if !slices.Equal(tr.Conns(), step.now) {
			t.Errorf("step %d: Conns %v, want %v", i, tr.Conns(), step.now)
		}
	}
}
