package smbservice

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"
)

// Dialect is an SMB2 dialect revision as the NEGOTIATE exchange carries it.
type Dialect uint16

// The dialects a NEGOTIATE request offers, in the order it lists them. SMB
// 3.1.1 is not offered: a 3.1.1 request needs negotiate contexts, which a
// liveness probe has no use for.
const (
	Dialect202 Dialect = 0x0202
	Dialect210 Dialect = 0x0210
	Dialect300 Dialect = 0x0300
	Dialect302 Dialect = 0x0302
)

// offered lists the dialects of the request in wire order.
var offered = [...]Dialect{Dialect202, Dialect210, Dialect300, Dialect302}

// String returns the dialect as SMB documents name it, such as "3.0.2".
func (d Dialect) String() string {
	switch d {
	case Dialect202:
		return "2.0.2"
	case Dialect210:
		return "2.1"
	case Dialect300:
		return "3.0"
	case Dialect302:
		return "3.0.2"
	case 0x0311:
		return "3.1.1"
	case 0x02ff:
		return "2.??? (wildcard)"
	}
	return fmt.Sprintf("0x%04x", uint16(d))
}

// GUID is a 16-byte GUID as SMB2 puts it on the wire: the first three fields
// little-endian, the rest as bytes.
type GUID [16]byte

// String formats g in the registry form, such as
// "6c8f2e3a-1d2b-4c5d-8e9f-0a1b2c3d4e5f".
func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(g[0:4]),
		binary.LittleEndian.Uint16(g[4:6]),
		binary.LittleEndian.Uint16(g[6:8]),
		g[8:10], g[10:16])
}

// Reply is a server's answer to an SMB2 NEGOTIATE request.
type Reply struct {
	// Dialect is the dialect the server chose among those offered.
	Dialect Dialect
	// SecurityMode holds SMB2_NEGOTIATE_SIGNING_ENABLED (1) and
	// SMB2_NEGOTIATE_SIGNING_REQUIRED (2).
	SecurityMode uint16
	// ServerGUID identifies the server. Samba derives it from the netbios
	// name, so both nodes of a pair configured alike show the same GUID.
	ServerGUID GUID
	// Capabilities is the SMB2_GLOBAL_CAP_* bit set.
	Capabilities uint32
	// MaxTransactSize, MaxReadSize and MaxWriteSize are the server's limits
	// in bytes.
	MaxTransactSize, MaxReadSize, MaxWriteSize uint32
	// SystemTime is the server's clock when it answered.
	SystemTime time.Time
	// SecurityBuffer is the GSS token the server offers (SPNEGO for Samba).
	SecurityBuffer []byte
}

// Sizes and offsets of the exchange. Offsets in errors count from the first
// byte of the NetBIOS session header, so they match a packet capture of the
// TCP payload.
const (
	netbiosLen    = 4
	headerLen     = 64
	negBodyLen    = 36
	requestLen    = netbiosLen + headerLen + negBodyLen + 2*len(offered) // 112
	replyFixedLen = 64                                                   // fixed part of the NEGOTIATE response body
	minReplyLen   = netbiosLen + headerLen + replyFixedLen

	// maxReplyLen bounds what a reply may announce in its NetBIOS header; a
	// NEGOTIATE response is a few hundred bytes.
	maxReplyLen = 64 << 10

	protocolID         = 0x424d53fe // "\xfeSMB" read little-endian
	commandNegotiate   = 0
	flagServerToRedir  = 0x00000001
	flagAsyncCommand   = 0x00000002
	replyStructureSize = 65
	securityModeSigned = 0x0001
)

