package smbservice

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSaveLoadList(t *testing.T) {
	dir := t.TempDir()
	path := ViewPath(dir, "beta")
	if filepath.Base(path) != "tickles-beta.list" {
		t.Fatalf("ViewPath: %s", path)
	}
	l, err := LoadList(path)
	if err != nil || len(l.Conns) != 0 || !l.Version.IsZero() {
		t.Fatalf("missing file: %+v, %v; want an empty list and no error", l, err)
	}
	want := VersionedList{Version: ListVersion{7, 42}, Conns: append(manyConns(100, false), manyConns(50, true)...), Source: "file"}
	slices.SortFunc(want.Conns, Conn.Compare)
	if err := SaveList(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadList(path)
	if err != nil || got.Version != want.Version || !slices.Equal(got.Conns, want.Conns) {
		t.Fatalf("loaded %v with %d connections, %v", got.Version, len(got.Conns), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d files in the directory, want only the list", len(ents))
	}
	b, _ := os.ReadFile(path)
	for name, bad := range map[string][]byte{
		"flipped":   append(append([]byte{}, b[:30]...), append([]byte{b[30] ^ 1}, b[31:]...)...),
		"truncated": b[:len(b)-1],
		"empty":     nil,
	} {
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		v, err := LoadView(path)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s file: %v; want an error naming %s", name, err, path)
		}
		if l := v.List(); len(l.Conns) != 0 || !l.Version.IsZero() {
			t.Errorf("%s file: view holds %d connections at %v; want it empty", name, len(l.Conns), l.Version)
		}
	}
	if err := SaveList(filepath.Join(dir, "missing", "x.list"), want); err == nil {
		t.Error("SaveList into a missing directory succeeded")
	}
}

// A View saved by a ViewSaver comes back in a new View, which goes on
// from where the saved one was.
func TestViewSaver(t *testing.T) {
	path := ViewPath(t.TempDir(), "alpha")
	v := NewView(VersionedList{})
	saver := NewViewSaver(v, path, time.Hour, nil)
	s := NewSync(SyncOptions{Epoch: 9})
	now := time.Unix(0, 0)
	apply := func(msgs [][]byte) {
		for _, m := range msgs {
			if _, err := v.Apply(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	apply(s.Changed(manyConns(10, false), nil, now))
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := LoadList(path)
		if err != nil {
			t.Fatal(err)
		}
		if l.Version == s.Version() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("file holds %v 5 s after the change, want %v", l.Version, s.Version())
		}
		time.Sleep(10 * time.Millisecond)
	}
	first := s.Version()
	// Within the interval a change waits; Close writes it.
	apply(s.Changed(manyConns(12, false)[10:], nil, now))
	time.Sleep(100 * time.Millisecond)
	if l, _ := LoadList(path); l.Version != first {
		t.Fatalf("file at %v within the interval, want still %v", l.Version, first)
	}
	if err := saver.Close(); err != nil {
		t.Fatal(err)
	}
	back, err := LoadView(path)
	if err != nil {
		t.Fatal(err)
	}
	if l := back.List(); l.Version != s.Version() || len(l.Conns) != 12 {
		t.Fatalf("reloaded %v with %d, want %v with 12", l.Version, len(l.Conns), s.Version())
	}
	// The reloaded view takes the next delta without a full sync.
	msgs := s.Changed(manyConns(13, false)[12:], nil, now)
	reply, err := back.Apply(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := decodeAck(reply); a.flags != 0 || back.List().Version != s.Version() {
		t.Fatalf("reloaded view answered %+v at %v", a, back.List().Version)
	}
}
