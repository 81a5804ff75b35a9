package failover

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"time"
)

// This file is a world for two Machines: a network that loses, duplicates
// and reorders, a heartbeat layer that may be wrong, power that fails,
// fencing that powers a node off for real (or fails), and resource
// executors that fail on demand. After every event the world checks that
// no two nodes hold the service, in their executors or in their Machines'
// own belief.

var simNames = [2]string{"alpha", "beta"}

// simQuantum is the world's unit of time: one tick, one resend interval.
const simQuantum = 100 * time.Millisecond

func simConfig(i int) Config {
	return Config{
		Node:           simNames[i],
		Peer:           simNames[1-i],
		InitDead:       10 * simQuantum,
		ResendInterval: simQuantum,
		FenceRetryMin:  2 * simQuantum,
		FenceRetryMax:  16 * simQuantum,
		RestartLimit:   1,
		RestartWindow:  50 * simQuantum,
	}
}

type opKind uint8

const (
	opNone opKind = iota
	opStart
	opStop
	opForce
	opRestart
	opSelfFence
)

// executor stands for the resource group of one node.
type executor struct {
	op      opKind // outstanding operation
	name    string // resource of a restart
	held    bool   // some resource of the group may be up
	started bool   // the group is fully up
}

type node struct {
	on   bool
	m    *Machine
	inc  uint64
	told bool // the liveness verdict the heartbeat layer last gave m about the peer
	exec executor
	// leftover is set when the daemon restarted while its group was up:
	// the new run does not hold the service but must stop what runs.
	leftover bool
}

type packet struct {
	from, to int
	data     []byte
	slow     bool // random histories: held back for long
}

type fenceOp struct {
	by       int
	byInc    uint64
	executed bool // the device acted; the result is on its way
	ok       bool
	slow     bool // random histories: the result is held back for long
}

type adminOp struct {
	node     int
	cmd      AdminCommand
	resource string
}

// budget bounds the faults the world may still inject.
type budget struct {
	drops, dups, reorders, opFails, fenceFails, falseVerdicts, powerOffs, powerOns, restarts, ticks, monitors int
}

type world struct {
	now    time.Duration
	nodes  [2]node
	incs   [2]uint64        // last incarnation used per node
	offAt  [2]time.Duration // when each node last lost power
	net    []packet
	fences []fenceOp
	admin  []adminOp // commands an operator may still type
	budget budget
	cfg    [2]Config
	// coalesce makes a new Report replace any older one still queued in
	// the same direction, as if the network had lost it. Exhaustive
	// exploration uses it to keep the state space small; random histories
	// do not.
	coalesce bool
	quiet    bool // keep no trace
	// rng, in random histories, marks some packets and fencing results slow.
	rng *rand.Rand
	// stats, when set, counts what the machines did.
	stats map[string]int
	steps int
	trace []string // recent events, for reports
	// replies counts AdminReply actions; every AdminRequest must get one.
	replies, requests int
}

type evKind uint8

const (
	evDeliver evKind = iota
	evDrop
	evDup
	evOpOK
	evOpFail
	evFenceExec
	evFenceFail
	evFenceResult
	evTick
	evAlive
	evDead
	evPowerOff
	evPowerOn
	evAdmin
	evMonitor
	evRestart
	numEvKinds
)

var evNames = [...]string{"deliver", "drop", "dup", "op-ok", "op-fail", "fence-exec", "fence-fail", "fence-result", "tick", "alive", "dead", "power-off", "power-on", "admin", "monitor", "restart"}

type simEvent struct {
	kind evKind
	node int
	idx  int
}

func newWorld(cfg [2]Config, b budget) *world {
	return &world{cfg: cfg, budget: b}
}

func (w *world) clone() *world {
	c := *w
	for i := range c.nodes {
		if w.nodes[i].m != nil {
			c.nodes[i].m = w.nodes[i].m.clone()
		}
	}
	c.net = slices.Clone(w.net)
	c.fences = slices.Clone(w.fences)
	c.admin = slices.Clone(w.admin)
	c.trace = slices.Clone(w.trace)
	return &c
}

