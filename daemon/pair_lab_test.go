package daemon_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/admin"
	"github.com/tandem-ha/tandem/heartbeat"
	"github.com/tandem-ha/tandem/testenv"
)

func TestPairServesAndFailsOverByHand(t *testing.T) {
	p := newPair(t, pairOptions{})
	active := p.startBoth()
	if h := p.holder(); h != active {
		t.Fatalf("%s reports active but the floating address is on %q", active, h)
	}
	p.read(10 * time.Second)

	st, err := p.status(active)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Resources {
		if r.State != admin.ResourceStarted || r.Where != active {
			t.Errorf("resource %s: %s on %q, want started on %s", r.Name, r.State, r.Where, active)
		}
	}
	if peer := st.Peer(); peer == nil || len(peer.Links) == 0 || peer.Links[0].State != admin.LinkUp {
		t.Fatalf("status of %s shows the peer's heartbeat LAN as %+v", active, peer)
	}

	// A planned move: the holder lets go first, then the other starts.
	if out, err := p.haclient(active, "failover"); err != nil {
		t.Fatalf("haclient failover: %v: %s", err, out)
	}
	moved := other(active)
	p.waitFor(30*time.Second, "the service to move to "+moved, func() bool {
		return p.role(moved) == admin.RoleActive && p.role(active) == admin.RoleStandby
	})
	p.read(10 * time.Second)
	if h := p.holder(); h != moved {
		t.Fatalf("after failover the floating address is on %q, want %s", h, moved)
	}
	// And back, asked on the node that takes it.
	if out, err := p.haclient(active, "takeover"); err != nil {
		t.Fatalf("haclient takeover: %v: %s", err, out)
	}
	p.waitRole(active, admin.RoleActive, 30*time.Second)
	p.read(10 * time.Second)
}

func TestPowerOffTakeoverAndRejoin(t *testing.T) {
	p := newPair(t, pairOptions{})
	active := p.startBoth()
	p.read(10 * time.Second)
	survivor := other(active)

	if err := p.lab.PowerOff(active); err != nil {
		t.Fatal(err)
	}
	p.waitRole(survivor, admin.RoleActive, 30*time.Second)
	p.read(10 * time.Second)
	st, err := p.status(survivor)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastFence == nil || st.LastFence.Target != active || st.LastFence.Result != admin.FenceDone {
		t.Fatalf("survivor's last fencing: %+v, want %s fenced", st.LastFence, active)
	}
	// The fence agent really powered it off (the lab's switch says so).
	if p.lab.Node(active).Powered() {
		t.Fatalf("%s is powered after the survivor fenced it", active)
	}

	// Power on: it rejoins as standby and, without auto_failback, stays so.
	if err := p.lab.PowerOn(active); err != nil {
		t.Fatal(err)
	}
	p.start(active)
	p.waitRole(active, admin.RoleStandby, 30*time.Second)
	time.Sleep(2 * time.Second)
	if r := p.role(survivor); r != admin.RoleActive {
		t.Fatalf("without auto_failback the service moved: %s is %s", survivor, r)
	}
	p.read(10 * time.Second)
}

func TestAutoFailbackToThePreferredNode(t *testing.T) {
	p := newPair(t, pairOptions{AutoFailback: true, PreferredNode: "a"})
	p.start("a")
	p.start("b")
	if active := p.waitActive(30 * time.Second); active != "a" {
		t.Fatalf("%s took the service at start, want the preferred node a", active)
	}
	if err := p.lab.PowerOff("a"); err != nil {
		t.Fatal(err)
	}
	p.waitRole("b", admin.RoleActive, 30*time.Second)
	if err := p.lab.PowerOn("a"); err != nil {
		t.Fatal(err)
	}
	p.start("a")
	p.waitFor(30*time.Second, "the service to fail back to a", func() bool {
		return p.role("a") == admin.RoleActive && p.role("b") == admin.RoleStandby
	})
	p.read(10 * time.Second)
}

