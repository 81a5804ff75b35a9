package fence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tandem-ha/tandem/quorum"
)

// Pill is the Fencer over the quorum disk: the poison pill. Fence writes
// a reset (or off) message into the victim's mailbox and counts it
// delivered when the victim acknowledges it in its status slot or, at the
// latest, when twice the victim's watchdog timeout has passed since the
// write (the header's message wait when that is longer). The victim reads
// its mailbox every disk interval; on a message for itself it stops its
// resources at once, acknowledges, and stops feeding its watchdog, which
// resets it; a victim that is frozen or whose daemon is dead cannot feed
// its watchdog either. Either way it is down when the wait is over.
//
// The wait is for a victim that reads its mailbox and feeds its watchdog
// from the same loop; that the victim also stopped renewing its status
// slot is the decision core's judgement, from [Delivery.Counter] and
// [Delivery.CounterMoved].
type Pill struct {
	// Disk is the quorum partition, opened by the caller.
	Disk *quorum.Disk
	// Local is this node's name and Node the victim's, as the quorum
	// header names them.
	Local, Node string
	// Kind is the message: quorum.MsgReset when zero, or quorum.MsgOff.
	Kind quorum.MessageKind
	// Watchdog is the victim's watchdog timeout; the header's when zero.
	// Fence refuses to run when neither is known.
	Watchdog time.Duration
	// Interval is how often the victim's slot is read while waiting for
	// the acknowledgement; the header's interval when zero.
	Interval time.Duration
}

var _ Fencer = (*Pill)(nil)

// Delivery describes one delivered pill.
type Delivery struct {
	// Message is the message written.
	Message quorum.Message
	// Written is when the write returned: the wait counts from there.
	Written time.Time
	// Acknowledged says the victim acknowledged the message; false when
	// the wait ran out instead.
	Acknowledged bool
	// Counter is the victim's slot counter as last read, and CounterMoved
	// when it was last seen to change after the write (zero when never).
	Counter      uint64
	CounterMoved time.Time
	// Replaced is why the mailbox could not be read before it was
	// overwritten (a torn or foreign sector); nil when it was read.
	Replaced error
}

// Wait returns how long after the write a pill counts as delivered
// without an acknowledgement: twice the victim's watchdog timeout, or
// the header's message wait when that is longer. It is zero when the
// watchdog timeout is unknown.
func (p *Pill) Wait() time.Duration {
	h := p.Disk.Header()
	wd := p.Watchdog
	if wd <= 0 {
		wd = h.Watchdog
	}
	if wd <= 0 {
		return 0
	}
	return max(2*wd, h.MsgWait)
}

func (p *Pill) kind() quorum.MessageKind {
	if p.Kind == quorum.MsgNone {
		return quorum.MsgReset
	}
	return p.Kind
}

func (p *Pill) errorf(format string, args ...any) error {
	return &PillError{Device: p.Disk.Path(), Node: p.Node, Kind: p.kind(), Err: fmt.Errorf(format, args...)}
}

// PillError is a pill that could not be written, or whose delivery could
// not be waited out. Its message names the device, the victim and the
// message:
//
//	fence: pill reset for beta on /dev/sdb1: quorum: /dev/sdb1: sector 4 (mailbox of beta): write at byte 16384: …
type PillError struct {
	// Device is the quorum device's path.
	Device string
	// Node is the victim.
	Node string
	// Kind is the message: reset or off.
	Kind quorum.MessageKind
	// Err is the cause: a *quorum.NodeError for the disk's part, the
	// context's error when the wait was cut short.
	Err error
}

// Error implements error.
func (e *PillError) Error() string {
	return fmt.Sprintf("fence: pill %v for %s on %s: %v", e.Kind, e.Node, e.Device, e.Err)
}

// Unwrap returns Err.
func (e *PillError) Unwrap() error { return e.Err }

// Fence delivers the pill (see [Pill.Deliver]) and reports it as a
// Result: power off once delivered.
func (p *Pill) Fence(ctx context.Context) (Result, error) {
	start := time.Now()
	_, err := p.Deliver(ctx)
	res := Result{Fencer: "disk " + p.Disk.Path(), Node: p.Node, Action: p.kind().String(), Attempts: 1, Duration: time.Since(start)}
	if err == nil {
		res.Power = PowerOff
	}
	return res, err
}

