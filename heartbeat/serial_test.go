package heartbeat

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// serialMsg returns a message of n bytes that tells i apart.
func serialMsg(i, n int) []byte {
	b := make([]byte, n)
	for k := range b {
		b[k] = byte(i*31 + k*7)
	}
	binary.BigEndian.PutUint32(b, uint32(i))
	return b
}

func mustFrame(t testing.TB, msg []byte) []byte {
	t.Helper()
	f, err := AppendFrame(nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestAppendFrame(t *testing.T) {
	// Pinned: marker, length 2, "hi", CRC32C over 00 02 68 69.
	got := mustFrame(t, []byte("hi"))
	if want := "7e54444d0002686903f4b7da"; hex.EncodeToString(got) != want {
		t.Fatalf("frame of \"hi\" = %x, want %s", got, want)
	}
	// Appends after what dst holds.
	f, err := AppendFrame([]byte("xy"), []byte("hi"))
	if err != nil || !bytes.Equal(f, cat([]byte("xy"), got)) {
		t.Fatalf("AppendFrame(xy, hi) = %x, %v", f, err)
	}
	max := mustFrame(t, serialMsg(1, MaxMessageSize))
	if len(max) != MaxFrameSize {
		t.Fatalf("largest frame is %d bytes, want MaxFrameSize %d", len(max), MaxFrameSize)
	}
	for _, n := range []int{0, MaxMessageSize + 1} {
		if _, err := AppendFrame(nil, make([]byte, n)); err == nil || !strings.Contains(err.Error(), fmt.Sprint(n)) {
			t.Errorf("AppendFrame of %d bytes: err = %v, want an error naming the size", n, err)
		}
	}
}

func TestDeframe(t *testing.T) {
	a, b, c := serialMsg(1, 100), serialMsg(2, 100), serialMsg(3, 100)
	fa, fb, fc := mustFrame(t, a), mustFrame(t, b), mustFrame(t, c)
	withLen := func(f []byte, n int) []byte {
		f = bytes.Clone(f)
		binary.BigEndian.PutUint16(f[4:], uint16(n))
		return f
	}
	flip := func(f []byte, at int) []byte {
		f = bytes.Clone(f)
		f[at] ^= 0x10
		return f
	}
	noise := []byte("line noise \x00\xff\x13\x11\r\n~~T")
	// A message that carries a whole frame inside it. A marker alone
	// inside a message costs nothing.
	inner := serialMsg(9, 20)
	nesting := cat([]byte("head"), mustFrame(t, inner), []byte("tail"))
	fn := mustFrame(t, nesting)

	tests := []struct {
		name      string
		in        []byte
		want      [][]byte
		crc, blen uint64
		abandoned uint64
		skipped   int
		buffered  int
		// nested: a message holds an intact frame, which fed in pieces
		// may come out in its place; only the whole feed is exact.
		nested bool
	}{
		{name: "empty"},
		{name: "one frame", in: fa, want: [][]byte{a}},
		{name: "back to back", in: cat(fa, fb, fc), want: [][]byte{a, b, c}},
		{name: "noise before", in: cat(noise, fa), want: [][]byte{a}, skipped: len(noise)},
		{name: "noise between", in: cat(fa, noise, fb), want: [][]byte{a, b}, skipped: len(noise)},
		{name: "noise only", in: noise, skipped: len(noise) - 2, buffered: 2},
		{name: "partial markers", in: cat([]byte("~T~TD~TDM\xff\xff"), fa), want: [][]byte{a}, skipped: 11, blen: 1},
		{name: "half frame", in: cat(fa[:60], fb), want: [][]byte{b}, crc: 1, skipped: 60},
		{name: "half header", in: cat(fa[:5], fb, fc), want: [][]byte{b, c}, crc: 1, skipped: 5},
		{name: "marker only", in: cat(fa[:4], fb), want: [][]byte{b}, blen: 1, skipped: 4},
		{name: "length too long", in: cat(withLen(fa, 150), fb, fc), want: [][]byte{b, c}, crc: 1, skipped: len(fa)},
		{name: "length beyond what follows", in: cat(withLen(fa, 1100), fb, fc), want: [][]byte{b, c}, abandoned: 1, skipped: len(fa)},
		{name: "half frame beyond what follows", in: cat(mustFrame(t, serialMsg(5, 900))[:200], fb), want: [][]byte{b}, abandoned: 1, skipped: 200},
		{name: "length too short", in: cat(withLen(fa, 50), fb), want: [][]byte{b}, crc: 1, skipped: len(fa)},
		{name: "oversize length", in: cat(withLen(fa, MaxMessageSize+1), fb), want: [][]byte{b}, blen: 1, skipped: len(fa)},
		{name: "length 0xffff", in: cat(withLen(fa, 0xffff), fb), want: [][]byte{b}, blen: 1, skipped: len(fa)},
		{name: "zero length", in: cat(withLen(fa, 0), fb), want: [][]byte{b}, blen: 1, skipped: len(fa)},
		{name: "flipped message bit", in: cat(flip(fa, 50), fb), want: [][]byte{b}, crc: 1, skipped: len(fa)},
		{name: "flipped CRC bit", in: cat(flip(fa, len(fa)-1), fb), want: [][]byte{b}, crc: 1, skipped: len(fa)},
		{name: "flipped length bit", in: cat(flip(fa, 5), fb, fc), want: [][]byte{b, c}, crc: 1, skipped: len(fa)},
		{name: "marker inside a message", in: cat(mustFrame(t, cat(a, serialMarker[:], []byte{0, 1})), fb), want: [][]byte{cat(a, serialMarker[:], []byte{0, 1}), b}},
		{name: "frame inside a message", in: cat(fn, fa), want: [][]byte{nesting, a}, nested: true},
		{name: "frame inside a damaged frame", in: cat(flip(fn, 8), fa), want: [][]byte{inner, a}, crc: 1, skipped: len(fn) - len(mustFrame(t, inner))},
		{name: "incomplete frame waits", in: fa[:len(fa)-1], buffered: len(fa) - 1},
		{name: "frame then incomplete", in: cat(fa, fb[:30]), want: [][]byte{a}, buffered: 30},
		{name: "largest message", in: cat(noise, mustFrame(t, serialMsg(4, MaxMessageSize))), want: [][]byte{serialMsg(4, MaxMessageSize)}, skipped: len(noise)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, byte by byte, and split at every point: the same result.
			feeds := [][][]byte{{tt.in}, {}}
			for i := range tt.in {
				feeds[1] = append(feeds[1], tt.in[i:i+1])
			}
			for cut := 1; cut < len(tt.in); cut++ {
				feeds = append(feeds, [][]byte{tt.in[:cut], tt.in[cut:]})
			}
			if tt.nested {
				feeds = feeds[:1]
			}
			for k, chunks := range feeds {
				var d Deframer
				var got [][]byte
				for _, p := range chunks {
					got = d.Feed(got, p)
				}
				st := d.Stats()
				if len(got) != len(tt.want) {
					t.Fatalf("feed %d: %d messages, want %d", k, len(got), len(tt.want))
				}
				for i := range got {
					if !bytes.Equal(got[i], tt.want[i]) {
						t.Fatalf("feed %d: message %d = %x, want %x", k, i, got[i], tt.want[i])
					}
				}
				// Fed whole, a frame is judged by its CRC; in pieces it may
				// be given up before it is complete instead.
				crc, abandoned := st.CRCErrors, st.Abandoned
				if k > 0 {
					crc, abandoned = crc+abandoned, 0
					if tt.abandoned > 0 {
						crc, abandoned = 0, crc
					}
				}
				if crc != tt.crc || abandoned != tt.abandoned || st.BadLength != tt.blen || st.Skipped != uint64(tt.skipped) || d.Buffered() != tt.buffered {
					t.Fatalf("feed %d: stats %+v, buffered %d; want %d CRC errors, %d abandoned, %d bad lengths, %d skipped, %d buffered",
						k, st, d.Buffered(), tt.crc, tt.abandoned, tt.blen, tt.skipped, tt.buffered)
				}
				if st.Frames != uint64(len(got)) || st.Bytes+st.Skipped+uint64(d.Buffered()) != uint64(len(tt.in)) {
					t.Fatalf("feed %d: stats %+v and %d buffered do not account for %d bytes", k, st, d.Buffered(), len(tt.in))
				}
			}
		})
	}
}

func TestDeframeOwnsMessages(t *testing.T) {
	var d Deframer
	in := cat(mustFrame(t, []byte("first")), mustFrame(t, []byte("second")))
	got := d.Feed(nil, in)
	clear(in)
	d.Feed(nil, mustFrame(t, []byte("third")))
	if len(got) != 2 || string(got[0]) != "first" || string(got[1]) != "second" {
		t.Fatalf("messages changed after the input was reused: %q", got)
	}
}

// TestDeframeInterleavedRandom checks the interleaving property (see
// checkInterleaved) on random streams beyond the fuzz corpus.
func TestDeframeInterleavedRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		b := make([]byte, r.IntN(3000))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		checkInterleaved(t, b)
	}
}