// clone returns a deep copy of m, for exploring branches.
func (m *Machine) clone() *Machine {
	c := *m
	c.failures = slices.Clone(m.failures)
	for i := range c.failures {
		c.failures[i].restarts = slices.Clone(m.failures[i].restarts)
	}
	c.out = nil
	return &c
}

func (w *world) describe(ev simEvent) string {
	s := fmt.Sprintf("t=%v %s node=%s", w.now, evNames[ev.kind], simNames[ev.node])
	switch ev.kind {
	case evDeliver, evDrop, evDup:
		p := w.net[ev.idx]
		msg, _ := UnmarshalMessage(p.data)
		s += fmt.Sprintf(" %s→%s %v %+v", simNames[p.from], simNames[p.to], msg.Type(), msg)
	case evAdmin:
		a := w.admin[ev.idx]
		s += fmt.Sprintf(" %v %s", a.cmd, a.resource)
	}
	return s
}

// enabled lists every event that may happen next.
func (w *world) enabled() []simEvent {
	var evs []simEvent
	b := w.budget
	// Each direction is a queue. Its head may be delivered, dropped or
	// duplicated; any other packet may overtake it while the budget of
	// reorderings lasts.
	var head [2]bool
	for i, p := range w.net {
		first := !head[p.to]
		head[p.to] = true
		if first || b.reorders > 0 {
			evs = append(evs, simEvent{kind: evDeliver, node: p.to, idx: i})
		}
		if !first {
			continue
		}
		if b.drops > 0 {
			evs = append(evs, simEvent{kind: evDrop, node: p.to, idx: i})
		}
		if b.dups > 0 {
			evs = append(evs, simEvent{kind: evDup, node: p.to, idx: i})
		}
	}
	for i := range w.fences {
		f := &w.fences[i]
		if f.executed {
			evs = append(evs, simEvent{kind: evFenceResult, node: f.by, idx: i})
			continue
		}
		evs = append(evs, simEvent{kind: evFenceExec, node: f.by, idx: i})
		if b.fenceFails > 0 {
			evs = append(evs, simEvent{kind: evFenceFail, node: f.by, idx: i})
		}
	}
	for i := range w.nodes {
		n := &w.nodes[i]
		if !n.on {
			if b.powerOns > 0 {
				evs = append(evs, simEvent{kind: evPowerOn, node: i})
			}
			continue
		}
		if n.exec.op != opNone {
			evs = append(evs, simEvent{kind: evOpOK, node: i})
			if b.opFails > 0 && n.exec.op != opSelfFence {
				evs = append(evs, simEvent{kind: evOpFail, node: i})
			}
		}
		if b.ticks > 0 {
			evs = append(evs, simEvent{kind: evTick, node: i})
		}
		truth := w.nodes[1-i].on
		switch {
		case n.told != truth && truth:
			evs = append(evs, simEvent{kind: evAlive, node: i})
		case n.told != truth:
			evs = append(evs, simEvent{kind: evDead, node: i})
		case b.falseVerdicts > 0 && truth:
			evs = append(evs, simEvent{kind: evDead, node: i})
		case b.falseVerdicts > 0:
			evs = append(evs, simEvent{kind: evAlive, node: i})
		}
		if b.powerOffs > 0 {
			evs = append(evs, simEvent{kind: evPowerOff, node: i})
		}
		if b.restarts > 0 {
			evs = append(evs, simEvent{kind: evRestart, node: i})
		}
		if b.monitors > 0 && n.exec.started && n.exec.op == opNone {
			evs = append(evs, simEvent{kind: evMonitor, node: i})
		}
	}
	for i, a := range w.admin {
		if w.nodes[a.node].on {
			evs = append(evs, simEvent{kind: evAdmin, node: a.node, idx: i})
		}
	}
	return evs
}