// Deliver writes the message into the victim's mailbox, numbered above
// anything the mailbox or the victim's acknowledgement held, then reads
// the victim's slot every interval until it acknowledges the message or
// the wait (see [Pill.Wait]) has passed since the write; an unreadable
// slot only delays the acknowledgement, not the end of the wait. A
// mailbox that cannot be read is overwritten all the same, and said so
// in [Delivery.Replaced]. When ctx ends first, the error wraps ctx's and
// the message stays in the mailbox: the victim obeys it if it still
// reads.
func (p *Pill) Deliver(ctx context.Context) (Delivery, error) {
	wait := p.Wait()
	if wait <= 0 {
		return Delivery{}, p.errorf("the victim's watchdog timeout is unknown: neither configured nor in the quorum header")
	}
	interval := p.Interval
	if interval <= 0 {
		interval = p.Disk.Header().Interval
	}
	if p.Local == p.Node {
		return Delivery{}, p.errorf("%s would fence itself", p.Local)
	}
	var del Delivery
	prev, err := p.Disk.ReadMessage(p.Node)
	if err != nil {
		var ne *quorum.NodeError
		if !errors.As(err, &ne) {
			return del, p.errorf("%w", err)
		}
		del.Replaced = err
	}
	if err := ctx.Err(); err != nil {
		return del, p.errorf("%w", err)
	}
	seq := prev.Sequence
	ack, counter, ackErr := p.Disk.ReadAck(p.Node)
	if ackErr == nil {
		seq = max(seq, ack.Sequence)
	} else {
		// The victim's last acknowledgement is unknown: number the
		// message above any count of messages, so that a stale
		// acknowledgement read later cannot match it.
		seq = max(seq, uint64(time.Now().UnixNano()))
	}
	del.Message = quorum.Message{Kind: p.kind(), From: p.Local, To: p.Node, Sequence: seq + 1}
	if err := p.Disk.WriteMessage(del.Message); err != nil {
		return del, p.errorf("%w", err)
	}
	del.Written = time.Now()
	del.Counter = counter
	seen := ackErr == nil

	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return del, p.errorf("waiting for %s to acknowledge #%d: %w", p.Node, del.Message.Sequence, ctx.Err())
		case <-deadline.C:
			return del, nil
		case <-tick.C:
		}
		ack, counter, err := p.Disk.ReadAck(p.Node)
		if err != nil {
			continue // the wait still runs out; the acknowledgement is only the early way
		}
		if seen && counter != del.Counter {
			del.CounterMoved = time.Now()
		}
		del.Counter, seen = counter, true
		if ack == del.Message {
			del.Acknowledged = true
			return del, nil
		}
	}
}

// Received is a fence message a node found in its own mailbox.
type Received struct {
	quorum.Message
	// AtStart says the message was there at the watcher's first
	// successful read: for all this run knows, it was left for an
	// earlier run of this node. The node must not start its resources
	// until an operator clears it (haclient disk clear).
	AtStart bool
	// Acknowledged says this node's slot already acknowledges it.
	Acknowledged bool
}

// MailboxWatcher reads a node's own mailbox and reports the fence
// messages left for it. The daemon calls Check every disk interval from
// its loop, or runs Watch.
type MailboxWatcher struct {
	disk *quorum.Disk
	node string

	read     bool   // a read has succeeded
	startSeq uint64 // the sequence of the message found by the first read
	startMsg bool
}

// NewMailboxWatcher watches node's mailbox on d.
func NewMailboxWatcher(d *quorum.Disk, node string) (*MailboxWatcher, error) {
	h := d.Header()
	if _, ok := h.SlotOf(node); !ok {
		return nil, fmt.Errorf("fence: mailbox of %s on %s: the quorum header's nodes are %q", node, d.Path(), h.Nodes)
	}
	return &MailboxWatcher{disk: d, node: node}, nil
}

// Check reads the mailbox once. It returns nil and no error for an empty
// mailbox, and the message when there is one, every time it is read, so
// that a daemon that missed it once sees it again. A mailbox that cannot
// be read is an error naming the device, the sector and the node (a
// *quorum.NodeError).
func (w *MailboxWatcher) Check() (*Received, error) {
	m, err := w.disk.ReadMessage(w.node)
	if err != nil {
		return nil, fmt.Errorf("fence: mailbox watch: %w", err)
	}
	first := !w.read
	w.read = true
	if first {
		w.startMsg, w.startSeq = m.Kind != quorum.MsgNone, m.Sequence
	}
	if m.Kind == quorum.MsgNone {
		return nil, nil
	}
	r := &Received{Message: m, AtStart: w.startMsg && m.Sequence == w.startSeq}
	if ack, _, err := w.disk.ReadAck(w.node); err == nil {
		r.Acknowledged = ack == m
	}
	return r, nil
}

// Acknowledge records in this node's slot that it obeyed r. A running
// heartbeat disk medium rewrites the slot at every interval: it must
// carry the acknowledgement, or be closed first (see
// quorum.Disk.Acknowledge).
func (w *MailboxWatcher) Acknowledge(r *Received) error {
	if err := w.disk.Acknowledge(r.Message); err != nil {
		return fmt.Errorf("fence: acknowledge %v: %w", r.Message, err)
	}
	return nil
}

// Watch calls Check at once and then every interval (the header's when
// zero) until ctx ends, and calls report with each message found and
// each error. It returns ctx's error.
func (w *MailboxWatcher) Watch(ctx context.Context, interval time.Duration, report func(*Received, error)) error {
	if interval <= 0 {
		interval = w.disk.Header().Interval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if r, err := w.Check(); r != nil || err != nil {
			report(r, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
