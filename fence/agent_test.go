package fence

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeHeader starts every fake agent: it records its argument count and
// its standard input, one run after another, and sets $action, $input and
// $dir for the body.
const fakeHeader = `#!/bin/sh
dir=$(dirname "$0")
echo "$#" >> "$dir/argc"
n=$(wc -l < "$dir/argc")
cat > "$dir/stdin.$n"
input=$(cat "$dir/stdin.$n")
action=$(printf '%s\n' "$input" | sed -n 's/^action=//p')
echo "$action" >> "$dir/calls"
`

// powerBody is a well-behaved power switch that keeps its state in a file.
const powerBody = `
case "$action" in
off) echo off > "$dir/power"; echo "Success: Powered OFF" ;;
on) echo on > "$dir/power"; echo "Success: Powered ON" ;;
status)
	if [ "$(cat "$dir/power" 2>/dev/null)" = off ]; then echo "Status: OFF"; exit 2; fi
	echo "Status: ON" ;;
monitor) ;;
*) echo "Failed: Unrecognised action '$action'" >&2; exit 1 ;;
esac
`

// fake is a fake agent installed as dir/fence_fake, and an Agent that runs
// it under the name fence_fake through the Command seam.
type fake struct {
	dir   string
	agent *Agent
	// sleeps records the waits between attempts.
	sleeps []time.Duration
}

const secret = "s3cret-Pa55"

func newFake(t *testing.T, body string) *fake {
	t.Helper()
	f := &fake{dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(f.dir, "fence_fake"), []byte(fakeHeader+body), 0o755); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(f.dir, "ipmi-beta")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.agent = &Agent{
		Name: "fence_fake",
		Node: "beta",
		Params: map[string]string{
			"plug":          "beta-plug",
			"ip":            "198.18.9.2",
			"username":      "admin",
			"password_file": pwFile,
		},
		Timeout: 10 * time.Second,
		Command: func(ctx context.Context, path string, args ...string) *exec.Cmd {
			if path != filepath.Join(AgentDir, "fence_fake") {
				t.Errorf("agent path %q, want it in %s", path, AgentDir)
			}
			return exec.CommandContext(ctx, filepath.Join(f.dir, filepath.Base(path)), args...)
		},
		sleep: func(ctx context.Context, d time.Duration) error {
			f.sleeps = append(f.sleeps, d)
			return ctx.Err()
		},
	}
	return f
}

func (f *fake) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// calls lists the actions the agent ran, in order.
func (f *fake) calls(t *testing.T) []string {
	return strings.Fields(f.read(t, "calls"))
}

// inputs lists the standard input of every run, in order.
func (f *fake) inputs(t *testing.T) []string {
	var in []string
	for n := 1; ; n++ {
		b, err := os.ReadFile(filepath.Join(f.dir, "stdin."+strconv.Itoa(n)))
		if os.IsNotExist(err) {
			return in
		}
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, string(b))
	}
}

// checkNoArgs fails unless every run had no command-line arguments.
func (f *fake) checkNoArgs(t *testing.T) {
	t.Helper()
	for _, n := range strings.Fields(f.read(t, "argc")) {
		if n != "0" {
			t.Errorf("agent ran with %s arguments, want none (options go on stdin)", n)
		}
	}
}

func stdinFor(action string) string {
	return "action=" + action + "\nip=198.18.9.2\npassword=" + secret + "\nplug=beta-plug\nusername=admin\n"
}

func TestFenceOffThenStatusOff(t *testing.T) {
	f := newFake(t, powerBody)
	res, err := f.agent.Fence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Power != PowerOff || res.Attempts != 1 || res.Action != "off" || res.Node != "beta" || res.Fencer != "agent fence_fake" || res.Duration <= 0 {
		t.Errorf("result %+v", res)
	}
	if got, want := strings.Join(f.calls(t), " "), "off status"; got != want {
		t.Errorf("actions %q, want %q", got, want)
	}
	in := f.inputs(t)
	if len(in) != 2 || in[0] != stdinFor("off") || in[1] != stdinFor("status") {
		t.Errorf("stdin:\n%q\nwant\n%q\n%q", in, stdinFor("off"), stdinFor("status"))
	}
	f.checkNoArgs(t)
	if s := res.String(); !strings.HasPrefix(s, "agent fence_fake: off for beta: power off, 1 attempt, ") {
		t.Errorf("String() = %q", s)
	}
}

