package smbservice

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotRunning is returned, wrapped, by Supervisor.Alive when no smbd of the
// instance runs and none is expected to: never started, or stopped by Halt.
var ErrNotRunning = errors.New("smbd is not running")

// Supervisor runs smbd in one of the ways tandem can: as a child process in a
// session of its own (Process), or, on hosts that manage smbd with systemd,
// through its unit. A Supervisor knows whether smbd runs; whether it serves
// is judged by the caller, by an SMB2 NEGOTIATE round trip.
type Supervisor interface {
	// Launch starts smbd unless the instance already runs. It returns once
	// smbd is launched, before it serves.
	Launch(ctx context.Context) error
	// Alive returns nil while smbd runs, an error wrapping ErrNotRunning
	// when it is cleanly stopped, and another error when smbd died or its
	// state cannot be read.
	Alive(ctx context.Context) error
	// Halt stops every smbd process of the instance. It returns nil only
	// when none remains.
	Halt(ctx context.Context) error
}

// Defaults of Process.
const (
	DefaultSmbd        = "/usr/sbin/smbd"
	DefaultRunDir      = "/run/tandem"
	DefaultStopTimeout = 10 * time.Second
)

// Timing of supervision.
const (
	pollInterval = 10 * time.Millisecond // how often Halt looks for exited processes
	killGrace    = 2 * time.Second       // how long SIGKILLed processes may take to vanish
)

// Process supervises smbd as a child process: `smbd --foreground
// --no-process-group -s CONFIG`, in a session of its own (smbd signals its
// whole process group when it exits, which must not include tandemd). smbd's
// output is logged line by line at a bounded rate. The main pid and its start
// time are kept in RunDir/smbd-NAME.pid, so that a restarted tandemd finds an
// smbd started earlier, checks it is that very smbd, and can monitor and
// stop it.
//
// Halt sends SIGTERM to the main process, waits up to StopTimeout for every
// process of the instance — the main process, its session and its
// descendants, smbd forks one per client — to exit, then sends SIGKILL to
// those left. Only processes that run the smbd binary are ever signalled.
//
// Set the exported fields before first use and do not change them after. A
// Process is safe for concurrent use.
type Process struct {
	// Name names the instance in logs and in the pid file's name. It must
	// be a plain file name part: no "/".
	Name string
	// Smbd is the smbd binary; DefaultSmbd when empty.
	Smbd string
	// Config is the smb.conf smbd reads.
	Config string
	// RunDir holds the pid file; DefaultRunDir when empty. It is created
	// when missing.
	RunDir string
	// StopTimeout is how long Halt waits after SIGTERM before it sends
	// SIGKILL; DefaultStopTimeout when zero.
	StopTimeout time.Duration
	// SambaLog leaves logging to smb.conf ("log file", "logging") instead
	// of sending smbd's debug output to Logger.
	SambaLog bool
	// Logger receives smbd's output and supervision events;
	// slog.Default() when nil.
	Logger *slog.Logger

	// start launches a prepared command; exec.Cmd.Start when nil. Tests
	// launch smbd in another network namespace through it.
	start func(*exec.Cmd) error

	mu  sync.Mutex
	cur *instance // the instance found or launched; nil when none is known
}

// instance is one smbd main process, launched here or found in the pid file.
type instance struct {
	pid   int
	start uint64 // start time in clock ticks after boot, from /proc/PID/stat
	child *child // nil when found in the pid file
	// smbd says check found pid to run the smbd binary. The pid and its
	// start time name that process for as long as it lives, and smbd does
	// not exec another program, so later checks (every monitor) read only
	// its stat.
	smbd bool
}

// child is an smbd launched by this Process.
type child struct {
	done    chan struct{} // closed when the main process is reaped
	err     error         // exec.Cmd.Wait's result, set before done is closed
	out     *os.File      // read end of smbd's stdout and stderr
	tail    *lineTail     // last lines of output, for error messages
	logDone chan struct{} // closed when the output is read to its end
}

func (p *Process) smbd() string {
	if p.Smbd == "" {
		return DefaultSmbd
	}
	return p.Smbd
}

func (p *Process) runDir() string {
	if p.RunDir == "" {
		return DefaultRunDir
	}
	return p.RunDir
}

func (p *Process) stopTimeout() time.Duration {
	if p.StopTimeout <= 0 {
		return DefaultStopTimeout
	}
	return p.StopTimeout
}

func (p *Process) logger() *slog.Logger {
	l := p.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.With("resource", p.Name)
}

