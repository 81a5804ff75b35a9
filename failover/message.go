package failover

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// WireVersion is the version byte every encoded message starts with. A
// message of another version is rejected by UnmarshalMessage.
const WireVersion = 1

// ErrMalformed is wrapped by every error UnmarshalMessage and the
// UnmarshalBinary methods return, so that a caller can count bad payloads
// without parsing error text.
var ErrMalformed = errors.New("malformed message")

// MessageType tells the kinds of Message apart on the wire.
type MessageType uint8

// The message types, as encoded in a message's second byte.
const (
	TypeReport MessageType = 1 + iota
	TypeRelease
	TypeReleaseAck
	TypeRequest
	TypeRefusal
)

var typeNames = [...]string{
	TypeReport:     "report",
	TypeRelease:    "release",
	TypeReleaseAck: "release-ack",
	TypeRequest:    "request",
	TypeRefusal:    "refusal",
}

// String returns the type's name: "report", "release" and so on.
func (t MessageType) String() string {
	if t >= TypeReport && t <= TypeRefusal {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Message is what one Machine says to the other: a Report of its state, or
// one step of a planned move (Release, ReleaseAck, Request, Refusal). The
// daemon carries messages in heartbeat payloads, encoded with MarshalBinary
// and decoded with UnmarshalMessage; the heartbeat layer authenticates them.
// Messages may be lost, duplicated and reordered: the Machine copes.
type Message interface {
	// Type returns the kind of message.
	Type() MessageType
	// MarshalBinary encodes the message. It fails only on a message that
	// could never be valid, such as one with no sender incarnation.
	MarshalBinary() ([]byte, error)
	header() Header
}

// Header addresses a message from one run of tandemd to one run of the peer.
// A run is named by its incarnation: the generation number the daemon
// persists and bumps at every start, so that a later run always has a greater
// incarnation than an earlier one on the same node.
type Header struct {
	// From is the sender's incarnation; never zero.
	From uint64
	// To is the incarnation of the addressee as the sender knows it, zero
	// when the sender has not heard from the addressee yet. A Machine ignores
	// any handshake message addressed to another run of itself.
	To uint64
}

func (h Header) header() Header { return h }

const headerLen = 2 + 8 + 8

// Report is a node's account of itself, sent whenever it changes and at
// every resend interval. Its Seq orders the reports of one incarnation: a
// receiver keeps only the newest.
type Report struct {
	Header
	// Seq numbers the reports of one incarnation, from 1.
	Seq uint64
	// Epoch is the newest service epoch the sender has taken part in: each
	// transfer of the service (election, fencing, release) makes a new one.
	Epoch uint64
	// MaintenanceVersion orders changes of maintenance mode across the pair;
	// the newer setting wins.
	MaintenanceVersion uint64
	// Role is the sender's role as its own status shows it.
	Role Role
	// Owner is set while the sender holds the service (or holds the right to
	// run it: starting, active, stopping, or stopped after a failure).
	Owner bool
	// Quiescent is set when the sender neither holds the service nor is
	// about to: its group is stopped, it is not fencing, and it has no release
	// outstanding.
	Quiescent bool
	// Eligible is set when the sender could run the service: no resource is
	// marked failed on it.
	Eligible bool
	// Releasing is set while the sender, holding the service, is moving it to
	// the addressee.
	Releasing bool
	// Maintenance is the sender's maintenance mode.
	Maintenance bool
}

const (
	flagOwner = 1 << iota
	flagQuiescent
	flagEligible
	flagReleasing
	flagMaintenance
	flagsKnown = flagOwner | flagQuiescent | flagEligible | flagReleasing | flagMaintenance
)

const reportLen = headerLen + 8 + 8 + 8 + 1 + 1

// Type returns TypeReport.
func (Report) Type() MessageType { return TypeReport }

// MarshalBinary encodes r in 44 bytes.
func (r Report) MarshalBinary() ([]byte, error) {
	if r.From == 0 {
		return nil, errors.New("failover: report: zero sender incarnation")
	}
	if r.Role > RoleFailed {
		return nil, fmt.Errorf("failover: report: role %v cannot be sent", r.Role)
	}
	b := appendHeader(make([]byte, 0, reportLen), TypeReport, r.Header)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = binary.BigEndian.AppendUint64(b, r.Epoch)
	b = binary.BigEndian.AppendUint64(b, r.MaintenanceVersion)
	b = append(b, byte(r.Role))
	var f byte
	for _, x := range []struct {
		set bool
		bit byte
	}{
		{r.Owner, flagOwner},
		{r.Quiescent, flagQuiescent},
		{r.Eligible, flagEligible},
		{r.Releasing, flagReleasing},
		{r.Maintenance, flagMaintenance},
	} {
		if x.set {
			f |= x.bit
		}
	}
	return append(b, f), nil
}

// UnmarshalBinary decodes a report encoded by MarshalBinary.
func (r *Report) UnmarshalBinary(b []byte) error {
	h, body, err := parseHeader(b, TypeReport, reportLen)
	if err != nil {
		return err
	}
	role := Role(body[24])
	if role > RoleFailed {
		return malformed(TypeReport, "role %d out of range", body[24])
	}
	f := body[25]
	if f&^flagsKnown != 0 {
		return malformed(TypeReport, "unknown flags %#02x", f&^flagsKnown)
	}
	*r = Report{
		Header:             h,
		Seq:                binary.BigEndian.Uint64(body[0:]),
		Epoch:              binary.BigEndian.Uint64(body[8:]),
		MaintenanceVersion: binary.BigEndian.Uint64(body[16:]),
		Role:               role,
		Owner:              f&flagOwner != 0,
		Quiescent:          f&flagQuiescent != 0,
		Eligible:           f&flagEligible != 0,
		Releasing:          f&flagReleasing != 0,
		Maintenance:        f&flagMaintenance != 0,
	}
	if r.Seq == 0 {
		return malformed(TypeReport, "sequence number 0")
	}
	if r.Owner && r.Quiescent {
		return malformed(TypeReport, "owner and quiescent at once")
	}
	return nil
}

// Release is the holder's word that it has stopped the group and hands the
// service, as epoch Epoch, to the addressee. The sender repeats it until a
// ReleaseAck or a Report shows the addressee took it.
type Release struct {
	Header
	// Epoch is the new epoch of the service; greater than any the sender
	// has reported.
	Epoch uint64
}

// Type returns TypeRelease.
func (Release) Type() MessageType { return TypeRelease }

// MarshalBinary encodes m in 26 bytes.
func (m Release) MarshalBinary() ([]byte, error) {
	return marshalEpoch(TypeRelease, m.Header, m.Epoch)
}

// UnmarshalBinary decodes a release encoded by MarshalBinary.
func (m *Release) UnmarshalBinary(b []byte) error {
	h, e, err := unmarshalEpoch(b, TypeRelease)
	*m = Release{Header: h, Epoch: e}
	return err
}

// ReleaseAck confirms that the sender took the service released to it as
// epoch Epoch. It is sent again for every copy of that Release.
type ReleaseAck struct {
	Header
	// Epoch is the epoch of the Release being confirmed.
	Epoch uint64
}

// Type returns TypeReleaseAck.
func (ReleaseAck) Type() MessageType { return TypeReleaseAck }

// MarshalBinary encodes m in 26 bytes.
func (m ReleaseAck) MarshalBinary() ([]byte, error) {
	return marshalEpoch(TypeReleaseAck, m.Header, m.Epoch)
}

// UnmarshalBinary decodes an acknowledgement encoded by MarshalBinary.
func (m *ReleaseAck) UnmarshalBinary(b []byte) error {
	h, e, err := unmarshalEpoch(b, TypeReleaseAck)
	*m = ReleaseAck{Header: h, Epoch: e}
	return err
}

// Request asks the holder of the service to release it to the sender
// (haclient takeover, or failover on the standby node). Epoch names the
// holding the sender means, so that a late copy never moves a later one.
type Request struct {
	Header
	// Epoch is the epoch of the service as the holder last reported it.
	Epoch uint64
}

// Type returns TypeRequest.
func (Request) Type() MessageType { return TypeRequest }

// MarshalBinary encodes m in 26 bytes.
func (m Request) MarshalBinary() ([]byte, error) {
	return marshalEpoch(TypeRequest, m.Header, m.Epoch)
}

// UnmarshalBinary decodes a request encoded by MarshalBinary.
func (m *Request) UnmarshalBinary(b []byte) error {
	h, e, err := unmarshalEpoch(b, TypeRequest)
	*m = Request{Header: h, Epoch: e}
	return err
}

// RefusalReason says why a holder declined a Request.
type RefusalReason uint8

// The reasons for a Refusal.
const (
	// RefusedMaintenance: the pair is in maintenance mode.
	RefusedMaintenance RefusalReason = 1 + iota
	// RefusedUnfit: the requester cannot run the service (a resource is
	// marked failed on it, or it is not standing by).
	RefusedUnfit
)

// String says the reason in words.
func (r RefusalReason) String() string {
	switch r {
	case RefusedMaintenance:
		return "maintenance mode is on"
	case RefusedUnfit:
		return "the requesting node cannot run the service"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Refusal answers a Request the holder will not honour.
type Refusal struct {
	Header
	// Epoch is the epoch of the Request refused.
	Epoch uint64
	// Reason says why.
	Reason RefusalReason
}

// Type returns TypeRefusal.
func (Refusal) Type() MessageType { return TypeRefusal }

const refusalLen = headerLen + 8 + 1

// MarshalBinary encodes m in 27 bytes.
func (m Refusal) MarshalBinary() ([]byte, error) {
	if m.Reason < RefusedMaintenance || m.Reason > RefusedUnfit {
		return nil, fmt.Errorf("failover: refusal: unknown reason %d", m.Reason)
	}
	b, err := marshalEpoch(TypeRefusal, m.Header, m.Epoch)
	if err != nil {
		return nil, err
	}
	return append(b, byte(m.Reason)), nil
}

// UnmarshalBinary decodes a refusal encoded by MarshalBinary.
func (m *Refusal) UnmarshalBinary(b []byte) error {
	h, body, err := parseHeader(b, TypeRefusal, refusalLen)
	if err != nil {
		return err
	}
	if h.To == 0 {
		return malformed(TypeRefusal, "zero addressee incarnation")
	}
	r := RefusalReason(body[8])
	if r < RefusedMaintenance || r > RefusedUnfit {
		return malformed(TypeRefusal, "unknown reason %d", body[8])
	}
	e := binary.BigEndian.Uint64(body)
	if e == 0 {
		return malformed(TypeRefusal, "epoch 0")
	}
	*m = Refusal{Header: h, Epoch: e, Reason: r}
	return nil
}

// UnmarshalMessage decodes any message encoded by a MarshalBinary method of
// this package. It returns the message as a value (Report, Release,
// ReleaseAck, Request or Refusal). Any deviation from the encoding — a short
// or long buffer, an unknown version, type, flag, role or reason, a zero
// incarnation — is an error wrapping ErrMalformed.
func UnmarshalMessage(b []byte) (Message, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("failover: %w: %d bytes, shorter than a header", ErrMalformed, len(b))
	}
	switch MessageType(b[1]) {
	case TypeReport:
		var m Report
		err := m.UnmarshalBinary(b)
		return m, err
	case TypeRelease:
		var m Release
		err := m.UnmarshalBinary(b)
		return m, err
	case TypeReleaseAck:
		var m ReleaseAck
		err := m.UnmarshalBinary(b)
		return m, err
	case TypeRequest:
		var m Request
		err := m.UnmarshalBinary(b)
		return m, err
	case TypeRefusal:
		var m Refusal
		err := m.UnmarshalBinary(b)
		return m, err
	}
	if b[0] != WireVersion {
		return nil, fmt.Errorf("failover: %w: version %d, want %d", ErrMalformed, b[0], WireVersion)
	}
	return nil, fmt.Errorf("failover: %w: unknown type %d", ErrMalformed, b[1])
}

func appendHeader(b []byte, t MessageType, h Header) []byte {
	b = append(b, WireVersion, byte(t))
	b = binary.BigEndian.AppendUint64(b, h.From)
	return binary.BigEndian.AppendUint64(b, h.To)
}

// parseHeader checks version, type, exact length and sender, and returns the
// header and the body after it.
func parseHeader(b []byte, t MessageType, n int) (Header, []byte, error) {
	if len(b) != n {
		return Header{}, nil, malformed(t, "%d bytes, want %d", len(b), n)
	}
	if b[0] != WireVersion {
		return Header{}, nil, malformed(t, "version %d, want %d", b[0], WireVersion)
	}
	if MessageType(b[1]) != t {
		return Header{}, nil, malformed(t, "type byte is %v", MessageType(b[1]))
	}
	h := Header{
		From: binary.BigEndian.Uint64(b[2:]),
		To:   binary.BigEndian.Uint64(b[10:]),
	}
	if h.From == 0 {
		return Header{}, nil, malformed(t, "zero sender incarnation")
	}
	return h, b[headerLen:], nil
}

const epochLen = headerLen + 8

func marshalEpoch(t MessageType, h Header, epoch uint64) ([]byte, error) {
	switch {
	case h.From == 0:
		return nil, fmt.Errorf("failover: %v: zero sender incarnation", t)
	case h.To == 0:
		return nil, fmt.Errorf("failover: %v: zero addressee incarnation", t)
	case epoch == 0:
		return nil, fmt.Errorf("failover: %v: epoch 0", t)
	}
	b := appendHeader(make([]byte, 0, epochLen+1), t, h)
	return binary.BigEndian.AppendUint64(b, epoch), nil
}

func unmarshalEpoch(b []byte, t MessageType) (Header, uint64, error) {
	h, body, err := parseHeader(b, t, epochLen)
	if err != nil {
		return Header{}, 0, err
	}
	if h.To == 0 {
		return Header{}, 0, malformed(t, "zero addressee incarnation")
	}
	e := binary.BigEndian.Uint64(body)
	if e == 0 {
		return Header{}, 0, malformed(t, "epoch 0")
	}
	return h, e, nil
}

func malformed(t MessageType, format string, args ...any) error {
	return fmt.Errorf("failover: %w: %v: %s", ErrMalformed, t, fmt.Sprintf(format, args...))
}
