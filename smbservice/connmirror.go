package smbservice

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tandem-ha/tandem/quorum"
)

// DefaultMirrorInterval is the least time between two writes of the
// connection list to the quorum disk.
const DefaultMirrorInterval = 3 * time.Second

// DiskMirror copies the active node's connection list to its area of the
// quorum disk, so that a survivor that lost the LAN together with this
// node still knows its clients: after a change, at most once per
// interval, and only when the version moved. The writes run on a
// goroutine of its own, so a slow or hung disk never holds up the caller;
// Close stops it.
type DiskMirror struct {
	write func(l VersionedList) error
	log   *slog.Logger
	loop  *throttle
	wake  chan struct{}

	mu      sync.Mutex
	latest  VersionedList
	written ListVersion
	writes  uint64
	lastErr error
}

// NewDiskMirror starts a mirror that writes to slot's area of d (the
// local node's slot) at most once per interval (DefaultMirrorInterval
// when zero). Failures are logged to log (slog.Default() when nil), once
// per run of failures.
func NewDiskMirror(d *quorum.Disk, slot int, interval time.Duration, log *slog.Logger) *DiskMirror {
	return newDiskMirror(func(l VersionedList) error {
		data, err := MarshalConns(l.Conns)
		if err == nil {
			_, err = d.WriteConnList(slot, l.Version.Epoch, l.Version.Seq, data)
		}
		return err
	}, interval, log)
}

func newDiskMirror(write func(VersionedList) error, interval time.Duration, log *slog.Logger) *DiskMirror {
	if interval <= 0 {
		interval = DefaultMirrorInterval
	}
	if log == nil {
		log = slog.Default()
	}
	m := &DiskMirror{write: write, log: log, wake: make(chan struct{}, 1)}
	m.loop = startThrottle(interval, m.wake, m.flush)
	return m
}

// Update hands the mirror the list as it is now; it does not block.
func (m *DiskMirror) Update(l VersionedList) {
	m.mu.Lock()
	m.latest = l
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// flush writes the latest list when its version is not on the disk yet.
func (m *DiskMirror) flush() error {
	m.mu.Lock()
	l, done := m.latest, m.written
	m.mu.Unlock()
	if l.Version.IsZero() || l.Version == done {
		return nil
	}
	err := m.write(l)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.written = l.Version
		m.writes++
	}
	m.lastErr = logTransition(m.log, m.lastErr, err, "the connection list to the quorum disk")
	return err
}

// Written returns the version last written and how many writes were made.
func (m *DiskMirror) Written() (ListVersion, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.written, m.writes
}

// Close stops the mirror and writes a list not written yet.
func (m *DiskMirror) Close() error {
	m.loop.close()
	return m.flush()
}

// ReadDiskList reads the list slot's node left in its area of the quorum
// disk; Source is "disk". An area never written, or a disk without areas,
// gives an empty list with a zero version and no error.
func ReadDiskList(d *quorum.Disk, slot int) (VersionedList, error) {
	l, err := d.ReadConnList(slot)
	if errors.Is(err, quorum.ErrNoList) || err == nil && l == nil {
		return VersionedList{Source: "disk"}, nil
	}
	if err != nil {
		return VersionedList{Source: "disk"}, err
	}
	conns, err := UnmarshalConns(l.Data)
	if err != nil {
		return VersionedList{Source: "disk"}, fmt.Errorf("quorum: %s: connection list of slot %d (write %d): %w", d.Path(), slot, l.Sequence, err)
	}
	return VersionedList{Version: ListVersion{l.Epoch, l.Version}, Conns: conns, Source: "disk"}, nil
}
