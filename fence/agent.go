package fence

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Defaults that the zero values of [Agent] and [Retry] stand for.
const (
	// AgentDir is where an agent given by name is found, as Debian's
	// fence-agents installs them.
	AgentDir = "/usr/sbin"
	// DefaultTimeout bounds one run of an agent.
	DefaultTimeout = 30 * time.Second
	// DefaultAttempts is how many attempts one call makes.
	DefaultAttempts = 3
	// DefaultBackoff is the wait after the first failed attempt; it doubles
	// after each further one.
	DefaultBackoff = time.Second
	// DefaultMaxBackoff caps the wait between attempts.
	DefaultMaxBackoff = 5 * time.Second
)

// Retry bounds the attempts of one call. The daemon retries whole Fence
// calls on failure, so these stay small: they ride out a device that drops
// one request, not an outage.
type Retry struct {
	// Attempts is how many attempts a call makes in all; zero means
	// DefaultAttempts, 1 means no retry.
	Attempts int
	// Backoff is the wait after the first failed attempt, doubled after
	// each further one; zero means DefaultBackoff.
	Backoff time.Duration
	// MaxBackoff caps the wait; zero means DefaultMaxBackoff.
	MaxBackoff time.Duration
}

func (r Retry) attempts() int {
	if r.Attempts <= 0 {
		return DefaultAttempts
	}
	return r.Attempts
}

