package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroup2Root finds where the cgroup v2 hierarchy is mounted.
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// fields: id parent maj:min root mountpoint opts ... - fstype source superopts
		line := sc.Text()
		sep := strings.Index(line, " - ")
		if sep < 0 {
			continue
		}
		post := strings.Fields(line[sep+3:])
		pre := strings.Fields(line[:sep])
		if len(post) > 0 && post[0] == "cgroup2" && len(pre) >= 5 {
			return pre[4], nil
		}
	}
	return "", errors.New("testenv: no cgroup v2 hierarchy is mounted")
}

// cgroup is one cgroup v2 group: a host's processes, frozen and killed
// together.
type cgroup struct {
	path string
	fd   int // O_PATH directory fd, for CLONE_INTO_CGROUP
}

func newCgroup(name string) (*cgroup, error) {
	root, err := cgroup2Root()
	if err != nil {
		return nil, err
	}
	p := filepath.Join(root, name)
	if err := os.Mkdir(p, 0o755); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("testenv: cgroup %s: %w", p, err)
	}
	fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("testenv: open cgroup %s: %w", p, err)
	}
	return &cgroup{path: p, fd: fd}, nil
}

func (c *cgroup) write(file, value string) error {
	if err := os.WriteFile(filepath.Join(c.path, file), []byte(value), 0); err != nil {
		return fmt.Errorf("testenv: cgroup %s: write %s: %w", c.path, file, err)
	}
	return nil
}

// pids lists the processes in the group.
func (c *cgroup) pids() ([]int, error) { return cgroupPids(c.path) }

func cgroupPids(path string) ([]int, error) {
	data, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// freeze stops every process of the group and waits until the kernel says
// the group is frozen.
func (c *cgroup) freeze(frozen bool) error {
	v, want := "0", []byte("frozen 0")
	if frozen {
		v, want = "1", []byte("frozen 1")
	}
	if err := c.write("cgroup.freeze", v); err != nil {
		return err
	}
	return waitFor(5*time.Second, func() (bool, error) {
		data, err := os.ReadFile(filepath.Join(c.path, "cgroup.events"))
		return bytes.Contains(data, want), err
	}, "cgroup %s to reach %q", c.path, want)
}

// kill sends SIGKILL to every process of the group at once and waits until
// the group is empty.
func (c *cgroup) kill() error { return killCgroup(c.path) }

func killCgroup(path string) error {
	if err := os.WriteFile(filepath.Join(path, "cgroup.kill"), []byte("1"), 0); err != nil {
		return fmt.Errorf("testenv: kill cgroup %s: %w", path, err)
	}
	// Killed tasks of a frozen group die once thawed; nothing of theirs runs.
	_ = os.WriteFile(filepath.Join(path, "cgroup.freeze"), []byte("0"), 0)
	return waitFor(10*time.Second, func() (bool, error) {
		pids, err := cgroupPids(path)
		return len(pids) == 0, err
	}, "cgroup %s to empty", path)
}

func (c *cgroup) remove() error {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
	if err := c.kill(); err != nil {
		return err
	}
	return removeCgroup(c.path)
}

func removeCgroup(path string) error {
	// rmdir can race with the last task's exit; retry briefly.
	return waitFor(5*time.Second, func() (bool, error) {
		err := unix.Rmdir(path)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return true, nil
		}
		if errors.Is(err, unix.EBUSY) {
			return false, nil
		}
		return false, err
	}, "removal of cgroup %s", path)
}

// waitFor polls cond until it is true, fails, or the timeout passes.
func waitFor(timeout time.Duration, cond func() (bool, error), what string, args ...any) error {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("testenv: waiting for %s: %w", fmt.Sprintf(what, args...), err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testenv: timed out after %v waiting for %s", timeout, fmt.Sprintf(what, args...))
		}
		time.Sleep(delay)
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}
