package testenv

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// StartDetached starts cmd, a process that will run the lab called name, in
// a session of its own and in the lab's own cgroup, so it outlives its
// parent and Sweep still finds it if it hangs.
func StartDetached(name string, cmd *exec.Cmd) error {
	if err := CheckName(name); err != nil {
		return err
	}
	cg, err := newCgroup(nsName(name, "lab"))
	if err != nil {
		return err
	}
	defer unix.Close(cg.fd)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, UseCgroupFD: true, CgroupFD: cg.fd}
	return cmd.Start()
}

// HostCommand returns a command that runs argv inside a host of the lab
// called name, which another process runs: the same as Host.Command.
func HostCommand(name, host string, argv ...string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("testenv: no command to run")
	}
	resp, err := Dial(filepath.Join(WorkDir(name), "lab.sock"), Request{Op: "status"})
	if err != nil {
		return nil, err
	}
	pid := 0
	for _, h := range resp.Status.Hosts {
		if h.Name == host {
			pid = h.PID
		}
	}
	if pid == 0 {
		return nil, fmt.Errorf("testenv: lab %s: host %q is unknown or powered off", name, host)
	}
	root, err := cgroup2Root()
	if err != nil {
		return nil, err
	}
	cgPath := filepath.Join(root, nsName(name, host))
	fd, err := unix.Open(cgPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("testenv: cgroup of %s: %w", host, err)
	}
	// The descriptor stays open for the caller's life: HostCommand serves
	// short-lived commands such as tandem-lab exec.
	return nsenterCommand(context.Background(), pid, fd, argv[0], argv[1:]...), nil
}
