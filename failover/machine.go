package failover

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// groupState is what this node's resource group may be doing, as far as the
// Machine has asked and been told.
type groupState uint8

const (
	// groupUnknown: something may run (at start-up, or after a failed
	// start); a stop is due before anything else.
	groupUnknown groupState = iota
	groupStopped
	groupStarting
	groupStarted
	groupStopping
	// groupForcing: a plain stop failed; a forced stop is outstanding.
	groupForcing
	// groupSelfFenced: the forced stop failed too; the node is taking itself
	// down and the Machine does nothing more.
	groupSelfFenced
)

// fencing is the state of fencing the peer.
type fencing struct {
	active    bool          // decided to fence; ends when the service is taken
	round     int           // counts the decisions to fence
	inFlight  bool          // a Fence action is outstanding
	flightOf  int           // the round the outstanding Fence belongs to
	confirmed bool          // the peer is confirmed off, in this round
	attempts  int           // attempts in this round
	next      time.Duration // when the next attempt is due
	inc       uint64        // the peer's newest incarnation when the outstanding attempt began
	lastErr   string
	byDisk    bool          // confirmed by a fence message the peer did not acknowledge
	doneAt    time.Duration // when it was confirmed
}

// diskView is the quorum disk as the daemon last reported it.
type diskView struct {
	written   bool
	lastWrite time.Duration
	peerRead  bool
	peerMoved time.Duration
	mailbox   bool // the own mailbox was read at least once
}

// poison is a fence message for this node found in its mailbox.
type poison struct {
	active  bool
	from    string
	kind    string
	atStart bool
}

// grant is a Release this node sent and the peer has not yet confirmed.
type grant struct {
	active bool
	to     uint64 // the peer incarnation it is addressed to
	epoch  uint64
	sent   time.Duration
}

// wish is a takeover Request this node keeps repeating.
type wish struct {
	active bool
	epoch  uint64 // the holder's epoch the request names
	sent   time.Duration
}

// failure is one resource's failure record.
type failure struct {
	resource string
	count    int
	fatal    bool
	reason   string
	last     time.Duration
	restarts []time.Duration // in-place restarts, pruned to the window
}

// Machine is the failover decision core of one node. It is not safe for
// concurrent use: one goroutine owns it and calls Step.
type Machine struct {
	cfg Config

	now     time.Duration
	begun   bool
	initEnd time.Duration // end of the start-up wait for the peer

	group      groupState
	restarting string // the resource being restarted in place, if any

	// The service: who may run it. At most one node is owner at any time.
	owner    bool
	epoch    uint64 // newest epoch known
	issued   uint64 // newest epoch this node created
	accepted uint64 // epoch of the release last taken from the current peer incarnation

	moving      bool // owner: handing the service to the peer
	moveReason  string
	moveSince   time.Duration
	yielding    bool // owner: giving the service up to a peer that also holds it (no fencing)
	peerAsked   bool // owner: the peer asked for the service
	failback    bool // owner: the preferred peer rejoined; hand the service back when it can take it
	conflictInc uint64

	grant grant
	wish  wish

	// The peer, as heard.
	peerAlive bool
	peerSeen  bool   // the heartbeat layer has reported the peer alive at least once
	peerInc   uint64 // newest peer incarnation heard
	deadInc   uint64 // peer incarnations up to this one are fenced
	report    Report // newest report from peerInc, when hasReport
	hasReport bool

	fence fencing

	disk      diskView
	leaseLost bool
	poison    poison
	blocked   string // why this node may not take the service, as last noticed

	maint    bool
	maintVer uint64

	failures []failure // sorted by resource name

	seq        uint64
	lastReport Report // last report sent, with Seq zero
	reported   bool
	reportedAt time.Duration

	role   Role
	reason string

	out []Action
}

// New returns the Machine of one node. It fails on an invalid Config.
func New(cfg Config) (*Machine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Machine{cfg: cfg, group: groupUnknown}, nil
}

// Step feeds one event to the Machine at time now and returns the actions
// to carry out, in order. now is a monotonic reading on any fixed origin
// (time.Since of the daemon's start, say); a now earlier than the last one
// is taken as the last one. The first Step starts the start-up wait
// (initdead) and asks for the group to be stopped, in case an earlier run of
// the daemon left it running.
func (m *Machine) Step(now time.Duration, ev Event) []Action {
	if !m.begun {
		m.begun = true
		m.now = now
		m.initEnd = now + m.cfg.InitDead
		m.notice(LevelInfo, "starting as %s (incarnation %d): making sure the group is stopped, then waiting up to %v for %s",
			m.cfg.Node, m.cfg.Incarnation, m.cfg.InitDead, m.cfg.Peer)
		if m.cfg.UnsafeNoFencing {
			m.notice(LevelWarning, "unsafe_no_fencing is set: %s will never be fenced; shared disks are not protected", m.cfg.Peer)
		}
	} else if now > m.now {
		m.now = now
	}
	switch ev := ev.(type) {
	case PeerAlive:
		if !m.peerAlive {
			m.peerAlive, m.peerSeen = true, true
			m.notice(LevelInfo, "%s is alive", m.cfg.Peer)
		}
	case PeerDead:
		if m.peerAlive {
			m.peerAlive = false
			m.notice(LevelWarning, "%s is dead: no heartbeat on any medium", m.cfg.Peer)
		}
	case PeerMessage:
		m.onMessage(ev.Message)
	case ResourceResult:
		m.onResource(ev)
	case FenceResult:
		m.onFence(ev)
	case AdminRequest:
		m.onAdmin(ev)
	case DiskStatus:
		m.disk = diskView{
			written: ev.Written, lastWrite: ev.LastWrite,
			peerRead: ev.PeerRead, peerMoved: ev.PeerMoved,
			mailbox: ev.MailboxRead,
		}
	case FenceMessage:
		m.onFenceMessage(ev)
	case FenceMessageCleared:
		// Only a message left for an earlier run can be cleared away: one
		// that came to this run is being obeyed, and the peer counts on it.
		if m.poison.active && m.poison.atStart {
			m.poison = poison{}
			m.notice(LevelWarning, "the fence message for this node was cleared: it may take the service again")
		}
	}
	m.decide()
	m.flush()
	out := m.out
	m.out = nil
	return out
}

