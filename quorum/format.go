package quorum

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"
)

// Format constants. The layout is described in the package documentation.
const (
	// Version is the format version this package writes and reads.
	Version = 1
	// MaxNameLen is the longest cluster or node name, in bytes.
	MaxNameLen = 64
	// MinSectorSize and MaxSectorSize bound the sector size of the format.
	MinSectorSize = 512
	// MaxSectorSize is the largest sector size of the format.
	MaxSectorSize = 64 << 10
	// DefaultSectorSize is the sector size Init uses unless told otherwise
	// or the device's logical block is larger: it holds a whole heartbeat
	// message in a status slot.
	DefaultSectorSize = 4096
	// MinSlots and MaxSlots bound the slot count: a pair uses two; the
	// header has room for four.
	MinSlots = 2
	// MaxSlots is the most slots the header's node table holds.
	MaxSlots = 4
	// NoSlot in a sender or acknowledgement field means "nobody".
	NoSlot = 0xff
)

// Byte offsets of the fields. Every sector starts with the common prefix
// and ends with its CRC32C.
const (
	offMagic    = 0
	offVersion  = 8
	offKind     = 10
	offIndex    = 11
	offReserved = 12
	offCreation = 16
	prefixLen   = 24
	crcLen      = 4

	// header
	offSectorSize = 24
	offSlotCount  = 28
	offHdrPad     = 29
	offInterval   = 32
	offWatchdog   = 36
	offLease      = 40
	offMsgWait    = 44
	offClusterLen = 48
	offCluster    = 49
	offHdrPad2    = 113
	offNodeTable  = 120
	nodeEntryLen  = 76 // name length, name, 3 reserved, slot sector, mailbox sector
	// The connection-list area, after the largest node table. Headers
	// written before the area existed hold zeros here: no area.
	offListStart   = offNodeTable + MaxSlots*nodeEntryLen // 424
	offListSectors = offListStart + 4
	hdrEnd         = offListSectors + 4

	// status slot
	offGeneration  = 24
	offCounter     = 32
	offRole        = 40
	offFlags       = 41
	offAckKind     = 42
	offAckFrom     = 43
	offSlotPad     = 44
	offAckSequence = 48
	offPayloadLen  = 56
	offPayload     = 58

	// mailbox
	offMsgKind     = 24
	offMsgFrom     = 25
	offMboxPad     = 26
	offMsgSequence = 32
	mailboxEnd     = 40
)

// magic opens every sector of the format.
var magic = [8]byte{'T', 'N', 'D', 'M', 'Q', 'D', 'S', 'K'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaxPayload returns how many payload bytes a status slot holds in a
// sector of the given size.
func MaxPayload(sectorSize int) int { return sectorSize - crcLen - offPayload }

// SectorKind says what a sector holds.
type SectorKind uint8

// Sector kinds, stored at byte 10 of every sector.
const (
	// KindHeader is sector 0.
	KindHeader SectorKind = 1
	// KindSlot is a node's status slot.
	KindSlot SectorKind = 2
	// KindMailbox is a node's mailbox.
	KindMailbox SectorKind = 3
	// KindList is a sector of a node's connection-list area.
	KindList SectorKind = 4
)

// String names the kind: "header", "slot", "mailbox".
func (k SectorKind) String() string {
	switch k {
	case KindHeader:
		return "header"
	case KindSlot:
		return "slot"
	case KindMailbox:
		return "mailbox"
	case KindList:
		return "list"
	}
	return fmt.Sprintf("kind 0x%02x", uint8(k))
}

// Role is what a node says it is doing, in its status slot.
type Role uint8

// Roles. They mirror the roles haclient status shows.
const (
	RoleUnknown  Role = 0
	RoleStandby  Role = 1
	RoleStarting Role = 2
	RoleActive   Role = 3
	RoleStopping Role = 4
	RoleFencing  Role = 5
)

var roleNames = [...]string{"unknown", "standby", "starting", "active", "stopping", "fencing"}

// String names the role as haclient status does.
func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("role 0x%02x", uint8(r))
}

// ParseRole returns the role named s; unknown names give RoleUnknown.
func ParseRole(s string) Role {
	for i, n := range roleNames {
		if n == s {
			return Role(i)
		}
	}
	return RoleUnknown
}

// Flags are bits of a status slot.
type Flags uint8

