package smbservice

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	var digits strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "|") // a comment follows "|"
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRequestGolden(t *testing.T) {
	client := GUID{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00}
	want := mustHex(t, `
		00 00006c                           | NetBIOS: session message, 108 bytes
		fe534d42 4000 0000 00000000         | ProtocolId, StructureSize 64, CreditCharge, Status
		0000 0100 00000000 00000000         | Command NEGOTIATE, CreditRequest 1, Flags, NextCommand
		0000000000000000 00000000 00000000  | MessageId 0, Reserved, TreeId
		0000000000000000                    | SessionId
		00000000000000000000000000000000    | Signature
		2400 0400 0100 0000 00000000        | StructureSize 36, 4 dialects, signing enabled, Reserved, Capabilities
		112233445566778899aabbccddeeff00    | ClientGuid
		0000000000000000                    | ClientStartTime
		0202 1002 0003 0203                 | dialects 2.0.2 2.1 3.0 3.0.2`)
	got := appendRequest(nil, client)
	if len(got) != 112 {
		t.Fatalf("request is %d bytes, want 112", len(got))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("request:\n%s\nwant:\n%s", hex.Dump(got), hex.Dump(want))
	}
}

// sambaReply is a NEGOTIATE response captured from smbd 4.17 with
// "netbios name = TDLTEST".
func sambaReply(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/negotiate-reply-samba-4.17.bin")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseReplySamba(t *testing.T) {
	r, err := ParseReply(sambaReply(t))
	if err != nil {
		t.Fatal(err)
	}
	if r.Dialect != Dialect302 || r.Dialect.String() != "3.0.2" {
		t.Errorf("dialect %v, want 3.0.2", r.Dialect)
	}
	// Samba seeds the GUID with the netbios name.
	if got, want := r.ServerGUID.String(), "746c6474-7365-0074-0000-000000000000"; got != want {
		t.Errorf("server GUID %s, want %s", got, want)
	}
	if !bytes.HasPrefix(r.ServerGUID[:], []byte("tdltest")) {
		t.Errorf("server GUID bytes % x do not start with the netbios name", r.ServerGUID[:])
	}
	if r.Capabilities != 7 || r.SecurityMode != 1 {
		t.Errorf("capabilities %#x security mode %#x, want 0x7 and 0x1", r.Capabilities, r.SecurityMode)
	}
	if r.MaxReadSize != 8<<20 || r.MaxWriteSize != 8<<20 || r.MaxTransactSize != 8<<20 {
		t.Errorf("max sizes %d/%d/%d, want 8 MiB each", r.MaxTransactSize, r.MaxReadSize, r.MaxWriteSize)
	}
	if y := r.SystemTime.Year(); y < 2020 {
		t.Errorf("system time %v", r.SystemTime)
	}
	if len(r.SecurityBuffer) != 74 || r.SecurityBuffer[0] != 0x60 {
		t.Errorf("security buffer %d bytes starting % x, want a 74-byte SPNEGO token", len(r.SecurityBuffer), r.SecurityBuffer[:1])
	}
}

// withLen returns msg with its NetBIOS length set to match its size.
func withLen(msg []byte) []byte {
	n := len(msg) - 4
	msg[1], msg[2], msg[3] = byte(n>>16), byte(n>>8), byte(n)
	return msg
}

