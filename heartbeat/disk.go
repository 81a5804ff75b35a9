package heartbeat

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/tandem-ha/tandem/quorum"
)

// DefaultDiskInterval is how often the disk medium writes and polls when
// neither its configuration nor the quorum header says otherwise.
const DefaultDiskInterval = 200 * time.Millisecond

// DiskConfig says how to open a disk medium.
type DiskConfig struct {
	// Name of the medium; "disk" when empty.
	Name string
	// Device is the quorum partition, initialised by haclient disk init.
	Device string
	// Cluster is the cluster's name; a disk of another cluster is refused.
	Cluster string
	// Local and Peer are this node's and the peer's names, as the quorum
	// header's node table has them.
	Local, Peer string
	// Interval is the least time between two writes of this node's slot
	// and the time between two reads of the peer's; the header's interval
	// when zero.
	Interval time.Duration
	// IOTimeout bounds each read and write; quorum.DefaultTimeout when 0.
	IOTimeout time.Duration
	// Logger receives, at most once per LogInterval per kind, the sectors
	// rejected while polling; slog.Default() when nil.
	Logger *slog.Logger
}

// DiskStats are the disk medium's own counters.
type DiskStats struct {
	// Writes counts slot writes that succeeded, WriteErrors those that
	// failed (the disk is gone, or hangs).
	Writes, WriteErrors uint64
	// Polls counts reads of the peer's slot that succeeded, ReadErrors
	// the reads that failed.
	Polls, ReadErrors uint64
	// Corrupt counts peer slots rejected as torn, bit-flipped or
	// malformed; Foreign those of another place, initialisation or
	// cluster. Neither is ever delivered.
	Corrupt, Foreign uint64
	// Counter is the counter of this node's last written slot; PeerCounter
	// the last one read from the peer's slot.
	Counter, PeerCounter uint64
	// LastError is the latest write or read error, or rejected sector.
	LastError string
}

// Disk is the heartbeat medium over the quorum partition. Each node owns
// one status slot: Send stores the latest message there and bumps the
// slot's counter, at most once per interval, from a writer goroutine the
// medium owns; Receive polls the peer's slot every interval and returns
// the peer's message when its counter moved. A peer whose counter stops
// moving falls silent on this medium; how long that may last is the
// Node's judgement, on its own monotonic clock. No clock crosses the disk.
type Disk struct {
	name        string
	disk        *quorum.Disk
	hdr         quorum.Header
	local, peer int
	interval    time.Duration
	log         *slog.Logger
	// writeSlot and readSlot do the I/O; tests replace them to make the
	// disk fail.
	writeSlot func(i int, s *quorum.Slot) error
	readSlot  func(i int) (*quorum.Slot, error)

	wake   chan struct{} // a message is pending
	closed chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	mu       sync.Mutex
	pending  []byte // latest message not yet written
	slot     quorum.Slot
	writeErr error // returned by the next Send
	stats    DiskStats
	limiter  *logLimiter

	// receive side, used by the Receive goroutine only
	seen     bool
	lastGen  uint64
	lastCnt  uint64
	pollTick *time.Ticker
}

var _ Medium = (*Disk)(nil)

// DialDisk opens the quorum partition, checks that its header belongs to
// cfg.Cluster and names both nodes, and starts the writer. The counter
// continues from what this node's slot holds, so a restart is seen as
// movement, not as a rewind.
func DialDisk(cfg DiskConfig) (*Disk, error) {
	if cfg.Name == "" {
		cfg.Name = "disk"
	}
	if cfg.Local == cfg.Peer {
		return nil, fmt.Errorf("heartbeat: %s medium: local and peer are both %q", cfg.Name, cfg.Local)
	}
	qd, err := quorum.Open(cfg.Device, quorum.Options{Cluster: cfg.Cluster, Timeout: cfg.IOTimeout})
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %s medium: %w", cfg.Name, err)
	}
	h := qd.Header()
	local, ok1 := h.SlotOf(cfg.Local)
	peer, ok2 := h.SlotOf(cfg.Peer)
	if !ok1 || !ok2 {
		qd.Close()
		return nil, fmt.Errorf("heartbeat: %s medium: %s: the quorum header's nodes are %q, not %q and %q",
			cfg.Name, cfg.Device, h.Nodes, cfg.Local, cfg.Peer)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = h.Interval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Disk{
		name: cfg.Name, disk: qd, hdr: h, local: local, peer: peer, interval: cfg.Interval,
		writeSlot: qd.WriteSlot, readSlot: qd.ReadSlot,
		log:     log.With("medium", cfg.Name, "device", cfg.Device),
		wake:    make(chan struct{}, 1),
		closed:  make(chan struct{}),
		slot:    quorum.Slot{AckFrom: quorum.NoSlot},
		limiter: newLogLimiter(LogInterval),
	}
	if s, err := qd.ReadSlot(local); err == nil {
		d.slot.Counter = s.Counter
	}
	d.stats.Counter = d.slot.Counter
	d.pollTick = time.NewTicker(d.interval)
	d.wg.Add(1)
	go d.writer()
	return d, nil
}

// Name returns the medium's name.
func (d *Disk) Name() string { return d.name }

// Interval returns the time between writes and between polls.
func (d *Disk) Interval() time.Duration { return d.interval }

