package quorum

import (
	"errors"
	"fmt"
	"strings"
)

// Message is a fence message with its nodes named: what a mailbox holds,
// or what a status slot acknowledges. The poison pill is one: a node
// writes off or reset into its peer's mailbox; the peer, reading its own
// mailbox every interval, stops its resources, acknowledges the message
// in its status slot and lets its watchdog reset it.
//
// An acknowledgement answers exactly one message: it matches when all four
// fields are equal, so a stale acknowledgement of an earlier message is
// never taken for the answer to a new one.
type Message struct {
	// Kind is what the message asks: MsgOff or MsgReset; MsgNone for an
	// empty mailbox or no acknowledgement.
	Kind MessageKind
	// From is the sender's node name; empty with MsgNone.
	From string
	// To is the node the message is for: the mailbox's owner.
	To string
	// Sequence numbers the messages left in To's mailbox. A sender picks
	// one above any that mailbox or To's acknowledgement has held.
	Sequence uint64
}

// String describes the message as "reset #4 from alpha to beta", or "no
// message for beta".
func (m Message) String() string {
	if m.Kind == MsgNone {
		return "no message for " + m.To
	}
	return fmt.Sprintf("%v #%d from %s to %s", m.Kind, m.Sequence, m.From, m.To)
}

// NodeError is a failed read or write of a node's mailbox or status slot.
// Its message names the device, the sector, the sector's role and node,
// and what went wrong:
//
//	quorum: /dev/sdb1: sector 4 (mailbox of beta): field crc32c at byte 4092: checksum mismatch: stored 0x…, computed 0x…
//	quorum: /dev/sdb1: sector 4 (mailbox of beta): write at byte 16384: I/O did not return in time (2s)
type NodeError struct {
	// Device is the quorum device's path.
	Device string
	// Sector is the sector number on the device.
	Sector int64
	// Kind is KindMailbox or KindSlot; Node is the node the sector
	// belongs to.
	Kind SectorKind
	Node string
	// Op is what was being done: read or write.
	Op string
	// Err is the cause: a *SectorError for a sector that failed to
	// decode, an I/O error (possibly wrapping ErrHung), or a bad request.
	Err error
}

// Error implements error.
func (e *NodeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "quorum: %s: sector %d (%v of %s): ", e.Device, e.Sector, e.Kind, e.Node)
	var se *SectorError
	if errors.As(e.Err, &se) {
		fmt.Fprintf(&b, "%s: field %s at byte %d: %v", e.Op, se.Field, se.Offset, se.Err)
		if se.Detail != "" {
			b.WriteString(": " + se.Detail)
		}
		return b.String()
	}
	detail := e.Err.Error()
	detail = strings.TrimPrefix(detail, "quorum: "+e.Device+": ")
	detail = strings.TrimPrefix(detail, "quorum: ")
	if !strings.HasPrefix(detail, e.Op) {
		b.WriteString(e.Op + ": ")
	}
	b.WriteString(detail)
	return b.String()
}

// Unwrap returns Err.
func (e *NodeError) Unwrap() error { return e.Err }

// slotOf returns the slot index of node, or an error naming the device
// and the nodes it knows.
func (d *Disk) slotOf(node string) (int, error) {
	i, ok := d.hdr.SlotOf(node)
	if !ok {
		return 0, fmt.Errorf("quorum: %s: no node %q: the header names %s", d.dev.path, node, strings.Join(d.hdr.Nodes, ", "))
	}
	return i, nil
}

func (d *Disk) nodeErr(kind SectorKind, i int, op string, err error) error {
	if err == nil {
		return nil
	}
	sector := SlotSector(i)
	if kind == KindMailbox {
		sector = MailboxSector(i)
	}
	return &NodeError{Device: d.dev.path, Sector: sector, Kind: kind, Node: d.hdr.Nodes[i], Op: op, Err: err}
}

// name returns the node of slot index v, or "" for NoSlot.
func (h *Header) name(v uint8) string {
	if int(v) < len(h.Nodes) {
		return h.Nodes[v]
	}
	return ""
}

// WriteMessage writes m into the mailbox of m.To, replacing whatever it
// held, readable or not. m.Kind must be MsgOff or MsgReset, and m.From
// another node of the disk.
func (d *Disk) WriteMessage(m Message) error {
	to, err := d.slotOf(m.To)
	if err != nil {
		return err
	}
	from, err := d.slotOf(m.From)
	if err != nil {
		return err
	}
	if m.Kind != MsgOff && m.Kind != MsgReset {
		return d.nodeErr(KindMailbox, to, "write", fmt.Errorf("message kind %v: want off or reset", m.Kind))
	}
	if from == to {
		return d.nodeErr(KindMailbox, to, "write", fmt.Errorf("a message from %s to itself", m.From))
	}
	return d.nodeErr(KindMailbox, to, "write", d.WriteMailbox(to, &Mailbox{Kind: m.Kind, From: uint8(from), Sequence: m.Sequence}))
}