// serialPTY opens a pty and a serial medium on its terminal side; the
// test plays the far end through the master.
func serialPTY(t *testing.T, baud int) (*os.File, *Serial) {
	t.Helper()
	m, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	s, err := DialSerial(SerialConfig{Device: tty.Name(), Baud: baud})
	if err != nil {
		m.Close()
		tty.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		tty.Close()
		m.Close()
	})
	return m, s
}

type serialRx struct {
	msg  []byte
	from string
	err  error
}

// serialReceiver runs Receive in a loop until it fails.
func serialReceiver(s *Serial) <-chan serialRx {
	ch := make(chan serialRx, 64)
	go func() {
		defer close(ch)
		for {
			msg, from, err := s.Receive()
			ch <- serialRx{msg, from, err}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

func nextRx(t *testing.T, ch <-chan serialRx, what string) serialRx {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatalf("%s: receiver stopped", what)
		}
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: nothing received in 5s", what)
	}
	panic("unreachable")
}

// readFrames deframes what the medium wrote to the master until want
// messages came or the deadline passed.
func readFrames(t *testing.T, m *os.File, d *Deframer, want int, deadline time.Time) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 4096)
	for len(got) < want {
		m.SetReadDeadline(deadline)
		n, err := m.Read(buf)
		got = d.Feed(got, buf[:n])
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return got
			}
			t.Fatalf("read the far end: %v", err)
		}
	}
	return got
}