// Stats returns a snapshot of the medium's counters.
func (d *Disk) Stats() DiskStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Send stores msg as the message to write into this node's slot with the
// next write, replacing one still waiting, and returns at once. It returns
// the error of the last write if that failed since the previous Send, so
// a disk that is gone shows in the Node's send errors; the writer keeps
// trying with the latest message.
func (d *Disk) Send(msg []byte) error {
	if n := quorum.MaxPayload(d.hdr.SectorSize); len(msg) > n {
		return fmt.Errorf("heartbeat: %s: message of %d bytes, a %d-byte slot holds %d", d.name, len(msg), d.hdr.SectorSize, n)
	}
	select {
	case <-d.closed:
		return fmt.Errorf("heartbeat: %s: send: %w", d.name, os.ErrClosed)
	default:
	}
	d.mu.Lock()
	d.pending = slices.Clone(msg)
	err := d.writeErr
	d.writeErr = nil
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return err
}

// writer writes the pending message into this node's slot, at most once
// per interval, until Close.
func (d *Disk) writer() {
	defer d.wg.Done()
	pace := time.NewTimer(0)
	defer pace.Stop()
	var last time.Time
	for {
		select {
		case <-d.closed:
			return
		case <-d.wake:
		}
		if wait := d.interval - time.Since(last); !last.IsZero() && wait > 0 {
			pace.Reset(wait)
			select {
			case <-d.closed:
				return
			case <-pace.C:
			}
		}
		d.mu.Lock()
		msg := d.pending
		d.pending = nil
		d.mu.Unlock()
		if msg == nil {
			continue
		}
		last = time.Now()
		d.write(msg)
	}
}

// write stores msg in this node's slot with the next counter. The counter
// moves at every attempt, so a write that failed but landed later is never
// confused with the next one.
func (d *Disk) write(msg []byte) {
	d.mu.Lock()
	d.slot.Counter++
	d.slot.Payload = msg
	// The message is this node's own; its generation and role make the
	// slot readable by a dump without the key.
	if m, _, err := parse(msg); err == nil {
		d.slot.Generation = m.Generation
		if m.Type == TypeHeartbeat {
			var st Status
			if st.UnmarshalBinary(m.Payload) == nil {
				d.slot.Role = quorum.ParseRole(st.Role)
			}
		}
	}
	s := d.slot
	d.mu.Unlock()
	err := d.writeSlot(d.local, &s)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.stats.WriteErrors++
		d.stats.LastError = err.Error()
		d.writeErr = fmt.Errorf("heartbeat: %s: write slot: %w", d.name, err)
		if d.pending == nil {
			// Keep trying with this message until a newer one comes.
			d.pending = msg
			select {
			case d.wake <- struct{}{}:
			default:
			}
		}
		return
	}
	d.stats.Writes++
	d.stats.Counter = s.Counter
}

// Receive polls the peer's slot every interval and returns the message it
// holds once its counter (or generation) has moved since the last poll.
// The first good read only sets the baseline: a message the peer left
// before this node started is not news. A rejected sector is counted,
// logged at a bounded rate and skipped; a read that fails is returned as
// an error. After Close it returns an error wrapping os.ErrClosed.
func (d *Disk) Receive() ([]byte, string, error) {
	for {
		select {
		case <-d.closed:
			return nil, "", fmt.Errorf("heartbeat: %s: receive: %w", d.name, os.ErrClosed)
		case <-d.pollTick.C:
		}
		s, err := d.readSlot(d.peer)
		if err != nil {
			if d.rejected(err) {
				continue
			}
			d.mu.Lock()
			d.stats.ReadErrors++
			d.stats.LastError = err.Error()
			d.mu.Unlock()
			return nil, "", fmt.Errorf("heartbeat: %s: read peer slot: %w", d.name, err)
		}
		d.mu.Lock()
		d.stats.Polls++
		d.stats.PeerCounter = s.Counter
		d.mu.Unlock()
		moved := !d.seen || s.Counter != d.lastCnt || s.Generation != d.lastGen
		first := !d.seen
		d.seen, d.lastCnt, d.lastGen = true, s.Counter, s.Generation
		if !moved || first || len(s.Payload) == 0 {
			continue
		}
		return slices.Clone(s.Payload), fmt.Sprintf("slot %d (%s)", d.peer, d.hdr.Nodes[d.peer]), nil
	}
}

// rejected counts and logs a sector the decoder refused, and reports
// whether err was one.
func (d *Disk) rejected(err error) bool {
	var se *quorum.SectorError
	if !errors.As(err, &se) {
		return false
	}
	kind := "corrupt"
	d.mu.Lock()
	if errors.Is(err, quorum.ErrForeign) || errors.Is(err, quorum.ErrMisplaced) {
		kind = "foreign"
		d.stats.Foreign++
	} else {
		d.stats.Corrupt++
	}
	d.stats.LastError = err.Error()
	ok, held := d.limiter.allow(kind, time.Now())
	d.mu.Unlock()
	if ok {
		attrs := []any{"kind", kind, "err", err}
		if held > 0 {
			attrs = append(attrs, "suppressed", held)
		}
		d.log.Warn("heartbeat: peer slot rejected", attrs...)
	}
	return true
}

// Close stops the writer and the poller and closes the device. A blocked
// Receive returns. It is safe to call more than once.
func (d *Disk) Close() error {
	var err error
	d.once.Do(func() {
		close(d.closed)
		d.wg.Wait()
		d.pollTick.Stop()
		err = d.disk.Close()
	})
	return err
}

// Inspect decodes a message's structure without verifying its MAC or its
// cluster, for display only (haclient disk dump shows what a slot
// holds): nothing it returns may be trusted. It returns the message and
// the cluster name it carries.
func Inspect(msg []byte) (*Message, string, error) {
	m, p, err := parse(msg)
	if err != nil {
		return nil, "", err
	}
	return m, string(p.cluster), nil
}