// ReadMessage reads node's mailbox. An empty mailbox gives a Message of
// kind MsgNone whose Sequence is the last one the mailbox held.
func (d *Disk) ReadMessage(node string) (Message, error) {
	i, err := d.slotOf(node)
	if err != nil {
		return Message{}, err
	}
	mb, err := d.ReadMailbox(i)
	if err != nil {
		return Message{}, d.nodeErr(KindMailbox, i, "read", err)
	}
	return Message{Kind: mb.Kind, From: d.hdr.name(mb.From), To: node, Sequence: mb.Sequence}, nil
}

// Acknowledge records in the status slot of m.To, the node the message
// was for, that it obeyed m. The rest of the slot (counter, role, flags,
// payload) is kept as it is on the disk. Only m.To may call it: every
// status slot has one writer. A node whose slot is written by a running
// heartbeat disk medium must have that medium carry the acknowledgement
// instead (see [Header.Acknowledge]), or the medium's next write erases
// it.
func (d *Disk) Acknowledge(m Message) error {
	i, err := d.slotOf(m.To)
	if err != nil {
		return err
	}
	s, err := d.ReadSlot(i)
	if err != nil {
		return d.nodeErr(KindSlot, i, "read", err)
	}
	s.Payload = append([]byte(nil), s.Payload...)
	if err := d.hdr.Acknowledge(s, m); err != nil {
		return d.nodeErr(KindSlot, i, "write", err)
	}
	return d.nodeErr(KindSlot, i, "write", d.WriteSlot(i, s))
}

// Acknowledge sets the acknowledgement fields of s, a status slot of
// m.To, to acknowledge m. It changes nothing else, so that the slot's
// writer can carry the acknowledgement with its next write.
func (h *Header) Acknowledge(s *Slot, m Message) error {
	if m.Kind != MsgOff && m.Kind != MsgReset {
		return fmt.Errorf("quorum: cannot acknowledge %v", m.Kind)
	}
	from, ok := h.SlotOf(m.From)
	if !ok {
		return fmt.Errorf("quorum: acknowledge %v: no node %q on this disk", m, m.From)
	}
	s.AckKind, s.AckFrom, s.AckSequence = m.Kind, uint8(from), m.Sequence
	return nil
}

// Acknowledgement returns what s, the status slot of node, acknowledges:
// a Message equal to the one acknowledged, or one of kind MsgNone.
func (h *Header) Acknowledgement(node string, s *Slot) Message {
	if s.AckKind == MsgNone {
		return Message{To: node}
	}
	return Message{Kind: s.AckKind, From: h.name(s.AckFrom), To: node, Sequence: s.AckSequence}
}

// ReadAck reads node's status slot and returns what it acknowledges and
// its counter, which moves with every write of the slot.
func (d *Disk) ReadAck(node string) (ack Message, counter uint64, err error) {
	i, err := d.slotOf(node)
	if err != nil {
		return Message{}, 0, err
	}
	s, err := d.ReadSlot(i)
	if err != nil {
		return Message{}, 0, d.nodeErr(KindSlot, i, "read", err)
	}
	return d.hdr.Acknowledgement(node, s), s.Counter, nil
}

// Cleared says what ClearMailbox replaced.
type Cleared struct {
	// Previous is the message the mailbox held; kind MsgNone when it was
	// empty or unreadable.
	Previous Message
	// Unreadable is why the mailbox could not be read before it was
	// overwritten (a torn or foreign sector, an I/O error); nil when it
	// was read.
	Unreadable error
	// Acknowledged says whether the node's status slot acknowledged
	// Previous.
	Acknowledged bool
}

// ClearMailbox empties node's mailbox, so that a node which finds it
// there at start no longer refuses to run its resources. It keeps the
// mailbox's sequence, so that a later message still numbers above it; a
// mailbox that cannot be read is overwritten too, numbered after the
// acknowledgement in the node's slot when that can be read.
func (d *Disk) ClearMailbox(node string) (Cleared, error) {
	i, err := d.slotOf(node)
	if err != nil {
		return Cleared{}, err
	}
	c := Cleared{Previous: Message{To: node}}
	prev, err := d.ReadMessage(node)
	if err != nil {
		c.Unreadable = err
	} else {
		c.Previous = prev
	}
	seq := prev.Sequence
	if ack, _, err := d.ReadAck(node); err == nil {
		c.Acknowledged = prev.Kind != MsgNone && ack == prev
		if c.Unreadable != nil {
			seq = ack.Sequence
		}
	}
	if err := d.WriteMailbox(i, &Mailbox{Kind: MsgNone, From: NoSlot, Sequence: seq}); err != nil {
		return c, d.nodeErr(KindMailbox, i, "write", err)
	}
	return c, nil
}
