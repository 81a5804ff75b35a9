package heartbeat

import (
	"context"
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
	// Interval is the time between two cycles of the medium, each of which
	// writes this node's slot (when a message waits) and then reads the
	// peer's; the header's interval when zero. A Send that comes less than
	// a tenth of the interval before a cycle is due brings the cycle
	// forward to share its wake-up.
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
	// LastWrite is when the latest successful write of this node's slot
	// returned; zero before the first. PeerMoved is when the peer's
	// counter (or generation) was last seen to change, or first read.
	// Both carry monotonic readings of this node's clock.
	LastWrite, PeerMoved time.Time
	// MailboxRead says this node's own mailbox, read with every poll of
	// the peer's slot, was read and decoded at least once; Mailbox is what
	// it last held (kind MsgNone when empty).
	MailboxRead bool
	Mailbox     quorum.Message
	// LastError is the latest write or read error, or rejected sector.
	LastError string
}

// Disk is the heartbeat medium over the quorum partition. Each node owns
// one status slot. Send stores the latest message; once per interval a
// goroutine the medium owns writes it into this node's slot, bumping the
// slot's counter, and then reads the peer's slot, so one wake-up does
// both. Receive returns the peer's message when its counter moved. A peer
// whose counter stops moving falls silent on this medium; how long that
// may last is the Node's judgement, on its own monotonic clock. No clock
// crosses the disk.
type Disk struct {
	name        string
	disk        *quorum.Disk
	hdr         quorum.Header
	local, peer int
	interval    time.Duration
	log         *slog.Logger
	// writeSlot and readSlot do the I/O; tests replace them to make the
	// disk fail. readSlot reads the peer's slot and this node's mailbox
	// together.
	writeSlot func(i int, s *quorum.Slot) error
	readSlot  func() (*quorum.Slot, *quorum.Mailbox, error, error, error)

	ready  chan struct{} // polled is set
	due    chan struct{} // Send found a cycle due
	closed chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	mu       sync.Mutex
	pending  []byte // latest message not yet written
	rewrite  bool   // write the slot with the next cycle even without a message
	slot     quorum.Slot
	writeErr error // returned by the next Send
	stats    DiskStats
	limiter  *logLimiter
	polled   *diskPoll // news from the peer's slot that Receive has not taken
	cycled   time.Time // when the last cycle began

	// the cycle's own: the peer's slot as last read
	seen    bool
	lastGen uint64
	lastCnt uint64
}

// diskPoll is what a poll of the peer's slot has for Receive: a message,
// or the error of a failed read.
type diskPoll struct {
	msg  []byte
	from string
	err  error
}

var _ Medium = (*Disk)(nil)

// DialDisk opens the quorum partition, checks that its header belongs to
// cfg.Cluster and names both nodes, and starts the cycle. The counter
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
		writeSlot: qd.WriteSlot,
		log:       log.With("medium", cfg.Name, "device", cfg.Device),
		ready:     make(chan struct{}, 1),
		due:       make(chan struct{}, 1),
		closed:    make(chan struct{}),
		slot:      quorum.Slot{AckFrom: quorum.NoSlot},
		limiter:   newLogLimiter(LogInterval),
	}
	d.readSlot = func() (*quorum.Slot, *quorum.Mailbox, error, error, error) {
		return qd.ReadSlotAndMailbox(peer, local)
	}
	if s, err := qd.ReadSlot(local); err == nil {
		d.slot.Counter = s.Counter
	}
	d.stats.Counter = d.slot.Counter
	d.wg.Add(1)
	go d.run()
	return d, nil
}

// Name returns the medium's name.
func (d *Disk) Name() string { return d.name }

// Quorum returns the quorum partition the medium writes, for the fence
// messages that share it. Its slots are the medium's to write.
func (d *Disk) Quorum() *quorum.Disk { return d.disk }

