package testenv

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// eventually waits for cond with a deadline instead of sleeping.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func run(t *testing.T, h *Host, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.Run(ctx, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startSMB mounts the data volume in node a, puts a file on it and serves
// it with smbd bound to a's public address.
func startSMB(t *testing.T, lab *Lab, a *Host) *exec.Cmd {
	t.Helper()
	RequireCommands(t, "smbd", "samba", "smbclient", "smbclient")
	mnt := lab.Mountpoint()
	run(t, a, "mount", "-t", "ext4", lab.DataDevice(), mnt)
	run(t, a, "sh", "-c", "mkdir -p "+mnt+"/share && echo hello from the shared disk > "+mnt+"/share/hello.txt")
	conf, err := a.WriteSMBConf(SMBConfig{Addresses: []netip.Addr{a.PublicAddr.Addr()}, Path: mnt + "/share"})
	if err != nil {
		t.Fatal(err)
	}
	smbd := a.Command("smbd", "--foreground", "--no-process-group", "--debug-stdout", "-s", conf)
	var log bytes.Buffer
	smbd.Stdout, smbd.Stderr = &log, &log
	if err := smbd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- smbd.Wait() }()
	t.Cleanup(func() {
		smbd.Process.Kill()
		<-waited
		if t.Failed() {
			t.Logf("smbd output:\n%s", log.String())
		}
	})
	return smbd
}

func smbRead(lab *Lab, addr netip.Addr, file string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return lab.Client().Run(ctx, "smbclient", "-N", "-t", "2", "//"+addr.String()+"/share", "-c", "get "+file+" -")
}

func TestSMBServedFromNodeA(t *testing.T) {
	lab := Start(t, Options{})
	a, b := lab.Node("a"), lab.Node("b")
	startSMB(t, lab, a)

	var out string
	eventually(t, 10*time.Second, "smbclient to read through a", func() bool {
		var err error
		out, err = smbRead(lab, a.PublicAddr.Addr(), "hello.txt")
		return err == nil
	})
	if !strings.Contains(out, "hello from the shared disk") {
		t.Fatalf("smbclient read %q, want the file's content", out)
	}
	if ok, err := a.Mounted(); err != nil || !ok {
		t.Fatalf("a: data volume mounted = %v, %v; want true", ok, err)
	}
	// The mount lives in a's mount namespace only.
	if ok, err := b.Mounted(); err != nil || ok {
		t.Fatalf("b: data volume mounted = %v, %v; want false", ok, err)
	}
	if _, err := b.Run(context.Background(), "test", "-e", lab.Mountpoint()+"/share/hello.txt"); err == nil {
		t.Fatal("b sees a file that lives on a's mount")
	}
	if info := run(t, b, "cat", "/proc/self/mountinfo"); strings.Contains(info, " "+lab.Mountpoint()+" ") {
		t.Fatalf("b's mount table shows %s:\n%s", lab.Mountpoint(), info)
	}
	if ok, _ := a.Running("smbd"); !ok {
		t.Fatal("a: smbd not among a's processes")
	}
	if ok, _ := b.Running("smbd"); ok {
		t.Fatal("b: smbd among b's processes")
	}
}

func TestNetworkLinksCutAndRestore(t *testing.T) {
	RequireCommands(t, "ping", "iputils-ping")
	lab := Start(t, Options{})
	a, client := lab.Node("a"), lab.Client()
	ping := func(h *Host, to netip.Prefix) error {
		_, err := h.Run(context.Background(), "ping", "-c1", "-W1", to.Addr().String())
		return err
	}
	if err := ping(client, a.PublicAddr); err != nil {
		t.Fatal(err)
	}
	b := lab.Node("b")
	if err := ping(a, b.HeartbeatAddr); err != nil {
		t.Fatal(err)
	}
	// The heartbeat LAN is separate from the public one.
	if err := ping(client, a.HeartbeatAddr); err == nil {
		t.Fatal("the client reaches the heartbeat LAN")
	}
	for _, c := range []struct {
		link     Link
		from, to *Host
		addr     netip.Prefix
	}{
		{LinkPublic, client, a, a.PublicAddr},
		{LinkHeartbeat, b, a, a.HeartbeatAddr},
	} {
		if err := lab.Cut("a", c.link); err != nil {
			t.Fatal(err)
		}
		if err := ping(c.from, c.addr); err == nil {
			t.Fatalf("%s cut, yet %s reaches %s", c.link, c.from.Name, c.addr)
		}
		if err := lab.Restore("a", c.link); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, fmt.Sprintf("%s link back", c.link), func() bool { return ping(c.from, c.addr) == nil })
	}
}

