package resources

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeFS is a system with a mount table, device nodes and processes.
type fakeFS struct {
	mu    sync.Mutex
	files map[string]unix.Stat_t
	table []mountEntry
	calls []string

	mountErr   error
	mountBlock chan struct{} // mount waits on it when set
	fsckOut    string
	fsckCode   int
	probeErr   error
	probeBlock chan struct{}
	known      bool
	self       int
	helperType string // the type that has a mount helper
	helperErr  error

	// holding are the processes that keep the mount busy while alive;
	// stubborn ones ignore SIGTERM, unkillable ones everything.
	holding    []holder
	dead       map[int]bool
	stubborn   map[int]bool
	unkillable map[int]bool
}

const (
	devLoop0 = 7 << 8   // major 7 (loop), minor 0
	devLoop1 = 7<<8 | 1 // major 7 (loop), minor 1
)

func newFakeFS() *fakeFS {
	return &fakeFS{
		files: map[string]unix.Stat_t{
			"/dev/loop0":                   {Mode: unix.S_IFBLK | 0o660, Rdev: devLoop0},
			"/dev/loop1":                   {Mode: unix.S_IFBLK | 0o660, Rdev: devLoop1},
			"/dev/disk/by-id/wwn-0x5000-2": {Mode: unix.S_IFBLK | 0o660, Rdev: devLoop0},
			"/srv/samba":                   {Mode: unix.S_IFDIR | 0o755},
			"/etc/passwd":                  {Mode: unix.S_IFREG | 0o644},
		},
		table: []mountEntry{
			{id: 1, dev: 8<<8 | 1, root: "/", mountpoint: "/", fstype: "ext4", source: "/dev/sda1"},
		},
		known:      true,
		self:       4242,
		dead:       map[int]bool{},
		stubborn:   map[int]bool{},
		unkillable: map[int]bool{},
	}
}

func (s *fakeFS) log(format string, args ...any) {
	s.calls = append(s.calls, fmt.Sprintf(format, args...))
}

func (s *fakeFS) took() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := strings.Join(s.calls, "; ")
	s.calls = nil
	return c
}

func (s *fakeFS) stat(path string) (unix.Stat_t, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.files[path]
	if !ok {
		return st, unix.ENOENT
	}
	return st, nil
}

func (s *fakeFS) resolve(path string) (string, error) { return path, nil }

func (s *fakeFS) mountinfo() ([]mountEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mountEntry(nil), s.table...), nil
}

