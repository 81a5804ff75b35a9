package smbservice

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultStateDir is where tandemd keeps its state, the peers' connection
// lists among it.
const DefaultStateDir = "/var/lib/tandem"

// DefaultSaveInterval is the least time between two writes of a saved
// view.
const DefaultSaveInterval = time.Second

// ViewPath returns the file that keeps the connection list of peer:
// DIR/tickles-PEER.list.
func ViewPath(dir, peer string) string {
	return filepath.Join(dir, "tickles-"+peer+".list")
}

// Saved list, version 1:
//
//	"TDVL"  magic
//	1       version
//	3       reserved, zero
//	8       epoch
//	8       sequence
//	...     the list as MarshalConns writes it
//	4       CRC-32C of all that precedes
const (
	savedMagic   = "TDVL"
	savedVersion = 1
	savedHeader  = 24
)

// MarshalList encodes a versioned list for a file.
func MarshalList(l VersionedList) ([]byte, error) {
	body, err := MarshalConns(l.Conns)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, savedHeader+len(body)+crcLen)
	b = append(b, savedMagic...)
	b = append(b, savedVersion, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, l.Version.Epoch)
	b = binary.BigEndian.AppendUint64(b, l.Version.Seq)
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// UnmarshalList decodes what MarshalList wrote. Errors give the offset.
func UnmarshalList(b []byte) (VersionedList, error) {
	if len(b) < savedHeader+crcLen {
		return VersionedList{}, fmt.Errorf("saved connection list: %d bytes, shorter than header and checksum (%d)", len(b), savedHeader+crcLen)
	}
	if string(b[:4]) != savedMagic {
		return VersionedList{}, fmt.Errorf("saved connection list: offset 0: magic %q, want %q", b[:4], savedMagic)
	}
	if b[4] != savedVersion {
		return VersionedList{}, fmt.Errorf("saved connection list: offset 4: version %d, want %d", b[4], savedVersion)
	}
	if b[5]|b[6]|b[7] != 0 {
		return VersionedList{}, fmt.Errorf("saved connection list: offset 5: reserved bytes not zero")
	}
	end := len(b) - crcLen
	if got, want := binary.BigEndian.Uint32(b[end:]), crc32.Checksum(b[:end], castagnoli); got != want {
		return VersionedList{}, fmt.Errorf("saved connection list: offset %d: checksum %08x, computed %08x", end, got, want)
	}
	conns, err := UnmarshalConns(b[savedHeader:end])
	if err != nil {
		return VersionedList{}, fmt.Errorf("saved connection list: offset %d: %w", savedHeader, err)
	}
	return VersionedList{
		Version: ListVersion{binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[16:])},
		Conns:   conns,
		Source:  "file",
	}, nil
}

// SaveList writes l to path atomically: to a temporary file in the same
// directory, synced, renamed over path, and the directory synced, so that
// a crash leaves the old file or the new one, never a mix.
func SaveList(path string, l VersionedList) error {
	b, err := MarshalList(l)
	if err != nil {
		return fmt.Errorf("save connection list %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("save connection list: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save connection list %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("save connection list %s: sync directory: %w", path, err)
		}
	}
	return nil
}

// LoadList reads a list saved by SaveList. A missing file is an empty
// list and no error; a damaged one is an empty list and an error that
// names the file.
func LoadList(path string) (VersionedList, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return VersionedList{Source: "file"}, nil
	}
	if err != nil {
		return VersionedList{Source: "file"}, fmt.Errorf("load connection list: %w", err)
	}
	l, err := UnmarshalList(b)
	if err != nil {
		return VersionedList{Source: "file"}, fmt.Errorf("load connection list %s: %w", path, err)
	}
	return l, nil
}

// LoadView returns a View holding the list saved at path, so that a
// restarted node still knows its peer's clients. A missing file gives an
// empty View; a damaged one an empty View and the error, for the caller
// to report.
func LoadView(path string) (*View, error) {
	l, err := LoadList(path)
	return NewView(l), err
}

// ViewSaver keeps a View's list in a file: after each change, at most once
// per interval, written atomically (SaveList) by a goroutine of its own
// that sleeps while nothing changes. Close stops it.
type ViewSaver struct {
	v    *View
	path string
	log  *slog.Logger
	loop *throttle

	mu      sync.Mutex
	saved   uint64 // change count last written
	lastErr error
}

// NewViewSaver starts saving v to path, at most once per interval
// (DefaultSaveInterval when zero). Failures are logged to log
// (slog.Default() when nil), once per run of failures.
func NewViewSaver(v *View, path string, interval time.Duration, log *slog.Logger) *ViewSaver {
	if interval <= 0 {
		interval = DefaultSaveInterval
	}
	if log == nil {
		log = slog.Default()
	}
	s := &ViewSaver{v: v, path: path, log: log}
	_, s.saved = v.snapshot()
	s.loop = startThrottle(interval, v.watch(), s.save)
	return s
}

// save writes the list when it changed since the last write.
func (s *ViewSaver) save() error {
	l, n := s.v.snapshot()
	s.mu.Lock()
	defer s.mu.Unlock()
	if n == s.saved {
		return nil
	}
	err := SaveList(s.path, l)
	if err == nil {
		s.saved = n
	}
	s.lastErr = logTransition(s.log, s.lastErr, err, "the peer's connection list", "path", s.path)
	return err
}

// Close stops the saver and writes a change not yet written.
func (s *ViewSaver) Close() error {
	s.loop.close()
	return s.save()
}

// logTransition logs the first failure of a run of failures, and the
// success that ends it, and returns err.
func logTransition(log *slog.Logger, prev, err error, what string, args ...any) error {
	switch {
	case err != nil && prev == nil:
		log.Warn("cannot save "+what, append(args, "err", err)...)
	case err == nil && prev != nil:
		log.Info("saved "+what+" again", args...)
	}
	return err
}

// throttle runs fn after each signal on wake, at most once per interval,
// on a goroutine of its own that sleeps while no signal comes.
type throttle struct {
	stop, done chan struct{}
	once       sync.Once
}

func startThrottle(interval time.Duration, wake <-chan struct{}, fn func() error) *throttle {
	t := &throttle{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(t.done)
		timer := time.NewTimer(interval)
		timer.Stop()
		for {
			select {
			case <-t.stop:
				return
			case <-wake:
			}
			fn()
			timer.Reset(interval)
			select {
			case <-t.stop:
				timer.Stop()
				return
			case <-timer.C:
			}
		}
	}()
	return t
}

// close stops the goroutine and waits for it.
func (t *throttle) close() {
	t.once.Do(func() { close(t.stop) })
	<-t.done
}