func TestSerialCable(t *testing.T) {
	const baud = 38400
	lab := Start(t, Options{Baud: baud})
	a, b := lab.Node("a"), lab.Node("b")
	dev := lab.SerialDevice()

	// receive reads n bytes from b's end, giving up after timeout.
	receive := func(n int, timeout time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return b.Run(ctx, "head", "-c", strconv.Itoa(n), dev)
	}
	send := func(h *Host, data string) {
		t.Helper()
		run(t, h, "sh", "-c", "printf '%s' \""+data+"\" > "+dev)
	}
	type result struct {
		out string
		err error
	}
	startReceive := func(n int, timeout time.Duration) chan result {
		ch := make(chan result, 1)
		go func() {
			out, err := receive(n, timeout)
			ch <- result{out, err}
		}()
		// Let the reader open its end before bytes come (a tty drops
		// nothing queued, but the order keeps the test simple to read).
		time.Sleep(50 * time.Millisecond)
		return ch
	}

	ch := startReceive(5, 5*time.Second)
	send(a, "hello")
	if r := <-ch; r.err != nil || r.out != "hello" {
		t.Fatalf("b received %q, %v; want hello", r.out, r.err)
	}
	// The other way round.
	ch2 := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := a.Run(ctx, "head", "-c", "3", dev)
		ch2 <- result{out, err}
	}()
	time.Sleep(50 * time.Millisecond)
	send(b, "abc")
	if r := <-ch2; r.err != nil || r.out != "abc" {
		t.Fatalf("a received %q, %v; want abc", r.out, r.err)
	}

	// At line speed: 1920 bytes at 38400 baud take at least 0.5 s.
	payload := strings.Repeat("0123456789abcdef", 120)
	ch = startReceive(len(payload), 10*time.Second)
	start := time.Now()
	send(a, payload)
	r := <-ch
	took := time.Since(start)
	if r.err != nil || r.out != payload {
		t.Fatalf("b received %d bytes, %v; want %d", len(r.out), r.err, len(payload))
	}
	if min := time.Duration(len(payload)) * 10 * time.Second / baud; took < min {
		t.Fatalf("%d bytes crossed in %v, faster than the line rate allows (%v)", len(payload), took, min)
	}

	// Cut: nothing arrives.
	if err := lab.Cut("a", LinkSerial); err != nil {
		t.Fatal(err)
	}
	ch = startReceive(4, 700*time.Millisecond)
	send(a, "lost")
	if r := <-ch; r.err == nil || r.out != "" {
		t.Fatalf("cable cut, yet b received %q", r.out)
	}
	if err := lab.Restore("a", LinkSerial); err != nil {
		t.Fatal(err)
	}
	ch = startReceive(4, 5*time.Second)
	send(a, "back")
	if r := <-ch; r.err != nil || r.out != "back" {
		t.Fatalf("cable restored, b received %q, %v; want back", r.out, r.err)
	}
}

