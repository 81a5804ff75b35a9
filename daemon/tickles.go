package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/tandem-ha/tandem/admin"
	"github.com/tandem-ha/tandem/heartbeat"
	"github.com/tandem-ha/tandem/smbservice"
)

// Message types of the connection lists, beside the decision core's:
// changes of the active node's list, and the standby's acknowledgements.
// They travel over the heartbeat LAN only.
const (
	msgConns    = heartbeat.TypeAppFirst + 1
	msgConnsAck = heartbeat.TypeAppFirst + 2
	// connsMedium is the medium that carries them.
	connsMedium = "lan"
)

// conns replicates the active node's client connections to the peer, and
// keeps the peer's: the tickle resource tickles these after a takeover.
// The loop owns sync; view, saver and mirror are safe for concurrent use.
type conns struct {
	view   *smbservice.View       // the peer's list as replicated to this node
	saver  *smbservice.ViewSaver  // keeps view in the state directory
	mirror *smbservice.DiskMirror // this node's list on the quorum disk; nil without an area
	sync   *smbservice.Sync       // this node's list going to the peer, while active
	syncs  uint64                 // Syncs made in this run
}

// connChange is a change of this node's connections, from the tickle
// resource's goroutine to the loop.
type connChange struct {
	added, removed []smbservice.Conn
	at             time.Time
}

// tickleHooks connects the tickle resource to the daemon.
func (d *Daemon) tickleHooks() tickleHooks {
	return tickleHooks{
		source: d.peerConns,
		onChange: func(added, removed []smbservice.Conn, now time.Time) {
			select {
			case d.events <- connChange{added, removed, now}:
			case <-d.quit:
			}
		},
	}
}

// openConns loads the peer's list saved by an earlier run and opens this
// node's area on the quorum disk, when the group has a tickle resource.
func (d *Daemon) openConns() {
	if d.tickle == nil {
		return
	}
	path := smbservice.ViewPath(d.opts.StateDir, d.peer.Name)
	view, err := smbservice.LoadView(path)
	if err != nil {
		d.log.Warn("the peer's saved connection list is unusable; starting empty", "err", err)
	}
	d.conns = &conns{view: view, saver: smbservice.NewViewSaver(view, path, 0, d.log)}
	if d.disk != nil {
		q := d.disk.Quorum()
		h := q.Header()
		if slot, ok := h.SlotOf(d.local.Name); ok && h.ListSectors > 0 {
			d.conns.mirror = smbservice.NewDiskMirror(q, slot, 0, d.log)
		}
	}
}

func (d *Daemon) closeConns() {
	if d.conns == nil {
		return
	}
	if err := d.conns.saver.Close(); err != nil {
		d.log.Warn("saving the peer's connection list", "err", err)
	}
	if d.conns.mirror != nil {
		d.conns.mirror.Close()
	}
}

// peerDiskConns reads the peer's list from its area of the quorum disk.
func (d *Daemon) peerDiskConns() (smbservice.VersionedList, error) {
	if d.disk == nil {
		return smbservice.VersionedList{Source: "disk"}, nil
	}
	q := d.disk.Quorum()
	h := q.Header()
	slot, ok := h.SlotOf(d.peer.Name)
	if !ok {
		return smbservice.VersionedList{Source: "disk"}, nil
	}
	return smbservice.ReadDiskList(q, slot)
}

// peerConns is what the tickle resource tickles at takeover: the newer of
// the list replicated over the LAN and the one on the quorum disk.
func (d *Daemon) peerConns(ctx context.Context) ([]smbservice.Conn, error) {
	if d.conns == nil {
		return nil, nil
	}
	fromDisk, err := d.peerDiskConns()
	if err != nil {
		d.log.Warn("reading the peer's connection list on the quorum disk", "err", err)
	}
	return smbservice.Newest(d.conns.view.List(), fromDisk).Conns, nil
}

// onConnChange ships a change of this node's connections to the peer and
// to the quorum disk.
func (l *loop) onConnChange(c connChange) {
	d := l.d
	if d.conns == nil {
		return
	}
	if d.conns.sync == nil {
		d.conns.syncs++
		d.conns.sync = smbservice.NewSync(smbservice.SyncOptions{Epoch: d.gen<<20 | d.conns.syncs})
	}
	l.sendConns(msgConns, d.conns.sync.Changed(c.added, c.removed, c.at))
	if d.conns.mirror != nil {
		d.conns.mirror.Update(d.conns.sync.List())
	}
}

// tickConns resends what the peer has not acknowledged.
func (l *loop) tickConns() {
	if c := l.d.conns; c != nil && c.sync != nil {
		l.sendConns(msgConns, c.sync.Tick(time.Now()))
	}
}

// connsMessage handles a connection-list message from the peer.
func (l *loop) connsMessage(m *heartbeat.Message) {
	d := l.d
	if d.conns == nil {
		return
	}
	switch m.Type {
	case msgConns:
		reply, err := d.conns.view.Apply(m.Payload)
		if err != nil {
			d.log.Warn("bad connection-list message from the peer", "err", err)
			return
		}
		l.sendConns(msgConnsAck, [][]byte{reply})
	case msgConnsAck:
		if d.conns.sync == nil {
			return
		}
		msgs, err := d.conns.sync.Ack(m.Payload, time.Now())
		if err != nil {
			d.log.Warn("bad connection-list acknowledgement from the peer", "err", err)
			return
		}
		l.sendConns(msgConns, msgs)
	}
}

func (l *loop) sendConns(t heartbeat.Type, msgs [][]byte) {
	for _, m := range msgs {
		if err := l.hb.SendOn(connsMedium, t, m); err != nil {
			l.d.log.Debug("sending a connection list", "err", err)
			return // the rest is resent
		}
	}
}

// Tickles lists the client connections this node knows of, for haclient
// tickles.
func (d *Daemon) Tickles(ctx context.Context) (admin.Tickles, error) {
	out := admin.Tickles{Time: time.Now(), Node: d.local.Name}
	if d.tickle == nil {
		return out, admin.Errorf(admin.ErrNotFound, "the group has no tickle resource")
	}
	add := func(node string, l smbservice.VersionedList, source string) {
		tl := admin.TickleList{Node: node, Source: source, Count: len(l.Conns)}
		if !l.Version.IsZero() {
			tl.Version = l.Version.String()
		}
		for _, c := range l.Conns {
			tl.Connections = append(tl.Connections, c.String())
		}
		out.Lists = append(out.Lists, tl)
	}
	add(d.local.Name, smbservice.VersionedList{Conns: d.tickle.Tracked()}, "tracked")
	if d.conns != nil {
		add(d.peer.Name, d.conns.view.List(), "lan")
	}
	if d.disk != nil {
		fromDisk, err := d.peerDiskConns()
		if err != nil {
			return out, fmt.Errorf("the peer's list on the quorum disk: %w", err)
		}
		add(d.peer.Name, fromDisk, "disk")
	}
	out.Counts = tickleCounts(d.tickle.Status())
	return out, nil
}

func tickleCounts(st smbservice.TickleStatus) *admin.TickleCounts {
	c := &admin.TickleCounts{
		Running: st.Running, Tracked: st.Tracked, Tickled: st.Tickled, Sent: st.Sent, Failed: st.Failed,
		Rounds: st.Rounds, Reset: st.Reset, PollFailures: st.PollFailures, LastError: st.LastError,
	}
	if !st.LastRound.IsZero() {
		t := st.LastRound
		c.LastRound = &t
	}
	return c
}

var _ admin.TickleLister = (*Daemon)(nil)
