package heartbeat

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// Wire format constants. The layout is described in the package
// documentation.
const (
	// Version is the wire format version this package writes and accepts.
	Version = 1
	// MaxNameLen is the longest cluster or node name, in bytes.
	MaxNameLen = 64
	// MaxPayload is the largest payload a message carries, in bytes.
	MaxPayload = 1200
	// MACLen is the length of the HMAC-SHA256 trailer.
	MACLen = sha256.Size
	// MinKeyLen is the shortest shared key a Codec accepts, in bytes.
	MinKeyLen = 16
	// headerLen counts the fixed-size fields: magic, version, type, the two
	// name lengths, generation, sequence and payload length.
	headerLen = 4 + 1 + 1 + 1 + 1 + 8 + 8 + 2
	// MaxMessageSize is the longest encoded message: it fits one UDP
	// datagram over IPv4 or IPv6 on a 1500-byte MTU (1452 bytes of UDP
	// payload for IPv6) without fragmentation.
	MaxMessageSize = headerLen + 2*MaxNameLen + MaxPayload + MACLen
)

// magic opens every message: "tndm".
var magic = [4]byte{'t', 'n', 'd', 'm'}

// Type says what a message carries.
type Type uint8

// Message types. Types from TypeAppFirst through TypeAppLast are reserved for
// the decision core's own messages (handshakes for planned moves, tickle list
// updates); this package carries their payload without reading it. Every
// other value is rejected on decode.
const (
	// TypeHeartbeat is the periodic message every node sends on every
	// medium; its payload is the sender's Status.
	TypeHeartbeat Type = 0x01
	// TypeAppFirst is the first application message type.
	TypeAppFirst Type = 0x40
	// TypeAppLast is the last application message type.
	TypeAppLast Type = 0x7f
)

// Valid reports whether t is a type this version of the format knows.
func (t Type) Valid() bool {
	return t == TypeHeartbeat || t.IsApp()
}

// IsApp reports whether t is in the application range.
func (t Type) IsApp() bool {
	return t >= TypeAppFirst && t <= TypeAppLast
}

// String names the type: "heartbeat", "app+N" for an application type, or
// "type 0xNN" for an unknown one.
func (t Type) String() string {
	switch {
	case t == TypeHeartbeat:
		return "heartbeat"
	case t.IsApp():
		return fmt.Sprintf("app+%d", t-TypeAppFirst)
	default:
		return fmt.Sprintf("type 0x%02x", uint8(t))
	}
}

// Message is one decoded, authenticated message.
type Message struct {
	// Type says what Payload holds.
	Type Type
	// Sender is the name of the node that signed the message.
	Sender string
	// Generation is the sender's generation: bumped at each start of the
	// sender and persisted (see BumpGeneration).
	Generation uint64
	// Sequence numbers the sender's messages within a generation.
	Sequence uint64
	// Payload is opaque to the wire format; at most MaxPayload bytes.
	Payload []byte
}

// Errors a decode can wrap; test with errors.Is. A *DecodeError carries the
// byte offset and details.
var (
	// ErrTruncated: the input ends before a field it declares.
	ErrTruncated = errors.New("truncated")
	// ErrBadMagic: the input does not start with the format's magic.
	ErrBadMagic = errors.New("bad magic")
	// ErrVersion: the format version is not one this package reads.
	ErrVersion = errors.New("unknown version")
	// ErrType: the message type is not one this version knows.
	ErrType = errors.New("unknown message type")
	// ErrLength: a length field is out of its bounds, or bytes follow the MAC.
	ErrLength = errors.New("length out of bounds")
	// ErrBadMAC: the HMAC does not match: forged, corrupted or signed with
	// another key.
	ErrBadMAC = errors.New("bad MAC")
	// ErrForeignCluster: the message names another cluster.
	ErrForeignCluster = errors.New("foreign cluster")
)