// TickInterval is how often the daemon should step the Machine with a Tick:
// half the resend interval in effect.
func (m *Machine) TickInterval() time.Duration {
	return m.cfg.ResendInterval / 2
}

// Status returns a snapshot of the Machine as of the last Step.
func (m *Machine) Status() Status {
	s := Status{
		Node:            m.cfg.Node,
		Peer:            m.cfg.Peer,
		Incarnation:     m.cfg.Incarnation,
		PeerIncarnation: m.peerInc,
		Role:            m.role,
		Reason:          m.reason,
		PeerAlive:       m.peerAlive,
		Epoch:           m.epoch,
		Maintenance:     m.maint,
		UnsafeNoFencing: m.cfg.UnsafeNoFencing,
		Fencing: Fencing{
			Active:    m.fence.active,
			Attempts:  m.fence.attempts,
			LastError: m.fence.lastErr,
		},
		LeaseLost:    m.leaseLost,
		FenceMessage: m.poisonText(),
	}
	if m.fence.active && m.fence.confirmed {
		if down, why := m.peerKnownDown(); !down {
			s.Fencing.Waiting = why
		}
	}
	if m.fence.active && !m.fence.inFlight && !m.fence.confirmed {
		s.Fencing.NextAttempt = m.fence.next
	}
	switch {
	case m.peerSilent():
		s.PeerRole = RoleDead
	case m.hasReport:
		s.PeerRole = m.report.Role
	}
	switch {
	case m.owner:
		s.Holder = m.cfg.Node
	case m.hasReport && m.report.Owner:
		s.Holder = m.cfg.Peer
	}
	for _, f := range m.failures {
		s.Failures = append(s.Failures, Failure{
			Resource: f.resource,
			Count:    f.count,
			Failed:   f.fatal,
			Reason:   f.reason,
			Last:     f.last,
		})
	}
	return s
}

// peerSilent reports whether the peer counts as dead: reported dead by the
// heartbeat layer after it was once alive, or never heard within initdead.
func (m *Machine) peerSilent() bool {
	return !m.peerAlive && (m.peerSeen || m.now >= m.initEnd)
}

// peerKnownDown reports whether the peer is known not to run the service and
// unable to start it: the one condition under which this node takes the
// service without the peer's release or the start-up election. That is a
// fencing confirmed by an agent, or acknowledged by the peer through the
// quorum disk, or a fence message delivered through the disk after which
// the peer's slot stayed still for DiskWait: the peer's lease ran out and
// its watchdog, unfed since, has reset it. (Without fencing, the silence
// alone.) When the answer is no, the text says what is awaited.
func (m *Machine) peerKnownDown() (bool, string) {
	if !m.fence.confirmed {
		return false, ""
	}
	if m.cfg.UnsafeNoFencing {
		return true, fmt.Sprintf("%s is silent (unsafe_no_fencing: not fenced)", m.cfg.Peer)
	}
	if !m.fence.byDisk {
		return true, fmt.Sprintf("%s is fenced", m.cfg.Peer)
	}
	since := m.fence.doneAt
	if m.disk.peerRead {
		since = m.disk.peerMoved
	}
	wait := m.cfg.DiskWait()
	if still := m.now - since; still < wait {
		return false, fmt.Sprintf("fence message delivered to %s without acknowledgement; its slot has been still for %v of %v (lease, watchdog and margin)",
			m.cfg.Peer, still.Round(time.Millisecond), wait)
	}
	return true, fmt.Sprintf("%s is fenced through the quorum disk: its slot was still for %v after the fence message", m.cfg.Peer, wait)
}

// diskOK reports whether this node renewed its slot within the lease, or
// there is no quorum disk.
func (m *Machine) diskOK() bool {
	return !m.cfg.Disk || (m.disk.written && m.now-m.disk.lastWrite <= m.cfg.Lease)
}

// mayHold reports whether this node may take the service now, and why not:
// a node that cannot write the quorum disk, that has not read its own
// mailbox yet, or that has a fence message waiting never becomes active.
func (m *Machine) mayHold() (bool, string) {
	switch {
	case m.poison.active:
		return false, m.poisonText()
	case !m.cfg.Disk:
		return true, ""
	case !m.disk.written:
		return false, "this node has not written its slot on the quorum disk yet"
	case !m.diskOK():
		return false, fmt.Sprintf("this node has not renewed its slot on the quorum disk for %v", (m.now - m.disk.lastWrite).Round(time.Millisecond))
	case !m.disk.mailbox:
		return false, "this node has not read its mailbox on the quorum disk yet"
	}
	return true, ""
}

