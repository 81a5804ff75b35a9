package admin

import (
	"fmt"
	"time"
)

// Schema is the version of the JSON documents this package defines. It is
// written as "schema" at the top of every response that carries a
// document. A change that could break a reader (a field removed, renamed or
// given another meaning) raises it; new fields and new values of the
// enumerations below do not.
const Schema = 1

// Role is a node's part in the pair.
type Role string

// The roles a node can have, as the local node sees them.
const (
	// RoleUnknown: not known yet (starting up, waiting for the peer or for
	// initdead), or a peer not heard since this node started.
	RoleUnknown Role = "unknown"
	// RoleStandby: not holding the service, ready to take it.
	RoleStandby Role = "standby"
	// RoleFencing: fencing the peer before taking the service.
	RoleFencing Role = "fencing"
	// RoleStarting: starting the resource group.
	RoleStarting Role = "starting"
	// RoleActive: holding the service, every resource started.
	RoleActive Role = "active"
	// RoleStopping: stopping the resource group, or handing the service
	// over.
	RoleStopping Role = "stopping"
	// RoleFailed: the service cannot run on the node (a resource failed
	// past its restart limit, or a stop failed and is escalating).
	RoleFailed Role = "failed"
	// RoleDead: the peer, when every heartbeat medium is down.
	RoleDead Role = "dead"
)

// LinkState says whether a heartbeat medium carries the peer's heartbeats.
type LinkState string

// The states of a medium for one peer.
const (
	// LinkUp: a heartbeat came within deadtime.
	LinkUp LinkState = "up"
	// LinkDown: silent for deadtime or longer.
	LinkDown LinkState = "down"
	// LinkUnknown: never heard since this node started, and initdead has
	// not passed yet.
	LinkUnknown LinkState = "unknown"
)

// ResourceState is the state of one resource of the group.
type ResourceState string

// The states of a resource.
const (
	// ResourceStarted: running on the node named by Resource.Where.
	ResourceStarted ResourceState = "started"
	// ResourceStopped: running nowhere.
	ResourceStopped ResourceState = "stopped"
	// ResourceFailed: its last start, monitor or stop failed on the node
	// named by Resource.Where; see Resource.LastError.
	ResourceFailed ResourceState = "failed"
)

// FenceResult is the outcome of a fencing.
type FenceResult string

// The outcomes of a fencing.
const (
	// FenceDone: the target is confirmed fenced (the agent reported it off,
	// or the disk rule was met).
	FenceDone FenceResult = "done"
	// FenceFailed: the target could not be confirmed fenced; see
	// FenceReport.Error.
	FenceFailed FenceResult = "failed"
	// FenceRunning: the fencing is still under way.
	FenceRunning FenceResult = "running"
)

// Level is the severity of a Notice.
type Level string

// The levels of notices.
const (
	LevelInfo    Level = "info"
	LevelWarning Level = "warning"
	LevelError   Level = "error"
)

// UnsafeNoFencingWarning is the text of Status.UnsafeWarning when the
// cluster runs with unsafe_no_fencing.
const UnsafeNoFencingWarning = "unsafe_no_fencing is set: the peer cannot be fenced, " +
	"shared disks are not protected against two active nodes"

// Status is the state of the pair as the local node sees it: the document
// of GET /v1/status and of haclient status --json.
type Status struct {
	// Schema is the version of this document, Schema.
	Schema int `json:"schema"`
	// Time is when the daemon took this snapshot, by its wall clock.
	// The server fills it in when the Daemon leaves it zero.
	Time time.Time `json:"time"`
	// Cluster is the cluster's name from [cluster] name.
	Cluster string `json:"cluster"`
	// Node is the local node's name.
	Node string `json:"node"`
	// Nodes are both members of the pair, the local node first.
	Nodes []Node `json:"nodes"`
	// Resources are the resource group in start order.
	Resources []Resource `json:"resources"`
	// Maintenance is true while maintenance mode is on: failures are
	// reported but not acted on.
	Maintenance bool `json:"maintenance"`
	// UnsafeNoFencing is true when the configuration sets
	// unsafe_no_fencing: the cluster runs without any way to fence the
	// peer.
	UnsafeNoFencing bool `json:"unsafe_no_fencing"`
	// UnsafeWarning says what UnsafeNoFencing means for the data; empty
	// when UnsafeNoFencing is false. The server fills it in with
	// UnsafeNoFencingWarning when the Daemon leaves it empty.
	UnsafeWarning string `json:"unsafe_warning"`
	// LastFence is the most recent fencing this node did or is doing;
	// null when it has fenced nothing since it started.
	LastFence *FenceReport `json:"last_fence"`
	// Tickles are the tickle resource's counters on this node; left out
	// when the group has no tickle resource.
	Tickles *TickleCounts `json:"tickles,omitempty"`
	// Notices are recent events worth an operator's eye, oldest first.
	// The daemon keeps a bounded number of them.
	Notices []Notice `json:"notices"`
}