func (s *fakeFS) mount(source, target, fstype string, flags uintptr, data string) error {
	if s.mountBlock != nil {
		<-s.mountBlock
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log("mount %s %s %s %#x %q", source, target, fstype, flags, data)
	if s.mountErr != nil {
		return s.mountErr
	}
	s.table = append(s.table, mountEntry{id: len(s.table) + 1, dev: s.files[source].Rdev, root: "/", mountpoint: target, fstype: fstype, source: source})
	return nil
}

func (s *fakeFS) mountHelper(fstype string) string {
	if fstype == s.helperType {
		return "/sbin/mount." + fstype
	}
	return ""
}

func (s *fakeFS) runHelper(ctx context.Context, helper string, args ...string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log("%s %s", helper, strings.Join(args, " "))
	if s.helperErr != nil {
		return []byte("mount error(13): Permission denied"), s.helperErr
	}
	s.table = append(s.table, mountEntry{id: len(s.table) + 1, dev: s.files[args[0]].Rdev, mountpoint: args[1], source: args[0]})
	return nil, nil
}

func (s *fakeFS) unmount(target string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log("umount %s", target)
	for _, h := range s.holding {
		if !s.dead[h.pid] {
			return unix.EBUSY
		}
	}
	for i := len(s.table) - 1; i >= 0; i-- {
		if s.table[i].mountpoint == target {
			s.table = append(s.table[:i], s.table[i+1:]...)
			return nil
		}
	}
	return unix.EINVAL
}

func (s *fakeFS) fsck(ctx context.Context, fstype, device string) ([]byte, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log("fsck %s %s", fstype, device)
	return []byte(s.fsckOut), s.fsckCode, nil
}

func (s *fakeFS) probe(mountpoint, device string) error {
	if s.probeBlock != nil {
		<-s.probeBlock
	}
	return s.probeErr
}

func (s *fakeFS) holders(mountpoint string, dev uint64) ([]holder, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []holder
	for _, h := range s.holding {
		if !s.dead[h.pid] {
			out = append(out, h)
		}
	}
	return out, nil
}

func (s *fakeFS) signal(pid int, sig unix.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log("kill -%s %d", unix.SignalName(sig), pid)
	switch {
	case s.unkillable[pid]:
	case sig == unix.SIGTERM && s.stubborn[pid]:
	default:
		s.dead[pid] = true
	}
	return nil
}

func (s *fakeFS) alive(pid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.dead[pid]
}

func (s *fakeFS) knownFS(string) (bool, error) { return s.known, nil }

func (s *fakeFS) pid() int { return s.self }

func (s *fakeFS) mounted(target string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.table {
		if e.mountpoint == target {
			out = append(out, e.source)
		}
	}
	return out
}

func testFS(sys *fakeFS, mod func(*FilesystemParams)) *Filesystem {
	p := FilesystemParams{
		Name:       "data",
		Device:     "/dev/disk/by-id/wwn-0x5000-2",
		Mountpoint: "/srv/samba",
		FSType:     "ext4",
		Options:    "noatime,errors=remount-ro",
		KillGrace:  50 * time.Millisecond,
	}
	if mod != nil {
		mod(&p)
	}
	f := newFilesystem(p, sys)
	f.killWait = 100 * time.Millisecond
	return f
}

func TestFilesystemStartIdempotent(t *testing.T) {
	sys := newFakeFS()
	f := testFS(sys, func(p *FilesystemParams) { p.Fsck = true })
	ctx := context.Background()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`fsck ext4 /dev/disk/by-id/wwn-0x5000-2; mount /dev/disk/by-id/wwn-0x5000-2 /srv/samba ext4 %#x "errors=remount-ro"`, unix.MS_NOATIME)
	if got := sys.took(); got != want {
		t.Errorf("calls %q, want %q", got, want)
	}
	if err := f.Start(ctx); err != nil {
		t.Fatalf("second start: %v", err)
	}
	if got := sys.took(); got != "" {
		t.Errorf("second start made calls: %q", got)
	}
	if err := f.Monitor(ctx); err != nil {
		t.Errorf("monitor: %v", err)
	}
}

func TestFilesystemStartSeesDeviceByNumber(t *testing.T) {
	sys := newFakeFS()
	// Mounted earlier through the plain node; the resource names a by-id link.
	sys.table = append(sys.table, mountEntry{id: 9, dev: devLoop0, mountpoint: "/srv/samba", fstype: "ext4", source: "/dev/loop0"})
	f := testFS(sys, nil)
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sys.took(); got != "" {
		t.Errorf("start of a mounted device made calls: %q", got)
	}
	if err := f.Monitor(context.Background()); err != nil {
		t.Errorf("monitor: %v", err)
	}
}

func TestFilesystemStartOtherDevice(t *testing.T) {
	sys := newFakeFS()
	sys.table = append(sys.table, mountEntry{id: 9, dev: devLoop1, mountpoint: "/srv/samba", fstype: "ext4", source: "/dev/loop1"})
	f := testFS(sys, nil)
	err := f.Start(context.Background())
	want := `resources: filesystem "data": /srv/samba is already mounted from /dev/loop1, not from /dev/disk/by-id/wwn-0x5000-2`
	if err == nil || err.Error() != want {
		t.Fatalf("start error %v, want %q", err, want)
	}
	if err := f.Monitor(context.Background()); err == nil || errors.Is(err, ErrStopped) {
		t.Errorf("monitor with another device mounted: %v, want a failure", err)
	}
	// Stop leaves the other device alone: this resource is not mounted.
	if err := f.Stop(context.Background()); err != nil {
		t.Errorf("stop: %v", err)
	}
	if got := sys.mounted("/srv/samba"); len(got) != 1 {
		t.Errorf("stop unmounted another device: %v", got)
	}
}