// DecodeError reports why a message was rejected and where.
type DecodeError struct {
	// Offset is the byte offset of the offending field in the input.
	Offset int
	// Err is one of the Err* values of this package.
	Err error
	// Detail says what was found, e.g. "cluster name length 80, limit 64".
	Detail string
}

// Error formats the error as "heartbeat: message byte 6: length out of
// bounds: cluster name length 80, limit 64".
func (e *DecodeError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("heartbeat: message byte %d: %v", e.Offset, e.Err)
	}
	return fmt.Sprintf("heartbeat: message byte %d: %v: %s", e.Offset, e.Err, e.Detail)
}

// Unwrap returns the class of the error.
func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(off int, err error, format string, args ...any) error {
	return &DecodeError{Offset: off, Err: err, Detail: fmt.Sprintf(format, args...)}
}

// macState is a keyed HMAC with room for its sum, pooled so that signing
// and verifying allocate nothing.
type macState struct {
	h   hash.Hash
	sum [MACLen]byte
}

// Codec signs and verifies messages of one cluster with its shared key. It is
// safe for concurrent use.
type Codec struct {
	cluster string
	key     []byte
	macs    sync.Pool
}

// NewCodec returns a Codec for the named cluster. The key is the shared
// secret of both nodes (at least MinKeyLen bytes; 32 random bytes are
// recommended); it is copied.
func NewCodec(cluster string, key []byte) (*Codec, error) {
	if err := checkName("cluster name", cluster); err != nil {
		return nil, err
	}
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("heartbeat: key is %d bytes, at least %d required", len(key), MinKeyLen)
	}
	c := &Codec{cluster: cluster, key: append([]byte(nil), key...)}
	c.macs.New = func() any { return &macState{h: hmac.New(sha256.New, c.key)} }
	return c, nil
}

// Cluster returns the cluster name the codec signs and accepts.
func (c *Codec) Cluster() string { return c.cluster }

func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("heartbeat: empty %s", what)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("heartbeat: %s %q is %d bytes, limit %d", what, name, len(name), MaxNameLen)
	}
	return nil
}

// Marshal encodes and signs m. It fails on an unknown type, a bad sender
// name or a payload over MaxPayload.
func (c *Codec) Marshal(m *Message) ([]byte, error) {
	return c.AppendMarshal(make([]byte, 0, headerLen+len(c.cluster)+len(m.Sender)+len(m.Payload)+MACLen), m)
}

// AppendMarshal is Marshal appending to dst.
func (c *Codec) AppendMarshal(dst []byte, m *Message) ([]byte, error) {
	if !m.Type.Valid() {
		return nil, fmt.Errorf("heartbeat: cannot send %v", m.Type)
	}
	if err := checkName("sender name", m.Sender); err != nil {
		return nil, err
	}
	if len(m.Payload) > MaxPayload {
		return nil, fmt.Errorf("heartbeat: %v payload is %d bytes, limit %d", m.Type, len(m.Payload), MaxPayload)
	}
	start := len(dst)
	dst = append(dst, magic[:]...)
	dst = append(dst, Version, byte(m.Type), byte(len(c.cluster)))
	dst = append(dst, c.cluster...)
	dst = append(dst, byte(len(m.Sender)))
	dst = append(dst, m.Sender...)
	dst = binary.BigEndian.AppendUint64(dst, m.Generation)
	dst = binary.BigEndian.AppendUint64(dst, m.Sequence)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Payload)))
	dst = append(dst, m.Payload...)
	mac := c.macs.Get().(*macState)
	mac.h.Reset()
	mac.h.Write(dst[start:])
	dst = mac.h.Sum(dst)
	c.macs.Put(mac)
	return dst, nil
}

