package smbservice

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"slices"
	"strings"
)

// Conn is one client's TCP connection to the service: the client's address
// and port, and the server's (the floating address and 445 or 139). Both
// addresses are of one family; an IPv4 client of a dual-stack listener is
// an IPv4 Conn, never a v4-mapped one.
//
// Its text form is "CLIENT->SERVER", as in "198.18.0.100:51234->198.18.0.50:445"
// or "[2001:db8::7]:51234->[2001:db8::50]:445".
type Conn struct {
	Client netip.AddrPort
	Server netip.AddrPort
}

// Is4 reports whether c is an IPv4 connection.
func (c Conn) Is4() bool { return c.Server.Addr().Is4() }

// Compare orders connections by server, then client.
func (c Conn) Compare(d Conn) int {
	if n := c.Server.Compare(d.Server); n != 0 {
		return n
	}
	return c.Client.Compare(d.Client)
}

// String returns the text form of c.
func (c Conn) String() string { return c.Client.String() + "->" + c.Server.String() }

// valid reports why c cannot be tickled or encoded, or nil.
func (c Conn) valid() error {
	ca, sa := c.Client.Addr(), c.Server.Addr()
	switch {
	case !ca.IsValid() || !sa.IsValid():
		return errors.New("missing address")
	case ca.Is4In6() || sa.Is4In6():
		return errors.New("v4-mapped address")
	case ca.Is4() != sa.Is4():
		return errors.New("client and server of different families")
	case ca.Zone() != "" || sa.Zone() != "":
		return errors.New("address with a zone")
	case c.Client.Port() == 0 || c.Server.Port() == 0:
		return errors.New("port 0")
	}
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (c Conn) MarshalText() ([]byte, error) {
	if err := c.valid(); err != nil {
		return nil, fmt.Errorf("connection %s: %v", c, err)
	}
	return []byte(c.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Conn) UnmarshalText(b []byte) error {
	d, err := ParseConn(string(b))
	if err != nil {
		return err
	}
	*c = d
	return nil
}

// ParseConn parses the text form of a connection, "CLIENT->SERVER".
func ParseConn(s string) (Conn, error) {
	client, server, ok := strings.Cut(s, "->")
	if !ok {
		return Conn{}, fmt.Errorf("connection %q: want CLIENT->SERVER", s)
	}
	var c Conn
	var err error
	if c.Client, err = netip.ParseAddrPort(client); err != nil {
		return Conn{}, fmt.Errorf("connection %q: client: %v", s, err)
	}
	if c.Server, err = netip.ParseAddrPort(server); err != nil {
		return Conn{}, fmt.Errorf("connection %q: server: %v", s, err)
	}
	if err := c.valid(); err != nil {
		return Conn{}, fmt.Errorf("connection %q: %v", s, err)
	}
	return c, nil
}

// Binary form of one Conn: a family byte (4 or 6), the client's address
// and port, the server's address and port, ports big-endian: 13 bytes for
// IPv4, 37 for IPv6.
const (
	family4 = 4
	family6 = 6
)

// MarshalBinary implements encoding.BinaryMarshaler.
func (c Conn) MarshalBinary() ([]byte, error) {
	if err := c.valid(); err != nil {
		return nil, fmt.Errorf("connection %s: %v", c, err)
	}
	fam := byte(family6)
	if c.Is4() {
		fam = family4
	}
	b := []byte{fam}
	b = appendAddrPort(b, c.Client)
	return appendAddrPort(b, c.Server), nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (c *Conn) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		return errors.New("connection: empty")
	}
	n := addrLen(b[0])
	if n == 0 {
		return fmt.Errorf("connection: family byte %d, want 4 or 6", b[0])
	}
	if len(b) != 1+2*(n+2) {
		return fmt.Errorf("connection: %d bytes, want %d for family %d", len(b), 1+2*(n+2), b[0])
	}
	d := Conn{Client: readAddrPort(b[1:], n), Server: readAddrPort(b[1+n+2:], n)}
	if err := d.valid(); err != nil {
		return fmt.Errorf("connection %s: %v", d, err)
	}
	*c = d
	return nil
}

func addrLen(family byte) int {
	switch family {
	case family4:
		return 4
	case family6:
		return 16
	}
	return 0
}

func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	b = append(b, ap.Addr().AsSlice()...)
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// readAddrPort reads an address of n bytes and a port from b, which holds
// at least n+2 bytes.
func readAddrPort(b []byte, n int) netip.AddrPort {
	a, _ := netip.AddrFromSlice(b[:n])
	return netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[n:]))
}