// PidFile is the path of the file that records the running smbd's main pid
// and start time, as "PID STARTTIME\n".
func (p *Process) PidFile() string {
	return filepath.Join(p.runDir(), "smbd-"+p.Name+".pid")
}

// Pid returns the main pid of the running smbd, or 0 when none runs.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	inst, err := p.find()
	if err != nil || inst == nil {
		return 0
	}
	if _, err := p.check(inst); err != nil {
		return 0
	}
	return inst.pid
}

// errf formats an error about this instance. Its callers name smbd in the
// message; the resource that owns the Process adds its name.
func (p *Process) errf(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// find returns the known instance: the one launched or found before, else
// the one the pid file names. It returns nil when there is none.
func (p *Process) find() (*instance, error) {
	if p.cur != nil {
		return p.cur, nil
	}
	b, err := os.ReadFile(p.PidFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, p.errf("read smbd pid file: %w", err)
	}
	f := strings.Fields(string(b))
	var inst instance
	if len(f) == 2 {
		inst.pid, err = strconv.Atoi(f[0])
		if err == nil {
			inst.start, err = strconv.ParseUint(f[1], 10, 64)
		}
	}
	if len(f) != 2 || err != nil || inst.pid <= 1 {
		// Not written by this package: it names no process to trust, so
		// there is nothing to signal; the file itself is stale.
		return &instance{}, nil
	}
	p.cur = &inst
	return p.cur, nil
}

// check returns the stat of the instance's main process while it runs, or an
// error that says how it ended.
func (p *Process) check(inst *instance) (procStat, error) {
	if inst.pid == 0 {
		return procStat{}, p.errf("smbd pid file %s is malformed", p.PidFile())
	}
	if c := inst.child; c != nil {
		select {
		case <-c.done:
			// Let the last lines arrive: they say why, and they end
			// once no process of smbd holds the pipe.
			select {
			case <-c.logDone:
			case <-time.After(200 * time.Millisecond):
			}
			msg := fmt.Sprintf("smbd pid %d exited: %v", inst.pid, c.err)
			if t := c.tail.summary(); t != "" {
				msg += "; last output: " + t
			}
			return procStat{}, p.errf("%s", msg)
		default:
		}
	}
	s, err := readStat(inst.pid)
	if c := inst.child; c != nil && (err != nil || s.gone()) {
		// Exited but not reaped yet: wait briefly for the exit status,
		// which says more than "no longer runs".
		select {
		case <-c.done:
			return p.check(inst)
		case <-time.After(100 * time.Millisecond):
		}
	}
	switch {
	case os.IsNotExist(err) || isESRCH(err) || err == nil && s.gone():
		return procStat{}, p.errf("smbd pid %d recorded in %s no longer runs", inst.pid, p.PidFile())
	case err != nil:
		return procStat{}, p.errf("read state of smbd pid %d: %w", inst.pid, err)
	case s.start != inst.start:
		return procStat{}, p.errf("smbd pid %d recorded in %s no longer runs (the pid now names another process)", inst.pid, p.PidFile())
	case !inst.smbd && !isSmbd(s.pid, s.comm, p.smbd()):
		return procStat{}, p.errf("pid %d recorded in %s is %q, not %s", inst.pid, p.PidFile(), s.comm, p.smbd())
	}
	inst.smbd = true
	return s, nil
}

// members returns the live processes of the instance: the main process if
// it still runs, its session and its descendants. When the main pid names
// another process now, the instance left nothing behind: a pid is not reused
// while a session of that id exists.
//
// Only members with signal set may be signalled: Samba's own programs, and,
// while the verified main process runs, whatever else it started. A member
// whose executable cannot be read is exiting; it is waited for, not
// signalled.
func (p *Process) members(inst *instance) ([]member, error) {
	if inst.pid == 0 {
		return nil, nil
	}
	s, err := readStat(inst.pid)
	running := err == nil && !s.gone()
	verified := running && s.start == inst.start && isSmbd(s.pid, s.comm, p.smbd())
	if running && !verified {
		// The pid names another process now.
		return nil, nil
	}
	stats, err := allStats()
	if err != nil {
		return nil, p.errf("%w", err)
	}
	var out []member
	for _, m := range family(stats, inst.pid) {
		exe, err := readExe(m.pid)
		switch {
		case err != nil:
			out = append(out, member{procStat: m})
		case isSamba(exe, p.smbd()) || verified:
			out = append(out, member{procStat: m, signal: true})
		}
	}
	return out, nil
}

// member is one process of an smbd instance.
type member struct {
	procStat
	signal bool // safe to signal
}

// memberPids lists the pids of ms, for messages.
func memberPids(ms []member) []int {
	out := make([]int, len(ms))
	for i, m := range ms {
		out[i] = m.pid
	}
	return out
}

// Alive implements Supervisor.
func (p *Process) Alive(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	inst, err := p.find()
	if err != nil {
		return err
	}
	if inst == nil {
		return p.errf("%w", ErrNotRunning)
	}
	_, err = p.check(inst)
	return err
}

// Launch implements Supervisor. An smbd of the instance that still runs is
// kept; what is left of one that died (its pid file, orphaned children) is
// cleared first.
func (p *Process) Launch(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	inst, err := p.find()
	if err != nil {
		return err
	}
	if inst != nil {
		_, err := p.check(inst)
		if err == nil {
			return nil
		}
		p.logger().Warn("clearing what is left of an earlier smbd", "reason", err)
		if err := p.kill(ctx, inst, false); err != nil {
			return err
		}
	}
	return p.launch()
}

// launch starts a new smbd and records it.
func (p *Process) launch() error {
	if err := os.MkdirAll(p.runDir(), 0o755); err != nil {
		return p.errf("create smbd run directory: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return p.errf("smbd output pipe: %w", err)
	}
	args := []string{"--foreground", "--no-process-group"}
	if !p.SambaLog {
		args = append(args, "--debug-stdout")
	}
	args = append(args, "-s", p.Config)
	cmd := exec.Command(p.smbd(), args...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start := p.start
	if start == nil {
		start = (*exec.Cmd).Start
	}
	err = start(cmd)
	w.Close()
	if err != nil {
		r.Close()
		return p.errf("start %s: %w", p.smbd(), err)
	}
	pid := cmd.Process.Pid
	c := &child{done: make(chan struct{}), out: r, tail: &lineTail{}, logDone: make(chan struct{})}
	// The main process is not reaped before done is closed, so its stat
	// stays readable here even if it exited at once.
	st, err := readStat(pid)
	if err == nil {
		err = writePidFile(p.PidFile(), pid, st.start)
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		r.Close()
		return p.errf("record smbd pid %d: %w", pid, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	go func() {
		copyLog(r, p.logger().With("pid", pid), c.tail)
		close(c.logDone)
	}()
	p.cur = &instance{pid: pid, start: st.start, child: c}
	p.logger().Info("smbd launched", "pid", pid, "config", p.Config)
	return nil
}

// writePidFile replaces path atomically.
func writePidFile(path string, pid int, start uint64) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d %d\n", pid, start), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Halt implements Supervisor.
func (p *Process) Halt(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	inst, err := p.find()
	if err != nil || inst == nil {
		return err
	}
	return p.kill(ctx, inst, true)
}

// kill ends every process of inst and forgets it. With graceful, the main
// process gets SIGTERM and StopTimeout to take its children down; what is
// left then, or everything without graceful, gets SIGKILL.
func (p *Process) kill(ctx context.Context, inst *instance, graceful bool) error {
	log := p.logger().With("pid", inst.pid)
	ms, err := p.members(inst)
	if err != nil {
		return err
	}
	if _, err := p.check(inst); err == nil && len(ms) > 0 && graceful {
		// The main process takes its children down on SIGTERM. Orphans
		// of one that died already get SIGKILL at once below.
		if err := syscall.Kill(inst.pid, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
			return p.errf("SIGTERM smbd pid %d: %w", inst.pid, err)
		}
		// A stopped process acts on SIGTERM only once continued.
		syscall.Kill(inst.pid, syscall.SIGCONT)
		log.Info("smbd stopping", "signal", "SIGTERM")
		// Leave room for the SIGKILL round within the caller's deadline.
		began := time.Now()
		termEnd := began.Add(p.stopTimeout())
		if dl, ok := ctx.Deadline(); ok {
			if end := dl.Add(-min(killGrace, time.Until(dl)/4)); end.Before(termEnd) {
				termEnd = end
			}
		}
		termCtx, cancel := context.WithDeadline(ctx, termEnd)
		ms, err = p.waitGone(termCtx, inst, false)
		cancel()
		if err != nil {
			return err
		}
		if len(ms) > 0 {
			log.Warn("smbd did not exit after SIGTERM; sending SIGKILL",
				"waited", time.Since(began).Round(time.Millisecond), "pids", memberPids(ms))
		}
	}
	if len(ms) > 0 {
		killCtx, cancel := context.WithTimeout(ctx, killGrace)
		ms, err = p.waitGone(killCtx, inst, true)
		cancel()
		if err != nil {
			return err
		}
		if len(ms) > 0 {
			if err := ctx.Err(); err != nil {
				return p.errf("smbd pids %v still run after SIGKILL: %w", memberPids(ms), err)
			}
			return p.errf("smbd pids %v still run %v after SIGKILL (blocked in the kernel?)", memberPids(ms), killGrace)
		}
	}
	p.forget(inst)
	if graceful {
		log.Info("smbd stopped")
	}
	return nil
}

// waitGone polls until no process of inst is left or ctx ends, and returns
// those left. With sigkill, every process found gets SIGKILL at each poll,
// new children included.
func (p *Process) waitGone(ctx context.Context, inst *instance, sigkill bool) ([]member, error) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		ms, err := p.members(inst)
		if err != nil || len(ms) == 0 {
			return ms, err
		}
		if sigkill {
			for _, m := range ms {
				if m.signal {
					syscall.Kill(m.pid, syscall.SIGKILL)
				}
			}
		}
		select {
		case <-ctx.Done():
			return ms, nil
		case <-t.C:
		}
	}
}

// forget removes the record of inst: the pid file, and the output pipe of a
// child whose processes are all gone, once its last lines are logged.
func (p *Process) forget(inst *instance) {
	if err := os.Remove(p.PidFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		p.logger().Warn("remove pid file", "err", err)
	}
	if c := inst.child; c != nil {
		// With every smbd gone the output ends; a process that smbd
		// started and that outlived it may still hold the pipe.
		select {
		case <-c.logDone:
		case <-time.After(time.Second):
		}
		c.out.Close()
	}
	p.cur = nil
}

// Output logging. smbd writes little at its default log level, but a
// raised level or a crash loop can write a lot: lines beyond the budget are
// counted, not logged.
const (
	logBurst   = 100 // lines logged at once before the rate applies
	logPerSec  = 20  // lines per second after the burst
	tailLines  = 20  // lines kept for error messages
	maxLineLen = 4096
)

// copyLog logs each line read from r until r ends or is closed.
func copyLog(r io.Reader, log *slog.Logger, tail *lineTail) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxLineLen)
	lim := lineLimiter{tokens: logBurst}
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" {
			continue
		}
		tail.add(line)
		ok, dropped := lim.allow(time.Now())
		if !ok && lim.dropped == 1 {
			log.Warn("smbd output over its rate limit; lines are dropped until it eases", "burst", logBurst, "per_second", logPerSec)
		}
		if dropped > 0 {
			log.Warn("smbd output suppressed", "lines", dropped)
		}
		if ok {
			log.Info("smbd: " + line)
		}
	}
	if n := lim.dropped; n > 0 {
		log.Warn("smbd output suppressed", "lines", n)
	}
}