func (m *Machine) poisonText() string {
	p := m.poison
	switch {
	case !p.active:
		return ""
	case p.atStart:
		return fmt.Sprintf("a fence message (%s from %s) waits in this node's mailbox on the quorum disk since before this run: clear it with haclient disk clear", p.kind, p.from)
	}
	return fmt.Sprintf("obeying a fence message (%s from %s): stopping the group and taking this node down", p.kind, p.from)
}

func (m *Machine) onFenceMessage(f FenceMessage) {
	if m.poison.active && (!m.poison.atStart || f.AtStart) {
		return // known already, or already obeyed
	}
	m.poison = poison{active: true, from: f.From, kind: f.Kind, atStart: f.AtStart}
	if f.AtStart {
		m.notice(LevelError, "%s", m.poisonText())
		return
	}
	m.moving, m.yielding, m.peerAsked, m.failback = false, false, false, false
	m.notice(LevelError, "fence message (%s) from %s: stopping the group at once and taking this node down", f.Kind, f.From)
}

func (m *Machine) onMessage(msg Message) {
	if msg == nil {
		return
	}
	h := msg.header()
	if h.From == 0 || h.From <= m.deadInc || h.From < m.peerInc {
		return // from a run of the peer that is over
	}
	if h.From > m.peerInc {
		m.newPeer(h.From)
	}
	switch msg := msg.(type) {
	case Report:
		m.onReport(msg)
	case *Report:
		m.onReport(*msg)
	case Release:
		m.onRelease(msg)
	case *Release:
		m.onRelease(*msg)
	case ReleaseAck:
		m.onReleaseAck(msg)
	case *ReleaseAck:
		m.onReleaseAck(*msg)
	case Request:
		m.onRequest(msg)
	case *Request:
		m.onRequest(*msg)
	case Refusal:
		m.onRefusal(msg)
	case *Refusal:
		m.onRefusal(*msg)
	}
}

// newPeer forgets what was said by earlier runs of the peer: their reports,
// releases, requests.
func (m *Machine) newPeer(inc uint64) {
	first := m.peerInc == 0
	m.peerInc = inc
	m.hasReport, m.report = false, Report{}
	m.accepted = 0
	m.peerAsked = false
	if first {
		m.notice(LevelInfo, "heard %s (incarnation %d)", m.cfg.Peer, inc)
	} else {
		m.notice(LevelInfo, "%s restarted (incarnation %d)", m.cfg.Peer, inc)
	}
	if m.grant.active {
		// The new run did start-up cleanup: whatever the old run took is
		// stopped, and the release is void.
		m.grant = grant{}
		m.notice(LevelWarning, "%s restarted before confirming the release: the service is free again", m.cfg.Peer)
	}
	if m.wish.active {
		m.wish = wish{}
		m.notice(LevelWarning, "takeover request dropped: %s restarted", m.cfg.Peer)
	}
	if m.cfg.AutoFailback && m.cfg.PreferredNode == m.cfg.Peer {
		m.failback = true
	}
}

func (m *Machine) onReport(r Report) {
	if m.hasReport && r.Seq <= m.report.Seq {
		return // stale or duplicate
	}
	if r.Owner && m.owner {
		m.conflict(r)
	}
	m.report, m.hasReport = r, true
	m.epoch = max(m.epoch, r.Epoch)
	if m.grant.active && r.Owner && r.Epoch >= m.grant.epoch {
		m.grantDone(r.Epoch)
	}
	if r.MaintenanceVersion > m.maintVer || (r.MaintenanceVersion == m.maintVer && r.Maintenance && !m.maint) {
		m.maintVer = r.MaintenanceVersion
		if r.Maintenance != m.maint {
			m.maint = r.Maintenance
			m.notice(LevelWarning, "maintenance mode %s (set on %s)", onOff(m.maint), m.cfg.Peer)
		}
	}
}

// conflict handles a report in which the peer claims the service this node
// holds. With fencing that can only be a late report from a run of the peer
// that was fenced before this node heard of it: it is logged and ignored.
// Without fencing both nodes may really hold it after a partition: the one
// with the older epoch (or, on a tie, the one not preferred) gives it up.
func (m *Machine) conflict(r Report) {
	if !m.cfg.UnsafeNoFencing {
		if m.conflictInc != r.From {
			m.conflictInc = r.From
			m.notice(LevelError, "%s (incarnation %d) claims the service this node holds; taking it for a late message from a fenced run", m.cfg.Peer, r.From)
		}
		return
	}
	if m.yielding {
		return
	}
	if r.Epoch > m.epoch || (r.Epoch == m.epoch && m.cfg.preferred() != m.cfg.Node) {
		m.yielding = true
		m.moving = false
		m.notice(LevelError, "both nodes hold the service (unsafe_no_fencing): %s keeps it, this node stops", m.cfg.Peer)
	} else {
		m.notice(LevelError, "both nodes hold the service (unsafe_no_fencing): this node keeps it, %s stops", m.cfg.Peer)
	}
}

