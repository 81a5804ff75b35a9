package quorum

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

var testParams = Params{Interval: 200 * time.Millisecond, Watchdog: 5 * time.Second}

// image creates a zeroed regular file of the given size.
func image(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "quorum.img")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

func initImage(t *testing.T, p Params) string {
	t.Helper()
	path := image(t, 1<<20)
	if _, err := Init(path, "filer", []string{"alpha", "beta"}, p, false); err != nil {
		t.Fatal(err)
	}
	return path
}

// poke writes b at off into the file behind the disk's back, as another
// writer or a failing disk would.
func poke(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestInitOpenRoundTrip(t *testing.T) {
	for _, size := range []int{0, 512, 8192} {
		p := testParams
		p.SectorSize = size
		path := image(t, 1<<20)
		rep, err := Init(path, "filer", []string{"alpha", "beta"}, p, false)
		if err != nil {
			t.Fatal(err)
		}
		want := max(size, DefaultSectorSize)
		if size == 512 {
			want = 512
		}
		if rep.Header.SectorSize != want || rep.Header.CreationID == 0 || rep.Previous != nil || rep.Overwritten != nil {
			t.Errorf("report %+v", rep)
		}
		d, err := Open(path, Options{Cluster: "filer"})
		if err != nil {
			t.Fatal(err)
		}
		h := d.Header()
		if h.SectorSize != want || h.Interval != p.Interval || h.Watchdog != p.Watchdog || h.CreationID != rep.Header.CreationID {
			t.Errorf("header %+v", h)
		}
		if i, ok := h.SlotOf("beta"); !ok || i != 1 {
			t.Errorf("beta in slot %d, %v", i, ok)
		}
		for i := range 2 {
			s, err := d.ReadSlot(i)
			if err != nil || s.Counter != 0 || s.AckFrom != NoSlot || len(s.Payload) != 0 {
				t.Errorf("fresh slot %d: %+v, %v", i, s, err)
			}
			m, err := d.ReadMailbox(i)
			if err != nil || m.Kind != MsgNone || m.From != NoSlot {
				t.Errorf("fresh mailbox %d: %+v, %v", i, m, err)
			}
		}
		payload := bytes.Repeat([]byte("hb"), MaxSectorSize)[:MaxPayload(want)]
		if err := d.WriteSlot(1, &Slot{Generation: 4, Counter: 17, Role: RoleStandby, AckFrom: NoSlot, Payload: payload}); err != nil {
			t.Fatal(err)
		}
		if err := d.WriteMailbox(1, &Mailbox{Kind: MsgReset, From: 0, Sequence: 2}); err != nil {
			t.Fatal(err)
		}
		s, err := d.ReadSlot(1)
		if err != nil || s.Counter != 17 || s.Generation != 4 || s.Role != RoleStandby || !bytes.Equal(s.Payload, payload) {
			t.Errorf("slot read back: %+v, %v", s, err)
		}
		m, err := d.ReadMailbox(1)
		if err != nil || *m != (Mailbox{Kind: MsgReset, From: 0, Sequence: 2}) {
			t.Errorf("mailbox read back: %+v, %v", m, err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ReadSlot(0); !errors.Is(err, os.ErrClosed) {
			t.Errorf("read after close: %v", err)
		}
	}
}

func TestOpenForeignCluster(t *testing.T) {
	path := initImage(t, testParams)
	_, err := Open(path, Options{Cluster: "other"})
	var se *SectorError
	if !errors.Is(err, ErrForeign) || !errors.As(err, &se) || se.Field != "cluster name" || se.Device != path {
		t.Fatalf("open as another cluster: %v", err)
	}
	if !strings.Contains(err.Error(), `cluster "filer", want "other"`) {
		t.Errorf("message %q", err)
	}
	// Nothing there at all.
	_, err = Open(image(t, 1<<20), Options{})
	if !errors.Is(err, ErrMagic) {
		t.Errorf("open a blank device: %v", err)
	}
}

func TestInitRefusesOtherCluster(t *testing.T) {
	path := initImage(t, testParams)
	first, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := first.Header().CreationID
	first.Close()

	_, err = Init(path, "other", []string{"a", "b"}, testParams, false)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), `the quorum header of cluster "filer"`) || !strings.Contains(err.Error(), path) {
		t.Fatalf("init over another cluster: %v", err)
	}
	if d, err := Open(path, Options{Cluster: "filer"}); err != nil || d.Header().CreationID != id {
		t.Fatalf("refused init changed the disk: %v", err)
	} else {
		d.Close()
	}
	rep, err := Init(path, "other", []string{"a", "b"}, testParams, true)
	if err != nil || rep.Previous == nil || rep.Previous.Cluster != "filer" || rep.Header.CreationID == id {
		t.Fatalf("forced init: %+v, %v", rep, err)
	}
	// The same cluster may initialise again; the new creation id makes
	// sectors of the old layout foreign.
	rep2, err := Init(path, "other", []string{"a", "b"}, testParams, false)
	if err != nil || rep2.Previous == nil || rep2.Header.CreationID == rep.Header.CreationID {
		t.Fatalf("re-init of the same cluster: %+v, %v", rep2, err)
	}
}

func TestInitRefusesSignatures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		off   int64
		magic string
	}{
		{"XFS filesystem", 0, "XFSB"},
		{"btrfs filesystem", 65600, "_BHRfS_M"},
		{"GPT partition table", 512, "EFI PART"},
		{"DOS/MBR partition table", 510, "\x55\xaa"},
		{"LVM2 physical volume", 512, "LABELONE"},
		{"Linux MD RAID member (superblock 1.2)", 4096, "\xfc\x4e\x2b\xa9"},
		{"Linux MD RAID member (superblock 0.90)", 1<<20 - 64<<10, "\xfc\x4e\x2b\xa9"},
		{"Linux MD RAID member (superblock 1.0)", 1<<20 - 8192, "\xfc\x4e\x2b\xa9"},
		{"LUKS encrypted volume", 0, "LUKS\xba\xbe"},
		{"Linux swap", 4086, "SWAPSPACE2"},
		{"sbd", 0, "SBD_SECT"},
		{"ext2/3/4 filesystem", 1080, "\x53\xef"},
	} {
		path := image(t, 1<<20)
		poke(t, path, tc.off, []byte(tc.magic))
		_, err := Init(path, "filer", []string{"alpha", "beta"}, testParams, false)
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		rep, err := Init(path, "filer", []string{"alpha", "beta"}, testParams, true)
		if err != nil || len(rep.Overwritten) == 0 {
			t.Errorf("%s: forced: %+v, %v", tc.name, rep, err)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if sigs := findSignatures(data[:probeLen], data, 0, int64(len(data))); len(sigs) != 0 {
			t.Errorf("%s: left after a forced init: %v", tc.name, sigs)
		}
	}
}

