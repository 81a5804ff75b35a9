package smbservice

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeEnv selects, when set, what the test binary does in place of the
// tests: it acts as an smbd, so that supervision is tested without root and
// without Samba. It is started through a symlink named smbd, so its
// /proc/PID/exe is the test binary and its comm is "smbd".
const fakeEnv = "SMBSERVICE_FAKE_SMBD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		fakeSmbd(mode)
		return
	}
	// Keep the main thread for the main goroutine: tests switch locked
	// threads into network namespaces and let them end, and the main
	// thread, which cannot end, would stay behind in one.
	runtime.LockOSThread()
	os.Exit(m.Run())
}

// fakeSmbd behaves as smbd does in the ways supervision cares about.
//
//	serve     forks two children, prints a line, exits on SIGTERM after
//	          sending SIGTERM to its process group (as smbd does)
//	stubborn  like serve, but it and its children ignore SIGTERM
//	fail      prints what smbd prints when it cannot bind, exits 1
//	chatty    prints 1000 lines, then waits for SIGTERM
//	child, stubborn-child: a forked client process
func fakeSmbd(mode string) {
	args := strings.Join(os.Args[1:], " ")
	switch mode {
	case "child":
		select {}
	case "stubborn-child":
		signal.Ignore(syscall.SIGTERM)
		select {}
	case "fail":
		fmt.Println("smbd version 4.17.12-Debian started.")
		fmt.Println("open_sockets_smbd: No sockets available to bind to.")
		fmt.Println("===============================================================")
		fmt.Println(" #0 /usr/lib/x86_64-linux-gnu/samba/libgenrand-samba4.so.0(log_stack_trace+0x2e)")
		os.Exit(1)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	if mode == "stubborn" {
		signal.Ignore(syscall.SIGTERM)
	}
	childMode := "child"
	if mode == "stubborn" {
		childMode = "stubborn-child"
	}
	for range 2 {
		c := exec.Command(os.Args[0])
		c.Env = append(os.Environ(), fakeEnv+"="+childMode)
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "fork:", err)
			os.Exit(1)
		}
	}
	fmt.Println("fake smbd started:", args)
	if mode == "chatty" {
		for i := range 1000 {
			fmt.Println("line", i)
		}
	}
	<-term
	syscall.Kill(0, syscall.SIGTERM)
	os.Exit(0)
}

// fakeSmbdPath returns a symlink named smbd to the test binary.
func fakeSmbdPath(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "smbd")
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// logBuffer collects log records for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sessionProcs lists the live processes in session sid.
func sessionProcs(t *testing.T, sid int) []int {
	t.Helper()
	stats, err := allStats()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, s := range stats {
		if s.session == sid && !s.gone() {
			out = append(out, s.pid)
		}
	}
	return out
}