// appendRequest appends the 112-byte NEGOTIATE request with message id 0 and
// the given client GUID to b.
func appendRequest(b []byte, client GUID) []byte {
	le := binary.LittleEndian
	b = binary.BigEndian.AppendUint32(b, uint32(requestLen-netbiosLen)) // type 0 (session message), 24-bit length
	// SMB2 header (MS-SMB2 2.2.1.2).
	b = le.AppendUint32(b, protocolID)
	b = le.AppendUint16(b, headerLen) // StructureSize
	b = le.AppendUint16(b, 0)         // CreditCharge
	b = le.AppendUint32(b, 0)         // ChannelSequence/Reserved
	b = le.AppendUint16(b, commandNegotiate)
	b = le.AppendUint16(b, 1) // CreditRequest
	b = le.AppendUint32(b, 0) // Flags
	b = le.AppendUint32(b, 0) // NextCommand
	b = le.AppendUint64(b, 0) // MessageId
	b = le.AppendUint32(b, 0) // Reserved (ProcessId)
	b = le.AppendUint32(b, 0) // TreeId
	b = le.AppendUint64(b, 0) // SessionId
	b = append(b, make([]byte, 16)...)
	// NEGOTIATE request body (MS-SMB2 2.2.3).
	b = le.AppendUint16(b, negBodyLen)
	b = le.AppendUint16(b, uint16(len(offered)))
	b = le.AppendUint16(b, securityModeSigned)
	b = le.AppendUint16(b, 0) // Reserved
	b = le.AppendUint32(b, 0) // Capabilities
	b = append(b, client[:]...)
	b = le.AppendUint64(b, 0) // ClientStartTime
	for _, d := range offered {
		b = le.AppendUint16(b, uint16(d))
	}
	return b
}

// ReplyError reports a NEGOTIATE reply that is malformed or refuses the
// request.
type ReplyError struct {
	// Offset is the byte offset of the faulty field, counted from the first
	// byte of the NetBIOS session header.
	Offset int
	// Field names the faulty field as MS-SMB2 names it.
	Field string
	// Problem says what is wrong with it.
	Problem string
}

// Error returns "smb2 negotiate reply: offset N (field): problem".
func (e *ReplyError) Error() string {
	return fmt.Sprintf("smb2 negotiate reply: offset %d (%s): %s", e.Offset, e.Field, e.Problem)
}

func replyErr(off int, field, format string, args ...any) error {
	return &ReplyError{Offset: off, Field: field, Problem: fmt.Sprintf(format, args...)}
}

// ntStatusNames names the NTSTATUS codes a server may put in a refused
// NEGOTIATE.
var ntStatusNames = map[uint32]string{
	0xc0000001: "STATUS_UNSUCCESSFUL",
	0xc0000002: "STATUS_NOT_IMPLEMENTED",
	0xc000000d: "STATUS_INVALID_PARAMETER",
	0xc0000022: "STATUS_ACCESS_DENIED",
	0xc000009a: "STATUS_INSUFFICIENT_RESOURCES",
	0xc00000bb: "STATUS_NOT_SUPPORTED",
	0xc0000203: "STATUS_USER_SESSION_DELETED",
	0xc000035c: "STATUS_NETWORK_SESSION_EXPIRED",
}

