package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/failover"
	"github.com/tandem-ha/tandem/fence"
	"github.com/tandem-ha/tandem/heartbeat"
	"github.com/tandem-ha/tandem/resources"
	"github.com/tandem-ha/tandem/smbservice"
)

// Default paths, as the packages install them.
const (
	DefaultStateDir = "/var/lib/tandem"
	DefaultRunDir   = "/run/tandem"
)

// Options are what a Daemon needs beside the configuration file.
type Options struct {
	// Node overrides the host name in finding the local node (--node).
	Node string
	// StateDir holds the generation counter; default DefaultStateDir.
	StateDir string
	// RunDir holds the admin socket and pid files; default DefaultRunDir.
	RunDir string
	// Logger receives the daemon's log; default slog.Default().
	Logger *slog.Logger
	// Notify, when set, is told the daemon's state as sd_notify lines
	// ("READY=1", "STATUS=active", "STOPPING=1").
	Notify func(state string)
	// Fencer overrides the fencer built from the peer's fence agent.
	Fencer fence.Fencer
	// SelfFence overrides how the node takes itself down when its group
	// cannot be stopped; the default reboots the machine at once.
	SelfFence func(reason string)
	// ShutdownTimeout bounds the handover at shutdown; zero means the sum of
	// the resources' stop timeouts plus 10 s.
	ShutdownTimeout time.Duration
}

// Daemon is one node's tandemd.
type Daemon struct {
	cfg         *config.Config
	local, peer *config.Node
	opts        Options
	log         *slog.Logger

	machine *failover.Machine
	group   *resources.Group
	fencer  peerFence
	wd      *fence.Watchdog // nil without a watchdog
	disk    *heartbeat.Disk // the quorum disk medium; nil without one
	tickle  *smbservice.Tickle
	conns   *conns        // nil without a tickle resource
	quit    chan struct{} // closed when Run returns
	key     []byte
	gen     uint64
	origin  time.Time

	events chan any // results of work done off the loop: failover.Event or selfFenceEvent
	admin  chan adminCall

	mu    sync.Mutex // guards what status readers see
	state snapshot
	hb    *heartbeat.Node
	media []heartbeat.Medium
}

// snapshot is the loop's account of itself for status readers.
type snapshot struct {
	machine     failover.Status
	notices     []Notice
	fences      []FenceRecord
	lastMonitor time.Time
}

// Notice is a logged decision, kept for haclient status.
type Notice struct {
	At    time.Time
	Level string
	Text  string
}

// FenceRecord is one fencing attempt.
type FenceRecord struct {
	Target   string
	At       time.Time
	Duration time.Duration
	OK       bool
	Error    string
	// Method is how: "agent fence_x" or "disk".
	Method string
	// Result summarises what the fencer did.
	Result string
}

type adminCall struct {
	req   failover.AdminRequest
	reply chan failover.AdminReply
}

const maxNotices = 50

