package smbservice

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// procRoot is where the process table is mounted.
const procRoot = "/proc"

// procStat is the part of /proc/PID/stat that supervision needs.
type procStat struct {
	pid     int
	comm    string
	state   byte
	ppid    int
	session int
	start   uint64 // clock ticks after boot; with pid, it names one process for good
}

// gone reports whether the process has exited: a zombie holds no resources
// and waits only to be reaped.
func (s procStat) gone() bool { return s.state == 'Z' || s.state == 'X' }

// parseStat parses the text of /proc/PID/stat. The command name sits in
// parentheses and may itself contain spaces and parentheses, so the fields
// are counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("no (comm) field")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return procStat{}, fmt.Errorf("pid: %w", err)
	}
	f := strings.Fields(string(b[end+1:]))
	// After comm: state(3) ppid(4) pgrp(5) session(6) ... starttime(22).
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("%d fields after comm, want at least 20", len(f))
	}
	s := procStat{pid: pid, comm: string(b[open+1 : end]), state: f[0][0]}
	if s.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("ppid: %w", err)
	}
	if s.session, err = strconv.Atoi(f[3]); err != nil {
		return procStat{}, fmt.Errorf("session: %w", err)
	}
	if s.start, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("starttime: %w", err)
	}
	return s, nil
}

// readStat reads one process's stat. A process that does not exist gives an
// error for which os.IsNotExist holds.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	s, err := parseStat(b)
	if err != nil {
		return procStat{}, fmt.Errorf("%s/%d/stat: %w", procRoot, pid, err)
	}
	return s, nil
}

// allStats reads the stat of every process. Processes that exit during the
// scan are left out.
func allStats() ([]procStat, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readStat(pid)
		if err != nil {
			if os.IsNotExist(err) || isESRCH(err) {
				continue
			}
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// family returns the live processes that belong to the smbd whose main
// process is leader: its session (smbd runs in a session of its own, so the
// session id is the leader's pid and outlives it) and every descendant of the
// leader, in case one left the session. The leader itself is included while
// it lives. The result is sorted by pid.
func family(stats []procStat, leader int) []procStat {
	in := map[int]bool{leader: true}
	for _, s := range stats {
		if s.session == leader {
			in[s.pid] = true
		}
	}
	for grew := true; grew; {
		grew = false
		for _, s := range stats {
			if !in[s.pid] && in[s.ppid] {
				in[s.pid], grew = true, true
			}
		}
	}
	var out []procStat
	for _, s := range stats {
		if in[s.pid] && !s.gone() {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b procStat) int { return a.pid - b.pid })
	return out
}

// readExe returns the executable of process pid, without the " (deleted)"
// the kernel appends when the file was replaced since.
func readExe(pid int) (string, error) {
	exe, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), "exe"))
	return strings.TrimSuffix(exe, " (deleted)"), err
}

// isSmbd reports whether process pid runs the smbd binary at path: its
// executable is that file, or, when the executable cannot be read, its name
// is smbd's.
func isSmbd(pid int, comm, path string) bool {
	exe, err := readExe(pid)
	if err != nil {
		return strings.HasPrefix(comm, "smbd")
	}
	return exe == path || exe == resolve(path)
}

// isSamba reports whether exe is smbd at path or another program of Samba
// that smbd starts: samba-dcerpcd and its rpcd_* workers, samba-bgqd.
func isSamba(exe, path string) bool {
	if exe == path || exe == resolve(path) {
		return true
	}
	base := filepath.Base(exe)
	return strings.HasPrefix(base, "smbd") || strings.HasPrefix(base, "samba") ||
		strings.HasPrefix(base, "rpcd_") || strings.Contains(exe, "/samba/")
}

// resolve returns path with its symbolic links resolved, or path when that
// fails.
func resolve(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return path
}

// isESRCH reports whether err says the process vanished while being read.
func isESRCH(err error) bool { return errors.Is(err, syscall.ESRCH) }