// Slot flags. Unassigned bits must be zero.
const (
	// FlagLease says the node holds the service lease and renews it with
	// every write of its slot.
	FlagLease  Flags = 0x01
	flagsKnown       = FlagLease
)

// MessageKind is what a mailbox asks of its owner, or what a status slot
// acknowledges.
type MessageKind uint8

// Mailbox message kinds.
const (
	// MsgNone: the mailbox is empty.
	MsgNone MessageKind = 0
	// MsgOff: power off (stop at once and stay down).
	MsgOff MessageKind = 1
	// MsgReset: reset (stop at once; rebooting is allowed).
	MsgReset MessageKind = 2
)

// String names the kind: "none", "off", "reset".
func (m MessageKind) String() string {
	switch m {
	case MsgNone:
		return "none"
	case MsgOff:
		return "off"
	case MsgReset:
		return "reset"
	}
	return fmt.Sprintf("message 0x%02x", uint8(m))
}

func (m MessageKind) valid() bool { return m <= MsgReset }

// Errors a decode wraps; test with errors.Is. A *SectorError says which
// sector, which field and at which byte.
var (
	// ErrTruncated: the buffer is shorter than the sector.
	ErrTruncated = errors.New("truncated sector")
	// ErrMagic: not a sector of this format (never written, or another
	// program's data).
	ErrMagic = errors.New("bad magic")
	// ErrChecksum: the CRC32C does not match: a torn write or a bit flip.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrVersion: a format version this package does not read.
	ErrVersion = errors.New("unknown format version")
	// ErrMisplaced: the sector's kind or index is not that of its place.
	ErrMisplaced = errors.New("misplaced sector")
	// ErrForeign: the sector belongs to another initialisation of the
	// disk or to another cluster.
	ErrForeign = errors.New("foreign sector")
	// ErrField: a field holds a value out of its bounds.
	ErrField = errors.New("bad field")
)

// SectorError reports why a sector was rejected.
type SectorError struct {
	// Device is the device path; empty when decoding a buffer.
	Device string
	// Sector is the sector number on the device, or -1 when unknown.
	Sector int64
	// Kind and Index say what the sector was expected to hold.
	Kind  SectorKind
	Index int
	// Field names the offending field; Offset is its byte offset in the
	// sector.
	Field  string
	Offset int
	// Err is one of the Err* classes of this package.
	Err error
	// Detail says what was found.
	Detail string
}