func TestSerialSendReceive(t *testing.T) {
	m, s := serialPTY(t, 0)
	if s.Name() != "serial" || s.Baud() != DefaultBaud {
		t.Fatalf("name %q baud %d, want serial and %d", s.Name(), s.Baud(), DefaultBaud)
	}
	c := testCodec(t)
	out := mustMarshal(t, c, &Message{Type: TypeHeartbeat, Sender: "alpha", Generation: 3, Sequence: 1})
	if err := s.Send(out); err != nil {
		t.Fatal(err)
	}
	var d Deframer
	got := readFrames(t, m, &d, 1, time.Now().Add(5*time.Second))
	if len(got) != 1 || !bytes.Equal(got[0], out) {
		t.Fatalf("far end got %x, want one frame of %x", got, out)
	}

	in := mustMarshal(t, c, &Message{Type: TypeHeartbeat, Sender: "beta", Generation: 4, Sequence: 1})
	if _, err := m.Write(mustFrame(t, in)); err != nil {
		t.Fatal(err)
	}
	r := nextRx(t, serialReceiver(s), "frame from the far end")
	if r.err != nil || !bytes.Equal(r.msg, in) || r.from != s.Device() {
		t.Fatalf("Receive = %x, %q, %v; want %x from %s", r.msg, r.from, r.err, in, s.Device())
	}
	if _, err := c.Unmarshal(r.msg); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(nil); err == nil {
		t.Fatal("Send of an empty message succeeded")
	}
	if err := s.Send(make([]byte, MaxMessageSize+1)); err == nil {
		t.Fatal("Send of an oversized message succeeded")
	}
}

