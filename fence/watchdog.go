package fence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	sdaemon "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// DefaultWatchdogDevice is the watchdog device opened when none is
// configured.
const DefaultWatchdogDevice = "/dev/watchdog"

// WatchdogConfig says how to open a watchdog.
type WatchdogConfig struct {
	// Device is the watchdog device; DefaultWatchdogDevice when empty.
	Device string
	// Timeout is how long the device waits to be fed before it resets the
	// machine. It is set on the device when the device takes a timeout
	// (WDIOC_SETTIMEOUT, whole seconds, rounded down so the device never
	// waits longer than the peer assumes); a device that takes no ioctls
	// (the lab's) is assumed to have it as it is. Zero keeps the device's
	// own timeout, which must then be readable (WDIOC_GETTIMEOUT).
	Timeout time.Duration
	// Logger receives one line at open saying the timeout and where it
	// came from; slog.Default() when nil.
	Logger *slog.Logger
}

// Watchdog is an open watchdog device: once opened it resets the machine
// unless it is fed within its timeout, until it is closed cleanly. When
// systemd runs the process with WatchdogSec (WATCHDOG_USEC in the
// environment), every feed also sends it WATCHDOG=1.
//
// The Watchdog is the mechanism only; when to feed is the caller's
// policy. A daemon either calls [Watchdog.Healthy] from its own loop each
// turn, or runs [Watchdog.Run] with a health function. Methods are safe
// for concurrent use.
type Watchdog struct {
	path       string
	fd         int
	timeout    time.Duration
	timeoutSet bool // the device took the timeout by ioctl
	keepalive  bool // WDIOC_KEEPALIVE works
	systemd    time.Duration
	notify     func(state string) (bool, error)

	mu        sync.Mutex
	closed    bool
	abandoned bool
	lastFeed  time.Time
}

// OpenWatchdog opens the device, which arms it, sets or learns its
// timeout and feeds it once. On a device that supports them it uses
// WDIOC_GETSUPPORT, WDIOC_SETTIMEOUT, WDIOC_GETTIMEOUT and
// WDIOC_KEEPALIVE; on one that answers ENOTTY (a FIFO, as the lab's
// watchdog is) it writes only, and takes the configured timeout as it is.
//
// A device that ends up with a timeout longer than the configured one is
// refused (and closed cleanly): the peer waits out the configured timeout
// before it takes over, and must not do so while this node's watchdog
// still waits.
func OpenWatchdog(c WatchdogConfig) (*Watchdog, error) {
	if c.Device == "" {
		c.Device = DefaultWatchdogDevice
	}
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	if c.Timeout < 0 {
		return nil, fmt.Errorf("fence: watchdog %s: negative timeout %v", c.Device, c.Timeout)
	}
	// O_NONBLOCK: a FIFO without a reader is an error (ENXIO), not an
	// open that blocks forever; watchdog drivers ignore the flag.
	fd, err := unix.Open(c.Device, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("fence: watchdog %s: open: %w", c.Device, err)
	}
	w := &Watchdog{path: c.Device, fd: fd, timeout: c.Timeout, notify: sdNotify}
	fail := func(err error) (*Watchdog, error) {
		w.Close()
		return nil, err
	}
	how, err := w.setTimeout(c.Timeout)
	if err != nil {
		return fail(err)
	}
	if w.systemd, err = sdaemon.SdWatchdogEnabled(false); err != nil {
		return fail(fmt.Errorf("fence: watchdog %s: systemd watchdog: %w", c.Device, err))
	}
	if err := w.Feed(); err != nil {
		return fail(err)
	}
	args := []any{"device", c.Device, "timeout", w.timeout, "source", how}
	if w.systemd > 0 {
		args = append(args, "systemd", w.systemd)
	}
	log.Info("watchdog armed", args...)
	return w, nil
}

