package quorum

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Options say how to open a quorum disk.
type Options struct {
	// Cluster, when set, is the cluster the disk must belong to: a header
	// naming another is an ErrForeign error.
	Cluster string
	// Timeout bounds each read and write; DefaultTimeout when zero.
	Timeout time.Duration
	// ReadOnly opens the device for reading only.
	ReadOnly bool
}

// Disk is an initialised quorum partition, open for sector I/O. Its
// methods are safe for concurrent use; I/O is done one sector at a time.
type Disk struct {
	dev *device
	hdr Header

	listMu sync.Mutex
	lists  map[int]*listState // this node's own areas, by slot
}

// Open opens the device and reads and checks its header.
func Open(path string, o Options) (*Disk, error) {
	dev, err := openDevice(path, openMode{readOnly: o.ReadOnly, timeout: o.Timeout})
	if err != nil {
		return nil, err
	}
	h, err := readHeader(dev)
	if err == nil && o.Cluster != "" && h.Cluster != o.Cluster {
		err = &SectorError{Device: path, Sector: 0, Kind: KindHeader, Field: "cluster name", Offset: offCluster,
			Err: ErrForeign, Detail: fmt.Sprintf("cluster %q, want %q", h.Cluster, o.Cluster)}
	}
	if err != nil {
		dev.close()
		return nil, err
	}
	return &Disk{dev: dev, hdr: *h}, nil
}

// readHeader reads sector 0: one logical block first, then the whole
// sector when the header declares a larger one.
func readHeader(dev *device) (*Header, error) {
	first := max(dev.block, MinSectorSize)
	b, err := dev.read(0, first)
	if err != nil {
		return nil, err
	}
	size, err := HeaderSectorSize(b)
	if err != nil {
		return nil, withDevice(err, dev.path)
	}
	if size < dev.block {
		return nil, &SectorError{Device: dev.path, Sector: 0, Kind: KindHeader, Field: "sector size", Offset: offSectorSize,
			Err: ErrField, Detail: fmt.Sprintf("%d, below the device's logical block size %d", size, dev.block)}
	}
	if size != len(b) {
		if b, err = dev.read(0, size); err != nil {
			return nil, err
		}
	}
	h, err := DecodeHeader(b)
	if err != nil {
		return nil, withDevice(err, dev.path)
	}
	return h, nil
}

// withDevice names the device in a *SectorError.
func withDevice(err error, path string) error {
	var se *SectorError
	if errors.As(err, &se) {
		se.Device = path
	}
	return err
}

// Path returns the device's path.
func (d *Disk) Path() string { return d.dev.path }

// Header returns the disk's header.
func (d *Disk) Header() Header {
	h := d.hdr
	h.Nodes = append([]string(nil), d.hdr.Nodes...)
	return h
}

// Direct reports whether I/O bypasses the page cache (O_DIRECT). It does
// on block devices; a regular file on a filesystem that refuses O_DIRECT
// falls back to buffered I/O.
func (d *Disk) Direct() bool { return d.dev.direct }

func (d *Disk) readSector(n int64) ([]byte, error) {
	return d.dev.read(n*int64(d.hdr.SectorSize), d.hdr.SectorSize)
}

// ReadSlot reads and decodes slot i's status sector.
func (d *Disk) ReadSlot(i int) (*Slot, error) {
	if err := d.hdr.checkSlot(i); err != nil {
		return nil, err
	}
	b, err := d.readSector(SlotSector(i))
	if err != nil {
		return nil, err
	}
	s, err := d.hdr.DecodeSlot(i, b)
	return s, withDevice(err, d.dev.path)
}

// WriteSlot encodes s and writes it as slot i's status sector.
func (d *Disk) WriteSlot(i int, s *Slot) error {
	b, err := d.hdr.MarshalSlot(i, s)
	if err != nil {
		return err
	}
	return d.dev.write(SlotSector(i)*int64(d.hdr.SectorSize), b)
}

// ReadMailbox reads and decodes slot i's mailbox.
func (d *Disk) ReadMailbox(i int) (*Mailbox, error) {
	if err := d.hdr.checkSlot(i); err != nil {
		return nil, err
	}
	b, err := d.readSector(MailboxSector(i))
	if err != nil {
		return nil, err
	}
	m, err := d.hdr.DecodeMailbox(i, b)
	return m, withDevice(err, d.dev.path)
}

// WriteMailbox encodes m and writes it as slot i's mailbox.
func (d *Disk) WriteMailbox(i int, m *Mailbox) error {
	b, err := d.hdr.MarshalMailbox(i, m)
	if err != nil {
		return err
	}
	return d.dev.write(MailboxSector(i)*int64(d.hdr.SectorSize), b)
}

// Close closes the device. An I/O that hung keeps the descriptor until it
// returns.
func (d *Disk) Close() error { return d.dev.close() }