// smbdPID is the pid of the node's main smbd (as the machine sees it): the
// smbd whose parent is not an smbd. 0 when none runs.
func smbdPID(t *testing.T, h *testenv.Host) int {
	procs, err := h.Processes()
	if err != nil {
		t.Fatal(err)
	}
	for pid, comm := range procs {
		if comm != "smbd" {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // exited meanwhile
		}
		// The parent pid is the second field after the command in parentheses.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		if ppid, err := strconv.Atoi(f[1]); err == nil && procs[ppid] != "smbd" {
			return pid
		}
	}
	return 0
}

func TestSmbdKilledIsRestartedThenMoved(t *testing.T) {
	p := newPair(t, pairOptions{RestartLimit: 2})
	active := p.startBoth()
	p.read(10 * time.Second)
	h := p.lab.Node(active)

	// kill kills the running main smbd, that one process, as a crash
	// would. (A pattern kill could also hit the smbd the daemon starts a
	// moment later in its place.)
	kill := func() int {
		t.Helper()
		pid := smbdPID(t, h)
		if pid == 0 {
			t.Fatal("no smbd to kill")
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("killing smbd %d: %v", pid, err)
		}
		return pid
	}
	// Within the limit: restarted in place.
	for i := 1; i <= 2; i++ {
		before := kill()
		p.waitFor(20*time.Second, "smbd to be restarted in place", func() bool {
			pid := smbdPID(t, h)
			return pid != 0 && pid != before && p.role(active) == admin.RoleActive
		})
		p.read(10 * time.Second)
		st, err := p.status(active)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range st.Resources {
			if r.Name == "smb" && r.Failures != i {
				t.Fatalf("after %d kills smb shows %d failures", i, r.Failures)
			}
		}
	}
	// Past the limit: the service moves.
	kill()
	p.waitRole(other(active), admin.RoleActive, 30*time.Second)
	p.read(10 * time.Second)
	if pid := smbdPID(t, h); pid != 0 {
		t.Fatalf("smbd still runs on %s after the service moved", active)
	}
	// The failed node is not eligible until cleaned up; cleanup makes it so.
	if out, err := p.haclient(active, "cleanup", "smb"); err != nil {
		t.Fatalf("haclient cleanup smb: %v: %s", err, out)
	}
}

func TestBusyFilesystemIsReleased(t *testing.T) {
	p := newPair(t, pairOptions{})
	active := p.startBoth()
	h := p.lab.Node(active)
	// A process with its working directory on the shared filesystem, which
	// would make a plain unmount fail with EBUSY.
	holder := h.Command("sh", "-c", "cd "+p.lab.Mountpoint()+" && exec sleep 600")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { holder.Wait(); close(done) }()
	if out, err := p.haclient(active, "standby"); err != nil {
		t.Fatalf("haclient standby: %v: %s", err, out)
	}
	p.waitRole(other(active), admin.RoleActive, 30*time.Second)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the process holding the mount still runs after the release")
	}
	if ok, _ := h.Mounted(); ok {
		t.Fatalf("%s still has the data volume mounted", active)
	}
	p.read(10 * time.Second)
}