// setTimeout sets and reads back the device's timeout, or takes want as
// it is on a device without ioctls. It returns where the timeout came
// from, for the log.
func (w *Watchdog) setTimeout(want time.Duration) (string, error) {
	info, err := unix.IoctlGetWatchdogInfo(w.fd)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		if want == 0 {
			return "", fmt.Errorf("fence: watchdog %s: takes no ioctls (WDIOC_GETSUPPORT: %v), so its timeout cannot be read: configure one", w.path, err)
		}
		return "configured; the device takes no ioctls, so assumed as configured", nil
	}
	if err != nil {
		return "", fmt.Errorf("fence: watchdog %s: WDIOC_GETSUPPORT: %w", w.path, err)
	}
	w.keepalive = info.Options&unix.WDIOF_KEEPALIVEPING != 0
	how := "the device's own"
	if want > 0 {
		if info.Options&unix.WDIOF_SETTIMEOUT == 0 {
			return "", fmt.Errorf("fence: watchdog %s (%s): cannot set a timeout, and %v is configured", w.path, identity(info), want)
		}
		secs := int(want / time.Second)
		if secs < 1 {
			return "", fmt.Errorf("fence: watchdog %s (%s): timeouts are whole seconds; %v is configured", w.path, identity(info), want)
		}
		if err := unix.IoctlSetPointerInt(w.fd, unix.WDIOC_SETTIMEOUT, secs); err != nil {
			return "", fmt.Errorf("fence: watchdog %s (%s): WDIOC_SETTIMEOUT %ds: %w", w.path, identity(info), secs, err)
		}
		w.timeoutSet = true
		w.timeout = time.Duration(secs) * time.Second
		how = "set on the device"
	}
	got, err := unix.IoctlGetInt(w.fd, unix.WDIOC_GETTIMEOUT)
	switch {
	case err != nil && want == 0:
		return "", fmt.Errorf("fence: watchdog %s (%s): WDIOC_GETTIMEOUT: %w; configure a timeout", w.path, identity(info), err)
	case err != nil:
		return how + ", not read back", nil
	}
	dev := time.Duration(got) * time.Second
	if want > 0 && dev > want {
		return "", fmt.Errorf("fence: watchdog %s (%s): asked for %v, the device took %v: longer than the peer assumes", w.path, identity(info), want, dev)
	}
	if dev <= 0 {
		return "", fmt.Errorf("fence: watchdog %s (%s): reports a timeout of %ds", w.path, identity(info), got)
	}
	w.timeout = dev
	return how + ", read back", nil
}

// sdNotify sends state to systemd, keeping NOTIFY_SOCKET for the next.
func sdNotify(state string) (bool, error) { return sdaemon.SdNotify(false, state) }

func identity(info *unix.WatchdogInfo) string {
	n := 0
	for n < len(info.Identity) && info.Identity[n] != 0 {
		n++
	}
	if n == 0 {
		return "unnamed"
	}
	return string(info.Identity[:n])
}

// Device returns the device's path.
func (w *Watchdog) Device() string { return w.path }

// Timeout returns the device's timeout: as set and read back, or as
// configured on a device that takes no ioctls.
func (w *Watchdog) Timeout() time.Duration { return w.timeout }

// TimeoutSet reports whether the device took the timeout by ioctl. When
// it did not (the lab's FIFO), Timeout is the configured value, assumed.
func (w *Watchdog) TimeoutSet() bool { return w.timeoutSet }

// Systemd returns systemd's watchdog timeout (WatchdogSec), zero when
// systemd set none; every feed also notifies systemd when it is set.
func (w *Watchdog) Systemd() time.Duration { return w.systemd }

// FeedInterval is how often a healthy node should feed: a third of the
// device's timeout, or half of systemd's when that is shorter.
func (w *Watchdog) FeedInterval() time.Duration {
	d := w.timeout / 3
	if w.systemd > 0 && w.systemd/2 < d {
		d = w.systemd / 2
	}
	return max(d, time.Millisecond)
}

