package resources

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// procTree builds a fake /proc: per pid, links (name → target) and files
// (name → content).
func procTree(t *testing.T, procs map[string]map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, entries := range procs {
		for name, v := range entries {
			p := filepath.Join(root, pid, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			var err error
			if name == "comm" || name == "maps" {
				err = os.WriteFile(p, []byte(v), 0o644)
			} else {
				err = os.Symlink(v, p)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestFindHolders(t *testing.T) {
	root := procTree(t, map[string]map[string]string{
		"100": {"comm": "sleep\n", "cwd": "/srv/samba/share", "root": "/", "exe": "/usr/bin/sleep"},
		"101": {"comm": "smbd\n", "cwd": "/", "root": "/", "fd/0": "/dev/null", "fd/7": "/srv/samba/share/a file.txt"},
		"102": {"comm": "vim\n", "cwd": "/", "fd/3": "/srv/samba/.x.swp (deleted)"},
		"103": {"comm": "bash\n", "cwd": "/srv/sambaother"},
		"104": {"comm": "chroot\n", "cwd": "/", "root": "/srv/samba"},
		"105": {"comm": "tool\n", "cwd": "/", "exe": "/srv/samba/bin/tool"},
		"106": {"comm": "mapper\n", "cwd": "/", "maps": "" +
			"55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1835030                    /usr/bin/cat\n" +
			"7f2c4a1e5000-7f2c4a1e7000 r--p 00000000 00:00 0 \n" +
			"7f2c4a1e8000-7f2c4a1e9000 r--p 00000000 07:00 12                         /srv/samba/lib/x.so\n"},
		"107":  {"comm": "bymaj\n", "cwd": "/", "maps": "7f2c4a1e8000-7f2c4a1e9000 r--p 00000000 07:00 12      /old/path (deleted)\n"},
		"108":  {"comm": "sock\n", "cwd": "/", "fd/4": "socket:[12345]", "fd/5": "anon_inode:[eventpoll]"},
		"109":  {"comm": "othernode\n", "cwd": "/srv/samba", "ns/mnt": "mnt:[4026532999]"},
		"self": {"cwd": "/srv/samba"},
	})
	// Every process but 109 is in this mount namespace.
	for _, pid := range []string{"100", "101", "102", "103", "104", "105", "106", "107", "108"} {
		if err := os.MkdirAll(filepath.Join(root, pid, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("mnt:[4026531841]", filepath.Join(root, pid, "ns", "mnt")); err != nil {
			t.Fatal(err)
		}
	}
	got, err := findHolders(root, "/srv/samba", unix.Mkdev(7, 0), "mnt:[4026531841]")
	if err != nil {
		t.Fatal(err)
	}
	want := []holder{
		{100, "sleep", "cwd"},
		{101, "smbd", "fd 7"},
		{102, "vim", "fd 3"},
		{104, "chroot", "root"},
		{105, "tool", "exe"},
		{106, "mapper", "maps"},
		{107, "bymaj", "maps"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("holders\n got %v\nwant %v", got, want)
	}
	if got, want := describeHolders(got[:2]), "pid 100 (sleep), pid 101 (smbd)"; got != want {
		t.Errorf("description %q, want %q", got, want)
	}

	// Without a device number, the mapping of a deleted file is not found,
	// and nothing else changes.
	got, err = findHolders(root, "/srv/samba", 0, "mnt:[4026531841]")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 {
		t.Errorf("holders without device: %v, want 6", got)
	}

	// Without a namespace to keep to, the process of another mount
	// namespace is found too.
	got, err = findHolders(root, "/srv/samba", unix.Mkdev(7, 0), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 || got[7].pid != 109 {
		t.Errorf("holders in any namespace: %v, want 8 ending with pid 109", got)
	}
}

func TestFindHoldersRealProc(t *testing.T) {
	// This test's own working directory is a directory it holds.
	dir := t.TempDir()
	t.Chdir(dir)
	hs, err := realFS{}.holders(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.pid == os.Getpid() {
			return
		}
	}
	t.Errorf("holders of %s: %v, want this process (pid %d)", dir, hs, os.Getpid())
}

func TestParseMountinfo(t *testing.T) {
	in := "" +
		"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n" +
		"30 22 0:26 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n" +
		"41 22 7:0 / /srv/my\\040share rw,noatime - ext4 /dev/loop0 rw\n" +
		"42 41 7:1 /sub /srv/my\\040share/home rw master:3 propagate_from:2 - xfs /dev/loop1 rw\n" +
		"43 22 0:45 / /srv/samba rw - btrfs /dev/loop2 rw\n" +
		"44 22 7:0 / /srv/my\\040share rw - ext4 /dev/loop0 rw\n"
	es, err := parseMountinfo([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 6 {
		t.Fatalf("%d entries, want 6", len(es))
	}
	if e := es[2]; e.mountpoint != "/srv/my share" || e.dev != unix.Mkdev(7, 0) || e.source != "/dev/loop0" || e.fstype != "ext4" {
		t.Errorf("entry 3: %+v", e)
	}
	if e := es[3]; e.root != "/sub" || e.fstype != "xfs" || e.parent != 41 {
		t.Errorf("entry 4 (optional fields): %+v", e)
	}
	if at := mountsAt(es, "/srv/my share"); len(at) != 2 || at[1].id != 44 {
		t.Errorf("mountsAt: %+v, want the two, top last", at)
	}
	if below := mountsBelow(es, "/srv/my share"); !reflect.DeepEqual(below, []string{"/srv/my share/home"}) {
		t.Errorf("mountsBelow: %v", below)
	}
	for _, bad := range []string{"22 1 8:1 / /\n", "x 1 8:1 / / rw - ext4 /dev/sda1 rw\n", "22 1 81 / / rw - ext4 /dev/sda1 rw\n"} {
		if _, err := parseMountinfo([]byte(bad)); err == nil {
			t.Errorf("parseMountinfo(%q) succeeded", bad)
		}
	}
}

func TestPathUnder(t *testing.T) {
	for _, tc := range []struct {
		p, dir string
		want   bool
	}{
		{"/srv/samba", "/srv/samba", true},
		{"/srv/samba/x", "/srv/samba", true},
		{"/srv/sambax", "/srv/samba", false},
		{"/srv", "/srv/samba", false},
		{"/anything", "/", true},
		{"socket:[1]", "/", false},
	} {
		if got := pathUnder(tc.p, tc.dir); got != tc.want {
			t.Errorf("pathUnder(%q, %q) = %v", tc.p, tc.dir, got)
		}
	}
}