// Local returns this node's name, as the quorum header has it.
func (d *Disk) Local() string { return d.hdr.Nodes[d.local] }

// Interval returns the time between writes and between polls.
func (d *Disk) Interval() time.Duration { return d.interval }

// Stats returns a snapshot of the medium's counters.
func (d *Disk) Stats() DiskStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Send stores msg as the message to write into this node's slot with the
// next cycle, replacing one still waiting, and returns at once. It returns
// the error of the last write if that failed since the previous Send, so
// a disk that is gone shows in the Node's send errors; the cycle keeps
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
	if displaces(msg, d.pending) {
		d.pending = slices.Clone(msg)
	}
	err := d.writeErr
	d.writeErr = nil
	if time.Since(d.cycled) >= d.interval-d.interval/10 {
		select {
		case d.due <- struct{}{}:
		default:
		}
	}
	d.mu.Unlock()
	return err
}

func (d *Disk) sendsPromptly() bool { return true }

// displaces reports whether msg takes the place of pending, the message
// waiting for the next cycle. A heartbeat does not displace a message of
// the decision core: any signed message shows the node alive, and the slot
// holds one message per interval.
func displaces(msg, pending []byte) bool {
	return pending == nil || !isHeartbeat(msg) || isHeartbeat(pending)
}

// isHeartbeat reports whether msg is a plain heartbeat, by its type byte
// (offset 5, see the package documentation).
func isHeartbeat(msg []byte) bool {
	return len(msg) > 5 && Type(msg[5]) == TypeHeartbeat
}

// Acknowledge records in this node's slot, from the next write on, that
// it obeyed m, a fence message from its mailbox, and returns once a write
// carrying it has reached the disk, or ctx ends.
func (d *Disk) Acknowledge(ctx context.Context, m quorum.Message) error {
	d.mu.Lock()
	if err := d.hdr.Acknowledge(&d.slot, m); err != nil {
		d.mu.Unlock()
		return fmt.Errorf("heartbeat: %s: %w", d.name, err)
	}
	want := d.slot.Counter + 1
	d.rewrite = true
	d.mu.Unlock()
	select {
	case d.due <- struct{}{}:
	default:
	}
	t := time.NewTicker(d.interval / 4)
	defer t.Stop()
	for {
		d.mu.Lock()
		done, err := d.stats.Counter >= want, d.writeErr
		d.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("heartbeat: %s: acknowledge %v: %w (%w)", d.name, m, ctx.Err(), err)
			}
			return fmt.Errorf("heartbeat: %s: acknowledge %v: %w", d.name, m, ctx.Err())
		case <-d.closed:
			return fmt.Errorf("heartbeat: %s: acknowledge %v: %w", d.name, m, os.ErrClosed)
		case <-t.C:
		}
	}
}

// run is the medium's cycle, once per interval until Close: write the
// pending message, if any, into this node's slot, then read the peer's.
// A Send shortly before the cycle is due starts it at once, so that with
// a keepalive that divides the interval the cycle follows every other
// heartbeat in one wake-up, rather than on a timer of its own out of phase.
func (d *Disk) run() {
	defer d.wg.Done()
	timer := time.NewTimer(d.interval)
	defer timer.Stop()
	for {
		select {
		case <-d.closed:
			return
		case <-timer.C:
		case <-d.due:
		}
		timer.Reset(d.interval)
		d.mu.Lock()
		d.cycled = time.Now()
		select {
		case <-d.due: // this cycle answers it
		default:
		}
		msg, rewrite := d.pending, d.rewrite
		d.pending, d.rewrite = nil, false
		d.mu.Unlock()
		if msg != nil || rewrite {
			d.write(msg)
		}
		d.poll()
	}
}