// ParseReply parses a complete NEGOTIATE response: the 4-byte NetBIOS session
// header, the 64-byte SMB2 header and the response body. It accepts only a
// successful answer (status 0) to the request Negotiate sends: message id 0,
// one of the offered dialects, a security buffer inside the message. Errors
// are *ReplyError.
func ParseReply(msg []byte) (Reply, error) {
	le := binary.LittleEndian
	if len(msg) < netbiosLen {
		return Reply{}, replyErr(len(msg), "NetBIOS header", "message is %d bytes, shorter than the 4-byte header", len(msg))
	}
	if msg[0] != 0 {
		return Reply{}, replyErr(0, "NetBIOS message type", "0x%02x, want 0x00 (session message)", msg[0])
	}
	n := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
	if n != len(msg)-netbiosLen {
		return Reply{}, replyErr(1, "NetBIOS length", "announces %d bytes, message carries %d", n, len(msg)-netbiosLen)
	}
	if len(msg) < netbiosLen+headerLen {
		return Reply{}, replyErr(len(msg), "SMB2 header", "message ends after %d bytes, inside the 64-byte header", len(msg)-netbiosLen)
	}
	h := msg[netbiosLen:]
	const hOff = netbiosLen
	if id := le.Uint32(h[0:]); id != protocolID {
		return Reply{}, replyErr(hOff, "ProtocolId", "% x, want fe 53 4d 42 (\\xfeSMB)", h[0:4])
	}
	if v := le.Uint16(h[4:]); v != headerLen {
		return Reply{}, replyErr(hOff+4, "StructureSize", "%d, want 64", v)
	}
	status := le.Uint32(h[8:])
	if v := le.Uint16(h[12:]); v != commandNegotiate {
		return Reply{}, replyErr(hOff+12, "Command", "0x%04x, want 0x0000 (NEGOTIATE)", v)
	}
	flags := le.Uint32(h[16:])
	if flags&flagServerToRedir == 0 {
		return Reply{}, replyErr(hOff+16, "Flags", "0x%08x lacks SMB2_FLAGS_SERVER_TO_REDIR: not a response", flags)
	}
	if flags&flagAsyncCommand != 0 {
		return Reply{}, replyErr(hOff+16, "Flags", "0x%08x has SMB2_FLAGS_ASYNC_COMMAND: NEGOTIATE is never async", flags)
	}
	if v := le.Uint32(h[20:]); v != 0 {
		return Reply{}, replyErr(hOff+20, "NextCommand", "%d, want 0: NEGOTIATE is never compounded", v)
	}
	if v := le.Uint64(h[24:]); v != 0 {
		return Reply{}, replyErr(hOff+24, "MessageId", "%d, want 0 (the request's)", v)
	}
	if status != 0 {
		name := ntStatusNames[status]
		if name == "" {
			name = "unknown NTSTATUS"
		}
		return Reply{}, replyErr(hOff+8, "Status", "0x%08x (%s): the server refused the NEGOTIATE", status, name)
	}
	if len(msg) < minReplyLen {
		return Reply{}, replyErr(len(msg), "NEGOTIATE response", "message ends %d bytes into the body, before its 64-byte fixed part", len(msg)-netbiosLen-headerLen)
	}
	body := h[headerLen:]
	const bOff = hOff + headerLen
	if v := le.Uint16(body[0:]); v != replyStructureSize {
		return Reply{}, replyErr(bOff, "StructureSize", "%d, want 65", v)
	}
	r := Reply{
		SecurityMode:    le.Uint16(body[2:]),
		Dialect:         Dialect(le.Uint16(body[4:])),
		Capabilities:    le.Uint32(body[24:]),
		MaxTransactSize: le.Uint32(body[28:]),
		MaxReadSize:     le.Uint32(body[32:]),
		MaxWriteSize:    le.Uint32(body[36:]),
		SystemTime:      filetime(le.Uint64(body[40:])),
	}
	copy(r.ServerGUID[:], body[8:24])
	known := false
	for _, d := range offered {
		known = known || d == r.Dialect
	}
	if !known {
		return Reply{}, replyErr(bOff+4, "DialectRevision", "%s, not one of the offered 2.0.2, 2.1, 3.0, 3.0.2", r.Dialect)
	}
	if v := le.Uint16(body[6:]); v != 0 {
		return Reply{}, replyErr(bOff+6, "NegotiateContextCount", "%d, want 0: no dialect that carries contexts was offered", v)
	}
	if r.ServerGUID == (GUID{}) {
		return Reply{}, replyErr(bOff+8, "ServerGuid", "all zero")
	}
	secOff, secLen := int(le.Uint16(body[56:])), int(le.Uint16(body[58:]))
	if secLen > 0 {
		if secOff < headerLen+replyFixedLen {
			return Reply{}, replyErr(bOff+56, "SecurityBufferOffset", "%d points into the header or fixed body (< %d)", secOff, headerLen+replyFixedLen)
		}
		if secOff+secLen > len(h) {
			return Reply{}, replyErr(bOff+58, "SecurityBufferLength", "buffer at %d+%d runs past the message end at %d", secOff, secLen, len(h))
		}
		r.SecurityBuffer = append([]byte(nil), h[secOff:secOff+secLen]...)
	}
	return r, nil
}

