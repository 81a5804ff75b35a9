package heartbeat

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"testing"
)

// FuzzDeframe feeds arbitrary bytes to a Deframer, whole and in chunks.
// It must never panic; every message it returns must have been on the
// line as a frame with a matching CRC; every byte is accounted for; and
// the result must not depend on how the input was cut into reads, unless
// a frame holds another intact frame (see Deframer). The seed corpus in
// testdata/fuzz/FuzzDeframe runs with every go test.
func FuzzDeframe(f *testing.F) {
	fa := mustFrame(f, serialMsg(1, 60))
	f.Add(fa)
	f.Add(cat([]byte("noise~TD"), fa[:30], fa, fa))
	f.Fuzz(func(t *testing.T, in []byte) {
		var whole Deframer
		got := whole.Feed(nil, in)
		valid := serialIntactFrames(in)
		for _, msg := range got {
			if len(msg) == 0 || len(msg) > MaxMessageSize {
				t.Fatalf("delivered a message of %d bytes", len(msg))
			}
			if !valid[string(msg)] {
				t.Fatalf("delivered %x, which was not on the line as a valid frame", msg)
			}
		}
		st := whole.Stats()
		if st.Frames != uint64(len(got)) || st.Bytes+st.Skipped+uint64(whole.Buffered()) != uint64(len(in)) {
			t.Fatalf("stats %+v and %d buffered do not account for %d bytes", st, whole.Buffered(), len(in))
		}
		if whole.Buffered() >= MaxFrameSize {
			t.Fatalf("%d bytes buffered, more than a frame", whole.Buffered())
		}

		chunk := 1
		if len(in) > 0 {
			chunk = int(in[0])%17 + 1
		}
		var split Deframer
		var again [][]byte
		for p := in; len(p) > 0; {
			n := min(chunk, len(p))
			again = split.Feed(again, p[:n])
			p = p[n:]
		}
		for _, msg := range again {
			if !valid[string(msg)] {
				t.Fatalf("in chunks of %d: delivered %x, which was not on the line as a valid frame", chunk, msg)
			}
		}
		sst := split.Stats()
		if sst.Frames != uint64(len(again)) || sst.Bytes+sst.Skipped+uint64(split.Buffered()) != uint64(len(in)) {
			t.Fatalf("in chunks of %d: stats %+v and %d buffered do not account for %d bytes", chunk, sst, split.Buffered(), len(in))
		}
		if slices.ContainsFunc(got, serialNests) {
			return
		}
		// Fed whole, a damaged frame fails its CRC; in pieces it may be
		// given up before it is complete instead.
		sst.CRCErrors, sst.Abandoned = sst.CRCErrors+sst.Abandoned, 0
		st.CRCErrors, st.Abandoned = st.CRCErrors+st.Abandoned, 0
		if !slices.EqualFunc(got, again, bytes.Equal) || sst != st || split.Buffered() != whole.Buffered() {
			t.Fatalf("in chunks of %d: %d messages, stats %+v; whole: %d messages, stats %+v",
				chunk, len(again), sst, len(got), st)
		}
	})
}

// FuzzDeframeInterleaved builds a line from the input: real frames with
// noise and half frames between them (see checkInterleaved). Every real
// frame must come out, in order. The seed corpus in
// testdata/fuzz/FuzzDeframeInterleaved runs with every go test.
func FuzzDeframeInterleaved(f *testing.F) {
	f.Add([]byte{0, 40, 2, 10, 3, 50, 1, 100, 0, 0})
	f.Fuzz(checkInterleaved)
}

// serialIntactFrames returns the messages of every intact frame in b,
// wherever it begins: what a deframer may deliver from b. It reads the
// layout afresh rather than through the code under test.
func serialIntactFrames(b []byte) map[string]bool {
	out := map[string]bool{}
	table := crc32.MakeTable(crc32.Castagnoli)
	for k := 0; k+10 <= len(b); k++ {
		if !bytes.HasPrefix(b[k:], []byte("~TDM")) {
			continue
		}
		n := int(b[k+4])<<8 | int(b[k+5])
		if n == 0 || n > MaxMessageSize || k+10+n > len(b) {
			continue
		}
		body := b[k+4 : k+6+n]
		if crc32.Checksum(body, table) == binary.BigEndian.Uint32(b[k+6+n:]) {
			out[string(body[2:])] = true
		}
	}
	return out
}

// serialNests reports whether msg's frame holds another intact frame
// after its own marker.
func serialNests(msg []byte) bool {
	var d Deframer
	f, err := AppendFrame(nil, msg)
	return err == nil && len(d.Feed(nil, f[1:])) > 0
}

// checkInterleaved reads data as a script of (op, n) pairs: op%4 of 0 or
// 1 puts a real frame of an (n+1)-byte message on the line, 2 puts n bytes
// of noise, 3 a frame cut short. Deframed in reads of uneven size, with
// nothing after the script, the real messages must all come out in order
// (but for one that holds an intact frame of its own, see Deframer);
// anything else that comes out must have been a valid frame within the
// noise.
func checkInterleaved(t *testing.T, data []byte) {
	take := func(k int) []byte {
		b := make([]byte, k)
		n := copy(b, data)
		data = data[n:]
		for i := n; i < k; i++ {
			b[i] = byte(i)
		}
		return b
	}
	var line []byte
	var want [][]byte
	for len(data) >= 2 {
		op, n := data[0]%4, int(data[1])
		data = data[2:]
		switch op {
		case 0, 1:
			msg := take(n + 1)
			if !serialNests(msg) {
				want = append(want, msg)
			}
			line = append(line, mustFrame(t, msg)...)
		case 2:
			line = append(line, take(n)...)
		case 3:
			fr := mustFrame(t, take(n+1))
			line = append(line, fr[:n%len(fr)]...)
		}
	}

	var d Deframer
	var got [][]byte
	step := 1
	for p := line; len(p) > 0; step = step*7%509 + 1 {
		n := min(step, len(p))
		got = d.Feed(got, p[:n])
		p = p[n:]
	}
	valid := serialIntactFrames(line)
	i := 0
	for _, msg := range got {
		if i < len(want) && bytes.Equal(msg, want[i]) {
			i++
			continue
		}
		if !valid[string(msg)] {
			t.Fatalf("delivered %x, which was not on the line as a valid frame", msg)
		}
	}
	if i != len(want) {
		t.Fatalf("%d of %d real messages came out in order; message %d (%d bytes) is missing", i, len(want), i, len(want[i]))
	}
}
