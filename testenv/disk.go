package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// loopDev is one loop device over an image file.
type loopDev struct {
	path  string // /dev/loopN
	name  string // loopN
	major uint32
	minor uint32
}

// attachLoop binds a free loop device to the image file.
func attachLoop(image string) (*loopDev, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	defer ctl.Close()
	backing, err := os.OpenFile(image, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	defer backing.Close()
	// Another process may grab the same free device between the two calls;
	// try again with the next one.
	var lastErr error
	for range 20 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("testenv: no free loop device: %w", err)
		}
		path := "/dev/loop" + strconv.Itoa(n)
		dev, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			lastErr = err
			continue
		}
		cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
		copy(cfg.Info.File_name[:], image)
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err != nil {
			dev.Close()
			lastErr = err
			if errors.Is(err, unix.EBUSY) {
				continue
			}
			return nil, fmt.Errorf("testenv: configure %s over %s: %w", path, image, err)
		}
		var st unix.Stat_t
		err = unix.Fstat(int(dev.Fd()), &st)
		dev.Close()
		if err != nil {
			return nil, err
		}
		return &loopDev{path: path, name: "loop" + strconv.Itoa(n), major: unix.Major(st.Rdev), minor: unix.Minor(st.Rdev)}, nil
	}
	return nil, fmt.Errorf("testenv: attach a loop device to %s: %w", image, lastErr)
}

// setLimit sets how many bytes of the image the device shows: 0 for all of
// it. A limit of one sector makes every later I/O of this device fail while
// the other node's device over the same image works on.
func (l *loopDev) setLimit(limit uint64) error {
	f, err := os.OpenFile(l.path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	defer f.Close()
	fd := int(f.Fd())
	info, err := unix.IoctlLoopGetStatus64(fd)
	if err != nil {
		return fmt.Errorf("testenv: %s status: %w", l.path, err)
	}
	info.Sizelimit = limit
	// The kernel refuses with EAGAIN while it cannot drop the page cache;
	// that passes once in-flight I/O drains.
	err = waitFor(5*time.Second, func() (bool, error) {
		err := unix.IoctlLoopSetStatus64(fd, info)
		if errors.Is(err, unix.EAGAIN) {
			return false, nil
		}
		return err == nil, err
	}, "size limit %d on %s", limit, l.path)
	if err != nil {
		return err
	}
	if _, err := unix.IoctlRetInt(fd, unix.LOOP_SET_CAPACITY); err != nil {
		return fmt.Errorf("testenv: %s capacity: %w", l.path, err)
	}
	if limit == 0 {
		// A node that comes back must not read what its old page cache held.
		if _, err := unix.IoctlRetInt(fd, unix.BLKFLSBUF); err != nil {
			return fmt.Errorf("testenv: flush %s: %w", l.path, err)
		}
	}
	return nil
}

// superblockLive reports whether an ext4 filesystem on the device is still
// alive somewhere (mounted, or being torn down).
func (l *loopDev) superblockLive() bool {
	_, err := os.Stat("/proc/fs/ext4/" + l.name)
	return err == nil
}

func (l *loopDev) detach() error { return detachLoop(l.path) }

func detachLoop(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("testenv: %w", err)
	}
	defer f.Close()
	if _, err := unix.IoctlRetInt(int(f.Fd()), unix.LOOP_CLR_FD); err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("testenv: detach %s: %w", path, err)
	}
	return nil
}

// loopsBackedUnder lists loop devices whose backing file lies under dir.
func loopsBackedUnder(dir string) []string {
	var out []string
	matches, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		backing := strings.TrimSuffix(strings.TrimSpace(string(data)), " (deleted)")
		if strings.HasPrefix(backing, dir+"/") {
			out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(m))))
		}
	}
	return out
}

// makeImage creates a sparse file of the given size.
func makeImage(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("testenv: size %s: %w", path, err)
	}
	return nil
}

// mkfsExt4 formats the image file as ext4, fast: the inode tables and the
// journal are zeroed lazily, which a sparse file makes free.
func mkfsExt4(image string) error {
	cmd := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", "-L", "tandem-data",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", image)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("testenv: mkfs.ext4 %s: %v: %s", image, err, strings.TrimSpace(out.String()))
	}
	return nil
}