func TestParseReplyErrors(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name   string
		edit   func(b []byte) []byte
		offset int
		field  string
		text   string
	}{
		{"short", func(b []byte) []byte { return b[:3] }, 3, "NetBIOS header", "shorter than"},
		{"not a session message", func(b []byte) []byte { b[0] = 0x85; return b }, 0, "NetBIOS message type", "0x85"},
		{"length mismatch", func(b []byte) []byte { b[3]++; return b }, 1, "NetBIOS length", "announces 203 bytes, message carries 202"},
		{"truncated header", func(b []byte) []byte { return withLen(b[:40]) }, 40, "SMB2 header", "inside the 64-byte header"},
		{"SMB1", func(b []byte) []byte { b[4] = 0xff; return b }, 4, "ProtocolId", "ff 53 4d 42"},
		{"header size", func(b []byte) []byte { le.PutUint16(b[8:], 65); return b }, 8, "StructureSize", "65, want 64"},
		{"command", func(b []byte) []byte { le.PutUint16(b[16:], 1); return b }, 16, "Command", "0x0001"},
		{"a request", func(b []byte) []byte { le.PutUint32(b[20:], 0); return b }, 20, "Flags", "SERVER_TO_REDIR"},
		{"async", func(b []byte) []byte { le.PutUint32(b[20:], 3); return b }, 20, "Flags", "ASYNC"},
		{"compounded", func(b []byte) []byte { le.PutUint32(b[24:], 8); return b }, 24, "NextCommand", "8"},
		{"message id", func(b []byte) []byte { le.PutUint64(b[28:], 7); return b }, 28, "MessageId", "7, want 0"},
		{"refused", func(b []byte) []byte { le.PutUint32(b[12:], 0xc0000022); return b }, 12, "Status", "0xc0000022 (STATUS_ACCESS_DENIED)"},
		{"refused, unknown status", func(b []byte) []byte { le.PutUint32(b[12:], 0xc0001234); return b }, 12, "Status", "unknown NTSTATUS"},
		{"error response body", func(b []byte) []byte {
			le.PutUint32(b[12:], 0xc00000bb)
			return withLen(b[:4+64+9])
		}, 12, "Status", "STATUS_NOT_SUPPORTED"},
		{"truncated body", func(b []byte) []byte { return withLen(b[:4+64+20]) }, 88, "NEGOTIATE response", "20 bytes into the body"},
		{"body size", func(b []byte) []byte { le.PutUint16(b[68:], 9); return b }, 68, "StructureSize", "9, want 65"},
		{"dialect 3.1.1", func(b []byte) []byte { le.PutUint16(b[72:], 0x0311); return b }, 72, "DialectRevision", "3.1.1, not one of"},
		{"wildcard dialect", func(b []byte) []byte { le.PutUint16(b[72:], 0x02ff); return b }, 72, "DialectRevision", "wildcard"},
		{"contexts", func(b []byte) []byte { le.PutUint16(b[74:], 2); return b }, 74, "NegotiateContextCount", "2, want 0"},
		{"zero GUID", func(b []byte) []byte { clear(b[76:92]); return b }, 76, "ServerGuid", "all zero"},
		{"security buffer in header", func(b []byte) []byte { le.PutUint16(b[124:], 64); return b }, 124, "SecurityBufferOffset", "64 points into"},
		{"security buffer too long", func(b []byte) []byte { le.PutUint16(b[126:], 75); return b }, 126, "SecurityBufferLength", "128+75 runs past the message end at 202"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseReply(tt.edit(sambaReply(t)))
			var re *ReplyError
			if !errors.As(err, &re) {
				t.Fatalf("error %v, want a *ReplyError", err)
			}
			if re.Offset != tt.offset || re.Field != tt.field || !strings.Contains(re.Problem, tt.text) {
				t.Errorf("got offset %d field %q problem %q; want offset %d field %q problem containing %q",
					re.Offset, re.Field, re.Problem, tt.offset, tt.field, tt.text)
			}
			if !strings.Contains(err.Error(), "offset") {
				t.Errorf("message %q does not name the offset", err)
			}
		})
	}
}

