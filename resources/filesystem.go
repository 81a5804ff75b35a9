package resources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// FilesystemParams are the parameters of a filesystem resource.
type FilesystemParams struct {
	// Name is the resource's name.
	Name string
	// Device is the block device, by any path that reaches it (a
	// /dev/disk/by-id symlink, a bind-mounted device node).
	Device string
	// Mountpoint is the directory to mount on. It must exist.
	Mountpoint string
	// FSType is the filesystem type: "ext4", "xfs".
	FSType string
	// Options is a mount(8) option string: "noatime,errors=remount-ro".
	Options string
	// Fsck runs "fsck -a -T -t FSTYPE DEVICE" before mounting; exit codes 0
	// (clean) and 1 (errors corrected) let the mount go ahead.
	Fsck bool
	// KillGrace is how long the processes that keep the mount busy get
	// between SIGTERM and SIGKILL on Stop. Zero means 3 s.
	KillGrace time.Duration
	// ReadTimeout bounds the monitor's read of the mounted filesystem and
	// its device when the context has no earlier deadline. Zero means 10 s.
	ReadTimeout time.Duration
}

// Default bounds of a filesystem resource.
const (
	DefaultKillGrace   = 3 * time.Second
	DefaultReadTimeout = 10 * time.Second
)

// killWait bounds the wait for SIGKILLed holders to be gone: a process in
// uninterruptible sleep on a dead disk may never go.
const killWait = 5 * time.Second

// maxUnmountAttempts bounds Stop's rounds of unmount, kill, unmount.
const maxUnmountAttempts = 6

// Filesystem is a filesystem mounted from a block device. See the package
// documentation for what each operation does.
type Filesystem struct {
	p        FilesystemParams
	opts     MountOptions
	optsErr  error
	sys      fsSys
	killWait time.Duration

	mu      sync.Mutex    // serialises Start, Stop, ForceStop
	pending chan struct{} // an abandoned mount(2) or umount(2) not yet returned, or nil

	probeMu    sync.Mutex
	probing    chan struct{} // the monitor read in flight, or nil
	probeSince time.Time
}

// fsSys is the filesystem resource's access to the system.
type fsSys interface {
	stat(path string) (unix.Stat_t, error)
	resolve(path string) (string, error)
	mountinfo() ([]mountEntry, error)
	mount(source, target, fstype string, flags uintptr, data string) error
	mountHelper(fstype string) string
	runHelper(ctx context.Context, helper string, args ...string) ([]byte, error)
	unmount(target string) error
	fsck(ctx context.Context, fstype, device string) (out []byte, code int, err error)
	probe(mountpoint, device string) error
	holders(mountpoint string, dev uint64) ([]holder, error)
	signal(pid int, sig unix.Signal) error
	alive(pid int) bool
	knownFS(fstype string) (bool, error)
	pid() int
}

// NewFilesystem returns the filesystem resource of p. Parameter errors are
// reported by Validate and by every operation.
func NewFilesystem(p FilesystemParams) *Filesystem {
	return newFilesystem(p, realFS{})
}

func newFilesystem(p FilesystemParams, sys fsSys) *Filesystem {
	if p.KillGrace <= 0 {
		p.KillGrace = DefaultKillGrace
	}
	if p.ReadTimeout <= 0 {
		p.ReadTimeout = DefaultReadTimeout
	}
	f := &Filesystem{p: p, sys: sys, killWait: killWait}
	f.opts, f.optsErr = ParseMountOptions(p.Options)
	return f
}

// Name returns the resource's name.
func (f *Filesystem) Name() string { return f.p.Name }

// Params returns the resource's parameters, defaults filled in.
func (f *Filesystem) Params() FilesystemParams { return f.p }

func (f *Filesystem) errorf(format string, args ...any) error {
	return &Error{Kind: "filesystem", Name: f.p.Name, Err: fmt.Errorf(format, args...)}
}

func (f *Filesystem) paramErr() error {
	switch {
	case f.p.Device == "":
		return f.errorf("no device")
	case f.p.Mountpoint == "":
		return f.errorf("no mountpoint")
	case !filepath.IsAbs(f.p.Mountpoint):
		return f.errorf("mountpoint %q is not an absolute path", f.p.Mountpoint)
	case f.p.FSType == "":
		return f.errorf("no filesystem type")
	case f.optsErr != nil:
		return f.errorf("%w", f.optsErr)
	}
	return nil
}