func (m *Machine) onRelease(r Release) {
	if r.To != m.cfg.Incarnation {
		return
	}
	if m.accepted != 0 && r.Epoch == m.accepted {
		m.send(ReleaseAck{Header: m.header(), Epoch: r.Epoch}) // a copy: confirm again
		return
	}
	if m.owner {
		m.notice(LevelError, "ignored a release from %s: this node holds the service", m.cfg.Peer)
		return
	}
	if r.Epoch <= m.epoch {
		return // stale
	}
	m.owner = true
	m.epoch, m.accepted = r.Epoch, r.Epoch
	m.issued = max(m.issued, r.Epoch)
	m.grant, m.wish = grant{}, wish{}
	m.failback = false
	if m.fence.active {
		m.fence.active, m.fence.confirmed = false, false
		m.notice(LevelInfo, "%s released the service: fencing it is no longer needed", m.cfg.Peer)
	}
	m.send(ReleaseAck{Header: m.header(), Epoch: r.Epoch})
	m.notice(LevelInfo, "%s released the service to this node (epoch %d)", m.cfg.Peer, r.Epoch)
}

func (m *Machine) onReleaseAck(a ReleaseAck) {
	if a.To == m.cfg.Incarnation && m.grant.active && a.Epoch == m.grant.epoch {
		m.grantDone(a.Epoch)
	}
}

func (m *Machine) grantDone(epoch uint64) {
	m.grant = grant{}
	m.epoch = max(m.epoch, epoch)
	m.notice(LevelInfo, "%s took the service (epoch %d)", m.cfg.Peer, epoch)
}

func (m *Machine) onRequest(q Request) {
	if q.To != m.cfg.Incarnation || !m.owner || q.Epoch != m.epoch || m.moving || m.yielding {
		return // stale, or already under way
	}
	if m.maint {
		m.send(Refusal{Header: m.header(), Epoch: q.Epoch, Reason: RefusedMaintenance})
		m.notice(LevelWarning, "refused %s's takeover request: maintenance mode is on", m.cfg.Peer)
		return
	}
	m.peerAsked = true
}

func (m *Machine) onRefusal(f Refusal) {
	if f.To == m.cfg.Incarnation && m.wish.active && f.Epoch == m.wish.epoch {
		m.wish = wish{}
		m.notice(LevelWarning, "%s refused to release the service: %v", m.cfg.Peer, f.Reason)
	}
}

func (m *Machine) onResource(r ResourceResult) {
	switch r.Op {
	case OpStart:
		if m.group != groupStarting {
			m.notice(LevelWarning, "ignored a start result: no start outstanding")
			return
		}
		if r.Err == nil {
			m.group = groupStarted
			m.notice(LevelInfo, "group started")
			return
		}
		m.group = groupUnknown
		m.recordFatal(r.Resource, "start failed: "+r.Err.Error())
		m.notice(LevelError, "starting the group failed%s: %v", named(r.Resource), r.Err)
	case OpStop:
		switch m.group {
		case groupStopping:
			if r.Err == nil {
				m.group = groupStopped
				m.notice(LevelInfo, "group stopped")
				return
			}
			m.group = groupForcing
			m.emit(StopGroup{Force: true})
			m.notice(LevelError, "stopping the group failed%s: %v; stopping it by force, killing what holds its resources", named(r.Resource), r.Err)
		case groupForcing:
			if r.Err == nil {
				m.group = groupStopped
				m.notice(LevelWarning, "group stopped by force")
				return
			}
			m.group = groupSelfFenced
			reason := fmt.Sprintf("the group could not be stopped even by force%s: %v", named(r.Resource), r.Err)
			m.emit(SelfFence{Reason: reason})
			m.notice(LevelError, "%s: fencing this node", reason)
		default:
			m.notice(LevelWarning, "ignored a stop result: no stop outstanding")
		}
	case OpRestart:
		if m.restarting == "" || (r.Resource != "" && r.Resource != m.restarting) {
			m.notice(LevelWarning, "ignored a restart result%s: no such restart outstanding", named(r.Resource))
			return
		}
		name := m.restarting
		m.restarting = ""
		if r.Err == nil {
			m.notice(LevelInfo, "%s restarted", name)
			return
		}
		m.recordFatal(name, "restart failed: "+r.Err.Error())
		m.notice(LevelError, "restarting %s failed: %v", name, r.Err)
	case OpMonitor:
		if r.Err != nil {
			m.onMonitorFailure(r.Resource, r.Err.Error())
		}
	}
}

func (m *Machine) onMonitorFailure(name, reason string) {
	f := m.record(name)
	f.count++
	f.reason, f.last = reason, m.now
	switch {
	case m.maint:
		m.notice(LevelWarning, "%s failed: %s; maintenance mode: no action", name, reason)
		return
	case !m.owner || m.group != groupStarted || m.restarting != "" || f.fatal:
		m.notice(LevelWarning, "%s failed: %s; no action while the group is %v", name, reason, m.role)
		return
	}
	cut := m.now - m.cfg.RestartWindow
	f.restarts = slices.DeleteFunc(f.restarts, func(t time.Duration) bool { return t <= cut })
	if len(f.restarts) < m.cfg.RestartLimit {
		f.restarts = append(f.restarts, m.now)
		m.restarting = name
		m.emit(RestartResource{Name: name})
		m.notice(LevelWarning, "%s failed: %s; restarting it in place (%d of %d within %v)",
			name, reason, len(f.restarts), m.cfg.RestartLimit, m.cfg.RestartWindow)
		return
	}
	f.fatal = true
	m.notice(LevelError, "%s failed: %s; restarted %d times within %v already: it will not run on this node until cleaned up",
		name, reason, len(f.restarts), m.cfg.RestartWindow)
}

func (m *Machine) record(name string) *failure {
	i, ok := slices.BinarySearchFunc(m.failures, name, func(f failure, n string) int { return strings.Compare(f.resource, n) })
	if !ok {
		m.failures = slices.Insert(m.failures, i, failure{resource: name})
	}
	return &m.failures[i]
}

