package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/failover"
	"github.com/tandem-ha/tandem/fence"
	"github.com/tandem-ha/tandem/heartbeat"
)

// checkAgent is the fence agent that powers the peer off, nil when the
// peer has none. Its parameters are checked against the agent's own
// metadata before the daemon starts, so a typo shows now rather than when
// the peer dies.
//
// With a quorum disk to fall back on, each fencing round runs the agent
// once: when it fails, the fence message goes out at once instead of after
// the agent's own retries, and the next round tries the agent again.
func checkAgent(peer *config.Node, diskFallback bool) (fence.Fencer, error) {
	if peer.Fence == nil {
		return nil, nil
	}
	a := &fence.Agent{Name: peer.Fence.Agent, Node: peer.Name, Params: peer.Fence.Params}
	if diskFallback {
		a.Retry.Attempts = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Check(ctx); err != nil {
		return nil, fmt.Errorf("daemon: fence agent of %s: %w", peer.Name, err)
	}
	return a, nil
}

// peerFence is how this node fences its peer: the peer's fence agent, and
// the poison pill on the quorum disk. The agent goes first, as its word
// (power is off) lets the service move at once and leaves nothing behind;
// only when it fails, or there is none, does a fence message go into the
// peer's mailbox, which a rebooted peer finds and must have cleared before
// it serves again.
type peerFence struct {
	node  string
	agent fence.Fencer    // nil without an agent
	disk  *heartbeat.Disk // nil without a quorum disk
	// watchdog is the peer's watchdog timeout: a fence message counts as
	// delivered, unacknowledged, after twice this.
	watchdog time.Duration
}

// configured reports whether the peer can be fenced at all.
func (p *peerFence) configured() bool { return p.agent != nil || p.disk != nil }

// fence fences the peer once: agent, then disk. It returns the record for
// status, the result for the decision core, and the error when it failed.
func (p *peerFence) fence(ctx context.Context) (FenceRecord, failover.FenceResult, error) {
	start := time.Now()
	rec := FenceRecord{Target: p.node, At: start}
	res := failover.FenceResult{Node: p.node}
	done := func(err error) (FenceRecord, failover.FenceResult, error) {
		rec.Duration = time.Since(start)
		if err != nil {
			rec.Error, res.Reason = err.Error(), err.Error()
		}
		return rec, res, err
	}
	var agentErr error
	if p.agent != nil {
		result, err := p.agent.Fence(ctx)
		rec.Method, rec.Result = strings.TrimPrefix(result.Fencer, "agent "), result.String()
		if err == nil {
			rec.OK, res.Off = true, true
			return done(nil)
		}
		agentErr = err
	}
	if p.disk == nil {
		if agentErr == nil {
			agentErr = errors.New("no fence agent and no quorum disk configured")
		}
		return done(agentErr)
	}
	if err := ctx.Err(); err != nil {
		return done(errors.Join(agentErr, err))
	}
	pill := &fence.Pill{Disk: p.disk.Quorum(), Local: p.disk.Local(), Node: p.node, Watchdog: p.watchdog, Interval: p.disk.Interval()}
	del, err := pill.Deliver(ctx)
	rec.Method = "disk"
	if err != nil {
		return done(errors.Join(agentErr, err))
	}
	rec.OK = true
	res.Off, res.Disk, res.Acknowledged = true, true, del.Acknowledged
	rec.Result = fmt.Sprintf("fence message %v delivered", del.Message)
	if del.Acknowledged {
		rec.Result += " and acknowledged"
	} else {
		rec.Result += fmt.Sprintf(" (not acknowledged within %v)", pill.Wait())
	}
	if agentErr != nil {
		rec.Result += "; the agent failed: " + agentErr.Error()
	}
	return done(nil)
}

// method says how the peer is fenced, for status.
func (p *peerFence) method() string {
	switch {
	case p.agent != nil && p.disk != nil:
		return "agent, then disk"
	case p.agent != nil:
		return "agent"
	case p.disk != nil:
		return "disk"
	}
	return "none"
}