func TestBadConfigRefused(t *testing.T) {
	p := newPair(t, pairOptions{})
	bad := strings.Replace(p.config(), "keepalive = ", "keepalive_typo = \"1s\"\nkeepalive = ", 1)
	p.writeConfig("a", bad)
	ctx := context.Background()
	out, err := p.lab.Node("a").Run(ctx, p.bin+"/tandemd", "--config", "/etc/tandem/tandem.toml", "--node", "a")
	if err == nil {
		t.Fatal("tandemd started with a bad config")
	}
	if !strings.Contains(out, "tandem.toml:4") || !strings.Contains(out, "keepalive_typo") {
		t.Fatalf("tandemd's complaint does not name the file, line and key: %s", out)
	}
	out, err = p.haclient("a", "config", "check")
	if err == nil || !strings.Contains(out, "keepalive_typo") {
		t.Fatalf("haclient config check on a bad config: %v: %s", err, out)
	}
	// A key file other users can read is refused too.
	p.writeConfig("a", p.config())
	if err := os.Chmod(filepath.Join(p.lab.Node("a").Dir, "etc", "authkey"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = p.lab.Node("a").Run(ctx, p.bin+"/tandemd", "--config", "/etc/tandem/tandem.toml", "--node", "a")
	if err == nil || !strings.Contains(out, "0644") {
		t.Fatalf("tandemd with a 0644 key file: %v: %s", err, out)
	}
	// The good config passes the check, smb.conf included.
	if err := os.Chmod(filepath.Join(p.lab.Node("a").Dir, "etc", "authkey"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := p.haclient("a", "config", "check"); err != nil {
		t.Fatalf("haclient config check on the good config: %v: %s", err, out)
	}
}

func TestForgedAndReplayedPacketsAreCounted(t *testing.T) {
	p := newPair(t, pairOptions{})
	p.startBoth()

	// b's current generation: packets from its previous run are replays.
	data, err := os.ReadFile(filepath.Join(p.lab.Node("b").Dir, "lib", "generation"))
	if err != nil {
		t.Fatal(err)
	}
	gen, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte(testenv.AuthKey)
	good, _ := heartbeat.NewCodec("lab", key)
	wrongKey, _ := heartbeat.NewCodec("lab", []byte("not-the-shared-secret-000000"))
	foreign, _ := heartbeat.NewCodec("other", key)
	msg := func(c *heartbeat.Codec, gen, seq uint64) []byte {
		b, err := c.Marshal(&heartbeat.Message{Type: heartbeat.TypeHeartbeat, Sender: "b", Generation: gen, Sequence: seq})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	packets := map[string][]byte{
		"forged":    msg(wrongKey, gen, 1<<40),
		"replayed":  msg(good, gen-1, 1<<40),
		"foreign":   msg(foreign, gen, 1<<40),
		"truncated": msg(good, gen, 1<<40)[:20],
	}
	// Sent from inside b, on the heartbeat LAN, to a's heartbeat port.
	err = p.lab.Node("b").Do(func() error {
		c, err := netDialUDP("198.18.1.1:694")
		if err != nil {
			return err
		}
		defer c.Close()
		for range 5 {
			for _, pkt := range packets {
				if _, err := c.Write(pkt); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p.waitFor(10*time.Second, "a to count every bad packet", func() bool {
		st, err := p.status("a")
		if err != nil || st.Peer() == nil || len(st.Peer().Links) == 0 {
			return false
		}
		bad := st.Peer().Links[0].Bad
		return bad.Forged >= 5 && bad.Replayed >= 5 && bad.Foreign >= 5 && bad.Truncated >= 5
	})
	// None of it moved anything.
	if r := p.role("a"); r != admin.RoleActive && r != admin.RoleStandby {
		t.Fatalf("a is %s after the bad packets", r)
	}
	if active := p.waitActive(5 * time.Second); active == "" {
		t.Fatal("no active node after the bad packets")
	}
}

func TestSystemdNotify(t *testing.T) {
	p := newPair(t, pairOptions{})
	sock := filepath.Join(p.lab.Node("a").Dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	// wait collects notifications until one contains want.
	wait := func(want string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case msg, ok := <-got:
				if !ok {
					t.Fatalf("notify socket closed before %q", want)
				}
				if strings.Contains(msg, want) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q from tandemd within 30 s", want)
			}
		}
	}
	p.start("a", "NOTIFY_SOCKET="+sock)
	p.start("b")
	wait("READY=1")
	active := p.waitActive(30 * time.Second)
	if active == "a" {
		wait("STATUS=active")
	} else {
		wait("STATUS=standby")
	}
	p.stop("a")
	wait("STOPPING=1")
}
