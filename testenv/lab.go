package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options shape a lab. The zero value is a good lab.
type Options struct {
	// Name is the lab's name; empty picks a fresh one. It must start with
	// Prefix.
	Name string
	// QuorumSize is the quorum image's size; zero means 16 MiB.
	QuorumSize int64
	// DataSize is the ext4 data image's size; zero means 128 MiB.
	DataSize int64
	// Baud is the serial cable's line rate; zero means 115200.
	Baud int
	// WatchdogTimeout is how long an armed lab watchdog waits to be fed
	// before it powers its node off; zero means 5 s.
	WatchdogTimeout time.Duration
}

func (o *Options) fill() {
	if o.Name == "" {
		o.Name = NewName()
	}
	if o.QuorumSize == 0 {
		o.QuorumSize = 16 << 20
	}
	if o.DataSize == 0 {
		o.DataSize = 128 << 20
	}
	if o.Baud == 0 {
		o.Baud = 115200
	}
	if o.WatchdogTimeout == 0 {
		o.WatchdogTimeout = 5 * time.Second
	}
}

// Link names one of a node's connections.
type Link string

// The links a fault can cut.
const (
	LinkPublic    Link = "public"
	LinkHeartbeat Link = "heartbeat"
	LinkSerial    Link = "serial"
)

// ParseLink reads a link name.
func ParseLink(s string) (Link, error) {
	switch l := Link(s); l {
	case LinkPublic, LinkHeartbeat, LinkSerial:
		return l, nil
	}
	return "", fmt.Errorf("testenv: unknown link %q (want public, heartbeat or serial)", s)
}

// Event is something the lab did, for timelines.
type Event struct {
	At   time.Time
	What string
}

// Lab is a running lab. Its methods are safe for concurrent use; faults are
// carried out one at a time.
type Lab struct {
	// Name is the lab's name, the prefix of everything it made.
	Name string
	// Dir is the lab's work directory.
	Dir string

	opts   Options
	swPath string
	net    *network
	cable  *cable
	hosts  map[string]*Host

	ops sync.Mutex // one fault or power action at a time
	ctlState

	mu        sync.Mutex
	observers []*Observer
	events    []Event
	cut       map[string]map[Link]bool
	diskFail  map[string]bool
	closed    bool
}