// Error formats the error as
// "quorum: /dev/sdb1: sector 3 (slot 1): field crc32c at byte 4092: checksum mismatch: stored 0x…, computed 0x…".
func (e *SectorError) Error() string {
	var b bytes.Buffer
	b.WriteString("quorum: ")
	if e.Device != "" {
		b.WriteString(e.Device + ": ")
	}
	if e.Sector >= 0 {
		fmt.Fprintf(&b, "sector %d ", e.Sector)
	}
	if e.Kind == KindHeader {
		b.WriteString("(header)")
	} else {
		fmt.Fprintf(&b, "(%v %d)", e.Kind, e.Index)
	}
	fmt.Fprintf(&b, ": field %s at byte %d: %v", e.Field, e.Offset, e.Err)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

// Unwrap returns the class of the error.
func (e *SectorError) Unwrap() error { return e.Err }

// Header is sector 0: what the disk is and how it is laid out.
type Header struct {
	// SectorSize is the size of every sector of the format, a power of two
	// from MinSectorSize to MaxSectorSize and a multiple of the device's
	// logical block size.
	SectorSize int
	// Cluster is the cluster's name.
	Cluster string
	// Nodes names the node of each slot, in slot order.
	Nodes []string
	// Interval is how often each node writes its slot.
	Interval time.Duration
	// Watchdog is the nodes' watchdog timeout; zero when not recorded.
	Watchdog time.Duration
	// Lease is how long an active node holds the service without renewing
	// its slot; zero when not recorded.
	Lease time.Duration
	// MsgWait is how long after writing a fence message without an
	// acknowledgement the victim counts as fenced; zero when not recorded.
	MsgWait time.Duration
	// CreationID identifies this initialisation of the disk; every sector
	// carries it. Never zero on a valid disk.
	CreationID uint64
	// ListSectors is the size, in sectors, of each of the two copies of
	// a node's connection-list area; zero when the disk has no area (as
	// every disk initialised before the area existed).
	ListSectors int
}

// SlotSector returns the sector number of slot i's status sector.
func SlotSector(i int) int64 { return 1 + 2*int64(i) }

// MailboxSector returns the sector number of slot i's mailbox.
func MailboxSector(i int) int64 { return 2 + 2*int64(i) }

// Sectors returns how many sectors the layout uses, the
// connection-list areas included.
func (h *Header) Sectors() int64 { return h.listStart() + 2*int64(len(h.Nodes))*int64(h.ListSectors) }

// listStart is the first sector after the slots and mailboxes, where the
// connection-list areas begin.
func (h *Header) listStart() int64 { return 1 + 2*int64(len(h.Nodes)) }

// ListSector returns the sector number of sector pos of copy c (0 or 1)
// of slot i's connection-list area.
func (h *Header) ListSector(i, c, pos int) int64 {
	return h.listStart() + int64(2*i+c)*int64(h.ListSectors) + int64(pos)
}

// SlotOf returns the slot index of the named node.
func (h *Header) SlotOf(node string) (int, bool) {
	for i, n := range h.Nodes {
		if n == node {
			return i, true
		}
	}
	return 0, false
}

// Slot is the content of a node's status slot.
type Slot struct {
	// Generation is the writer's generation (bumped at each start).
	Generation uint64
	// Counter is bumped at every write; readers judge liveness by how long
	// it has not moved on their own monotonic clock.
	Counter uint64
	// Role is what the writer says it is doing.
	Role Role
	// Flags are the writer's flags.
	Flags Flags
	// AckKind, AckFrom and AckSequence acknowledge the message of that
	// kind and sequence that the slot's sender (a slot index) left in this
	// node's mailbox. AckKind MsgNone acknowledges nothing.
	AckKind     MessageKind
	AckFrom     uint8
	AckSequence uint64
	// Payload is opaque to the format: tandem stores the latest signed
	// heartbeat message. At most MaxPayload(SectorSize) bytes.
	Payload []byte
}

// Mailbox is the content of a node's mailbox: a message for that node.
type Mailbox struct {
	// Kind is what the message asks; MsgNone for an empty mailbox.
	Kind MessageKind
	// From is the sender's slot index, NoSlot when empty.
	From uint8
	// Sequence numbers the messages left in this mailbox.
	Sequence uint64
}

func ms(d time.Duration) uint32 { return uint32(d / time.Millisecond) }

func durMS(v uint32) time.Duration { return time.Duration(v) * time.Millisecond }

// checkName validates a cluster or node name.
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("quorum: empty %s", what)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("quorum: %s %q is %d bytes, limit %d", what, name, len(name), MaxNameLen)
	}
	if bytes.IndexByte([]byte(name), 0) >= 0 {
		return fmt.Errorf("quorum: %s %q holds a NUL byte", what, name)
	}
	return nil
}

func validSectorSize(n int) bool {
	return n >= MinSectorSize && n <= MaxSectorSize && n&(n-1) == 0
}

func checkDuration(what string, d time.Duration, required bool) error {
	if d < 0 || d%time.Millisecond != 0 || d/time.Millisecond > math.MaxUint32 {
		return fmt.Errorf("quorum: %s %v: want whole milliseconds from 0 to %d", what, d, uint32(math.MaxUint32))
	}
	if required && d == 0 {
		return fmt.Errorf("quorum: %s must be set", what)
	}
	return nil
}

// Validate checks h: names, slot count, sector size and durations.
func (h *Header) Validate() error {
	if !validSectorSize(h.SectorSize) {
		return fmt.Errorf("quorum: sector size %d: want a power of two from %d to %d", h.SectorSize, MinSectorSize, MaxSectorSize)
	}
	if err := checkName("cluster name", h.Cluster); err != nil {
		return err
	}
	if len(h.Nodes) < MinSlots || len(h.Nodes) > MaxSlots {
		return fmt.Errorf("quorum: %d nodes: want %d to %d", len(h.Nodes), MinSlots, MaxSlots)
	}
	for i, n := range h.Nodes {
		if err := checkName("node name", n); err != nil {
			return err
		}
		for _, m := range h.Nodes[:i] {
			if m == n {
				return fmt.Errorf("quorum: node %q named twice", n)
			}
		}
	}
	if err := checkDuration("interval", h.Interval, true); err != nil {
		return err
	}
	for _, d := range []struct {
		what string
		v    time.Duration
	}{{"watchdog timeout", h.Watchdog}, {"lease", h.Lease}, {"message wait", h.MsgWait}} {
		if err := checkDuration(d.what, d.v, false); err != nil {
			return err
		}
	}
	if h.CreationID == 0 {
		return errors.New("quorum: creation id is zero")
	}
	if h.ListSectors < 0 || h.ListSectors > MaxListSectors {
		return fmt.Errorf("quorum: connection-list area of %d sectors: want 0 to %d", h.ListSectors, MaxListSectors)
	}
	return nil
}

