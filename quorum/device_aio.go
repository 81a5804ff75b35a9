package quorum

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sector I/O through Linux native asynchronous I/O (io_submit(2)), for
// descriptors opened with O_DIRECT. The request is handed to the kernel and
// its completion signalled on an eventfd that sits in the runtime's
// network poller, so the goroutine that asked waits parked, with a
// deadline, instead of a thread blocked in pread or pwrite:
//
//   - no hand-off to and from a worker goroutine, so no thread wake-ups
//     for it;
//   - while the disk works the process is idle, and the runtime's monitor
//     thread sleeps instead of polling every 20 µs, as it does while a
//     thread sits in a system call;
//   - a hung device keeps only its request, as the worker did: the wait
//     gives up at the deadline, and the aligned buffer stays with the
//     request until the kernel returns it.

// iocb is struct iocb of <linux/aio_abi.h>. aio_key and aio_rw_flags
// swap places on big-endian machines; both are zero here, so one layout
// serves.
type iocb struct {
	data      uint64
	key       uint32
	rwFlags   uint32
	opcode    uint16
	reqprio   int16
	fildes    uint32
	buf       uint64
	nbytes    uint64
	offset    int64
	reserved2 uint64
	flags     uint32
	resfd     uint32
}

// ioEvent is struct io_event.
type ioEvent struct {
	data, obj uint64
	res, res2 int64
}

const (
	iocbCmdPread  = 0
	iocbCmdPwrite = 1
	iocbFlagResfd = 1 << 0
)

// aio is one asynchronous I/O context with a single request in flight at
// most, whose completions wake an eventfd.
type aio struct {
	ctx   uint64   // aio_context_t
	efd   *os.File // in the poller
	efdNo int
	fd    int // the device's descriptor
	cb    iocb
	cbs   [1]*iocb
	ev    [1]ioEvent

	// submit hands cb to the kernel; tests replace it to hold a request
	// back, as a hung device would.
	submit func(cb *iocb) error
}

// newAIO sets up a context for the descriptor fd; an error means the
// caller should do blocking I/O instead.
func newAIO(fd int) (*aio, error) {
	var ctx uint64
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		return nil, fmt.Errorf("io_setup: %w", e)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Syscall(unix.SYS_IO_DESTROY, uintptr(ctx), 0, 0)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	// A non-blocking descriptor joins the runtime's poller, so a read
	// parks the goroutine and honours a deadline.
	a := &aio{ctx: ctx, efd: os.NewFile(uintptr(efd), "quorum-aio-eventfd"), efdNo: efd, fd: fd}
	a.cbs[0] = &a.cb
	a.submit = a.ioSubmit
	return a, nil
}

func (a *aio) ioSubmit(cb *iocb) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IO_SUBMIT, uintptr(a.ctx), 1, uintptr(unsafe.Pointer(&a.cbs[0])))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// start submits one read or write of buf at off. buf must stay untouched
// until done reports the request finished.
func (a *aio) start(write bool, buf []byte, off int64) error {
	a.cb = iocb{
		opcode: iocbCmdPread,
		fildes: uint32(a.fd),
		buf:    uint64(uintptr(unsafe.Pointer(unsafe.SliceData(buf)))),
		nbytes: uint64(len(buf)),
		offset: off,
		flags:  iocbFlagResfd,
		resfd:  uint32(a.efdNo),
	}
	if write {
		a.cb.opcode = iocbCmdPwrite
	}
	return a.submit(&a.cb)
}

// wait waits until the request completes or the deadline passes, and
// returns what it returned; timedOut says the deadline passed first, the
// request still being the kernel's. Each completion signals the eventfd
// once, and reading it clears the signal.
func (a *aio) wait(deadline time.Time) (r ioResult, timedOut bool) {
	var b [8]byte
	a.efd.SetReadDeadline(deadline)
	// Clear the deadline, or its timer wakes the runtime for nothing.
	defer a.efd.SetReadDeadline(time.Time{})
	for {
		_, err := a.efd.Read(b[:])
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			// A completion that raced the deadline still counts.
			if r, ok := a.taken(); ok {
				return r, false
			}
			return ioResult{}, true
		case err != nil:
			return ioResult{err: fmt.Errorf("wait for completion: %w", err)}, false
		}
		if r, ok := a.reap(); ok {
			return r, false
		}
	}
}

// taken takes a completion without waiting, clearing its signal, and
// reports whether there was one.
func (a *aio) taken() (ioResult, bool) {
	r, ok := a.reap()
	if ok {
		var b [8]byte
		unix.Read(a.efdNo, b[:]) // non-blocking: clears the count, if any
	}
	return r, ok
}

// reap takes a completion without waiting, and reports whether there was
// one; the eventfd's signal is the caller's to clear.
func (a *aio) reap() (ioResult, bool) {
	var ts unix.Timespec
	n, _, e := unix.Syscall6(unix.SYS_IO_GETEVENTS, uintptr(a.ctx), 0, 1,
		uintptr(unsafe.Pointer(&a.ev[0])), uintptr(unsafe.Pointer(&ts)), 0)
	switch {
	case e == unix.EINTR:
		return ioResult{}, false
	case e != 0:
		return ioResult{err: fmt.Errorf("io_getevents: %w", e)}, true
	case n == 0:
		return ioResult{}, false
	}
	if res := a.ev[0].res; res < 0 {
		return ioResult{err: syscall.Errno(-res)}, true
	}
	return ioResult{n: int(a.ev[0].res)}, true
}

// close releases the context. With a request still the kernel's, the
// release (io_destroy waits for it) and buf, which the kernel may still
// fill, go to a goroutine that ends when the request does: nothing waits
// for it, as nothing waited for a hung worker.
func (a *aio) close(outstanding bool, buf []byte) {
	destroy := func() {
		unix.Syscall(unix.SYS_IO_DESTROY, uintptr(a.ctx), 0, 0)
		a.efd.Close()
	}
	if !outstanding {
		destroy()
		return
	}
	go func() {
		destroy()
		runtime.KeepAlive(buf) // the kernel may fill it until then
	}()
}