// Params are the settings Init stamps into the header.
type Params struct {
	// SectorSize is the format's sector size; zero picks DefaultSectorSize
	// or the device's logical block size, whichever is larger.
	SectorSize int
	// Interval is how often each node writes its slot; required.
	Interval time.Duration
	// Watchdog, Lease and MsgWait are recorded for the nodes' fencing
	// logic; zero leaves them unset.
	Watchdog, Lease, MsgWait time.Duration
	// Timeout bounds each read and write; DefaultTimeout when zero.
	Timeout time.Duration
	// ListSectors sizes each copy of every node's connection-list area;
	// zero sizes it for ListConns IPv6 connections (ListSectorsFor),
	// NoList makes no area.
	ListSectors int
	// ListConns is how many IPv6 connections the area holds when
	// ListSectors is zero; zero means DefaultListConns.
	ListConns int
}

// InitReport says what Init found and wrote.
type InitReport struct {
	// Header is the header written.
	Header Header
	// Previous is the tandem header the device held before, if any.
	Previous *Header
	// Overwritten lists the signatures found before writing (only with
	// force); those outside the new layout were zeroed.
	Overwritten []Signature
	// BlockSize is the device's logical block size; Direct says whether
	// the writes bypassed the page cache.
	BlockSize int
	Direct    bool
}

// ErrInUse is wrapped by Init's refusal of a device that holds a
// filesystem, a partition table, a volume manager's label or another
// cluster's header.
var ErrInUse = errors.New("device in use")

