package smbservice

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Defaults of a Tickler.
const (
	// DefaultTickleRounds is how many times each connection is tickled.
	DefaultTickleRounds = 3
	// DefaultTickleInterval spaces the rounds: Linux answers at most one
	// out-of-window ACK per 500 ms per connection (tcp_invalid_ratelimit),
	// so rounds closer than that would be ignored.
	DefaultTickleInterval = 1100 * time.Millisecond
	// DefaultTickleWindow is the window advertised in a tickle.
	DefaultTickleWindow = 1234
)

// Tickler sends tickle ACKs: for a connection whose server socket died
// with another node, a TCP segment from the server's address and port to
// the client, flag ACK, sequence and acknowledgement numbers 0. The
// client's stack finds it out of window and answers with its own ACK; that
// reaches the node now holding the floating address, whose kernel has no
// such socket and answers with a RST, and the client reconnects at once.
//
// IPv4 segments go out over an IPPROTO_RAW socket with a hand-built IPv4
// header; IPv6 segments over a raw IPPROTO_TCP socket, the kernel building
// the IPv6 header from the floating address given per packet. The zero
// value sends DefaultTickleRounds rounds DefaultTickleInterval apart in
// the caller's network namespace.
type Tickler struct {
	// Netns is the path of the network namespace to send from; empty
	// means the caller's.
	Netns string
	// Rounds is how many times each connection is tickled.
	Rounds int
	// Interval is the time from the start of a round to that of the next.
	Interval time.Duration
	// Window is the window the segments advertise.
	Window uint16

	// open makes the sender; nil means raw sockets.
	open func(netns string) (sender, error)
}

// sender sends one tickle.
type sender interface {
	send(c Conn, window uint16) error
	close() error
}

// TickleResult counts what Tickle did.
type TickleResult struct {
	Rounds int // rounds begun
	Sent   int // segments the kernel accepted, over all rounds
	Failed int // segments that could not be sent
}

// Tickle tickles each connection in rounds and returns when the last round
// is sent or ctx ends, which bounds it to (Rounds-1)*Interval plus the time
// to send one round. A segment that cannot be sent does not stop the
// others; the error reports how many failed and the first failure.
func (t *Tickler) Tickle(ctx context.Context, conns []Conn) (TickleResult, error) {
	rounds, interval, window := t.Rounds, t.Interval, t.Window
	if rounds <= 0 {
		rounds = DefaultTickleRounds
	}
	if interval <= 0 {
		interval = DefaultTickleInterval
	}
	if window == 0 {
		window = DefaultTickleWindow
	}
	var res TickleResult
	if len(conns) == 0 {
		return res, nil
	}
	open := t.open
	if open == nil {
		open = openRaw
	}
	s, err := open(t.Netns)
	if err != nil {
		return res, err
	}
	defer s.close()
	var first error
	timer := time.NewTimer(0)
	defer timer.Stop()
	start := time.Now()
	for round := range rounds {
		if round > 0 {
			timer.Reset(time.Until(start.Add(time.Duration(round) * interval)))
			select {
			case <-ctx.Done():
				return res, tickleErr(res, first, ctx.Err())
			case <-timer.C:
			}
		}
		res.Rounds++
		for i, c := range conns {
			if i%256 == 0 && ctx.Err() != nil {
				return res, tickleErr(res, first, ctx.Err())
			}
			if err := s.send(c, window); err != nil {
				res.Failed++
				if first == nil {
					first = fmt.Errorf("tickle %s%s: %w", c, nsSuffix(t.Netns), err)
				}
				continue
			}
			res.Sent++
		}
	}
	return res, tickleErr(res, first, nil)
}

func tickleErr(res TickleResult, first, ctxErr error) error {
	var err error
	if first != nil {
		err = fmt.Errorf("%d of %d tickles failed; first: %w", res.Failed, res.Sent+res.Failed, first)
	}
	if ctxErr != nil {
		err = errors.Join(fmt.Errorf("tickle: stopped after %d rounds: %w", res.Rounds, ctxErr), err)
	}
	return err
}

// sendTimeout bounds one send on a full socket buffer.
const sendTimeout = 200 * time.Millisecond

// rawSender sends tickles over raw sockets, one per family, opened when
// first needed in the namespace it was made for.
type rawSender struct {
	netns    string
	fd4, fd6 int
	buf      []byte
	oob      []byte
}

func openRaw(netns string) (sender, error) {
	return &rawSender{netns: netns, fd4: -1, fd6: -1, buf: make([]byte, 0, tickle4Len)}, nil
}