// Node is one member of the pair.
type Node struct {
	// Name is the node's name from [[node]] name.
	Name string `json:"name"`
	// Local is true for the node that answered.
	Local bool `json:"local"`
	// Role is the node's role, as the local node knows it.
	Role Role `json:"role"`
	// Reason says briefly why the node has its role ("peer silent on all
	// media", "maintenance"); may be empty.
	Reason string `json:"reason"`
	// Links are the heartbeat media as they carry this node's heartbeats to
	// the local node, in configuration order; empty for the local node.
	Links []Link `json:"links"`
}

// Link is one heartbeat medium as seen for one peer.
type Link struct {
	// Medium is the medium's name: "udp", "serial" or "disk".
	Medium string `json:"medium"`
	// State is up, down or unknown.
	State LinkState `json:"state"`
	// LastHeard is when the last heartbeat from the peer arrived on this
	// medium, by the daemon's wall clock (RFC 3339); null when never.
	LastHeard *time.Time `json:"last_heard"`
	// LastHeardAgoMS is how many milliseconds before Status.Time that was,
	// measured on the daemon's monotonic clock; null when never. The
	// server computes it from LastHeard when the Daemon leaves it nil.
	LastHeardAgoMS *int64 `json:"last_heard_ms_ago"`
	// Late counts heartbeats that came more than warntime after the
	// previous one on this medium.
	Late uint64 `json:"late"`
	// Bad counts the packets this medium carried that were dropped.
	Bad BadPackets `json:"bad"`
}

// BadPackets counts dropped packets by kind. They are counted and never
// acted on.
type BadPackets struct {
	// Forged counts packets whose HMAC does not verify with the shared key.
	Forged uint64 `json:"forged"`
	// Replayed counts authentic packets seen before, or older than the
	// replay window or the sender's generation.
	Replayed uint64 `json:"replayed"`
	// Truncated counts packets that end before a field they declare.
	Truncated uint64 `json:"truncated"`
	// Foreign counts packets of another cluster.
	Foreign uint64 `json:"foreign"`
	// Malformed counts packets with a bad magic, an unknown version or
	// message type, or a length out of bounds.
	Malformed uint64 `json:"malformed"`
	// UnknownSender counts authentic packets from a node that is not the
	// configured peer.
	UnknownSender uint64 `json:"unknown_sender"`
}

// Total returns the number of bad packets of every kind.
func (b BadPackets) Total() uint64 {
	return b.Forged + b.Replayed + b.Truncated + b.Foreign + b.Malformed + b.UnknownSender
}

// Resource is one resource of the group.
type Resource struct {
	// Name is the resource's name from [[resource]] name.
	Name string `json:"name"`
	// Type is its kind: filesystem, floatip, smb, tickle, ocf or systemd.
	Type string `json:"type"`
	// State is started, stopped or failed.
	State ResourceState `json:"state"`
	// Where is the node it is started or failed on; empty when stopped.
	Where string `json:"where"`
	// LastError is the message of its last failure; empty when none is on
	// record.
	LastError string `json:"last_error"`
	// Failures counts its failures since the record was last cleared
	// (haclient cleanup); restarts in place stop at the restart limit.
	Failures int `json:"failures"`
}

// ResourceList is the document of GET /v1/resources and of haclient
// resources --json.
type ResourceList struct {
	// Schema is the version of this document, Schema.
	Schema int `json:"schema"`
	// Resources are the resource group in start order.
	Resources []Resource `json:"resources"`
}