// New prepares a daemon: it finds the local node, builds the group and
// the fencer, and bumps the generation counter. It changes nothing else.
func New(cfg *config.Config, opts Options) (*Daemon, error) {
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.RunDir == "" {
		opts.RunDir = DefaultRunDir
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	local, err := cfg.LocalNode(opts.Node)
	if err != nil {
		return nil, err
	}
	peer, err := cfg.Peer(local.Name)
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		cfg: cfg, local: local, peer: peer, opts: opts,
		log:    opts.Logger.With("node", local.Name),
		events: make(chan any, 16),
		admin:  make(chan adminCall),
		quit:   make(chan struct{}),
	}
	if d.key, err = readKey(cfg.Cluster.AuthKeyFile); err != nil {
		return nil, err
	}
	if d.group, d.tickle, err = buildGroup(cfg, filepath.Join(opts.RunDir, "resources"), d.log, d.tickleHooks()); err != nil {
		return nil, err
	}
	d.fencer = peerFence{node: peer.Name, agent: opts.Fencer, watchdog: cfg.Watchdog.Timeout}
	if d.fencer.agent == nil && !cfg.Cluster.UnsafeNoFencing {
		if d.fencer.agent, err = checkAgent(peer, cfg.Heartbeat.Disk != nil); err != nil {
			return nil, err
		}
		if d.fencer.agent == nil && cfg.Heartbeat.Disk == nil {
			return nil, fmt.Errorf("daemon: node %s has no fence agent and there is no quorum disk: it cannot be fenced (set unsafe_no_fencing = true only in a lab)", peer.Name)
		}
	}
	if d.gen, err = heartbeat.BumpGeneration(opts.StateDir); err != nil {
		return nil, err
	}
	d.machine, err = failover.New(failover.Config{
		Node: local.Name, Peer: peer.Name, Incarnation: d.gen,
		PreferredNode: cfg.Cluster.PreferredNode, AutoFailback: cfg.Cluster.AutoFailback,
		InitDead: cfg.Cluster.Initdead, ResendInterval: resendInterval(cfg),
		RestartLimit:    restartLimit(cfg),
		UnsafeNoFencing: cfg.Cluster.UnsafeNoFencing,
		FenceDelay:      cfg.Cluster.FenceDelay,
		Disk:            cfg.Heartbeat.Disk != nil,
		Lease:           cfg.LeaseTime(),
		PeerWatchdog:    cfg.Watchdog.Timeout,
		DiskInterval:    diskInterval(cfg),
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Node is the local node's name.
func (d *Daemon) Node() string { return d.local.Name }

// now is the machine's clock: monotonic time since Run began.
func (d *Daemon) now() time.Duration { return time.Since(d.origin) }

// Run runs the node until ctx is done, then hands the service over (or
// stops it) and returns.
func (d *Daemon) Run(ctx context.Context) error {
	d.origin = time.Now()
	defer close(d.quit)
	if d.cfg.Cluster.UnsafeNoFencing {
		d.log.Warn("unsafe_no_fencing is set: the peer is never fenced and shared disks are not protected")
	}
	wd, err := openWatchdog(d.cfg, d.log)
	if err != nil {
		return err
	}
	d.wd = wd
	defer d.closeWatchdog()
	media, err := buildMedia(d.cfg, d.local, d.peer, d.opts.Logger)
	if err != nil {
		return err
	}
	for _, m := range media {
		if disk, ok := m.(*heartbeat.Disk); ok {
			d.disk = disk
			if !d.cfg.Cluster.UnsafeNoFencing {
				d.fencer.disk = disk
			}
		}
	}
	hbCtx, stopHB := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHB()
	hb, err := heartbeat.Start(hbCtx, heartbeat.NodeConfig{
		Cluster: d.cfg.Cluster.Name, Name: d.local.Name, Peers: []string{d.peer.Name},
		Key: d.key, Generation: d.gen, Media: media, Logger: d.opts.Logger, AppOnly: true,
		Timing: heartbeat.Timing{
			Keepalive: d.cfg.Cluster.Keepalive, Warntime: d.cfg.Cluster.Warntime,
			Deadtime: d.cfg.Cluster.Deadtime, Initdead: d.cfg.Cluster.Initdead,
		},
	})
	if err != nil {
		for _, m := range media {
			m.Close()
		}
		return err
	}
	d.mu.Lock()
	d.hb, d.media = hb, media
	d.mu.Unlock()
	defer hb.Close()

	d.openConns()
	defer d.closeConns()
	exec := newExecutor(d.group, d.events, d.log)
	defer exec.close()
	l := &loop{d: d, hb: hb, exec: exec, monitorEvery: monitorInterval(d.cfg)}
	if d.disk != nil {
		// The disk's state reaches the decision core before anything
		// else, so that the first decisions know the lease and the
		// mailbox.
		l.waitDisk(ctx)
	}
	d.notify("READY=1")
	err = l.run(ctx)
	d.notify("STOPPING=1")
	return err
}

func (d *Daemon) notify(state string) {
	if d.opts.Notify != nil {
		d.opts.Notify(state)
	}
}

// loop is the state the event loop keeps besides the machine.
type loop struct {
	d    *Daemon
	hb   *heartbeat.Node
	exec *executor

	monitorEvery time.Duration
	nextMonitor  time.Time
	mailbox      mailboxView
	pendingAdmin []adminCall
	fenceCancel  context.CancelFunc
	wdStarved    bool // the last turn did not feed the watchdog
	shutdown     bool
	shutdownBy   time.Time
	stoppedByUs  bool
	selfFenced   bool
}

func (l *loop) run(ctx context.Context) error {
	d := l.d
	every := tickInterval(d.machine.TickInterval(), d.cfg)
	if d.wd != nil {
		every = min(every, d.wd.FeedInterval())
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	l.step(l.tick())
	l.feedWatchdog()
	// done is ctx's channel until the shutdown begins, then nil: the
	// handover runs on events like any other work.
	done := ctx.Done()
	for {
		var ev failover.Event
		select {
		case <-done:
			done = nil
			l.beginShutdown()
		case hev, ok := <-l.hb.Events():
			if !ok {
				return errors.New("daemon: heartbeat stopped")
			}
			ev = l.peerEvent(hev)
		case in := <-d.events:
			switch in := in.(type) {
			case failover.Event:
				ev = in
			case selfFenceEvent:
				l.selfFence(in.reason)
			case connChange:
				l.onConnChange(in)
			}
		case call := <-d.admin:
			l.pendingAdmin = append(l.pendingAdmin, call)
			ev = call.req
		case <-tick.C:
			ev = l.tick()
			l.maybeMonitor()
			l.feedWatchdog()
			l.tickConns()
		}
		if ev != nil {
			l.step(ev)
		}
		if l.shutdown && l.doneShuttingDown() {
			return nil
		}
	}
}

// peerEvent turns what the heartbeat layer reports into the machine's
// events. Media going up and down and late heartbeats are the heartbeat
// layer's to log; the machine only cares whether the peer lives.
func (l *loop) peerEvent(ev heartbeat.Event) failover.Event {
	switch ev.Kind {
	case heartbeat.EventPeerAlive:
		return failover.PeerAlive{}
	case heartbeat.EventPeerDead:
		return failover.PeerDead{}
	case heartbeat.EventReceived:
		if ev.Message == nil {
			return nil
		}
		switch ev.Message.Type {
		case msgConns, msgConnsAck:
			l.connsMessage(ev.Message)
			return nil
		case msgType:
		default:
			return nil
		}
		m, err := failover.UnmarshalMessage(ev.Message.Payload)
		if err != nil {
			// Authenticated but undecodable: a newer or broken peer.
			l.d.log.Warn("undecodable message from peer", "err", err)
			return nil
		}
		return failover.PeerMessage{Message: m}
	}
	return nil
}

// msgType carries the decision core's messages in heartbeat payloads.
const msgType = heartbeat.TypeAppFirst

func (l *loop) step(ev failover.Event) {
	d := l.d
	actions := d.machine.Step(d.now(), ev)
	for _, a := range actions {
		l.carryOut(a)
	}
	st := d.machine.Status()
	d.mu.Lock()
	prev := d.state.machine.Role
	d.state.machine = st
	d.mu.Unlock()
	if st.Role != prev {
		d.notify("STATUS=" + st.Role.String() + ": " + st.Reason)
		if prev == failover.RoleActive && d.conns != nil {
			d.conns.sync = nil // the next run of the group starts a new list
		}
	}
}

func (l *loop) carryOut(a failover.Action) {
	d := l.d
	switch a := a.(type) {
	case failover.Fence:
		l.fence(a.Node)
	case failover.StartGroup:
		l.exec.submit(job{op: failover.OpStart})
	case failover.StopGroup:
		l.exec.submit(job{op: failover.OpStop, force: a.Force})
	case failover.RestartResource:
		l.exec.submit(job{op: failover.OpRestart, resource: a.Name})
	case failover.Send:
		payload, err := a.Message.MarshalBinary()
		if err == nil {
			err = l.hb.Send(msgType, payload)
		}
		if err != nil {
			d.log.Warn("sending to peer", "message", a.Message.Type(), "err", err)
		}
	case failover.SelfFence:
		l.selfFence(a.Reason)
	case failover.ObeyFence:
		l.obeyFence(a.From)
	case failover.Notice:
		d.record(Notice{At: time.Now(), Level: a.Level.String(), Text: a.Text})
		switch a.Level {
		case failover.LevelError:
			d.log.Error(a.Text)
		case failover.LevelWarning:
			d.log.Warn(a.Text)
		default:
			d.log.Info(a.Text)
		}
	case failover.RoleChanged:
		d.log.Info("role changed", "from", a.From.String(), "to", a.To.String(), "reason", a.Reason)
	case failover.AdminReply:
		for i, call := range l.pendingAdmin {
			if call.req.Command == a.Command {
				if call.reply != nil {
					call.reply <- a
				} else if l.shutdown && !a.Accepted {
					// Nobody to hand over to: stop the group now.
					d.log.Info("shutting down without a handover", "reason", a.Text)
					l.shutdownBy = time.Now()
				}
				l.pendingAdmin = append(l.pendingAdmin[:i], l.pendingAdmin[i+1:]...)
				break
			}
		}
	}
}

// fence runs the fencer off the loop and reports back as a FenceResult.
func (l *loop) fence(node string) {
	d := l.d
	if !d.fencer.configured() {
		d.events <- failover.FenceResult{Node: node, Reason: "no fence agent and no quorum disk configured"}
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.fenceCancel = cancel
	go func() {
		rec, res, _ := d.fencer.fence(ctx)
		d.addFence(rec)
		select {
		case d.events <- res:
		case <-ctx.Done(): // the daemon is shutting down; nobody waits
		}
	}()
}

func (d *Daemon) addFence(rec FenceRecord) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.state.fences = appendBounded(d.state.fences, rec)
}

// appendBounded appends v to the record s, dropping the oldest entry past
// maxNotices.
func appendBounded[T any](s []T, v T) []T {
	s = append(s, v)
	if len(s) > maxNotices {
		s = s[1:]
	}
	return s
}

// maybeMonitor checks the running group when it is due and nothing else is
// being done to it.
func (l *loop) maybeMonitor() {
	st := l.d.machine.Status()
	now := time.Now()
	// In maintenance mode the checks go on; the machine records what they
	// find and acts on nothing.
	if st.Role != failover.RoleActive || now.Before(l.nextMonitor) || l.exec.busy() {
		return
	}
	l.nextMonitor = now.Add(l.monitorEvery)
	l.exec.submit(job{op: failover.OpMonitor})
	l.d.mu.Lock()
	l.d.state.lastMonitor = now
	l.d.mu.Unlock()
}

// beginShutdown asks the machine to hand the service to the peer.
func (l *loop) beginShutdown() {
	d := l.d
	l.shutdown = true
	timeout := d.opts.ShutdownTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
		for _, r := range d.cfg.Resources {
			timeout += r.StopTimeout
		}
	}
	l.shutdownBy = time.Now().Add(timeout)
	d.notify("STOPPING=1")
	d.log.Info("shutting down: handing the service over", "timeout", timeout)
	if l.fenceCancel != nil {
		l.fenceCancel()
	}
	l.pendingAdmin = append(l.pendingAdmin, adminCall{req: failover.AdminRequest{Command: failover.AdminStandby}})
	l.step(failover.AdminRequest{Command: failover.AdminStandby})
}

// doneShuttingDown says whether the node may exit: it holds nothing (or the
// handover ran out of time, and what it held was stopped).
func (l *loop) doneShuttingDown() bool {
	d := l.d
	st := d.machine.Status()
	holding := st.Role == failover.RoleActive || st.Role == failover.RoleStarting ||
		st.Role == failover.RoleStopping || st.Role == failover.RoleFailed
	if !holding && !l.exec.busy() {
		return true
	}
	if time.Now().Before(l.shutdownBy) && !l.selfFenced {
		return false
	}
	if l.stoppedByUs {
		return !l.exec.busy()
	}
	// The handover did not finish in time: stop the group without the
	// peer. Whatever the peer does next, it fences or finds us gone.
	d.log.Warn("handover at shutdown timed out; stopping the group")
	l.stoppedByUs = true
	ctx := context.Background()
	if err := d.group.Stop(ctx); err != nil {
		d.log.Error("stopping the group at shutdown", "err", err)
		if err := d.group.ForceStop(ctx); err != nil {
			l.selfFence("the group could not be stopped at shutdown: " + err.Error())
		}
	}
	return true
}

// selfFence takes the node down: the group holds something it cannot let
// go of, and the peer can take over only once this node is gone.
func (l *loop) selfFence(reason string) {
	d := l.d
	d.record(Notice{At: time.Now(), Level: "error", Text: "fencing myself: " + reason})
	d.log.Error("fencing myself", "reason", reason)
	l.selfFenced = true
	if d.wd != nil {
		// Unfed from now on, the watchdog resets the node even if what
		// follows fails.
		d.wd.Abandon()
	}
	if d.opts.SelfFence != nil {
		d.opts.SelfFence(reason)
		return
	}
	rebootNow()
}

func (d *Daemon) record(n Notice) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.state.notices = appendBounded(d.state.notices, n)
}
