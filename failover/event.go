package failover

import (
	"fmt"
	"time"
)

// Event is an input to Machine.Step: Tick, PeerAlive, PeerDead, PeerMessage,
// ResourceResult, FenceResult or AdminRequest.
type Event interface {
	isEvent()
}

// Tick only lets time pass: timers (initdead, fencing backoff, resends) fire
// on it. Step the machine with a Tick at least every TickInterval.
type Tick struct{}

// PeerAlive says the heartbeat layer hears the peer again (on any medium).
type PeerAlive struct{}

// PeerDead says the heartbeat layer has heard nothing from the peer on any
// medium for deadtime. Before the peer was ever heard, the Machine keeps
// waiting until initdead regardless.
type PeerDead struct{}

// PeerMessage carries a message from the peer, decoded by UnmarshalMessage
// from an authenticated heartbeat payload.
type PeerMessage struct {
	// Message is the decoded message.
	Message Message
}

// ResourceOp is the operation a ResourceResult reports on.
type ResourceOp uint8

// The resource operations.
const (
	// OpStart: the StartGroup action finished. On failure the executor has
	// rolled back what it could; the Machine still asks for a stop.
	OpStart ResourceOp = 1 + iota
	// OpStop: a StopGroup action finished; Err is nil only when every
	// resource of the group is really stopped.
	OpStop
	// OpRestart: a RestartResource action finished.
	OpRestart
	// OpMonitor: the monitor of a started resource found it failed. Only
	// failures need be reported.
	OpMonitor
)

// String returns the operation's name: "start", "stop" and so on.
func (o ResourceOp) String() string {
	switch o {
	case OpStart:
		return "start"
	case OpStop:
		return "stop"
	case OpRestart:
		return "restart"
	case OpMonitor:
		return "monitor"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// ResourceResult reports how a group or resource operation went.
type ResourceResult struct {
	// Op is the operation reported on.
	Op ResourceOp
	// Resource names the resource concerned: the one restarted or
	// monitored, or the one that failed a group start or stop. It may be
	// empty for a group operation.
	Resource string
	// Err is nil on success and says what failed otherwise.
	Err error
}

// FenceResult reports a Fence action's outcome.
type FenceResult struct {
	// Node is the node the Fence action named.
	Node string
	// Off is true only when the fencing device confirmed the node is off,
	// or a fence message on the quorum disk was delivered (see Disk).
	Off bool
	// Disk says Off comes from a fence message on the quorum disk, not
	// from an agent. Acknowledged says the peer confirmed in its slot
	// that it obeyed: it stopped its group and takes itself down. Without
	// the acknowledgement the peer counts as down only once its slot has
	// been still for Config.DiskWait.
	Disk, Acknowledged bool
	// Reason says why fencing failed, when it did.
	Reason string
}

// DiskStatus reports the quorum disk as the daemon's disk medium sees
// it. Times are on the Machine's clock (the now of Step). It lets time
// pass as a Tick does: when Config.Disk is set, step the Machine with a
// DiskStatus in place of each Tick.
type DiskStatus struct {
	// Written says this node's slot was written at least once; LastWrite
	// is when the latest successful write returned.
	Written   bool
	LastWrite time.Duration
	// PeerRead says the peer's slot was read at least once; PeerMoved is
	// when its counter was last seen to move (or first read).
	PeerRead  bool
	PeerMoved time.Duration
	// MailboxRead says this node's own mailbox was read at least once, so
	// a fence message left for it would have been reported.
	MailboxRead bool
}

// FenceMessage reports a fence message in this node's own mailbox on the
// quorum disk. A message that arrives while the node runs is obeyed: the
// Machine stops the group and then asks for ObeyFence. One found at
// start-up (AtStart) was left for an earlier run: the Machine holds the
// group stopped and takes no service until FenceMessageCleared.
type FenceMessage struct {
	// From is the sender; Kind is "off" or "reset".
	From, Kind string
	// AtStart says the message was there when this run first read its
	// mailbox.
	AtStart bool
}

// FenceMessageCleared says this node's mailbox is empty again: an
// operator cleared it (haclient disk clear). It lifts only a message found
// at start-up; one that came while the node ran is obeyed regardless.
type FenceMessageCleared struct{}

// AdminCommand is an operator's command, from haclient.
type AdminCommand uint8

// The admin commands.
const (
	// AdminStandby: give up the service to the peer by a planned handover.
	AdminStandby AdminCommand = 1 + iota
	// AdminTakeover: take the service from the peer by a planned handover.
	AdminTakeover
	// AdminFailover: move the service to the other node, whichever holds it.
	AdminFailover
	// AdminMaintenanceOn: stop acting on failures, on both nodes.
	AdminMaintenanceOn
	// AdminMaintenanceOff: act on failures again.
	AdminMaintenanceOff
	// AdminCleanup: clear the failure record of the resource named in
	// AdminRequest.Resource, or of every resource when it is empty.
	AdminCleanup
)

// String returns the command as haclient spells it.
func (c AdminCommand) String() string {
	switch c {
	case AdminStandby:
		return "standby"
	case AdminTakeover:
		return "takeover"
	case AdminFailover:
		return "failover"
	case AdminMaintenanceOn:
		return "maintenance on"
	case AdminMaintenanceOff:
		return "maintenance off"
	case AdminCleanup:
		return "cleanup"
	}
	return fmt.Sprintf("command(%d)", uint8(c))
}

// AdminRequest is an operator's command. Step answers every one with exactly
// one AdminReply action.
type AdminRequest struct {
	// Command is what the operator asked for.
	Command AdminCommand
	// Resource is the resource AdminCleanup clears.
	Resource string
}

func (Tick) isEvent()           {}
func (PeerAlive) isEvent()      {}
func (PeerDead) isEvent()       {}
func (PeerMessage) isEvent()    {}
func (ResourceResult) isEvent() {}
func (FenceResult) isEvent()    {}
func (AdminRequest) isEvent()   {}
func (DiskStatus) isEvent()     {}
func (FenceMessage) isEvent()   {}

func (FenceMessageCleared) isEvent() {}