func (m *Machine) recordFatal(name, reason string) {
	f := m.record(name)
	f.count++
	f.fatal = true
	f.reason, f.last = reason, m.now
}

func (m *Machine) hasFatal() bool {
	return slices.ContainsFunc(m.failures, func(f failure) bool { return f.fatal })
}

func (m *Machine) onFence(r FenceResult) {
	if r.Node != m.cfg.Peer || !m.fence.inFlight {
		m.notice(LevelWarning, "ignored a fencing result for %q: none outstanding", r.Node)
		return
	}
	m.fence.inFlight = false
	// A result counts only for the round that asked for it: an attempt made
	// before this round may have switched off a run of the peer that ended
	// long ago, and says nothing of the run that is silent now.
	current := m.fence.active && m.fence.flightOf == m.fence.round
	if r.Off {
		m.markFenced(m.fence.inc)
		if !current {
			m.notice(LevelInfo, "%s fenced: confirmed off (no longer needed)", m.cfg.Peer)
			return
		}
		m.fence.confirmed = true
		m.fence.byDisk = r.Disk && !r.Acknowledged
		m.fence.doneAt = m.now
		switch {
		case m.fence.byDisk:
			m.notice(LevelWarning, "%s fenced through the quorum disk: the fence message was not acknowledged; taking the service once its slot has been still for %v",
				m.cfg.Peer, m.cfg.DiskWait())
		case r.Disk:
			m.notice(LevelWarning, "%s fenced through the quorum disk: it acknowledged the fence message after %d attempt(s)", m.cfg.Peer, m.fence.attempts)
		default:
			m.notice(LevelWarning, "%s fenced: confirmed off after %d attempt(s)", m.cfg.Peer, m.fence.attempts)
		}
		return
	}
	m.fence.lastErr = r.Reason
	if !current {
		m.notice(LevelWarning, "fencing %s failed: %s (no longer needed)", m.cfg.Peer, r.Reason)
		return
	}
	wait := m.cfg.FenceRetryMin
	for i := 1; i < m.fence.attempts && wait < m.cfg.FenceRetryMax; i++ {
		wait *= 2
	}
	wait = min(wait, m.cfg.FenceRetryMax)
	m.fence.next = m.now + wait
	m.notice(LevelError, "fencing %s failed: %s; retrying in %v (attempt %d); not taking over until it succeeds",
		m.cfg.Peer, r.Reason, wait, m.fence.attempts)
}

// markFenced records that every run of the peer up to inc is over, so that
// their late messages are ignored.
func (m *Machine) markFenced(inc uint64) {
	m.deadInc = max(m.deadInc, inc)
	if m.peerInc <= m.deadInc {
		m.hasReport, m.report = false, Report{}
		m.peerAsked = false
	}
}

func (m *Machine) onAdmin(a AdminRequest) {
	switch a.Command {
	case AdminStandby:
		if !m.owner {
			m.reply(a.Command, false, "this node does not hold the service")
			return
		}
		m.planMove(a.Command)
	case AdminTakeover:
		if m.owner {
			m.reply(a.Command, false, "this node already holds the service")
			return
		}
		m.askTakeover(a.Command)
	case AdminFailover:
		if m.owner {
			m.planMove(a.Command)
		} else {
			m.askTakeover(a.Command)
		}
	case AdminMaintenanceOn, AdminMaintenanceOff:
		on := a.Command == AdminMaintenanceOn
		m.maintVer++
		m.maint = on
		if on {
			m.reply(a.Command, true, "maintenance mode on, on both nodes: failures are recorded, not acted on")
		} else {
			m.reply(a.Command, true, "maintenance mode off, on both nodes")
		}
	case AdminCleanup:
		if a.Resource == "" {
			n := len(m.failures)
			m.failures = nil
			m.reply(a.Command, true, fmt.Sprintf("cleared %d failure record(s)", n))
			return
		}
		i := slices.IndexFunc(m.failures, func(f failure) bool { return f.resource == a.Resource })
		if i < 0 {
			m.reply(a.Command, false, fmt.Sprintf("no failure on record for %q", a.Resource))
			return
		}
		m.failures = slices.Delete(m.failures, i, i+1)
		m.reply(a.Command, true, fmt.Sprintf("cleared the failure record of %q", a.Resource))
	default:
		m.reply(a.Command, false, "unknown command")
	}
}

func (m *Machine) planMove(cmd AdminCommand) {
	switch {
	case m.maint:
		m.reply(cmd, false, "maintenance mode is on: the service does not move")
		return
	case m.moving:
		m.reply(cmd, true, fmt.Sprintf("the service is already moving to %s", m.cfg.Peer))
		return
	case m.yielding || m.group == groupSelfFenced:
		m.reply(cmd, false, "this node is already giving the service up")
		return
	}
	if ok, _, why := m.peerCanTake(); !ok {
		m.reply(cmd, false, fmt.Sprintf("%s cannot take the service: %s", m.cfg.Peer, why))
		return
	}
	m.startMove(fmt.Sprintf("%v requested by an operator", cmd))
	m.reply(cmd, true, fmt.Sprintf("moving the service to %s", m.cfg.Peer))
}

