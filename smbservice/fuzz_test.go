package smbservice

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// FuzzParseReply feeds the reply parser arbitrary messages. The seed corpus
// in testdata/fuzz/FuzzParseReply (a captured Samba reply, refusals,
// truncations, bad fields) runs as ordinary tests.
func FuzzParseReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		r, err := ParseReply(msg)
		if !bytes.Equal(msg, orig) {
			t.Fatal("ParseReply changed its input")
		}
		if err != nil {
			var re *ReplyError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *ReplyError", err)
			}
			if re.Offset < 0 || re.Offset > len(msg) {
				t.Fatalf("offset %d outside the %d-byte message", re.Offset, len(msg))
			}
			return
		}
		// What parses is a successful NEGOTIATE response in full.
		if len(msg) < minReplyLen {
			t.Fatalf("accepted a %d-byte message", len(msg))
		}
		if st := binary.LittleEndian.Uint32(msg[12:]); st != 0 {
			t.Fatalf("accepted status %#x", st)
		}
		if !slices.Contains(offered[:], r.Dialect) {
			t.Fatalf("accepted dialect %v", r.Dialect)
		}
		if r.ServerGUID == (GUID{}) {
			t.Fatal("accepted a zero server GUID")
		}
		if len(r.SecurityBuffer) > len(msg)-minReplyLen {
			t.Fatalf("security buffer of %d bytes from a %d-byte message", len(r.SecurityBuffer), len(msg))
		}
		if len(r.SecurityBuffer) > 0 {
			r.SecurityBuffer[0] ^= 0xff
			if !bytes.Equal(msg, orig) {
				t.Fatal("the reply's security buffer aliases the input")
			}
		}
	})
}
