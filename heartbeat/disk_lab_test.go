package heartbeat

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tandem-ha/tandem/quorum"
	"github.com/tandem-ha/tandem/testenv"
)

// nodeDevice is the lab node's own loop device over the shared quorum
// image, opened from the test process through the node's mount namespace.
func nodeDevice(lab *testenv.Lab, node string) string {
	return fmt.Sprintf("/proc/%d/root%s", lab.Node(node).PID(), lab.QuorumDevice())
}

// flipSlotBit flips one bit of a slot sector through a device with
// O_DIRECT, as a failing disk would.
func flipSlotBit(t *testing.T, dev string, sectorSize int, slot int) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_DIRECT|unix.O_DSYNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, sectorSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	off := quorum.SlotSector(slot) * int64(sectorSize)
	if _, err := f.ReadAt(buf, off); err != nil {
		t.Fatal(err)
	}
	buf[100] ^= 0x20
	if _, err := f.WriteAt(buf, off); err != nil {
		t.Fatal(err)
	}
}

// TestLabDiskMedium runs two heartbeat Nodes with only the disk medium,
// each through its own loop device over one quorum image with O_DIRECT, as
// two servers see one shared disk. Cutting a off the disk makes b see a's
// counter stop while b's own writes go on; a bit-flipped slot is counted
// and ignored; restoring a's disk brings the medium back.
func TestLabDiskMedium(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{})
	devA, devB := nodeDevice(lab, "a"), nodeDevice(lab, "b")
	rep, err := quorum.Init(devB, "filer", []string{"alpha", "beta"}, quorum.Params{Interval: 50 * time.Millisecond}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Direct || rep.BlockSize < 512 {
		t.Fatalf("init through a loop device: %+v", rep)
	}
	// a's loop device has a page cache of its own: only O_DIRECT reads
	// show it what b wrote.
	qa, err := quorum.Open(devA, quorum.Options{Cluster: "filer", ReadOnly: true})
	if err != nil {
		t.Fatalf("a does not see the header b wrote: %v", err)
	}
	qa.Close()

	timing := Timing{Keepalive: 50 * time.Millisecond, Warntime: 300 * time.Millisecond, Deadtime: time.Second, Initdead: 5 * time.Second}
	log := slog.New(slog.DiscardHandler)
	ma, err := DialDisk(DiskConfig{Device: devA, Cluster: "filer", Local: "alpha", Peer: "beta", IOTimeout: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := DialDisk(DiskConfig{Device: devB, Cluster: "filer", Local: "beta", Peer: "alpha", IOTimeout: time.Second, Logger: log})
	if err != nil {
		ma.Close()
		t.Fatal(err)
	}
	na := startNode(t, NodeConfig{Name: "alpha", Peers: []string{"beta"}, Timing: timing, Media: []Medium{ma}})
	nb := startNode(t, NodeConfig{Name: "beta", Peers: []string{"alpha"}, Timing: timing, Media: []Medium{mb}})
	ca, cb := collect(na), collect(nb)
	waitFor(t, "both nodes to hear each other on the disk", func() bool {
		return ca.has(EventMediumUp, "beta", "disk") && cb.has(EventMediumUp, "alpha", "disk")
	})

	// Cut a off the disk.
	if err := lab.FailDisk("a"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	waitFor(t, "b to see the disk medium down for alpha", func() bool { return cb.has(EventMediumDown, "alpha", "disk") })
	if el := time.Since(cut); el > timing.Deadtime+time.Second {
		t.Errorf("medium down %v after the cut, deadtime %v", el, timing.Deadtime)
	}
	stalled := mb.Stats().PeerCounter
	writes := mb.Stats().Writes
	waitFor(t, "b's own writes to go on", func() bool { return mb.Stats().Writes >= writes+5 })
	if c := mb.Stats().PeerCounter; c != stalled {
		t.Errorf("alpha's counter moved from %d to %d while alpha was cut off", stalled, c)
	}
	waitFor(t, "alpha's failed writes to show as send errors", func() bool {
		return mediumStats(na, "disk").SendErrors > 0 && ma.Stats().WriteErrors > 0
	})

	// A bit flip in alpha's slot, seen by b: counted, never delivered.
	received := len(cb.find(func(e Event) bool { return e.Kind == EventReceived && e.Peer == "alpha" }))
	flipSlotBit(t, devB, rep.Header.SectorSize, 0)
	waitFor(t, "b to reject alpha's flipped slot", func() bool { return mb.Stats().Corrupt > 0 })
	if n := len(cb.find(func(e Event) bool { return e.Kind == EventReceived && e.Peer == "alpha" })); n != received {
		t.Errorf("b received %d messages from alpha off a corrupt slot", n-received)
	}
	if len(cb.find(func(e Event) bool { return e.Kind == EventMediumUp && e.Peer == "alpha" })) > 1 {
		t.Error("a corrupt slot brought the medium up")
	}

	// Restore: alpha's writer rewrites its slot and b hears it again.
	if err := lab.RestoreDisk("a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to hear alpha on the disk again", func() bool {
		return len(cb.find(func(e Event) bool { return e.Kind == EventMediumUp && e.Peer == "alpha" })) >= 2
	})
	waitFor(t, "alpha to hear beta again", func() bool {
		return len(ca.find(func(e Event) bool { return e.Kind == EventMediumUp && e.Peer == "beta" })) >= 2
	})
	r, err := quorum.Dump(devA, quorum.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Slots {
		if s.Err != nil {
			t.Errorf("after restore: %v", s.Err)
		}
	}
}
