package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/failover"
	"github.com/tandem-ha/tandem/fence"
	"github.com/tandem-ha/tandem/quorum"
)

// openWatchdog opens the configured watchdog. With a quorum disk it is
// required: the peer takes over a silent node through the disk only
// because that node's watchdog has reset it by then. Without one a
// missing device is a warning: fence agents confirm power off on their
// own.
func openWatchdog(cfg *config.Config, log *slog.Logger) (*fence.Watchdog, error) {
	wd, err := fence.OpenWatchdog(fence.WatchdogConfig{Device: cfg.Watchdog.Device, Timeout: cfg.Watchdog.Timeout, Logger: log})
	if err == nil {
		return wd, nil
	}
	if cfg.Heartbeat.Disk != nil && !cfg.Cluster.UnsafeNoFencing {
		return nil, fmt.Errorf("daemon: %w: a quorum disk needs the watchdog, as the peer takes over through the disk only after this node's watchdog would have reset it", err)
	}
	log.Warn("no watchdog: a hung node is fenced by its fence agent alone", "err", err)
	return nil, nil
}

// closeWatchdog disarms the watchdog on a clean exit; after a self-fence
// it stays armed and unfed.
func (d *Daemon) closeWatchdog() {
	if d.wd == nil {
		return
	}
	if err := d.wd.Close(); err != nil && !errors.Is(err, fence.ErrWatchdogClosed) {
		d.log.Error("closing the watchdog", "err", err)
	}
}

// diskInterval is how often the nodes write their slots on the quorum
// disk; zero without one.
func diskInterval(cfg *config.Config) time.Duration {
	if cfg.Heartbeat.Disk == nil {
		return 0
	}
	return cfg.Heartbeat.Disk.Interval
}

// holding reports whether the node holds the service with resources that
// may run: only then does the lease matter to the watchdog.
func holding(st failover.Status) bool {
	if st.Holder != st.Node {
		return false
	}
	switch st.Role {
	case failover.RoleActive, failover.RoleStarting, failover.RoleStopping:
		return true
	}
	return false
}

// feedWatchdog feeds the watchdog when the node is healthy: the loop
// turns (this runs on it), and a node that holds the service renewed its
// slot on the quorum disk within the lease. A node past its lease has
// the watchdog's timeout to get its group stopped, or is reset.
func (l *loop) feedWatchdog() {
	d := l.d
	if d.wd == nil || l.selfFenced {
		return
	}
	healthy := true
	if d.disk != nil && holding(d.machine.Status()) {
		last := d.disk.Stats().LastWrite
		healthy = !last.IsZero() && time.Since(last) <= d.cfg.LeaseTime()
	}
	if err := d.wd.Healthy(healthy); err != nil {
		d.log.Error("watchdog", "err", err)
	}
	if !healthy && !l.wdStarved {
		d.log.Error("not feeding the watchdog: this node holds the service and has not renewed its slot on the quorum disk within the lease",
			"lease", d.cfg.LeaseTime(), "reset_in", d.wd.Timeout())
	}
	l.wdStarved = !healthy
}

// mailboxView follows this node's mailbox as the disk medium reads it,
// and turns its changes into events for the decision core.
type mailboxView struct {
	read  bool
	start quorum.Message // what the first read found
	last  quorum.Message // what the decision core was last told
}

func (v *mailboxView) observe(read bool, m quorum.Message) failover.Event {
	if !read {
		return nil
	}
	if !v.read {
		v.read, v.start = true, m
	}
	switch {
	case m.Kind == quorum.MsgNone && v.last.Kind != quorum.MsgNone:
		v.last = m
		return failover.FenceMessageCleared{}
	case m.Kind != quorum.MsgNone && m != v.last:
		v.last = m
		return failover.FenceMessage{From: m.From, Kind: m.Kind.String(), AtStart: m == v.start}
	}
	return nil
}

// tick is the event that lets time pass in the decision core: a Tick,
// or with a quorum disk what the disk medium saw (the lease, the peer's
// counter), which passes time as well. A change of this node's mailbox is
// stepped first, on its own.
func (l *loop) tick() failover.Event {
	d := l.d
	if d.disk == nil {
		return failover.Tick{}
	}
	st := d.disk.Stats()
	if ev := l.mailbox.observe(st.MailboxRead, st.Mailbox); ev != nil {
		l.step(ev)
	}
	onClock := func(t time.Time) time.Duration { return t.Sub(d.origin) }
	return failover.DiskStatus{
		Written: !st.LastWrite.IsZero(), LastWrite: onClock(st.LastWrite),
		PeerRead: !st.PeerMoved.IsZero(), PeerMoved: onClock(st.PeerMoved),
		MailboxRead: st.MailboxRead,
	}
}

// waitDisk waits, at most a few disk intervals, for the medium's first
// write and first read of the mailbox.
func (l *loop) waitDisk(ctx context.Context) {
	d := l.d
	deadline := time.Now().Add(5 * d.disk.Interval())
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if st := d.disk.Stats(); st.MailboxRead && !st.LastWrite.IsZero() {
			return
		}
		time.Sleep(d.disk.Interval() / 4)
	}
}

// obeyFence acknowledges the fence message in this node's slot and takes
// the node down: the group is already stopped.
func (l *loop) obeyFence(from string) {
	d := l.d
	msg := l.mailbox.last
	if d.disk != nil && msg.Kind != quorum.MsgNone {
		ctx, cancel := context.WithTimeout(context.Background(), 4*d.disk.Interval()+time.Second)
		err := d.disk.Acknowledge(ctx, msg)
		cancel()
		if err != nil {
			d.log.Error("acknowledging the fence message", "from", from, "err", err)
		} else {
			d.log.Warn("acknowledged the fence message", "message", msg.String())
		}
	}
	l.selfFence(fmt.Sprintf("obeyed the fence message from %s", from))
}
