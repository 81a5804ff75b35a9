package testenv

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// A lab re-executes the binary it runs in (a test binary, or tandem-lab) for
// two jobs: as a host's pid 1, and as the lab's fence agent. init() takes
// over before main or the tests run.
const (
	initEnv        = "TANDEM_LAB_INIT"
	fenceAgentName = "fence_tandemlab"
)

func init() {
	if cfg := os.Getenv(initEnv); cfg != "" {
		os.Exit(runInit(cfg))
	}
	if filepath.Base(os.Args[0]) == fenceAgentName {
		os.Exit(FenceAgentMain(os.Stdin, os.Stdout, os.Stderr, os.Args[1:]))
	}
}

// initConfig tells a host's init how to shape its mount namespace.
type initConfig struct {
	Binds []bindMount `json:"binds"`
	Tmpfs []string    `json:"tmpfs"`
}

type bindMount struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// runInit is a host's pid 1, in fresh mount and pid namespaces. It makes the
// mounts private, gives the host its own /proc and /sys, bind-mounts the
// host's directories and devices, reports on fd 3, then reaps orphans until
// the host is powered off.
func runInit(cfgJSON string) int {
	status := os.NewFile(3, "status")
	fail := func(format string, args ...any) int {
		fmt.Fprintf(status, "error: "+format+"\n", args...)
		return 1
	}
	var cfg initConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return fail("bad init config: %v", err)
	}
	// Signals from inside the host must not end it; only the lab does.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE)
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fail("make mounts private: %v", err)
	}
	// The copies of other namespaces' pins would keep those namespaces
	// alive as long as this host lives.
	if pins, err := os.ReadDir(netnsDir); err == nil {
		for _, p := range pins {
			_ = unix.Unmount(filepath.Join(netnsDir, p.Name()), unix.MNT_DETACH)
		}
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fail("mount /proc: %v", err)
	}
	_ = unix.Unmount("/sys", unix.MNT_DETACH)
	if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fail("mount /sys: %v", err)
	}
	for _, b := range cfg.Binds {
		st, err := os.Stat(b.Source)
		if err != nil {
			return fail("bind %s: %v", b.Source, err)
		}
		if err := makeTarget(b.Target, st.IsDir()); err != nil {
			return fail("bind target %s: %v", b.Target, err)
		}
		if err := unix.Mount(b.Source, b.Target, "", unix.MS_BIND, ""); err != nil {
			return fail("bind %s on %s: %v", b.Source, b.Target, err)
		}
	}
	for _, t := range cfg.Tmpfs {
		if err := os.MkdirAll(t, 0o755); err != nil {
			return fail("tmpfs %s: %v", t, err)
		}
		if err := unix.Mount("tmpfs", t, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return fail("tmpfs on %s: %v", t, err)
		}
	}
	fmt.Fprintln(status, "ok")
	status.Close()

	sigchld := make(chan os.Signal, 16)
	signal.Notify(sigchld, syscall.SIGCHLD)
	for {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
		<-sigchld
	}
}

func makeTarget(path string, dir bool) error {
	if dir {
		return os.MkdirAll(path, 0o755)
	}
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}
