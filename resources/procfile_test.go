package resources

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadProcFile(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big")
	want := bytes.Repeat([]byte("0123456789abcdef\n"), 3000) // 51 KB: the buffer grows twice
	if err := os.WriteFile(big, want, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []int{0, 10, 64 << 10} {
		got, err := readProcFile(big, make([]byte, 0, c))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("buffer of %d: %d bytes, %v; want %d bytes", c, len(got), err, len(want))
		}
	}
	// A /proc file, which reports no size, reads whole as os.ReadFile has it.
	want, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Skip(err)
	}
	got, err := readProcFile("/proc/self/mountinfo", nil)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("/proc/self/mountinfo: %v\n%s\nwant\n%s", err, got, want)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := readProcFile(missing, nil); !os.IsNotExist(err) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
}