func TestFenceStillOn(t *testing.T) {
	f := newFake(t, `
case "$action" in
off) echo "Success: Powered OFF" ;;
status) echo "Status: ON" ;;
esac
`)
	f.agent.Retry = Retry{Attempts: 2, Backoff: time.Second}
	res, err := f.agent.Fence(context.Background())
	if err == nil {
		t.Fatal("fence succeeded while status says on")
	}
	want := "fence: agent fence_fake: status for beta: power is still on after off (after 2 attempts)"
	if err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}
	if res.Power != PowerOn || res.Attempts != 2 {
		t.Errorf("result %+v", res)
	}
	if got, want := strings.Join(f.calls(t), " "), "off status off status"; got != want {
		t.Errorf("actions %q, want %q", got, want)
	}
}

func TestAgentExitFailure(t *testing.T) {
	f := newFake(t, `
echo "2026-11-21 05:48:07,607 ERROR: Failed: Unable to connect/login to fencing device" >&2
echo "password $(printf '%s\n' "$input" | sed -n 's/^password=//p') rejected" >&2
exit 1
`)
	f.agent.Retry.Attempts = 1
	res, err := f.agent.Fence(context.Background())
	want := "fence: agent fence_fake: off for beta: exit 1: ERROR: Failed: Unable to connect/login to fencing device; password *** rejected"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q\nwant  %q", err, want)
	}
	var fe *Error
	if !errors.As(err, &fe) || fe.ExitCode != 1 || fe.Action != "off" || fe.Node != "beta" || fe.Agent != "fence_fake" {
		t.Errorf("error fields %+v", fe)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the secret: %v", err)
	}
	if res.Power != PowerUnknown || res.Attempts != 1 || len(f.sleeps) != 0 {
		t.Errorf("result %+v, sleeps %v", res, f.sleeps)
	}
	if got := strings.Join(f.calls(t), " "); got != "off" {
		t.Errorf("actions %q: status must not run after a failed off", got)
	}
}

func TestComplaintFromStdoutAndSecretInStdout(t *testing.T) {
	f := newFake(t, `
echo "Failed: login as admin/$(printf '%s\n' "$input" | sed -n 's/^password=//p') refused"
exit 1
`)
	f.agent.Retry.Attempts = 1
	_, err := f.agent.Monitor(context.Background())
	want := "fence: agent fence_fake: monitor: exit 1: Failed: login as admin/*** refused"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q\nwant  %q", err, want)
	}
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		exit  int
		power Power
		err   string
	}{
		{0, PowerOn, ""},
		{2, PowerOff, ""},
		{1, PowerUnknown, "fence: agent fence_fake: status for beta: exit 1: Failed: no route"},
		{3, PowerUnknown, "fence: agent fence_fake: status for beta: exit 3: Failed: no route"},
	} {
		t.Run(strconv.Itoa(tc.exit), func(t *testing.T) {
			code := strconv.Itoa(tc.exit)
			f := newFake(t, "if [ "+code+" != 0 ] && [ "+code+" != 2 ]; then echo 'Failed: no route' >&2; fi\nexit "+code+"\n")
			f.agent.Retry.Attempts = 1
			res, err := f.agent.Status(context.Background())
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || err.Error() != tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if res.Power != tc.power || res.Action != "status" {
				t.Errorf("result %+v, want power %v", res, tc.power)
			}
			if in := f.inputs(t); len(in) != 1 || in[0] != stdinFor("status") {
				t.Errorf("stdin %q", in)
			}
		})
	}
}

func TestOnAndMonitor(t *testing.T) {
	f := newFake(t, powerBody)
	if err := os.WriteFile(filepath.Join(f.dir, "power"), []byte("off\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := f.agent.On(context.Background())
	if err != nil || res.Power != PowerOn {
		t.Fatalf("on: %+v, %v", res, err)
	}
	res, err = f.agent.Monitor(context.Background())
	if err != nil || res.Node != "" || res.Action != "monitor" {
		t.Fatalf("monitor: %+v, %v", res, err)
	}
	in := f.inputs(t)
	wantMonitor := "action=monitor\nip=198.18.9.2\npassword=" + secret + "\nusername=admin\n"
	if len(in) != 3 || in[0] != stdinFor("on") || in[1] != stdinFor("status") || in[2] != wantMonitor {
		t.Errorf("stdin %q", in)
	}
	f.checkNoArgs(t)
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	f := newFake(t, `
sleep 300 &
echo $! > "$dir/child"
echo "password $(printf '%s\n' "$input" | sed -n 's/^password=//p') sent" >&2
sleep 300
`)
	f.agent.Timeout = 300 * time.Millisecond
	f.agent.Retry.Attempts = 1
	start := time.Now()
	_, err := f.agent.Fence(context.Background())
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Fence took %v with a 300ms timeout", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want a timeout", err)
	}
	want := "fence: agent fence_fake: off for beta: timed out after 300ms, killed: context deadline exceeded: password *** sent"
	if err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}
	pid, perr := strconv.Atoi(strings.TrimSpace(f.read(t, "child")))
	if perr != nil {
		t.Fatalf("child pid: %v", perr)
	}
	eventually(t, 10*time.Second, "the agent's child to die", func() bool {
		return !alive(pid)
	})
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] != 'Z'
	}
	return true
}

