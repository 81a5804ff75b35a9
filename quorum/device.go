package quorum

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultTimeout bounds one read or write of a sector unless Options say
// otherwise.
const DefaultTimeout = 2 * time.Second

// ErrHung is wrapped by the errors of I/O that did not return within the
// timeout, and of every later I/O while that one is still outstanding.
var ErrHung = errors.New("I/O did not return in time")

// ioAlign is the least alignment of I/O buffers: O_DIRECT needs the
// device's logical block size, which is at most a page on Linux block
// devices in practice; larger blocks raise it.
const ioAlign = 4096

// maxIO is the most bytes one read or write of the device carries: one
// sector of the largest size.
const maxIO = MaxSectorSize

// ioResult is what one I/O syscall returned.
type ioResult struct {
	n   int
	err error
}

// ioRequest is one I/O for the device's worker: buf is a slice of the
// aligned buffer.
type ioRequest struct {
	write bool
	buf   []byte
	off   int64
}

// device is the quorum partition opened for sector I/O: O_DIRECT|O_DSYNC
// on block devices, so that each node reads what the other wrote rather
// than its own page cache, and every write is on the medium when it
// returns. A regular file (for tests, or a disk image) falls back to
// buffered I/O with O_DSYNC where the filesystem refuses O_DIRECT; both
// writers then share one page cache, so nothing is lost.
type device struct {
	path    string
	f       *os.File
	block   int   // logical block size
	size    int64 // bytes; a regular file may grow
	regular bool
	direct  bool
	timeout time.Duration

	mu     sync.Mutex
	buf    []byte         // aligned, maxIO bytes
	work   chan ioRequest // to the worker; nil until the first I/O
	done   chan ioResult  // from the worker, one result per request
	timer  *time.Timer    // bounds the wait for done
	hung   bool           // an I/O timed out and its result has not come back
	since  time.Time      // when the hung I/O was given up on
	closed bool

	// readAt and writeAt do the syscalls; tests replace them.
	readAt  func(b []byte, off int64) (int, error)
	writeAt func(b []byte, off int64) (int, error)
}

// openMode says how to open a device.
type openMode struct {
	readOnly  bool
	exclusive bool // O_EXCL on block devices: refuse one that is mounted or held
	timeout   time.Duration
}

func openDevice(path string, m openMode) (*device, error) {
	flags := unix.O_CLOEXEC | unix.O_DIRECT
	if m.readOnly {
		flags |= os.O_RDONLY
	} else {
		flags |= os.O_RDWR | unix.O_DSYNC
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("quorum: %w", err)
	}
	regular := st.Mode().IsRegular()
	if !regular && st.Mode()&os.ModeDevice == 0 {
		return nil, fmt.Errorf("quorum: %s is neither a block device nor a regular file", path)
	}
	if !regular && m.exclusive {
		flags |= os.O_EXCL
	}
	direct := true
	f, err := os.OpenFile(path, flags, 0)
	if err != nil && regular && errors.Is(err, unix.EINVAL) {
		direct = false
		f, err = os.OpenFile(path, flags&^unix.O_DIRECT, 0)
	}
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("quorum: %s is in use (mounted, or held by another driver): %w", path, err)
		}
		return nil, fmt.Errorf("quorum: %w", err)
	}
	d := &device{path: path, f: f, regular: regular, direct: direct, block: MinSectorSize, timeout: m.timeout}
	if d.timeout <= 0 {
		d.timeout = DefaultTimeout
	}
	if !regular {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
			f.Close()
			return nil, fmt.Errorf("quorum: %s is not a block device", path)
		}
		bs, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("quorum: %s: logical block size (BLKSSZGET): %w", path, err)
		}
		if bs < MinSectorSize || bs > MaxSectorSize || bs&(bs-1) != 0 {
			f.Close()
			return nil, fmt.Errorf("quorum: %s: logical block size %d not supported", path, bs)
		}
		d.block = bs
	}
	if d.size, err = f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("quorum: %s: size: %w", path, err)
	}
	d.buf = alignedBuffer(maxIO, max(ioAlign, d.block))
	d.readAt, d.writeAt = f.ReadAt, f.WriteAt
	return d, nil
}