// Validate checks the parameters, that the device is a block device, that
// the mountpoint is a directory, and that the kernel knows the filesystem
// type (or a mount helper exists for it).
func (f *Filesystem) Validate(ctx context.Context) error {
	if err := f.paramErr(); err != nil {
		return err
	}
	var errs []error
	if st, err := f.sys.stat(f.p.Device); err != nil {
		errs = append(errs, f.errorf("device %s: %w", f.p.Device, err))
	} else if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		errs = append(errs, f.errorf("device %s is not a block device", f.p.Device))
	}
	if st, err := f.sys.stat(f.p.Mountpoint); err != nil {
		errs = append(errs, f.errorf("mountpoint %s: %w", f.p.Mountpoint, err))
	} else if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		errs = append(errs, f.errorf("mountpoint %s is not a directory", f.p.Mountpoint))
	}
	if ok, err := f.sys.knownFS(f.p.FSType); err != nil {
		errs = append(errs, f.errorf("filesystem type %s: %w", f.p.FSType, err))
	} else if !ok {
		errs = append(errs, f.errorf("filesystem type %s: not in /proc/filesystems, no kernel module and no mount helper for it", f.p.FSType))
	}
	return errors.Join(errs...)
}

// place is where things stand at the mountpoint.
type place struct {
	mountpoint string       // resolved
	rdev       uint64       // the device's number, 0 when it cannot be stat'ed
	entries    []mountEntry // the whole table
	at         []mountEntry // mounted at mountpoint, bottom first
}

func (pl place) top() (mountEntry, bool) {
	if len(pl.at) == 0 {
		return mountEntry{}, false
	}
	return pl.at[len(pl.at)-1], true
}

// look reads the mount table. With needDev it fails when the device cannot
// be identified; without, an unidentifiable device (it vanished, as a disk
// path does when it dies) leaves rdev 0, and then whatever is mounted at the
// mountpoint counts as ours.
func (f *Filesystem) look(needDev bool) (place, error) {
	var pl place
	st, err := f.sys.stat(f.p.Device)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK:
		pl.rdev = st.Rdev
	case err == nil:
		return pl, f.errorf("device %s is not a block device", f.p.Device)
	case needDev:
		return pl, f.errorf("device %s: %w", f.p.Device, err)
	}
	pl.mountpoint = filepath.Clean(f.p.Mountpoint)
	if r, err := f.sys.resolve(pl.mountpoint); err == nil {
		pl.mountpoint = r
	}
	pl.entries, err = f.sys.mountinfo()
	if err != nil {
		return pl, f.errorf("%w", err)
	}
	pl.at = mountsAt(pl.entries, pl.mountpoint)
	return pl, nil
}

// ours reports whether e is a mount of the resource's device: by the device
// number in the mount table, or, for filesystems that report an anonymous
// device number (btrfs), by the number of the device node it names.
func (f *Filesystem) ours(pl place, e mountEntry) bool {
	if pl.rdev == 0 {
		return true
	}
	if e.dev == pl.rdev {
		return true
	}
	if strings.HasPrefix(e.source, "/") {
		if st, err := f.sys.stat(e.source); err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == pl.rdev {
			return true
		}
	}
	return false
}

