package resources

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	id         int
	parent     int
	dev        uint64 // st_dev of the files in the mount
	root       string // the path inside the filesystem that is mounted
	mountpoint string
	fstype     string
	source     string
}

// parseMountinfo parses the text of /proc/PID/mountinfo (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfo(data []byte) ([]mountEntry, error) {
	var out []mountEntry
	for line := 1; len(data) > 0; line++ {
		var text []byte
		text, data, _ = bytes.Cut(data, []byte{'\n'})
		f := strings.Fields(string(text))
		if len(f) == 0 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || len(f) < sep+3 {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", line, text)
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		dev, err3 := parseMajorMinor(f[2], 10)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", line, text)
		}
		out = append(out, mountEntry{
			id:         id,
			parent:     parent,
			dev:        dev,
			root:       unescapeOctal(f[3]),
			mountpoint: unescapeOctal(f[4]),
			fstype:     unescapeOctal(f[sep+1]),
			source:     unescapeOctal(f[sep+2]),
		})
	}
	return out, nil
}

// parseMajorMinor parses "8:1" (base 10, mountinfo) or "08:01" (base 16,
// maps) into a device number.
func parseMajorMinor(s string, base int) (uint64, error) {
	maj, min, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("device number %q: want major:minor", s)
	}
	a, err := strconv.ParseUint(maj, base, 32)
	if err != nil {
		return 0, fmt.Errorf("device number %q: %w", s, err)
	}
	b, err := strconv.ParseUint(min, base, 32)
	if err != nil {
		return 0, fmt.Errorf("device number %q: %w", s, err)
	}
	return unix.Mkdev(uint32(a), uint32(b)), nil
}

// unescapeOctal undoes the kernel's escaping of space, tab, newline and
// backslash as \040, \011, \012 and \134.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsAt returns the entries mounted at mountpoint, bottom of the stack
// first (mountinfo lists a mount after the one it covers).
func mountsAt(entries []mountEntry, mountpoint string) []mountEntry {
	var out []mountEntry
	for _, e := range entries {
		if e.mountpoint == mountpoint {
			out = append(out, e)
		}
	}
	return out
}

// mountsBelow returns the mountpoints strictly under mountpoint.
func mountsBelow(entries []mountEntry, mountpoint string) []string {
	var out []string
	for _, e := range entries {
		if e.mountpoint != mountpoint && pathUnder(e.mountpoint, mountpoint) {
			out = append(out, e.mountpoint)
		}
	}
	return out
}

// pathUnder reports whether p is dir or a path below it.
func pathUnder(p, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}
