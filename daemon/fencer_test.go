package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/fence"
	"github.com/tandem-ha/tandem/heartbeat"
	"github.com/tandem-ha/tandem/quorum"
)

// fakeAgent fails or succeeds as told.
type fakeAgent struct{ err error }

func (a fakeAgent) Fence(context.Context) (fence.Result, error) {
	r := fence.Result{Fencer: "agent fence_fake", Action: "off", Attempts: 1}
	if a.err == nil {
		r.Power = fence.PowerOff
	}
	return r, a.err
}

func quorumDisk(t *testing.T) *heartbeat.Disk {
	t.Helper()
	path := filepath.Join(t.TempDir(), "quorum.img")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := quorum.Init(path, "filer", []string{"alpha", "beta"}, quorum.Params{Interval: 20 * time.Millisecond, Watchdog: time.Second, ListSectors: quorum.NoList}, false); err != nil {
		t.Fatal(err)
	}
	d, err := heartbeat.DialDisk(heartbeat.DiskConfig{Device: path, Cluster: "filer", Local: "alpha", Peer: "beta", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestPeerFenceAgentFirst(t *testing.T) {
	p := peerFence{node: "beta", agent: fakeAgent{}, disk: quorumDisk(t), watchdog: time.Second}
	rec, res, err := p.fence(context.Background())
	if err != nil || !res.Off || res.Disk || rec.Method != "fence_fake" {
		t.Fatalf("agent that works: %+v %+v %v", rec, res, err)
	}
	if m, err := p.disk.Quorum().ReadMessage("beta"); err != nil || m.Kind != quorum.MsgNone {
		t.Fatalf("a fence message was left although the agent worked: %v %v", m, err)
	}
}

func TestPeerFenceCancelledBeforeTheDisk(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := peerFence{node: "beta", agent: fakeAgent{err: errors.New("unable to connect")}, disk: quorumDisk(t), watchdog: time.Second}
	rec, res, err := p.fence(ctx)
	if res.Off || !errors.Is(err, context.Canceled) || !strings.Contains(rec.Error, "unable to connect") {
		t.Fatalf("cancelled: %+v %+v %v", rec, res, err)
	}
	if strings.Contains(rec.Error, "no fence agent") {
		t.Fatalf("error blames the configuration: %s", rec.Error)
	}
}

func TestPeerFenceNothingConfigured(t *testing.T) {
	var p peerFence
	if _, res, err := p.fence(context.Background()); err == nil || res.Off || p.configured() {
		t.Fatalf("nothing configured: %+v %v", res, err)
	}
}
