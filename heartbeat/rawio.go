package heartbeat

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The media's sockets and lines are non-blocking, and a send or a read on
// them returns at once, either done or with EAGAIN (then the caller waits
// in the runtime's poller). Such calls are made here as raw system calls,
// which do not tell the Go scheduler that the thread may block. A call
// that does tell it wakes the runtime's monitor thread whenever that
// sleeps, and the monitor then polls every 20 µs for a while: in an idle
// daemon whose only work is a few heartbeats a second, those wake-ups
// were half of all its context switches. None of these calls may be made
// on a descriptor that can block. (A tty call can still wait briefly for
// the line discipline while the line is being hung up; that wait is short
// and holds the calling goroutine's thread and its scheduler slot,
// nothing else.)

// rawSockaddr is a socket address in the kernel's layout.
type rawSockaddr struct {
	buf [unix.SizeofSockaddrInet6]byte
	len uint32
}

// newRawSockaddr puts an IPv4 or IPv6 address, port and zone index in the
// kernel's layout for the socket's family; an IPv4 address on an IPv6
// socket is put as IPv4-mapped.
func newRawSockaddr(family int, ap netip.AddrPort, zone uint32) (rawSockaddr, bool) {
	var r rawSockaddr
	a := ap.Addr()
	switch {
	case family == unix.AF_INET && a.Unmap().Is4():
		binary.NativeEndian.PutUint16(r.buf[0:], unix.AF_INET)
		binary.BigEndian.PutUint16(r.buf[2:], ap.Port())
		ip := a.Unmap().As4()
		copy(r.buf[4:], ip[:])
		r.len = unix.SizeofSockaddrInet4
	case family == unix.AF_INET6:
		binary.NativeEndian.PutUint16(r.buf[0:], unix.AF_INET6)
		binary.BigEndian.PutUint16(r.buf[2:], ap.Port())
		ip := a.As16()
		copy(r.buf[8:], ip[:])
		binary.NativeEndian.PutUint32(r.buf[24:], zone)
		r.len = unix.SizeofSockaddrInet6
	default:
		return r, false
	}
	return r, true
}

// addrPort reads a socket address the kernel filled in; the zero AddrPort
// if it is of neither IP family.
func (r *rawSockaddr) addrPort() netip.AddrPort {
	port := binary.BigEndian.Uint16(r.buf[2:])
	switch binary.NativeEndian.Uint16(r.buf[0:]) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(r.buf[4:8])), port)
	case unix.AF_INET6:
		a := netip.AddrFrom16([16]byte(r.buf[8:24])).Unmap()
		if zone := binary.NativeEndian.Uint32(r.buf[24:]); zone != 0 && a.Is6() {
			// The interface's index: naming it would cost a lookup
			// per packet.
			a = a.WithZone(strconv.FormatUint(uint64(zone), 10))
		}
		return netip.AddrPortFrom(a, port)
	}
	return netip.AddrPort{}
}

// rawOp adapts one such call to RawConn's Read and Write: the call is
// made again when a signal interrupted it, and when the descriptor is not
// ready (EAGAIN) the caller either waits in the poller for readiness
// (wait) or is handed the EAGAIN at once.
func rawOp(wait bool, call func(fd uintptr) error) func(fd uintptr) bool {
	return func(fd uintptr) bool {
		for {
			err := call(fd)
			if err != unix.EINTR {
				return !wait || err != unix.EAGAIN
			}
		}
	}
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// rawSendto is sendto(2) on a non-blocking socket.
func rawSendto(fd uintptr, p []byte, to *rawSockaddr) error {
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)),
		0, uintptr(unsafe.Pointer(&to.buf[0])), uintptr(to.len))
	return errnoErr(e)
}

// rawRecvfrom is recvfrom(2) on a non-blocking socket.
func rawRecvfrom(fd uintptr, p []byte, from *rawSockaddr) (int, error) {
	from.len = uint32(len(from.buf))
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)),
		0, uintptr(unsafe.Pointer(&from.buf[0])), uintptr(unsafe.Pointer(&from.len)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawWrite is write(2) on a non-blocking descriptor.
func rawWrite(fd uintptr, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawRead is read(2) on a non-blocking descriptor.
func rawRead(fd uintptr, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawIoctlInt is an ioctl(2) that reads an int, such as TIOCOUTQ; it
// never blocks.
func rawIoctlInt(fd uintptr, req uint) (int, error) {
	var v int32
	_, _, e := unix.RawSyscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(unsafe.Pointer(&v)))
	return int(v), errnoErr(e)
}
