package heartbeat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A serial line is a byte stream that loses, corrupts and invents bytes:
// noise on the wire, a cable plugged in mid-frame, a node that dies
// halfway through a write. Every message therefore travels in a frame
// (integers big endian):
//
//	offset  size  field
//	0       4     sync marker 7E 54 44 4D ("~TDM")
//	4       2     message length n, 1..MaxMessageSize
//	6       n     message, as Codec.Marshal wrote it
//	6+n     4     CRC32C (Castagnoli) over the length and the message
//
// The receiver hunts for the marker, trusts no length above MaxMessageSize
// and delivers a frame only when its CRC matches. A frame that fails is not
// skipped whole: the hunt resumes one byte after its marker, so a real
// frame hidden behind a half frame or a corrupted length is still found.
// The marker may occur inside a message: it costs a look only while the
// frame around it is damaged or still arriving. A CRC that matches noise
// by chance (one in 2^32 per candidate) yields a message whose MAC fails
// above.

// Frame layout constants.
const (
	// FrameOverhead is what a frame adds to a message: the sync marker,
	// the length and the CRC.
	FrameOverhead = serialHeaderLen + serialCRCLen
	// MaxFrameSize is the longest frame: one of MaxMessageSize bytes.
	MaxFrameSize = MaxMessageSize + FrameOverhead
)

const (
	serialHeaderLen = 6 // marker and length
	serialCRCLen    = 4
)

var (
	serialMarker   = [4]byte{0x7e, 0x54, 0x44, 0x4d}
	serialCRCTable = crc32.MakeTable(crc32.Castagnoli)
)

// AppendFrame appends msg, framed for a serial line, to dst and returns
// the extended slice. msg must hold 1..MaxMessageSize bytes.
func AppendFrame(dst, msg []byte) ([]byte, error) {
	if len(msg) == 0 || len(msg) > MaxMessageSize {
		return dst, fmt.Errorf("heartbeat: frame: message of %d bytes, want 1..%d", len(msg), MaxMessageSize)
	}
	start := len(dst)
	dst = append(dst, serialMarker[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msg)))
	dst = append(dst, msg...)
	sum := crc32.Checksum(dst[start+len(serialMarker):], serialCRCTable)
	return binary.BigEndian.AppendUint32(dst, sum), nil
}

// DeframeStats count what a Deframer did with its input. Every byte fed
// is either part of a delivered frame, counted in Skipped, or still
// buffered.
type DeframeStats struct {
	// Frames counts frames delivered.
	Frames uint64
	// Bytes counts the bytes of delivered frames, overhead included.
	Bytes uint64
	// Skipped counts bytes that were not part of a delivered frame:
	// noise, half frames, damaged frames.
	Skipped uint64
	// CRCErrors counts candidate frames whose CRC did not match.
	CRCErrors uint64
	// BadLength counts candidate frames with a length of 0 or above
	// MaxMessageSize.
	BadLength uint64
	// Abandoned counts candidate frames given up before their declared
	// length had arrived, because an intact frame began inside them.
	Abandoned uint64
}

// Deframer recovers messages from a serial byte stream (see AppendFrame).
// Its zero value is ready to use; it is not safe for concurrent use.
//
// A candidate frame is judged by its CRC once its declared length has
// arrived. While it is incomplete, an intact frame (complete, CRC
// matching) that begins inside it proves it a half frame or a corrupted
// length: it is given up at once and the intact frame delivered, so a
// damaged frame delays the ones behind it by no more than their own
// arrival, however long it claims to be. The price: a message that itself
// contains a whole intact frame, arriving in pieces, may yield that inner
// frame instead of itself (the MAC and replay checks above judge it like
// any other).
type Deframer struct {
	buf   []byte
	stats DeframeStats
}

