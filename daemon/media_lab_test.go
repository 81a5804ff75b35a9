package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/admin"
	"github.com/tandem-ha/tandem/testenv"
)

// The media tests run the pair with all three heartbeat media: the
// heartbeat LAN, the serial cable and the quorum disk. The peer is dead only
// when it is silent on every one; losing some is a warning, never a
// failover.

// startMediaPair is newMediaPair with both daemons started and every
// medium up; it returns the active node.
func startMediaPair(t testing.TB, o pairOptions) (*pair, string) {
	t.Helper()
	p := newMediaPair(t, o)
	active := p.startBoth()
	p.waitLinks(allUp, 10*time.Second)
	return p, active
}

func newMediaPair(t testing.TB, o pairOptions) *pair {
	t.Helper()
	return newMediaPairIn(t, o, testenv.Options{})
}

// newMediaPairIn is newMediaPair in a lab built with the given options.
func newMediaPairIn(t testing.TB, o pairOptions, lo testenv.Options) *pair {
	t.Helper()
	o.Serial, o.Disk = true, true
	p := newPairIn(t, o, lo)
	if out, err := p.haclient("a", "disk", "init", p.lab.QuorumDevice()); err != nil {
		t.Fatalf("haclient disk init: %v: %s", err, out)
	}
	return p
}

// links is how a node sees the peer on each medium.
func (p *pair) links(node string) map[string]admin.Link {
	st, err := p.status(node)
	if err != nil || st.Peer() == nil {
		return nil
	}
	out := map[string]admin.Link{}
	for _, l := range st.Peer().Links {
		out[l.Medium] = l
	}
	return out
}

// waitLinks waits until both nodes see the media in the given states.
func (p *pair) waitLinks(want map[string]admin.LinkState, timeout time.Duration) {
	p.t.Helper()
	p.waitFor(timeout, "media "+describe(want)+" on both nodes", func() bool {
		for _, n := range []string{"a", "b"} {
			have := p.links(n)
			for m, st := range want {
				if have[m].State != st {
					return false
				}
			}
		}
		return true
	})
}

func describe(m map[string]admin.LinkState) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+" "+string(v))
	}
	return strings.Join(parts, ", ")
}

var allUp = map[string]admin.LinkState{"lan": admin.LinkUp, "serial": admin.LinkUp, "disk": admin.LinkUp}

// holdStill checks for a while that the roles stay as they are and nobody
// fences anybody.
func (p *pair) holdStill(active string, d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ra, rb := p.role(active), p.role(other(active)); ra != admin.RoleActive || rb != admin.RoleStandby {
			p.t.Fatalf("the service moved: %s is %s, %s is %s", active, ra, other(active), rb)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, n := range []string{"a", "b"} {
		if st, err := p.status(n); err == nil && st.LastFence != nil {
			p.t.Fatalf("%s fenced %s while a medium still carried heartbeats", n, st.LastFence.Target)
		}
		if !p.lab.Node(n).Powered() {
			p.t.Fatalf("%s was powered off", n)
		}
	}
}

// countLog counts the log lines of a node that contain every one of texts.
func (p *pair) countLog(node string, texts ...string) int {
	data, _ := os.ReadFile(p.logPath(node))
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		all := true
		for _, t := range texts {
			all = all && strings.Contains(line, t)
		}
		if all {
			n++
		}
	}
	return n
}

func TestCutHeartbeatLANNobodyMoves(t *testing.T) {
	p, active := startMediaPair(t, pairOptions{})

	if err := p.lab.Cut("a", testenv.LinkHeartbeat); err != nil {
		t.Fatal(err)
	}
	p.waitLinks(map[string]admin.LinkState{"lan": admin.LinkDown, "serial": admin.LinkUp, "disk": admin.LinkUp}, 10*time.Second)
	p.holdStill(active, 2*time.Second)
	p.read(10 * time.Second)

	if err := p.lab.Restore("a", testenv.LinkHeartbeat); err != nil {
		t.Fatal(err)
	}
	p.waitLinks(allUp, 10*time.Second)
	// Back without flapping: one "down" and one "up" per node for the LAN.
	time.Sleep(time.Second)
	for _, n := range []string{"a", "b"} {
		if down := p.countLog(n, "medium down", "medium=lan"); down != 1 {
			t.Errorf("%s logged the LAN going down %d times, want 1", n, down)
		}
	}
	p.holdStill(active, 500*time.Millisecond)
}