func (m *Machine) askTakeover(cmd AdminCommand) {
	switch {
	case m.maint:
		m.reply(cmd, false, "maintenance mode is on: the service does not move")
		return
	case m.hasFatal():
		m.reply(cmd, false, "a resource is marked failed on this node: clean it up first")
		return
	case !m.peerAlive || !m.hasReport || !m.report.Owner:
		m.reply(cmd, false, fmt.Sprintf("%s does not hold the service", m.cfg.Peer))
		return
	case m.report.To != m.cfg.Incarnation:
		m.reply(cmd, false, fmt.Sprintf("%s has not heard from this node yet", m.cfg.Peer))
		return
	}
	m.wish = wish{active: true, epoch: m.report.Epoch, sent: m.now}
	m.send(Request{Header: m.header(), Epoch: m.wish.epoch})
	m.reply(cmd, true, fmt.Sprintf("asked %s to release the service", m.cfg.Peer))
}

// peerCanTake says whether the peer could take the service now (ok), or
// might soon (wait), and why not.
func (m *Machine) peerCanTake() (ok, wait bool, why string) {
	r := m.report
	switch {
	case !m.peerAlive:
		return false, false, "it is not alive"
	case !m.hasReport:
		return false, true, "no report from it yet"
	case r.To != m.cfg.Incarnation:
		return false, true, "it has not heard from this node yet"
	case r.Maintenance:
		return false, false, "it is in maintenance mode"
	case !r.Eligible:
		return false, false, "a resource is marked failed on it"
	case r.Owner:
		return false, false, "it claims the service itself"
	case !r.Quiescent:
		return false, true, fmt.Sprintf("it is %v", r.Role)
	}
	return true, false, ""
}

// decide compares what is with what should be and asks for the next step.
func (m *Machine) decide() {
	if m.group == groupSelfFenced {
		return
	}
	if m.poison.active && !m.poison.atStart {
		m.decidePoisoned()
		return
	}
	if !m.owner {
		m.decideStandby()
	}
	if m.owner {
		m.decideOwner()
	}
}

// decidePoisoned obeys a fence message that came while this node runs: it
// stops the group, by force if need be, and then asks the daemon to
// acknowledge and take the node down. Nothing else happens meanwhile.
func (m *Machine) decidePoisoned() {
	if m.group == groupStarting || m.group == groupStopping || m.group == groupForcing || m.restarting != "" {
		return // wait for the outstanding operation
	}
	if m.group != groupStopped {
		m.stopGroup()
		return
	}
	m.owner = false
	m.group = groupSelfFenced
	m.emit(ObeyFence{From: m.poison.from})
	m.notice(LevelError, "group stopped as %s's fence message asked: acknowledging it and taking this node down", m.poison.from)
}

// decideStandby: this node does not hold the service. It keeps its group
// stopped, and takes the service only when the peer is known down or, at
// start-up, by the election.
func (m *Machine) decideStandby() {
	if m.group == groupUnknown {
		m.stopGroup()
	}
	if m.poison.active {
		return // a fence message waits: this node takes nothing
	}
	// A fencing, once begun, is carried through even if the peer is heard
	// again: it was silent for deadtime and may be a paused node that still
	// holds the service, and an attempt under way may already have switched
	// it off. It ends only when the service is taken (by the fencing, or by
	// the peer's own release).
	if !m.fence.active && !m.maint && m.peerSilent() {
		m.beginFencing()
	}
	if m.fence.active && !m.fence.confirmed && !m.fence.inFlight && !m.maint && m.now >= m.fence.next {
		m.attemptFence()
	}
	down, why := m.peerKnownDown()
	elect := !down && !m.maint && m.mayElect()
	if !down && !elect {
		m.blocked = ""
		return
	}
	if ok, whyNot := m.mayHold(); !ok {
		if m.blocked != whyNot {
			m.blocked = whyNot
			m.notice(LevelWarning, "not taking the service yet: %s", whyNot)
		}
		return
	}
	m.blocked = ""
	if elect {
		why = fmt.Sprintf("elected: neither node holds the service and %s is the preferred node", m.cfg.Node)
	}
	m.acquire(why)
}

// mayElect reports whether this node may create the service: neither node
// holds it, this node is the one preferred, and the peer's newest report,
// made after hearing this run, shows it quiescent and aware of every epoch
// this node knows. The peer, not preferred, never elects itself; after that
// report it can take the service only by fencing this node, or by a release
// from this node.
func (m *Machine) mayElect() bool {
	if m.cfg.preferred() != m.cfg.Node || m.group != groupStopped || m.grant.active || m.fence.active || m.fence.inFlight {
		return false
	}
	r := m.report
	return m.peerAlive && m.hasReport && r.To == m.cfg.Incarnation && !r.Owner && r.Quiescent && !r.Maintenance && r.Epoch >= m.epoch
}

func (m *Machine) beginFencing() {
	m.fence = fencing{
		active:   true,
		round:    m.fence.round + 1,
		next:     m.now,
		lastErr:  m.fence.lastErr,
		inFlight: m.fence.inFlight,
		flightOf: m.fence.flightOf,
		inc:      m.fence.inc,
	}
	if m.cfg.preferred() == m.cfg.Peer && m.cfg.FenceDelay > 0 {
		m.fence.next += m.cfg.FenceDelay
	}
	why := fmt.Sprintf("%s is dead", m.cfg.Peer)
	if !m.peerSeen {
		why = fmt.Sprintf("%s not heard within initdead (%v)", m.cfg.Peer, m.cfg.InitDead)
	}
	m.notice(LevelWarning, "%s: fencing it before taking the service", why)
}

