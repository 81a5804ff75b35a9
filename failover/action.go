package failover

import "fmt"

// Action is an output of Machine.Step, for the daemon to carry out in the
// order given: Fence, StartGroup, StopGroup, RestartResource, Send,
// SelfFence, Notice, RoleChanged or AdminReply.
type Action interface {
	isAction()
}

// Fence asks the fencer to power the peer off and confirm it, and to report
// with a FenceResult. The Machine has at most one Fence outstanding.
type Fence struct {
	// Node is the peer's name.
	Node string
}

// StartGroup asks the executor to start the resource group, in order, and to
// report with a ResourceResult for OpStart. At most one group operation
// (start, stop or restart) is outstanding at a time.
type StartGroup struct{}

// StopGroup asks the executor to stop the resource group, in reverse order,
// and to report with a ResourceResult for OpStop. With Force the executor
// kills whatever holds a resource (processes on a mount, smbd) before
// stopping it: the Machine asks for that after a plain stop failed.
type StopGroup struct {
	// Force: kill what holds the resources first.
	Force bool
}

// RestartResource asks the executor to restart one failed resource in place
// and to report with a ResourceResult for OpRestart.
type RestartResource struct {
	// Name is the resource's name.
	Name string
}

// Send asks the daemon to deliver Message to the peer, in a heartbeat
// payload. Delivery may fail; the Machine repeats what matters.
type Send struct {
	// Message is what to send.
	Message Message
}

// SelfFence asks the daemon to take this node down at once (reboot, or stop
// feeding the watchdog): the group could not be stopped even by force, so
// the node must stop existing for the peer to take over safely. The Machine
// does nothing more after it.
type SelfFence struct {
	// Reason says why, for the last log line.
	Reason string
}

// ObeyFence asks the daemon to acknowledge the fence message in this
// node's slot and then take the node down (stop feeding the watchdog, or
// reboot): the group is stopped, as the message asked. The Machine does
// nothing more after it.
type ObeyFence struct {
	// From is the node that sent the message.
	From string
}

// Level is the severity of a Notice.
type Level uint8

// The notice levels.
const (
	LevelInfo Level = iota
	LevelWarning
	LevelError
)

// String returns "info", "warning" or "error".
func (l Level) String() string {
	switch l {
	case LevelInfo:
		return "info"
	case LevelWarning:
		return "warning"
	case LevelError:
		return "error"
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// Notice is something worth a log line, such as "fencing beta failed:
// timeout; retrying in 2s".
type Notice struct {
	// Level is the severity.
	Level Level
	// Text is the message, a complete sentence without a final period.
	Text string
}

// RoleChanged reports that this node's role changed, and why.
type RoleChanged struct {
	// From is the role before the change, To the role after it.
	From, To Role
	// Reason explains the new role, when there is more to say.
	Reason string
}

// AdminReply answers an AdminRequest: Accepted when the command was taken up
// (a planned move has begun, maintenance was set), and Text for the
// operator either way.
type AdminReply struct {
	// Command is the command answered.
	Command AdminCommand
	// Accepted is true when the command was taken up.
	Accepted bool
	// Text is the answer for the operator.
	Text string
}

func (Fence) isAction()           {}
func (StartGroup) isAction()      {}
func (StopGroup) isAction()       {}
func (RestartResource) isAction() {}
func (Send) isAction()            {}
func (SelfFence) isAction()       {}
func (ObeyFence) isAction()       {}
func (Notice) isAction()          {}
func (RoleChanged) isAction()     {}
func (AdminReply) isAction()      {}
