package smbservice

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/netip"
)

// MaxSyncMessage is the largest message Sync makes, in bytes: it fits a
// heartbeat application message (heartbeat.MaxPayload, 1200 bytes) with
// room to spare.
const MaxSyncMessage = 1100

// Connection sync messages, version 1. A data message, from the active
// node to its peer:
//
//	offset  size  field
//	0       4     magic "TDCS"
//	4       1     format version, 1
//	5       1     type: 1 delta, 2 snapshot chunk
//	6       2     reserved, zero
//	8       8     epoch of the sender's stream, not zero
//	16      8     sequence number in the stream, not zero
//	24      4     chunk: index of this chunk (below count)
//	28      4     chunk: count of chunks in the snapshot, at least 1
//	...           groups (below)
//	n-4     4     CRC-32C of all that precedes
//
// A group is: op (1 add, 2 remove; a chunk holds adds only), family (4 or
// 6), server address, server port, client count (2 bytes, at least 1),
// then the clients, address and port each, in strictly ascending order.
// Groups are in strictly ascending order of op, then server. A delta
// holds at least one connection and never adds and removes the same one.
//
// An acknowledgement, from the peer back:
//
//	0       4     magic "TDCA"
//	4       1     format version, 1
//	5       1     flags: 0x01 full sync needed, 0x02 gap (a later
//	              message came before an earlier one)
//	6       2     reserved, zero
//	8       8     epoch the peer follows (0: none)
//	16      8     next: the sequence number the peer expects next, all
//	              those before it being applied
//	24      4     CRC-32C
const (
	syncMagic   = "TDCS"
	ackMagic    = "TDCA"
	syncVersion = 1

	syncDelta = 1
	syncChunk = 2

	opAdd    = 1
	opRemove = 2

	syncHeaderLen  = 24
	chunkHeaderLen = syncHeaderLen + 8
	ackLen         = 28

	ackFull = 0x01
	ackGap  = 0x02
)

// SyncError is why a connection sync message or acknowledgement was
// refused: the byte offset and the field at fault.
type SyncError struct {
	// What is "sync message" or "acknowledgement".
	What string
	// Offset is the byte offset of the field in the message.
	Offset int
	// Field names the field.
	Field string
	// Detail says what was wrong with it.
	Detail string
}

// Error formats the error as
// "connection sync message: offset 24: field chunk index: 3, not below the count 3".
func (e *SyncError) Error() string {
	return fmt.Sprintf("connection %s: offset %d: field %s: %s", e.What, e.Offset, e.Field, e.Detail)
}