// Init writes a fresh quorum layout for cluster and nodes (slot i for
// nodes[i]) to the device: empty status slots, empty mailboxes, and the
// header last, so that a half-done Init leaves no valid header behind. It
// refuses a device that holds a well-known signature (filesystem,
// partition table, LVM, MD, LUKS, swap, sbd) or another cluster's tandem
// header unless force is set; then the signatures outside the new layout
// are zeroed, as wipefs would, so no tool mistakes the device for what it
// was. A block device is opened exclusively: one that is mounted or held
// by another driver is refused even with force.
func Init(path, cluster string, nodes []string, p Params, force bool) (*InitReport, error) {
	dev, err := openDevice(path, openMode{exclusive: true, timeout: p.Timeout})
	if err != nil {
		return nil, err
	}
	defer dev.close()
	size := p.SectorSize
	if size == 0 {
		size = max(DefaultSectorSize, dev.block)
	}
	h := &Header{
		SectorSize: size, Cluster: cluster, Nodes: append([]string(nil), nodes...),
		Interval: p.Interval, Watchdog: p.Watchdog, Lease: p.Lease, MsgWait: p.MsgWait,
		CreationID: 1, ListSectors: p.ListSectors,
	}
	switch {
	case p.ListSectors == 0 && validSectorSize(size):
		conns := p.ListConns
		if conns <= 0 {
			conns = DefaultListConns
		}
		h.ListSectors = ListSectorsFor(conns, size)
	case p.ListSectors == NoList:
		h.ListSectors = 0
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	if size%dev.block != 0 {
		return nil, fmt.Errorf("quorum: %s: sector size %d is not a multiple of the device's logical block size %d", path, size, dev.block)
	}
	need := h.Sectors() * int64(size)
	if !dev.regular && dev.size < need {
		return nil, fmt.Errorf("quorum: %s: %d bytes, the layout needs %d (%d sectors of %d bytes)", path, dev.size, need, h.Sectors(), size)
	}
	rep := &InitReport{BlockSize: dev.block, Direct: dev.direct}
	sigs, err := probe(dev)
	if err != nil {
		return nil, err
	}
	var reasons []string
	for _, s := range sigs {
		reasons = append(reasons, s.String())
	}
	if prev, err := readHeader(dev); err == nil {
		rep.Previous = prev
		if prev.Cluster != cluster {
			reasons = append(reasons, fmt.Sprintf("the quorum header of cluster %q", prev.Cluster))
		}
	}
	if len(reasons) > 0 && !force {
		return nil, fmt.Errorf("quorum: %s holds %s: %w; use force to overwrite", path, strings.Join(reasons, ", "), ErrInUse)
	}
	if len(sigs) > 0 {
		rep.Overwritten = sigs
	}
	for h.CreationID = 0; h.CreationID == 0; {
		var id [8]byte
		if _, err := rand.Read(id[:]); err != nil {
			return nil, fmt.Errorf("quorum: creation id: %w", err)
		}
		h.CreationID = binary.BigEndian.Uint64(id[:])
	}
	// Init writes every sector before the areas, not the areas: a
	// signature there is zeroed too.
	written := h.listStart() * int64(size)
	for _, s := range sigs {
		if err := wipe(dev, s, written); err != nil {
			return nil, err
		}
	}
	for i := range h.Nodes {
		slot, err := h.MarshalSlot(i, &Slot{AckFrom: NoSlot})
		if err != nil {
			return nil, err
		}
		if err := dev.write(SlotSector(i)*int64(size), slot); err != nil {
			return nil, err
		}
		box, err := h.MarshalMailbox(i, &Mailbox{From: NoSlot})
		if err != nil {
			return nil, err
		}
		if err := dev.write(MailboxSector(i)*int64(size), box); err != nil {
			return nil, err
		}
		if h.ListSectors > 0 {
			// A blank first sector in each copy: the area holds no list
			// yet, whatever an earlier layout left there.
			for c := range 2 {
				if err := dev.write(h.ListSector(i, c, 0)*int64(size), make([]byte, size)); err != nil {
					return nil, err
				}
			}
		}
	}
	hdr, err := h.Marshal()
	if err != nil {
		return nil, err
	}
	if err := dev.write(0, hdr); err != nil {
		return nil, err
	}
	rep.Header = *h
	return rep, nil
}

// probe reads the start and the end of the device and returns the
// well-known signatures found there.
func probe(dev *device) ([]Signature, error) {
	head, err := readRange(dev, 0, headLen(dev.size))
	if err != nil {
		return nil, err
	}
	tailStart := max(0, dev.size-128<<10) &^ int64(dev.block-1)
	var tail []byte
	if tailStart >= int64(len(head)) {
		if tail, err = readRange(dev, tailStart, dev.size); err != nil {
			return nil, err
		}
	} else {
		tailStart, tail = 0, head
	}
	return findSignatures(head, tail, tailStart, dev.size), nil
}

// readRange reads the whole logical blocks in [from, to).
func readRange(dev *device, from, to int64) ([]byte, error) {
	bs := int64(dev.block)
	to &^= bs - 1
	var out []byte
	for off := from; off < to; {
		n := min(to-off, maxIO)
		b, err := dev.read(off, int(n))
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		off += n
	}
	return out, nil
}

// wipe zeroes the blocks holding signature s, unless they lie inside the
// new layout's first end bytes, which Init overwrites anyway.
func wipe(dev *device, s Signature, end int64) error {
	bs := int64(dev.block)
	from := s.Offset &^ (bs - 1)
	to := (s.Offset + int64(s.Len) + bs - 1) &^ (bs - 1)
	if to <= end {
		return nil
	}
	from = max(from, end)
	zero := make([]byte, to-from)
	if err := dev.write(from, zero); err != nil {
		return fmt.Errorf("quorum: wipe %s: %w", s, err)
	}
	return nil
}

// Report is what Dump found on a device. Every sector is decoded on its
// own: a bad one is reported in its place and the others are still shown.
type Report struct {
	// Device is the path dumped.
	Device string
	// BlockSize is the device's logical block size, Size its size in bytes.
	BlockSize int
	Size      int64
	// Direct says whether reads bypassed the page cache.
	Direct bool
	// Header is the decoded header, nil when HeaderErr is set; without a
	// header the layout is unknown and Slots and Mailboxes are empty.
	Header    *Header
	HeaderErr error
	// Slots and Mailboxes are in slot order.
	Slots     []SlotReport
	Mailboxes []MailboxReport
	// Lists are the connection-list areas in slot order; empty when the
	// disk has none.
	Lists []ListReport
}

// SlotReport is one status slot of a dump.
type SlotReport struct {
	// Index is the slot index, Node the node the header assigns to it.
	Index int
	Node  string
	// Sector is the sector number.
	Sector int64
	// Slot is the decoded slot, nil when Err is set.
	Slot *Slot
	Err  error
}

// MailboxReport is one mailbox of a dump.
type MailboxReport struct {
	// Index is the slot index, Node the node the mailbox belongs to.
	Index int
	Node  string
	// Sector is the sector number.
	Sector int64
	// Mailbox is the decoded mailbox, nil when Err is set.
	Mailbox *Mailbox
	Err     error
}

// Dump reads every sector of the layout, read-only, and reports each with
// its own error. It fails only when the device cannot be opened.
func Dump(path string, o Options) (*Report, error) {
	dev, err := openDevice(path, openMode{readOnly: true, timeout: o.Timeout})
	if err != nil {
		return nil, err
	}
	defer dev.close()
	r := &Report{Device: path, BlockSize: dev.block, Size: dev.size, Direct: dev.direct}
	h, err := readHeader(dev)
	if err != nil {
		r.HeaderErr = err
		return r, nil
	}
	r.Header = h
	d := &Disk{dev: dev, hdr: *h}
	for i, n := range h.Nodes {
		s, err := d.ReadSlot(i)
		r.Slots = append(r.Slots, SlotReport{Index: i, Node: n, Sector: SlotSector(i), Slot: s, Err: err})
		m, err := d.ReadMailbox(i)
		r.Mailboxes = append(r.Mailboxes, MailboxReport{Index: i, Node: n, Sector: MailboxSector(i), Mailbox: m, Err: err})
		if h.ListSectors > 0 {
			r.Lists = append(r.Lists, d.listReport(i))
		}
	}
	return r, nil
}
