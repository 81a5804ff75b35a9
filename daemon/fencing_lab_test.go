package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/admin"
	"github.com/tandem-ha/tandem/testenv"
)

// The fencing tests: a node that freezes, a fence agent that fails, a node
// that loses the disk, and both nodes starting at once. The observer runs
// through each and fails the test on any instant with two actives.

// flakyAgent makes each node fence through a wrapper of the lab's power
// switch that fails while /etc/tandem/fence-broken exists on the node that
// runs it, as an unreachable IPMI interface would.
func (p *pair) flakyAgent() {
	p.t.Helper()
	const wrapper = "/etc/tandem/fence_flaky"
	cfg := strings.ReplaceAll(p.config(), p.lab.FenceAgent(), wrapper)
	script := fmt.Sprintf("#!/bin/sh\nif [ -e /etc/tandem/fence-broken ]; then\n  echo 'Failed: Unable to connect/login to fencing device' >&2\n  exit 1\nfi\nexec %s \"$@\"\n", p.lab.FenceAgent())
	for _, n := range []string{"a", "b"} {
		p.writeConfig(n, cfg)
		if err := os.WriteFile(filepath.Join(p.lab.Node(n).Dir, "etc", "fence_flaky"), []byte(script), 0o755); err != nil {
			p.t.Fatal(err)
		}
	}
}

// breakAgent makes the fence agent on node fail, or work again.
func (p *pair) breakAgent(node string, broken bool) {
	p.t.Helper()
	flag := filepath.Join(p.lab.Node(node).Dir, "etc", "fence-broken")
	var err error
	if broken {
		err = os.WriteFile(flag, nil, 0o644)
	} else {
		err = os.Remove(flag)
	}
	if err != nil {
		p.t.Fatal(err)
	}
}

// lastFence is the node's last fencing as its status shows it.
func (p *pair) lastFence(node string) *admin.FenceReport {
	st, err := p.status(node)
	if err != nil {
		return nil
	}
	return st.LastFence
}

// waitServing waits until node is active, holds the floating address and
// the client reads through it.
func (p *pair) waitServing(node string, timeout time.Duration) {
	p.t.Helper()
	p.waitRole(node, admin.RoleActive, timeout)
	p.read(10 * time.Second)
	if h := p.holder(); h != node {
		p.t.Fatalf("the floating address is on %q, not %s", h, node)
	}
}

func TestFreezeActiveIsFencedAndTakenOver(t *testing.T) {
	p, active := startMediaPair(t, pairOptions{})
	survivor := other(active)
	if err := p.lab.Freeze(active); err != nil {
		t.Fatal(err)
	}
	p.waitServing(survivor, 20*time.Second)
	if f := p.lastFence(survivor); f == nil || f.Result != admin.FenceDone || f.Target != active || f.Method != p.lab.FenceAgent() {
		t.Fatalf("last fence on %s: %+v", survivor, f)
	}
	// The frozen node was switched off by the agent: there is nothing
	// left to thaw, and it serves nothing.
	if p.lab.Node(active).Powered() {
		t.Fatalf("%s still runs after it was fenced", active)
	}
	p.read(5 * time.Second)
}

func TestFreezeWithFailingAgentFencesThroughTheDisk(t *testing.T) {
	// The lab's watchdogs wait 2 s; the fence message counts as delivered
	// 4 s after it is written, and the peer's slot must be still for
	// lease (1 s) + watchdog (2 s) + two intervals.
	p := newMediaPairIn(t, pairOptions{}, testenv.Options{WatchdogTimeout: 2 * time.Second})
	p.flakyAgent()
	active := p.startBoth()
	p.waitLinks(allUp, 10*time.Second)
	survivor := other(active)
	p.breakAgent(survivor, true)
	frozen := time.Now()
	if err := p.lab.Freeze(active); err != nil {
		t.Fatal(err)
	}
	// The frozen node's watchdog, unfed, powers it off.
	p.waitFor(10*time.Second, active+"'s watchdog to fire", func() bool { return p.lab.WatchdogFired(active) > 0 })
	p.waitServing(survivor, 30*time.Second)
	took := time.Since(frozen)
	f := p.lastFence(survivor)
	if f == nil || f.Result != admin.FenceDone || f.Method != "disk" || !strings.Contains(f.Detail, "not acknowledged") {
		t.Fatalf("last fence on %s: %+v", survivor, f)
	}
	if took < 4*time.Second {
		t.Fatalf("took over %v after the freeze: before the fence message could count as delivered", took)
	}
	if p.lab.Node(active).Powered() {
		t.Fatalf("%s still runs after its watchdog fired", active)
	}
	// Powered on again, the node finds the fence message and stays out of
	// the service until an operator clears it.
	if err := p.lab.PowerOn(active); err != nil {
		t.Fatal(err)
	}
	p.start(active)
	p.waitFor(20*time.Second, active+" to report the waiting fence message", func() bool {
		st, err := p.status(active)
		return err == nil && st.Local() != nil && st.Local().Role == admin.RoleFailed && strings.Contains(st.Local().Reason, "haclient disk clear")
	})
	if out, err := p.haclient(active, "disk", "clear", p.lab.QuorumDevice(), active); err != nil {
		t.Fatalf("haclient disk clear: %v: %s", err, out)
	}
	p.waitRole(active, admin.RoleStandby, 20*time.Second)
	p.read(5 * time.Second)
}