// filetime converts a Windows FILETIME (100 ns ticks since 1601) to a time.
// Zero stays the zero time.
func filetime(ft uint64) time.Time {
	if ft == 0 {
		return time.Time{}
	}
	const epochDelta = 116444736000000000 // 1601-01-01 to 1970-01-01 in ticks
	t := int64(ft - epochDelta)
	return time.Unix(t/1e7, (t%1e7)*100).UTC()
}

// readReply reads one NetBIOS-framed message from r, refusing one that
// announces more than maxReplyLen bytes.
func readReply(r io.Reader) ([]byte, error) {
	msg := make([]byte, netbiosLen, 512)
	if _, err := io.ReadFull(r, msg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read NetBIOS header: connection closed before any reply")
		}
		return nil, fmt.Errorf("read NetBIOS header: %w", err)
	}
	if msg[0] != 0 {
		return nil, replyErr(0, "NetBIOS message type", "0x%02x, want 0x00 (session message)", msg[0])
	}
	n := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
	if n > maxReplyLen {
		return nil, replyErr(1, "NetBIOS length", "announces %d bytes, more than the %d a NEGOTIATE response may take", n, maxReplyLen)
	}
	msg = append(msg, make([]byte, n)...)
	if got, err := io.ReadFull(r, msg[netbiosLen:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, replyErr(netbiosLen+got, "SMB2 message", "connection closed after %d of the %d bytes the NetBIOS header announced", got, n)
		}
		return nil, fmt.Errorf("read reply (%d of %d bytes): %w", got, n, err)
	}
	return msg, nil
}

// clientGUID is the client GUID of this process's requests; servers log it.
var clientGUID = func() GUID {
	var g GUID
	rand.Read(g[:])
	return g
}()

// Negotiate dials addr over TCP, sends an SMB2 NEGOTIATE request and returns
// the parsed reply. The context's deadline bounds the whole exchange; without
// one, only cancellation ends it. A server that accepts the connection but
// never answers — a frozen smbd — fails with the context's error.
func Negotiate(ctx context.Context, addr netip.AddrPort) (Reply, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return Reply{}, fmt.Errorf("smb2 negotiate with %s: %w", addr, err)
	}
	defer conn.Close()
	return NegotiateConn(ctx, conn)
}

// NegotiateConn runs the NEGOTIATE exchange on an established connection,
// which it leaves open. The context bounds the exchange as in Negotiate.
func NegotiateConn(ctx context.Context, conn net.Conn) (Reply, error) {
	peer := conn.RemoteAddr()
	fail := func(err error) (Reply, error) {
		cerr := ctx.Err()
		if _, ok := ctx.Deadline(); ok && cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection's deadline is the context's; its timer
			// may not have fired yet.
			cerr = context.DeadlineExceeded
		}
		if cerr != nil {
			return Reply{}, fmt.Errorf("smb2 negotiate with %s: %v: %w", peer, err, cerr)
		}
		return Reply{}, fmt.Errorf("smb2 negotiate with %s: %w", peer, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fail(fmt.Errorf("set deadline: %w", err))
		}
		defer conn.SetDeadline(time.Time{})
	}
	// A cancelled context interrupts blocked I/O by moving the deadline
	// into the past.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(appendRequest(make([]byte, 0, requestLen), clientGUID)); err != nil {
		return fail(fmt.Errorf("send request: %w", err))
	}
	msg, err := readReply(conn)
	if err != nil {
		return fail(err)
	}
	r, err := ParseReply(msg)
	if err != nil {
		return fail(err)
	}
	return r, nil
}