// putPrefix writes the common prefix of a sector.
func putPrefix(b []byte, kind SectorKind, index int, creation uint64) {
	copy(b[offMagic:], magic[:])
	binary.BigEndian.PutUint16(b[offVersion:], Version)
	b[offKind] = byte(kind)
	b[offIndex] = byte(index)
	binary.BigEndian.PutUint64(b[offCreation:], creation)
}

// seal writes the CRC32C over everything before it.
func seal(b []byte) {
	n := len(b) - crcLen
	binary.BigEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
}

// Marshal encodes the header as sector 0.
func (h *Header) Marshal() ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, h.SectorSize)
	putPrefix(b, KindHeader, 0, h.CreationID)
	binary.BigEndian.PutUint32(b[offSectorSize:], uint32(h.SectorSize))
	b[offSlotCount] = byte(len(h.Nodes))
	binary.BigEndian.PutUint32(b[offInterval:], ms(h.Interval))
	binary.BigEndian.PutUint32(b[offWatchdog:], ms(h.Watchdog))
	binary.BigEndian.PutUint32(b[offLease:], ms(h.Lease))
	binary.BigEndian.PutUint32(b[offMsgWait:], ms(h.MsgWait))
	b[offClusterLen] = byte(len(h.Cluster))
	copy(b[offCluster:], h.Cluster)
	for i, n := range h.Nodes {
		e := b[offNodeTable+i*nodeEntryLen:]
		e[0] = byte(len(n))
		copy(e[1:], n)
		binary.BigEndian.PutUint32(e[68:], uint32(SlotSector(i)))
		binary.BigEndian.PutUint32(e[72:], uint32(MailboxSector(i)))
	}
	if h.ListSectors > 0 {
		binary.BigEndian.PutUint32(b[offListStart:], uint32(h.listStart()))
		binary.BigEndian.PutUint32(b[offListSectors:], uint32(h.ListSectors))
	}
	seal(b)
	return b, nil
}

func (h *Header) checkSlot(i int) error {
	if i < 0 || i >= len(h.Nodes) {
		return fmt.Errorf("quorum: slot %d out of range 0..%d", i, len(h.Nodes)-1)
	}
	return nil
}

func (h *Header) checkSender(what string, v uint8) error {
	if v != NoSlot && int(v) >= len(h.Nodes) {
		return fmt.Errorf("quorum: %s %d: not a slot and not NoSlot", what, v)
	}
	return nil
}

// MarshalSlot encodes s as the status sector of slot i.
func (h *Header) MarshalSlot(i int, s *Slot) ([]byte, error) {
	if err := h.checkSlot(i); err != nil {
		return nil, err
	}
	if n := MaxPayload(h.SectorSize); len(s.Payload) > n {
		return nil, fmt.Errorf("quorum: slot %d: payload of %d bytes, limit %d in %d-byte sectors", i, len(s.Payload), n, h.SectorSize)
	}
	if s.Flags&^flagsKnown != 0 {
		return nil, fmt.Errorf("quorum: slot %d: unknown flags 0x%02x", i, uint8(s.Flags&^flagsKnown))
	}
	if !s.AckKind.valid() {
		return nil, fmt.Errorf("quorum: slot %d: cannot acknowledge %v", i, s.AckKind)
	}
	if err := h.checkSender("acknowledged sender", s.AckFrom); err != nil {
		return nil, err
	}
	b := make([]byte, h.SectorSize)
	putPrefix(b, KindSlot, i, h.CreationID)
	binary.BigEndian.PutUint64(b[offGeneration:], s.Generation)
	binary.BigEndian.PutUint64(b[offCounter:], s.Counter)
	b[offRole] = byte(s.Role)
	b[offFlags] = byte(s.Flags)
	b[offAckKind] = byte(s.AckKind)
	b[offAckFrom] = s.AckFrom
	binary.BigEndian.PutUint64(b[offAckSequence:], s.AckSequence)
	binary.BigEndian.PutUint16(b[offPayloadLen:], uint16(len(s.Payload)))
	copy(b[offPayload:], s.Payload)
	seal(b)
	return b, nil
}