// TestSerialResync writes real frames with noise, half frames and damaged
// frames between them, in uneven chunks: every real frame arrives, in
// order, and nothing else does.
func TestSerialResync(t *testing.T) {
	m, s := serialPTY(t, 0)
	r := rand.New(rand.NewPCG(7, 7))
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		// Some noise looks like the start of a frame.
		if n > 10 {
			copy(b[r.IntN(n-6):], serialMarker[:])
		}
		return b
	}
	var stream []byte
	var want [][]byte
	for i := range 60 {
		msg := serialMsg(i, 40+r.IntN(200))
		f := mustFrame(t, msg)
		switch i % 6 {
		case 1:
			stream = append(stream, noise(1+r.IntN(300))...)
		case 2:
			other := mustFrame(t, serialMsg(1000+i, 40+r.IntN(200)))
			stream = append(stream, other[:1+r.IntN(len(other)-1)]...)
		case 3:
			other := mustFrame(t, serialMsg(1000+i, 40+r.IntN(200)))
			other[6+r.IntN(len(other)-6)] ^= 1 << r.IntN(8)
			stream = append(stream, other...)
		case 4:
			other := mustFrame(t, serialMsg(1000+i, 100))
			binary.BigEndian.PutUint16(other[4:], uint16(r.IntN(0x10000)))
			stream = append(stream, other...)
		}
		stream = append(stream, f...)
		want = append(want, msg)
	}
	// The line goes on after the last fault, as heartbeats do.
	tail := serialMsg(5000, 200)
	stream = append(stream, mustFrame(t, tail)...)
	stream = append(stream, mustFrame(t, tail)...)

	rx := serialReceiver(s)
	go func() {
		for len(stream) > 0 {
			n := min(len(stream), 1+r.IntN(700))
			if _, err := m.Write(stream[:n]); err != nil {
				return
			}
			stream = stream[n:]
		}
	}()
	for i, w := range want {
		got := nextRx(t, rx, fmt.Sprintf("message %d", i))
		if got.err != nil {
			t.Fatalf("message %d: %v", i, got.err)
		}
		if !bytes.Equal(got.msg, w) {
			t.Fatalf("message %d: got %d bytes starting %x, want %d bytes starting %x", i, len(got.msg), got.msg[:4], len(w), w[:4])
		}
	}
	if got := nextRx(t, rx, "tail"); !bytes.Equal(got.msg, tail) {
		t.Fatalf("after the last message: got %x, want the tail", got.msg)
	}
	st := s.Stats().Deframe
	if st.Skipped == 0 || st.CRCErrors == 0 || st.BadLength == 0 {
		t.Fatalf("stats %+v: want skipped bytes, CRC errors and bad lengths counted", st)
	}
}

func TestSerialCloseUnblocksReceive(t *testing.T) {
	_, s := serialPTY(t, 0)
	rx := serialReceiver(s)
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-rx:
		if !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("Receive after Close: %v, want net.ErrClosed", r.err)
		}
	case <-time.After(time.Second):
		t.Fatal("Receive still blocked 1s after Close")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Close and Receive took %v", d)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := s.Receive(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Receive on a closed medium: %v", err)
	}
	if err := s.Send([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send on a closed medium: %v", err)
	}
}

