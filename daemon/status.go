package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/tandem-ha/tandem/admin"
	"github.com/tandem-ha/tandem/failover"
	"github.com/tandem-ha/tandem/heartbeat"
	"github.com/tandem-ha/tandem/resources"
)

// Status describes the node for haclient status.
func (d *Daemon) Status(ctx context.Context) (admin.Status, error) {
	d.mu.Lock()
	st := d.state.machine
	notices := append([]Notice(nil), d.state.notices...)
	var lastFence *FenceRecord
	if n := len(d.state.fences); n > 0 {
		f := d.state.fences[n-1]
		lastFence = &f
	}
	hb, media := d.hb, d.media
	d.mu.Unlock()

	now := time.Now()
	out := admin.Status{
		Time: now, Cluster: d.cfg.Cluster.Name, Node: d.local.Name,
		Maintenance: st.Maintenance, UnsafeNoFencing: d.cfg.Cluster.UnsafeNoFencing,
	}
	local := admin.Node{Name: d.local.Name, Local: true, Role: adminRole(st.Role), Reason: st.Reason, Links: []admin.Link{}}
	peer := admin.Node{Name: d.peer.Name, Role: adminRole(st.PeerRole), Links: []admin.Link{}}
	if hb != nil {
		peer.Links = links(hb.Stats(), media, d.peer.Name, now)
	}
	out.Nodes = []admin.Node{local, peer}
	out.Resources = d.resourceStatus(st)
	if d.tickle != nil {
		out.Tickles = tickleCounts(d.tickle.Status())
	}
	switch {
	case st.Fencing.Active:
		out.LastFence = &admin.FenceReport{Target: d.peer.Name, Method: d.fencer.method(), Result: admin.FenceRunning, Error: st.Fencing.LastError}
		if lastFence != nil && lastFence.Target == d.peer.Name {
			out.LastFence.Started = lastFence.At
		}
	case lastFence != nil:
		out.LastFence = fenceReport(*lastFence)
	}
	for _, n := range notices {
		out.Notices = append(out.Notices, admin.Notice{Time: n.At, Level: admin.Level(n.Level), Text: n.Text})
	}
	return out, nil
}

func fenceReport(f FenceRecord) *admin.FenceReport {
	r := &admin.FenceReport{Target: f.Target, Method: f.Method, Result: admin.FenceDone,
		Started: f.At, DurationMS: f.Duration.Milliseconds(), Error: f.Error, Detail: f.Result}
	if !f.OK {
		r.Result = admin.FenceFailed
	}
	return r
}

func adminRole(r failover.Role) admin.Role { return admin.Role(r.String()) }

// links shows each medium as it hears the peer, with its bad-packet
// counters: those of the messages the medium delivered, and what the
// medium rejected below them (torn or foreign disk sectors, serial frames
// that failed their CRC).
func links(stats heartbeat.Stats, media []heartbeat.Medium, peer string, now time.Time) []admin.Link {
	counters := map[string]heartbeat.Counters{}
	for _, m := range stats.Media {
		counters[m.Name] = m.Counters
	}
	for _, m := range media {
		c := counters[m.Name()]
		switch m := m.(type) {
		case *heartbeat.Disk:
			ds := m.Stats()
			c.Malformed += ds.Corrupt
			c.Foreign += ds.Foreign
		case *heartbeat.Serial:
			df := m.Stats().Deframe
			c.Malformed += df.CRCErrors + df.BadLength
		}
		counters[m.Name()] = c
	}
	out := []admin.Link{}
	for _, p := range stats.Peers {
		if p.Name != peer {
			continue
		}
		for _, m := range p.Media {
			c := counters[m.Medium]
			l := admin.Link{
				Medium: m.Medium, Late: m.Late,
				Bad: admin.BadPackets{Forged: c.Forged, Replayed: c.Replayed, Truncated: c.Truncated,
					Foreign: c.Foreign, Malformed: c.Malformed, UnknownSender: c.UnknownSender},
			}
			switch m.State {
			case heartbeat.LinkUp:
				l.State = admin.LinkUp
			case heartbeat.LinkDown:
				l.State = admin.LinkDown
			default:
				l.State = admin.LinkUnknown
			}
			if !m.LastHeard.IsZero() {
				t := m.LastHeard
				ago := now.Sub(t).Milliseconds()
				l.LastHeard, l.LastHeardAgoMS = &t, &ago
			}
			out = append(out, l)
		}
	}
	return out
}

// resourceStatus says where each resource runs: here, from the group's own
// records; on the peer, from the peer's reports.
func (d *Daemon) resourceStatus(st failover.Status) []admin.Resource {
	failures := map[string]failover.Failure{}
	for _, f := range st.Failures {
		failures[f.Resource] = f
	}
	out := []admin.Resource{}
	for _, rec := range d.group.Records() {
		r := admin.Resource{Name: rec.Name, State: admin.ResourceStopped, LastError: rec.LastError, Failures: failures[rec.Name].Count}
		if c := d.cfg.Resource(rec.Name); c != nil {
			r.Type = string(c.Type)
		}
		switch {
		case rec.State == resources.StateStarted:
			r.State, r.Where = admin.ResourceStarted, d.local.Name
		case rec.State == resources.StateFailed || failures[rec.Name].Failed:
			r.State, r.Where = admin.ResourceFailed, d.local.Name
		case st.Holder == d.peer.Name:
			r.State, r.Where = admin.ResourceStarted, d.peer.Name
		}
		out = append(out, r)
	}
	return out
}

