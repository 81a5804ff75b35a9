package fence

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fifoWatchdog is a FIFO standing in for a watchdog device, and what was
// written to it.
type fifoWatchdog struct {
	path string
	mu   sync.Mutex
	got  []byte
}

func newFIFOWatchdog(t *testing.T) *fifoWatchdog {
	t.Helper()
	fw := &fifoWatchdog{path: filepath.Join(t.TempDir(), "watchdog")}
	if err := unix.Mkfifo(fw.path, 0o600); err != nil {
		t.Fatal(err)
	}
	// Read-write, as the lab's watchdog opens it: no end of file when a
	// writer closes.
	f, err := os.OpenFile(fw.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			fw.mu.Lock()
			fw.got = append(fw.got, buf[:n]...)
			fw.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		f.Close()
		<-done
	})
	return fw
}

// await waits until the bytes written are want, and fails the test when
// they differ or do not arrive in time.
func (fw *fifoWatchdog) await(t *testing.T, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		fw.mu.Lock()
		got = string(fw.got)
		fw.mu.Unlock()
		if len(got) >= len(want) {
			break
		}
	}
	if got != want {
		t.Fatalf("the device received %q, want %q", got, want)
	}
}

var quiet = slog.New(slog.DiscardHandler)

func TestWatchdogFIFO(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	fw := newFIFOWatchdog(t)
	var log bytes.Buffer
	w, err := OpenWatchdog(WatchdogConfig{Device: fw.path, Timeout: 3 * time.Second, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// The FIFO takes no ioctls: the configured timeout is assumed, and
	// the log says so.
	if !strings.Contains(log.String(), `msg="watchdog armed" device=`+fw.path+` timeout=3s source="configured; the device takes no ioctls, so assumed as configured"`) {
		t.Errorf("log: %s", log.String())
	}
	if w.Timeout() != 3*time.Second || w.TimeoutSet() || w.FeedInterval() != time.Second || w.Device() != fw.path || w.Systemd() != 0 {
		t.Errorf("timeout %v (set %v), feed every %v, device %s, systemd %v", w.Timeout(), w.TimeoutSet(), w.FeedInterval(), w.Device(), w.Systemd())
	}
	fw.await(t, "1") // opening feeds it once
	before := w.LastFeed()
	if err := w.Feed(); err != nil {
		t.Fatal(err)
	}
	if !w.LastFeed().After(before) {
		t.Error("LastFeed did not move")
	}
	if err := w.Healthy(false); err != nil {
		t.Fatal(err)
	}
	if err := w.Healthy(true); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fw.await(t, "111V") // the unhealthy turn fed nothing; the magic close
	if err := w.Feed(); !errors.Is(err, ErrWatchdogClosed) {
		t.Errorf("feed after close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := w.Abandon(); !errors.Is(err, ErrWatchdogClosed) {
		t.Errorf("abandon after a clean close: %v", err)
	}

	// Abandon closes without the 'V': the next opener's bytes follow
	// straight on.
	w, err = OpenWatchdog(WatchdogConfig{Device: fw.path, Timeout: 3 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Abandon(); err != nil {
		t.Fatal(err)
	}
	if err := w.Healthy(true); !errors.Is(err, ErrWatchdogClosed) || !strings.Contains(err.Error(), "abandoned") {
		t.Errorf("feed after abandon: %v", err)
	}
	if err := w.Close(); !errors.Is(err, ErrWatchdogClosed) {
		t.Errorf("close after abandon: %v", err)
	}
	w, err = OpenWatchdog(WatchdogConfig{Device: fw.path, Timeout: 3 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fw.await(t, "111V"+"1"+"1V")
}

func TestWatchdogRun(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	fw := newFIFOWatchdog(t)
	w, err := OpenWatchdog(WatchdogConfig{Device: fw.path, Timeout: 30 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Healthy for three turns, then not: feeding stops at once.
	turns := 0
	err = w.Run(ctx, func() bool {
		turns++
		if turns == 6 {
			cancel()
		}
		return turns <= 3
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fw.await(t, "1"+"111"+"V")

	// Run stops at a feed that fails.
	w, err = OpenWatchdog(WatchdogConfig{Device: fw.path, Timeout: 30 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w.Abandon()
	if err := w.Run(context.Background(), func() bool { return true }); !errors.Is(err, ErrWatchdogClosed) {
		t.Errorf("run on an abandoned watchdog: %v", err)
	}
}

func TestWatchdogOpenErrors(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	fw := newFIFOWatchdog(t)
	_, err := OpenWatchdog(WatchdogConfig{Device: fw.path, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "fence: watchdog "+fw.path+": takes no ioctls") || !strings.Contains(err.Error(), "configure one") {
		t.Errorf("no timeout on a device without ioctls: %v", err)
	}
	// Refused before arming: the device was disarmed again.
	fw.await(t, "V")

	// A FIFO nobody reads is an error at once, not an open that blocks.
	lonely := filepath.Join(t.TempDir(), "watchdog")
	if err := unix.Mkfifo(lonely, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenWatchdog(WatchdogConfig{Device: lonely, Timeout: time.Second}); !errors.Is(err, unix.ENXIO) || !strings.Contains(err.Error(), lonely) {
		t.Errorf("FIFO without a reader: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "none")
	if _, err := OpenWatchdog(WatchdogConfig{Device: missing, Timeout: time.Second}); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "fence: watchdog "+missing+": open: ") {
		t.Errorf("missing device: %v", err)
	}
	if _, err := OpenWatchdog(WatchdogConfig{Device: fw.path, Timeout: -time.Second}); err == nil || !strings.Contains(err.Error(), "negative timeout") {
		t.Errorf("negative timeout: %v", err)
	}
}

func TestWatchdogSystemd(t *testing.T) {
	fw := newFIFOWatchdog(t)
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "600000")
	t.Setenv("WATCHDOG_PID", "")

	w, err := OpenWatchdog(WatchdogConfig{Device: fw.path, Timeout: 3 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Systemd() != 600*time.Millisecond || w.FeedInterval() != 300*time.Millisecond {
		t.Errorf("systemd %v, feed every %v", w.Systemd(), w.FeedInterval())
	}
	if err := w.Feed(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for i := range 2 { // the feed at open, then ours
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil || string(buf[:n]) != "WATCHDOG=1" {
			t.Fatalf("notification %d: %q, %v", i, buf[:n], err)
		}
	}
}