// lineLimiter is a token bucket over lines.
type lineLimiter struct {
	tokens  float64
	last    time.Time
	dropped int // lines refused since the last one allowed
}

// allow reports whether a line may be logged at now, and how many lines
// were refused before it (reported once, with the first line allowed).
func (l *lineLimiter) allow(now time.Time) (ok bool, dropped int) {
	if !l.last.IsZero() {
		l.tokens = min(logBurst, l.tokens+now.Sub(l.last).Seconds()*logPerSec)
	}
	l.last = now
	if l.tokens < 1 {
		l.dropped++
		return false, 0
	}
	l.tokens--
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

// lineTail keeps the last lines of output.
type lineTail struct {
	mu    sync.Mutex
	lines []string
}

func (t *lineTail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == tailLines {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, line)
}

// summary joins the last lines that say something, leaving out the frames of
// a backtrace and banner rules.
func (t *lineTail) summary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var keep []string
	for _, l := range t.lines {
		s := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(s, "#"), strings.HasPrefix(s, "==="), strings.HasPrefix(s, "BACKTRACE"),
			strings.HasPrefix(s, "If you are running"), strings.HasPrefix(s, "dumping core"),
			strings.HasPrefix(s, "Copyright"):
			continue
		}
		keep = append(keep, s)
	}
	if len(keep) > 5 {
		keep = keep[len(keep)-5:]
	}
	return strings.Join(keep, " | ")
}