func (r *rawSender) socket(family, proto int) (int, error) {
	var fd int
	err := inNetns(r.netns, func() error {
		var err error
		fd, err = unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("open raw %s socket%s: %w", familyName(uint8(family)), nsSuffix(r.netns), err)
	}
	tv := unix.NsecToTimeval(sendTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("raw socket: set SO_SNDTIMEO: %w", err)
	}
	// A larger buffer absorbs a round of thousands of segments; the
	// kernel caps it at wmem_max, which is fine.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	return fd, nil
}

func (r *rawSender) send(c Conn, window uint16) error {
	if err := c.valid(); err != nil {
		return err
	}
	if c.Is4() {
		if r.fd4 < 0 {
			fd, err := r.socket(unix.AF_INET, unix.IPPROTO_RAW)
			if err != nil {
				return err
			}
			r.fd4 = fd
		}
		r.buf = appendTickle4(r.buf[:0], c, window)
		return unix.Sendto(r.fd4, r.buf, 0, &unix.SockaddrInet4{Addr: c.Client.Addr().As4()})
	}
	if r.fd6 < 0 {
		fd, err := r.socket(unix.AF_INET6, unix.IPPROTO_TCP)
		if err != nil {
			return err
		}
		r.fd6 = fd
		r.oob = make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	}
	r.buf = appendTickle6(r.buf[:0], c, window)
	// The source address goes in IPV6_PKTINFO, so one socket serves every
	// floating address.
	h := (*unix.Cmsghdr)(unsafe.Pointer(&r.oob[0]))
	h.Level = unix.IPPROTO_IPV6
	h.Type = unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&r.oob[unix.CmsgLen(0)]))
	*pi = unix.Inet6Pktinfo{Addr: c.Server.Addr().As16()}
	_, err := unix.SendmsgN(r.fd6, r.buf, r.oob, &unix.SockaddrInet6{Addr: c.Client.Addr().As16()}, 0)
	return err
}

func (r *rawSender) close() error {
	for _, fd := range []int{r.fd4, r.fd6} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	r.fd4, r.fd6 = -1, -1
	return nil
}

// Segment layout.
const (
	ipv4HeaderLen = 20
	tcpHeaderLen  = 20
	tickle4Len    = ipv4HeaderLen + tcpHeaderLen
	tcpFlagACK    = 0x10
	ipTTL         = 64
)

// appendTickle4 appends to b the IPv4 packet that tickles c: an IPv4 header
// from the server to the client (identification 0, which the kernel fills
// in) and a TCP header with flag ACK, sequence and acknowledgement 0.
func appendTickle4(b []byte, c Conn, window uint16) []byte {
	src, dst := c.Server.Addr().As4(), c.Client.Addr().As4()
	ip := len(b)
	b = append(b,
		0x45, 0, // version 4, header 5 words; TOS
		0, tickle4Len, // total length
		0, 0, // identification
		0x40, 0, // don't fragment
		ipTTL, unix.IPPROTO_TCP,
		0, 0, // header checksum
	)
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	binary.BigEndian.PutUint16(b[ip+10:], finish(sum(0, b[ip:])))
	tcp := len(b)
	b = appendTCP(b, c, window)
	s := sum(0, src[:])
	s = sum(s, dst[:])
	s += unix.IPPROTO_TCP + tcpHeaderLen
	binary.BigEndian.PutUint16(b[tcp+16:], finish(sum(s, b[tcp:])))
	return b
}

// appendTickle6 appends to b the TCP segment that tickles c over IPv6,
// its checksum computed over the IPv6 pseudo-header (RFC 8200 8.1).
func appendTickle6(b []byte, c Conn, window uint16) []byte {
	src, dst := c.Server.Addr().As16(), c.Client.Addr().As16()
	tcp := len(b)
	b = appendTCP(b, c, window)
	s := sum(0, src[:])
	s = sum(s, dst[:])
	s += tcpHeaderLen + unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(b[tcp+16:], finish(sum(s, b[tcp:])))
	return b
}

// appendTCP appends a 20-byte TCP header from server to client with flag
// ACK, numbers 0 and a zero checksum.
func appendTCP(b []byte, c Conn, window uint16) []byte {
	b = binary.BigEndian.AppendUint16(b, c.Server.Port())
	b = binary.BigEndian.AppendUint16(b, c.Client.Port())
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // sequence, acknowledgement
	b = append(b, tcpHeaderLen/4<<4, tcpFlagACK)
	b = binary.BigEndian.AppendUint16(b, window)
	return append(b, 0, 0, 0, 0) // checksum, urgent pointer
}

// sum adds b to the one's complement sum s as big-endian 16-bit words, an
// odd last byte padded with zero (RFC 1071).
func sum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

// finish folds s to 16 bits and complements it.
func finish(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