// fakeProcess returns a Process running the fake smbd in mode, stopped by
// the test's cleanup if the test leaves it running.
func fakeProcess(t *testing.T, mode string, logs *logBuffer) *Process {
	t.Helper()
	t.Setenv(fakeEnv, mode)
	p := &Process{
		Name:        "test",
		Smbd:        fakeSmbdPath(t),
		Config:      "/nonexistent/smb.conf",
		RunDir:      filepath.Join(t.TempDir(), "run"),
		StopTimeout: 5 * time.Second,
		Logger:      logs.logger(),
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Halt(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return p
}

func readPidFile(t *testing.T, p *Process) (pid int, start uint64) {
	t.Helper()
	b, err := os.ReadFile(p.PidFile())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscanf(string(b), "%d %d\n", &pid, &start); err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return pid, start
}

func TestProcessLifecycle(t *testing.T) {
	logs := &logBuffer{}
	p := fakeProcess(t, "serve", logs)
	ctx := context.Background()
	if err := p.Alive(ctx); !errorsIs(err, ErrNotRunning) {
		t.Fatalf("Alive before Launch: %v, want ErrNotRunning", err)
	}
	if err := p.Launch(ctx); err != nil {
		t.Fatal(err)
	}
	pid, start := readPidFile(t, p)
	if pid != p.Pid() {
		t.Fatalf("pid file names %d, Pid() is %d", pid, p.Pid())
	}
	if st, err := readStat(pid); err != nil || st.start != start || st.session != pid {
		t.Fatalf("stat of %d: %+v, %v; want start %d in a session of its own", pid, st, err, start)
	}
	eventually(t, 5*time.Second, "two children forked", func() bool { return len(sessionProcs(t, pid)) == 3 })
	eventually(t, 5*time.Second, "output logged", func() bool {
		return strings.Contains(logs.String(), "fake smbd started: --foreground --no-process-group --debug-stdout -s /nonexistent/smb.conf")
	})
	if err := p.Alive(ctx); err != nil {
		t.Fatalf("Alive: %v", err)
	}
	if err := p.Launch(ctx); err != nil || p.Pid() != pid {
		t.Fatalf("second Launch: %v, pid %d; want no error and pid %d kept", err, p.Pid(), pid)
	}
	if err := p.Halt(ctx); err != nil {
		t.Fatal(err)
	}
	if left := sessionProcs(t, pid); len(left) > 0 {
		t.Fatalf("processes %v left after Halt", left)
	}
	if _, err := os.Stat(p.PidFile()); !os.IsNotExist(err) {
		t.Fatalf("pid file after Halt: %v", err)
	}
	if err := p.Alive(ctx); !errorsIs(err, ErrNotRunning) {
		t.Fatalf("Alive after Halt: %v, want ErrNotRunning", err)
	}
	if err := p.Halt(ctx); err != nil {
		t.Fatalf("second Halt: %v", err)
	}
}

func TestProcessStubbornGetsSIGKILL(t *testing.T) {
	logs := &logBuffer{}
	p := fakeProcess(t, "stubborn", logs)
	p.StopTimeout = 200 * time.Millisecond
	ctx := context.Background()
	if err := p.Launch(ctx); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	eventually(t, 5*time.Second, "two children forked", func() bool { return len(sessionProcs(t, pid)) == 3 })
	eventually(t, 5*time.Second, "SIGTERM ignored", func() bool { return strings.Contains(logs.String(), "fake smbd started") })
	began := time.Now()
	if err := p.Halt(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d < 200*time.Millisecond {
		t.Errorf("Halt took %v, less than the stop timeout", d)
	}
	if left := sessionProcs(t, pid); len(left) > 0 {
		t.Fatalf("processes %v left after Halt", left)
	}
	if !strings.Contains(logs.String(), "sending SIGKILL") {
		t.Errorf("no SIGKILL logged:\n%s", logs)
	}
}

// A main process killed from outside leaves its children behind, in its
// session; Halt finds and ends them.
func TestProcessOrphansCleared(t *testing.T) {
	p := fakeProcess(t, "stubborn", &logBuffer{})
	p.StopTimeout = 100 * time.Millisecond
	ctx := context.Background()
	if err := p.Launch(ctx); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	eventually(t, 5*time.Second, "two children forked", func() bool { return len(sessionProcs(t, pid)) == 3 })
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, 5*time.Second, "main process gone", func() bool { return !slices.Contains(sessionProcs(t, pid), pid) })
	err := p.Alive(ctx)
	if err == nil || errorsIs(err, ErrNotRunning) || !strings.Contains(err.Error(), "signal: killed") {
		t.Fatalf("Alive after SIGKILL: %v, want a failure that names the signal", err)
	}
	if err := p.Halt(ctx); err != nil {
		t.Fatal(err)
	}
	if left := sessionProcs(t, pid); len(left) > 0 {
		t.Fatalf("orphans %v left after Halt", left)
	}
}

func TestProcessExitReported(t *testing.T) {
	p := fakeProcess(t, "fail", &logBuffer{})
	ctx := context.Background()
	if err := p.Launch(ctx); err != nil {
		t.Fatal(err)
	}
	var err error
	eventually(t, 5*time.Second, "exit noticed", func() bool { err = p.Alive(ctx); return err != nil })
	for _, want := range []string{"exit status 1", "No sockets available to bind to"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Alive: %v; want it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "log_stack_trace") {
		t.Errorf("Alive: %v; backtrace frames should be left out", err)
	}
	// Launch starts afresh after a dead instance.
	t.Setenv(fakeEnv, "serve")
	if err := p.Launch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Alive(ctx); err != nil {
		t.Fatalf("Alive after relaunch: %v", err)
	}
}

// A restarted tandemd finds the smbd an earlier one started through the pid
// file, and stops it although it is not its child.
func TestProcessFoundByPidFile(t *testing.T) {
	p := fakeProcess(t, "serve", &logBuffer{})
	ctx := context.Background()
	if err := p.Launch(ctx); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	later := &Process{Name: p.Name, Smbd: p.Smbd, Config: p.Config, RunDir: p.RunDir, Logger: p.Logger}
	if err := later.Alive(ctx); err != nil {
		t.Fatalf("Alive of the found smbd: %v", err)
	}
	if later.Pid() != pid {
		t.Fatalf("found pid %d, want %d", later.Pid(), pid)
	}
	if err := later.Launch(ctx); err != nil || later.Pid() != pid {
		t.Fatalf("Launch over the found smbd: %v, pid %d; want it kept", err, later.Pid())
	}
	if err := later.Halt(ctx); err != nil {
		t.Fatal(err)
	}
	if left := sessionProcs(t, pid); len(left) > 0 {
		t.Fatalf("processes %v left after Halt", left)
	}
}

func TestProcessStalePidFile(t *testing.T) {
	ctx := context.Background()
	// A pid that surely names no process: that of an exited child.
	c := exec.Command("/bin/true")
	if err := c.Run(); err != nil {
		t.Skipf("cannot run /bin/true: %v", err)
	}
	// A live process that is not smbd.
	other := exec.Command("/bin/sleep", "60")
	if err := other.Start(); err != nil {
		t.Skipf("cannot run /bin/sleep: %v", err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	ost, err := readStat(other.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, content, want string
	}{
		{"dead process", fmt.Sprintf("%d 12345\n", c.Process.Pid), "no longer runs"},
		{"pid reused", fmt.Sprintf("%d 1\n", ost.pid), "the pid now names another process"},
		{"not smbd", fmt.Sprintf("%d %d\n", ost.pid, ost.start), "not "},
		{"malformed", "garbage\n", "malformed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := fakeProcess(t, "serve", &logBuffer{})
			if err := os.MkdirAll(p.RunDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p.PidFile(), []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			err := p.Alive(ctx)
			if err == nil || errorsIs(err, ErrNotRunning) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Alive: %v; want a failure containing %q", err, tt.want)
			}
			// Halt clears the record and signals nothing.
			if err := p.Halt(ctx); err != nil {
				t.Fatal(err)
			}
			if st, err := readStat(ost.pid); err != nil || st.gone() {
				t.Fatalf("Halt signalled the unrelated process %d: %v", ost.pid, err)
			}
			if _, err := os.Stat(p.PidFile()); !os.IsNotExist(err) {
				t.Fatalf("stale pid file kept: %v", err)
			}
			if err := p.Alive(ctx); !errorsIs(err, ErrNotRunning) {
				t.Fatalf("Alive after Halt: %v", err)
			}
			// Launch over a stale file starts a new smbd.
			if err := os.WriteFile(p.PidFile(), []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := p.Launch(ctx); err != nil {
				t.Fatal(err)
			}
			if pid, _ := readPidFile(t, p); pid == ost.pid || pid != p.Pid() {
				t.Fatalf("pid file names %d after Launch, want the new smbd %d", pid, p.Pid())
			}
		})
	}
}

func TestProcessOutputRateBounded(t *testing.T) {
	logs := &logBuffer{}
	p := fakeProcess(t, "chatty", logs)
	if err := p.Launch(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "rate limit reported", func() bool {
		return strings.Contains(logs.String(), "smbd output over its rate limit")
	})
	if err := p.Halt(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 1001 lines: the banner and 1000 more; those not logged are counted.
	logged := strings.Count(logs.String(), "smbd: ")
	m := regexp.MustCompile(`msg="smbd output suppressed" .*lines=(\d+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no count of suppressed lines:\n%s", logs)
	}
	dropped, _ := strconv.Atoi(m[1])
	if logged+dropped != 1001 || logged > logBurst+logPerSec*5 {
		t.Errorf("%d lines logged and %d suppressed; want 1001 in all, about the burst of %d logged", logged, dropped, logBurst)
	}
}

func TestLineLimiter(t *testing.T) {
	l := lineLimiter{tokens: logBurst}
	t0 := time.Unix(1000, 0)
	allowed := 0
	for range 3 * logBurst {
		if ok, _ := l.allow(t0); ok {
			allowed++
		}
	}
	if allowed != logBurst {
		t.Fatalf("%d lines allowed at once, want the burst %d", allowed, logBurst)
	}
	ok, dropped := l.allow(t0.Add(time.Second / logPerSec))
	if !ok || dropped != 2*logBurst {
		t.Fatalf("after one refill: ok %v, dropped %d; want true, %d", ok, dropped, 2*logBurst)
	}
}

func TestLineTailSummary(t *testing.T) {
	var tail lineTail
	for _, l := range strings.Split(`smbd version 4.17.12-Debian started.
Copyright Andrew Tridgell and the Samba Team 1992-2022
WARNING: no network interfaces found
open_sockets_smbd: No sockets available to bind to.
===============================================================
INTERNAL ERROR: open_sockets_smbd() failed in pid 5980 (4.17.12-Debian)
If you are running a recent Samba version, and if you think this problem is not yet fixed in the latest versions, please consider reporting this bug
===============================================================
PANIC (pid 5980): open_sockets_smbd() failed in 4.17.12-Debian
BACKTRACE: 9 stack frames:
 #0 /usr/lib/x86_64-linux-gnu/samba/libgenrand-samba4.so.0(log_stack_trace+0x2e) [0x7ff52edeb55e]
 #8 smbd(_start+0x21) [0x560f62708b41]
dumping core in /tmp/tp/inst/log/cores/smbd`, "\n") {
		tail.add(l)
	}
	want := "smbd version 4.17.12-Debian started. | WARNING: no network interfaces found | open_sockets_smbd: No sockets available to bind to. | INTERNAL ERROR: open_sockets_smbd() failed in pid 5980 (4.17.12-Debian) | PANIC (pid 5980): open_sockets_smbd() failed in 4.17.12-Debian"
	if got := tail.summary(); got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseStat(t *testing.T) {
	s, err := parseStat([]byte("4242 (smbd) (x) y) S 1 4242 4240 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 10000 100 18446744073709551615\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{pid: 4242, comm: "smbd) (x) y", state: 'S', ppid: 1, session: 4240, start: 987654}
	if s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
	for _, bad := range []string{"", "12 smbd S 1", "12 (smbd) S 1 2 3", "x (smbd) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func TestFamily(t *testing.T) {
	stats := []procStat{
		{pid: 1, ppid: 0, session: 1, state: 'S'},
		{pid: 100, ppid: 1, session: 100, state: 'S'}, // the main smbd
		{pid: 101, ppid: 100, session: 100, state: 'S'},
		{pid: 102, ppid: 1, session: 100, state: 'S'},   // orphan still in the session
		{pid: 103, ppid: 100, session: 103, state: 'S'}, // child that left the session
		{pid: 104, ppid: 103, session: 103, state: 'S'}, // and its child
		{pid: 105, ppid: 100, session: 100, state: 'Z'}, // exited
		{pid: 200, ppid: 1, session: 200, state: 'S'},   // unrelated
	}
	if got := pids(family(stats, 100)); !slices.Equal(got, []int{100, 101, 102, 103, 104}) {
		t.Errorf("family(100) = %v", got)
	}
	// With the main process gone, its session still names the rest.
	if got := pids(family(stats[2:], 100)); !slices.Equal(got, []int{101, 102, 103, 104}) {
		t.Errorf("family without main = %v", got)
	}
}

// Halt keeps within the caller's deadline: a stop timeout longer than the
// deadline is cut short so that the SIGKILL round still fits.
func TestProcessHaltWithinDeadline(t *testing.T) {
	p := fakeProcess(t, "stubborn", &logBuffer{})
	p.StopTimeout = time.Minute
	if err := p.Launch(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	eventually(t, 5*time.Second, "two children forked", func() bool { return len(sessionProcs(t, pid)) == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	began := time.Now()
	if err := p.Halt(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 400*time.Millisecond {
		t.Errorf("Halt took %v with a 400 ms deadline", d)
	}
	if left := sessionProcs(t, pid); len(left) > 0 {
		t.Fatalf("processes %v left after Halt", left)
	}
}

// pids lists the pids of ps.
func pids(ps []procStat) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.pid
	}
	return out
}

func TestIsSamba(t *testing.T) {
	for exe, want := range map[string]bool{
		"/usr/sbin/smbd":                   true,
		"/usr/libexec/samba/samba-dcerpcd": true,
		"/usr/libexec/samba/rpcd_classic":  true,
		"/usr/libexec/samba/samba-bgqd":    true,
		"/opt/samba/bin/anything":          true,
		"/usr/bin/sleep":                   false,
		"/usr/bin/python3":                 false,
	} {
		if got := isSamba(exe, "/usr/sbin/smbd"); got != want {
			t.Errorf("isSamba(%q) = %v, want %v", exe, got, want)
		}
	}
}