// MarshalMailbox encodes m as the mailbox sector of slot i.
func (h *Header) MarshalMailbox(i int, m *Mailbox) ([]byte, error) {
	if err := h.checkSlot(i); err != nil {
		return nil, err
	}
	if !m.Kind.valid() {
		return nil, fmt.Errorf("quorum: mailbox %d: cannot write %v", i, m.Kind)
	}
	if err := h.checkSender("sender", m.From); err != nil {
		return nil, err
	}
	b := make([]byte, h.SectorSize)
	putPrefix(b, KindMailbox, i, h.CreationID)
	b[offMsgKind] = byte(m.Kind)
	b[offMsgFrom] = m.From
	binary.BigEndian.PutUint64(b[offMsgSequence:], m.Sequence)
	seal(b)
	return b, nil
}

// decoder checks one sector and builds its errors.
type decoder struct {
	b      []byte
	kind   SectorKind
	index  int
	sector int64
}

func (d *decoder) errf(field string, off int, class error, format string, args ...any) error {
	return &SectorError{Sector: d.sector, Kind: d.kind, Index: d.index, Field: field, Offset: off, Err: class, Detail: fmt.Sprintf(format, args...)}
}

// zero checks that b[from:to] is all zero.
func (d *decoder) zero(field string, from, to int) error {
	for i := from; i < to; i++ {
		if d.b[i] != 0 {
			return d.errf(field, i, ErrField, "byte 0x%02x where zero is required", d.b[i])
		}
	}
	return nil
}

// prefix checks length, magic, CRC, version, kind and index; size is the
// expected sector length.
func (d *decoder) prefix(size int) error {
	if len(d.b) < size || len(d.b) < prefixLen+crcLen {
		return d.errf("sector", len(d.b), ErrTruncated, "%d bytes, want %d", len(d.b), size)
	}
	if [8]byte(d.b[offMagic:]) != magic {
		return d.errf("magic", offMagic, ErrMagic, "% x", d.b[offMagic:offMagic+8])
	}
	if len(d.b) != size {
		return d.errf("sector", size, ErrField, "%d bytes, want %d", len(d.b), size)
	}
	end := size - crcLen
	stored := binary.BigEndian.Uint32(d.b[end:])
	if sum := crc32.Checksum(d.b[:end], castagnoli); sum != stored {
		return d.errf("crc32c", end, ErrChecksum, "stored 0x%08x, computed 0x%08x", stored, sum)
	}
	if v := binary.BigEndian.Uint16(d.b[offVersion:]); v != Version {
		return d.errf("version", offVersion, ErrVersion, "version %d, this node reads %d", v, Version)
	}
	if k := SectorKind(d.b[offKind]); k != d.kind {
		return d.errf("kind", offKind, ErrMisplaced, "holds a %v sector, want %v", k, d.kind)
	}
	if x := int(d.b[offIndex]); x != d.index {
		return d.errf("index", offIndex, ErrMisplaced, "holds index %d, want %d", x, d.index)
	}
	return d.zero("reserved", offReserved, offCreation)
}

