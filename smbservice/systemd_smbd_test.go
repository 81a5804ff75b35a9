package smbservice

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/resources"
	"github.com/tandem-ha/tandem/testenv"
)

// In systemd mode a start job is done before smbd listens. Here the fake
// systemd's smbd.service runs the real smbd, in a network namespace of the
// test, and reports its start done at once, as systemd does: Start must
// still return only once smbd answers.
func TestSystemdSmbd(t *testing.T) {
	testenv.Require(t)
	testenv.RequireCommands(t, "smbd", "samba", "testparm", "samba-common-bin")
	n := newNS(t)
	logs := &logBuffer{}
	root := t.TempDir()
	proc := &Process{
		Name:        "smb",
		Config:      smbConf(t, testAddr),
		RunDir:      filepath.Join(root, "run"),
		StopTimeout: 5 * time.Second,
		Logger:      logs.logger(),
	}
	sd := newFakeSystemd("smbd.service")
	sd.set("smbd.service", func(u *fakeUnit) { u.real = proc })
	r, err := newSystemd(Params{
		Name:           "smb",
		Config:         proc.Config,
		Address:        testAddr,
		StartTimeout:   10 * time.Second,
		StopTimeout:    5 * time.Second,
		MonitorTimeout: 500 * time.Millisecond,
		Logger:         logs.logger(),
	}, []string{"smbd.service"}, sd.connect)
	if err != nil {
		t.Fatal(err)
	}
	// bind reaches the process through the resource's supervisor.
	r.sup = proc
	n.bind(r.Resource)
	r.sup = r.units
	var refused atomic.Int64
	dial := r.dial
	r.dial = func(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
		c, err := dial(ctx, addr)
		if errors.Is(err, syscall.ECONNREFUSED) {
			refused.Add(1)
		}
		return c, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := proc.Halt(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if refused.Load() == 0 {
		t.Errorf("no NEGOTIATE was refused: the unit's start cannot have been reported before smbd listened")
	}
	// Start returned: the very next NEGOTIATE is answered.
	if _, err := n.negotiate(ctx, r.AddrPort()); err != nil {
		t.Fatalf("NEGOTIATE right after Start: %v", err)
	}
	if err := r.Monitor(ctx); err != nil {
		t.Fatalf("Monitor: %v", err)
	}

	// smbd dies: the unit fails, and Monitor names it.
	pid := proc.Pid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "smbd dead", func() bool { s, err := readStat(pid); return err != nil || s.gone() })
	err = r.Monitor(ctx)
	if err == nil || errors.Is(err, resources.ErrStopped) || !strings.Contains(err.Error(), `smb "smb": smbd.service is failed (failed), result "signal"`) {
		t.Fatalf("Monitor of a killed smbd: %v", err)
	}

	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
		t.Fatalf("Monitor after Stop: %v, want ErrStopped", err)
	}
	// Restart in place, then a clean stop leaves nothing.
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid = proc.Pid()
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n, &Resource{sup: proc}, pid)
	if _, err := n.negotiate(ctx, r.AddrPort()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("NEGOTIATE after Stop: %v, want connection refused", err)
	}
}