func TestFilesystemFsck(t *testing.T) {
	for _, tc := range []struct {
		code int
		ok   bool
	}{{0, true}, {1, true}, {2, false}, {4, false}, {8, false}} {
		sys := newFakeFS()
		sys.fsckCode, sys.fsckOut = tc.code, "data: UNEXPECTED INCONSISTENCY;\nRUN fsck MANUALLY."
		f := testFS(sys, func(p *FilesystemParams) { p.Fsck = true })
		err := f.Start(context.Background())
		if tc.ok != (err == nil) {
			t.Errorf("fsck exit %d: start error %v", tc.code, err)
		}
		if !tc.ok {
			want := fmt.Sprintf("fsck -a -T -t ext4 /dev/disk/by-id/wwn-0x5000-2: exit status %d: data: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.", tc.code)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("fsck exit %d: error %v, want %q", tc.code, err, want)
			}
			if len(sys.mounted("/srv/samba")) != 0 {
				t.Errorf("fsck exit %d: mounted anyway", tc.code)
			}
		}
	}
}

func TestFilesystemStopKillsHolders(t *testing.T) {
	sys := newFakeFS()
	f := testFS(sys, nil)
	ctx := context.Background()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sys.took()
	sys.holding = []holder{{pid: 100, comm: "sleep", why: "cwd"}, {pid: 101, comm: "smbd", why: "fd 7"}}
	sys.stubborn[101] = true

	if err := f.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := "umount /srv/samba; kill -SIGTERM 100; kill -SIGTERM 101; kill -SIGKILL 101; umount /srv/samba"
	if got := sys.took(); got != want {
		t.Errorf("calls %q, want %q", got, want)
	}
	if got := sys.mounted("/srv/samba"); len(got) != 0 {
		t.Errorf("still mounted: %v", got)
	}
	if err := f.Stop(ctx); err != nil {
		t.Errorf("second stop: %v", err)
	}
	if got := sys.took(); got != "" {
		t.Errorf("second stop made calls: %q", got)
	}
	if err := f.Monitor(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("monitor after stop: %v, want ErrStopped", err)
	}
}