// apply makes ev happen and checks the invariant.
func (w *world) apply(ev simEvent) error {
	w.steps++
	const keep = 60
	if len(w.trace) >= keep {
		w.trace = append(w.trace[:0], w.trace[len(w.trace)-keep/2:]...)
	}
	if !w.quiet {
		w.trace = append(w.trace, w.describe(ev))
	}
	i := ev.node
	n := &w.nodes[i]
	var err error
	switch ev.kind {
	case evDeliver, evDup:
		p := w.net[ev.idx]
		if ev.kind == evDeliver && slices.IndexFunc(w.net, func(q packet) bool { return q.to == p.to }) != ev.idx {
			w.budget.reorders--
		}
		if ev.kind == evDup {
			w.budget.dups--
		} else {
			w.net = slices.Delete(w.net, ev.idx, ev.idx+1)
		}
		if !w.nodes[p.to].on {
			break
		}
		msg, derr := UnmarshalMessage(p.data)
		if derr != nil {
			return fmt.Errorf("a message sent did not decode: %v", derr)
		}
		err = w.step(p.to, PeerMessage{Message: msg})
	case evDrop:
		w.budget.drops--
		w.net = slices.Delete(w.net, ev.idx, ev.idx+1)
	case evOpOK, evOpFail:
		fail := ev.kind == evOpFail
		if fail {
			w.budget.opFails--
		}
		err = w.completeOp(i, fail)
	case evFenceExec, evFenceFail:
		f := &w.fences[ev.idx]
		if !w.nodes[f.by].on || w.nodes[f.by].inc != f.byInc {
			// The fencer died with its request: nothing happens.
			w.fences = slices.Delete(w.fences, ev.idx, ev.idx+1)
			break
		}
		f.executed = true
		if ev.kind == evFenceFail {
			w.budget.fenceFails--
			break
		}
		f.ok = true
		w.powerOff(1 - f.by)
	case evFenceResult:
		f := w.fences[ev.idx]
		w.fences = slices.Delete(w.fences, ev.idx, ev.idx+1)
		if w.nodes[f.by].on && w.nodes[f.by].inc == f.byInc {
			r := FenceResult{Node: simNames[1-f.by], Off: f.ok}
			if !f.ok {
				r.Reason = "device timed out"
			}
			err = w.step(f.by, r)
		}
	case evTick:
		w.budget.ticks--
		w.now += simQuantum
		err = w.step(i, Tick{})
	case evAlive:
		if n.told == w.nodes[1-i].on {
			w.budget.falseVerdicts--
		}
		n.told = true
		err = w.step(i, PeerAlive{})
	case evDead:
		if n.told == w.nodes[1-i].on {
			w.budget.falseVerdicts--
		}
		n.told = false
		err = w.step(i, PeerDead{})
	case evPowerOff:
		w.budget.powerOffs--
		w.powerOff(i)
	case evPowerOn:
		w.budget.powerOns--
		err = w.powerOn(i)
	case evRestart:
		// The daemon dies and starts again; the resources stay as they
		// are, and an operation under way is abandoned half done.
		w.budget.restarts--
		e := n.exec
		if e.op != opNone {
			e.started = false
		}
		e.op = opNone
		err = w.boot(i, e)
	case evAdmin:
		a := w.admin[ev.idx]
		w.admin = slices.Delete(w.admin, ev.idx, ev.idx+1)
		w.requests++
		err = w.step(a.node, AdminRequest{Command: a.cmd, Resource: a.resource})
	case evMonitor:
		w.budget.monitors--
		err = w.step(i, ResourceResult{Op: OpMonitor, Resource: "smb", Err: errors.New("NEGOTIATE timed out")})
	}
	if err != nil {
		return err
	}
	return w.check()
}

func (w *world) powerOff(i int) {
	n := &w.nodes[i]
	n.on, n.m, n.exec = false, nil, executor{}
	w.offAt[i] = w.now
}

