package heartbeat

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/testenv"
	"golang.org/x/sys/unix"
)

// TestSerialLab runs the serial medium over the lab's cable, which moves
// bytes at line speed and can be cut. Each node's end is opened from the
// machine through the node's own root, /proc/<init pid>/root, where the
// lab bind-mounted it.
func TestSerialLab(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{})
	end := func(node string) string {
		return filepath.Join("/proc", strconv.Itoa(lab.Node(node).PID()), "root", lab.SerialDevice())
	}
	dial := func(node string) *Serial {
		t.Helper()
		s, err := DialSerial(SerialConfig{Device: end(node), Baud: lab.Baud()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// A second writer on node a's end puts noise on the line between the
	// medium's frames. (Root opens a line held exclusive.)
	noisy, err := os.OpenFile(end("a"), os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer noisy.Close()
	r := rand.New(rand.NewPCG(11, 12))
	inject := func() {
		t.Helper()
		var b []byte
		switch r.IntN(3) {
		case 0:
			b = make([]byte, 1+r.IntN(120))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			copy(b[r.IntN(len(b)):], serialMarker[:])
		case 1:
			f := mustFrame(t, serialMsg(r.IntN(1000), 40+r.IntN(400)))
			b = f[:1+r.IntN(len(f)-1)]
		case 2:
			b = mustFrame(t, serialMsg(r.IntN(1000), 60))
			binary.BigEndian.PutUint16(b[4:], uint16(200+r.IntN(MaxMessageSize-200)))
		}
		if _, err := noisy.Write(b); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("resync", func(t *testing.T) {
		sa, sb := dial("a"), dial("b")
		defer sa.Close()
		defer sb.Close()
		rx := serialReceiver(sb)
		const count = 30
		for i := range count {
			inject()
			if err := sa.Send(serialMsg(i, 60+i)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, fmt.Sprintf("frame %d on the line", i), func() bool { return sa.Stats().Sent == uint64(i+1) })
		}
		for i := range count {
			got := nextRx(t, rx, fmt.Sprintf("frame %d", i))
			if got.err != nil {
				t.Fatalf("frame %d: %v", i, got.err)
			}
			if want := serialMsg(i, 60+i); !bytes.Equal(got.msg, want) {
				t.Fatalf("frame %d: got %d bytes starting %x, want %d bytes", i, len(got.msg), got.msg[:min(4, len(got.msg))], len(want))
			}
		}
		st := sb.Stats().Deframe
		if st.Frames != count || st.Skipped == 0 {
			t.Fatalf("receiver stats %+v: want %d frames and the noise skipped", st, count)
		}
		t.Logf("receiver: %+v", st)
	})

	t.Run("nodes", func(t *testing.T) {
		timing := Timing{Keepalive: 100 * time.Millisecond, Warntime: 300 * time.Millisecond, Deadtime: 500 * time.Millisecond, Initdead: 5 * time.Second}
		nodes := map[string]*Node{}
		events := map[string]*collector{}
		media := map[string]*Serial{}
		for _, name := range []string{"a", "b"} {
			peer := map[string]string{"a": "b", "b": "a"}[name]
			s := dial(name)
			n, err := Start(context.Background(), NodeConfig{
				Cluster: "filer", Name: name, Peers: []string{peer}, Key: testKey,
				Generation: 1, Timing: timing, Media: []Medium{s},
			})
			if err != nil {
				s.Close()
				t.Fatal(err)
			}
			t.Cleanup(func() { n.Close() })
			nodes[name], events[name], media[name] = n, collect(n), s
		}
		heard := func(name string) uint64 { return nodes[name].Stats().Media[0].Received }
		downs := func(name string, since time.Time) []Event {
			return events[name].find(func(e Event) bool { return e.Kind == EventMediumDown && !e.Time.Before(since) })
		}
		waitFor(t, "both peers alive over the cable", func() bool {
			return events["a"].has(EventPeerAlive, "b", "") && events["b"].has(EventPeerAlive, "a", "")
		})

		// Noise from a's end between its heartbeats: b keeps hearing a,
		// and nothing damaged reaches the message layer.
		start := time.Now()
		for range 20 {
			before := heard("b")
			inject()
			waitFor(t, "a heartbeat after the noise", func() bool { return heard("b") > before })
		}
		if got := downs("b", start); len(got) != 0 {
			t.Fatalf("noise took the medium down: %+v", got)
		}
		if st := media["b"].Stats().Deframe; st.Skipped == 0 {
			t.Fatalf("b's deframer skipped nothing: %+v", st)
		}

		// Cut: the medium goes down on both sides within deadtime.
		cut := time.Now()
		if err := lab.Cut("a", testenv.LinkSerial); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"a", "b"} {
			waitFor(t, name+" to see the medium down", func() bool { return len(downs(name, cut)) > 0 })
			took := downs(name, cut)[0].Time.Sub(cut)
			t.Logf("%s: medium down %v after the cut", name, took.Round(time.Millisecond))
			if limit := timing.Deadtime + 250*time.Millisecond; took > limit {
				t.Errorf("%s: medium down %v after the cut, deadtime is %v", name, took, timing.Deadtime)
			}
		}

		// Restore: up again on both sides, and it stays up.
		restored := time.Now()
		if err := lab.Restore("a", testenv.LinkSerial); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"a", "b"} {
			peer := map[string]string{"a": "b", "b": "a"}[name]
			waitFor(t, name+" to see the medium up", func() bool {
				return len(events[name].find(func(e Event) bool {
					return e.Kind == EventMediumUp && e.Peer == peer && !e.Time.Before(restored)
				})) > 0
			})
		}
		t.Logf("medium up on both sides %v after the restore", time.Since(restored).Round(time.Millisecond))
		// Watching for a flap is watching for something not to happen:
		// three deadtimes of quiet is the test.
		time.Sleep(3 * timing.Deadtime)
		for _, name := range []string{"a", "b"} {
			if got := downs(name, restored); len(got) != 0 {
				t.Errorf("%s: the medium flapped after the restore: %+v", name, got)
			}
			c := nodes[name].Stats().Media[0].Counters
			if c.Forged+c.Malformed+c.Truncated+c.Foreign+c.UnknownSender != 0 {
				t.Errorf("%s: damaged input reached the message layer: %+v", name, c)
			}
			t.Logf("%s: serial %+v", name, media[name].Stats())
		}
	})
}
