package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Unavailable says why this machine cannot run a lab, or "" when it can.
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "the lab needs root (network namespaces, loop devices, mounts, cgroups)"
	}
	root, err := cgroup2Root()
	if err != nil {
		return err.Error()
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.kill")); err != nil {
		if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
			return "cgroup v2 at " + root + " is not usable"
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return "no /dev/loop-control: loop devices are not available"
	}
	for _, c := range []struct{ cmd, pkg string }{{"nsenter", "util-linux"}, {"mkfs.ext4", "e2fsprogs"}} {
		if _, err := exec.LookPath(c.cmd); err != nil {
			return fmt.Sprintf("%s not found (Debian package %s)", c.cmd, c.pkg)
		}
	}
	return ""
}

// requiredEnv, set to 1, turns a missing lab prerequisite from a skip into
// a failure, so that CI cannot pass by skipping.
const requiredEnv = "TANDEM_LAB_REQUIRED"

// Require skips the test, with the reason, when the machine cannot run a
// lab, or fails it when TANDEM_LAB_REQUIRED=1.
func Require(t testing.TB) {
	t.Helper()
	if reason := Unavailable(); reason != "" {
		skipOrFail(t, reason)
	}
}

// RequireCommands is Require for programs from Debian packages: each pair
// is a command and the package that ships it.
func RequireCommands(t testing.TB, cmdPkg ...string) {
	t.Helper()
	for i := 0; i+1 < len(cmdPkg); i += 2 {
		if _, err := exec.LookPath(cmdPkg[i]); err != nil {
			skipOrFail(t, fmt.Sprintf("%s not found (install Debian package %s)", cmdPkg[i], cmdPkg[i+1]))
		}
	}
}

func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(requiredEnv) == "1" {
		t.Fatalf("%s=1 but %s", requiredEnv, reason)
	}
	t.Skip(reason)
}

// labNames lists the names of every lab that left something on the machine.
func labNames() []string {
	seen := map[string]bool{}
	add := func(name string) {
		if i := strings.IndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		name = strings.TrimSuffix(name, ".log")
		if CheckName(name) == nil {
			seen[name] = true
		}
	}
	for _, dir := range []string{netnsDir, BaseDir} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			add(e.Name())
		}
	}
	if root, err := cgroup2Root(); err == nil {
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if e.IsDir() {
				add(e.Name())
			}
		}
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

type leftovers struct {
	cgroups, netns, loops, mounts []string
	dir                           string
}

func find(name string) leftovers {
	var lo leftovers
	if root, err := cgroup2Root(); err == nil {
		lo.cgroups, _ = filepath.Glob(filepath.Join(root, name+"-*"))
	}
	lo.netns, _ = filepath.Glob(filepath.Join(netnsDir, name+"-*"))
	dir := WorkDir(name)
	lo.loops = loopsBackedUnder(dir)
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
				lo.mounts = append(lo.mounts, fields[4])
			}
		}
		f.Close()
	}
	if _, err := os.Stat(dir); err == nil {
		lo.dir = dir
	}
	return lo
}

// Leftovers lists what the lab called name left on the machine: cgroups
// (and so processes), network namespaces (and so bridges and veths), loop
// devices, mounts and its work directory. Empty after a clean Close.
func Leftovers(name string) []string {
	lo := find(name)
	var out []string
	for _, c := range lo.cgroups {
		pids, _ := cgroupPids(c)
		out = append(out, fmt.Sprintf("cgroup %s (%d processes)", c, len(pids)))
	}
	for _, n := range lo.netns {
		out = append(out, "network namespace "+n)
	}
	for _, l := range lo.loops {
		out = append(out, "loop device "+l)
	}
	for _, m := range lo.mounts {
		out = append(out, "mount "+m)
	}
	if lo.dir != "" {
		out = append(out, "directory "+lo.dir)
	}
	return out
}

// Sweep removes what labs left behind, found by their names: the lab called
// name, or every lab when name is empty. It kills their processes first and
// reports what it removed.
func Sweep(name string) ([]string, error) {
	names := []string{name}
	if name == "" {
		names = labNames()
	}
	var removed []string
	var errs []error
	for _, n := range names {
		if err := CheckName(n); err != nil {
			return removed, err
		}
		lo := find(n)
		for _, c := range lo.cgroups {
			if err := killCgroup(c); err != nil {
				errs = append(errs, err)
			}
			if err := removeCgroup(c); err != nil {
				errs = append(errs, err)
			} else {
				removed = append(removed, "cgroup "+c)
			}
		}
		for _, m := range lo.mounts {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("testenv: unmount %s: %w", m, err))
			} else {
				removed = append(removed, "mount "+m)
			}
		}
		for _, l := range lo.loops {
			// A filesystem dies with the last namespace that mounted it;
			// give it the moment it needs.
			ext4 := "/proc/fs/ext4/" + filepath.Base(l)
			_ = waitFor(10*time.Second, func() (bool, error) {
				_, err := os.Stat(ext4)
				return err != nil, nil
			}, "%s to be released", l)
			if err := detachLoop(l); err != nil {
				errs = append(errs, err)
			} else {
				removed = append(removed, "loop device "+l)
			}
		}
		for _, ns := range lo.netns {
			if err := deleteNetns(ns); err != nil {
				errs = append(errs, err)
			} else {
				removed = append(removed, "network namespace "+ns)
			}
		}
		if lo.dir != "" {
			if err := os.RemoveAll(lo.dir); err != nil {
				errs = append(errs, err)
			} else {
				removed = append(removed, "directory "+lo.dir)
			}
		}
		os.Remove(WorkDir(n) + ".log")
	}
	return removed, errors.Join(errs...)
}