// diskStatus is the quorum disk as node i sees it: its own slot written
// now, its mailbox read, the peer's counter moving while the peer has
// power.
func (w *world) diskStatus(i int) DiskStatus {
	moved := w.now
	if !w.nodes[1-i].on {
		moved = w.offAt[1-i]
	}
	return DiskStatus{Written: true, LastWrite: w.now, PeerRead: true, PeerMoved: moved, MailboxRead: true}
}

func (w *world) powerOn(i int) error { return w.boot(i, executor{}) }

// boot starts a new run of node i's daemon over the given resources.
func (w *world) boot(i int, e executor) error {
	w.incs[i]++
	cfg := w.cfg[i]
	cfg.Incarnation = w.incs[i]
	m, err := New(cfg)
	if err != nil {
		return err
	}
	w.nodes[i] = node{on: true, m: m, inc: cfg.Incarnation, exec: e, leftover: e.held}
	return w.step(i, Tick{})
}

func (w *world) completeOp(i int, fail bool) error {
	e := &w.nodes[i].exec
	op := e.op
	e.op = opNone
	var ev ResourceResult
	var failure error
	if fail {
		failure = errors.New("simulated failure")
	}
	switch op {
	case opStart:
		// A failed start leaves held set: its rollback may have failed too.
		e.started = !fail
		ev = ResourceResult{Op: OpStart, Err: failure}
		if fail {
			ev.Resource = "smb"
		}
	case opStop, opForce:
		if !fail {
			e.held, e.started = false, false
			w.nodes[i].leftover = false
		}
		ev = ResourceResult{Op: OpStop, Err: failure}
		if fail {
			ev.Resource = "data"
		}
	case opRestart:
		e.started = !fail
		ev = ResourceResult{Op: OpRestart, Resource: e.name, Err: failure}
	case opSelfFence:
		w.powerOff(i)
		return nil
	}
	return w.step(i, ev)
}

// step feeds ev to node i's Machine and carries out the actions.
func (w *world) step(i int, ev Event) error {
	n := &w.nodes[i]
	if _, tick := ev.(Tick); tick && w.cfg[i].Disk {
		// The quorum disk works: this node renews its slot at every
		// tick, and sees the peer's move while the peer has power.
		ev = w.diskStatus(i)
	}
	acts := n.m.Step(w.now, ev)
	for _, a := range acts {
		if w.stats != nil {
			w.count(a)
		}
		e := &n.exec
		busy := func() error {
			if e.op != opNone {
				return fmt.Errorf("%s asked for %T while an operation is outstanding", simNames[i], a)
			}
			return nil
		}
		switch a := a.(type) {
		case Send:
			b, err := a.Message.MarshalBinary()
			if err != nil {
				return fmt.Errorf("%s: marshal %+v: %v", simNames[i], a.Message, err)
			}
			if w.coalesce && a.Message.Type() == TypeReport {
				w.net = slices.DeleteFunc(w.net, func(p packet) bool { return p.from == i && MessageType(p.data[1]) == TypeReport })
			}
			w.net = append(w.net, packet{from: i, to: 1 - i, data: b, slow: w.rng != nil && w.rng.IntN(10) == 0})
		case StartGroup:
			if err := busy(); err != nil {
				return err
			}
			e.op, e.held = opStart, true
		case StopGroup:
			if err := busy(); err != nil {
				return err
			}
			e.op = opStop
			if a.Force {
				e.op = opForce
			}
		case RestartResource:
			if err := busy(); err != nil {
				return err
			}
			if !e.started {
				return fmt.Errorf("%s asked to restart %s while the group is not started", simNames[i], a.Name)
			}
			e.op, e.name = opRestart, a.Name
		case SelfFence:
			if err := busy(); err != nil {
				return err
			}
			e.op = opSelfFence
		case Fence:
			if a.Node != simNames[1-i] {
				return fmt.Errorf("%s fences %q", simNames[i], a.Node)
			}
			w.fences = append(w.fences, fenceOp{by: i, byInc: n.inc, slow: w.rng != nil && w.rng.IntN(8) == 0})
		case AdminReply:
			w.replies++
		}
	}
	return nil
}