// Feed appends the messages that p completes to dst and returns it. Each
// message is a fresh slice the caller owns. Between calls a Deframer
// holds at most one incomplete frame, less than MaxFrameSize bytes.
func (d *Deframer) Feed(dst [][]byte, p []byte) [][]byte {
	d.buf = append(d.buf, p...)
	i := 0
	intact := -1 // where the next intact frame after i begins, once looked for; len(buf) if none
	for {
		rest := d.buf[i:]
		j := bytes.Index(rest, serialMarker[:])
		if j < 0 {
			keep := serialMarkerPrefix(rest)
			d.stats.Skipped += uint64(len(rest) - keep)
			i = len(d.buf) - keep
			break
		}
		d.stats.Skipped += uint64(j)
		i += j
		size, verdict := serialJudge(d.buf[i:])
		switch verdict {
		case serialIntact:
			msg := d.buf[i+serialHeaderLen : i+size-serialCRCLen]
			dst = append(dst, bytes.Clone(msg))
			d.stats.Frames++
			d.stats.Bytes += uint64(size)
			i += size
			continue
		case serialBadLength:
			d.stats.BadLength++
		case serialBadCRC:
			d.stats.CRCErrors++
		case serialShort:
			if intact <= i {
				intact = i + 1 + serialNextIntact(d.buf[i+1:])
			}
			if intact >= len(d.buf) {
				// Nothing intact follows: wait for more bytes.
				d.buf = d.buf[:copy(d.buf, d.buf[i:])]
				return dst
			}
			d.stats.Abandoned++
		}
		// Not a frame here: hunt again from the next byte, so a frame
		// that begins inside this candidate is still found.
		d.stats.Skipped++
		i++
	}
	d.buf = d.buf[:copy(d.buf, d.buf[i:])]
	return dst
}

// Verdicts on a candidate frame.
const (
	serialShort     = iota // its declared length has not arrived yet
	serialBadLength        // length 0 or above MaxMessageSize
	serialBadCRC
	serialIntact
)

// serialJudge judges the candidate frame at the start of b, which begins
// with the marker, and returns its size when its length is plausible.
func serialJudge(b []byte) (size, verdict int) {
	if len(b) < serialHeaderLen {
		return 0, serialShort
	}
	n := int(binary.BigEndian.Uint16(b[len(serialMarker):]))
	if n == 0 || n > MaxMessageSize {
		return 0, serialBadLength
	}
	size = serialHeaderLen + n + serialCRCLen
	if len(b) < size {
		return size, serialShort
	}
	want := binary.BigEndian.Uint32(b[size-serialCRCLen:])
	if crc32.Checksum(b[len(serialMarker):size-serialCRCLen], serialCRCTable) != want {
		return size, serialBadCRC
	}
	return size, serialIntact
}

// serialNextIntact returns the offset in b of the first intact frame, or
// len(b) when there is none.
func serialNextIntact(b []byte) int {
	for k := 0; ; k++ {
		j := bytes.Index(b[k:], serialMarker[:])
		if j < 0 {
			return len(b)
		}
		k += j
		if _, v := serialJudge(b[k:]); v == serialIntact {
			return k
		}
	}
}

// Buffered returns how many bytes wait for the rest of a frame.
func (d *Deframer) Buffered() int { return len(d.buf) }

// Stats returns the counters.
func (d *Deframer) Stats() DeframeStats { return d.stats }

// serialMarkerPrefix returns the length of the longest tail of b that is
// a proper prefix of the marker: bytes to keep for the next Feed.
func serialMarkerPrefix(b []byte) int {
	for k := min(len(b), len(serialMarker)-1); k > 0; k-- {
		if bytes.Equal(b[len(b)-k:], serialMarker[:k]) {
			return k
		}
	}
	return 0
}

// DefaultBaud is the serial line rate unless configured otherwise.
const DefaultBaud = 115200

// SerialConfig says how to open a serial medium.
type SerialConfig struct {
	// Name of the medium; "serial" when empty.
	Name string
	// Device is this node's end of the cable: /dev/ttyS1, /dev/ttyUSB0,
	// a /dev/serial/by-id link, or a pty.
	Device string
	// Baud is the line rate in bits per second, the same on both ends;
	// DefaultBaud when 0. The line carries 8 data bits, no parity, one
	// stop bit and no flow control, so a byte takes 10 bit times.
	Baud int
}

// SerialStats count what a serial medium did below the message layer.
type SerialStats struct {
	// Sent counts frames written whole to the line.
	Sent uint64
	// Dropped counts frames replaced by a newer one before the line was
	// free to carry them.
	Dropped uint64
	// WriteErrors counts writes that failed or did not finish within a
	// frame time (the peer skips the torn frame).
	WriteErrors uint64
	// Deframe counts what the receiving side delivered and skipped.
	Deframe DeframeStats
}

