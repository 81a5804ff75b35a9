package failover

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func newMachine(t *testing.T, f func(*Config)) *Machine {
	t.Helper()
	cfg := Config{Node: "alpha", Peer: "beta", Incarnation: 1}
	if f != nil {
		f(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func find[T Action](acts []Action) (T, bool) {
	for _, a := range acts {
		if x, ok := a.(T); ok {
			return x, true
		}
	}
	var zero T
	return zero, false
}

func has[T Action](acts []Action) bool {
	_, ok := find[T](acts)
	return ok
}

func noticeWith(acts []Action, text string) bool {
	for _, a := range acts {
		if n, ok := a.(Notice); ok && strings.Contains(n.Text, text) {
			return true
		}
	}
	return false
}

// alone starts m at time 0 with its start-up stop done, the peer never heard.
func alone(t *testing.T, m *Machine) {
	t.Helper()
	if acts := m.Step(0, Tick{}); !has[StopGroup](acts) {
		t.Fatalf("no start-up stop: %v", acts)
	}
	m.Step(0, ResourceResult{Op: OpStop})
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Peer: "b", Incarnation: 1},
		{Node: "a", Incarnation: 1},
		{Node: "a", Peer: "a", Incarnation: 1},
		{Node: "a", Peer: "b"},
		{Node: "a", Peer: "b", Incarnation: 1, PreferredNode: "c"},
		{Node: "a", Peer: "b", Incarnation: 1, InitDead: -time.Second},
		{Node: "a", Peer: "b", Incarnation: 1, FenceRetryMin: time.Minute, FenceRetryMax: time.Second},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
	m := newMachine(t, nil)
	if m.cfg.InitDead != DefaultInitDead || m.cfg.RestartLimit != DefaultRestartLimit || m.cfg.FenceRetryMax != DefaultFenceRetryMax {
		t.Errorf("defaults not applied: %+v", m.cfg)
	}
}

func TestInitDeadFenceThenStart(t *testing.T) {
	m := newMachine(t, nil)
	alone(t, m)
	if acts := m.Step(29*time.Second, Tick{}); has[Fence](acts) || has[StartGroup](acts) {
		t.Fatalf("acted before initdead: %v", acts)
	}
	if st := m.Status(); st.Role != RoleUnknown {
		t.Errorf("role before initdead %v", st.Role)
	}
	acts := m.Step(30*time.Second, Tick{})
	if f, ok := find[Fence](acts); !ok || f.Node != "beta" {
		t.Fatalf("no fence at initdead: %v", acts)
	}
	if has[StartGroup](acts) {
		t.Fatal("started before the fence was confirmed")
	}
	acts = m.Step(31*time.Second, FenceResult{Node: "beta", Off: true})
	if !has[StartGroup](acts) {
		t.Fatalf("no start after the fence: %v", acts)
	}
	m.Step(32*time.Second, ResourceResult{Op: OpStart})
	if st := m.Status(); st.Role != RoleActive || st.Holder != "alpha" {
		t.Errorf("status %+v", st)
	}
}

func TestFenceFailureBacksOff(t *testing.T) {
	m := newMachine(t, nil)
	alone(t, m)
	now := 30 * time.Second
	if !has[Fence](m.Step(now, Tick{})) {
		t.Fatal("no fence")
	}
	var waits []time.Duration
	for range 8 {
		acts := m.Step(now, FenceResult{Node: "beta", Reason: "timeout"})
		if has[StartGroup](acts) {
			t.Fatal("started after a failed fence")
		}
		if !noticeWith(acts, "fencing beta failed: timeout; retrying in") {
			t.Fatalf("failure not reported: %v", acts)
		}
		// Step in 100 ms ticks until the next attempt.
		start := now
		for {
			now += 100 * time.Millisecond
			if has[Fence](m.Step(now, Tick{})) {
				break
			}
		}
		waits = append(waits, now-start)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
	for i := range want {
		if waits[i] != want[i]*time.Second {
			t.Fatalf("waits %v, want %v seconds", waits, want)
		}
	}
	if st := m.Status(); st.Role != RoleFencing || st.Fencing.Attempts != 9 || st.Fencing.LastError != "timeout" {
		t.Errorf("status %+v", st)
	}
}

func TestUnsafeNoFencing(t *testing.T) {
	m := newMachine(t, func(c *Config) { c.UnsafeNoFencing = true })
	acts := m.Step(0, Tick{})
	if !noticeWith(acts, "shared disks are not protected") {
		t.Errorf("no start-up warning: %v", acts)
	}
	m.Step(0, ResourceResult{Op: OpStop})
	acts = m.Step(30*time.Second, Tick{})
	if has[Fence](acts) {
		t.Fatal("fenced without fencing")
	}
	if !noticeWith(acts, "not fencing beta (unsafe_no_fencing)") || !has[StartGroup](acts) {
		t.Fatalf("actions %v", acts)
	}
}

// active returns a machine that holds the service, started, with a live peer
// standing by (incarnation 5) that heard it.
func active(t *testing.T, f func(*Config)) *Machine {
	t.Helper()
	m := newMachine(t, f)
	alone(t, m)
	m.Step(30*time.Second, Tick{})
	m.Step(30*time.Second, FenceResult{Node: "beta", Off: true})
	m.Step(30*time.Second, ResourceResult{Op: OpStart})
	m.Step(31*time.Second, PeerAlive{})
	m.Step(31*time.Second, PeerMessage{Message: Report{Header: Header{From: 5, To: 1}, Seq: 1, Epoch: m.epoch, Role: RoleStandby, Quiescent: true, Eligible: true}})
	if st := m.Status(); st.Role != RoleActive {
		t.Fatalf("not active: %+v", st)
	}
	return m
}

func TestMonitorRestartsThenMoves(t *testing.T) {
	m := active(t, func(c *Config) { c.RestartLimit = 2; c.RestartWindow = time.Minute })
	now := 40 * time.Second
	fail := ResourceResult{Op: OpMonitor, Resource: "smb", Err: errors.New("no NEGOTIATE answer")}
	for i := range 2 {
		acts := m.Step(now, fail)
		if r, ok := find[RestartResource](acts); !ok || r.Name != "smb" {
			t.Fatalf("failure %d: no restart: %v", i, acts)
		}
		m.Step(now, ResourceResult{Op: OpRestart, Resource: "smb"})
		now += time.Second
	}
	acts := m.Step(now, fail)
	if has[RestartResource](acts) {
		t.Fatal("restarted past the limit")
	}
	if s, ok := find[StopGroup](acts); !ok || s.Force {
		t.Fatalf("no stop past the limit: %v", acts)
	}
	acts = m.Step(now, ResourceResult{Op: OpStop})
	send, ok := find[Send](acts)
	if !ok {
		t.Fatalf("no release after the stop: %v", acts)
	}
	rel, ok := send.Message.(Release)
	if !ok || rel.To != 5 {
		t.Fatalf("sent %+v", send.Message)
	}
	st := m.Status()
	if st.Holder != "" || len(st.Failures) != 1 || !st.Failures[0].Failed || st.Failures[0].Count != 3 {
		t.Errorf("status %+v", st)
	}
	// Until confirmed, the release is repeated.
	acts = m.Step(now+time.Second, Tick{})
	if s, ok := find[Send](acts); !ok || s.Message.Type() != TypeRelease {
		t.Errorf("release not repeated: %v", acts)
	}
	m.Step(now+time.Second, PeerMessage{Message: ReleaseAck{Header: Header{From: 5, To: 1}, Epoch: rel.Epoch}})
	if st := m.Status(); st.Role != RoleStandby {
		t.Errorf("after the ack: %+v", st)
	}
	// The window forgets old restarts.
	m2 := active(t, func(c *Config) { c.RestartLimit = 1; c.RestartWindow = time.Minute })
	m2.Step(40*time.Second, fail)
	m2.Step(40*time.Second, ResourceResult{Op: OpRestart, Resource: "smb"})
	if !has[RestartResource](m2.Step(101*time.Second, fail)) {
		t.Error("a failure outside the window was not restarted in place")
	}
}

func TestMonitorFailureWithoutPeerStaysFailed(t *testing.T) {
	m := active(t, func(c *Config) { c.RestartLimit = -1 })
	m.Step(40*time.Second, PeerDead{})
	acts := m.Step(40*time.Second, ResourceResult{Op: OpMonitor, Resource: "smb", Err: errors.New("down")})
	if has[RestartResource](acts) || !has[StopGroup](acts) {
		t.Fatalf("actions %v", acts)
	}
	acts = m.Step(41*time.Second, ResourceResult{Op: OpStop})
	if has[Send](acts) && func() bool { s, _ := find[Send](acts); return s.Message.Type() == TypeRelease }() {
		t.Fatal("released to a dead peer")
	}
	if st := m.Status(); st.Role != RoleFailed || st.Holder != "alpha" {
		t.Fatalf("status %+v", st)
	}
	acts = m.Step(42*time.Second, AdminRequest{Command: AdminCleanup, Resource: "smb"})
	if r, ok := find[AdminReply](acts); !ok || !r.Accepted {
		t.Fatalf("cleanup: %v", acts)
	}
	if !has[StartGroup](acts) {
		t.Fatalf("no start after cleanup: %v", acts)
	}
}

func TestFailedStopEscalates(t *testing.T) {
	m := active(t, nil)
	m.Step(40*time.Second, AdminRequest{Command: AdminStandby})
	acts := m.Step(41*time.Second, ResourceResult{Op: OpStop, Resource: "data", Err: errors.New("target is busy")})
	if s, ok := find[StopGroup](acts); !ok || !s.Force {
		t.Fatalf("no forced stop: %v", acts)
	}
	if has[Send](acts) && m.Status().Holder != "alpha" {
		t.Fatal("gave the service up with the group running")
	}
	acts = m.Step(42*time.Second, ResourceResult{Op: OpStop, Resource: "data", Err: errors.New("still busy")})
	if _, ok := find[SelfFence](acts); !ok {
		t.Fatalf("no self-fence: %v", acts)
	}
	st := m.Status()
	if st.Role != RoleFailed || st.Holder != "alpha" {
		t.Errorf("status %+v", st)
	}
	// Nothing more happens.
	for _, ev := range []Event{Tick{}, PeerDead{}, ResourceResult{Op: OpStop}, AdminRequest{Command: AdminTakeover}} {
		for _, a := range m.Step(50*time.Second, ev) {
			switch a.(type) {
			case StartGroup, StopGroup, Fence, RestartResource:
				t.Fatalf("acted after self-fencing: %v", a)
			}
		}
	}
}

func TestMaintenanceTakesNoAction(t *testing.T) {
	m := active(t, nil)
	if r, _ := find[AdminReply](m.Step(40*time.Second, AdminRequest{Command: AdminMaintenanceOn})); !r.Accepted {
		t.Fatal("maintenance refused")
	}
	acts := m.Step(41*time.Second, ResourceResult{Op: OpMonitor, Resource: "smb", Err: errors.New("down")})
	if has[RestartResource](acts) || has[StopGroup](acts) || !noticeWith(acts, "maintenance mode: no action") {
		t.Fatalf("acted in maintenance: %v", acts)
	}
	if r, _ := find[AdminReply](m.Step(41*time.Second, AdminRequest{Command: AdminStandby})); r.Accepted {
		t.Fatal("moved in maintenance")
	}
	if st := m.Status(); st.Failures[0].Count != 1 || st.Failures[0].Failed {
		t.Errorf("failure not recorded as such: %+v", st.Failures)
	}

	// A standby node in maintenance does not fence a dead peer, until
	// maintenance ends.
	s := newMachine(t, nil)
	alone(t, s)
	s.Step(time.Second, AdminRequest{Command: AdminMaintenanceOn})
	if acts := s.Step(60*time.Second, Tick{}); has[Fence](acts) {
		t.Fatal("fenced in maintenance")
	}
	if acts := s.Step(61*time.Second, AdminRequest{Command: AdminMaintenanceOff}); !has[Fence](acts) {
		t.Fatalf("no fence after maintenance: %v", acts)
	}
}

func TestFencingCarriedThroughWhenPeerReturns(t *testing.T) {
	m := newMachine(t, nil)
	alone(t, m)
	m.Step(time.Second, PeerAlive{})
	m.Step(time.Second, PeerMessage{Message: Report{Header: Header{From: 5, To: 1}, Seq: 1, Epoch: 1, Role: RoleActive, Owner: true, Eligible: true}})
	if !has[Fence](m.Step(2*time.Second, PeerDead{})) {
		t.Fatal("no fence on peer death")
	}
	m.Step(3*time.Second, PeerAlive{})
	acts := m.Step(3*time.Second, FenceResult{Node: "beta", Reason: "timeout"})
	if has[StartGroup](acts) {
		t.Fatal("started on a failed fence")
	}
	if !has[Fence](m.Step(5*time.Second, Tick{})) {
		t.Fatal("fencing not retried after the peer came back")
	}
	if !has[StartGroup](m.Step(6*time.Second, FenceResult{Node: "beta", Off: true})) {
		t.Fatal("no takeover after the fence")
	}
	// Late words from the fenced run change nothing.
	m.Step(7*time.Second, ResourceResult{Op: OpStart})
	m.Step(7*time.Second, PeerMessage{Message: Report{Header: Header{From: 5, To: 1}, Seq: 9, Epoch: 1, Role: RoleActive, Owner: true, Eligible: true}})
	if st := m.Status(); st.Role != RoleActive || st.Holder != "alpha" {
		t.Errorf("status %+v", st)
	}
}

func TestAdminRepliesOnce(t *testing.T) {
	m := newMachine(t, nil)
	for _, cmd := range []AdminCommand{AdminStandby, AdminTakeover, AdminFailover, AdminMaintenanceOn, AdminMaintenanceOff, AdminCleanup, 99} {
		n := 0
		for _, a := range m.Step(0, AdminRequest{Command: cmd, Resource: "x"}) {
			if r, ok := a.(AdminReply); ok {
				n++
				if r.Command != cmd || r.Text == "" {
					t.Errorf("%v: reply %+v", cmd, r)
				}
			}
		}
		if n != 1 {
			t.Errorf("%v: %d replies", cmd, n)
		}
	}
}

func TestTimeNeverGoesBack(t *testing.T) {
	m := newMachine(t, func(c *Config) { c.InitDead = 10 * time.Second })
	alone(t, m)
	m.Step(9*time.Second, Tick{})
	if has[Fence](m.Step(time.Second, Tick{})) {
		t.Fatal("fenced on a clock that went back")
	}
	if !has[Fence](m.Step(10*time.Second, Tick{})) {
		t.Fatal("no fence at initdead")
	}
}

// TestPreferredNodeWins starts both nodes together and checks which one
// takes the service.
func TestPreferredNodeWins(t *testing.T) {
	for _, c := range []struct{ preferred, want string }{{"", "alpha"}, {"alpha", "alpha"}, {"beta", "beta"}} {
		w := newWorld(pairConfig(func(cfg *Config) { cfg.PreferredNode = c.preferred }), budget{powerOns: 2})
		for i := range 2 {
			if err := w.apply(simEvent{kind: evPowerOn, node: i}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.settle(); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if st := w.nodes[i].m.Status(); st.Holder != c.want {
				t.Errorf("preferred %q: %s sees holder %q, want %q", c.preferred, st.Node, st.Holder, c.want)
			}
		}
		for i := range 2 {
			if w.nodes[i].m.fence.attempts != 0 {
				t.Errorf("preferred %q: %s fenced at start-up", c.preferred, simNames[i])
			}
		}
	}
}