// LastFeed returns when the device was last fed.
func (w *Watchdog) LastFeed() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastFeed
}

// ErrWatchdogClosed is wrapped by the errors of a Watchdog that was
// closed or abandoned: it is not fed any more.
var ErrWatchdogClosed = errors.New("watchdog closed")

// Feed feeds the device: a write of one byte, WDIOC_KEEPALIVE where the
// device supports it, and WATCHDOG=1 to systemd when it watches.
func (w *Watchdog) Feed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable("feed"); err != nil {
		return err
	}
	if _, err := unix.Write(w.fd, []byte{'1'}); err != nil {
		return fmt.Errorf("fence: watchdog %s: feed: write: %w", w.path, err)
	}
	if w.keepalive {
		if err := unix.IoctlWatchdogKeepalive(w.fd); err != nil {
			return fmt.Errorf("fence: watchdog %s: feed: WDIOC_KEEPALIVE: %w", w.path, err)
		}
	}
	w.lastFeed = time.Now()
	if w.systemd > 0 {
		if _, err := w.notify(sdaemon.SdNotifyWatchdog); err != nil {
			return fmt.Errorf("fence: watchdog %s: feed: systemd notify: %w", w.path, err)
		}
	}
	return nil
}

func (w *Watchdog) usable(op string) error {
	switch {
	case w.abandoned:
		return fmt.Errorf("fence: watchdog %s: %s: %w (abandoned: the machine resets)", w.path, op, ErrWatchdogClosed)
	case w.closed:
		return fmt.Errorf("fence: watchdog %s: %s: %w", w.path, op, ErrWatchdogClosed)
	}
	return nil
}

// Healthy is the call for a daemon that drives the watchdog from its own
// loop: each turn it says whether the node is healthy. A healthy turn
// feeds the device; an unhealthy one does not, and the device resets the
// machine if no healthy turn follows within its timeout.
func (w *Watchdog) Healthy(ok bool) error {
	if !ok {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.usable("check")
	}
	return w.Feed()
}

// Run feeds the device every FeedInterval while healthy returns true, and
// skips the feed whenever it returns false, until ctx is done or a feed
// fails. It returns ctx's error or the feed's, and leaves the device
// open: the caller then closes it cleanly ([Watchdog.Close]) or
// abandons it ([Watchdog.Abandon]).
func (w *Watchdog) Run(ctx context.Context, healthy func() bool) error {
	t := time.NewTicker(w.FeedInterval())
	defer t.Stop()
	for {
		if err := w.Healthy(healthy()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close disarms the device for a clean exit: the magic close, a 'V'
// written just before closing. A device configured with nowayout keeps
// running regardless. Closing an abandoned Watchdog does not disarm it.
func (w *Watchdog) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		if w.abandoned {
			return fmt.Errorf("fence: watchdog %s: close: %w (abandoned: the machine resets)", w.path, ErrWatchdogClosed)
		}
		return nil
	}
	w.closed = true
	_, werr := unix.Write(w.fd, []byte{'V'})
	cerr := unix.Close(w.fd)
	switch {
	case werr != nil:
		return fmt.Errorf("fence: watchdog %s: magic close: %w: the device stays armed", w.path, werr)
	case cerr != nil:
		return fmt.Errorf("fence: watchdog %s: close: %w", w.path, cerr)
	}
	return nil
}

// Abandon stops feeding for good and closes the device without the magic
// close, so that it resets the machine within its timeout: the last step
// of fencing oneself. Later feeds and Close fail with ErrWatchdogClosed.
func (w *Watchdog) Abandon() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.abandoned {
		return nil
	}
	if w.closed {
		return fmt.Errorf("fence: watchdog %s: abandon: %w (closed cleanly before)", w.path, ErrWatchdogClosed)
	}
	w.closed, w.abandoned = true, true
	if err := unix.Close(w.fd); err != nil {
		return fmt.Errorf("fence: watchdog %s: abandon: close: %w", w.path, err)
	}
	return nil
}
