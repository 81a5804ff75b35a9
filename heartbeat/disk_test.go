package heartbeat

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/quorum"
)

const diskTestInterval = 20 * time.Millisecond

// diskImage initialises a quorum image in a regular file for alpha and
// beta of cluster filer.
func diskImage(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "quorum.img")
	if err := os.WriteFile(path, make([]byte, 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := quorum.Init(path, "filer", []string{"alpha", "beta"}, quorum.Params{Interval: diskTestInterval}, false); err != nil {
		t.Fatal(err)
	}
	return path
}

func dialDisk(t *testing.T, path, local, peer string) *Disk {
	t.Helper()
	d, err := DialDisk(DiskConfig{Device: path, Cluster: "filer", Local: local, Peer: peer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// diskReceive runs Receive on its own goroutine and hands over what it
// returns.
type diskReceived struct {
	msg  []byte
	from string
	err  error
}

func diskReceiver(d *Disk) <-chan diskReceived {
	ch := make(chan diskReceived, 16)
	go func() {
		for {
			msg, from, err := d.Receive()
			ch <- diskReceived{msg, from, err}
			if errors.Is(err, os.ErrClosed) {
				close(ch)
				return
			}
		}
	}()
	return ch
}

func expectMessage(t *testing.T, ch <-chan diskReceived, want []byte) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("receive: %v", r.err)
			}
			if bytes.Equal(r.msg, want) {
				if r.from != "slot 0 (alpha)" {
					t.Errorf("from %q", r.from)
				}
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %q", want)
		}
	}
}

func TestDiskMediumCarriesLatestMessage(t *testing.T) {
	path := diskImage(t)
	a := dialDisk(t, path, "alpha", "beta")
	b := dialDisk(t, path, "beta", "alpha")
	if a.Name() != "disk" || a.Interval() != diskTestInterval {
		t.Errorf("name %q, interval %v", a.Name(), a.Interval())
	}
	rx := diskReceiver(b)
	// b's first poll sets its baseline; wait for it so the next write is
	// news.
	waitFor(t, "b's first poll", func() bool { return b.Stats().Polls > 0 })
	if err := a.Send([]byte("first")); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, rx, []byte("first"))

	// A burst is written at most once per interval, and the last message
	// wins.
	start := time.Now()
	before := a.Stats().Writes
	for i := range 50 {
		if err := a.Send([]byte{'m', byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	expectMessage(t, rx, []byte{'m', 49})
	writes := a.Stats().Writes - before
	if limit := uint64(time.Since(start)/diskTestInterval) + 2; writes > limit {
		t.Errorf("%d writes in %v, limit %d", writes, time.Since(start), limit)
	}
	qd, err := quorum.Open(path, quorum.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer qd.Close()
	s, err := qd.ReadSlot(0)
	if err != nil || !bytes.Equal(s.Payload, []byte{'m', 49}) || s.Counter != a.Stats().Counter {
		t.Errorf("alpha's slot: %+v, %v; stats %+v", s, err, a.Stats())
	}

	if err := a.Send(make([]byte, quorum.MaxPayload(quorum.DefaultSectorSize)+1)); err == nil {
		t.Error("oversized message accepted")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for r := range rx {
		if r.err != nil && !errors.Is(r.err, os.ErrClosed) {
			t.Errorf("receive after close: %v", r.err)
		}
	}
	if err := b.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := b.Send([]byte("late")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("send after close: %v", err)
	}
}

func TestDiskMediumSkipsBadSectors(t *testing.T) {
	path := diskImage(t)
	a := dialDisk(t, path, "alpha", "beta")
	b := dialDisk(t, path, "beta", "alpha")
	rx := diskReceiver(b)
	waitFor(t, "b's first poll", func() bool { return b.Stats().Polls > 0 })
	if err := a.Send([]byte("one")); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, rx, []byte("one"))
	waitFor(t, "a's write", func() bool { return a.Stats().Writes > 0 })

	// Stop a's writes, then flip a bit of its slot: b counts it and
	// delivers nothing.
	a.mu.Lock()
	a.writeSlot = func(int, *quorum.Slot) error { return errors.New("disk gone") }
	a.mu.Unlock()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sector := int64(quorum.DefaultSectorSize)
	if _, err := f.WriteAt([]byte{0x5a}, quorum.SlotSector(0)*sector+100); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to reject the flipped slot", func() bool { return b.Stats().Corrupt >= 3 })
	if !strings.Contains(b.Stats().LastError, "checksum mismatch") {
		t.Errorf("last error %q", b.Stats().LastError)
	}
	// A sector of another place: beta's own slot copied over alpha's.
	own := make([]byte, sector)
	if _, err := f.ReadAt(own, quorum.SlotSector(1)*sector); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(own, quorum.SlotSector(0)*sector); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to reject the misplaced slot", func() bool { return b.Stats().Foreign >= 1 })
	select {
	case r := <-rx:
		t.Fatalf("delivered %q, %v from a bad sector", r.msg, r.err)
	default:
	}

	// a's disk comes back: its next write heals the slot.
	a.mu.Lock()
	a.writeSlot = a.disk.WriteSlot
	a.mu.Unlock()
	if err := a.Send([]byte("two")); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, rx, []byte("two"))
}

func TestDiskMediumWriteErrors(t *testing.T) {
	path := diskImage(t)
	a := dialDisk(t, path, "alpha", "beta")
	var fail atomic.Bool
	fail.Store(true)
	var attempts atomic.Int32
	a.mu.Lock()
	a.writeSlot = func(i int, s *quorum.Slot) error {
		attempts.Add(1)
		if fail.Load() {
			return errors.New("EIO")
		}
		return a.disk.WriteSlot(i, s)
	}
	a.mu.Unlock()
	if err := a.Send([]byte("x")); err != nil {
		t.Fatalf("first send: %v", err)
	}
	// The writer keeps trying the pending message on its own.
	waitFor(t, "retries", func() bool { return attempts.Load() >= 3 })
	if err := a.Send([]byte("y")); err == nil || !strings.Contains(err.Error(), "EIO") {
		t.Fatalf("send after failed writes: %v", err)
	}
	if st := a.Stats(); st.WriteErrors < 3 || st.Writes != 0 {
		t.Errorf("stats %+v", st)
	}
	fail.Store(false)
	waitFor(t, "a write", func() bool { return a.Stats().Writes > 0 })
	qd, err := quorum.Open(path, quorum.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer qd.Close()
	if s, err := qd.ReadSlot(0); err != nil || string(s.Payload) != "y" {
		t.Errorf("slot after recovery: %+v, %v", s, err)
	}
}

func TestDialDiskRejects(t *testing.T) {
	path := diskImage(t)
	for _, cfg := range []DiskConfig{
		{Device: path, Cluster: "other", Local: "alpha", Peer: "beta"},
		{Device: path, Cluster: "filer", Local: "alpha", Peer: "gamma"},
		{Device: path, Cluster: "filer", Local: "alpha", Peer: "alpha"},
		{Device: filepath.Join(t.TempDir(), "none"), Cluster: "filer", Local: "alpha", Peer: "beta"},
	} {
		if d, err := DialDisk(cfg); err == nil {
			d.Close()
			t.Errorf("%+v: accepted", cfg)
		}
	}
}

// TestDiskMediumNodes runs two Nodes with only the disk medium between
// them: they hear each other, and when one stops, the other sees the disk
// go down and the peer dead.
func TestDiskMediumNodes(t *testing.T) {
	path := diskImage(t)
	timing := Timing{Keepalive: diskTestInterval, Warntime: 200 * time.Millisecond, Deadtime: 400 * time.Millisecond, Initdead: 2 * time.Second}
	st, err := Status{Role: "active"}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	na := startNode(t, NodeConfig{Name: "alpha", Peers: []string{"beta"}, Timing: timing, Status: st,
		Media: []Medium{dialDisk(t, path, "alpha", "beta")}})
	nb := startNode(t, NodeConfig{Name: "beta", Peers: []string{"alpha"}, Timing: timing,
		Media: []Medium{dialDisk(t, path, "beta", "alpha")}})
	ca, cb := collect(na), collect(nb)
	waitFor(t, "both to hear each other on the disk", func() bool {
		return ca.has(EventMediumUp, "beta", "disk") && cb.has(EventMediumUp, "alpha", "disk")
	})
	got := cb.find(func(e Event) bool { return e.Kind == EventReceived && e.Peer == "alpha" })
	if len(got) == 0 || got[0].Medium != "disk" || got[0].Message.Type != TypeHeartbeat {
		t.Fatalf("beta received %+v", got)
	}
	qd, err := quorum.Open(path, quorum.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer qd.Close()
	if s, err := qd.ReadSlot(0); err != nil || s.Role != quorum.RoleActive || s.Generation != na.Stats().Generation {
		t.Errorf("alpha's slot: %+v, %v", s, err)
	}
	na.Close()
	stopped := time.Now()
	waitFor(t, "beta to see alpha dead", func() bool { return cb.has(EventPeerDead, "alpha", "") })
	if el := time.Since(stopped); el > 2*timing.Deadtime {
		t.Errorf("peer dead %v after it stopped, deadtime %v", el, timing.Deadtime)
	}
}

func TestInspect(t *testing.T) {
	c := testCodec(t)
	msg, err := c.Marshal(&Message{Type: TypeHeartbeat, Sender: "alpha", Generation: 3, Sequence: 9})
	if err != nil {
		t.Fatal(err)
	}
	m, cluster, err := Inspect(msg)
	if err != nil || cluster != c.Cluster() || m.Sender != "alpha" || m.Sequence != 9 {
		t.Errorf("inspect: %+v %q %v", m, cluster, err)
	}
	if _, _, err := Inspect(msg[:10]); !errors.Is(err, ErrTruncated) {
		t.Errorf("inspect of a cut message: %v", err)
	}
}