func TestShortFreezeNobodyMoves(t *testing.T) {
	p, active := startMediaPair(t, pairOptions{})
	// Shorter than deadtime (500 ms) and the watchdog (5 s).
	if err := p.lab.Freeze(active); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	if err := p.lab.Thaw(active); err != nil {
		t.Fatal(err)
	}
	p.holdStill(active, 2*time.Second)
	if n := p.lab.WatchdogFired(active); n != 0 {
		t.Fatalf("%s's watchdog fired %d times", active, n)
	}
	p.read(5 * time.Second)
}

func TestFenceAgentFailsThenIsFixed(t *testing.T) {
	p := newPair(t, pairOptions{})
	p.flakyAgent()
	active := p.startBoth()
	survivor := other(active)
	p.breakAgent(survivor, true)
	if err := p.lab.PowerOff(active); err != nil {
		t.Fatal(err)
	}
	// Fencing fails, is reported and retried; nothing is taken meanwhile.
	p.waitFor(15*time.Second, "status to show the failed fencing", func() bool {
		st, err := p.status(survivor)
		return err == nil && st.LastFence != nil && st.LastFence.Error != "" && st.Local().Role == admin.RoleFencing
	})
	// Each attempt is the agent's own three tries; wait for a second
	// failed attempt, checking all along that nothing was taken.
	p.waitFor(30*time.Second, "a second failed fencing attempt", func() bool {
		if r := p.role(survivor); r != admin.RoleFencing {
			t.Fatalf("%s is %s while its fence agent fails", survivor, r)
		}
		if h := p.holder(); h != "" {
			t.Fatalf("%s holds the floating address while fencing fails", h)
		}
		return p.countLog(survivor, "fencing", "failed", "retrying") >= 2
	})
	p.breakAgent(survivor, false)
	p.waitServing(survivor, 40*time.Second)
	if f := p.lastFence(survivor); f == nil || f.Result != admin.FenceDone {
		t.Fatalf("last fence after the fix: %+v", f)
	}
}

func TestDiskLostOnActiveMovesTheService(t *testing.T) {
	p, active := startMediaPair(t, pairOptions{})
	survivor := other(active)
	if err := p.lab.FailDisk(active); err != nil {
		t.Fatal(err)
	}
	p.waitServing(survivor, 20*time.Second)
	if f := p.lastFence(survivor); f != nil {
		t.Fatalf("%s fenced %s: the service should have been handed over", survivor, f.Target)
	}
	st, err := p.status(active)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.Local().Role; r == admin.RoleActive || r == admin.RoleStarting {
		t.Fatalf("%s without its disk is %s", active, r)
	}
	// Without the disk it may not take the service back.
	if out, err := p.haclient(active, "takeover"); err == nil {
		t.Fatalf("%s took the service over without its disk: %s", active, out)
	}
	if err := p.lab.RestoreDisk(active); err != nil {
		t.Fatal(err)
	}
	p.waitRole(active, admin.RoleStandby, 10*time.Second)
}

func TestSimultaneousStartOneServes(t *testing.T) {
	p := newMediaPair(t, pairOptions{})
	const rounds = 6
	for i := range rounds {
		// Every other round the nodes can reach each other only through
		// the quorum disk: the election goes through it.
		diskOnly := i%2 == 1
		if diskOnly {
			for _, l := range []testenv.Link{testenv.LinkHeartbeat, testenv.LinkSerial} {
				if err := p.lab.Cut("a", l); err != nil {
					t.Fatal(err)
				}
			}
		}
		p.start("a")
		p.start("b")
		active := p.waitActive(30 * time.Second)
		p.holdStill(active, time.Second)
		if h := p.holder(); h != active {
			t.Fatalf("round %d: %s is active but the address is on %q", i, active, h)
		}
		p.stop("a")
		p.stop("b")
		// The last to stop may have fenced the first, which left: power
		// it on again for the next round.
		time.Sleep(time.Second)
		for _, n := range []string{"a", "b"} {
			if !p.lab.Node(n).Powered() {
				if err := p.lab.PowerOn(n); err != nil {
					t.Fatal(err)
				}
			}
		}
		if diskOnly {
			for _, l := range []testenv.Link{testenv.LinkHeartbeat, testenv.LinkSerial} {
				if err := p.lab.Restore("a", l); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
