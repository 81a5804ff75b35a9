package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/admin"
	"github.com/tandem-ha/tandem/testenv"
)

// The pair tests run real tandemd and haclient binaries in the lab's nodes,
// with real smbd, and a real client reading through the floating address.

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds tandemd and haclient once per test run.
func binaries(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "tandem-bin-")
		if binErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", binDir+"/", "github.com/tandem-ha/tandem/cmd/tandemd", "github.com/tandem-ha/tandem/cmd/haclient").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

type pairOptions = testenv.PairConfig

type pair struct {
	t     testing.TB
	lab   *testenv.Lab
	bin   string
	opts  pairOptions
	obs   *testenv.Observer
	mu    sync.Mutex
	procs map[string]*daemonProc
}

type daemonProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

const shareFile = testenv.ShareFile

// newPair builds a lab with both nodes configured, the data volume holding
// a share with one file, and the observer running. It starts no daemon.
func newPair(t testing.TB, o pairOptions) *pair {
	t.Helper()
	return newPairIn(t, o, testenv.Options{})
}

// newPairIn is newPair in a lab built with the given options.
func newPairIn(t testing.TB, o pairOptions, lo testenv.Options) *pair {
	t.Helper()
	testenv.RequireCommands(t, "smbd", "samba", "smbclient", "smbclient", "testparm", "samba-common-bin")
	bin := binaries(t)
	lab := testenv.Start(t, lo)
	p := &pair{t: t, lab: lab, bin: bin, opts: o, procs: map[string]*daemonProc{}}
	if err := lab.PrepareShare("served by tandem"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		p.writeConfig(n, p.config())
	}
	p.obs = lab.Observe(testenv.ObserverSpec{})
	t.Cleanup(func() {
		p.obs.Stop()
		for _, n := range []string{"a", "b"} {
			p.stop(n)
		}
		if err := p.obs.Err(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			for _, n := range []string{"a", "b"} {
				log, _ := os.ReadFile(p.logPath(n))
				t.Logf("tandemd log of %s:\n%s", n, tail(string(log), 120))
			}
			for _, e := range lab.Events() {
				t.Logf("lab: %s %s", e.At.Format("15:04:05.000"), e.What)
			}
		}
	})
	return p
}

func tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func (p *pair) config() string { return p.lab.TandemConfig(p.opts) }

// writeConfig puts a node's /etc/tandem in place.
func (p *pair) writeConfig(node, cfg string) {
	p.t.Helper()
	if err := p.lab.InstallTandem(node, cfg); err != nil {
		p.t.Fatal(err)
	}
}

func (p *pair) logPath(node string) string { return filepath.Join(p.lab.Node(node).Dir, "tandemd.log") }

// start runs tandemd in the node, as its init system would, with env
// added to its environment.
func (p *pair) start(node string, env ...string) {
	p.t.Helper()
	logf, err := os.OpenFile(p.logPath(node), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	cmd := p.lab.Node(node).Command(p.bin+"/tandemd", "--config", "/etc/tandem/tandem.toml", "--node", node, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	dp := &daemonProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(dp.done)
	}()
	p.mu.Lock()
	p.procs[node] = dp
	p.mu.Unlock()
}

// stop sends tandemd SIGTERM and waits for it to hand over and exit.
func (p *pair) stop(node string) {
	p.mu.Lock()
	dp := p.procs[node]
	delete(p.procs, node)
	p.mu.Unlock()
	if dp == nil {
		return
	}
	// Signal the daemon itself, inside the node, not nsenter.
	p.lab.Node(node).Run(context.Background(), "pkill", "-TERM", "-x", "tandemd")
	select {
	case <-dp.done:
	case <-time.After(60 * time.Second):
		dp.cmd.Process.Signal(syscall.SIGKILL)
		p.t.Errorf("tandemd on %s did not stop within 60 s of SIGTERM", node)
		<-dp.done
	}
}

// haclient runs haclient in the node.
func (p *pair) haclient(node string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := p.lab.Node(node).CommandContext(ctx, p.bin+"/haclient", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (p *pair) status(node string) (admin.Status, error) {
	var st admin.Status
	out, err := p.haclient(node, "status", "--json")
	if err != nil {
		return st, fmt.Errorf("haclient status on %s: %v: %s", node, err, out)
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("haclient status --json on %s: %v: %s", node, err, out)
	}
	return st, nil
}

// role is the node's role by its own account, "" when it does not answer.
func (p *pair) role(node string) admin.Role {
	st, err := p.status(node)
	if err != nil {
		return ""
	}
	if l := st.Local(); l != nil {
		return l.Role
	}
	return ""
}

// waitFor polls cond until it holds or the time is up.
func (p *pair) waitFor(timeout time.Duration, what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startBoth starts tandemd on both nodes and waits until one is active,
// which it returns.
func (p *pair) startBoth() string {
	p.t.Helper()
	p.start("a")
	p.start("b")
	return p.waitActive(30 * time.Second)
}

// waitActive waits until exactly one node says it is active and the other
// says standby, and returns the active one.
func (p *pair) waitActive(timeout time.Duration) string {
	p.t.Helper()
	var active string
	p.waitFor(timeout, "one active and one standby node", func() bool {
		ra, rb := p.role("a"), p.role("b")
		switch {
		case ra == admin.RoleActive && rb == admin.RoleStandby:
			active = "a"
		case rb == admin.RoleActive && ra == admin.RoleStandby:
			active = "b"
		default:
			return false
		}
		return true
	})
	return active
}

// waitRole waits for a node to report a role.
func (p *pair) waitRole(node string, role admin.Role, timeout time.Duration) {
	p.t.Helper()
	p.waitFor(timeout, fmt.Sprintf("%s to be %s", node, role), func() bool { return p.role(node) == role })
}

// read makes the client read the share's file through the floating
// address, retrying until it works or the time is up.
func (p *pair) read(timeout time.Duration) {
	p.t.Helper()
	var out string
	var err error
	p.waitFor(timeout, "the client to read the share through the floating address", func() bool {
		out, err = readOnce(p.lab, time.Second)
		return err == nil
	})
	if !strings.Contains(out, "served by tandem") {
		p.t.Fatalf("the client read %q", out)
	}
}

// readOnce is one smbclient attempt, bounded.
func readOnce(lab *testenv.Lab, bound time.Duration) (string, error) { return lab.ReadShare(bound) }

// holder says which node holds the floating address now.
func (p *pair) holder() string {
	for _, n := range []string{"a", "b"} {
		if ok, _ := p.lab.Node(n).HasAddr(testenv.FloatIP.Addr()); ok {
			return n
		}
	}
	return ""
}

func other(n string) string {
	if n == "a" {
		return "b"
	}
	return "a"
}

func netDialUDP(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	return net.DialUDP("udp4", nil, ua)
}
