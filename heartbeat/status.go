package heartbeat

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// StatusVersion is the version of the Status encoding.
const StatusVersion = 1

// Bounds of a Status.
const (
	// MaxRoleLen bounds Status.Role, in bytes.
	MaxRoleLen = 32
	// MaxStateLen bounds StatusItem.State, in bytes.
	MaxStateLen = 32
	// MaxStatusItems bounds len(Status.Items).
	MaxStatusItems = 32
)

// Status is what a node says about itself in every heartbeat: its role,
// flags and a list of named items with their states (the resources it
// holds, for instance). The words are the decision core's; this package only
// encodes them. Its encoding is the heartbeat payload:
//
//	version   1 byte  (StatusVersion)
//	role      1 byte length, then the bytes
//	flags     4 bytes, big endian
//	count     1 byte
//	count × { name: 1 byte length, bytes; state: 1 byte length, bytes }
type Status struct {
	// Role is the sender's role, e.g. "active" or "standby".
	Role string
	// Flags are bits the decision core assigns.
	Flags uint32
	// Items are named things with their states, in the sender's order.
	Items []StatusItem
}

// StatusItem is one named thing in a Status.
type StatusItem struct {
	// Name is at most MaxNameLen bytes.
	Name string
	// State is at most MaxStateLen bytes.
	State string
}

// ErrStatus is wrapped by every Status decoding error.
var ErrStatus = errors.New("bad status payload")

// MarshalBinary encodes s; it fails when a field is over its bound or the
// whole is over MaxPayload.
func (s Status) MarshalBinary() ([]byte, error) {
	if len(s.Role) > MaxRoleLen {
		return nil, fmt.Errorf("heartbeat: status role %q is %d bytes, limit %d", clip(s.Role, 40), len(s.Role), MaxRoleLen)
	}
	if len(s.Items) > MaxStatusItems {
		return nil, fmt.Errorf("heartbeat: status has %d items, limit %d", len(s.Items), MaxStatusItems)
	}
	b := make([]byte, 0, 64)
	b = append(b, StatusVersion, byte(len(s.Role)))
	b = append(b, s.Role...)
	b = binary.BigEndian.AppendUint32(b, s.Flags)
	b = append(b, byte(len(s.Items)))
	for i, it := range s.Items {
		if len(it.Name) > MaxNameLen {
			return nil, fmt.Errorf("heartbeat: status item %d name is %d bytes, limit %d", i, len(it.Name), MaxNameLen)
		}
		if len(it.State) > MaxStateLen {
			return nil, fmt.Errorf("heartbeat: status item %q state is %d bytes, limit %d", it.Name, len(it.State), MaxStateLen)
		}
		b = append(b, byte(len(it.Name)))
		b = append(b, it.Name...)
		b = append(b, byte(len(it.State)))
		b = append(b, it.State...)
	}
	if len(b) > MaxPayload {
		return nil, fmt.Errorf("heartbeat: status is %d bytes, limit %d", len(b), MaxPayload)
	}
	return b, nil
}

// UnmarshalBinary decodes b into s. Errors wrap ErrStatus and name the byte
// offset.
func (s *Status) UnmarshalBinary(b []byte) error {
	bad := func(off int, format string, args ...any) error {
		return fmt.Errorf("heartbeat: status byte %d: %w: %s", off, ErrStatus, fmt.Sprintf(format, args...))
	}
	off := 0
	str := func(field string, limit int) (string, error) {
		if off >= len(b) {
			return "", bad(off, "%s length missing", field)
		}
		n := int(b[off])
		if n > limit {
			return "", bad(off, "%s length %d, limit %d", field, n, limit)
		}
		off++
		if len(b)-off < n {
			return "", bad(off, "%s needs %d bytes, %d left", field, n, len(b)-off)
		}
		v := string(b[off : off+n])
		off += n
		return v, nil
	}
	if len(b) == 0 {
		return bad(0, "empty")
	}
	if b[0] != StatusVersion {
		return bad(0, "version %d, this node reads %d", b[0], StatusVersion)
	}
	off = 1
	var out Status
	var err error
	if out.Role, err = str("role", MaxRoleLen); err != nil {
		return err
	}
	if len(b)-off < 5 {
		return bad(off, "flags and count need 5 bytes, %d left", len(b)-off)
	}
	out.Flags = binary.BigEndian.Uint32(b[off:])
	off += 4
	n := int(b[off])
	if n > MaxStatusItems {
		return bad(off, "%d items, limit %d", n, MaxStatusItems)
	}
	off++
	if n > 0 {
		out.Items = make([]StatusItem, n)
	}
	for i := range out.Items {
		if out.Items[i].Name, err = str(fmt.Sprintf("item %d name", i), MaxNameLen); err != nil {
			return err
		}
		if out.Items[i].State, err = str(fmt.Sprintf("item %d state", i), MaxStateLen); err != nil {
			return err
		}
	}
	if off != len(b) {
		return bad(off, "%d bytes after the last item", len(b)-off)
	}
	*s = out
	return nil
}
