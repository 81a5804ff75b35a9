package fence

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/quorum"
)

// pillDisk initialises a quorum image for alpha (slot 0) and beta (slot
// 1) and opens it twice: once as alpha sees it, once as beta does.
func pillDisk(t *testing.T, watchdog, msgWait time.Duration) (path string, alpha, beta *quorum.Disk) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "quorum.img")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	p := quorum.Params{Interval: 10 * time.Millisecond, Watchdog: watchdog, MsgWait: msgWait}
	if _, err := quorum.Init(path, "filer", []string{"alpha", "beta"}, p, false); err != nil {
		t.Fatal(err)
	}
	open := func() *quorum.Disk {
		d, err := quorum.Open(path, quorum.Options{Cluster: "filer"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	return path, open(), open()
}

// awaitMessage polls the watcher until it reports a message.
func awaitMessage(t *testing.T, w *MailboxWatcher) *Received {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		r, err := w.Check()
		if err != nil {
			t.Error(err)
			return nil
		}
		if r != nil {
			return r
		}
	}
	t.Error("no message arrived")
	return nil
}

type delivered struct {
	d   Delivery
	err error
	at  time.Time
}

func deliver(ctx context.Context, p *Pill) <-chan delivered {
	ch := make(chan delivered, 1)
	go func() {
		d, err := p.Deliver(ctx)
		ch <- delivered{d, err, time.Now()}
	}()
	return ch
}

func TestPillAcknowledged(t *testing.T) {
	_, alpha, beta := pillDisk(t, time.Hour, 0)
	w, err := NewMailboxWatcher(beta, "beta")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Check(); r != nil || err != nil {
		t.Fatalf("empty mailbox at start: %+v, %v", r, err)
	}
	p := &Pill{Disk: alpha, Local: "alpha", Node: "beta"}
	if p.Wait() != 2*time.Hour {
		t.Errorf("wait %v, want twice the header's watchdog", p.Wait())
	}
	res := deliver(context.Background(), p)

	r := awaitMessage(t, w)
	want := quorum.Message{Kind: quorum.MsgReset, From: "alpha", To: "beta", Sequence: 1}
	if r == nil || r.Message != want || r.AtStart || r.Acknowledged {
		t.Fatalf("beta received %+v", r)
	}
	acked := time.Now()
	if err := w.Acknowledge(r); err != nil {
		t.Fatal(err)
	}
	got := <-res
	if got.err != nil || !got.d.Acknowledged || got.d.Message != want || got.d.Replaced != nil {
		t.Fatalf("delivery: %+v, %v", got.d, got.err)
	}
	if got.at.Sub(acked) > time.Second {
		t.Errorf("the acknowledgement took %v to be seen", got.at.Sub(acked))
	}
	// Still there, now acknowledged, and not from before the start.
	if r, err := w.Check(); err != nil || r == nil || !r.Acknowledged || r.AtStart {
		t.Errorf("after the acknowledgement: %+v, %v", r, err)
	}

	// A second Fence numbers above the first; as a Fencer it reports the
	// node off.
	p.Kind = quorum.MsgOff
	done := make(chan struct{})
	var fres Result
	var ferr error
	go func() {
		defer close(done)
		fres, ferr = p.Fence(context.Background())
	}()
	for r = awaitMessage(t, w); r != nil && r.Sequence == 1; r = awaitMessage(t, w) {
	}
	if r == nil || r.Kind != quorum.MsgOff || r.Sequence != 2 || r.Acknowledged {
		t.Fatalf("second message: %+v", r)
	}
	if err := w.Acknowledge(r); err != nil {
		t.Fatal(err)
	}
	<-done
	if ferr != nil || fres.Power != PowerOff || fres.Action != "off" || fres.Node != "beta" || fres.Fencer != "disk "+alpha.Path() || fres.Attempts != 1 {
		t.Errorf("fence: %+v, %v", fres, ferr)
	}
	if !strings.HasPrefix(fres.String(), "disk "+alpha.Path()+": off for beta: power off, 1 attempt, ") {
		t.Errorf("result: %s", fres)
	}
}

func TestPillTimeout(t *testing.T) {
	_, alpha, beta := pillDisk(t, 0, 0)
	// An earlier pill, acknowledged: its acknowledgement must not count
	// for the next one.
	old := quorum.Message{Kind: quorum.MsgReset, From: "alpha", To: "beta", Sequence: 3}
	if err := alpha.WriteMessage(old); err != nil {
		t.Fatal(err)
	}
	if err := beta.Acknowledge(old); err != nil {
		t.Fatal(err)
	}

	p := &Pill{Disk: alpha, Local: "alpha", Node: "beta"}
	if _, err := p.Deliver(context.Background()); err == nil || err.Error() != "fence: pill reset for beta on "+alpha.Path()+": the victim's watchdog timeout is unknown: neither configured nor in the quorum header" {
		t.Errorf("no watchdog timeout: %v", err)
	}
	if m, _ := beta.ReadMessage("beta"); m != old {
		t.Errorf("a refused pill changed the mailbox: %+v", m)
	}

	p.Watchdog = 100 * time.Millisecond
	w, err := NewMailboxWatcher(beta, "beta")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Check(); err != nil || r == nil || !r.AtStart || !r.Acknowledged {
		t.Fatalf("the old message at start: %+v, %v", r, err)
	}
	res := deliver(context.Background(), p)
	var r *Received
	for r = awaitMessage(t, w); r != nil && r.Sequence == 3; r = awaitMessage(t, w) {
	}
	if r == nil || r.Sequence != 4 || r.AtStart || r.Acknowledged {
		t.Fatalf("the new message: %+v", r)
	}
	// beta's slot moves but it never acknowledges.
	if err := beta.WriteSlot(1, &quorum.Slot{Counter: 9, AckKind: old.Kind, AckFrom: 0, AckSequence: old.Sequence}); err != nil {
		t.Fatal(err)
	}
	got := <-res
	if got.err != nil || got.d.Acknowledged || got.d.Message.Sequence != 4 {
		t.Fatalf("delivery: %+v, %v", got.d, got.err)
	}
	if waited := got.at.Sub(got.d.Written); waited < 200*time.Millisecond || waited > 2*time.Second {
		t.Errorf("waited %v after the write, want twice the watchdog timeout, 200ms", waited)
	}
	if got.d.Counter != 9 || got.d.CounterMoved.IsZero() || got.d.CounterMoved.Before(got.d.Written) {
		t.Errorf("counter %d, moved at %v (written %v)", got.d.Counter, got.d.CounterMoved, got.d.Written)
	}
}

func TestPillWait(t *testing.T) {
	_, alpha, _ := pillDisk(t, 2*time.Second, 5*time.Second)
	for _, tc := range []struct {
		watchdog, want time.Duration
	}{
		{0, 5 * time.Second},               // the header's message wait is longer than twice its watchdog
		{time.Second, 5 * time.Second},     // and than twice the configured one
		{4 * time.Second, 8 * time.Second}, // but never shorter than twice the configured watchdog
	} {
		p := &Pill{Disk: alpha, Local: "alpha", Node: "beta", Watchdog: tc.watchdog}
		if got := p.Wait(); got != tc.want {
			t.Errorf("watchdog %v: wait %v, want %v", tc.watchdog, got, tc.want)
		}
	}
}

func TestPillCancel(t *testing.T) {
	_, alpha, beta := pillDisk(t, time.Hour, 0)
	w, err := NewMailboxWatcher(beta, "beta")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pill{Disk: alpha, Local: "alpha", Node: "beta"}
	done := make(chan struct{})
	var res Result
	var ferr error
	go func() {
		defer close(done)
		res, ferr = p.Fence(ctx)
	}()
	if awaitMessage(t, w) == nil {
		t.FailNow()
	}
	cancel()
	<-done
	var pe *PillError
	if !errors.Is(ferr, context.Canceled) || !errors.As(ferr, &pe) || pe.Node != "beta" ||
		ferr.Error() != "fence: pill reset for beta on "+alpha.Path()+": waiting for beta to acknowledge #1: context canceled" {
		t.Errorf("cancelled fence: %v", ferr)
	}
	if res.Power != PowerUnknown {
		t.Errorf("a cancelled fence reports power %v", res.Power)
	}
	// The message stays: beta obeys it if it still reads its mailbox.
	if m, err := beta.ReadMessage("beta"); err != nil || m.Kind != quorum.MsgReset || m.Sequence != 1 {
		t.Errorf("after the cancel: %+v, %v", m, err)
	}
	// A context already done writes nothing.
	if err := beta.Acknowledge(quorum.Message{Kind: quorum.MsgReset, From: "alpha", To: "beta", Sequence: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Fence(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("fence with a done context: %v", err)
	}
	if m, _ := beta.ReadMessage("beta"); m.Sequence != 1 {
		t.Errorf("a fence with a done context wrote %+v", m)
	}
	if _, err := (&Pill{Disk: alpha, Local: "alpha", Node: "alpha"}).Fence(context.Background()); err == nil || !strings.Contains(err.Error(), "alpha would fence itself") {
		t.Errorf("fencing oneself: %v", err)
	}
	if _, err := (&Pill{Disk: alpha, Local: "alpha", Node: "gamma"}).Fence(context.Background()); err == nil || !strings.Contains(err.Error(), `no node "gamma"`) {
		t.Errorf("fencing an unknown node: %v", err)
	}
}

func TestPillCorruptMailbox(t *testing.T) {
	path, alpha, beta := pillDisk(t, 50*time.Millisecond, 0)
	// A bit flip in beta's mailbox, sector 4.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt([]byte{0x20}, 4*4096+30)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The owner's watcher reports it, naming device, sector and node.
	w, err := NewMailboxWatcher(beta, "beta")
	if err != nil {
		t.Fatal(err)
	}
	r, err := w.Check()
	var ne *quorum.NodeError
	want := "fence: mailbox watch: quorum: " + path + ": sector 4 (mailbox of beta): read: field crc32c at byte 4092: checksum mismatch"
	if r != nil || !errors.As(err, &ne) || ne.Node != "beta" || ne.Sector != 4 || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("corrupt mailbox: %+v, %v", r, err)
	}
	// The fencer is not stopped by it: the pill replaces it, and says so.
	d, err := (&Pill{Disk: alpha, Local: "alpha", Node: "beta"}).Deliver(context.Background())
	if err != nil || !errors.Is(d.Replaced, quorum.ErrChecksum) || d.Message.Sequence != 1 || d.Acknowledged {
		t.Fatalf("pill over a corrupt mailbox: %+v, %v", d, err)
	}
	// The watcher's first good read finds it: for all the watcher knows,
	// it was there before the start.
	if r, err := w.Check(); err != nil || r == nil || !r.AtStart || r.Message != d.Message {
		t.Errorf("after the pill: %+v, %v", r, err)
	}
}

func TestMailboxWatch(t *testing.T) {
	_, alpha, beta := pillDisk(t, time.Hour, 0)
	pill := quorum.Message{Kind: quorum.MsgOff, From: "alpha", To: "beta", Sequence: 12}
	if err := alpha.WriteMessage(pill); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMailboxWatcher(beta, "gamma"); err == nil || !strings.Contains(err.Error(), "fence: mailbox of gamma on ") {
		t.Errorf("unknown node: %v", err)
	}
	w, err := NewMailboxWatcher(beta, "beta")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []*Received
	err = w.Watch(ctx, 0, func(r *Received, err error) {
		if err != nil {
			t.Error(err)
		}
		got = append(got, r)
		if len(got) == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || len(got) != 2 {
		t.Fatalf("watch: %v, %d reports", err, len(got))
	}
	for _, r := range got {
		if r.Message != pill || !r.AtStart {
			t.Errorf("report %+v: want %v found at start", r, pill)
		}
	}
	// Cleared by the operator: nothing more to report, and a later
	// message is a new one.
	if _, err := alpha.ClearMailbox("beta"); err != nil {
		t.Fatal(err)
	}
	if r, err := w.Check(); r != nil || err != nil {
		t.Errorf("after clear: %+v, %v", r, err)
	}
	pill.Sequence++
	if err := alpha.WriteMessage(pill); err != nil {
		t.Fatal(err)
	}
	if r, err := w.Check(); err != nil || r == nil || r.AtStart || r.Message != pill {
		t.Errorf("a message after the start: %+v, %v", r, err)
	}
}