// Start mounts the device, after fsck when asked. When the device is already
// mounted there, it succeeds; when another device is, it fails naming both.
func (f *Filesystem) Start(ctx context.Context) error {
	if err := f.paramErr(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.waitPending(ctx); err != nil {
		return err
	}
	pl, err := f.look(true)
	if err != nil {
		return err
	}
	if top, ok := pl.top(); ok {
		if f.ours(pl, top) {
			return nil
		}
		return f.errorf("%s is already mounted from %s, not from %s", pl.mountpoint, top.source, f.p.Device)
	}
	if f.p.Fsck {
		out, code, err := f.sys.fsck(ctx, f.p.FSType, f.p.Device)
		cmd := fmt.Sprintf("fsck -a -T -t %s %s", f.p.FSType, f.p.Device)
		if err != nil {
			return f.errorf("%s: %w", cmd, err)
		}
		if code != 0 && code != 1 {
			return f.errorf("%s: exit status %d: %s", cmd, code, oneLine(out))
		}
	}
	// As mount(8), hand the kernel the device's canonical path, which the
	// mount table then shows, rather than the link it was named by.
	source := f.p.Device
	if r, err := f.sys.resolve(source); err == nil {
		source = r
	}
	if h := f.sys.mountHelper(f.p.FSType); h != "" {
		args := []string{source, pl.mountpoint}
		if f.p.Options != "" {
			args = append(args, "-o", f.p.Options)
		}
		if out, err := f.sys.runHelper(ctx, h, args...); err != nil {
			return f.errorf("%s %s: %w: %s", h, strings.Join(args, " "), err, oneLine(out))
		}
	} else {
		err := f.bounded(ctx, func() error {
			return f.sys.mount(source, pl.mountpoint, f.p.FSType, f.opts.Flags, f.opts.Data)
		})
		if err != nil {
			return f.errorf("mount %s on %s (%s): %w", source, pl.mountpoint, f.p.FSType, err)
		}
	}
	pl, err = f.look(true)
	if err != nil {
		return err
	}
	if top, ok := pl.top(); !ok || !f.ours(pl, top) {
		return f.errorf("mount %s on %s reported success, but the mount table does not show it", f.p.Device, pl.mountpoint)
	}
	return nil
}

// Stop unmounts. When the mount is busy it sends SIGTERM to the processes
// holding it, gives them KillGrace, sends SIGKILL to those left and unmounts
// again, for a few rounds within the context's deadline. It returns nil only
// once the device is no longer mounted on the mountpoint.
func (f *Filesystem) Stop(ctx context.Context) error { return f.stop(ctx, false) }

// ForceStop is Stop without the grace: the holders are killed with SIGKILL
// at once.
func (f *Filesystem) ForceStop(ctx context.Context) error { return f.stop(ctx, true) }

func (f *Filesystem) stop(ctx context.Context, force bool) error {
	if err := f.paramErr(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.waitPending(ctx); err != nil {
		return err
	}
	quietBusy := 0
	var last []holder
	// Holders that outlived one SIGTERM and its grace get SIGKILL at once in
	// the later rounds.
	escalated := force
	for attempt := 1; ; attempt++ {
		pl, err := f.look(false)
		if err != nil {
			return err
		}
		top, ok := pl.top()
		if !ok {
			return nil
		}
		if !f.ours(pl, top) {
			for _, e := range pl.at {
				if f.ours(pl, e) {
					return f.errorf("unmount %s: %s is mounted over it from %s; not unmounting that", pl.mountpoint, pl.mountpoint, top.source)
				}
			}
			return nil
		}
		if attempt > maxUnmountAttempts {
			if len(last) > 0 {
				return f.errorf("unmount %s: device busy, held by %s", pl.mountpoint, describeHolders(last))
			}
			return f.errorf("unmount %s: still mounted after %d attempts", pl.mountpoint, maxUnmountAttempts)
		}
		err = f.bounded(ctx, func() error { return f.sys.unmount(pl.mountpoint) })
		switch {
		case err == nil, errors.Is(err, unix.EINVAL):
			// Unmounted, or gone under us: look again, as another mount of
			// the device may lie beneath.
			continue
		case ctx.Err() != nil:
			return f.errorf("unmount %s: %w", pl.mountpoint, err)
		case !errors.Is(err, unix.EBUSY):
			return f.errorf("unmount %s: %w", pl.mountpoint, err)
		}
		if below := mountsBelow(pl.entries, pl.mountpoint); len(below) > 0 {
			return f.errorf("unmount %s: device busy: mounts below it: %s", pl.mountpoint, strings.Join(below, ", "))
		}
		hs, err := f.sys.holders(pl.mountpoint, top.dev)
		if err != nil {
			return f.errorf("unmount %s: device busy: %w", pl.mountpoint, err)
		}
		last = hs
		if len(hs) == 0 {
			// Busy with no process holding it: a holder may have just
			// exited and the kernel not yet let go. Look again briefly.
			quietBusy++
			if quietBusy >= 3 {
				return f.errorf("unmount %s: device busy, but no process holds it (an NFS export, a loop device or swap file on it?)", pl.mountpoint)
			}
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return f.errorf("unmount %s: device busy: %w", pl.mountpoint, err)
			}
			continue
		}
		var spared []string
		var kill []holder
		for _, h := range hs {
			switch h.pid {
			case f.sys.pid():
				spared = append(spared, h.String()+", this process")
			case 1:
				spared = append(spared, h.String()+", init")
			default:
				kill = append(kill, h)
			}
		}
		if len(spared) > 0 {
			return f.errorf("unmount %s: device busy, held by %s, which is not killed", pl.mountpoint, strings.Join(spared, "; "))
		}
		if err := f.killHolders(ctx, kill, escalated); err != nil {
			return f.errorf("unmount %s: device busy, held by %s: %w", pl.mountpoint, describeHolders(kill), err)
		}
		escalated = true
	}
}

// killHolders sends SIGTERM (unless force), waits up to KillGrace for the
// processes to go, then SIGKILLs those left and waits for them.
func (f *Filesystem) killHolders(ctx context.Context, hs []holder, force bool) error {
	if !force {
		for _, h := range hs {
			_ = f.sys.signal(h.pid, unix.SIGTERM) // it may have gone already
		}
		if f.waitGone(ctx, hs, f.p.KillGrace) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	for _, h := range hs {
		if f.sys.alive(h.pid) {
			_ = f.sys.signal(h.pid, unix.SIGKILL)
		}
	}
	f.waitGone(ctx, hs, f.killWait)
	return ctx.Err()
}

// waitGone polls until every process of hs is gone, the bound passes or ctx
// is done, and reports whether they all went.
func (f *Filesystem) waitGone(ctx context.Context, hs []holder, bound time.Duration) bool {
	deadline := time.Now().Add(bound)
	for {
		gone := true
		for _, h := range hs {
			if f.sys.alive(h.pid) {
				gone = false
				break
			}
		}
		if gone {
			return true
		}
		if time.Now().After(deadline) || sleepCtx(ctx, 20*time.Millisecond) != nil {
			return false
		}
	}
}

// Monitor checks that the device is mounted on the mountpoint and that a
// small read of the mount and of the device succeeds within ReadTimeout (or
// the context's deadline), so a hung device is reported, not waited on. It
// returns an error wrapping ErrStopped when nothing is mounted there.
func (f *Filesystem) Monitor(ctx context.Context) error {
	if err := f.paramErr(); err != nil {
		return err
	}
	pl, err := f.look(true)
	if err != nil {
		return err
	}
	top, ok := pl.top()
	if !ok {
		return f.errorf("%s is not mounted: %w", pl.mountpoint, ErrStopped)
	}
	if !f.ours(pl, top) {
		for _, e := range pl.at {
			if f.ours(pl, e) {
				return f.errorf("%s is mounted over it from %s", pl.mountpoint, top.source)
			}
		}
		return f.errorf("%s is mounted from %s, not from %s", pl.mountpoint, top.source, f.p.Device)
	}
	return f.probe(ctx, pl.mountpoint)
}

// probe runs the read in the background and waits for it within the bound.
// A read that never returns (a dead disk) stays the one in flight; later
// monitors report it rather than pile up more.
func (f *Filesystem) probe(ctx context.Context, mountpoint string) error {
	f.probeMu.Lock()
	if f.probing != nil {
		select {
		case <-f.probing:
			f.probing = nil
		default:
			since := f.probeSince
			f.probeMu.Unlock()
			return f.errorf("read of %s and %s has not returned for %v", mountpoint, f.p.Device, time.Since(since).Round(time.Millisecond))
		}
	}
	done := make(chan struct{})
	f.probing, f.probeSince = done, time.Now()
	f.probeMu.Unlock()

	var err error
	go func() {
		err = f.sys.probe(mountpoint, f.p.Device)
		close(done)
	}()
	ctx, cancel := context.WithTimeout(ctx, f.p.ReadTimeout)
	defer cancel()
	select {
	case <-done:
		f.probeMu.Lock()
		if f.probing == done {
			f.probing = nil
		}
		f.probeMu.Unlock()
		if err != nil {
			return f.errorf("read %s: %w", mountpoint, err)
		}
		return nil
	case <-ctx.Done():
		return f.errorf("read of %s and %s did not return: %w", mountpoint, f.p.Device, ctx.Err())
	}
}

// bounded runs a system call that may hang (mount and umount on a dead
// device do) and returns when it does or when ctx is done. A call left
// running is remembered: the next Start or Stop waits for it first, so
// neither decides on a mount table that call is about to change.
func (f *Filesystem) bounded(ctx context.Context, call func() error) error {
	done := make(chan struct{})
	var err error
	go func() {
		err = call()
		close(done)
	}()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		f.pending = done
		return ctx.Err()
	}
}

func (f *Filesystem) waitPending(ctx context.Context) error {
	if f.pending == nil {
		return nil
	}
	select {
	case <-f.pending:
		f.pending = nil
		return nil
	case <-ctx.Done():
		return f.errorf("an earlier mount or unmount of %s has not returned: %w", f.p.Mountpoint, ctx.Err())
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// oneLine shortens a command's output for an error message.
func oneLine(out []byte) string {
	s := strings.Join(strings.Fields(string(bytes.TrimSpace(out))), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	if s == "" {
		return "no output"
	}
	return s
}

// kernelHasFS reports whether a /proc/filesystems text lists fstype.
func kernelHasFS(procFilesystems []byte, fstype string) bool {
	for _, line := range strings.Split(string(procFilesystems), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == fstype {
			return true
		}
	}
	return false
}

// moduleAliasHasFS reports whether a modules.alias text has the alias the
// kernel asks for when mounting an unloaded filesystem type ("fs-xfs").
func moduleAliasHasFS(modulesAlias []byte, fstype string) bool {
	want := "fs-" + fstype
	for _, line := range strings.Split(string(modulesAlias), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "alias" && f[1] == want {
			return true
		}
	}
	return false
}
