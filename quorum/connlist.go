package quorum

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Connection-list area limits.
const (
	// MaxListSectors bounds the size of one copy of a node's area.
	MaxListSectors = 1 << 16
	// DefaultListConns is how many IPv6 connections the area Init makes
	// holds unless told otherwise.
	DefaultListConns = 10000
	// NoList as Params.ListSectors makes a disk without areas.
	NoList = -1
)

// Byte offsets in a connection-list sector.
const (
	offListCopy    = 24
	offListPad     = 25
	offListPos     = 28
	offListSeq     = 32
	offListCount   = 40
	offListLen     = 44
	offListEpoch   = 48
	offListVersion = 56
	offListData    = 64
)

// ListBytesPerSector returns how many bytes of a list one sector of the
// given size holds.
func ListBytesPerSector(sectorSize int) int { return sectorSize - offListData - crcLen }

// ListSectorsFor returns the sectors one copy of an area needs to hold
// conns IPv6 connections in the encoding of tandem's connection lists
// (18 bytes a client, grouped by server address and port, with room for
// 64 such groups).
func ListSectorsFor(conns, sectorSize int) int {
	const header, perGroup, perClient = 9, 22 + 3, 18
	n := header + 64*perGroup + conns*perClient
	per := ListBytesPerSector(sectorSize)
	return max(1, (n+per-1)/per)
}

// ConnList is the content of one node's connection-list area: the active
// node's list of client connections, opaque to this package, with the
// version the list had. A node writes only its own area, and a writer
// alternates between two copies, so that a write torn by a crash leaves
// the previous list whole in the other copy.
type ConnList struct {
	// Sequence counts the writes of the area; the copy with the greater
	// Sequence is the newer. Copy is the copy (0 or 1) it was read from
	// or written to.
	Sequence uint64
	Copy     int
	// Epoch and Version are the list's own version, as its writer gives
	// it; a reader compares it with copies of the list from elsewhere.
	Epoch, Version uint64
	// Data is the encoded list.
	Data []byte
}

// ErrNoList is returned for the connection-list area of a disk that has
// none: one initialised before areas existed, or with NoList.
var ErrNoList = errors.New("no connection-list area on this disk")

// errBlank marks a copy never written since Init.
var errBlank = errors.New("never written")

func (h *Header) checkList(i int) error {
	if err := h.checkSlot(i); err != nil {
		return err
	}
	if h.ListSectors == 0 {
		return fmt.Errorf("quorum: slot %d: %w", i, ErrNoList)
	}
	return nil
}

// MarshalList encodes l as the sectors of copy l.Copy of slot i's area,
// one slice per sector, from position 0.
func (h *Header) MarshalList(i int, l *ConnList) ([][]byte, error) {
	if err := h.checkList(i); err != nil {
		return nil, err
	}
	if l.Copy != 0 && l.Copy != 1 {
		return nil, fmt.Errorf("quorum: slot %d: list copy %d, want 0 or 1", i, l.Copy)
	}
	if l.Sequence == 0 {
		return nil, fmt.Errorf("quorum: slot %d: list sequence zero", i)
	}
	per := ListBytesPerSector(h.SectorSize)
	n := max(1, (len(l.Data)+per-1)/per)
	if n > h.ListSectors {
		return nil, fmt.Errorf("quorum: slot %d: a list of %d bytes needs %d sectors, the area has %d (haclient disk init --list-conns sizes it)", i, len(l.Data), n, h.ListSectors)
	}
	out := make([][]byte, n)
	for pos := range n {
		b := make([]byte, h.SectorSize)
		putPrefix(b, KindList, i, h.CreationID)
		b[offListCopy] = byte(l.Copy)
		binary.BigEndian.PutUint32(b[offListPos:], uint32(pos))
		binary.BigEndian.PutUint64(b[offListSeq:], l.Sequence)
		binary.BigEndian.PutUint32(b[offListCount:], uint32(n))
		binary.BigEndian.PutUint32(b[offListLen:], uint32(len(l.Data)))
		binary.BigEndian.PutUint64(b[offListEpoch:], l.Epoch)
		binary.BigEndian.PutUint64(b[offListVersion:], l.Version)
		copy(b[offListData:], l.Data[min(pos*per, len(l.Data)):min((pos+1)*per, len(l.Data))])
		seal(b)
		out[pos] = b
	}
	return out, nil
}

// listSector is one decoded sector of an area.
type listSector struct {
	seq, epoch, version uint64
	count, length       int
	data                []byte
}