func TestFilesystemForceStopKillsAtOnce(t *testing.T) {
	sys := newFakeFS()
	f := testFS(sys, nil)
	ctx := context.Background()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sys.took()
	sys.holding = []holder{{pid: 100, comm: "sleep", why: "cwd"}}
	if err := f.ForceStop(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := sys.took(), "umount /srv/samba; kill -SIGKILL 100; umount /srv/samba"; got != want {
		t.Errorf("calls %q, want %q", got, want)
	}
}

func TestFilesystemStopUnkillable(t *testing.T) {
	sys := newFakeFS()
	f := testFS(sys, nil)
	ctx := context.Background()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sys.holding = []holder{{pid: 123, comm: "sleep", why: "cwd"}}
	sys.unkillable[123] = true
	err := f.Stop(ctx)
	want := `resources: filesystem "data": unmount /srv/samba: device busy, held by pid 123 (sleep)`
	if err == nil || err.Error() != want {
		t.Fatalf("stop error %v, want %q", err, want)
	}
	if got := sys.mounted("/srv/samba"); len(got) != 1 {
		t.Errorf("mount table %v: want it still mounted", got)
	}
}

func TestFilesystemStopSparesSelfAndInit(t *testing.T) {
	for _, tc := range []struct {
		pid  int
		want string
	}{
		{4242, "held by pid 4242 (tandemd), this process, which is not killed"},
		{1, "held by pid 1 (systemd), init, which is not killed"},
	} {
		sys := newFakeFS()
		f := testFS(sys, nil)
		if err := f.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		comm := map[int]string{4242: "tandemd", 1: "systemd"}[tc.pid]
		sys.holding = []holder{{pid: tc.pid, comm: comm, why: "fd 3"}}
		err := f.Stop(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pid %d: stop error %v, want %q", tc.pid, err, tc.want)
		}
		if strings.Contains(sys.took(), "kill") {
			t.Errorf("pid %d was signalled", tc.pid)
		}
	}
}

func TestFilesystemStopRefusesCoveredMount(t *testing.T) {
	sys := newFakeFS()
	f := testFS(sys, nil)
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sys.table = append(sys.table, mountEntry{id: 20, dev: devLoop1, mountpoint: "/srv/samba", source: "/dev/loop1", fstype: "xfs"})
	sys.took()
	err := f.Stop(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is mounted over it from /dev/loop1") {
		t.Errorf("stop error %v, want a refusal naming /dev/loop1", err)
	}
	if got := sys.took(); got != "" {
		t.Errorf("calls %q, want none", got)
	}
}

func TestFilesystemStopSubmount(t *testing.T) {
	sys := newFakeFS()
	f := testFS(sys, nil)
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sys.table = append(sys.table, mountEntry{id: 20, dev: devLoop1, mountpoint: "/srv/samba/home", source: "/dev/loop1", fstype: "xfs"})
	sys.holding = []holder{{pid: 1}} // the fake says busy while pid 1 lives
	err := f.Stop(context.Background())
	if err == nil || !strings.Contains(err.Error(), "mounts below it: /srv/samba/home") {
		t.Errorf("stop error %v, want the submount named", err)
	}
}

func TestFilesystemMonitorHungRead(t *testing.T) {
	sys := newFakeFS()
	f := testFS(sys, func(p *FilesystemParams) { p.ReadTimeout = 50 * time.Millisecond })
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sys.probeBlock = make(chan struct{})
	err := f.Monitor(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("monitor of a hung read: %v, want a deadline error", err)
	}
	err = f.Monitor(context.Background())
	if err == nil || !strings.Contains(err.Error(), "has not returned for") {
		t.Fatalf("monitor while the read still hangs: %v", err)
	}
	close(sys.probeBlock)
	deadline := time.Now().Add(5 * time.Second)
	for f.Monitor(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("monitor did not recover once the read returned")
		}
		time.Sleep(5 * time.Millisecond)
	}
	sys.probeBlock = nil
	sys.probeErr = unix.EIO
	if err := f.Monitor(context.Background()); !errors.Is(err, unix.EIO) {
		t.Errorf("monitor of a failing read: %v, want EIO", err)
	}
}

func TestFilesystemHungMountBlocksStop(t *testing.T) {
	sys := newFakeFS()
	sys.mountBlock = make(chan struct{})
	f := testFS(sys, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.Start(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("start with a hung mount: %v, want a deadline error", err)
	}
	// The mount may still land: Stop must not decide before it returns.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if err := f.Stop(ctx2); err == nil || !strings.Contains(err.Error(), "has not returned") {
		t.Fatalf("stop while the mount hangs: %v", err)
	}
	close(sys.mountBlock)
	if err := f.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sys.mounted("/srv/samba"); len(got) != 0 {
		t.Errorf("still mounted after stop: %v", got)
	}
}

func TestFilesystemValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*FilesystemParams, *fakeFS)
		want string
	}{
		{"ok", nil, ""},
		{"no device", func(p *FilesystemParams, _ *fakeFS) { p.Device = "/dev/nosuch" }, "device /dev/nosuch: no such file or directory"},
		{"regular file", func(p *FilesystemParams, _ *fakeFS) { p.Device = "/etc/passwd" }, "device /etc/passwd is not a block device"},
		{"mountpoint file", func(p *FilesystemParams, _ *fakeFS) { p.Mountpoint = "/etc/passwd" }, "mountpoint /etc/passwd is not a directory"},
		{"relative", func(p *FilesystemParams, _ *fakeFS) { p.Mountpoint = "srv" }, `mountpoint "srv" is not an absolute path`},
		{"fstype", func(p *FilesystemParams, s *fakeFS) { s.known = false; p.FSType = "zfs" }, "filesystem type zfs: not in /proc/filesystems"},
		{"options", func(p *FilesystemParams, _ *fakeFS) { p.Options = "loop" }, `mount option "loop"`},
	} {
		sys := newFakeFS()
		p := FilesystemParams{Name: "data", Device: "/dev/loop0", Mountpoint: "/srv/samba", FSType: "ext4"}
		if tc.mod != nil {
			tc.mod(&p, sys)
		}
		err := newFilesystem(p, sys).Validate(context.Background())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		case err != nil && !strings.HasPrefix(err.Error(), `resources: filesystem "data": `):
			t.Errorf("%s: error %q does not name the resource", tc.name, err)
		}
	}
}

