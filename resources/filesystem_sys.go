package resources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// realFS is fsSys on the running system.
type realFS struct{}

func (realFS) stat(path string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Stat(path, &st)
	return st, err
}

func (realFS) resolve(path string) (string, error) { return filepath.EvalSymlinks(path) }

// mountinfoBuf is the buffer the mount table is read into, kept from one
// read to the next: a monitor reads the table every interval, and the
// parsed entries copy what they keep.
var mountinfoBuf struct {
	sync.Mutex
	b []byte
}

func (realFS) mountinfo() ([]mountEntry, error) {
	mountinfoBuf.Lock()
	defer mountinfoBuf.Unlock()
	b, err := readProcFile("/proc/self/mountinfo", mountinfoBuf.b[:0])
	mountinfoBuf.b = b
	if err != nil {
		return nil, err
	}
	return parseMountinfo(b)
}

// readProcFile appends the content of a file of /proc, which stat gives
// no size for, to buf: with a buffer that holds it, in one read and the
// read that finds the end.
func readProcFile(path string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return buf, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, max(16<<10, cap(buf)))...)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return buf, &os.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

func (realFS) mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}

// mountHelperDirs are where mount(8) looks for /sbin/mount.TYPE helpers.
var mountHelperDirs = []string{"/sbin", "/usr/sbin", "/sbin/fs.d", "/sbin/fs"}

func (realFS) mountHelper(fstype string) string {
	for _, d := range mountHelperDirs {
		p := filepath.Join(d, "mount."+fstype)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func (realFS) runHelper(ctx context.Context, helper string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, helper, args...).CombinedOutput()
}

func (realFS) unmount(target string) error { return unix.Unmount(target, 0) }

func (realFS) fsck(ctx context.Context, fstype, device string) ([]byte, int, error) {
	out, err := exec.CommandContext(ctx, "fsck", "-a", "-T", "-t", fstype, device).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil && ee.Exited() {
		return out, ee.ExitCode(), nil
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return out, -1, err
	}
	return out, 0, nil
}

// probe reads the mount's root directory and the first 4 KiB of the device,
// the device with O_DIRECT so the read reaches the disk and not the page
// cache.
func (realFS) probe(mountpoint, device string) error {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return err
	}
	d, err := os.Open(mountpoint)
	if err != nil {
		return err
	}
	_, err = d.Readdirnames(1)
	d.Close()
	if err != nil && err != io.EOF {
		return err
	}
	return readDeviceHead(device)
}

func readDeviceHead(device string) error {
	const size = 4096
	fd, err := unix.Open(device, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.Open(device, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", device, err)
	}
	defer unix.Close(fd)
	// An anonymous mapping is page aligned, as O_DIRECT wants.
	buf, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("read %s: %w", device, err)
	}
	defer unix.Munmap(buf)
	n, err := unix.Pread(fd, buf, 0)
	if errors.Is(err, unix.EINVAL) {
		// A sector larger than the buffer: read through the page cache.
		var f *os.File
		if f, err = os.Open(device); err == nil {
			n, err = f.ReadAt(buf, 0)
			f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", device, err)
	}
	if n < size {
		return fmt.Errorf("read %s: short read: %d of %d bytes", device, n, size)
	}
	return nil
}

func (realFS) holders(mountpoint string, dev uint64) ([]holder, error) {
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return nil, fmt.Errorf("find processes holding %s: %w", mountpoint, err)
	}
	return findHolders("/proc", mountpoint, dev, ns)
}

func (realFS) signal(pid int, sig unix.Signal) error { return unix.Kill(pid, sig) }

// alive reports whether pid is a process that has not yet exited; a zombie
// has let go of its files, so it counts as gone.
func (realFS) alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain them.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	return b[i+2] != 'Z' && b[i+2] != 'X'
}

func (r realFS) knownFS(fstype string) (bool, error) {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false, err
	}
	if kernelHasFS(b, fstype) {
		return true, nil
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		alias := filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:]), "modules.alias")
		if b, err := os.ReadFile(alias); err == nil && moduleAliasHasFS(b, fstype) {
			return true, nil
		}
	}
	return r.mountHelper(fstype) != "", nil
}

func (realFS) pid() int { return os.Getpid() }
