package failover

import (
	"errors"
	"testing"
	"time"
)

// diskConfig is a pair with a quorum disk: lease 1 s, the peer's watchdog
// 1 s, disk interval 200 ms, so DiskWait is 2.4 s.
func diskConfig(c *Config) {
	c.Disk = true
	c.Lease = time.Second
	c.PeerWatchdog = time.Second
	c.DiskInterval = 200 * time.Millisecond
	c.InitDead = 3 * time.Second
}

// disk reports the disk as healthy at now: this node wrote its slot at
// now, read its mailbox, and saw the peer's counter last move at peer.
func disk(now, peer time.Duration) DiskStatus {
	return DiskStatus{Written: true, LastWrite: now, PeerRead: true, PeerMoved: peer, MailboxRead: true}
}

var errBusy = errors.New("target is busy")

func TestDiskConfigNeedsTiming(t *testing.T) {
	for _, c := range []Config{
		{Node: "a", Peer: "b", Incarnation: 1, Disk: true, PeerWatchdog: time.Second, DiskInterval: time.Second},
		{Node: "a", Peer: "b", Incarnation: 1, Disk: true, Lease: time.Second, DiskInterval: time.Second},
		{Node: "a", Peer: "b", Incarnation: 1, Disk: true, Lease: time.Second, PeerWatchdog: time.Second},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
	c := Config{Lease: time.Second, PeerWatchdog: 5 * time.Second, DiskInterval: 200 * time.Millisecond}
	if got, want := c.DiskWait(), 6400*time.Millisecond; got != want {
		t.Errorf("DiskWait = %v, want %v", got, want)
	}
}

// fencedAlone brings m, alone, to fencing the peer at initdead (at), the
// peer's slot last moving at 1 s, and feeds it r: it returns the actions
// of that step.
func fencedAlone(t *testing.T, m *Machine, at time.Duration, r FenceResult) []Action {
	t.Helper()
	alone(t, m)
	m.Step(at-time.Millisecond, disk(at-time.Millisecond, time.Second))
	acts := m.Step(at, Tick{})
	if !has[Fence](acts) {
		t.Fatalf("no fence at initdead: %v", acts)
	}
	r.Node = "beta"
	return m.Step(at, r)
}

func TestDiskFenceWithoutAckWaitsOutTheLease(t *testing.T) {
	m := newMachine(t, diskConfig)
	// The peer's counter last moved at 1 s; the fence message is
	// delivered (the wait ran out) at 3 s.
	acts := fencedAlone(t, m, 3*time.Second, FenceResult{Off: true, Disk: true})
	if has[StartGroup](acts) {
		t.Fatalf("took over on an unacknowledged fence message at once: %v", acts)
	}
	if acts := m.Step(3399*time.Millisecond, disk(3399*time.Millisecond, time.Second)); has[StartGroup](acts) {
		t.Fatalf("took over before the slot was still for DiskWait (2.4 s): %v", acts)
	}
	acts = m.Step(3400*time.Millisecond, disk(3400*time.Millisecond, time.Second))
	if !has[StartGroup](acts) {
		t.Fatalf("did not take over once the slot was still for 2.4 s: %v", acts)
	}
}

func TestDiskFenceWaitsWhileThePeerSlotMoves(t *testing.T) {
	m := newMachine(t, diskConfig)
	acts := fencedAlone(t, m, 3*time.Second, FenceResult{Off: true, Disk: true})
	if has[StartGroup](acts) {
		t.Fatal("took over at once")
	}
	// The peer's counter moved at 2.9 s: the wait runs from there.
	for _, now := range []time.Duration{3100 * time.Millisecond, 4 * time.Second, 5200 * time.Millisecond} {
		if acts := m.Step(now, disk(now, 2900*time.Millisecond)); has[StartGroup](acts) {
			t.Fatalf("took over at %v, %v after the peer's slot last moved", now, now-2900*time.Millisecond)
		}
		if st := m.Status(); st.Fencing.Waiting == "" {
			t.Fatalf("status at %v does not say what is awaited: %+v", now, st.Fencing)
		}
	}
	if acts := m.Step(5400*time.Millisecond, disk(5400*time.Millisecond, 2900*time.Millisecond)); !has[StartGroup](acts) {
		t.Fatalf("did not take over 2.5 s after the last movement: %v", acts)
	}
}

func TestDiskFenceAcknowledgedIsAtOnce(t *testing.T) {
	m := newMachine(t, diskConfig)
	acts := fencedAlone(t, m, 3*time.Second, FenceResult{Off: true, Disk: true, Acknowledged: true})
	if !has[StartGroup](acts) {
		t.Fatalf("did not take over on an acknowledged fence message: %v", acts)
	}
}

func TestAgentFenceIsAtOnceWithDisk(t *testing.T) {
	m := newMachine(t, diskConfig)
	acts := fencedAlone(t, m, 3*time.Second, FenceResult{Off: true})
	if !has[StartGroup](acts) {
		t.Fatalf("did not take over when the agent confirmed the peer off: %v", acts)
	}
}

func TestNoDiskWriteNoService(t *testing.T) {
	m := newMachine(t, diskConfig)
	alone(t, m)
	if !has[Fence](m.Step(3*time.Second, Tick{})) {
		t.Fatal("no fence at initdead")
	}
	// Fenced by an agent, but this node never wrote its slot.
	if acts := m.Step(3*time.Second, FenceResult{Node: "beta", Off: true}); has[StartGroup](acts) || !noticeWith(acts, "not taking the service yet") {
		t.Fatalf("took the service without ever writing the disk, or did not say why not: %v", acts)
	}
	// Written once, long ago: still not.
	if acts := m.Step(5*time.Second, DiskStatus{Written: true, LastWrite: 2 * time.Second, MailboxRead: true}); has[StartGroup](acts) {
		t.Fatalf("took the service with a lease that ran out: %v", acts)
	}
	// Written but the mailbox never read: not yet.
	if acts := m.Step(5*time.Second, DiskStatus{Written: true, LastWrite: 5 * time.Second}); has[StartGroup](acts) {
		t.Fatalf("took the service before reading its mailbox: %v", acts)
	}
	if acts := m.Step(5*time.Second, disk(5*time.Second, 0)); !has[StartGroup](acts) {
		t.Fatalf("did not take the service once the disk works: %v", acts)
	}
}

// activeOnDisk makes m the holder with its group started, at now.
func activeOnDisk(t *testing.T, m *Machine, now time.Duration) {
	t.Helper()
	fencedAlone(t, m, now, FenceResult{Off: true})
	if st := m.Status(); st.Holder != "alpha" {
		t.Fatalf("not the holder: %+v", st)
	}
	m.Step(now, ResourceResult{Op: OpStart})
	if st := m.Status(); st.Role != RoleActive {
		t.Fatalf("not active: %+v", st)
	}
}

func TestLeaseLostStopsTheGroup(t *testing.T) {
	m := newMachine(t, diskConfig)
	activeOnDisk(t, m, 3*time.Second)
	// Renewed at 3 s; at 3.9 s the lease (1 s) still holds.
	if acts := m.Step(3900*time.Millisecond, Tick{}); has[StopGroup](acts) {
		t.Fatalf("stopped within the lease: %v", acts)
	}
	acts := m.Step(4100*time.Millisecond, Tick{})
	if !has[StopGroup](acts) || !noticeWith(acts, "could not renew") {
		t.Fatalf("did not stop the group when the lease ran out: %v", acts)
	}
	m.Step(4200*time.Millisecond, ResourceResult{Op: OpStop})
	st := m.Status()
	if !st.LeaseLost || st.Role != RoleFailed {
		t.Fatalf("status does not show the lost lease: %+v", st)
	}
	if acts := m.Step(4300*time.Millisecond, Tick{}); has[StartGroup](acts) {
		t.Fatalf("started again without the disk: %v", acts)
	}
	// The disk comes back: the node still holds the service and starts it.
	if acts := m.Step(5*time.Second, disk(5*time.Second, 0)); !has[StartGroup](acts) {
		t.Fatalf("did not start again once the slot was renewed: %v", acts)
	}
	if m.Status().LeaseLost {
		t.Fatal("lease still shown lost")
	}
}

func TestLeaseLostHandsOverToALivePeer(t *testing.T) {
	m := newMachine(t, diskConfig)
	activeOnDisk(t, m, 3*time.Second)
	// The peer comes back (a new run), eligible and quiescent.
	m.Step(3100*time.Millisecond, PeerAlive{})
	m.Step(3100*time.Millisecond, PeerMessage{Message: Report{Header: Header{From: 9, To: 1}, Seq: 1, Epoch: m.epoch, Role: RoleStandby, Quiescent: true, Eligible: true}})
	acts := m.Step(4100*time.Millisecond, Tick{})
	if !has[StopGroup](acts) {
		t.Fatalf("did not stop: %v", acts)
	}
	acts = m.Step(4200*time.Millisecond, ResourceResult{Op: OpStop})
	var rel bool
	for _, a := range acts {
		if s, ok := a.(Send); ok {
			if _, ok := s.Message.(Release); ok {
				rel = true
			}
		}
	}
	if !rel {
		t.Fatalf("did not release the service to the live peer: %v", acts)
	}
}

func TestReportNotEligibleWithoutDisk(t *testing.T) {
	m := newMachine(t, diskConfig)
	alone(t, m)
	acts := m.Step(time.Second, PeerAlive{})
	r, ok := lastReport(acts)
	if !ok || r.Eligible {
		t.Fatalf("a node that never wrote the disk reports itself eligible: %+v", r)
	}
	acts = m.Step(2*time.Second, disk(2*time.Second, 2*time.Second))
	if r, ok := lastReport(acts); !ok || !r.Eligible {
		t.Fatalf("a node with a working disk is not eligible: %+v %v", r, acts)
	}
}

func lastReport(acts []Action) (Report, bool) {
	var r Report
	var ok bool
	for _, a := range acts {
		if s, isSend := a.(Send); isSend {
			if x, isReport := s.Message.(Report); isReport {
				r, ok = x, true
			}
		}
	}
	return r, ok
}

func TestFenceMessageWhileActive(t *testing.T) {
	m := newMachine(t, diskConfig)
	activeOnDisk(t, m, 3*time.Second)
	acts := m.Step(3100*time.Millisecond, FenceMessage{From: "beta", Kind: "reset"})
	if !has[StopGroup](acts) {
		t.Fatalf("did not stop the group at once: %v", acts)
	}
	if has[ObeyFence](acts) {
		t.Fatal("obeyed before the group was stopped")
	}
	// Nothing else happens meanwhile, not even a start after a disk report.
	if acts := m.Step(3200*time.Millisecond, disk(3200*time.Millisecond, 0)); has[StartGroup](acts) || has[ObeyFence](acts) {
		t.Fatalf("acted while stopping: %v", acts)
	}
	acts = m.Step(3300*time.Millisecond, ResourceResult{Op: OpStop})
	o, ok := find[ObeyFence](acts)
	if !ok || o.From != "beta" {
		t.Fatalf("did not obey once stopped: %v", acts)
	}
	if st := m.Status(); st.Role != RoleFailed || st.Holder == "alpha" || st.FenceMessage == "" {
		t.Fatalf("status after obeying: %+v", st)
	}
	if acts := m.Step(10*time.Second, disk(10*time.Second, 0)); len(acts) > 0 && (has[StartGroup](acts) || has[Fence](acts)) {
		t.Fatalf("acted after obeying: %v", acts)
	}
}

func TestFenceMessageWhenStopFailsSelfFences(t *testing.T) {
	m := newMachine(t, diskConfig)
	activeOnDisk(t, m, 3*time.Second)
	m.Step(3100*time.Millisecond, FenceMessage{From: "beta", Kind: "off"})
	acts := m.Step(3200*time.Millisecond, ResourceResult{Op: OpStop, Err: errBusy})
	if s, ok := find[StopGroup](acts); !ok || !s.Force {
		t.Fatalf("no forced stop: %v", acts)
	}
	if acts := m.Step(3300*time.Millisecond, ResourceResult{Op: OpStop, Err: errBusy}); !has[SelfFence](acts) {
		t.Fatalf("no self-fence: %v", acts)
	}
}

func TestFenceMessageAtStartBlocksUntilCleared(t *testing.T) {
	m := newMachine(t, diskConfig)
	alone(t, m)
	m.Step(100*time.Millisecond, FenceMessage{From: "beta", Kind: "reset", AtStart: true})
	// initdead passes with the peer silent: no fencing, no service.
	for _, now := range []time.Duration{3 * time.Second, 10 * time.Second} {
		acts := m.Step(now, disk(now, 0))
		if has[Fence](acts) || has[StartGroup](acts) || has[ObeyFence](acts) {
			t.Fatalf("acted at %v with a fence message waiting: %v", now, acts)
		}
	}
	if st := m.Status(); st.Role != RoleFailed || st.FenceMessage == "" {
		t.Fatalf("status does not show the waiting message: %+v", st)
	}
	acts := m.Step(11*time.Second, FenceMessageCleared{})
	acts = append(acts, m.Step(11*time.Second, disk(11*time.Second, 0))...)
	if !has[Fence](acts) {
		t.Fatalf("did not fence the silent peer once cleared: %v", acts)
	}
}

// TestFenceDelayOnlyThePreferredFencesAtOnce: when the two lose each
// other while both live, the preferred node fences at once and the other
// only after fence_delay, by which time the preferred node's fencing has
// switched it off.
func TestFenceDelayOnlyThePreferredFencesAtOnce(t *testing.T) {
	delay := func(c *Config) { c.PreferredNode = "alpha"; c.FenceDelay = 2 * time.Second; c.InitDead = time.Second }
	alpha := newMachine(t, delay)
	beta := newMachine(t, func(c *Config) { delay(c); c.Node, c.Peer = "beta", "alpha" })
	for _, m := range []*Machine{alpha, beta} {
		alone(t, m)
		m.Step(500*time.Millisecond, PeerAlive{})
	}
	if acts := alpha.Step(5*time.Second, PeerDead{}); !has[Fence](acts) {
		t.Fatalf("the preferred node did not fence at once: %v", acts)
	}
	if acts := beta.Step(5*time.Second, PeerDead{}); has[Fence](acts) {
		t.Fatalf("the other node fenced at once: %v", acts)
	}
	if acts := beta.Step(6900*time.Millisecond, Tick{}); has[Fence](acts) {
		t.Fatalf("the other node fenced within fence_delay: %v", acts)
	}
	if acts := beta.Step(7*time.Second, Tick{}); !has[Fence](acts) {
		t.Fatalf("the other node never fenced after fence_delay: %v", acts)
	}
}

func TestFenceMessageWhileActiveCannotBeCleared(t *testing.T) {
	m := newMachine(t, diskConfig)
	activeOnDisk(t, m, 3*time.Second)
	m.Step(3100*time.Millisecond, FenceMessage{From: "beta", Kind: "reset"})
	m.Step(3200*time.Millisecond, FenceMessageCleared{})
	if acts := m.Step(3300*time.Millisecond, ResourceResult{Op: OpStop}); !has[ObeyFence](acts) {
		t.Fatalf("a cleared mailbox stopped the node from obeying the message it had: %v", acts)
	}
}