// write stores msg (nil: the payload as it was) in this node's slot with
// the next counter. The counter
// moves at every attempt, so a write that failed but landed later is never
// confused with the next one.
func (d *Disk) write(msg []byte) {
	d.mu.Lock()
	d.slot.Counter++
	if msg != nil {
		d.slot.Payload = msg
	}
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
	writeSlot := d.writeSlot
	d.mu.Unlock()
	err := writeSlot(d.local, &s)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.stats.WriteErrors++
		d.stats.LastError = err.Error()
		d.writeErr = fmt.Errorf("heartbeat: %s: write slot: %w", d.name, err)
		if d.pending == nil {
			// Keep trying with this message until a newer one comes.
			d.pending, d.rewrite = msg, true
		}
		return
	}
	d.stats.Writes++
	d.stats.Counter = s.Counter
	d.stats.LastWrite = time.Now()
}

// poll reads the peer's slot and leaves for Receive the message it holds
// once its counter (or generation) has moved since the last poll, or the
// error of a read that failed. The first good read only sets the baseline:
// a message the peer left before this node started is not news. A
// rejected sector is counted, logged at a bounded rate and skipped.
func (d *Disk) poll() {
	d.mu.Lock()
	readSlot := d.readSlot
	d.mu.Unlock()
	s, mb, err, mbErr, ioErr := readSlot()
	switch {
	case ioErr != nil:
		err = ioErr
	case mbErr != nil:
		d.rejected(mbErr)
	default:
		d.mu.Lock()
		d.stats.MailboxRead = true
		d.stats.Mailbox = d.disk.MessageOf(d.local, mb)
		d.mu.Unlock()
	}
	if err != nil {
		if d.rejected(err) {
			return
		}
		d.mu.Lock()
		d.stats.ReadErrors++
		d.stats.LastError = err.Error()
		d.mu.Unlock()
		d.hand(&diskPoll{err: fmt.Errorf("heartbeat: %s: read peer slot: %w", d.name, err)})
		return
	}
	d.mu.Lock()
	d.stats.Polls++
	d.stats.PeerCounter = s.Counter
	d.mu.Unlock()
	moved := !d.seen || s.Counter != d.lastCnt || s.Generation != d.lastGen
	first := !d.seen
	if moved {
		d.mu.Lock()
		d.stats.PeerMoved = time.Now()
		d.mu.Unlock()
	}
	d.seen, d.lastCnt, d.lastGen = true, s.Counter, s.Generation
	if !moved || first || len(s.Payload) == 0 {
		return
	}
	d.hand(&diskPoll{msg: slices.Clone(s.Payload), from: fmt.Sprintf("slot %d (%s)", d.peer, d.hdr.Nodes[d.peer])})
}

// hand leaves p for Receive. It replaces news Receive has not taken yet,
// as a slower poll would have read only the newer slot.
func (d *Disk) hand(p *diskPoll) {
	d.mu.Lock()
	d.polled = p
	d.mu.Unlock()
	select {
	case d.ready <- struct{}{}:
	default:
	}
}

// Receive returns the peer's message once the cycle has seen its slot's
// counter (or generation) move, or the error of a read of the slot that
// failed. Rejected sectors are counted and skipped (see Stats). After
// Close it returns an error wrapping os.ErrClosed.
func (d *Disk) Receive() ([]byte, string, error) {
	for {
		select {
		case <-d.closed:
			return nil, "", fmt.Errorf("heartbeat: %s: receive: %w", d.name, os.ErrClosed)
		default:
		}
		select {
		case <-d.closed:
			return nil, "", fmt.Errorf("heartbeat: %s: receive: %w", d.name, os.ErrClosed)
		case <-d.ready:
		}
		d.mu.Lock()
		p := d.polled
		d.polled = nil
		d.mu.Unlock()
		if p != nil {
			return p.msg, p.from, p.err
		}
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

// Close stops the cycle and closes the device. A blocked Receive returns.
// It is safe to call more than once.
func (d *Disk) Close() error {
	var err error
	d.once.Do(func() {
		close(d.closed)
		d.wg.Wait()
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