// TestSerialPacing: at 9600 baud, with one frame on the line, a burst of
// Sends returns at once, the older frames of the burst are dropped, and
// the newest follows the one on the line after one frame time, not after
// all of them.
func TestSerialPacing(t *testing.T) {
	const baud, count, size = 9600, 10, 100
	m, s := serialPTY(t, baud)
	frameTime := s.FrameTime(size + FrameOverhead)
	if err := s.Send(serialMsg(0, size)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first frame on the line", func() bool { return s.Stats().Sent == 1 })
	start := time.Now()
	for i := 1; i < count; i++ {
		t0 := time.Now()
		if err := s.Send(serialMsg(i, size)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d > frameTime {
			t.Fatalf("Send %d blocked %v, longer than a frame time (%v)", i, d, frameTime)
		}
	}
	if d := time.Since(start); d > frameTime {
		t.Fatalf("a burst of %d Sends took %v, longer than a frame time (%v)", count-1, d, frameTime)
	}
	var d Deframer
	got := readFrames(t, m, &d, 2, time.Now().Add(5*time.Second))
	took := time.Since(start)
	if len(got) != 2 || binary.BigEndian.Uint32(got[0]) != 0 || binary.BigEndian.Uint32(got[1]) != count-1 {
		t.Fatalf("the line carried %d frames; want the first and the newest", len(got))
	}
	// The newest waits for the first to drain, and for nothing else.
	if took < frameTime/2 || took > 3*frameTime {
		t.Errorf("newest frame came %v after the burst; a frame takes %v", took, frameTime)
	}
	waitFor(t, "the writer to count the newest frame", func() bool { return s.Stats().Sent == 2 })
	if st := s.Stats(); st.Sent != 2 || st.Dropped != count-2 || st.WriteErrors != 0 {
		t.Fatalf("stats %+v; want 2 sent and the %d older pending frames dropped", st, count-2)
	}
	t.Logf("newest frame %v after the burst, frame time %v", took.Round(time.Millisecond), frameTime.Round(time.Millisecond))
}

// TestSerialSteady: Sends no faster than the line lose nothing.
func TestSerialSteady(t *testing.T) {
	m, s := serialPTY(t, 38400)
	var d Deframer
	for i := range 8 {
		if err := s.Send(serialMsg(i, 80)); err != nil {
			t.Fatal(err)
		}
		got := readFrames(t, m, &d, 1, time.Now().Add(5*time.Second))
		if len(got) != 1 || binary.BigEndian.Uint32(got[0]) != uint32(i) {
			t.Fatalf("frame %d: got %d frames", i, len(got))
		}
		waitFor(t, "the frame to count as sent", func() bool { return s.Stats().Sent == uint64(i+1) })
	}
	if st := s.Stats(); st.Dropped != 0 || st.WriteErrors != 0 {
		t.Fatalf("stats %+v: want nothing dropped", st)
	}
}

func TestDialSerialErrors(t *testing.T) {
	missing := t.TempDir() + "/ttyS9"
	tests := []struct {
		cfg  SerialConfig
		want string
	}{
		{SerialConfig{}, "no device"},
		{SerialConfig{Device: missing}, missing + ": no such file"},
		{SerialConfig{Device: "/dev/null"}, "/dev/null: not a terminal device"},
		{SerialConfig{Device: "/dev/null", Baud: -1}, "/dev/null: baud -1 out of range"},
		{SerialConfig{Name: "cable", Device: missing}, "cable medium"},
	}
	for _, tt := range tests {
		s, err := DialSerial(tt.cfg)
		if err == nil {
			s.Close()
			t.Errorf("DialSerial(%+v) succeeded", tt.cfg)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DialSerial(%+v) = %v, want it to mention %q", tt.cfg, err, tt.want)
		}
	}
}

// serialCable joins two ptys as a null-modem cable, as the lab does but
// without pacing; inject writes straight into one end's input.
type serialCable struct {
	masters [2]*os.File
	ttys    [2]*os.File
	wg      sync.WaitGroup
}

func newSerialCable(t *testing.T) *serialCable {
	t.Helper()
	c := &serialCable{}
	for i := range 2 {
		m, tty, err := pty.Open()
		if err != nil {
			t.Skipf("no pty: %v", err)
		}
		c.masters[i], c.ttys[i] = m, tty
	}
	for i := range 2 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			io.Copy(c.masters[1-i], c.masters[i])
		}()
	}
	t.Cleanup(func() {
		for i := range 2 {
			c.ttys[i].Close()
			c.masters[i].Close()
		}
		c.wg.Wait()
	})
	return c
}