// FenceReport is what one fencing did: the answer to POST /v1/fence and
// Status.LastFence.
type FenceReport struct {
	// Schema is the version of this document, Schema, when it is a
	// response of its own; 0 and left out inside Status.
	Schema int `json:"schema,omitempty"`
	// Target is the node fenced.
	Target string `json:"target"`
	// Method is how: the fence agent's name (such as "fence_ipmilan"), or
	// "disk" for the poison pill on the quorum disk.
	Method string `json:"method"`
	// Result is done, failed or running.
	Result FenceResult `json:"result"`
	// Started is when the fencing began (RFC 3339).
	Started time.Time `json:"started"`
	// DurationMS is how long it took, or has taken so far, in milliseconds.
	DurationMS int64 `json:"duration_ms"`
	// Error says why it failed; empty unless Result is failed.
	Error string `json:"error"`
	// Detail summarises what the fencer did: the agent's confirmed power
	// state, or the fence message left on the disk and whether the node
	// acknowledged it. Empty while running.
	Detail string `json:"detail,omitempty"`
}

// Duration returns DurationMS as a time.Duration.
func (f FenceReport) Duration() time.Duration {
	return time.Duration(f.DurationMS) * time.Millisecond
}

// Notice is one event worth an operator's eye.
type Notice struct {
	// Time is when it happened (RFC 3339).
	Time time.Time `json:"time"`
	// Level is info, warning or error.
	Level Level `json:"level"`
	// Text says what happened.
	Text string `json:"text"`
}

// MaintenanceRequest is the body of POST /v1/maintenance.
type MaintenanceRequest struct {
	// On turns maintenance mode on (true) or off (false).
	On *bool `json:"on"`
}

// FenceRequest is the body of POST /v1/fence.
type FenceRequest struct {
	// Node is the node to fence.
	Node string `json:"node"`
	// Self must be true to fence the local node; without it the daemon
	// refuses.
	Self bool `json:"self"`
}

// ErrorBody is the body of every response with a status of 400 or more.
type ErrorBody struct {
	// Error is the server's message.
	Error string `json:"error"`
}

// normalize fills what the server derives and replaces nil slices with
// empty ones, so that a reader always finds arrays where arrays belong.
func (s *Status) normalize(now time.Time) {
	s.Schema = Schema
	if s.Time.IsZero() {
		s.Time = now
	}
	if s.UnsafeNoFencing && s.UnsafeWarning == "" {
		s.UnsafeWarning = UnsafeNoFencingWarning
	}
	if s.Nodes == nil {
		s.Nodes = []Node{}
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if n.Links == nil {
			n.Links = []Link{}
		}
		if n.Role == "" {
			n.Role = RoleUnknown
		}
		for j := range n.Links {
			l := &n.Links[j]
			if l.State == "" {
				l.State = LinkUnknown
			}
			if l.LastHeard != nil && l.LastHeardAgoMS == nil {
				ago := max(s.Time.Sub(*l.LastHeard).Milliseconds(), 0)
				l.LastHeardAgoMS = &ago
			}
		}
	}
	if s.Resources == nil {
		s.Resources = []Resource{}
	}
	if s.Notices == nil {
		s.Notices = []Notice{}
	}
	if s.LastFence != nil {
		f := *s.LastFence
		f.Schema = 0
		s.LastFence = &f
	}
}

// Peer returns the first node that is not the local one, or nil.
func (s *Status) Peer() *Node {
	for i := range s.Nodes {
		if !s.Nodes[i].Local {
			return &s.Nodes[i]
		}
	}
	return nil
}

// Local returns the local node, or nil.
func (s *Status) Local() *Node {
	for i := range s.Nodes {
		if s.Nodes[i].Local {
			return &s.Nodes[i]
		}
	}
	return nil
}

// String returns the report in one line, as haclient prints it.
func (f FenceReport) String() string {
	s := fmt.Sprintf("fencing of %s", f.Target)
	if f.Method != "" {
		s += " by " + f.Method
	}
	switch f.Result {
	case FenceDone:
		return fmt.Sprintf("%s done in %s", s, f.Duration())
	case FenceRunning:
		return fmt.Sprintf("%s running for %s", s, f.Duration())
	default:
		s = fmt.Sprintf("%s %s after %s", s, f.Result, f.Duration())
		if f.Error != "" {
			s += ": " + f.Error
		}
		return s
	}
}