func (w *world) count(a Action) {
	switch a := a.(type) {
	case Send:
		w.stats["send "+a.Message.Type().String()]++
	case StopGroup:
		if a.Force {
			w.stats["forced stop"]++
		}
	case Notice:
		for _, k := range []string{"taking the service: elected", "is fenced", "released the service to this node", "auto_failback", "fencing alpha failed", "fencing beta failed", "restarted before confirming"} {
			if strings.Contains(a.Text, k) {
				w.stats[k]++
			}
		}
	case AdminReply:
		if a.Accepted {
			w.stats["accepted "+a.Command.String()]++
		}
	default:
		w.stats[fmt.Sprintf("%T", a)]++
	}
}

// check verifies the invariant: at no instant do both nodes hold, or start,
// the group; a node's executor holds it only while its Machine believes it
// holds the service; and the Machines never both believe so.
func (w *world) check() error {
	a, b := &w.nodes[0], &w.nodes[1]
	if a.on && b.on && a.exec.held && b.exec.held {
		return errors.New("both nodes hold the group")
	}
	if a.on && b.on && a.m.owner && b.m.owner {
		return errors.New("both machines believe they hold the service")
	}
	for i := range w.nodes {
		n := &w.nodes[i]
		if !n.on {
			continue
		}
		if n.exec.held && !n.m.owner && !n.leftover {
			return fmt.Errorf("%s holds the group but its machine does not own the service", simNames[i])
		}
		if r := n.m.role; (r == RoleActive || r == RoleStarting) && !n.exec.held {
			return fmt.Errorf("%s is %v but its group is down", simNames[i], r)
		}
	}
	if w.replies != w.requests {
		return fmt.Errorf("%d admin requests got %d replies", w.requests, w.replies)
	}
	return nil
}

// settle ends every fault: power comes back, the network and the heartbeat
// layer tell the truth, fencing and resources work, an operator turns
// maintenance off and cleans up. Then exactly one node must be active and
// the other standby.
func (w *world) settle() error {
	w.budget = budget{}
	w.rng = nil
	w.admin = nil
	const rounds = 400 // 40 s
	for r := 0; r < rounds; r++ {
		for i := range w.nodes {
			if !w.nodes[i].on {
				if err := w.apply(simEvent{kind: evPowerOn, node: i}); err != nil {
					return err
				}
			}
		}
		for range 50 {
			evs := w.enabled()
			if len(evs) == 0 {
				break
			}
			if err := w.apply(evs[0]); err != nil {
				return err
			}
		}
		if r%10 == 5 {
			for i := range w.nodes {
				n := &w.nodes[i]
				if !n.on {
					continue
				}
				if n.m.maint {
					w.admin = append(w.admin, adminOp{node: i, cmd: AdminMaintenanceOff})
				}
				if n.m.hasFatal() {
					w.admin = append(w.admin, adminOp{node: i, cmd: AdminCleanup})
				}
			}
		}
		w.now += simQuantum
		for i := range w.nodes {
			if w.nodes[i].on {
				if err := w.step(i, Tick{}); err != nil {
					return err
				}
			}
		}
		if err := w.check(); err != nil {
			return err
		}
	}
	return w.settled()
}

func (w *world) settled() error {
	var active, standby int
	for i := range w.nodes {
		n := &w.nodes[i]
		switch {
		case !n.on:
			return fmt.Errorf("%s is off after settling", simNames[i])
		case n.m.role == RoleActive && n.m.owner && n.exec.started:
			active++
		case n.m.role == RoleStandby && !n.m.owner && !n.exec.held:
			standby++
		default:
			return fmt.Errorf("after settling %s is %v (%s), owner %v, group held %v started %v",
				simNames[i], n.m.role, n.m.reason, n.m.owner, n.exec.held, n.exec.started)
		}
	}
	if active != 1 || standby != 1 {
		return fmt.Errorf("after settling %d active and %d standby", active, standby)
	}
	return nil
}

