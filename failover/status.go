package failover

import (
	"fmt"
	"time"
)

// Role is a node's part in the pair, as haclient status shows it.
type Role uint8

// The roles. A node holds the service (or may) in RoleStarting, RoleActive
// and RoleStopping; RoleFailed holds it only while a stop that failed is
// being escalated.
const (
	// RoleUnknown: starting up, waiting to hear from the peer or for initdead.
	RoleUnknown Role = iota
	// RoleStandby: not holding the service, ready to take it.
	RoleStandby
	// RoleFencing: fencing the peer before taking the service.
	RoleFencing
	// RoleStarting: starting the group.
	RoleStarting
	// RoleActive: holding the service, group started.
	RoleActive
	// RoleStopping: stopping the group, or handing the service over.
	RoleStopping
	// RoleFailed: the service cannot run here (a resource failed past its
	// limit and the peer cannot take it), or the group could not be stopped
	// and the node is fencing itself.
	RoleFailed
	// RoleDead: the peer as seen from here when the heartbeat layer reports
	// it dead. A node never reports itself dead.
	RoleDead
)

var roleNames = [...]string{
	RoleUnknown:  "unknown",
	RoleStandby:  "standby",
	RoleFencing:  "fencing",
	RoleStarting: "starting",
	RoleActive:   "active",
	RoleStopping: "stopping",
	RoleFailed:   "failed",
	RoleDead:     "dead",
}

// String returns the role's name as haclient status prints it.
func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Status is a snapshot of a Machine for haclient status.
type Status struct {
	// Node and Peer are the configured names.
	Node, Peer string
	// Incarnation is this run's incarnation; PeerIncarnation the newest of
	// the peer's heard, zero before any.
	Incarnation, PeerIncarnation uint64
	// Role is this node's role.
	Role Role
	// Reason explains the role in a few words, when there is more to say.
	Reason string
	// PeerRole is the peer's role from its last report, RoleDead when the
	// heartbeat layer reports it dead, RoleUnknown before any report.
	PeerRole Role
	// PeerAlive is the heartbeat layer's last word on the peer.
	PeerAlive bool
	// Holder is the node that holds the service as far as this node knows,
	// or "" when none does (or it is in transit between the nodes).
	Holder string
	// Epoch is the newest service epoch known here.
	Epoch uint64
	// Maintenance is true while maintenance mode is on.
	Maintenance bool
	// UnsafeNoFencing echoes the configuration, for a warning.
	UnsafeNoFencing bool
	// Fencing describes the fencing of the peer under way, if any.
	Fencing Fencing
	// Failures lists the resources with a failure on record, by name.
	Failures []Failure
	// LeaseLost is true while this node holds the service but could not
	// renew its slot on the quorum disk within the lease.
	LeaseLost bool
	// FenceMessage describes a fence message left for this node on the
	// quorum disk that keeps it from taking the service, or that it is
	// obeying; empty when none.
	FenceMessage string
}

// Fencing describes the fencing of the peer.
type Fencing struct {
	// Active is true from the decision to fence until the peer is confirmed
	// off.
	Active bool
	// Attempts counts the attempts made so far.
	Attempts int
	// LastError is the reason the last attempt failed, if it did.
	LastError string
	// NextAttempt is when the next attempt is due, on the Machine's clock,
	// while none is outstanding.
	NextAttempt time.Duration
	// Waiting says why a confirmed fencing does not yet let this node take
	// the service: a fence message delivered through the quorum disk
	// without acknowledgement, while the peer's slot has not been still
	// for long enough.
	Waiting string
}

// Failure is a resource's failure record on this node.
type Failure struct {
	// Resource names the resource; empty for a group start that failed
	// without naming one.
	Resource string
	// Count is the number of failures recorded since the last cleanup.
	Count int
	// Failed is true when the resource failed past its restart limit (or
	// could not be started or restarted): this node will not run the service
	// until the record is cleaned up.
	Failed bool
	// Reason is the last failure's error.
	Reason string
	// Last is when the last failure was recorded, on the Machine's clock.
	Last time.Duration
}