// eventually waits for cond with a deadline instead of sleeping.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRetryBackoffBounded(t *testing.T) {
	f := newFake(t, "echo 'Failed: device busy' >&2\nexit 1\n")
	f.agent.Retry = Retry{Attempts: 5, Backoff: time.Second, MaxBackoff: 3 * time.Second}
	res, err := f.agent.Fence(context.Background())
	if err == nil || !strings.HasSuffix(err.Error(), "exit 1: Failed: device busy (after 5 attempts)") {
		t.Fatalf("error %v", err)
	}
	if res.Attempts != 5 {
		t.Errorf("attempts %d, want 5", res.Attempts)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}
	if len(f.sleeps) != len(want) {
		t.Fatalf("waits %v, want %v", f.sleeps, want)
	}
	for i := range want {
		if f.sleeps[i] != want[i] {
			t.Fatalf("waits %v, want %v", f.sleeps, want)
		}
	}
	if got := len(f.calls(t)); got != 5 {
		t.Errorf("%d runs, want 5", got)
	}
}

func TestRetrySucceedsLater(t *testing.T) {
	f := newFake(t, `
n=$(grep -c . "$dir/calls")
if [ "$action" = off ] && [ "$n" -lt 2 ]; then echo "Failed: timed out" >&2; exit 1; fi
`+powerBody)
	res, err := f.agent.Fence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 2 || res.Power != PowerOff || len(f.sleeps) != 1 || f.sleeps[0] != DefaultBackoff {
		t.Errorf("result %+v, waits %v", res, f.sleeps)
	}
}

func TestRetryDefaults(t *testing.T) {
	var r Retry
	if r.attempts() != DefaultAttempts {
		t.Errorf("attempts %d", r.attempts())
	}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 60: 5 * time.Second} {
		if got := r.wait(n); got != want {
			t.Errorf("wait(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestCancelStopsRetries(t *testing.T) {
	f := newFake(t, "exit 1\n")
	f.agent.sleep = nil
	f.agent.Retry = Retry{Attempts: 3, Backoff: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := f.agent.Fence(ctx)
	if err == nil || res.Attempts != 1 {
		t.Fatalf("result %+v, error %v", res, err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Fence took %v after its context ended", elapsed)
	}
}

func TestBadParametersDoNotRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params map[string]string
		want   string
	}{
		{"action", map[string]string{"action": "reboot"}, `fence: agent fence_fake: off for beta: parameter "action": set by each operation, not configurable`},
		{"missing file", map[string]string{"password_file": "/nonexistent/ipmi"}, "fence: agent fence_fake: off for beta: parameter password_file: open /nonexistent/ipmi: no such file or directory"},
		{"empty file name", map[string]string{"password_file": ""}, "fence: agent fence_fake: off for beta: parameter password_file: no file named"},
		{"newline", map[string]string{"password": "a\nb"}, "fence: agent fence_fake: off for beta: parameter password: value holds a line break or NUL"},
		{"bad key", map[string]string{"ip addr": "x"}, `fence: agent fence_fake: off for beta: parameter "ip addr": not a parameter name`},
		{"twice", map[string]string{"password": "x", "password_file": "/etc/hostname"}, "fence: agent fence_fake: off for beta: parameters password and password_file both give password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, powerBody)
			f.agent.Params = tc.params
			res, err := f.agent.Fence(context.Background())
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %q\nwant  %q", err, tc.want)
			}
			if res.Attempts != 1 || len(f.calls(t)) != 0 {
				t.Errorf("attempts %d, runs %v: a bad parameter must not run or retry", res.Attempts, f.calls(t))
			}
		})
	}
}

