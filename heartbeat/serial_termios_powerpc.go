//go:build ppc || ppc64 || ppc64le

package heartbeat

import "golang.org/x/sys/unix"

// On powerpc the plain termios already carries the line rate as a number
// (BOTHER); there is no termios2.
const (
	serialGetTermios = unix.TCGETS
	serialSetTermios = unix.TCSETS
)