func TestCutLANAndSerialDiskCarriesLiveness(t *testing.T) {
	p, active := startMediaPair(t, pairOptions{})
	if err := p.lab.Cut("a", testenv.LinkHeartbeat); err != nil {
		t.Fatal(err)
	}
	if err := p.lab.Cut("a", testenv.LinkSerial); err != nil {
		t.Fatal(err)
	}
	p.waitLinks(map[string]admin.LinkState{"lan": admin.LinkDown, "serial": admin.LinkDown, "disk": admin.LinkUp}, 10*time.Second)
	p.holdStill(active, 3*time.Second)
	p.read(10 * time.Second)
	for _, l := range []testenv.Link{testenv.LinkHeartbeat, testenv.LinkSerial} {
		if err := p.lab.Restore("a", l); err != nil {
			t.Fatal(err)
		}
	}
	p.waitLinks(allUp, 10*time.Second)
}

func TestPowerOffSilencesEveryMedium(t *testing.T) {
	p, active := startMediaPair(t, pairOptions{})
	survivor := other(active)
	if err := p.lab.PowerOff(active); err != nil {
		t.Fatal(err)
	}
	p.waitRole(survivor, admin.RoleActive, 30*time.Second)
	links := p.links(survivor)
	for _, m := range []string{"lan", "serial", "disk"} {
		if links[m].State != admin.LinkDown {
			t.Errorf("after the power-off the survivor sees %s %s, want down", m, links[m].State)
		}
	}
	st, err := p.status(survivor)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastFence == nil || st.LastFence.Target != active || st.LastFence.Result != admin.FenceDone {
		t.Fatalf("survivor's last fencing: %+v", st.LastFence)
	}
	p.read(10 * time.Second)
}

func TestGarbageOnTheSerialLine(t *testing.T) {
	p, active := startMediaPair(t, pairOptions{})
	// Noise and half frames from a second writer on a's end, interleaved
	// with a's own frames, arrive at b.
	for range 5 {
		if _, err := p.lab.Node("a").Run(context.Background(), "sh", "-c", "head -c 700 /dev/urandom > "+p.lab.SerialDevice()+"; printf '\\176TDM\\000\\377' > "+p.lab.SerialDevice()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.waitLinks(allUp, 10*time.Second)
	p.holdStill(active, time.Second)
	for _, n := range []string{"a", "b"} {
		l := p.links(n)["serial"]
		if l.Bad.Forged+l.Bad.Replayed+l.Bad.Foreign+l.Bad.UnknownSender > 0 {
			t.Errorf("%s: noise became messages on the serial medium: %+v", n, l.Bad)
		}
	}
}

func TestCorruptDiskSlotIsReportedAndIgnored(t *testing.T) {
	p, active := startMediaPair(t, pairOptions{})
	// Flip bytes in a's status slot (sector 1 of 4096 bytes), in the image
	// both loop devices read through.
	img, err := os.OpenFile(filepath.Join(p.lab.Dir, "quorum.img"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	// a rewrites its slot every interval, and b may read it within a
	// millisecond of that: keep the slot damaged, rewriting the damage
	// every 100 µs, until b has read it at least once.
	stop := make(chan struct{})
	damaged := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				damaged <- nil
				return
			default:
			}
			if _, err := img.WriteAt([]byte("garbage in the slot"), 4096+100); err != nil {
				damaged <- err
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	p.waitFor(10*time.Second, "b to report the corrupt slot", func() bool {
		return p.links("b")["disk"].Bad.Malformed > 0
	})
	close(stop)
	if err := <-damaged; err != nil {
		t.Fatal(err)
	}
	p.waitLinks(allUp, 10*time.Second)
	p.holdStill(active, time.Second)
}