func TestParseMountOptions(t *testing.T) {
	for _, tc := range []struct {
		in    string
		flags uintptr
		data  string
		err   string
	}{
		{"", 0, "", ""},
		{"defaults", 0, "", ""},
		{"ro,noatime,nodiratime,nosuid,nodev,noexec,sync,dirsync", unix.MS_RDONLY | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_SYNCHRONOUS | unix.MS_DIRSYNC, "", ""},
		{"ro,rw", 0, "", ""},
		{"rw,ro", unix.MS_RDONLY, "", ""},
		{"relatime,errors=remount-ro,data=ordered", unix.MS_RELATIME, "errors=remount-ro,data=ordered", ""},
		{"noatime,atime", 0, "", ""},
		{"nofail,_netdev,x-systemd.automount,comment=foo,noauto,user_xattr", 0, "user_xattr", ""},
		{` context="system_u:object_r:samba_share_t:s0:c1,c2" , noexec`, unix.MS_NOEXEC, `context="system_u:object_r:samba_share_t:s0:c1,c2"`, ""},
		{"a,,b,", 0, "a,b", ""},
		{`context="x`, 0, "", "unbalanced double quote"},
		{"loop", 0, "", "block device"},
		{"bind", 0, "", "bind mount"},
		{"remount,ro", 0, "", "remount"},
	} {
		o, err := ParseMountOptions(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if o.Flags != tc.flags || o.Data != tc.data {
			t.Errorf("%q: flags %#x data %q, want %#x %q", tc.in, o.Flags, o.Data, tc.flags, tc.data)
		}
	}
}

func TestKnownFilesystemLists(t *testing.T) {
	procFS := []byte("nodev\tsysfs\nnodev\ttmpfs\n\text3\n\text4\nnodev\tfuse\n")
	for fs, want := range map[string]bool{"ext4": true, "tmpfs": true, "xfs": false, "ext": false} {
		if got := kernelHasFS(procFS, fs); got != want {
			t.Errorf("kernelHasFS(%s) = %v", fs, got)
		}
	}
	alias := []byte("alias fs-xfs xfs\nalias fs-btrfs btrfs\nalias devname:fuse fuse\n")
	for fs, want := range map[string]bool{"xfs": true, "btrfs": true, "fuse": false} {
		if got := moduleAliasHasFS(alias, fs); got != want {
			t.Errorf("moduleAliasHasFS(%s) = %v", fs, got)
		}
	}
}

func TestFilesystemMountHelper(t *testing.T) {
	sys := newFakeFS()
	sys.helperType = "ocfs2"
	f := testFS(sys, func(p *FilesystemParams) { p.FSType = "ocfs2"; p.Options = "noatime,_netdev" })
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := sys.took(), "/sbin/mount.ocfs2 /dev/disk/by-id/wwn-0x5000-2 /srv/samba -o noatime,_netdev"; got != want {
		t.Errorf("calls %q, want %q", got, want)
	}
	if err := f.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	sys.helperErr = errors.New("exit status 32")
	err := f.Start(context.Background())
	want := `resources: filesystem "data": /sbin/mount.ocfs2 /dev/disk/by-id/wwn-0x5000-2 /srv/samba -o noatime,_netdev: exit status 32: mount error(13): Permission denied`
	if err == nil || err.Error() != want {
		t.Errorf("start error %v, want %q", err, want)
	}
}