// Serial is the heartbeat medium over a serial cable.
//
// The tty is driven directly through termios and a non-blocking
// descriptor in the runtime's poller. github.com/tarm/serial cannot be
// made reliable here: it registers the descriptor with the poller and then
// switches it back to blocking mode, so a read sits in the kernel, Close
// waits for it to return, and only a byte on the line or a read timeout
// (VTIME, in tenths of a second, at most 25.5 s) frees it; its writes
// cannot be bounded either, and it knows only the Bnnn rates.
// go.bug.st/serial wakes a blocked read through a pipe and select(2), but
// its writes are blocking write(2)s without a deadline that Close cannot
// interrupt. Here Close ends a blocked Receive at once, writes have
// deadlines, and any rate the driver supports can be set (termios2).
//
// Writes are paced to the line rate, and Send returns without waiting:
// when the line is free, Send puts the frame into the driver's buffer
// with a write that cannot block; otherwise it hands the frame to a
// goroutine the Serial owns. A frame waits only while the line is still
// carrying the previous one (by the line rate, or by the kernel's output
// queue when that is longer); a newer frame replaces a waiting one, which
// is counted as dropped, so a heartbeat never queues behind stale ones.
type Serial struct {
	name     string
	device   string
	baud     int
	byteTime time.Duration
	f        *os.File
	rc       syscall.RawConn // f's, for the raw calls

	// Receive's own: only the goroutine calling Receive touches them.
	rbuf  []byte
	ready [][]byte
	head  int

	wake chan struct{}
	done chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	deframer Deframer
	pending  []byte    // the frame, or the rest of one, waiting for the line
	writing  bool      // Send or the writer is writing to the line
	free     time.Time // when the line has carried everything written
	sendErr  error
	closed   bool
	stats    SerialStats

	closeOnce sync.Once
	closeErr  error
}

var _ Medium = (*Serial)(nil)

// DialSerial opens a serial medium: the device in raw mode, 8N1, no flow
// control, at the configured rate, with anything already queued in either
// direction discarded. The descriptor is opened non-blocking, so a port
// that waits for carrier does not hang the open, and marked exclusive
// (TIOCEXCL), so no other unprivileged process opens the line while the
// medium holds it.
func DialSerial(cfg SerialConfig) (*Serial, error) {
	if cfg.Name == "" {
		cfg.Name = "serial"
	}
	if cfg.Baud == 0 {
		cfg.Baud = DefaultBaud
	}
	if cfg.Device == "" {
		return nil, fmt.Errorf("heartbeat: %s medium: no device", cfg.Name)
	}
	if cfg.Baud < 0 {
		return nil, fmt.Errorf("heartbeat: %s medium on %s: baud %d out of range", cfg.Name, cfg.Device, cfg.Baud)
	}
	fd, err := unix.Open(cfg.Device, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %s medium: open %s: %w", cfg.Name, cfg.Device, err)
	}
	baud, err := setupTTY(fd, cfg.Baud)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("heartbeat: %s medium on %s: %w", cfg.Name, cfg.Device, err)
	}
	// A non-blocking descriptor joins the runtime's poller: Read and
	// Write park the goroutine, not a thread, and Close wakes them.
	f := os.NewFile(uintptr(fd), cfg.Device)
	s, err := newSerial(cfg.Name, cfg.Device, baud, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("heartbeat: %s medium on %s: %w", cfg.Name, cfg.Device, err)
	}
	return s, nil
}

// setupTTY puts the terminal into raw 8N1 mode without flow control at
// baud and returns the rate the driver set.
func setupTTY(fd, baud int) (int, error) {
	t, err := unix.IoctlGetTermios(fd, serialGetTermios)
	if errors.Is(err, unix.ENOTTY) {
		return 0, errors.New("not a terminal device")
	}
	if err != nil {
		return 0, fmt.Errorf("get termios: %w", err)
	}
	// Raw: no line editing, echo, signals or character translation; a
	// break or a byte with a framing error is dropped rather than read
	// as a zero, and the deframer copes with the gap.
	t.Iflag &^= unix.BRKINT | unix.ICRNL | unix.INLCR | unix.IGNCR | unix.ISTRIP |
		unix.IXON | unix.IXOFF | unix.IXANY | unix.INPCK | unix.PARMRK | unix.IUCLC
	t.Iflag |= unix.IGNBRK | unix.IGNPAR
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	// 8N1, receiver on, modem lines ignored (a null-modem cable often
	// carries no carrier), no RTS/CTS. An input rate of zero (CIBAUD
	// clear) means the output rate.
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CSTOPB | unix.CRTSCTS | unix.CBAUD | unix.CIBAUD
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL | unix.BOTHER
	t.Ispeed, t.Ospeed = uint32(baud), uint32(baud)
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, serialSetTermios, t); err != nil {
		return 0, fmt.Errorf("set raw mode at %d baud: %w", baud, err)
	}
	got, err := unix.IoctlGetTermios(fd, serialGetTermios)
	if err != nil {
		return 0, fmt.Errorf("get termios: %w", err)
	}
	// A UART reaches only rates its clock divides into; beyond about 5%
	// off, the two ends no longer agree on where a bit is.
	actual := int(got.Ospeed)
	if actual == 0 || actual*100 < baud*95 || actual*100 > baud*105 {
		return 0, fmt.Errorf("baud %d: the driver set %d", baud, actual)
	}
	if err := unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIOFLUSH); err != nil {
		return 0, fmt.Errorf("flush: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.TIOCEXCL, 0); err != nil {
		return 0, fmt.Errorf("exclusive mode: %w", err)
	}
	return actual, nil
}