// Unmarshal parses b, checks that it names this codec's cluster and verifies
// its MAC in constant time. Errors are *DecodeError values. The returned
// payload aliases b.
func (c *Codec) Unmarshal(b []byte) (*Message, error) {
	m, body, err := parse(b)
	if err != nil {
		return nil, err
	}
	if string(body.cluster) != c.cluster {
		return nil, decodeErr(7, ErrForeignCluster, "cluster %q, want %q", body.cluster, c.cluster)
	}
	mac := c.macs.Get().(*macState)
	mac.h.Reset()
	mac.h.Write(b[:body.macOff])
	ok := hmac.Equal(mac.h.Sum(mac.sum[:0]), b[body.macOff:])
	c.macs.Put(mac)
	if !ok {
		return nil, decodeErr(body.macOff, ErrBadMAC, "%s from %q", m.Type, m.Sender)
	}
	return m, nil
}

// parsed holds what parse finds besides the Message.
type parsed struct {
	cluster []byte
	macOff  int
}

// need checks that b holds n bytes from off for the named field.
func need(b []byte, off, n int, field string) error {
	if len(b)-off < n {
		return decodeErr(off, ErrTruncated, "%s needs %d bytes, %d left", field, n, len(b)-off)
	}
	return nil
}

// name reads a length-prefixed name at off and returns it and the offset
// after it. field names the name in errors, lenField its length byte.
func name(b []byte, off int, field, lenField string) ([]byte, int, error) {
	if err := need(b, off, 1, lenField); err != nil {
		return nil, 0, err
	}
	n := int(b[off])
	if n == 0 || n > MaxNameLen {
		return nil, 0, decodeErr(off, ErrLength, "%s %d, want 1 to %d", lenField, n, MaxNameLen)
	}
	off++
	if err := need(b, off, n, field); err != nil {
		return nil, 0, err
	}
	return b[off : off+n], off + n, nil
}

// parse checks the structure of b, everything but cluster and MAC.
func parse(b []byte) (*Message, parsed, error) {
	var p parsed
	if err := need(b, 0, 4, "magic"); err != nil {
		return nil, p, err
	}
	if [4]byte(b[:4]) != magic {
		return nil, p, decodeErr(0, ErrBadMagic, "% x", b[:4])
	}
	if err := need(b, 4, 2, "version and type"); err != nil {
		return nil, p, err
	}
	if b[4] != Version {
		return nil, p, decodeErr(4, ErrVersion, "version %d, this node reads %d", b[4], Version)
	}
	if !Type(b[5]).Valid() {
		return nil, p, decodeErr(5, ErrType, "0x%02x", b[5])
	}
	cluster, off, err := name(b, 6, "cluster name", "cluster name length")
	if err != nil {
		return nil, p, err
	}
	sender, off, err := name(b, off, "sender name", "sender name length")
	if err != nil {
		return nil, p, err
	}
	if err := need(b, off, 8, "generation"); err != nil {
		return nil, p, err
	}
	gen := binary.BigEndian.Uint64(b[off:])
	off += 8
	if err := need(b, off, 8, "sequence"); err != nil {
		return nil, p, err
	}
	seq := binary.BigEndian.Uint64(b[off:])
	off += 8
	if err := need(b, off, 2, "payload length"); err != nil {
		return nil, p, err
	}
	n := int(binary.BigEndian.Uint16(b[off:]))
	if n > MaxPayload {
		return nil, p, decodeErr(off, ErrLength, "payload length %d, limit %d", n, MaxPayload)
	}
	off += 2
	if err := need(b, off, n, "payload"); err != nil {
		return nil, p, err
	}
	payload := b[off : off+n : off+n]
	off += n
	if err := need(b, off, MACLen, "MAC"); err != nil {
		return nil, p, err
	}
	if extra := len(b) - off - MACLen; extra > 0 {
		return nil, p, decodeErr(off+MACLen, ErrLength, "%d bytes after the MAC", extra)
	}
	p.cluster, p.macOff = cluster, off
	m := &Message{Type: Type(b[5]), Sender: string(sender), Generation: gen, Sequence: seq, Payload: payload}
	return m, p, nil
}
