package resources

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// holder is a process that keeps a mount busy.
type holder struct {
	pid  int
	comm string
	why  string // the first thing found: "cwd", "root", "exe", "fd 3", "maps"
}

func (h holder) String() string {
	if h.comm == "" {
		return fmt.Sprintf("pid %d", h.pid)
	}
	return fmt.Sprintf("pid %d (%s)", h.pid, h.comm)
}

// findHolders searches the proc tree at procRoot (normally /proc) for the
// processes that keep the mount at mountpoint busy, as fuser -m does: a
// working directory, root directory, executable or open file under
// mountpoint, or a memory mapping of a file under it. A mapping also counts
// when its device number is dev (0: do not match by device), which finds
// mappings of deleted files and of files reached through another path.
//
// Links are matched by path, never by stat(2): following a process's
// links into an unrelated, hung network filesystem would hang the search.
// Processes that vanish or cannot be read during the walk are skipped.
//
// When mntNS is not empty, only processes in that mount namespace (the
// target of their ns/mnt link, "mnt:[4026531841]") are searched. A process
// in another mount namespace uses its own copy of the mount, which does not
// keep this one busy, and there the same path may be another filesystem
// altogether: a lab's other node, a container.
func findHolders(procRoot, mountpoint string, dev uint64, mntNS string) ([]holder, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("find processes holding %s: %w", mountpoint, err)
	}
	var out []holder
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		if mntNS != "" {
			if ns, err := os.Readlink(filepath.Join(dir, "ns", "mnt")); err != nil || ns != mntNS {
				continue
			}
		}
		why := holds(dir, mountpoint, dev)
		if why == "" {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		out = append(out, holder{pid: pid, comm: strings.TrimSpace(string(comm)), why: why})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out, nil
}

// holds returns why the process whose proc directory is dir holds the mount,
// or "" when it does not.
func holds(dir, mountpoint string, dev uint64) string {
	for _, l := range []string{"cwd", "root", "exe"} {
		if t, err := os.Readlink(filepath.Join(dir, l)); err == nil && pathUnder(t, mountpoint) {
			return l
		}
	}
	fds, _ := os.ReadDir(filepath.Join(dir, "fd"))
	for _, fd := range fds {
		if t, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil && pathUnder(t, mountpoint) {
			return "fd " + fd.Name()
		}
	}
	if maps, err := os.ReadFile(filepath.Join(dir, "maps")); err == nil && mapsHold(maps, mountpoint, dev) {
		return "maps"
	}
	return ""
}

// mapsHold reports whether a /proc/PID/maps text maps a file under
// mountpoint or on device dev. A line reads
//
//	7f2c4a1e5000-7f2c4a1e7000 r--p 00000000 08:01 1835030  /usr/lib/x.so
func mapsHold(maps []byte, mountpoint string, dev uint64) bool {
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[4] == "0" {
			continue // anonymous mapping
		}
		if dev != 0 {
			if d, err := parseMajorMinor(f[3], 16); err == nil && d == dev {
				return true
			}
		}
		if len(f) >= 6 && pathUnder(strings.Join(f[5:], " "), mountpoint) {
			return true
		}
	}
	return false
}

// describeHolders lists holders for an error message:
// "pid 123 (sleep), pid 124 (smbd)".
func describeHolders(hs []holder) string {
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = h.String()
	}
	return strings.Join(s, ", ")
}