// New builds a lab. It needs root; see Start for tests.
func New(opts Options) (lab *Lab, err error) {
	opts.fill()
	if err := CheckName(opts.Name); err != nil {
		return nil, err
	}
	l := &Lab{
		Name: opts.Name, Dir: WorkDir(opts.Name), opts: opts,
		hosts:    map[string]*Host{},
		cut:      map[string]map[Link]bool{},
		diskFail: map[string]bool{},
	}
	if err := os.MkdirAll(BaseDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Mkdir(l.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("testenv: lab %s: %w", l.Name, err)
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	for _, d := range []string{"bin", "dev", "srv"} {
		if err := os.Mkdir(filepath.Join(l.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := makeImage(l.quorumImage(), opts.QuorumSize); err != nil {
		return nil, err
	}
	if err := makeImage(l.dataImage(), opts.DataSize); err != nil {
		return nil, err
	}
	if err := mkfsExt4(l.dataImage()); err != nil {
		return nil, err
	}
	if l.swPath, err = createNetns(nsName(l.Name, "sw")); err != nil {
		return nil, err
	}
	if l.net, err = newNetwork(l.swPath); err != nil {
		return nil, err
	}
	if l.cable, err = newCable(opts.Baud); err != nil {
		return nil, err
	}
	for i, p := range plans {
		h, err := l.addHost(p, i)
		if err != nil {
			return nil, err
		}
		l.hosts[p.name] = h
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if err := os.Symlink(exe, l.FenceAgent()); err != nil {
		return nil, err
	}
	if err := l.listenControl(); err != nil {
		return nil, err
	}
	for _, p := range plans {
		if err := l.hosts[p.name].boot(); err != nil {
			return nil, err
		}
	}
	l.event("lab %s up", l.Name)
	return l, nil
}

func (l *Lab) addHost(p hostPlan, index int) (*Host, error) {
	h := &Host{Name: p.name, PublicAddr: p.public, PublicAddr6: p.public6, HeartbeatAddr: p.heartbeat, Dir: filepath.Join(l.Dir, p.name), lab: l}
	for _, d := range []string{"etc", "lib"} {
		if err := os.MkdirAll(filepath.Join(h.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	var err error
	if h.nsPath, err = createNetns(nsName(l.Name, p.name)); err != nil {
		return nil, err
	}
	if h.net, err = openNs(h.nsPath); err != nil {
		return nil, err
	}
	// Registered before anything else can fail, so Close finds it.
	l.hosts[p.name] = h
	if err := l.net.plug(h.net, p.name, PublicIf, bridgePublic); err != nil {
		return nil, err
	}
	if h.IsNode() {
		if err := l.net.plug(h.net, p.name, HeartbeatIf, bridgeHeartbeat); err != nil {
			return nil, err
		}
		if h.quorum, err = attachLoop(l.quorumImage()); err != nil {
			return nil, err
		}
		if h.data, err = attachLoop(l.dataImage()); err != nil {
			return nil, err
		}
		h.serial = l.cable.path(index)
		name := p.name
		wd, err := newWatchdog(filepath.Join(h.Dir, "watchdog"), l.opts.WatchdogTimeout, func() {
			l.event("watchdog of %s expired", name)
			if err := l.PowerOff(name); err != nil {
				l.event("watchdog power-off of %s failed: %v", name, err)
			}
		})
		if err != nil {
			return nil, err
		}
		h.wd = wd
	}
	if err := h.setNetwork(true); err != nil {
		return nil, err
	}
	return h, nil
}

// Start builds a lab for a test and closes it when the test ends, checking
// that nothing of it is left behind. It skips the test, with the reason,
// when the machine cannot run a lab, or fails it when TANDEM_LAB_REQUIRED=1.
func Start(t testing.TB, opts Options) *Lab {
	t.Helper()
	Require(t)
	lab, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
		if left := Leftovers(lab.Name); len(left) > 0 {
			t.Errorf("testenv: lab %s left behind: %s", lab.Name, strings.Join(left, "; "))
		}
	})
	return lab
}

// Node returns node "a" or "b" (or the client by its name); it panics on
// other names, which are programming errors.
func (l *Lab) Node(name string) *Host {
	h := l.Host(name)
	if h == nil {
		panic(fmt.Sprintf("testenv: no host %q in lab %s", name, l.Name))
	}
	return h
}

// Client returns the client host.
func (l *Lab) Client() *Host { return l.Node("client") }

// Host returns the host called name, or nil.
func (l *Lab) Host(name string) *Host { return l.hosts[name] }

// Peer returns the other node.
func (l *Lab) Peer(name string) *Host {
	if name == "a" {
		return l.Node("b")
	}
	return l.Node("a")
}

func (l *Lab) quorumImage() string { return filepath.Join(l.Dir, "quorum.img") }
func (l *Lab) dataImage() string   { return filepath.Join(l.Dir, "data.img") }

// QuorumDevice is the quorum partition, at the same path in both nodes.
func (l *Lab) QuorumDevice() string { return filepath.Join(l.Dir, "dev", "quorum") }

// DataDevice is the ext4 data volume, at the same path in both nodes.
func (l *Lab) DataDevice() string { return filepath.Join(l.Dir, "dev", "data") }

// SerialDevice is each node's end of the serial cable, at the same path in
// both nodes.
func (l *Lab) SerialDevice() string { return filepath.Join(l.Dir, "dev", "ttyS1") }

// WatchdogDevice is each node's lab watchdog, at the same path in both nodes.
func (l *Lab) WatchdogDevice() string { return filepath.Join(l.Dir, "dev", "watchdog") }

// Mountpoint is an empty directory, the same in every host, for the data
// volume.
func (l *Lab) Mountpoint() string { return filepath.Join(l.Dir, "srv") }

// FenceAgent is the path of the lab's fence agent, usable from any host.
func (l *Lab) FenceAgent() string { return filepath.Join(l.Dir, "bin", fenceAgentName) }

// ControlSocket is the lab's control socket.
func (l *Lab) ControlSocket() string { return filepath.Join(l.Dir, "lab.sock") }

// Baud is the serial cable's line rate.
func (l *Lab) Baud() int { return l.opts.Baud }

// DataDevNumber is the major:minor of a node's own data loop device, as
// /proc/*/mountinfo shows it.
func (h *Host) DataDevNumber() string {
	if h.data == nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", h.data.major, h.data.minor)
}

// DataLoop is the node's own loop device for the data volume (/dev/loopN).
func (h *Host) DataLoop() string {
	if h.data == nil {
		return ""
	}
	return h.data.path
}

func (l *Lab) event(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, Event{time.Now(), fmt.Sprintf(format, args...)})
}

// Events returns what the lab did so far: faults, power actions, watchdog
// expiries.
func (l *Lab) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// Cut disconnects one of a host's links: the switch port goes dark, or the
// serial cable drops every byte.
func (l *Lab) Cut(host string, link Link) error { return l.setLink(host, link, true) }

// Restore reconnects a link cut by Cut.
func (l *Lab) Restore(host string, link Link) error { return l.setLink(host, link, false) }

func (l *Lab) setLink(host string, link Link, cut bool) error {
	h := l.Host(host)
	if h == nil {
		return fmt.Errorf("testenv: no host %q", host)
	}
	l.ops.Lock()
	defer l.ops.Unlock()
	var err error
	switch link {
	case LinkSerial:
		if !h.IsNode() {
			return fmt.Errorf("testenv: %s has no serial cable", host)
		}
		l.cable.cut.Store(cut)
	case LinkPublic, LinkHeartbeat:
		ifname := PublicIf
		if link == LinkHeartbeat {
			if !h.IsNode() {
				return fmt.Errorf("testenv: %s has no heartbeat link", host)
			}
			ifname = HeartbeatIf
		}
		port := switchPort(host, ifname)
		if cut {
			err = l.net.sw.down(port)
		} else {
			err = l.net.sw.up(port)
		}
	default:
		return fmt.Errorf("testenv: unknown link %q", link)
	}
	if err != nil {
		return err
	}
	l.mu.Lock()
	if l.cut[host] == nil {
		l.cut[host] = map[Link]bool{}
	}
	l.cut[host][link] = cut
	l.mu.Unlock()
	verb := "restored"
	if cut {
		verb = "cut"
	}
	l.event("%s link of %s %s", link, host, verb)
	return nil
}

// Freeze stops every process of a host from making progress, as a hung
// kernel or a paused VM does. Its network and disk stay as they are.
func (l *Lab) Freeze(host string) error { return l.freeze(host, true) }

// Thaw lets a frozen host run on.
func (l *Lab) Thaw(host string) error { return l.freeze(host, false) }

func (l *Lab) freeze(host string, frozen bool) error {
	h := l.Host(host)
	if h == nil {
		return fmt.Errorf("testenv: no host %q", host)
	}
	l.ops.Lock()
	defer l.ops.Unlock()
	if !h.Powered() {
		return fmt.Errorf("testenv: %s is powered off", host)
	}
	h.mu.Lock()
	cg := h.cg
	h.mu.Unlock()
	if err := cg.freeze(frozen); err != nil {
		return err
	}
	h.mu.Lock()
	h.frozen = frozen
	h.mu.Unlock()
	if frozen {
		l.event("%s frozen", host)
	} else {
		l.event("%s thawed", host)
	}
	return nil
}

// FailDisk cuts a node off the shared disk: every later I/O of that node to
// the quorum or data volume fails, while the other node's go on.
func (l *Lab) FailDisk(node string) error { return l.setDisk(node, true) }

// RestoreDisk undoes FailDisk.
func (l *Lab) RestoreDisk(node string) error { return l.setDisk(node, false) }

func (l *Lab) setDisk(node string, failed bool) error {
	h := l.Host(node)
	if h == nil || !h.IsNode() {
		return fmt.Errorf("testenv: no node %q", node)
	}
	l.ops.Lock()
	defer l.ops.Unlock()
	// A powered-off node's devices stay cut until it boots.
	if h.Powered() {
		if err := h.diskPath(!failed); err != nil {
			return err
		}
	}
	l.mu.Lock()
	l.diskFail[node] = failed
	l.mu.Unlock()
	if failed {
		l.event("disk of %s failed", node)
	} else {
		l.event("disk of %s restored", node)
	}
	return nil
}

func (h *Host) diskPath(ok bool) error {
	limit := uint64(512)
	if ok {
		limit = 0
	}
	for _, d := range []*loopDev{h.quorum, h.data} {
		if err := d.setLimit(limit); err != nil {
			return err
		}
	}
	return nil
}

// PowerOff turns a host off as a power loss would: its disk path is cut
// first and its network goes dark, then every process dies at once, and
// the call returns once its data volume's superblock is released, so
// nothing the node did not write before the cut reaches the disk, and no
// FIN or RST leaves the node, afterwards.
func (l *Lab) PowerOff(host string) error {
	h := l.Host(host)
	if h == nil {
		return fmt.Errorf("testenv: no host %q", host)
	}
	l.ops.Lock()
	defer l.ops.Unlock()
	return l.powerOff(h)
}

func (l *Lab) powerOff(h *Host) error {
	if !h.Powered() {
		return nil
	}
	start := time.Now()
	var errs []error
	if h.IsNode() {
		errs = append(errs, h.diskPath(false))
	}
	// Dark before the kill: dying processes' sockets would otherwise send
	// FINs and RSTs, which no real power loss does.
	errs = append(errs, h.setNetwork(false))
	errs = append(errs, h.kill())
	if h.IsNode() {
		h.wd.reset()
		errs = append(errs, waitFor(10*time.Second, func() (bool, error) {
			return !h.data.superblockLive(), nil
		}, "the data volume of %s to be released", h.Name))
	}
	l.event("%s powered off (%v)", h.Name, time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}

// PowerOn boots a powered-off host: fresh mount and pid namespaces, an
// empty /run/tandem, its own addresses only, its disk path back unless
// FailDisk cut it.
func (l *Lab) PowerOn(host string) error {
	h := l.Host(host)
	if h == nil {
		return fmt.Errorf("testenv: no host %q", host)
	}
	l.ops.Lock()
	defer l.ops.Unlock()
	if h.Powered() {
		return nil
	}
	l.mu.Lock()
	diskFailed := l.diskFail[host]
	l.mu.Unlock()
	if h.IsNode() && !diskFailed {
		if err := h.diskPath(true); err != nil {
			return err
		}
	}
	if err := h.setNetwork(true); err != nil {
		return err
	}
	if h.wd != nil {
		h.wd.reset()
	}
	if err := h.boot(); err != nil {
		return err
	}
	l.event("%s powered on", host)
	return nil
}

// SetWatchdogTimeout changes a node's watchdog timeout.
func (l *Lab) SetWatchdogTimeout(node string, d time.Duration) {
	l.Node(node).wd.setTimeout(d)
}

// WatchdogFired says how often a node's watchdog has expired.
func (l *Lab) WatchdogFired(node string) int {
	_, fired := l.Node(node).wd.state()
	return fired
}

// Status describes the lab now.
func (l *Lab) Status() Status {
	st := Status{Name: l.Name, Dir: l.Dir, SerialCut: l.cable != nil && l.cable.cut.Load()}
	names := make([]string, 0, len(l.hosts))
	for n := range l.hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range names {
		h := l.hosts[n]
		hs := HostStatus{Name: n, Power: "off", PublicAddr: h.PublicAddr.String(), PublicAddr6: h.PublicAddr6.String(), DiskFailed: l.diskFail[n]}
		h.mu.Lock()
		if h.initPID != 0 {
			hs.Power, hs.PID, hs.Frozen = "on", h.initPID, h.frozen
		}
		h.mu.Unlock()
		if h.HeartbeatAddr.IsValid() {
			hs.HeartbeatAddr = h.HeartbeatAddr.String()
		}
		for link, cut := range l.cut[n] {
			if cut {
				hs.Cut = append(hs.Cut, string(link))
			}
		}
		sort.Strings(hs.Cut)
		if h.wd != nil {
			hs.WatchdogArmed, hs.WatchdogFired = h.wd.state()
		}
		st.Hosts = append(st.Hosts, hs)
	}
	return st
}

// Close tears the lab down: every process, mount, namespace, bridge, loop
// device and file it made. It is safe to call more than once.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	observers := l.observers
	l.mu.Unlock()
	for _, o := range observers {
		o.Stop()
	}
	if l.ctl != nil {
		l.ctl.Close()
	}
	l.ops.Lock()
	defer l.ops.Unlock()
	var errs []error
	for _, h := range l.hosts {
		errs = append(errs, h.kill())
	}
	for _, h := range l.hosts {
		if h.data != nil {
			errs = append(errs, waitFor(10*time.Second, func() (bool, error) {
				return !h.data.superblockLive(), nil
			}, "the data volume of %s to be released", h.Name))
		}
	}
	for _, h := range l.hosts {
		errs = append(errs, h.reap(10*time.Second))
		if h.wd != nil {
			h.wd.close()
		}
		for _, d := range []*loopDev{h.quorum, h.data} {
			if d != nil {
				errs = append(errs, d.detach())
			}
		}
		if h.net != nil {
			h.net.close()
		}
		if h.nsPath != "" {
			errs = append(errs, deleteNetns(h.nsPath))
		}
	}
	if l.cable != nil {
		l.cable.close()
	}
	if l.net != nil {
		l.net.close()
	}
	if l.swPath != "" {
		errs = append(errs, deleteNetns(l.swPath))
	}
	errs = append(errs, os.RemoveAll(l.Dir))
	return errors.Join(errs...)
}
