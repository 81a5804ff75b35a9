package testenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Host is one machine of the lab: node a, node b, or the client.
type Host struct {
	// Name is "a", "b" or "client".
	Name string
	// PublicAddr is the host's own address on the public network.
	PublicAddr netip.Prefix
	// PublicAddr6 is the host's own IPv6 address on the public network,
	// in PublicNet6, added without duplicate address detection so that it
	// serves at once.
	PublicAddr6 netip.Prefix
	// HeartbeatAddr is the node's address on the heartbeat LAN; the client
	// has none.
	HeartbeatAddr netip.Prefix
	// Dir is the host's private directory on the machine running the lab:
	// Dir/etc is its /etc/tandem, Dir/lib its /var/lib/tandem.
	Dir string

	lab    *Lab
	nsPath string
	net    *nsHandle
	cg     *cgroup
	quorum *loopDev // nodes only
	data   *loopDev // nodes only
	serial string   // nodes only: this node's end of the cable
	wd     *watchdog

	mu       sync.Mutex
	initPID  int // 0 while powered off
	initDone chan struct{}
	dying    []chan struct{} // inits killed and not yet reaped
	frozen   bool
}

// IsNode reports whether the host is one of the cluster's nodes.
func (h *Host) IsNode() bool { return h.Name != "client" }

// NetnsPath is the host's network namespace, as /run/netns/NAME.
func (h *Host) NetnsPath() string { return h.nsPath }

// PID is the host's pid 1 as seen from the machine, 0 while powered off.
func (h *Host) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.initPID
}

// Powered reports whether the host is on.
func (h *Host) Powered() bool { return h.PID() != 0 }

