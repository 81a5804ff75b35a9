package testenv

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// watchdog is a node's lab watchdog: a FIFO the node writes to as it would
// to /dev/watchdog. Any byte but 'V' arms and feeds it; 'V' (the magic close)
// disarms it. An armed watchdog not fed within its timeout calls fire once.
type watchdog struct {
	path string
	f    *os.File
	fire func()

	mu      sync.Mutex
	timeout time.Duration
	armed   bool
	fed     time.Time
	fired   int
	done    chan struct{}
}

func newWatchdog(path string, timeout time.Duration, fire func()) (*watchdog, error) {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("testenv: watchdog %s: %w", path, err)
	}
	// Read-write, so the FIFO never reports end of file when a writer
	// closes, and writers never block waiting for a reader.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("testenv: watchdog %s: %w", path, err)
	}
	w := &watchdog{path: path, f: f, fire: fire, timeout: timeout, done: make(chan struct{})}
	go w.run()
	return w, nil
}

func (w *watchdog) run() {
	defer close(w.done)
	buf := make([]byte, 512)
	for {
		w.mu.Lock()
		deadline := time.Time{}
		if w.armed {
			deadline = w.fed.Add(w.timeout)
		}
		w.mu.Unlock()
		if err := w.f.SetReadDeadline(deadline); err != nil {
			return
		}
		n, err := w.f.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.mu.Lock()
			expired := w.armed && !time.Now().Before(w.fed.Add(w.timeout))
			if expired {
				w.armed = false
				w.fired++
			}
			w.mu.Unlock()
			if expired {
				go w.fire()
			}
			continue
		}
		if err != nil {
			return
		}
		w.mu.Lock()
		for _, b := range buf[:n] {
			if b == 'V' {
				w.armed = false
			} else {
				w.armed = true
				w.fed = time.Now()
			}
		}
		w.mu.Unlock()
	}
}

// reset disarms the watchdog, as a power cycle does, and drops whatever was
// written and not read yet.
func (w *watchdog) reset() {
	w.mu.Lock()
	w.armed = false
	w.mu.Unlock()
	// Wake the reader so it takes the new state.
	_ = w.f.SetReadDeadline(time.Now())
}

func (w *watchdog) setTimeout(d time.Duration) {
	w.mu.Lock()
	w.timeout = d
	w.mu.Unlock()
	_ = w.f.SetReadDeadline(time.Now())
}

func (w *watchdog) state() (armed bool, fired int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.armed, w.fired
}

func (w *watchdog) close() {
	w.f.Close()
	<-w.done
}