func TestMultiLineSecretFile(t *testing.T) {
	f := newFake(t, powerBody)
	pw := filepath.Join(f.dir, "two-lines")
	if err := os.WriteFile(pw, []byte("line-one-secret\nline-two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.agent.Params = map[string]string{"password_file": pw}
	_, err := f.agent.Fence(context.Background())
	if err == nil || !strings.Contains(err.Error(), pw+" holds more than one line") || strings.Contains(err.Error(), "line-one-secret") {
		t.Fatalf("error %v", err)
	}
}

func TestAgentFileParameters(t *testing.T) {
	f := newFake(t, powerBody)
	tok := filepath.Join(f.dir, "tok")
	if err := os.WriteFile(tok, []byte("tok-secret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.agent.Params = map[string]string{
		"debug_file":    "/var/log/fence.log", // the agent's own
		"identity_file": "/root/.ssh/id_ed25519",
		"api_key_file":  tok, // a secret for api_key
		"plug":          "2",
	}
	if _, err := f.agent.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "action=status\napi_key=tok-secret\ndebug_file=/var/log/fence.log\nidentity_file=/root/.ssh/id_ed25519\nplug=2\n"
	if in := f.inputs(t); len(in) != 1 || in[0] != want {
		t.Errorf("stdin %q\nwant %q", in, want)
	}
	// Metadata, when known, decides instead of the built-in list.
	f.agent.Metadata = &Metadata{Name: "fence_fake", Parameters: []Parameter{{Name: "api_key_file"}, {Name: "debug"}}}
	f.agent.Params = map[string]string{"api_key_file": tok, "debug_file": tok}
	if _, err := f.agent.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	want = "action=status\napi_key_file=" + tok + "\ndebug=tok-secret\n"
	if in := f.inputs(t); len(in) != 2 || in[1] != want {
		t.Errorf("stdin %q\nwant %q", in, want)
	}
}

func TestAgentMissing(t *testing.T) {
	a := &Agent{Name: filepath.Join(t.TempDir(), "fence_none"), Node: "beta"}
	res, err := a.Fence(context.Background())
	if err == nil || !strings.Contains(err.Error(), "fence: agent "+a.Name+": off for beta: ") || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("error %v", err)
	}
	if res.Attempts != 1 {
		t.Errorf("attempts %d: a missing agent is not retried", res.Attempts)
	}
	if _, err := (&Agent{}).Status(context.Background()); err == nil || !strings.Contains(err.Error(), "no agent configured") {
		t.Errorf("empty agent: %v", err)
	}
}

func TestSessionLeaderCommand(t *testing.T) {
	// A Command that already starts the agent in a session of its own,
	// as a wrapper entering another namespace may, still works.
	f := newFake(t, powerBody)
	next := f.agent.Command
	f.agent.Command = func(ctx context.Context, path string, args ...string) *exec.Cmd {
		cmd := next(ctx, path, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		return cmd
	}
	if _, err := f.agent.Fence(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCondense(t *testing.T) {
	in := "/usr/sbin/fence_ipmilan:5: DeprecationWarning: 'pipes' is deprecated and slated for removal in Python 3.13\n" +
		"  from pipes import quote\n" +
		"2026-11-21 05:48:07,607 ERROR: Ipmitool not found or not accessible\n\n" +
		"2026-11-21 05:48:07,607 ERROR: Please use '-h' for usage\n"
	want := "ERROR: Ipmitool not found or not accessible; ERROR: Please use '-h' for usage"
	if got := condense(in); got != want {
		t.Errorf("condense = %q, want %q", got, want)
	}
	long := strings.Repeat("x", 5000)
	if got := condense(long); len(got) > maxComplaint+len("…") || !strings.HasPrefix(got, "…") {
		t.Errorf("long complaint kept %d bytes", len(got))
	}
}

func TestTruncatedOutputKeepsWholeLines(t *testing.T) {
	b := &tailBuffer{max: 16}
	b.Write([]byte(strings.Repeat("a", 20) + "SECRET-TAIL\nlast line\n"))
	b.Write([]byte("z"))
	if got := b.Lines(); got != "last line\nz" {
		t.Errorf("tail %q", got)
	}
	h := &headBuffer{max: 14}
	h.Write([]byte("first line\nSECRET-HEAD"))
	if got := h.Lines(); got != "first line\n" {
		t.Errorf("head %q", got)
	}
}

func TestRedactLongestFirst(t *testing.T) {
	if got := redact("pw abc and abcdef", []string{"abc", "abcdef", ""}); got != "pw *** and ***" {
		t.Errorf("redact = %q", got)
	}
}

func TestPowerString(t *testing.T) {
	for p, want := range map[Power]string{PowerUnknown: "unknown", PowerOn: "on", PowerOff: "off", Power(9): "unknown"} {
		if p.String() != want {
			t.Errorf("%d: %q", p, p.String())
		}
	}
}

// The interface the daemon holds.
var _ Fencer = (*Agent)(nil)