// TestSerialNodes runs two Nodes over a pty cable with nothing but the
// serial medium, then fills one direction with noise: the peers stay
// alive and no damaged frame reaches the message layer.
func TestSerialNodes(t *testing.T) {
	c := newSerialCable(t)
	nodes := map[string]*Node{}
	events := map[string]*collector{}
	names := []string{"alpha", "beta"}
	for i, name := range names {
		s, err := DialSerial(SerialConfig{Device: c.ttys[i].Name()})
		if err != nil {
			t.Fatal(err)
		}
		n, err := Start(context.Background(), NodeConfig{
			Cluster: "filer", Name: name, Peers: []string{names[1-i]}, Key: testKey,
			Generation: 1, Timing: nodeTiming, Media: []Medium{s},
		})
		if err != nil {
			s.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[name], events[name] = n, collect(n)
	}
	waitFor(t, "both peers alive over serial", func() bool {
		return events["alpha"].has(EventPeerAlive, "beta", "") && events["beta"].has(EventPeerAlive, "alpha", "")
	})
	before := nodes["beta"].Stats().Media[0].Received
	r := rand.New(rand.NewPCG(3, 4))
	for range 40 {
		b := make([]byte, 1+r.IntN(200))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		copy(b[r.IntN(len(b)):], serialMarker[:])
		c.masters[1].Write(b)
		waitFor(t, "a heartbeat after the noise", func() bool { return nodes["beta"].Stats().Media[0].Received > before })
		before = nodes["beta"].Stats().Media[0].Received
	}
	st := nodes["beta"].Stats().Media[0]
	if st.Forged+st.Malformed+st.Truncated+st.Foreign != 0 {
		t.Fatalf("beta's serial counters %+v: damaged frames reached the message layer", st.Counters)
	}
	if got := events["beta"].find(func(e Event) bool { return e.Kind == EventMediumDown }); len(got) != 0 {
		t.Fatalf("medium went down under noise: %+v", got)
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	msg := serialMsg(1, 200)
	buf := make([]byte, 0, MaxFrameSize)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		buf, _ = AppendFrame(buf[:0], msg)
	}
}

// BenchmarkDeframe measures clean frames of 200-byte messages arriving in
// 4 KiB reads.
func BenchmarkDeframe(b *testing.B) {
	var stream []byte
	for i := range 200 {
		stream = append(stream, mustFrame(b, serialMsg(i, 200))...)
	}
	benchmarkDeframe(b, stream, 200)
}

// BenchmarkDeframeNoise measures the hunt through noise that is dense with
// markers and plausible lengths, each candidate costing a CRC.
func BenchmarkDeframeNoise(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	stream := make([]byte, 64<<10)
	for i := range stream {
		stream[i] = byte(r.Uint32())
	}
	for i := 0; i+6 < len(stream); i += 64 {
		copy(stream[i:], serialMarker[:])
		binary.BigEndian.PutUint16(stream[i+4:], uint16(1+r.IntN(MaxMessageSize)))
	}
	benchmarkDeframe(b, stream, 0)
}

func benchmarkDeframe(b *testing.B, stream []byte, perPass int) {
	var d Deframer
	var out [][]byte
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		for p := stream; len(p) > 0; {
			n := min(len(p), 4096)
			out = d.Feed(out[:0], p[:n])
			p = p[n:]
		}
	}
	if perPass > 0 && d.Stats().Frames < uint64(perPass) {
		b.Fatalf("deframed %d frames, want at least %d", d.Stats().Frames, perPass)
	}
}

// TestSerialFrameFromCodec: a message signed by a Codec survives framing
// and verifies on the far side.
func TestSerialFrameFromCodec(t *testing.T) {
	c := testCodec(t)
	msg := mustMarshal(t, c, &Message{Type: TypeAppFirst, Sender: "alpha", Generation: 1, Sequence: 9, Payload: bytes.Repeat([]byte("~TDM"), 300)})
	var d Deframer
	got := d.Feed(nil, cat([]byte("noise"), mustFrame(t, msg)))
	if len(got) != 1 {
		t.Fatalf("got %d messages", len(got))
	}
	m, err := c.Unmarshal(got[0])
	if err != nil || m.Sequence != 9 {
		t.Fatalf("Unmarshal = %+v, %v", m, err)
	}
}