// fingerprint identifies the world's state for exhaustive exploration.
func (w *world) fingerprint() uint64 {
	b := fpBuf(make([]byte, 0, 1024))
	b.value(reflect.ValueOf(w.now))
	b.value(reflect.ValueOf(w.incs))
	b.value(reflect.ValueOf(w.offAt))
	b.value(reflect.ValueOf(w.budget))
	b.value(reflect.ValueOf(w.fences))
	b.value(reflect.ValueOf(w.admin))
	for i := range w.nodes {
		n := &w.nodes[i]
		b.value(reflect.ValueOf(n.on))
		b.value(reflect.ValueOf(n.inc))
		b.value(reflect.ValueOf(n.told))
		b.value(reflect.ValueOf(n.exec))
		if n.m != nil {
			// Every field but the configuration, the pending output and the
			// sequence numbers.
			c := *n.m
			c.cfg, c.out = Config{}, nil
			c.seq, c.report.Seq = 0, 0
			b.value(reflect.ValueOf(c))
		}
	}
	// Packets keep their queue order. A report's sequence number matters
	// only as fresh or stale for its receiver.
	for _, p := range w.net {
		b = append(b, byte(p.from), byte(p.to))
		msg, _ := UnmarshalMessage(p.data)
		r, ok := msg.(Report)
		if !ok {
			b.value(reflect.ValueOf(p.data))
			continue
		}
		fresh := true
		if rm := w.nodes[p.to].m; rm != nil {
			fresh = r.From > rm.peerInc || (r.From == rm.peerInc && (!rm.hasReport || r.Seq > rm.report.Seq))
		}
		r.Seq = 0
		b.value(reflect.ValueOf(r))
		b.value(reflect.ValueOf(fresh))
	}
	return maphash.Bytes(fpSeed, b)
}

var fpSeed = maphash.MakeSeed()

// fpBuf encodes values of the world's plain types (no pointers, maps or
// functions) unambiguously.
type fpBuf []byte

func (b *fpBuf) value(v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			*b = append(*b, 1)
		} else {
			*b = append(*b, 0)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		*b = binary.AppendVarint(*b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		*b = binary.AppendUvarint(*b, v.Uint())
	case reflect.String:
		*b = binary.AppendUvarint(*b, uint64(v.Len()))
		*b = append(*b, v.String()...)
	case reflect.Struct:
		for i := range v.NumField() {
			b.value(v.Field(i))
		}
	case reflect.Slice, reflect.Array:
		*b = binary.AppendUvarint(*b, uint64(v.Len()))
		for i := range v.Len() {
			b.value(v.Index(i))
		}
	case reflect.Interface:
		if !v.IsNil() {
			panic("fingerprint: interface value " + v.Type().String())
		}
		*b = append(*b, 0)
	default:
		panic("fingerprint: cannot encode " + v.Type().String())
	}
}