func TestPowerOffAndOn(t *testing.T) {
	lab := Start(t, Options{})
	a, b := lab.Node("a"), lab.Node("b")
	mnt := lab.Mountpoint()
	run(t, a, "mount", "-t", "ext4", lab.DataDevice(), mnt)
	run(t, a, "sh", "-c", "echo synced > "+mnt+"/synced && sync && echo kept > /var/lib/tandem/kept && echo gone > /run/tandem/gone")
	// A process whose cwd is on the mount, and one holding the disk open.
	for _, script := range []string{"cd " + mnt + " && exec sleep 600", "exec sleep 600 < " + lab.QuorumDevice()} {
		if err := a.Command("sh", "-c", script).Start(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "the sleepers to start", func() bool {
		procs, _ := a.Processes()
		n := 0
		for _, c := range procs {
			if c == "sleep" {
				n++
			}
		}
		return n == 2
	})
	// Written after the last sync: a power loss loses it.
	run(t, a, "sh", "-c", "echo unsynced > "+mnt+"/unsynced")

	if err := lab.PowerOff("a"); err != nil {
		t.Fatal(err)
	}
	if a.Powered() {
		t.Fatal("a still powered")
	}
	if procs, err := a.Processes(); err != nil || len(procs) != 0 {
		t.Fatalf("a's processes after power off: %v, %v", procs, err)
	}
	if a.data.superblockLive() {
		t.Fatalf("a's data volume (%s) still has a live superblock", a.data.name)
	}
	if ok, _ := a.HasAddr(a.PublicAddr.Addr()); ok {
		t.Fatal("a still answers on its public address")
	}
	if _, err := a.Run(context.Background(), "true"); err == nil {
		t.Fatal("a command ran on a powered-off node")
	}
	// The survivor mounts the disk and sees what was synced, not the rest.
	run(t, b, "mount", "-t", "ext4", lab.DataDevice(), mnt)
	if got := strings.TrimSpace(run(t, b, "cat", mnt+"/synced")); got != "synced" {
		t.Fatalf("b read %q from the synced file", got)
	}
	if _, err := b.Run(context.Background(), "test", "-e", mnt+"/unsynced"); err == nil {
		t.Fatal("a file never synced survived the power loss")
	}
	run(t, b, "umount", mnt)

	if err := lab.PowerOn("a"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.HasAddr(a.PublicAddr.Addr()); !ok {
		t.Fatal("a came back without its public address")
	}
	if got := strings.TrimSpace(run(t, a, "cat", "/var/lib/tandem/kept")); got != "kept" {
		t.Fatalf("/var/lib/tandem lost its file across the reboot: %q", got)
	}
	if _, err := a.Run(context.Background(), "test", "-e", "/run/tandem/gone"); err == nil {
		t.Fatal("/run/tandem kept a file across the reboot")
	}
	if ok, _ := a.Mounted(); ok {
		t.Fatal("a came back with the data volume mounted")
	}
	// The disk works for a again.
	run(t, a, "dd", "if="+lab.QuorumDevice(), "of=/dev/null", "bs=4096", "count=1", "iflag=direct")
}

func TestFreezeAndThaw(t *testing.T) {
	lab := Start(t, Options{})
	a := lab.Node("a")
	counter := filepath.Join(a.Dir, "lib", "counter")
	if err := a.Command("sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /var/lib/tandem/counter; sleep 0.01; done").Start(); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		data, _ := os.ReadFile(counter)
		return strings.TrimSpace(string(data))
	}
	progress := func(what string) {
		t.Helper()
		first := read()
		eventually(t, 5*time.Second, what, func() bool { v := read(); return v != "" && v != first })
	}
	progress("the counter to run")
	if err := lab.Freeze("a"); err != nil {
		t.Fatal(err)
	}
	frozenAt := read()
	// Ten times the loop's period: a running loop would have moved.
	time.Sleep(300 * time.Millisecond)
	if got := read(); got != frozenAt {
		t.Fatalf("a frozen, yet its counter moved from %s to %s", frozenAt, got)
	}
	if err := lab.Thaw("a"); err != nil {
		t.Fatal(err)
	}
	progress("the counter to resume after thaw")
}

func TestWatchdogPowersOffAStarvedNode(t *testing.T) {
	const timeout = time.Second
	lab := Start(t, Options{WatchdogTimeout: timeout})
	a, b := lab.Node("a"), lab.Node("b")
	dev := lab.WatchdogDevice()

	// Magic close disarms: b feeds, then writes 'V' and stops.
	run(t, b, "sh", "-c", "for i in 1 2 3; do printf 1; sleep 0.1; done > "+dev+"; printf V > "+dev)
	disarmed := time.Now()
	// a feeds for a while, then stops without the magic close.
	run(t, a, "sh", "-c", "for i in 1 2 3 4 5; do printf 1; sleep 0.1; done > "+dev)
	lastFeed := time.Now()
	eventually(t, 10*time.Second, "the watchdog to power a off", func() bool { return !a.Powered() })
	if waited := time.Since(lastFeed); waited < timeout-100*time.Millisecond {
		t.Fatalf("a powered off %v after its last feed, before the %v timeout", waited, timeout)
	}
	if got := lab.WatchdogFired("a"); got != 1 {
		t.Fatalf("a's watchdog fired %d times, want 1", got)
	}
	// Twice b's timeout after its magic close, b is still up.
	time.Sleep(time.Until(disarmed.Add(2 * timeout)))
	if !b.Powered() || lab.WatchdogFired("b") != 0 {
		t.Fatalf("b's disarmed watchdog fired (%d), powered = %v", lab.WatchdogFired("b"), b.Powered())
	}
	// A rebooted node starts with a disarmed watchdog.
	if err := lab.PowerOn("a"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * timeout)
	if !a.Powered() {
		t.Fatal("a powered off again after reboot without touching its watchdog")
	}
}

func TestObserverFlagsDoubleActive(t *testing.T) {
	lab := Start(t, Options{})
	a, b := lab.Node("a"), lab.Node("b")
	obs := lab.Observe(ObserverSpec{})
	vip := FloatIP.String()
	run(t, a, "ip", "addr", "add", vip, "dev", PublicIf)
	eventually(t, 5*time.Second, "samples with a holding the address", func() bool { return obs.Samples() > 10 })
	if err := obs.Err(); err != nil {
		t.Fatalf("one holder is not a double active: %v", err)
	}
	// Plant the split brain.
	run(t, b, "ip", "addr", "add", vip, "dev", PublicIf)
	eventually(t, 5*time.Second, "the observer to flag the double-active address", func() bool {
		return len(obs.Violations()) > 0
	})
	v := obs.Violations()[0]
	if v.What != "address "+FloatIP.Addr().String() {
		t.Fatalf("violation %q, want the floating address", v)
	}
	if obs.Err() == nil {
		t.Fatal("Err() is nil with violations recorded")
	}

	// Both mounting the data volume is flagged too.
	obs2 := lab.Observe(ObserverSpec{Address: netip.MustParseAddr("198.18.0.99")})
	run(t, a, "mount", "-t", "ext4", "-o", "ro,noload", lab.DataDevice(), lab.Mountpoint())
	run(t, b, "mount", "-t", "ext4", "-o", "ro,noload", lab.DataDevice(), lab.Mountpoint())
	eventually(t, 5*time.Second, "the observer to flag the double mount", func() bool {
		for _, v := range obs2.Violations() {
			if v.What == "data volume" {
				return true
			}
		}
		return false
	})
}

func TestFenceAgent(t *testing.T) {
	lab := Start(t, Options{})
	a, b := lab.Node("a"), lab.Node("b")
	// agent runs the lab's fence agent on b with options on stdin, as a
	// fencing daemon there would.
	agent := func(stdin string) (string, int) {
		t.Helper()
		cmd := b.Command(lab.FenceAgent())
		cmd.Stdin = strings.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return out.String(), exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return out.String(), 0
	}
	if out, code := agent("action=status\nplug=a\n"); code != 0 || !strings.Contains(out, "Status: ON") {
		t.Fatalf("status of a running node: exit %d, %q", code, out)
	}
	if out, code := agent("action=off\nplug=a\n"); code != 0 || !strings.Contains(out, "Powered OFF") {
		t.Fatalf("off: exit %d, %q", code, out)
	}
	if a.Powered() {
		t.Fatal("the agent reported off but a is powered")
	}
	if out, code := agent("action=status\nport=a\n"); code != 2 || !strings.Contains(out, "Status: OFF") {
		t.Fatalf("status of a powered-off node: exit %d, %q (want 2)", code, out)
	}
	if out, code := agent("action=on\nplug=a\n"); code != 0 || !a.Powered() {
		t.Fatalf("on: exit %d, %q, powered %v", code, out, a.Powered())
	}
	if out, code := agent("action=monitor\n"); code != 0 {
		t.Fatalf("monitor: exit %d, %q", code, out)
	}
	if out, code := agent("action=off\nplug=c\n"); code != 1 || !strings.Contains(out, `unknown node "c"`) {
		t.Fatalf("off for an unknown plug: exit %d, %q", code, out)
	}
	if out, code := agent("action=off\n"); code != 1 || !strings.Contains(out, "plug") {
		t.Fatalf("off without a plug: exit %d, %q", code, out)
	}
	if out, code := agent("garbage line\n"); code != 1 || !strings.Contains(out, "line 1") {
		t.Fatalf("bad stdin: exit %d, %q", code, out)
	}
	out, code := agent("action=metadata\n")
	if code != 0 {
		t.Fatalf("metadata: exit %d", code)
	}
	var md struct {
		Name   string `xml:"name,attr"`
		Params []struct {
			Name string `xml:"name,attr"`
		} `xml:"parameters>parameter"`
		Actions []struct {
			Name string `xml:"name,attr"`
		} `xml:"actions>action"`
	}
	if err := xml.Unmarshal([]byte(out), &md); err != nil {
		t.Fatalf("metadata is not XML: %v\n%s", err, out)
	}
	if md.Name != "fence_tandemlab" || len(md.Params) < 2 || len(md.Actions) < 5 {
		t.Fatalf("metadata: %+v", md)
	}
	// The command-line form works too.
	cmd := b.Command(lab.FenceAgent(), "-o", "status", "-n", "b")
	if err := cmd.Run(); err != nil {
		t.Fatalf("status of b by command line: %v", err)
	}
}

func TestFailDiskForOneNode(t *testing.T) {
	lab := Start(t, Options{})
	a, b := lab.Node("a"), lab.Node("b")
	read := func(h *Host) error {
		_, err := h.Run(context.Background(), "dd", "if="+lab.QuorumDevice(), "of=/dev/null", "bs=4096", "count=1", "skip=8", "iflag=direct")
		return err
	}
	if err := read(a); err != nil {
		t.Fatal(err)
	}
	if err := lab.FailDisk("a"); err != nil {
		t.Fatal(err)
	}
	if err := read(a); err == nil {
		t.Fatal("a reads the disk after it was cut off")
	}
	if err := read(b); err != nil {
		t.Fatalf("b lost the disk with a: %v", err)
	}
	// A reboot does not mend a cut disk path.
	if err := lab.PowerOff("a"); err != nil {
		t.Fatal(err)
	}
	if err := lab.PowerOn("a"); err != nil {
		t.Fatal(err)
	}
	if err := read(a); err == nil {
		t.Fatal("a reads the disk after a reboot, though its path is still cut")
	}
	if err := lab.RestoreDisk("a"); err != nil {
		t.Fatal(err)
	}
	if err := read(a); err != nil {
		t.Fatalf("a cannot read the restored disk: %v", err)
	}
}

func TestControlSocket(t *testing.T) {
	lab := Start(t, Options{})
	resp, err := Dial(lab.ControlSocket(), Request{Op: "status"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status.Name != lab.Name || len(resp.Status.Hosts) != 3 {
		t.Fatalf("status: %+v", resp.Status)
	}
	if _, err := Dial(lab.ControlSocket(), Request{Op: "fault", Node: "a", Action: "cut", Link: "heartbeat"}); err != nil {
		t.Fatal(err)
	}
	st := lab.Status()
	if got := st.Hosts[0].Cut; len(got) != 1 || got[0] != "heartbeat" {
		t.Fatalf("a's cut links: %v", got)
	}
	for _, bad := range []Request{
		{Op: "explode"},
		{Op: "fault", Node: "z", Action: "cut", Link: "public"},
		{Op: "fault", Node: "a", Action: "cut", Link: "fibre"},
		{Op: "power", Node: "a", Action: "sideways"},
	} {
		if _, err := Dial(lab.ControlSocket(), bad); err == nil {
			t.Errorf("request %+v accepted", bad)
		}
	}
}

// TestPowerOffSendsNothing: a client connected to a node that loses power
// hears nothing, as from a real power loss: no FIN, no RST.
func TestPowerOffSendsNothing(t *testing.T) {
	RequireCommands(t, "socat", "socat")
	lab := Start(t, Options{})
	a := lab.Node("a")
	srv := a.Command("socat", "TCP-LISTEN:4455,bind="+a.PublicAddr.Addr().String()+",reuseaddr", "EXEC:cat")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	go srv.Wait()
	var conn net.Conn
	eventually(t, 5*time.Second, "a connection to a", func() bool {
		return lab.Client().Do(func() error {
			c, err := net.DialTimeout("tcp4", net.JoinHostPort(a.PublicAddr.Addr().String(), "4455"), time.Second)
			conn = c
			return err
		}) == nil
	})
	defer conn.Close()
	if err := lab.PowerOff("a"); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err := conn.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("after the power-off the client's read returned %v; a dead node sends nothing, so it must time out", err)
	}
}