// alignedBuffer returns n bytes whose address is a multiple of align (a
// power of two), cut from a larger allocation. Go's heap does not move
// objects, so the alignment holds for the buffer's life.
func alignedBuffer(n, align int) []byte {
	b := make([]byte, n+align)
	skip := (align - int(uintptr(unsafe.Pointer(unsafe.SliceData(b)))&uintptr(align-1))) & (align - 1)
	return b[skip : skip+n : skip+n]
}

// read reads n bytes at off into a fresh slice.
func (d *device) read(off int64, n int) ([]byte, error) {
	out := make([]byte, n)
	err := d.io(false, off, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// write writes b at off.
func (d *device) write(off int64, b []byte) error { return d.io(true, off, b) }

// io runs one read or write on the device's worker goroutine and waits
// for it at most the timeout. An I/O that does not return in time is
// remembered: until it returns, every other I/O fails at once with ErrHung
// instead of piling up behind a dead device. data is copied to or from the
// aligned buffer, which only the outstanding I/O touches.
//
// The worker lives from the first I/O to close, so that a sector read or
// written every heartbeat costs two hand-offs between goroutines and no
// new goroutine or timer.
func (d *device) io(write bool, off int64, data []byte) error {
	op := "read"
	if write {
		op = "write"
	}
	n := len(data)
	switch {
	case n == 0 || n%d.block != 0 || off%int64(d.block) != 0:
		return fmt.Errorf("quorum: %s: %s of %d bytes at %d: not whole %d-byte blocks", d.path, op, n, off, d.block)
	case n > len(d.buf):
		return fmt.Errorf("quorum: %s: %s of %d bytes at %d: more than one I/O carries (%d bytes)", d.path, op, n, off, len(d.buf))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("quorum: %s: %s: %w", d.path, op, os.ErrClosed)
	}
	if d.hung {
		select {
		case <-d.done:
			d.hung = false
		default:
			return fmt.Errorf("quorum: %s: %s at byte %d: %w: an earlier I/O has been outstanding for %v",
				d.path, op, off, ErrHung, time.Since(d.since).Round(time.Millisecond))
		}
	}
	if d.work == nil {
		d.work = make(chan ioRequest, 1)
		d.done = make(chan ioResult, 1)
		d.timer = time.NewTimer(d.timeout)
		go d.worker(d.work, d.done)
	} else {
		d.timer.Reset(d.timeout)
	}
	buf := d.buf[:n]
	if write {
		copy(buf, data)
	}
	// The worker has returned every earlier result, so it waits for this
	// request and the send does not block.
	d.work <- ioRequest{write: write, buf: buf, off: off}
	var r ioResult
	select {
	case r = <-d.done:
		d.timer.Stop()
	case <-d.timer.C:
		d.hung, d.since = true, time.Now()
		return fmt.Errorf("quorum: %s: %s at byte %d: %w (%v)", d.path, op, off, ErrHung, d.timeout)
	}
	switch {
	case r.err == nil && r.n == n:
	case r.err == nil || errors.Is(r.err, io.EOF):
		return fmt.Errorf("quorum: %s: %s at byte %d: %d of %d bytes: beyond the end of the device", d.path, op, off, r.n, n)
	default:
		return fmt.Errorf("quorum: %s: %s at byte %d: %w", d.path, op, off, r.err)
	}
	if !write {
		copy(data, buf)
	}
	return nil
}

// worker runs the device's I/O, one request at a time, until close closes
// work. A request that hangs holds it, and nothing else, until it returns.
func (d *device) worker(work <-chan ioRequest, done chan<- ioResult) {
	for req := range work {
		var r ioResult
		if req.write {
			r.n, r.err = d.writeAt(req.buf, req.off)
		} else {
			r.n, r.err = d.readAt(req.buf, req.off)
		}
		done <- r
	}
}

// close ends the worker and closes the file. An outstanding I/O keeps the
// descriptor and the worker until it returns; nothing waits for it.
func (d *device) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.work != nil {
		close(d.work)
		d.timer.Stop()
	}
	return d.f.Close()
}