// boot starts the host's init in fresh mount and pid namespaces, inside the
// host's network namespace and cgroup.
func (h *Host) boot() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.initPID != 0 {
		return nil
	}
	if h.cg == nil {
		// Every boot gets a fresh cgroup: once cgroup.kill has been used on
		// a group, this kernel also kills every child later cloned into it.
		cg, err := newCgroup(nsName(h.lab.Name, h.Name))
		if err != nil {
			return err
		}
		h.cg = cg
	}
	cfg := initConfig{Tmpfs: []string{"/run/tandem"}}
	cfg.Binds = append(cfg.Binds,
		bindMount{filepath.Join(h.Dir, "etc"), "/etc/tandem"},
		bindMount{filepath.Join(h.Dir, "lib"), "/var/lib/tandem"},
	)
	if h.IsNode() {
		cfg.Binds = append(cfg.Binds,
			bindMount{h.quorum.path, h.lab.QuorumDevice()},
			bindMount{h.data.path, h.lab.DataDevice()},
			bindMount{h.serial, h.lab.SerialDevice()},
			bindMount{h.wd.path, h.lab.WatchdogDevice()},
		)
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"tandem-lab-init:" + h.lab.Name + "-" + h.Name}
	cmd.Env = []string{initEnv + "=" + string(cfgJSON), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.ExtraFiles = []*os.File{w}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWNS | unix.CLONE_NEWPID,
		Setsid:      true,
		UseCgroupFD: true,
		CgroupFD:    h.cg.fd,
	}
	err = onThread(func() error {
		if err := enterNetns(h.nsPath); err != nil {
			return err
		}
		return cmd.Start()
	})
	w.Close()
	if err != nil {
		return fmt.Errorf("testenv: boot %s: %w", h.Name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	line, _ := bufio.NewReader(r).ReadString('\n')
	if strings.TrimSpace(line) != "ok" {
		cmd.Process.Kill()
		<-done
		if line == "" {
			line = fmt.Sprintf("init exited without a word (%v): %s", cmd.ProcessState, stderr.String())
		}
		return fmt.Errorf("testenv: boot %s: %s", h.Name, strings.TrimSpace(line))
	}
	h.initPID = cmd.Process.Pid
	h.initDone = done
	return nil
}

// Command returns a command that runs name inside the host: in its network,
// mount and pid namespaces and its cgroup, with / as working directory. The
// command is killed if the process running it dies. On a powered-off host,
// Start fails.
func (h *Host) Command(name string, arg ...string) *exec.Cmd {
	return h.CommandContext(context.Background(), name, arg...)
}

// CommandContext is Command with a context that kills the command.
func (h *Host) CommandContext(ctx context.Context, name string, arg ...string) *exec.Cmd {
	h.mu.Lock()
	pid, cgfd := h.initPID, -1
	if h.cg != nil {
		cgfd = h.cg.fd
	}
	h.mu.Unlock()
	cmd := nsenterCommand(ctx, pid, cgfd, name, arg...)
	if pid == 0 {
		cmd.Err = fmt.Errorf("testenv: host %s is powered off", h.Name)
	}
	return cmd
}

// hostEnv is the environment of commands run inside a host.
var hostEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C"}

// nsenterCommand runs name in the namespaces of the process pid, cloned
// straight into the cgroup cgfd. setpriv kills the command when nsenter
// dies, so a cancelled context ends the command inside the host too.
func nsenterCommand(ctx context.Context, pid, cgfd int, name string, arg ...string) *exec.Cmd {
	args := append([]string{"--target", strconv.Itoa(pid), "--net", "--mount", "--pid", "--wdns=/", "--", "setpriv", "--pdeathsig", "KILL", "--", name}, arg...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = hostEnv
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgfd}
	return cmd
}

// Run runs a command inside the host and returns its combined output. A
// non-zero exit is an error that carries the output.
func (h *Host) Run(ctx context.Context, name string, arg ...string) (string, error) {
	var out bytes.Buffer
	cmd := h.CommandContext(ctx, name, arg...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("testenv: %s: %s %s: %w: %s", h.Name, name, strings.Join(arg, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Do runs fn on an OS thread inside the host's network namespace, for Go
// code that opens sockets or talks netlink as a program on the host would.
// The mount namespace stays the caller's.
func (h *Host) Do(fn func() error) error {
	return onThread(func() error {
		if err := enterNetns(h.nsPath); err != nil {
			return err
		}
		return fn()
	})
}

// HasAddr reports whether the host currently holds ip on any interface.
func (h *Host) HasAddr(ip netip.Addr) (bool, error) { return h.net.hasAddr(ip) }

// Mounted reports whether the host's data volume is mounted in the host.
func (h *Host) Mounted() (bool, error) {
	pid := h.PID()
	if pid == 0 || h.data == nil {
		return false, nil
	}
	return mountedDev(pid, h.data.major, h.data.minor)
}

func mountedDev(pid int, major, minor uint32) (bool, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return false, nil
		}
		return false, err
	}
	want := fmt.Sprintf(" %d:%d ", major, minor)
	return bytes.Contains(data, []byte(want)), nil
}

// Processes lists the commands (comm) of every process of the host.
func (h *Host) Processes() (map[int]string, error) {
	h.mu.Lock()
	cg := h.cg
	h.mu.Unlock()
	if cg == nil {
		return map[int]string{}, nil
	}
	pids, err := cg.pids()
	if err != nil {
		return nil, err
	}
	out := make(map[int]string, len(pids))
	for _, pid := range pids {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			continue // exited meanwhile
		}
		out[pid] = strings.TrimSpace(string(comm))
	}
	return out, nil
}

// Running reports whether a process called comm runs on the host.
func (h *Host) Running(comm string) (bool, error) {
	procs, err := h.Processes()
	if err != nil {
		return false, err
	}
	for _, c := range procs {
		if c == comm {
			return true, nil
		}
	}
	return false, nil
}

// setNetwork brings the host's interfaces up with its own addresses only,
// or takes them down and clears them.
func (h *Host) setNetwork(up bool) error {
	type hostIf struct {
		name  string
		addrs []netip.Prefix
	}
	pub := hostIf{PublicIf, []netip.Prefix{h.PublicAddr}}
	if h.PublicAddr6.IsValid() {
		pub.addrs = append(pub.addrs, h.PublicAddr6)
	}
	ifs := []hostIf{pub}
	if h.HeartbeatAddr.IsValid() {
		ifs = append(ifs, hostIf{HeartbeatIf, []netip.Prefix{h.HeartbeatAddr}})
	}
	for _, i := range ifs {
		if up {
			if err := h.net.setAddrs(i.name, i.addrs...); err != nil {
				return err
			}
			if err := h.net.up(i.name); err != nil {
				return err
			}
			continue
		}
		if err := h.net.down(i.name); err != nil {
			return err
		}
		if err := h.net.setAddrs(i.name); err != nil {
			return err
		}
	}
	return h.net.up("lo")
}

// kill ends every process of the host at once and removes its cgroup.
// The old init lingers a moment while the kernel reaps the orphans of its
// pid namespace, though nothing of the host runs any more: Close waits for
// it, a power-off does not.
func (h *Host) kill() error {
	h.mu.Lock()
	cg, done := h.cg, h.initDone
	h.cg, h.initPID, h.initDone, h.frozen = nil, 0, nil, false
	if done != nil {
		h.dying = append(h.dying, done)
	}
	h.mu.Unlock()
	if cg == nil {
		return nil
	}
	return cg.remove()
}

// reap waits for every init this host has had to be gone.
func (h *Host) reap(timeout time.Duration) error {
	h.mu.Lock()
	dying := h.dying
	h.dying = nil
	h.mu.Unlock()
	deadline := time.After(timeout)
	for _, done := range dying {
		select {
		case <-done:
		case <-deadline:
			return fmt.Errorf("testenv: %s: an old init did not exit within %v", h.Name, timeout)
		}
	}
	return nil
}
