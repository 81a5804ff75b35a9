package resources

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// MountOptions is a mount option string split as mount(8) splits it: the
// options the kernel takes as flags, and the rest, which go to the
// filesystem as its data string.
type MountOptions struct {
	// Flags are the MS_* flags for mount(2).
	Flags uintptr
	// Data is the comma-separated options for the filesystem, in the order
	// given.
	Data string
}

// mountFlags maps an option to the flag it sets (set) or clears (!set).
var mountFlags = map[string]struct {
	flag uintptr
	set  bool
}{
	"ro":            {unix.MS_RDONLY, true},
	"rw":            {unix.MS_RDONLY, false},
	"noatime":       {unix.MS_NOATIME, true},
	"atime":         {unix.MS_NOATIME, false},
	"nodiratime":    {unix.MS_NODIRATIME, true},
	"diratime":      {unix.MS_NODIRATIME, false},
	"relatime":      {unix.MS_RELATIME, true},
	"norelatime":    {unix.MS_RELATIME, false},
	"strictatime":   {unix.MS_STRICTATIME, true},
	"nostrictatime": {unix.MS_STRICTATIME, false},
	"lazytime":      {unix.MS_LAZYTIME, true},
	"nolazytime":    {unix.MS_LAZYTIME, false},
	"nosuid":        {unix.MS_NOSUID, true},
	"suid":          {unix.MS_NOSUID, false},
	"nodev":         {unix.MS_NODEV, true},
	"dev":           {unix.MS_NODEV, false},
	"noexec":        {unix.MS_NOEXEC, true},
	"exec":          {unix.MS_NOEXEC, false},
	"sync":          {unix.MS_SYNCHRONOUS, true},
	"async":         {unix.MS_SYNCHRONOUS, false},
	"dirsync":       {unix.MS_DIRSYNC, true},
	"silent":        {unix.MS_SILENT, true},
	"loud":          {unix.MS_SILENT, false},
}

// fstabOnly are options mount(8) reads from fstab and never hands to the
// kernel: they mean nothing for a resource that is mounted on demand.
var fstabOnly = map[string]bool{
	"defaults": true, "auto": true, "noauto": true, "nofail": true,
	"_netdev": true, "user": true, "nouser": true, "users": true,
	"owner": true, "group": true,
}

// refused are options that would make the resource something else than a
// filesystem on a block device mounted in one place.
var refused = map[string]string{
	"loop":    "the device must be a block device; set up the loop device outside",
	"bind":    "a bind mount is not a filesystem resource",
	"rbind":   "a bind mount is not a filesystem resource",
	"remount": "the resource mounts and unmounts; it does not remount",
	"move":    "the resource mounts and unmounts; it does not move mounts",
}

// ParseMountOptions splits a mount(8) option string ("noatime,ro,errors=panic")
// into flags and data. Later options override earlier ones ("ro,rw" is
// read-write). Commas inside double quotes do not split
// (context="a,b"). fstab-only options (defaults, noauto, nofail, _netdev,
// x-*, comment=…) are dropped, as mount(8) drops them.
func ParseMountOptions(s string) (MountOptions, error) {
	var o MountOptions
	opts, err := splitOptions(s)
	if err != nil {
		return o, err
	}
	var data []string
	for _, opt := range opts {
		if f, ok := mountFlags[opt]; ok {
			if f.set {
				o.Flags |= f.flag
			} else {
				o.Flags &^= f.flag
			}
			continue
		}
		if why, ok := refused[opt]; ok {
			return MountOptions{}, fmt.Errorf("mount option %q: %s", opt, why)
		}
		if fstabOnly[opt] || strings.HasPrefix(opt, "x-") || strings.HasPrefix(opt, "comment=") {
			continue
		}
		data = append(data, opt)
	}
	o.Data = strings.Join(data, ",")
	return o, nil
}

// splitOptions splits at commas outside double quotes and drops empty
// options.
func splitOptions(s string) ([]string, error) {
	var opts []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case r == ',' && !quoted:
			if t := strings.TrimSpace(cur.String()); t != "" {
				opts = append(opts, t)
			}
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	if quoted {
		return nil, fmt.Errorf("mount options %q: unbalanced double quote", s)
	}
	if t := strings.TrimSpace(cur.String()); t != "" {
		opts = append(opts, t)
	}
	return opts, nil
}