func (m *Machine) attemptFence() {
	m.fence.attempts++
	m.fence.inc = m.peerInc
	if m.cfg.UnsafeNoFencing {
		m.fence.confirmed = true
		m.notice(LevelWarning, "not fencing %s (unsafe_no_fencing): taking its silence for death; shared disks are not protected", m.cfg.Peer)
		return
	}
	m.fence.inFlight, m.fence.flightOf = true, m.fence.round
	m.emit(Fence{Node: m.cfg.Peer})
	m.notice(LevelWarning, "fencing %s (attempt %d)", m.cfg.Peer, m.fence.attempts)
}

// acquire makes this node the holder of the service, as a new epoch.
func (m *Machine) acquire(why string) {
	m.issued = max(m.issued, m.epoch) + 1
	m.epoch = m.issued
	m.owner = true
	m.grant, m.wish = grant{}, wish{}
	m.fence.active, m.fence.confirmed = false, false
	m.moving, m.yielding, m.peerAsked = false, false, false
	m.notice(LevelWarning, "taking the service: %s (epoch %d)", why, m.epoch)
}

// decideOwner: this node holds the service. It runs the group unless a
// resource failed here, or the service is to move to the peer.
func (m *Machine) decideOwner() {
	if m.group == groupStarting || m.group == groupStopping || m.group == groupForcing || m.restarting != "" {
		return // wait for the outstanding operation
	}
	if m.yielding {
		if m.group != groupStopped {
			m.stopGroup()
			return
		}
		m.owner, m.yielding = false, false
		m.notice(LevelWarning, "gave the service up: %s holds it", m.cfg.Peer)
		return
	}
	leaseOK := m.diskOK()
	switch {
	case !leaseOK:
		if !m.leaseLost {
			m.leaseLost = true
			m.notice(LevelError, "could not renew this node's slot on the quorum disk for %v (lease %v): stopping the group",
				(m.now - m.disk.lastWrite).Round(time.Millisecond), m.cfg.Lease)
		}
		if m.group == groupStarted || m.group == groupUnknown {
			m.stopGroup()
			return
		}
		if ok, _, _ := m.peerCanTake(); ok && !m.moving && !m.maint {
			m.startMove("this node cannot write the quorum disk")
		}
	case m.leaseLost:
		m.leaseLost = false
		m.notice(LevelInfo, "this node's slot on the quorum disk is renewed again")
	}
	if m.maint {
		return
	}
	if m.moving {
		ok, wait, why := m.peerCanTake()
		switch {
		case !ok && !wait, !ok && m.group == groupStopped && m.now-m.moveSince >= m.cfg.InitDead:
			m.moving = false
			m.notice(LevelWarning, "not moving the service to %s after all: %s", m.cfg.Peer, why)
		case m.group != groupStopped:
			m.stopGroup()
			return
		case ok:
			m.release()
			return
		default:
			return // stopped; wait for the peer to be ready
		}
	}
	if m.hasFatal() {
		if ok, _, _ := m.peerCanTake(); ok {
			m.startMove(fmt.Sprintf("%s failed here", m.fatalNames()))
			m.decideOwner()
			return
		}
		if m.group != groupStopped {
			m.stopGroup()
		}
		return
	}
	if m.peerAsked {
		m.peerAsked = false
		switch ok, wait, why := m.peerCanTake(); {
		case ok:
			m.startMove(fmt.Sprintf("%s asked for the service", m.cfg.Peer))
			m.decideOwner()
			return
		case !wait:
			m.send(Refusal{Header: m.header(), Epoch: m.epoch, Reason: RefusedUnfit})
			m.notice(LevelWarning, "refused %s's takeover request: %s", m.cfg.Peer, why)
		}
	}
	if m.failback && m.group == groupStarted {
		if ok, _, _ := m.peerCanTake(); ok {
			m.startMove(fmt.Sprintf("auto_failback: %s, the preferred node, is back", m.cfg.Peer))
			m.decideOwner()
			return
		}
	}
	switch m.group {
	case groupUnknown:
		m.stopGroup()
	case groupStopped:
		if !leaseOK {
			return
		}
		m.group = groupStarting
		m.emit(StartGroup{})
		m.notice(LevelInfo, "starting the group")
	}
}

func (m *Machine) fatalNames() string {
	var names []string
	for _, f := range m.failures {
		if f.fatal {
			names = append(names, fmt.Sprintf("%q", f.resource))
		}
	}
	return strings.Join(names, ", ")
}

func (m *Machine) startMove(why string) {
	m.moving, m.moveReason, m.moveSince = true, why, m.now
	m.failback = false
	m.notice(LevelInfo, "moving the service to %s: %s", m.cfg.Peer, why)
}

func (m *Machine) stopGroup() {
	m.group = groupStopping
	m.emit(StopGroup{})
	m.notice(LevelInfo, "stopping the group")
}

// release hands the stopped service to the peer as a new epoch. This node no
// longer holds it; the peer holds it once it receives the Release.
func (m *Machine) release() {
	m.issued = max(m.issued, m.epoch) + 1
	m.owner, m.moving, m.failback, m.peerAsked = false, false, false, false
	m.grant = grant{active: true, to: m.peerInc, epoch: m.issued, sent: m.now}
	m.send(Release{Header: m.header(), Epoch: m.issued})
	m.notice(LevelInfo, "released the service to %s (epoch %d)", m.cfg.Peer, m.issued)
}

