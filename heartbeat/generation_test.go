package heartbeat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBumpGeneration(t *testing.T) {
	dir := t.TempDir()
	if g, err := ReadGeneration(dir); err != nil || g != 0 {
		t.Fatalf("ReadGeneration of an empty dir = %d, %v; want 0, nil", g, err)
	}
	for want := uint64(1); want <= 3; want++ {
		g, err := BumpGeneration(dir)
		if err != nil {
			t.Fatal(err)
		}
		if g != want {
			t.Fatalf("bump %d gave %d", want, g)
		}
		if r, err := ReadGeneration(dir); err != nil || r != g {
			t.Fatalf("ReadGeneration = %d, %v; want %d", r, err, g)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, GenerationFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "3\n" {
		t.Fatalf("file holds %q, want %q", b, "3\n")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("dir holds %d entries, want only %s: %v", len(entries), GenerationFile, entries)
	}
}

func TestBumpGenerationKeepsExistingValue(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, GenerationFile), []byte("41"), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := BumpGeneration(dir)
	if err != nil || g != 42 {
		t.Fatalf("BumpGeneration = %d, %v; want 42", g, err)
	}
}

func TestGenerationCorrupt(t *testing.T) {
	for _, content := range []string{
		"",
		"\n",
		"abc\n",
		"-1\n",
		"+5\n",
		"12 \n",
		"1\n2\n",
		"18446744073709551616\n", // one past the largest uint64
		"\x00\x00\x00\x00",
	} {
		dir := t.TempDir()
		name := filepath.Join(dir, GenerationFile)
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := BumpGeneration(dir)
		if err == nil {
			t.Errorf("content %q: bumped to %d, want an error", content, g)
			continue
		}
		if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("content %q: error %q does not name the file as corrupt", content, err)
		}
		if b, _ := os.ReadFile(name); string(b) != content {
			t.Errorf("content %q: file changed to %q", content, b)
		}
	}
}

func TestGenerationExhausted(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, GenerationFile), []byte("18446744073709551615\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := BumpGeneration(dir); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("got %v, want counter exhausted", err)
	}
}

func TestGenerationMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "absent")
	if _, err := BumpGeneration(dir); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("got %v, want an error naming the missing dir", err)
	}
}

func TestGenerationFileIsADirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, GenerationFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := BumpGeneration(dir); err == nil || !strings.Contains(err.Error(), GenerationFile) {
		t.Fatalf("got %v, want an error naming %s", err, GenerationFile)
	}
}