// newSerial runs a Serial over an open, pollable file at baud bits per
// second.
func newSerial(name, device string, baud int, f *os.File) (*Serial, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &Serial{
		rc:       rc,
		name:     name,
		device:   device,
		baud:     baud,
		byteTime: time.Second * 10 / time.Duration(baud),
		f:        f,
		rbuf:     make([]byte, 4096),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	s.wg.Add(1)
	go s.writeLoop()
	return s, nil
}

// Name returns the medium's name.
func (s *Serial) Name() string { return s.name }

// Device returns the path of the tty.
func (s *Serial) Device() string { return s.device }

// Baud returns the line rate the driver set.
func (s *Serial) Baud() int { return s.baud }

// FrameTime is how long the line takes to carry a frame of n bytes.
func (s *Serial) FrameTime(n int) time.Duration { return time.Duration(n) * s.byteTime }

// Stats returns the medium's counters.
func (s *Serial) Stats() SerialStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Deframe = s.deframer.Stats()
	return st
}

// Send frames msg and hands it to the line without waiting: it writes
// the frame at once when the line is free, and otherwise leaves it for the
// writer, replacing a frame still waiting for the line (counted as
// dropped). It returns an error for a message out of bounds, after Close,
// or when a write failed since the previous Send, so a failing line shows
// in the caller's counters and logs.
func (s *Serial) Send(msg []byte) error {
	frame, err := AppendFrame(make([]byte, 0, len(msg)+FrameOverhead), msg)
	if err != nil {
		return fmt.Errorf("heartbeat: %s %s: send: %w", s.name, s.device, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("heartbeat: %s %s: send: %w", s.name, s.device, net.ErrClosed)
	}
	err, s.sendErr = s.sendErr, nil
	now := time.Now()
	if !s.writing && s.pending == nil && !now.Before(s.free) {
		s.writing = true
		s.mu.Unlock()
		if s.outputQueue() == 0 {
			s.writeNow(frame, now)
			return err
		}
		s.mu.Lock()
		s.writing = false
	}
	if s.pending != nil {
		s.stats.Dropped++
	}
	s.pending = frame
	s.mu.Unlock()
	s.wakeWriter()
	return err
}

func (s *Serial) sendsPromptly() bool { return true }

func (s *Serial) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// writeNow writes frame to the free line with one write(2) that does not
// wait, the caller having set writing. The driver's buffer is empty, so the
// frame fits; should the driver take only part of it, or nothing, the
// rest goes to the writer, which waits for room as for a busy line.
func (s *Serial) writeNow(frame []byte, now time.Time) {
	n, err := 0, error(nil)
	rerr := s.rc.Write(rawOp(false, func(fd uintptr) error {
		n, err = rawWrite(fd, frame)
		return err
	}))
	if rerr != nil {
		err = rerr
	}
	n = max(n, 0)
	if err == unix.EAGAIN {
		err = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writing = false
	s.free = now.Add(s.FrameTime(n))
	switch {
	case err != nil:
		s.stats.WriteErrors++
		if !s.closed {
			s.sendErr = fmt.Errorf("heartbeat: %s %s: write: %d of %d bytes of a frame: %w", s.name, s.device, n, len(frame), err)
		}
	case n == len(frame):
		s.stats.Sent++
	case !s.closed:
		s.pending = frame[n:]
		s.wakeWriter()
	}
}

// writeLoop writes the newest pending frame whenever the line is free.
func (s *Serial) writeLoop() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		for {
			s.mu.Lock()
			wait := time.Until(s.free)
			s.mu.Unlock()
			if q := s.outputQueue(); q > 0 {
				wait = max(wait, s.FrameTime(q))
			}
			if wait <= 0 {
				break
			}
			timer.Reset(wait)
			select {
			case <-s.done:
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		s.mu.Lock()
		frame := s.pending
		if frame == nil || s.writing {
			// Nothing waits, or Send is writing and hands over what it
			// leaves with a wake-up of its own.
			s.mu.Unlock()
			continue
		}
		s.pending = nil
		s.writing = true
		s.mu.Unlock()
		now := time.Now()
		// The line has room for a frame now, so a write that takes longer
		// than one frame time (at least 20 ms, for the scheduler) means the
		// driver is stuck: give up on that frame, do not stall the next.
		s.f.SetWriteDeadline(now.Add(max(s.FrameTime(len(frame)), 20*time.Millisecond)))
		n, err := s.f.Write(frame)
		// Clear the deadline, or its timer wakes the runtime for nothing.
		s.f.SetWriteDeadline(time.Time{})
		s.mu.Lock()
		s.writing = false
		s.free = now.Add(s.FrameTime(n))
		if err != nil {
			s.stats.WriteErrors++
			if !s.closed {
				s.sendErr = fmt.Errorf("heartbeat: %s %s: write: %d of %d bytes of a frame: %w", s.name, s.device, n, len(frame), err)
			}
		} else {
			s.stats.Sent++
		}
		s.mu.Unlock()
	}
}

// outputQueue returns how many bytes the driver still holds for the line
// (0 for a pty, whose bytes go straight to the other side).
func (s *Serial) outputQueue() int {
	q := 0
	s.rc.Control(func(fd uintptr) {
		if v, err := rawIoctlInt(fd, unix.TIOCOUTQ); err == nil {
			q = v
		}
	})
	return q
}

// Receive returns the next message whose frame arrived intact; from is
// the device path. Noise and damaged frames are skipped and counted (see
// Stats). After Close it returns an error wrapping net.ErrClosed.
func (s *Serial) Receive() ([]byte, string, error) {
	for s.head == len(s.ready) {
		s.ready, s.head = s.ready[:0], 0
		if s.isClosed() {
			return nil, "", fmt.Errorf("heartbeat: %s %s: receive: %w", s.name, s.device, net.ErrClosed)
		}
		n, err := s.read(s.rbuf)
		if n > 0 {
			s.mu.Lock()
			s.ready = s.deframer.Feed(s.ready, s.rbuf[:n])
			s.mu.Unlock()
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrClosed) || s.isClosed():
			return nil, "", fmt.Errorf("heartbeat: %s %s: receive: %w", s.name, s.device, net.ErrClosed)
		case errors.Is(err, io.EOF):
			return nil, "", fmt.Errorf("heartbeat: %s %s: read: line hung up", s.name, s.device)
		default:
			return nil, "", fmt.Errorf("heartbeat: %s %s: read: %w", s.name, s.device, err)
		}
	}
	msg := s.ready[s.head]
	s.ready[s.head] = nil
	s.head++
	return msg, s.device, nil
}

// read reads what the line has, waiting in the runtime's poller while
// it has nothing; io.EOF when the line hung up.
func (s *Serial) read(p []byte) (int, error) {
	var (
		n    int
		rerr error
	)
	err := s.rc.Read(rawOp(true, func(fd uintptr) error {
		n, rerr = rawRead(fd, p)
		return rerr
	}))
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (s *Serial) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops the writer, discards bytes not yet on the line (so closing
// never waits for the driver to drain), releases the line and makes a
// blocked Receive return. It is safe to call more than once.
func (s *Serial) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.pending = nil
		s.mu.Unlock()
		close(s.done)
		s.rc.Control(func(fd uintptr) {
			unix.IoctlSetInt(int(fd), unix.TCFLSH, unix.TCOFLUSH)
			unix.IoctlSetInt(int(fd), unix.TIOCNXCL, 0)
		})
		if err := s.f.Close(); err != nil {
			s.closeErr = fmt.Errorf("heartbeat: %s %s: close: %w", s.name, s.device, err)
		}
		s.wg.Wait()
	})
	return s.closeErr
}