func TestInitRefusesExt4(t *testing.T) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not installed (Debian package e2fsprogs)")
	}
	path := image(t, 8<<20)
	if out, err := exec.Command(mkfs, "-q", "-F", path).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	_, err = Init(path, "filer", []string{"alpha", "beta"}, testParams, false)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "ext2/3/4 filesystem (magic at byte 1080)") {
		t.Fatalf("init over ext4: %v", err)
	}
	if _, err := Init(path, "filer", []string{"alpha", "beta"}, testParams, true); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("blkid", "-p", path).CombinedOutput(); err == nil {
		t.Errorf("blkid still finds a filesystem after a forced init: %s", out)
	}
}

func TestInitRejects(t *testing.T) {
	path := image(t, 1<<20)
	for name, f := range map[string]func() error{
		"one node":    func() error { _, err := Init(path, "filer", []string{"alpha"}, testParams, false); return err },
		"no interval": func() error { _, err := Init(path, "filer", []string{"a", "b"}, Params{}, false); return err },
		"sector size": func() error {
			_, err := Init(path, "filer", []string{"a", "b"}, Params{Interval: time.Second, SectorSize: 300}, false)
			return err
		},
		"no cluster": func() error { _, err := Init(path, "", []string{"a", "b"}, testParams, false); return err },
		"missing": func() error {
			_, err := Init(filepath.Join(t.TempDir(), "none"), "filer", []string{"a", "b"}, testParams, false)
			return err
		},
		"directory": func() error { _, err := Init(t.TempDir(), "filer", []string{"a", "b"}, testParams, false); return err },
	} {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTornAndFlippedSectors(t *testing.T) {
	path := initImage(t, testParams)
	d, err := Open(path, Options{Cluster: "filer"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h := d.Header()
	if err := d.WriteSlot(0, &Slot{Counter: 1, AckFrom: NoSlot, Payload: bytes.Repeat([]byte{1}, 1000)}); err != nil {
		t.Fatal(err)
	}
	// A write that lands only half: the first half of the new sector over
	// the second half of the old.
	next := must(h.MarshalSlot(0, &Slot{Counter: 2, AckFrom: NoSlot, Payload: bytes.Repeat([]byte{2}, 3000)}))
	poke(t, path, SlotSector(0)*int64(h.SectorSize), next[:h.SectorSize/2])
	_, err = d.ReadSlot(0)
	var se *SectorError
	if !errors.Is(err, ErrChecksum) || !errors.As(err, &se) || se.Sector != 1 || se.Offset != h.SectorSize-4 || se.Device != path {
		t.Fatalf("torn slot: %v", err)
	}
	// A flipped bit in beta's mailbox.
	poke(t, path, MailboxSector(1)*int64(h.SectorSize)+33, []byte{0x80})
	if _, err := d.ReadMailbox(1); !errors.Is(err, ErrChecksum) {
		t.Fatalf("flipped mailbox: %v", err)
	}
	// A sector copied to the wrong place.
	poke(t, path, SlotSector(1)*int64(h.SectorSize), next)
	if _, err := d.ReadSlot(1); !errors.Is(err, ErrMisplaced) {
		t.Fatalf("misplaced slot: %v", err)
	}

	// Dump shows each sector with its own verdict.
	r, err := Dump(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.HeaderErr != nil || r.Header.Cluster != "filer" || len(r.Slots) != 2 || len(r.Mailboxes) != 2 {
		t.Fatalf("dump %+v", r)
	}
	if !errors.Is(r.Slots[0].Err, ErrChecksum) || !errors.Is(r.Slots[1].Err, ErrMisplaced) ||
		r.Mailboxes[0].Err != nil || r.Mailboxes[0].Mailbox.Kind != MsgNone || !errors.Is(r.Mailboxes[1].Err, ErrChecksum) {
		t.Errorf("dump verdicts: %+v %+v", r.Slots, r.Mailboxes)
	}
	if r.Slots[1].Node != "beta" || r.Slots[1].Sector != 3 || r.Mailboxes[1].Sector != 4 {
		t.Errorf("dump places: %+v", r.Slots[1])
	}

	// Rewriting heals.
	if err := d.WriteSlot(0, &Slot{Counter: 3, AckFrom: NoSlot}); err != nil {
		t.Fatal(err)
	}
	if s, err := d.ReadSlot(0); err != nil || s.Counter != 3 {
		t.Fatalf("rewritten slot: %+v, %v", s, err)
	}
}

func TestDumpWithoutHeader(t *testing.T) {
	path := initImage(t, testParams)
	poke(t, path, 100, []byte{0xff})
	r, err := Dump(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(r.HeaderErr, ErrChecksum) || r.Header != nil || len(r.Slots) != 0 {
		t.Errorf("dump of a corrupt header: %+v", r)
	}
	if _, err := Dump(filepath.Join(t.TempDir(), "none"), Options{}); err == nil {
		t.Error("dump of a missing device succeeded")
	}
}

func TestShortDevice(t *testing.T) {
	path := initImage(t, testParams)
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.Truncate(path, int64(d.Header().SectorSize)*2); err != nil {
		t.Fatal(err)
	}
	_, err = d.ReadMailbox(1)
	if err == nil || !strings.Contains(err.Error(), "beyond the end of the device") {
		t.Fatalf("read past the end: %v", err)
	}
}

func TestHungIO(t *testing.T) {
	path := initImage(t, testParams)
	d, err := Open(path, Options{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	release := make(chan struct{})
	var calls atomic.Int32
	real := d.dev.readAt
	d.dev.readAt = func(b []byte, off int64) (int, error) {
		calls.Add(1)
		<-release
		return real(b, off)
	}
	start := time.Now()
	_, err = d.ReadSlot(0)
	if !errors.Is(err, ErrHung) || !strings.Contains(err.Error(), path) {
		t.Fatalf("hung read: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("hung read returned after %v", el)
	}
	// While it hangs, later I/O fails at once and does not pile up.
	for range 3 {
		if err := d.WriteSlot(0, &Slot{AckFrom: NoSlot}); !errors.Is(err, ErrHung) || !strings.Contains(err.Error(), "outstanding") {
			t.Fatalf("I/O behind a hung one: %v", err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d reads reached the device, want 1", n)
	}
	close(release)
	d.dev.readAt = real
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := d.ReadSlot(0)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrHung) || time.Now().After(deadline) {
			t.Fatalf("after the device came back: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAlignedBuffer(t *testing.T) {
	for _, align := range []int{512, 4096, 65536} {
		b := alignedBuffer(1000, align)
		if len(b) != 1000 || cap(b) != 1000 {
			t.Errorf("len %d cap %d", len(b), cap(b))
		}
		if p := uintptrOf(b); p%uintptr(align) != 0 {
			t.Errorf("buffer at %#x not aligned to %d", p, align)
		}
	}
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