// randomWorld runs one seeded random history of n events and settles it.
func randomWorld(seed uint64, n int, cfg [2]Config, stats map[string]int) (w *world, err error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	inf := 1 << 30
	w = newWorld(cfg, budget{drops: inf, dups: inf, reorders: inf, opFails: inf, fenceFails: inf, falseVerdicts: inf, powerOffs: inf, powerOns: inf, restarts: inf, ticks: inf, monitors: inf})
	w.rng = rng
	w.stats = stats
	// Start the nodes together, or one some time after the other.
	first := rng.IntN(2)
	if err := w.apply(simEvent{kind: evPowerOn, node: first}); err != nil {
		return w, err
	}
	if rng.IntN(2) == 0 {
		w.now += time.Duration(rng.IntN(40)) * simQuantum
	}
	if err := w.apply(simEvent{kind: evPowerOn, node: 1 - first}); err != nil {
		return w, err
	}
	weights := [numEvKinds]int{
		evDeliver: 40, evDrop: 4, evDup: 3, evOpOK: 30, evOpFail: 4,
		evFenceExec: 12, evFenceFail: 6, evFenceResult: 12, evTick: 40,
		evAlive: 10, evDead: 10, evPowerOff: 1, evPowerOn: 6, evAdmin: 30, evMonitor: 2, evRestart: 1,
	}
	// Each history has its own temper: some are calm, some stormy.
	falseVerdict := 1
	switch rng.IntN(4) {
	case 0:
		weights[evDrop], weights[evDup], weights[evOpFail], weights[evFenceFail], weights[evPowerOff], weights[evMonitor], weights[evRestart] = 0, 0, 0, 0, 0, 0, 0
		falseVerdict = 0
	case 3:
		weights[evDrop], weights[evFenceFail], weights[evPowerOff], weights[evRestart] = 15, 15, 3, 3
		falseVerdict = 5
	}
	cmds := []AdminCommand{AdminStandby, AdminStandby, AdminTakeover, AdminTakeover, AdminFailover, AdminFailover, AdminFailover,
		AdminMaintenanceOn, AdminMaintenanceOff, AdminMaintenanceOff, AdminCleanup}
	for range n {
		if rng.IntN(25) == 0 {
			a := adminOp{node: rng.IntN(2), cmd: cmds[rng.IntN(len(cmds))]}
			if a.cmd == AdminCleanup && rng.IntN(2) == 0 {
				a.resource = "smb"
			}
			w.admin = append(w.admin, a)
		}
		evs := w.enabled()
		weight := func(e simEvent) int {
			wt := weights[e.kind] * 50
			switch e.kind {
			case evDeliver, evDrop, evDup:
				if w.net[e.idx].slow {
					wt /= 50
				}
			case evFenceResult:
				if w.fences[e.idx].slow {
					wt /= 50
				}
			case evAlive, evDead:
				if w.nodes[e.node].told == w.nodes[1-e.node].on {
					wt = falseVerdict * 50
				}
			}
			return wt
		}
		total := 0
		for _, e := range evs {
			total += weight(e)
		}
		if total == 0 {
			w.now += simQuantum
			continue
		}
		x := rng.IntN(total)
		var ev simEvent
		for _, e := range evs {
			if x -= weight(e); x < 0 {
				ev = e
				break
			}
		}
		if ev.kind == evTick {
			// Random gaps: the machine must not depend on regular ticks.
			w.now += time.Duration(rng.IntN(3)) * simQuantum / 2
		}
		if err := w.apply(ev); err != nil {
			return w, err
		}
	}
	return w, w.settle()
}

// explorer walks every interleaving of a small scenario.
type explorer struct {
	root     *world
	seen     map[uint64]struct{}
	path     []simEvent
	states   int
	leaves   int
	maxDepth int
	err      error
}

func (x *explorer) run(w *world) error {
	x.root = w.clone()
	x.explore(w, 0)
	return x.err
}

// describePath replays the path from the root to describe each event.
func (x *explorer) describePath() string {
	w := x.root.clone()
	var lines []string
	for _, ev := range x.path {
		lines = append(lines, w.describe(ev))
		if w.apply(ev) != nil {
			break
		}
	}
	return strings.Join(lines, "\n  ")
}

func (x *explorer) explore(w *world, depth int) {
	if x.err != nil {
		return
	}
	fp := w.fingerprint()
	if _, ok := x.seen[fp]; ok {
		return
	}
	x.seen[fp] = struct{}{}
	x.states++
	evs := w.enabled()
	if len(evs) == 0 || depth >= x.maxDepth {
		x.leaves++
		c := w.clone()
		c.quiet = false
		if err := c.settle(); err != nil {
			x.err = fmt.Errorf("settling after\n  %s\nfailed: %v\nsettle trace:\n  %s", x.describePath(), err, strings.Join(c.trace, "\n  "))
		}
		return
	}
	for _, ev := range evs {
		c := w.clone()
		c.quiet = true
		x.path = append(x.path, ev)
		if err := c.apply(ev); err != nil {
			x.err = fmt.Errorf("%v after:\n  %s", err, x.describePath())
			return
		}
		x.explore(c, depth+1)
		x.path = x.path[:len(x.path)-1]
		if x.err != nil {
			return
		}
	}
}