// Resources lists the resources as Status does.
func (d *Daemon) Resources(ctx context.Context) ([]admin.Resource, error) {
	st, err := d.Status(ctx)
	return st.Resources, err
}

// request hands an operator's command to the loop and waits for the
// machine's answer. A refusal is an admin.ErrConflict with the machine's
// reason.
func (d *Daemon) request(ctx context.Context, req failover.AdminRequest) error {
	reply := make(chan failover.AdminReply, 1)
	select {
	case d.admin <- adminCall{req: req, reply: reply}:
	case <-ctx.Done():
		return admin.Errorf(admin.ErrUnavailable, "%s: the daemon is busy: %v", req.Command, ctx.Err())
	}
	select {
	case r := <-reply:
		if !r.Accepted {
			return admin.Errorf(admin.ErrConflict, "%s", r.Text)
		}
		return nil
	case <-ctx.Done():
		return admin.Errorf(admin.ErrUnavailable, "%s: no answer: %v", req.Command, ctx.Err())
	}
}

// move asks for a planned move and waits until it is done: until done says
// so about the machine's status, or failed says why it cannot be.
func (d *Daemon) move(ctx context.Context, cmd failover.AdminCommand, done func(failover.Status) bool) error {
	if err := d.request(ctx, failover.AdminRequest{Command: cmd}); err != nil {
		return err
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		d.mu.Lock()
		st := d.state.machine
		d.mu.Unlock()
		if done(st) {
			return nil
		}
		if st.Role == failover.RoleFailed {
			return fmt.Errorf("%s: %s failed: %s", cmd, d.local.Name, st.Reason)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: still under way (%s is %s: %s): %w", cmd, d.local.Name, st.Role, st.Reason, ctx.Err())
		case <-t.C:
		}
	}
}

// Standby gives the service up to the peer and returns once the group is
// stopped here.
func (d *Daemon) Standby(ctx context.Context) error {
	return d.move(ctx, failover.AdminStandby, func(st failover.Status) bool {
		return st.Role == failover.RoleStandby
	})
}

// Takeover takes the service from the peer and returns once the group is
// started here.
func (d *Daemon) Takeover(ctx context.Context) error {
	return d.move(ctx, failover.AdminTakeover, func(st failover.Status) bool {
		return st.Role == failover.RoleActive
	})
}

// Failover moves the service to the other node and returns once it runs
// there.
func (d *Daemon) Failover(ctx context.Context) error {
	d.mu.Lock()
	from := d.state.machine.Holder
	d.mu.Unlock()
	return d.move(ctx, failover.AdminFailover, func(st failover.Status) bool {
		if from == d.local.Name {
			return st.Role == failover.RoleStandby && st.Holder == d.peer.Name && st.PeerRole == failover.RoleActive
		}
		return st.Role == failover.RoleActive
	})
}

// Maintenance turns maintenance mode on or off, on both nodes.
func (d *Daemon) Maintenance(ctx context.Context, on bool) error {
	cmd := failover.AdminMaintenanceOff
	if on {
		cmd = failover.AdminMaintenanceOn
	}
	return d.request(ctx, failover.AdminRequest{Command: cmd})
}

// Cleanup clears a resource's failure record.
func (d *Daemon) Cleanup(ctx context.Context, name string) error {
	if name != "" && d.cfg.Resource(name) == nil {
		return admin.Errorf(admin.ErrNotFound, "no resource %q", name)
	}
	return d.request(ctx, failover.AdminRequest{Command: failover.AdminCleanup, Resource: name})
}

// Fence fences a node now: the peer through its fence agent, or this node
// itself when self is set.
func (d *Daemon) Fence(ctx context.Context, node string, self bool) (admin.FenceReport, error) {
	switch {
	case node == d.local.Name && !self:
		return admin.FenceReport{}, admin.Errorf(admin.ErrInvalid, "refusing to fence %s, the local node, without --self", node)
	case node == d.local.Name:
		select {
		case d.events <- selfFenceEvent{reason: "haclient fence --self"}:
		case <-ctx.Done():
			return admin.FenceReport{}, ctx.Err()
		}
		return admin.FenceReport{Target: node, Method: "self", Result: admin.FenceRunning, Started: time.Now()}, nil
	case node != d.peer.Name:
		return admin.FenceReport{}, admin.Errorf(admin.ErrNotFound, "no node %q (the nodes are %s and %s)", node, d.local.Name, d.peer.Name)
	case !d.fencer.configured():
		return admin.FenceReport{}, admin.Errorf(admin.ErrConflict, "%s has no fence agent and there is no quorum disk", node)
	}
	rec, _, err := d.fencer.fence(ctx)
	d.addFence(rec)
	if err == nil {
		d.record(Notice{At: time.Now(), Level: "warning", Text: fmt.Sprintf("fenced %s on request: %s", node, rec.Result)})
		return *fenceReport(rec), nil
	}
	d.record(Notice{At: time.Now(), Level: "error", Text: fmt.Sprintf("fencing %s on request failed: %s", node, rec.Error)})
	return *fenceReport(rec), err
}

// selfFenceEvent asks the loop to fence this node.
type selfFenceEvent struct{ reason string }
