package testenv

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// cable is a null-modem cable between two ptys: what one node writes to its
// end arrives at the other's, paced at the line rate. Cut, it drops every
// byte in both directions, as a pulled plug does.
type cable struct {
	baud int
	cut  atomic.Bool
	ends [2]cableEnd
	wg   sync.WaitGroup
}

type cableEnd struct {
	master, slave *os.File
}

func newCable(baud int) (*cable, error) {
	c := &cable{baud: baud}
	for i := range c.ends {
		m, s, err := pty.Open()
		if err != nil {
			c.close()
			return nil, fmt.Errorf("testenv: serial cable pty: %w", err)
		}
		c.ends[i] = cableEnd{master: m, slave: s}
		// Raw, so that a node that has not opened its end yet does not
		// echo the other's bytes back down the cable.
		if err := makeRaw(int(s.Fd())); err != nil {
			c.close()
			return nil, fmt.Errorf("testenv: serial cable %s: %w", s.Name(), err)
		}
	}
	c.wg.Add(2)
	go c.relay(c.ends[0].master, c.ends[1].master)
	go c.relay(c.ends[1].master, c.ends[0].master)
	return c, nil
}

// path is the device path of end i (0 for node a, 1 for node b).
func (c *cable) path(i int) string { return c.ends[i].slave.Name() }

// byteTime is how long one byte takes on the line: a start bit, eight data
// bits and a stop bit.
func (c *cable) byteTime() time.Duration { return time.Second * 10 / time.Duration(c.baud) }

func (c *cable) relay(from, to *os.File) {
	defer c.wg.Done()
	buf := make([]byte, 256)
	var due time.Time
	for {
		n, err := from.Read(buf)
		if err != nil {
			return
		}
		if c.cut.Load() {
			continue
		}
		now := time.Now()
		if due.Before(now) {
			due = now
		}
		due = due.Add(time.Duration(n) * c.byteTime())
		time.Sleep(time.Until(due))
		if c.cut.Load() {
			continue
		}
		if err := writeOrDrop(to, buf[:n]); err != nil {
			return
		}
	}
}

// writeOrDrop writes what the far end's input queue has room for and drops
// the rest, as a UART overrun does: a node that does not read its end never
// blocks the one that writes.
func writeOrDrop(f *os.File, b []byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		// The descriptor may have been put back in blocking mode (any
		// call of Fd does that); a blocking write would hang the relay,
		// and the lab's Close with it, once the far end stops reading.
		if werr = unix.SetNonblock(int(fd), true); werr != nil {
			return true
		}
		_, werr = unix.Write(int(fd), b)
		return true
	})
	if err != nil {
		return err
	}
	if werr == unix.EAGAIN {
		return nil
	}
	return werr
}

func (c *cable) close() {
	// Closing the slaves hangs the masters up, which ends the relays' reads.
	for _, e := range c.ends {
		if e.slave != nil {
			e.slave.Close()
		}
	}
	for _, e := range c.ends {
		if e.master != nil {
			e.master.Close()
		}
	}
	c.wg.Wait()
}

func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}
