package fence

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/quorum"
	"github.com/tandem-ha/tandem/testenv"
)

// inNode is path as node sees it in its own mount namespace.
func inNode(t *testing.T, lab *testenv.Lab, node, path string) string {
	t.Helper()
	pid := lab.Node(node).PID()
	if pid == 0 {
		t.Fatalf("node %s is off", node)
	}
	return fmt.Sprintf("/proc/%d/root%s", pid, path)
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
	}
}

// TestLabWatchdog arms node a's lab watchdog: fed, the node stays up past
// the timeout; abandoned, the lab powers it off within about the timeout;
// closed cleanly, it stays up.
func TestLabWatchdog(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	const timeout = time.Second
	lab := testenv.Start(t, testenv.Options{WatchdogTimeout: timeout})
	a := lab.Node("a")
	w, err := OpenWatchdog(WatchdogConfig{Device: inNode(t, lab, "a", lab.WatchdogDevice()), Timeout: timeout, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if w.TimeoutSet() || w.Timeout() != timeout {
		t.Errorf("the lab's watchdog: timeout %v, set %v", w.Timeout(), w.TimeoutSet())
	}
	ctx, cancel := context.WithCancel(context.Background())
	fed := make(chan error, 1)
	go func() { fed <- w.Run(ctx, func() bool { return true }) }()

	// Fed for three timeouts: node a stays up all along.
	for end := time.Now().Add(3 * timeout); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if !a.Powered() || lab.WatchdogFired("a") != 0 {
			t.Fatalf("node a went off while fed (powered %v, fired %d)", a.Powered(), lab.WatchdogFired("a"))
		}
	}
	cancel()
	<-fed

	// Abandoned: off within about the timeout.
	if err := w.Abandon(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitUntil(t, 5*timeout, "the watchdog powers node a off", func() bool { return !a.Powered() })
	took := time.Since(start)
	t.Logf("abandoned: node a off after %v", took.Round(time.Millisecond))
	if took > timeout+2*time.Second {
		t.Errorf("node a went off %v after the watchdog was abandoned, timeout %v", took, timeout)
	}
	if n := lab.WatchdogFired("a"); n != 1 {
		t.Errorf("watchdog fired %d times", n)
	}

	// Closed cleanly: disarmed, the node stays up.
	if err := lab.PowerOn("a"); err != nil {
		t.Fatal(err)
	}
	w, err = OpenWatchdog(WatchdogConfig{Device: inNode(t, lab, "a", lab.WatchdogDevice()), Timeout: timeout, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(3 * timeout); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if !a.Powered() || lab.WatchdogFired("a") != 1 {
			t.Fatalf("node a went off after a clean close (powered %v, fired %d)", a.Powered(), lab.WatchdogFired("a"))
		}
	}
}

// TestLabPill has node b fence node a with a pill on the lab's quorum
// disk, each node reaching it through its own loop device: once with a
// acknowledging, once with a silent.
func TestLabPill(t *testing.T) {
	const watchdog = time.Second
	lab := testenv.Start(t, testenv.Options{WatchdogTimeout: watchdog})
	devA := inNode(t, lab, "a", lab.QuorumDevice())
	devB := inNode(t, lab, "b", lab.QuorumDevice())
	p := quorum.Params{Interval: 100 * time.Millisecond, Watchdog: watchdog}
	if _, err := quorum.Init(devB, "lab", []string{"a", "b"}, p, false); err != nil {
		t.Fatal(err)
	}
	open := func(dev string) *quorum.Disk {
		d, err := quorum.Open(dev, quorum.Options{Cluster: "lab"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	diskA, diskB := open(devA), open(devB)
	if !diskA.Direct() || !diskB.Direct() {
		t.Error("the loop devices are not read with O_DIRECT")
	}
	w, err := NewMailboxWatcher(diskA, "a")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Check(); r != nil || err != nil {
		t.Fatalf("a's mailbox at start: %+v, %v", r, err)
	}
	pill := &Pill{Disk: diskB, Local: "b", Node: "a"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// a sees the pill, acknowledges it; b's Deliver returns at once.
	res := deliver(ctx, pill)
	var r *Received
	waitUntil(t, 10*time.Second, "a sees the pill", func() bool {
		var err error
		r, err = w.Check()
		if err != nil {
			t.Fatal(err)
		}
		return r != nil
	})
	if r.Kind != quorum.MsgReset || r.From != "b" || r.AtStart || r.Acknowledged {
		t.Fatalf("a received %+v", r)
	}
	if err := w.Acknowledge(r); err != nil {
		t.Fatal(err)
	}
	got := <-res
	if got.err != nil || !got.d.Acknowledged {
		t.Fatalf("delivery: %+v, %v", got.d, got.err)
	}
	waited := got.at.Sub(got.d.Written)
	t.Logf("acknowledged pill delivered after %v", waited.Round(time.Millisecond))
	if waited >= pill.Wait() {
		t.Errorf("an acknowledged pill took %v, the full wait", waited)
	}

	// a never acknowledges: b counts it delivered after twice a's
	// watchdog timeout.
	res = deliver(ctx, pill)
	waitUntil(t, 10*time.Second, "a sees the second pill", func() bool {
		r, _ = w.Check()
		return r != nil && r.Sequence == got.d.Message.Sequence+1
	})
	got = <-res
	if got.err != nil || got.d.Acknowledged {
		t.Fatalf("delivery: %+v, %v", got.d, got.err)
	}
	waited = got.at.Sub(got.d.Written)
	t.Logf("unacknowledged pill delivered after %v", waited.Round(time.Millisecond))
	if waited < 2*watchdog || waited > 2*watchdog+time.Second {
		t.Errorf("an unacknowledged pill took %v, want twice the watchdog timeout, %v", waited, 2*watchdog)
	}

	// a restarts: the message is from before its start. Cleared, it is
	// gone.
	w, err = NewMailboxWatcher(open(devA), "a")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Check(); err != nil || r == nil || !r.AtStart {
		t.Fatalf("at a's restart: %+v, %v", r, err)
	}
	if _, err := diskB.ClearMailbox("a"); err != nil {
		t.Fatal(err)
	}
	if r, err := w.Check(); r != nil || err != nil {
		t.Errorf("after clear: %+v, %v", r, err)
	}
}
