package quorum

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func listData(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// Writes alternate between the two copies; each read returns the latest
// list whole, whatever its size; a reopened disk goes on from there.
func TestConnListRoundTrip(t *testing.T) {
	path := initImage(t, testParams)
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h := d.Header()
	if want := ListSectorsFor(DefaultListConns, DefaultSectorSize); h.ListSectors != want || want < 40 {
		t.Fatalf("area of %d sectors, want %d", h.ListSectors, want)
	}
	if l, err := d.ReadConnList(1); l != nil || err != nil {
		t.Fatalf("fresh area: %+v, %v; want nothing", l, err)
	}
	per := ListBytesPerSector(h.SectorSize)
	sizes := []int{100, 0, per, per + 1, 180000, 5}
	for k, n := range sizes {
		data := listData(n, byte(k))
		w, err := d.WriteConnList(1, 9, uint64(k+1), data)
		if err != nil {
			t.Fatalf("write %d: %v", k, err)
		}
		if w.Sequence != uint64(k+1) || w.Copy != k%2 {
			t.Fatalf("write %d: sequence %d copy %d", k, w.Sequence, w.Copy)
		}
		l, err := d.ReadConnList(1)
		if err != nil {
			t.Fatal(err)
		}
		if l.Sequence != w.Sequence || l.Epoch != 9 || l.Version != uint64(k+1) || !bytes.Equal(l.Data, data) {
			t.Fatalf("read after write %d: sequence %d version %d, %d bytes", k, l.Sequence, l.Version, len(l.Data))
		}
	}
	if l, err := d.ReadConnList(0); l != nil || err != nil {
		t.Fatalf("the other node's area: %+v, %v; want nothing", l, err)
	}
	if _, err := d.WriteConnList(1, 9, 99, make([]byte, h.ListSectors*per+1)); err == nil || !strings.Contains(err.Error(), "needs") {
		t.Fatalf("a list larger than the area: %v", err)
	}
	d.Close()

	d2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	w, err := d2.WriteConnList(1, 10, 1, []byte("after a restart"))
	if err != nil || w.Sequence != uint64(len(sizes)+1) || w.Copy != len(sizes)%2 {
		t.Fatalf("write after reopening: %+v, %v", w, err)
	}
}

// A write torn part way, or a flipped bit, spoils only the copy being
// written: the reader returns the previous list from the other copy,
// never a mix.
func TestConnListTornWrite(t *testing.T) {
	path := initImage(t, testParams)
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h := d.Header()
	per := ListBytesPerSector(h.SectorSize)
	old := listData(3*per, 1)
	if _, err := d.WriteConnList(0, 1, 1, listData(3*per, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteConnList(0, 1, 2, old); err != nil { // copy 1
		t.Fatal(err)
	}
	// The next write goes to copy 0; tear it after its first two sectors.
	secs, err := h.MarshalList(0, &ConnList{Sequence: 3, Copy: 0, Epoch: 1, Version: 3, Data: listData(3*per, 2)})
	if err != nil {
		t.Fatal(err)
	}
	size := int64(h.SectorSize)
	poke(t, path, h.ListSector(0, 0, 0)*size, bytes.Join(secs[:2], nil))
	l, err := d.ReadConnList(0)
	if err != nil || l.Version != 2 || !bytes.Equal(l.Data, old) {
		t.Fatalf("after a torn write: %+v, %v; want version 2", l, err)
	}
	r, err := Dump(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var se *SectorError
	if lr := r.Lists[0]; lr.List == nil || lr.List.Version != 2 || lr.Err != nil || !errors.As(lr.CopyErrs[0], &se) || se.Field != "sequence" {
		t.Fatalf("dump of the torn area: %+v", lr)
	}
	// A flipped bit in the whole copy: no copy is whole, an error.
	poke(t, path, h.ListSector(0, 1, 1)*size+100, []byte{0xff})
	if l, err := d.ReadConnList(0); l != nil || err == nil || !strings.Contains(err.Error(), "no whole copy") {
		t.Fatalf("both copies bad: %+v, %v", l, err)
	}
	// The writer goes on: the next list lands in a copy and reads back.
	if _, err := d.WriteConnList(0, 1, 4, []byte("fresh")); err != nil {
		t.Fatal(err)
	}
	if l, err := d.ReadConnList(0); err != nil || string(l.Data) != "fresh" {
		t.Fatalf("after rewriting: %+v, %v", l, err)
	}
}

// A disk initialised before the areas existed (zeros where the header
// now says where they are) opens and has no area; so does one made with
// NoList, whose header is byte for byte the old one.
func TestConnListOldDisk(t *testing.T) {
	p := testParams
	p.ListSectors = NoList
	path := initImage(t, p)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hdr := b[:DefaultSectorSize]
	if !bytes.Equal(hdr[offListStart:hdrEnd], make([]byte, 8)) {
		t.Fatalf("header of a disk without area has % x at %d", hdr[offListStart:hdrEnd], offListStart)
	}
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if h := d.Header(); h.ListSectors != 0 || h.Sectors() != 5 {
		t.Fatalf("header %+v, %d sectors", h, h.Sectors())
	}
	if _, err := d.ReadConnList(0); !errors.Is(err, ErrNoList) {
		t.Fatalf("ReadConnList: %v, want ErrNoList", err)
	}
	if _, err := d.WriteConnList(0, 1, 1, nil); !errors.Is(err, ErrNoList) {
		t.Fatalf("WriteConnList: %v, want ErrNoList", err)
	}
	if r, err := Dump(path, Options{}); err != nil || len(r.Lists) != 0 || len(r.Slots) != 2 {
		t.Fatalf("Dump: %+v, %v", r, err)
	}
	// The headers of the seed corpus were written before the area
	// existed: those that are whole still decode, with no area.
	seeds, _ := filepath.Glob("testdata/fuzz/FuzzDecodeHeader/*")
	decoded := 0
	for _, s := range seeds {
		raw, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		hb := corpusBytes(t, raw)
		if h, err := DecodeHeader(hb); err == nil {
			decoded++
			if h.ListSectors != 0 {
				t.Errorf("%s: an area of %d sectors in an old header", s, h.ListSectors)
			}
		}
	}
	if decoded < 2 {
		t.Fatalf("%d old headers decoded from %d seeds", decoded, len(seeds))
	}
}

func TestHeaderListFields(t *testing.T) {
	h := testHeader(512)
	h.ListSectors = 3
	b := must(h.Marshal())
	if got, err := DecodeHeader(b); err != nil || got.ListSectors != 3 || got.Sectors() != 5+2*2*3 {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	if s := h.ListSector(1, 1, 2); s != 5+3*3+2 {
		t.Fatalf("ListSector(1, 1, 2) = %d", s)
	}
	for _, tt := range []struct {
		name         string
		start, count uint32
		field        string
	}{
		{"start without area", 5, 0, "list start"},
		{"start elsewhere", 7, 3, "list start"},
		{"too large", 5, MaxListSectors + 1, "list sectors"},
	} {
		bad := bytes.Clone(b)
		binary.BigEndian.PutUint32(bad[offListStart:], tt.start)
		binary.BigEndian.PutUint32(bad[offListSectors:], tt.count)
		seal(bad)
		_, err := DecodeHeader(bad)
		var se *SectorError
		if !errors.As(err, &se) || se.Field != tt.field {
			t.Errorf("%s: %v; want a fault in %q", tt.name, err, tt.field)
		}
	}
	h.ListSectors = -2
	if _, err := h.Marshal(); err == nil {
		t.Error("a negative area size was accepted")
	}
}

func TestListSectorDecodeErrors(t *testing.T) {
	h := testHeader(512)
	h.ListSectors = 4
	per := ListBytesPerSector(512)
	secs, err := h.MarshalList(1, &ConnList{Sequence: 5, Copy: 1, Epoch: 2, Version: 3, Data: listData(per+10, 0)})
	if err != nil || len(secs) != 2 {
		t.Fatalf("%d sectors, %v", len(secs), err)
	}
	if s, err := h.decodeListSector(1, 1, 1, secs[1]); err != nil || len(s.data) != 10 {
		t.Fatalf("good sector: %+v, %v", s, err)
	}
	for _, tt := range []struct {
		name      string
		i, c, pos int
		edit      func(b []byte)
		field     string
	}{
		{"other copy", 1, 0, 1, nil, "copy"},
		{"other position", 1, 1, 0, nil, "position"},
		{"other slot", 0, 1, 1, nil, "index"},
		{"sequence zero", 1, 1, 1, func(b []byte) { clear(b[offListSeq : offListSeq+8]) }, "sequence"},
		{"count", 1, 1, 1, func(b []byte) { binary.BigEndian.PutUint32(b[offListCount:], 9) }, "sector count"},
		{"length", 1, 1, 1, func(b []byte) { binary.BigEndian.PutUint32(b[offListLen:], uint32(3*per)) }, "length"},
		{"padding", 1, 1, 1, func(b []byte) { b[offListData+20] = 1 }, "padding"},
		{"reserved", 1, 1, 1, func(b []byte) { b[offListPad] = 1 }, "reserved"},
		{"crc", 1, 1, 1, func(b []byte) { b[100]++ }, "crc32c"},
	} {
		b := bytes.Clone(secs[1])
		if tt.edit != nil {
			tt.edit(b)
			if tt.field != "crc32c" {
				seal(b)
			}
		}
		_, err := h.decodeListSector(tt.i, tt.c, tt.pos, b)
		var se *SectorError
		if !errors.As(err, &se) || se.Field != tt.field {
			t.Errorf("%s: %v; want a fault in %q", tt.name, err, tt.field)
		}
	}
}

// corpusBytes returns the []byte value of a seed corpus file.
func corpusBytes(t *testing.T, raw []byte) []byte {
	t.Helper()
	lines := strings.SplitN(string(raw), "\n", 3)
	if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("not a seed corpus file: %.40q", raw)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}