func syncErr(what string, off int, field, format string, args ...any) error {
	return &SyncError{What: what, Offset: off, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// syncMsg is a decoded data message.
type syncMsg struct {
	typ          byte
	epoch, seq   uint64
	index, count uint32
	add, remove  []Conn
}

// item is one connection of a message with what to do with it.
type item struct {
	op byte
	c  Conn
}

// packBodies packs items, sorted by op, server and client, into message
// bodies of at most limit bytes each. It returns at least one body, empty
// when there are no items.
func packBodies(items []item, limit int) [][]byte {
	var bodies [][]byte
	var b []byte
	cnt := -1 // offset of the current group's count; -1 before the first
	var op byte
	var server netip.AddrPort
	for _, it := range items {
		n := addrLen(famByte(it.c))
		newGroup := cnt < 0 || it.op != op || it.c.Server != server || binary.BigEndian.Uint16(b[cnt:]) == 0xffff
		cost := n + 2
		if newGroup {
			cost += 2 + n + 2 + 2
		}
		if len(b)+cost > limit {
			bodies = append(bodies, b)
			b, cnt, newGroup = nil, -1, true
		}
		if newGroup {
			op, server = it.op, it.c.Server
			b = append(b, op, famByte(it.c))
			b = appendAddrPort(b, server)
			cnt = len(b)
			b = append(b, 0, 0)
		}
		b = appendAddrPort(b, it.c.Client)
		binary.BigEndian.PutUint16(b[cnt:], binary.BigEndian.Uint16(b[cnt:])+1)
	}
	return append(bodies, b)
}

func famByte(c Conn) byte {
	if c.Is4() {
		return family4
	}
	return family6
}

// bodyLimit is the room for groups in a message of the given type.
func bodyLimit(typ byte) int {
	if typ == syncChunk {
		return MaxSyncMessage - chunkHeaderLen - crcLen
	}
	return MaxSyncMessage - syncHeaderLen - crcLen
}

const crcLen = 4

// encodeSync builds one data message around body.
func encodeSync(typ byte, epoch, seq uint64, index, count uint32, body []byte) []byte {
	b := make([]byte, 0, chunkHeaderLen+len(body)+crcLen)
	b = append(b, syncMagic...)
	b = append(b, syncVersion, typ, 0, 0)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = binary.BigEndian.AppendUint64(b, seq)
	if typ == syncChunk {
		b = binary.BigEndian.AppendUint32(b, index)
		b = binary.BigEndian.AppendUint32(b, count)
	}
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// checkFrame checks length, magic, version, reserved bytes and checksum
// common to both kinds of message and returns the body before the CRC.
func checkFrame(what, magic string, b []byte, minLen int) ([]byte, error) {
	if len(b) < minLen {
		return nil, syncErr(what, len(b), "length", "%d bytes, shorter than the %d of header and checksum", len(b), minLen)
	}
	if len(b) > MaxSyncMessage {
		return nil, syncErr(what, MaxSyncMessage, "length", "%d bytes, longer than %d", len(b), MaxSyncMessage)
	}
	if string(b[:4]) != magic {
		return nil, syncErr(what, 0, "magic", "%q, want %q", b[:4], magic)
	}
	if b[4] != syncVersion {
		return nil, syncErr(what, 4, "version", "%d, want %d", b[4], syncVersion)
	}
	if b[6] != 0 || b[7] != 0 {
		return nil, syncErr(what, 6, "reserved", "%02x%02x, want zero", b[6], b[7])
	}
	body := b[:len(b)-crcLen]
	if got, want := binary.BigEndian.Uint32(b[len(body):]), crc32.Checksum(body, castagnoli); got != want {
		return nil, syncErr(what, len(body), "checksum", "%08x, computed %08x", got, want)
	}
	return body, nil
}

// decodeSync decodes a data message strictly.
func decodeSync(b []byte) (*syncMsg, error) {
	const what = "sync message"
	body, err := checkFrame(what, syncMagic, b, syncHeaderLen+crcLen)
	if err != nil {
		return nil, err
	}
	m := &syncMsg{typ: b[5], epoch: binary.BigEndian.Uint64(b[8:]), seq: binary.BigEndian.Uint64(b[16:])}
	off := syncHeaderLen
	switch m.typ {
	case syncDelta:
	case syncChunk:
		if len(body) < chunkHeaderLen {
			return nil, syncErr(what, len(body), "chunk header", "cut short: %d bytes, want %d", len(body), chunkHeaderLen)
		}
		m.index, m.count = binary.BigEndian.Uint32(b[24:]), binary.BigEndian.Uint32(b[28:])
		if m.count == 0 {
			return nil, syncErr(what, 28, "chunk count", "zero")
		}
		if m.index >= m.count {
			return nil, syncErr(what, 24, "chunk index", "%d, not below the count %d", m.index, m.count)
		}
		off = chunkHeaderLen
	default:
		return nil, syncErr(what, 5, "type", "%d, want %d (delta) or %d (chunk)", m.typ, syncDelta, syncChunk)
	}
	if m.epoch == 0 {
		return nil, syncErr(what, 8, "epoch", "zero")
	}
	if m.seq == 0 {
		return nil, syncErr(what, 16, "sequence", "zero")
	}
	var prevOp byte
	var prevServer netip.AddrPort
	var added map[Conn]bool
	for off < len(body) {
		op := body[off]
		switch {
		case op != opAdd && op != opRemove:
			return nil, syncErr(what, off, "group op", "%d, want %d (add) or %d (remove)", op, opAdd, opRemove)
		case op == opRemove && m.typ == syncChunk:
			return nil, syncErr(what, off, "group op", "remove in a snapshot chunk")
		}
		if len(body)-off < 2 {
			return nil, syncErr(what, off+1, "group family", "cut short")
		}
		n := addrLen(body[off+1])
		if n == 0 {
			return nil, syncErr(what, off+1, "group family", "%d, want 4 or 6", body[off+1])
		}
		if len(body)-off-2 < n+4 {
			return nil, syncErr(what, off+2, "group server", "cut short")
		}
		server := readAddrPort(body[off+2:], n)
		if prevOp != 0 && (op < prevOp || op == prevOp && server.Compare(prevServer) <= 0) {
			return nil, syncErr(what, off, "group", "op %d server %s not after op %d server %s", op, server, prevOp, prevServer)
		}
		cntOff := off + 2 + n + 2
		count := int(binary.BigEndian.Uint16(body[cntOff:]))
		off = cntOff + 2
		if count == 0 || count > (len(body)-off)/(n+2) {
			return nil, syncErr(what, cntOff, "client count", "%d does not fit the %d bytes left", count, len(body)-off)
		}
		var prev netip.AddrPort
		for i := range count {
			c := Conn{Client: readAddrPort(body[off:], n), Server: server}
			if err := c.valid(); err != nil {
				return nil, syncErr(what, off, "client", "connection %s: %v", c, err)
			}
			if i > 0 && c.Client.Compare(prev) <= 0 {
				return nil, syncErr(what, off, "client", "%s not after %s", c.Client, prev)
			}
			prev = c.Client
			if op == opAdd {
				m.add = append(m.add, c)
				if m.typ == syncDelta {
					if added == nil {
						added = make(map[Conn]bool)
					}
					added[c] = true
				}
			} else {
				if added[c] {
					return nil, syncErr(what, off, "client", "connection %s both added and removed", c)
				}
				m.remove = append(m.remove, c)
			}
			off += n + 2
		}
		prevOp, prevServer = op, server
	}
	if m.typ == syncDelta && len(m.add)+len(m.remove) == 0 {
		return nil, syncErr(what, off, "groups", "a delta without connections")
	}
	if m.typ == syncChunk && len(m.add) == 0 && m.count != 1 {
		return nil, syncErr(what, off, "groups", "an empty chunk in a snapshot of %d chunks", m.count)
	}
	return m, nil
}

// syncAck is a decoded acknowledgement.
type syncAck struct {
	flags       byte
	epoch, next uint64
}

func encodeAck(a syncAck) []byte {
	b := make([]byte, 0, ackLen)
	b = append(b, ackMagic...)
	b = append(b, syncVersion, a.flags, 0, 0)
	b = binary.BigEndian.AppendUint64(b, a.epoch)
	b = binary.BigEndian.AppendUint64(b, a.next)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeAck(b []byte) (syncAck, error) {
	const what = "acknowledgement"
	if _, err := checkFrame(what, ackMagic, b, ackLen); err != nil {
		return syncAck{}, err
	}
	if len(b) != ackLen {
		return syncAck{}, syncErr(what, ackLen, "length", "%d bytes, want %d", len(b), ackLen)
	}
	a := syncAck{flags: b[5], epoch: binary.BigEndian.Uint64(b[8:]), next: binary.BigEndian.Uint64(b[16:])}
	if a.flags&^(ackFull|ackGap) != 0 {
		return syncAck{}, syncErr(what, 5, "flags", "unknown bits %02x", a.flags&^(ackFull|ackGap))
	}
	if a.next == 0 {
		return syncAck{}, syncErr(what, 16, "next", "zero")
	}
	return a, nil
}
