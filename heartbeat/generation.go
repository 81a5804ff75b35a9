package heartbeat

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultStateDir is where tandemd keeps its state, the generation counter
// among it.
const DefaultStateDir = "/var/lib/tandem"

// GenerationFile is the name of the generation counter in the state
// directory. It holds one decimal number and a newline.
const GenerationFile = "generation"

// ReadGeneration returns the generation stored in dir, or 0 when dir holds
// no generation file yet. A file that is not a single decimal number is an
// error naming the file: a counter must never silently restart at 0, or a
// peer would take this node's fresh messages for replays.
func ReadGeneration(dir string) (uint64, error) {
	name := filepath.Join(dir, GenerationFile)
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("heartbeat: generation: %w", err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	g, err := strconv.ParseUint(s, 10, 64)
	if err != nil || s == "" || s[0] == '+' {
		return 0, fmt.Errorf("heartbeat: generation file %s is corrupt: %q is not a decimal number; fix or remove it only when the peer is down, or the peer will reject this node's messages as replays", name, clip(s, 32))
	}
	return g, nil
}

// BumpGeneration reads the generation in dir, adds one and stores it
// durably before returning it: the new value is written to a temporary file
// in dir, synced, renamed over the old file, and the directory is synced, so
// a crash leaves either the old or the new value. The first call in an empty
// dir returns 1. tandemd calls it once at every start.
func BumpGeneration(dir string) (uint64, error) {
	g, err := ReadGeneration(dir)
	if err != nil {
		return 0, err
	}
	if g == math.MaxUint64 {
		return 0, fmt.Errorf("heartbeat: generation file %s: counter exhausted", filepath.Join(dir, GenerationFile))
	}
	g++
	if err := writeGeneration(dir, g); err != nil {
		return 0, fmt.Errorf("heartbeat: generation: %w", err)
	}
	return g, nil
}

func writeGeneration(dir string, g uint64) (err error) {
	tmp, err := os.CreateTemp(dir, GenerationFile+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.WriteString(strconv.FormatUint(g, 10) + "\n"); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), filepath.Join(dir, GenerationFile)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// clip shortens s to at most n bytes for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
