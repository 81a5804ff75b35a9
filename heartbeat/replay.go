package heartbeat

import (
	"errors"
	"fmt"
)

// WindowSize is how many sequence numbers below the highest one seen a
// Window still accepts, each once.
const WindowSize = 128

// Errors from Window.Accept.
var (
	// ErrReplayed: this generation and sequence were accepted before.
	ErrReplayed = errors.New("replayed")
	// ErrStale: the generation is older than the newest seen, or the
	// sequence fell out of the window.
	ErrStale = errors.New("stale")
)

// Window is the anti-replay state for one sender, as IPsec's sliding window:
// a message is accepted when its generation is newer than any seen before
// (the sender restarted: the window starts afresh), or when it has the
// newest generation and a sequence number not yet seen that is no more than
// WindowSize-1 below the highest accepted. Messages that arrive out of order
// within the window are accepted once each. The zero Window accepts any
// first message.
type Window struct {
	started bool
	gen     uint64
	top     uint64    // highest sequence accepted in gen
	bits    [2]uint64 // bit i set: top-i accepted; bits[0] bit 0 is top
}

// Accept records (gen, seq) and returns nil if it is new; otherwise it
// returns an error wrapping ErrReplayed or ErrStale and changes nothing.
func (w *Window) Accept(gen, seq uint64) error {
	if err := w.Check(gen, seq); err != nil {
		return err
	}
	if !w.started || gen > w.gen {
		*w = Window{started: true, gen: gen, top: seq, bits: [2]uint64{1, 0}}
		return nil
	}
	if seq > w.top {
		w.shift(seq - w.top)
		w.top = seq
		w.bits[0] |= 1
		return nil
	}
	d := w.top - seq
	w.bits[d/64] |= 1 << (d % 64)
	return nil
}

// Check reports what Accept would, without recording anything.
func (w *Window) Check(gen, seq uint64) error {
	switch {
	case !w.started || gen > w.gen:
		return nil
	case gen < w.gen:
		return fmt.Errorf("generation %d, newest seen %d: %w", gen, w.gen, ErrStale)
	case seq > w.top:
		return nil
	}
	d := w.top - seq
	if d >= WindowSize {
		return fmt.Errorf("generation %d sequence %d, %d behind the newest: %w", gen, seq, d, ErrStale)
	}
	if w.bits[d/64]&(1<<(d%64)) != 0 {
		return fmt.Errorf("generation %d sequence %d: %w", gen, seq, ErrReplayed)
	}
	return nil
}

// Generation returns the newest generation accepted, and whether any
// message was.
func (w *Window) Generation() (uint64, bool) { return w.gen, w.started }

// shift moves the bitmap n places towards older sequence numbers.
func (w *Window) shift(n uint64) {
	switch {
	case n >= 128:
		w.bits = [2]uint64{}
	case n >= 64:
		w.bits = [2]uint64{0, w.bits[0] << (n - 64)}
	default:
		w.bits[1] = w.bits[1]<<n | w.bits[0]>>(64-n)
		w.bits[0] <<= n
	}
}