// DecodeHeader decodes sector 0. The buffer must be exactly one sector
// of the size the header declares; when it is not, the *SectorError has
// class ErrTruncated or ErrField with Field "sector", and the size the
// header declares can be read with HeaderSectorSize.
func DecodeHeader(b []byte) (*Header, error) {
	d := &decoder{b: b, kind: KindHeader, sector: 0}
	size, err := HeaderSectorSize(b)
	if err != nil {
		return nil, err
	}
	if err := d.prefix(size); err != nil {
		return nil, err
	}
	h := &Header{SectorSize: size, CreationID: binary.BigEndian.Uint64(b[offCreation:])}
	if h.CreationID == 0 {
		return nil, d.errf("creation id", offCreation, ErrField, "zero")
	}
	n := int(b[offSlotCount])
	if n < MinSlots || n > MaxSlots || offNodeTable+n*nodeEntryLen > size-crcLen {
		return nil, d.errf("slot count", offSlotCount, ErrField, "%d, want %d to %d", n, MinSlots, MaxSlots)
	}
	if err := d.zero("reserved", offHdrPad, offInterval); err != nil {
		return nil, err
	}
	h.Interval = durMS(binary.BigEndian.Uint32(b[offInterval:]))
	if h.Interval == 0 {
		return nil, d.errf("interval", offInterval, ErrField, "zero")
	}
	h.Watchdog = durMS(binary.BigEndian.Uint32(b[offWatchdog:]))
	h.Lease = durMS(binary.BigEndian.Uint32(b[offLease:]))
	h.MsgWait = durMS(binary.BigEndian.Uint32(b[offMsgWait:]))
	if h.Cluster, err = d.name("cluster name", offClusterLen); err != nil {
		return nil, err
	}
	if err := d.zero("reserved", offHdrPad2, offNodeTable); err != nil {
		return nil, err
	}
	for i := range n {
		e := offNodeTable + i*nodeEntryLen
		name, err := d.name(fmt.Sprintf("node %d name", i), e)
		if err != nil {
			return nil, err
		}
		for _, m := range h.Nodes {
			if m == name {
				return nil, d.errf(fmt.Sprintf("node %d name", i), e+1, ErrField, "%q named twice", name)
			}
		}
		h.Nodes = append(h.Nodes, name)
		if err := d.zero(fmt.Sprintf("node %d reserved", i), e+65, e+68); err != nil {
			return nil, err
		}
		if s := int64(binary.BigEndian.Uint32(b[e+68:])); s != SlotSector(i) {
			return nil, d.errf(fmt.Sprintf("node %d slot sector", i), e+68, ErrField, "%d, version %d puts it at %d", s, Version, SlotSector(i))
		}
		if s := int64(binary.BigEndian.Uint32(b[e+72:])); s != MailboxSector(i) {
			return nil, d.errf(fmt.Sprintf("node %d mailbox sector", i), e+72, ErrField, "%d, version %d puts it at %d", s, Version, MailboxSector(i))
		}
	}
	if err := d.zero("padding", offNodeTable+n*nodeEntryLen, offListStart); err != nil {
		return nil, err
	}
	start, k := binary.BigEndian.Uint32(b[offListStart:]), binary.BigEndian.Uint32(b[offListSectors:])
	switch {
	case k == 0 && start != 0:
		return nil, d.errf("list start", offListStart, ErrField, "%d without a list area", start)
	case k > MaxListSectors:
		return nil, d.errf("list sectors", offListSectors, ErrField, "%d, limit %d", k, MaxListSectors)
	case k > 0 && int64(start) != h.listStart():
		return nil, d.errf("list start", offListStart, ErrField, "%d, version %d puts it at %d", start, Version, h.listStart())
	}
	h.ListSectors = int(k)
	if err := d.zero("padding", hdrEnd, size-crcLen); err != nil {
		return nil, err
	}
	return h, nil
}

// HeaderSectorSize returns the sector size a header declares, checking
// only the magic and the size field, so that a reader that fetched the
// first block can tell how much to read for the whole header.
func HeaderSectorSize(b []byte) (int, error) {
	d := &decoder{b: b, kind: KindHeader, sector: 0}
	if len(b) < offSectorSize+4 {
		return 0, d.errf("sector", len(b), ErrTruncated, "%d bytes, want at least %d", len(b), MinSectorSize)
	}
	if [8]byte(b[offMagic:]) != magic {
		return 0, d.errf("magic", offMagic, ErrMagic, "% x", b[offMagic:offMagic+8])
	}
	size := int(binary.BigEndian.Uint32(b[offSectorSize:]))
	if !validSectorSize(size) {
		return 0, d.errf("sector size", offSectorSize, ErrField, "%d, want a power of two from %d to %d", size, MinSectorSize, MaxSectorSize)
	}
	return size, nil
}