func TestParseReplyEmptySecurityBuffer(t *testing.T) {
	b := sambaReply(t)
	binary.LittleEndian.PutUint16(b[124:], 0)
	binary.LittleEndian.PutUint16(b[126:], 0)
	r, err := ParseReply(withLen(b[:4+64+64]))
	if err != nil {
		t.Fatal(err)
	}
	if r.SecurityBuffer != nil {
		t.Errorf("security buffer % x, want none", r.SecurityBuffer)
	}
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"nothing", nil, "connection closed before any reply"},
		{"half a header", []byte{0, 0}, "read NetBIOS header: unexpected EOF"},
		{"oversized", []byte{0, 0x01, 0, 1}, "offset 1 (NetBIOS length): announces 65537 bytes"},
		{"truncated", append([]byte{0, 0, 0, 200}, make([]byte, 50)...), "offset 54 (SMB2 message): connection closed after 50 of the 200 bytes"},
		{"keepalive", []byte{0x85, 0, 0, 0}, "offset 0 (NetBIOS message type)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readReply(bytes.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	msg, err := readReply(bytes.NewReader(sambaReply(t)))
	if err != nil || !bytes.Equal(msg, sambaReply(t)) {
		t.Errorf("read %d bytes, %v; want the whole reply", len(msg), err)
	}
}

// fakeServer serves one connection of a net.Pipe: it reads the request and
// hands it to answer, which writes what it likes.
func fakeServer(t *testing.T, answer func(req []byte, c net.Conn)) net.Conn {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer server.Close()
		req := make([]byte, requestLen)
		if _, err := io.ReadFull(server, req); err != nil {
			return
		}
		answer(req, server)
	}()
	t.Cleanup(func() {
		client.Close()
		<-done
	})
	return client
}

func TestNegotiateConn(t *testing.T) {
	conn := fakeServer(t, func(req []byte, c net.Conn) {
		if !bytes.Equal(req[len(req)-8:], []byte{2, 2, 0x10, 2, 0, 3, 2, 3}) {
			t.Errorf("request dialects % x", req[len(req)-8:])
		}
		c.Write(sambaReply(t))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := NegotiateConn(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dialect != Dialect302 {
		t.Errorf("dialect %v", r.Dialect)
	}
}

// A frozen smbd accepts the connection but never answers: the context's
// deadline ends the wait, and the error says so.
func TestNegotiateConnNoAnswer(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	conn := fakeServer(t, func(req []byte, c net.Conn) { <-hold })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := NegotiateConn(ctx, conn)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want one wrapping context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v past a 50 ms deadline", d)
	}
}

func TestNegotiateConnCancel(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	conn := fakeServer(t, func(req []byte, c net.Conn) { <-hold })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err := NegotiateConn(ctx, conn)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want one wrapping context.Canceled", err)
	}
}

func TestNegotiateConnBadReply(t *testing.T) {
	conn := fakeServer(t, func(req []byte, c net.Conn) {
		b := sambaReply(t)
		b[4] = 0xff
		c.Write(b)
	})
	_, err := NegotiateConn(context.Background(), conn)
	var re *ReplyError
	if !errors.As(err, &re) || re.Offset != 4 {
		t.Fatalf("error %v, want a *ReplyError at offset 4", err)
	}
	if !strings.Contains(err.Error(), "smb2 negotiate with pipe") {
		t.Errorf("error %q does not name the peer", err)
	}
}

func TestGUIDAndDialectStrings(t *testing.T) {
	g := GUID{0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	if got, want := g.String(), "00112233-4455-6677-8899-aabbccddeeff"; got != want {
		t.Errorf("GUID %s, want %s", got, want)
	}
	for d, want := range map[Dialect]string{Dialect202: "2.0.2", Dialect210: "2.1", Dialect300: "3.0", Dialect302: "3.0.2", 0x0311: "3.1.1", 0x1234: "0x1234"} {
		if d.String() != want {
			t.Errorf("Dialect(%#x) = %q, want %q", uint16(d), d.String(), want)
		}
	}
	if ft := filetime(116444736000000000 + 15e6); !ft.Equal(time.Unix(1, 5e8)) {
		t.Errorf("filetime: %v", ft)
	}
	if !filetime(0).IsZero() {
		t.Error("filetime(0) is not the zero time")
	}
}
