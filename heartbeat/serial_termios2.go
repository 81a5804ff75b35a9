//go:build !ppc && !ppc64 && !ppc64le

package heartbeat

import "golang.org/x/sys/unix"

// termios2 carries the line rate as a number (BOTHER), so any rate the
// driver supports can be set, not only the Bnnn table.
const (
	serialGetTermios = unix.TCGETS2
	serialSetTermios = unix.TCSETS2
)
