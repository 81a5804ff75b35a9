package resources

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountNSEnv marks the re-executed test binary that runs in a private mount
// namespace.
const mountNSEnv = "TANDEM_RESOURCES_PRIVATE_MOUNTNS"

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it mounts filesystems and creates network namespaces")
	}
}

func needCommands(t testing.TB, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s (Debian: util-linux, e2fsprogs): %v", c, err)
		}
	}
}

// inPrivateMountNS runs the calling test again in a child of this test
// binary that is in a private mount namespace, so nothing it mounts shows
// on the host, and whatever it leaves mounted goes with the namespace. It
// reports whether the caller is that child and should carry on.
func inPrivateMountNS(t *testing.T) bool {
	t.Helper()
	if os.Getenv(mountNSEnv) == "1" {
		return true
	}
	needCommands(t, "unshare")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private",
		os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), mountNSEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a private mount namespace: %v\n%s", t.Name(), err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s in a private mount namespace did not pass:\n%s", t.Name(), out)
	}
	t.Logf("in a private mount namespace:\n%s", out)
	return false
}

// loopDevice makes a sparse file with an ext4 filesystem on a loop device,
// detached again when the test ends.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	needCommands(t, "losetup", "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup -f --show %s: %v: %s", img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v: %s", dev, err, out)
	}
	return dev
}

func isMounted(t *testing.T, mountpoint string) bool {
	t.Helper()
	es, err := realFS{}.mountinfo()
	if err != nil {
		t.Fatal(err)
	}
	return len(mountsAt(es, mountpoint)) > 0
}

// TestFilesystemReal mounts an ext4 loop device through a symlink, holds it
// busy with a process whose working directory is inside, and stops it.
func TestFilesystemReal(t *testing.T) {
	needRoot(t)
	if !inPrivateMountNS(t) {
		return
	}
	dev := loopDevice(t, 64<<20)
	dir := t.TempDir()
	link := filepath.Join(dir, "by-id-disk")
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f := NewFilesystem(FilesystemParams{
		Name: "data", Device: link, Mountpoint: mnt, FSType: "ext4",
		Options: "noatime,nodev,errors=remount-ro", Fsck: true, KillGrace: 2 * time.Second,
	})
	t.Cleanup(func() {
		// Even when the test failed half way, leave nothing mounted on the
		// loop device that is detached next.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.ForceStop(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if err := f.Validate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Monitor(ctx); !errors.Is(err, ErrStopped) {
		t.Fatalf("monitor before start: %v, want ErrStopped", err)
	}
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx); err != nil {
		t.Fatalf("second start: %v", err)
	}
	if err := f.Monitor(ctx); err != nil {
		t.Fatalf("monitor: %v", err)
	}
	// The mount table names the loop device, the resource a symlink to it.
	es, _ := realFS{}.mountinfo()
	if at := mountsAt(es, mnt); len(at) != 1 || at[0].source != dev {
		t.Fatalf("mount table at %s: %+v, want one mount of %s", mnt, at, dev)
	}

	share := filepath.Join(mnt, "share")
	if err := os.Mkdir(share, 0o755); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("sleep", "60")
	holder.Dir = share
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- holder.Wait() }()
	t.Cleanup(func() { holder.Process.Kill() })

	hs, err := realFS{}.holders(mnt, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, h := range hs {
		found = found || h.pid == holder.Process.Pid
	}
	if !found {
		t.Fatalf("holders of %s: %v, want pid %d", mnt, hs, holder.Process.Pid)
	}

	if err := f.Stop(ctx); err != nil {
		t.Fatalf("stop of a busy mount: %v", err)
	}
	if isMounted(t, mnt) {
		t.Fatal("stop returned nil with the mount still there")
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
			t.Errorf("holder ended with %v, want SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the holder is still running")
	}
	if err := f.Monitor(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("monitor after stop: %v, want ErrStopped", err)
	}
	if err := f.Stop(ctx); err != nil {
		t.Errorf("second stop: %v", err)
	}

	// A holder that ignores SIGTERM is killed; ForceStop does not wait.
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stubborn := exec.Command("sh", "-c", "trap '' TERM; while :; do sleep 1; done")
	stubborn.Dir = mnt
	if err := stubborn.Start(); err != nil {
		t.Fatal(err)
	}
	gone := make(chan error, 1)
	go func() { gone <- stubborn.Wait() }()
	t.Cleanup(func() { stubborn.Process.Kill() })
	if err := f.ForceStop(ctx); err != nil {
		t.Fatalf("force stop: %v", err)
	}
	if isMounted(t, mnt) {
		t.Fatal("force stop returned nil with the mount still there")
	}
	select {
	case err := <-gone:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("stubborn holder ended with %v, want SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stubborn holder is still running")
	}
}