// Connection list encoding, version 1:
//
//	"TDCL"  magic
//	1       version
//	groups, one per server address and port, in ascending order:
//	    family (4 or 6), server address, server port,
//	    client count (uvarint, at least 1),
//	    clients in strictly ascending order: address, port
//	CRC-32C of all that precedes, big-endian
//
// Grouping by server makes an IPv4 client cost 6 bytes: 10,000 connections
// to one floating address on one port take about 60 kB.
const (
	listMagic   = "TDCL"
	listVersion = 1
	listHeader  = len(listMagic) + 1
	listTrailer = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalConns encodes a connection list in its binary form, sorted and
// without duplicates, whatever the order of conns. It fails on a
// connection that is not valid (mixed families, a v4-mapped address, a
// zero port).
func MarshalConns(conns []Conn) ([]byte, error) {
	sorted := slices.Clone(conns)
	slices.SortFunc(sorted, Conn.Compare)
	sorted = slices.Compact(sorted)
	b := make([]byte, 0, listHeader+listTrailer+len(sorted)*6+32)
	b = append(b, listMagic...)
	b = append(b, listVersion)
	for i := 0; i < len(sorted); {
		c := sorted[i]
		if err := c.valid(); err != nil {
			return nil, fmt.Errorf("encode connection list: connection %s: %v", c, err)
		}
		j := i + 1
		for j < len(sorted) && sorted[j].Server == c.Server {
			if err := sorted[j].valid(); err != nil {
				return nil, fmt.Errorf("encode connection list: connection %s: %v", sorted[j], err)
			}
			j++
		}
		fam := byte(family6)
		if c.Is4() {
			fam = family4
		}
		b = append(b, fam)
		b = appendAddrPort(b, c.Server)
		b = binary.AppendUvarint(b, uint64(j-i))
		for _, d := range sorted[i:j] {
			b = appendAddrPort(b, d.Client)
		}
		i = j
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// UnmarshalConns decodes the binary form made by MarshalConns. It accepts
// only that exact form: a bad checksum, an unknown version, bytes left
// over, or connections out of order or repeated are errors that give the
// offset at fault.
func UnmarshalConns(b []byte) ([]Conn, error) {
	if len(b) < listHeader+listTrailer {
		return nil, fmt.Errorf("connection list: %d bytes, shorter than header and checksum (%d)", len(b), listHeader+listTrailer)
	}
	if string(b[:len(listMagic)]) != listMagic {
		return nil, fmt.Errorf("connection list: magic %q, want %q", b[:len(listMagic)], listMagic)
	}
	if v := b[len(listMagic)]; v != listVersion {
		return nil, fmt.Errorf("connection list: version %d, want %d", v, listVersion)
	}
	body := b[:len(b)-listTrailer]
	if got, want := binary.BigEndian.Uint32(b[len(body):]), crc32.Checksum(body, castagnoli); got != want {
		return nil, fmt.Errorf("connection list: checksum %08x, computed %08x", got, want)
	}
	var conns []Conn
	off := listHeader
	var prevServer netip.AddrPort
	for off < len(body) {
		n := addrLen(body[off])
		if n == 0 {
			return nil, fmt.Errorf("connection list: offset %d: family byte %d, want 4 or 6", off, body[off])
		}
		if len(body)-off-1 < n+2 {
			return nil, fmt.Errorf("connection list: offset %d: server address cut short", off)
		}
		server := readAddrPort(body[off+1:], n)
		if len(conns) > 0 && server.Compare(prevServer) <= 0 {
			return nil, fmt.Errorf("connection list: offset %d: server %s not after %s", off, server, prevServer)
		}
		off += 1 + n + 2
		count, k := binary.Uvarint(body[off:])
		if k <= 0 {
			return nil, fmt.Errorf("connection list: offset %d: bad client count", off)
		}
		if count == 0 || count > uint64(len(body)-off-k)/uint64(n+2) {
			return nil, fmt.Errorf("connection list: offset %d: client count %d does not fit the %d bytes left", off, count, len(body)-off-k)
		}
		off += k
		first := len(conns)
		for range count {
			c := Conn{Client: readAddrPort(body[off:], n), Server: server}
			if err := c.valid(); err != nil {
				return nil, fmt.Errorf("connection list: offset %d: connection %s: %v", off, c, err)
			}
			if len(conns) > first && c.Client.Compare(conns[len(conns)-1].Client) <= 0 {
				return nil, fmt.Errorf("connection list: offset %d: client %s not after %s", off, c.Client, conns[len(conns)-1].Client)
			}
			conns = append(conns, c)
			off += n + 2
		}
		prevServer = server
	}
	return conns, nil
}