// decodeListSector checks sector pos of copy c of slot i's area.
func (h *Header) decodeListSector(i, c, pos int, b []byte) (*listSector, error) {
	d := &decoder{b: b, kind: KindList, index: i, sector: h.ListSector(i, c, pos)}
	if err := d.prefix(h.SectorSize); err != nil {
		return nil, err
	}
	if err := d.creation(h); err != nil {
		return nil, err
	}
	if int(b[offListCopy]) != c {
		return nil, d.errf("copy", offListCopy, ErrMisplaced, "holds copy %d, want %d", b[offListCopy], c)
	}
	if err := d.zero("reserved", offListPad, offListPos); err != nil {
		return nil, err
	}
	if p := int(binary.BigEndian.Uint32(b[offListPos:])); p != pos {
		return nil, d.errf("position", offListPos, ErrMisplaced, "holds position %d, want %d", p, pos)
	}
	s := &listSector{
		seq:     binary.BigEndian.Uint64(b[offListSeq:]),
		count:   int(binary.BigEndian.Uint32(b[offListCount:])),
		length:  int(binary.BigEndian.Uint32(b[offListLen:])),
		epoch:   binary.BigEndian.Uint64(b[offListEpoch:]),
		version: binary.BigEndian.Uint64(b[offListVersion:]),
	}
	per := ListBytesPerSector(h.SectorSize)
	switch {
	case s.seq == 0:
		return nil, d.errf("sequence", offListSeq, ErrField, "zero")
	case s.count < 1 || s.count > h.ListSectors || pos >= s.count:
		return nil, d.errf("sector count", offListCount, ErrField, "%d, want %d to %d", s.count, pos+1, h.ListSectors)
	case s.length > s.count*per || s.length <= (s.count-1)*per && s.count > 1:
		return nil, d.errf("length", offListLen, ErrField, "%d bytes do not fill %d sectors of %d", s.length, s.count, per)
	}
	n := min(per, s.length-pos*per)
	s.data = b[offListData : offListData+n]
	if err := d.zero("padding", offListData+n, h.SectorSize-crcLen); err != nil {
		return nil, err
	}
	return s, nil
}

// listCopy is what reading one copy found.
type listCopy struct {
	list *ConnList
	err  error // errBlank, a *SectorError, or an I/O error
}

// readListCopy reads copy c of slot i's area: its first sector, then the
// others it announces, in as few reads as the buffer allows. Every sector
// must carry the first one's sequence, count, length and version; a write
// torn part way leaves sectors of two writes, which this refuses.
func (d *Disk) readListCopy(i, c int) listCopy {
	h := &d.hdr
	size := int64(h.SectorSize)
	first, err := d.readSector(h.ListSector(i, c, 0))
	if err != nil {
		return listCopy{err: err}
	}
	if bytes.Count(first, []byte{0}) == len(first) {
		return listCopy{err: errBlank}
	}
	s0, err := h.decodeListSector(i, c, 0, first)
	if err != nil {
		return listCopy{err: withDevice(err, d.dev.path)}
	}
	data := append(make([]byte, 0, s0.length), s0.data...)
	batch := max(1, maxIO/h.SectorSize)
	for pos := 1; pos < s0.count; pos += batch {
		n := min(batch, s0.count-pos)
		b, err := d.dev.read(h.ListSector(i, c, pos)*size, n*h.SectorSize)
		if err != nil {
			return listCopy{err: err}
		}
		for k := range n {
			sec := b[int64(k)*size : int64(k+1)*size]
			s, err := h.decodeListSector(i, c, pos+k, sec)
			if err != nil {
				return listCopy{err: withDevice(err, d.dev.path)}
			}
			if s.seq != s0.seq || s.count != s0.count || s.length != s0.length || s.epoch != s0.epoch || s.version != s0.version {
				return listCopy{err: &SectorError{Device: d.dev.path, Sector: h.ListSector(i, c, pos+k), Kind: KindList, Index: i,
					Field: "sequence", Offset: offListSeq, Err: ErrField,
					Detail: fmt.Sprintf("write %d, the copy's first sector is of write %d: a torn write", s.seq, s0.seq)}}
			}
			data = append(data, s.data...)
		}
	}
	return listCopy{list: &ConnList{Sequence: s0.seq, Copy: c, Epoch: s0.epoch, Version: s0.version, Data: data}}
}