// name reads a length byte at off and the 64-byte name field after it.
func (d *decoder) name(field string, off int) (string, error) {
	n := int(d.b[off])
	if n == 0 || n > MaxNameLen {
		return "", d.errf(field+" length", off, ErrField, "%d, want 1 to %d", n, MaxNameLen)
	}
	s := d.b[off+1 : off+1+n]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		return "", d.errf(field, off+1+i, ErrField, "NUL byte inside the name")
	}
	if err := d.zero(field+" padding", off+1+n, off+1+MaxNameLen); err != nil {
		return "", err
	}
	return string(s), nil
}

// creation checks that the sector belongs to h's initialisation.
func (d *decoder) creation(h *Header) error {
	if id := binary.BigEndian.Uint64(d.b[offCreation:]); id != h.CreationID {
		return d.errf("creation id", offCreation, ErrForeign, "0x%016x, the header says 0x%016x", id, h.CreationID)
	}
	return nil
}

func (d *decoder) sender(h *Header, field string, off int) (uint8, error) {
	v := d.b[off]
	if v != NoSlot && int(v) >= len(h.Nodes) {
		return 0, d.errf(field, off, ErrField, "slot %d, the disk has %d", v, len(h.Nodes))
	}
	return v, nil
}

// DecodeSlot decodes the status sector of slot i. The payload aliases b.
func (h *Header) DecodeSlot(i int, b []byte) (*Slot, error) {
	if err := h.checkSlot(i); err != nil {
		return nil, err
	}
	d := &decoder{b: b, kind: KindSlot, index: i, sector: SlotSector(i)}
	if err := d.prefix(h.SectorSize); err != nil {
		return nil, err
	}
	if err := d.creation(h); err != nil {
		return nil, err
	}
	s := &Slot{
		Generation:  binary.BigEndian.Uint64(b[offGeneration:]),
		Counter:     binary.BigEndian.Uint64(b[offCounter:]),
		Role:        Role(b[offRole]),
		Flags:       Flags(b[offFlags]),
		AckKind:     MessageKind(b[offAckKind]),
		AckSequence: binary.BigEndian.Uint64(b[offAckSequence:]),
	}
	if int(s.Role) >= len(roleNames) {
		return nil, d.errf("role", offRole, ErrField, "0x%02x", b[offRole])
	}
	if s.Flags&^flagsKnown != 0 {
		return nil, d.errf("flags", offFlags, ErrField, "unknown bits 0x%02x", uint8(s.Flags&^flagsKnown))
	}
	if !s.AckKind.valid() {
		return nil, d.errf("ack kind", offAckKind, ErrField, "%v", s.AckKind)
	}
	var err error
	if s.AckFrom, err = d.sender(h, "ack from", offAckFrom); err != nil {
		return nil, err
	}
	if err := d.zero("reserved", offSlotPad, offAckSequence); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(b[offPayloadLen:]))
	if n > MaxPayload(h.SectorSize) {
		return nil, d.errf("payload length", offPayloadLen, ErrField, "%d, limit %d", n, MaxPayload(h.SectorSize))
	}
	s.Payload = b[offPayload : offPayload+n : offPayload+n]
	if err := d.zero("padding", offPayload+n, h.SectorSize-crcLen); err != nil {
		return nil, err
	}
	return s, nil
}

// DecodeMailbox decodes the mailbox sector of slot i.
func (h *Header) DecodeMailbox(i int, b []byte) (*Mailbox, error) {
	if err := h.checkSlot(i); err != nil {
		return nil, err
	}
	d := &decoder{b: b, kind: KindMailbox, index: i, sector: MailboxSector(i)}
	if err := d.prefix(h.SectorSize); err != nil {
		return nil, err
	}
	if err := d.creation(h); err != nil {
		return nil, err
	}
	m := &Mailbox{Kind: MessageKind(b[offMsgKind]), Sequence: binary.BigEndian.Uint64(b[offMsgSequence:])}
	if !m.Kind.valid() {
		return nil, d.errf("message kind", offMsgKind, ErrField, "%v", m.Kind)
	}
	var err error
	if m.From, err = d.sender(h, "sender", offMsgFrom); err != nil {
		return nil, err
	}
	if err := d.zero("reserved", offMboxPad, offMsgSequence); err != nil {
		return nil, err
	}
	if err := d.zero("padding", mailboxEnd, h.SectorSize-crcLen); err != nil {
		return nil, err
	}
	return m, nil
}