// flush repeats unanswered messages, reports the role and sends a Report
// when it changed or is due.
func (m *Machine) flush() {
	due := func(t time.Duration) bool { return m.now-t >= m.cfg.ResendInterval }
	if m.grant.active && due(m.grant.sent) {
		m.grant.sent = m.now
		m.send(Release{Header: Header{From: m.cfg.Incarnation, To: m.grant.to}, Epoch: m.grant.epoch})
	}
	if m.wish.active {
		switch r := m.report; {
		case m.owner || !m.hasReport || !r.Owner || r.Epoch != m.wish.epoch:
			m.wish = wish{} // granted, or the holding it named is over
		case !r.Releasing && due(m.wish.sent):
			m.wish.sent = m.now
			m.send(Request{Header: m.header(), Epoch: m.wish.epoch})
		}
	}
	role, reason := m.currentRole()
	if role != m.role {
		m.emit(RoleChanged{From: m.role, To: role, Reason: reason})
	}
	m.role, m.reason = role, reason
	mayHold, _ := m.mayHold()
	r := Report{
		Header:             Header{From: m.cfg.Incarnation, To: m.peerInc},
		Epoch:              m.epoch,
		MaintenanceVersion: m.maintVer,
		Role:               role,
		Owner:              m.owner,
		Quiescent:          !m.owner && m.group == groupStopped && !m.fence.active && !m.fence.inFlight && !m.grant.active,
		Eligible:           !m.hasFatal() && m.group != groupSelfFenced && mayHold,
		Releasing:          m.owner && m.moving,
		Maintenance:        m.maint,
	}
	if !m.reported || r != m.lastReport || due(m.reportedAt) {
		m.reported, m.lastReport, m.reportedAt = true, r, m.now
		m.seq++
		r.Seq = m.seq
		m.send(r)
	}
}

func (m *Machine) currentRole() (Role, string) {
	switch {
	case m.poison.active && m.group == groupSelfFenced:
		return RoleFailed, m.poisonText()
	case m.poison.active && m.group != groupStopped:
		return RoleStopping, m.poisonText()
	case m.poison.active:
		return RoleFailed, m.poisonText()
	case m.group == groupSelfFenced:
		return RoleFailed, "the group could not be stopped: fencing this node"
	case m.group == groupStarting:
		return RoleStarting, "starting the group"
	case m.group == groupForcing:
		return RoleStopping, "stopping the group by force"
	case m.group == groupStopping || m.group == groupUnknown:
		switch {
		case m.moving:
			return RoleStopping, fmt.Sprintf("moving the service to %s: %s", m.cfg.Peer, m.moveReason)
		case !m.owner:
			return RoleStopping, "making sure the group is stopped"
		case m.hasFatal():
			return RoleStopping, fmt.Sprintf("%s failed: stopping the group", m.fatalNames())
		}
		return RoleStopping, "stopping the group"
	case m.owner && m.group == groupStarted:
		if m.restarting != "" {
			return RoleActive, fmt.Sprintf("restarting %s", m.restarting)
		}
		return RoleActive, ""
	case m.owner:
		switch {
		case m.moving:
			return RoleStopping, fmt.Sprintf("waiting for %s to take the service", m.cfg.Peer)
		case m.hasFatal():
			return RoleFailed, fmt.Sprintf("%s failed and %s cannot take the service", m.fatalNames(), m.cfg.Peer)
		case m.leaseLost:
			return RoleFailed, fmt.Sprintf("holding the service, stopped: this node cannot write the quorum disk and %s cannot take over", m.cfg.Peer)
		case m.maint:
			return RoleStandby, "holding the service, stopped, in maintenance mode"
		}
		return RoleStarting, "about to start the group"
	case m.fence.active && m.fence.confirmed:
		if down, why := m.peerKnownDown(); !down {
			return RoleFencing, why
		}
		return RoleFencing, fmt.Sprintf("%s is fenced", m.cfg.Peer)
	case m.fence.active:
		if m.fence.lastErr != "" {
			return RoleFencing, fmt.Sprintf("fencing %s: %d attempt(s), last failed: %s", m.cfg.Peer, m.fence.attempts, m.fence.lastErr)
		}
		return RoleFencing, fmt.Sprintf("fencing %s", m.cfg.Peer)
	case m.grant.active:
		return RoleStopping, fmt.Sprintf("released the service; waiting for %s to confirm", m.cfg.Peer)
	case !m.hasReport && m.now < m.initEnd:
		return RoleUnknown, fmt.Sprintf("waiting for %s (initdead)", m.cfg.Peer)
	case m.maint:
		return RoleStandby, "maintenance mode"
	}
	return RoleStandby, ""
}

func (m *Machine) header() Header {
	return Header{From: m.cfg.Incarnation, To: m.peerInc}
}

func (m *Machine) emit(a Action) { m.out = append(m.out, a) }

func (m *Machine) send(msg Message) { m.emit(Send{Message: msg}) }

func (m *Machine) notice(l Level, format string, args ...any) {
	m.emit(Notice{Level: l, Text: fmt.Sprintf(format, args...)})
}

func (m *Machine) reply(cmd AdminCommand, ok bool, text string) {
	m.emit(AdminReply{Command: cmd, Accepted: ok, Text: text})
	l := LevelInfo
	if !ok {
		l = LevelWarning
	}
	m.notice(l, "operator: %v: %s", cmd, text)
}

func named(resource string) string {
	if resource == "" {
		return ""
	}
	return fmt.Sprintf(" (%s)", resource)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