// wait is the pause after failed attempt n (1-based).
func (r Retry) wait(n int) time.Duration {
	d, max := r.Backoff, r.MaxBackoff
	if d <= 0 {
		d = DefaultBackoff
	}
	if max <= 0 {
		max = DefaultMaxBackoff
	}
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// Agent fences one node through a standard fence agent, such as
// fence_ipmilan from fence-agents or the lab's fence_tandemlab. It speaks
// the fence-agents protocol: the agent runs with no arguments and reads its
// options, action first, as key=value lines on standard input; "status"
// exits 0 for on and 2 for off.
//
// Params are passed as given, except that a key ending in _file names a
// file holding a secret: password_file=/etc/tandem/ipmi-beta passes the
// file's content (without its trailing newline) as password. The file is
// read at every run, so a changed password needs no restart. (password is
// the name fence-agents use; agents from before it was renamed from passwd
// still take it, as their long option.) A key the agent itself knows
// (debug_file, identity_file…) is passed as is: the agent's Metadata says
// which, and without Metadata the _file parameters of Debian's
// fence-agents are known. Secrets never appear on a command line, and are
// replaced by "***" wherever the agent echoes them into an error.
//
// Each run is bounded by Timeout and runs in a process group of its own,
// killed whole when the time is up. The zero values of Timeout and Retry
// give the defaults. An Agent is safe for concurrent use as long as its
// fields are not changed.
type Agent struct {
	// Name is the agent: a name looked up in AgentDir, such as
	// fence_ipmilan, or a path.
	Name string
	// Node is the node the agent fences, as the cluster names it; it
	// appears in results and errors.
	Node string
	// Params are the agent's parameters (without action, which each
	// operation sets): plug, ip, username, password_file and so on.
	Params map[string]string
	// Timeout bounds each run of the agent; zero means DefaultTimeout.
	Timeout time.Duration
	// Retry bounds the attempts of each operation.
	Retry Retry
	// Metadata is the agent's parameter list, as Check or LoadMetadata
	// read it; nil when unknown. It tells an agent's own _file parameters
	// from secret files.
	Metadata *Metadata
	// Command builds the command that runs the agent; nil means
	// exec.CommandContext. It must use exec.CommandContext with the
	// context it is given: a cancelled context kills the agent's process
	// group. A wrapper can run the agent elsewhere, such as in another
	// namespace.
	Command func(ctx context.Context, path string, args ...string) *exec.Cmd

	// sleep waits between attempts; nil means a timer. Tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// String returns "agent NAME".
func (a *Agent) String() string { return "agent " + a.Name }

// Fence powers the node off and confirms it: it runs action off, then
// status, which must report off (exit 2). Only a confirmed off is success.
// Failed attempts are retried as Retry allows, with backoff.
func (a *Agent) Fence(ctx context.Context) (Result, error) {
	return a.do(ctx, "off", func(ctx context.Context) (Power, *Error) {
		if _, err := a.run(ctx, "off", true); err != nil {
			return PowerUnknown, err
		}
		return a.confirm(ctx, "off", PowerOff)
	})
}

// On powers the node on and confirms it with status, which must report on
// (exit 0).
func (a *Agent) On(ctx context.Context) (Result, error) {
	return a.do(ctx, "on", func(ctx context.Context) (Power, *Error) {
		if _, err := a.run(ctx, "on", true); err != nil {
			return PowerUnknown, err
		}
		return a.confirm(ctx, "on", PowerOn)
	})
}

// Status asks the device for the node's power state, in Result.Power.
// Exit 0 means on and 2 means off; any other exit is an error.
func (a *Agent) Status(ctx context.Context) (Result, error) {
	return a.do(ctx, "status", func(ctx context.Context) (Power, *Error) {
		return a.status(ctx)
	})
}

// Monitor checks that the fencing device is reachable and answers (action
// monitor), for a periodic check. Like Pacemaker, it leaves out the plug:
// it checks the device, not a node.
func (a *Agent) Monitor(ctx context.Context) (Result, error) {
	return a.do(ctx, "monitor", func(ctx context.Context) (Power, *Error) {
		_, err := a.run(ctx, "monitor", false)
		return PowerUnknown, err
	})
}

// confirm runs status after action and fails unless it reports want.
func (a *Agent) confirm(ctx context.Context, action string, want Power) (Power, *Error) {
	p, err := a.status(ctx)
	if err != nil {
		return p, err
	}
	if p != want {
		return p, a.errorf("status", true, "power is still %s after %s", p, action)
	}
	return p, nil
}

func (a *Agent) status(ctx context.Context) (Power, *Error) {
	_, err := a.run(ctx, "status", true)
	if err == nil {
		return PowerOn, nil
	}
	if err.Err == nil && err.ExitCode == 2 {
		return PowerOff, nil
	}
	return PowerUnknown, err
}

// do runs attempt up to Retry.Attempts times, waiting between attempts,
// and sums it up in a Result.
func (a *Agent) do(ctx context.Context, action string, attempt func(context.Context) (Power, *Error)) (Result, error) {
	start := time.Now()
	res := Result{Fencer: a.String(), Node: a.Node, Action: action}
	if action == "monitor" {
		res.Node = ""
	}
	n := a.Retry.attempts()
	var err *Error
	for i := 1; ; i++ {
		res.Attempts = i
		var p Power
		p, err = attempt(ctx)
		if p != PowerUnknown {
			res.Power = p
		}
		if err == nil || err.final || i >= n {
			break
		}
		if ctx.Err() != nil || a.wait(ctx, a.Retry.wait(i)) != nil {
			break
		}
	}
	res.Duration = time.Since(start)
	if err != nil {
		if n > 1 {
			err.Attempts = res.Attempts
		}
		return res, err
	}
	return res, nil
}

func (a *Agent) wait(ctx context.Context, d time.Duration) error {
	if a.sleep != nil {
		return a.sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// path is the agent's executable.
func (a *Agent) path() (string, error) {
	switch {
	case a.Name == "":
		return "", errors.New("no agent configured")
	case strings.ContainsRune(a.Name, '/'):
		return a.Name, nil
	case a.Name == "." || a.Name == "..":
		return "", fmt.Errorf("bad agent name %q", a.Name)
	}
	return filepath.Join(AgentDir, a.Name), nil
}

func (a *Agent) timeout() time.Duration {
	if a.Timeout <= 0 {
		return DefaultTimeout
	}
	return a.Timeout
}

// errorf makes an Error for action that is not about the agent's exit.
func (a *Agent) errorf(action string, withNode bool, format string, args ...any) *Error {
	e := &Error{Agent: a.Name, Action: action, ExitCode: -1, Err: fmt.Errorf(format, args...)}
	if withNode {
		e.Node = a.Node
	}
	return e
}

// run runs the agent once for action, with the parameters on standard input
// (the plug among them when withNode), and returns its standard output. A
// failure exit is an Error with the exit code and the agent's complaint.
func (a *Agent) run(ctx context.Context, action string, withNode bool) ([]byte, *Error) {
	in, secrets, err := a.input(action, withNode)
	if err != nil {
		e := a.errorf(action, withNode, "%v", err)
		e.final = true
		return nil, e
	}
	out, e := a.exec(ctx, action, nil, in, secrets)
	if e != nil && withNode {
		e.Node = a.Node
	}
	return out, e
}

// The most of an agent's output kept: metadata can be long, complaints are
// condensed to their tail.
const (
	maxStdout = 4 << 20
	maxStderr = 64 << 10
)

// exec runs the agent with args and stdin, bounded by the timeout, in its
// own process group.
func (a *Agent) exec(ctx context.Context, action string, args []string, stdin string, secrets []string) ([]byte, *Error) {
	fail := func(final bool, code int, stderr string, cause error) *Error {
		return &Error{Agent: a.Name, Action: action, ExitCode: code, Stderr: stderr, Err: cause, final: final}
	}
	path, err := a.path()
	if err != nil {
		return nil, fail(true, -1, "", err)
	}
	timeout := a.timeout()
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	command := a.Command
	if command == nil {
		command = exec.CommandContext
	}
	cmd := command(runCtx, path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	stdout := &headBuffer{max: maxStdout}
	stderr := &tailBuffer{max: maxStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	ownGroup(cmd)
	err = cmd.Run()
	complaint := func() string {
		// Redact first: condensing may cut a secret in two.
		text := condense(redact(stderr.Lines(), secrets))
		if text == "" {
			text = condense(redact(stdout.Lines(), secrets))
		}
		return text
	}
	if err == nil {
		return stdout.Bytes(), nil
	}
	switch {
	case ctx.Err() != nil:
		return stdout.Bytes(), fail(true, -1, complaint(), ctx.Err())
	case runCtx.Err() != nil:
		return stdout.Bytes(), fail(false, -1, complaint(), fmt.Errorf("timed out after %v, killed: %w", timeout, context.DeadlineExceeded))
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if exit.ExitCode() < 0 {
			return stdout.Bytes(), fail(false, -1, complaint(), fmt.Errorf("killed: %s", exit.ProcessState))
		}
		return stdout.Bytes(), fail(false, exit.ExitCode(), complaint(), nil)
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		// The agent exited 0 but something it started kept its output
		// open: the answer is in.
		return stdout.Bytes(), nil
	}
	// It never ran: missing, not executable, or the wrapper failed.
	return nil, fail(true, -1, "", redactErr(err, secrets))
}