// readLists reads both copies and returns the newer whole one, or nil.
func (d *Disk) readLists(i int) (*ConnList, [2]listCopy) {
	copies := [2]listCopy{d.readListCopy(i, 0), d.readListCopy(i, 1)}
	var best *ConnList
	for _, c := range copies {
		if c.list != nil && (best == nil || c.list.Sequence > best.Sequence) {
			best = c.list
		}
	}
	return best, copies
}

// ReadConnList reads slot i's connection-list area and returns the newer
// of its two copies that is whole. It returns nil and no error when the
// area was never written, and an error when no copy is whole although
// one was written. A disk without areas gives ErrNoList.
func (d *Disk) ReadConnList(i int) (*ConnList, error) {
	if err := d.hdr.checkList(i); err != nil {
		return nil, err
	}
	best, copies := d.readLists(i)
	if best != nil {
		return best, nil
	}
	if errors.Is(copies[0].err, errBlank) && errors.Is(copies[1].err, errBlank) {
		return nil, nil
	}
	return nil, fmt.Errorf("quorum: %s: connection list of slot %d: no whole copy: copy 0: %v; copy 1: %v", d.dev.path, i, copies[0].err, copies[1].err)
}

// listState is what a writer knows of its own area.
type listState struct {
	known bool
	seq   uint64
	copy  int // the copy holding the newest whole list; -1 for none
}

// WriteConnList writes a list to slot i's area, in the copy that does
// not hold the newest whole list, with the next sequence number, and
// returns what it wrote. The first write after Open reads the area to
// learn which copy that is. Only the node of slot i should call it.
func (d *Disk) WriteConnList(i int, epoch, version uint64, data []byte) (*ConnList, error) {
	h := &d.hdr
	if err := h.checkList(i); err != nil {
		return nil, err
	}
	d.listMu.Lock()
	defer d.listMu.Unlock()
	if d.lists == nil {
		d.lists = make(map[int]*listState)
	}
	st := d.lists[i]
	if st == nil || !st.known {
		st = &listState{known: true, copy: -1}
		best, copies := d.readLists(i)
		for _, c := range copies {
			var se *SectorError
			if c.err != nil && !errors.Is(c.err, errBlank) && !errors.As(c.err, &se) {
				return nil, c.err // an I/O error: the disk is not fit to write
			}
		}
		if best != nil {
			st.seq, st.copy = best.Sequence, best.Copy
		}
		d.lists[i] = st
	}
	l := &ConnList{Sequence: st.seq + 1, Copy: 0, Epoch: epoch, Version: version, Data: data}
	if st.copy == 0 {
		l.Copy = 1
	}
	secs, err := h.MarshalList(i, l)
	if err != nil {
		return nil, err
	}
	size := int64(h.SectorSize)
	batch := max(1, maxIO/h.SectorSize)
	for pos := 0; pos < len(secs); pos += batch {
		n := min(batch, len(secs)-pos)
		if err := d.dev.write(h.ListSector(i, l.Copy, pos)*size, bytes.Join(secs[pos:pos+n], nil)); err != nil {
			st.known = false
			return nil, err
		}
	}
	st.seq, st.copy = l.Sequence, l.Copy
	return l, nil
}

// ListReport is one node's connection-list area in a dump.
type ListReport struct {
	// Index is the slot index, Node the node the header assigns to it.
	Index int
	Node  string
	// Sector is the first sector of the area.
	Sector int64
	// List is the newer whole copy; nil when none is (Err says why, or
	// the area was never written).
	List *ConnList
	// CopyErrs says, per copy, why it is not whole; nil for a whole one.
	// A torn copy beside a whole one is what a crash during a write
	// leaves, not a fault.
	CopyErrs [2]error
	// Blank says the area was never written.
	Blank bool
	Err   error
}

func (d *Disk) listReport(i int) ListReport {
	r := ListReport{Index: i, Node: d.hdr.Nodes[i], Sector: d.hdr.ListSector(i, 0, 0)}
	var copies [2]listCopy
	r.List, copies = d.readLists(i)
	for c := range copies {
		if !errors.Is(copies[c].err, errBlank) {
			r.CopyErrs[c] = copies[c].err
		}
	}
	r.Blank = errors.Is(copies[0].err, errBlank) && errors.Is(copies[1].err, errBlank)
	if r.List == nil && !r.Blank {
		r.Err = errors.Join(r.CopyErrs[0], r.CopyErrs[1])
	}
	return r
}
