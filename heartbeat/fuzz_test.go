package heartbeat

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzUnmarshal feeds arbitrary bytes to the decoder. It must never panic;
// every rejection is a *DecodeError pointing inside the input; whatever it
// accepts re-encodes to the same bytes; and whatever passes the structural
// checks re-encodes, with its own cluster name, to the same signed bytes.
// The seed corpus in testdata/fuzz/FuzzUnmarshal runs with every go test.
func FuzzUnmarshal(f *testing.F) {
	c := testCodec(f)
	f.Add(mustMarshal(f, c, &Message{Type: TypeHeartbeat, Sender: "alpha", Generation: 1, Sequence: 1, Payload: []byte{1, 6, 's', 't', 'a', 'n', 'd', 'b', 'y', 0, 0, 0, 0, 0}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := c.Unmarshal(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			if de.Offset < 0 || de.Offset > len(b) {
				t.Fatalf("offset %d outside %d bytes of input", de.Offset, len(b))
			}
		} else {
			again, err := c.Marshal(m)
			if err != nil {
				t.Fatalf("accepted %+v but cannot re-encode it: %v", m, err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("accepted input does not re-encode to itself")
			}
		}
		pm, p, err := parse(b)
		if err != nil {
			return
		}
		pc, err := NewCodec(string(p.cluster), testKey)
		if err != nil {
			t.Fatalf("parsed cluster %q is not a valid name: %v", p.cluster, err)
		}
		again, err := pc.Marshal(pm)
		if err != nil {
			t.Fatalf("parsed %+v but cannot re-encode it: %v", pm, err)
		}
		if len(again) != len(b) || !bytes.Equal(again[:p.macOff], b[:p.macOff]) {
			t.Fatalf("parsed input re-encodes differently")
		}
	})
}

// FuzzStatus checks that the status decoder never panics and that what it
// accepts re-encodes to the same bytes.
func FuzzStatus(f *testing.F) {
	f.Add([]byte{1, 6, 'a', 'c', 't', 'i', 'v', 'e', 0, 0, 0, 1, 1, 3, 'v', 'i', 'p', 7, 's', 't', 'a', 'r', 't', 'e', 'd'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Status
		if err := s.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrStatus) {
				t.Fatalf("error %v does not wrap ErrStatus", err)
			}
			return
		}
		again, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted %+v but cannot re-encode it: %v", s, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted input does not re-encode to itself")
		}
	})
}
