package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tandem-ha/tandem/testenv"
)

func TestArgumentErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage:"},
		{[]string{"explode"}, 2, `unknown command "explode"`},
		{[]string{"status", "--name", "bad"}, 2, `lab name "bad"`},
		{[]string{"status", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"fault", "--name", "tdlnone", "a"}, 2, "want HOST ACTION"},
		{[]string{"fault", "--name", "tdlnone", "a", "cut"}, 2, "cut needs a link"},
		{[]string{"fault", "--name", "tdlnone", "a", "freeze", "now"}, 2, "freeze takes no more arguments"},
		{[]string{"fault", "--name", "tdlnone", "a", "melt"}, 2, `unknown fault "melt"`},
		{[]string{"power", "--name", "tdlnone", "a"}, 2, "want HOST on|off|reboot|status"},
		{[]string{"exec", "--name", "tdlnone", "a"}, 2, "want HOST -- COMMAND"},
		{[]string{"status", "--name", "tdlnone"}, 1, "lab control socket"},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("tandem-lab %q: exit %d, stderr %q; want exit %d and %q", c.args, code, errb.String(), c.code, c.want)
		}
	}
	var out bytes.Buffer
	if code := run([]string{"help"}, &out, &out); code != 0 || !strings.Contains(out.String(), "tandem-lab up") {
		t.Errorf("help: exit %d, %q", code, out.String())
	}
}

// build compiles tandem-lab, since up re-executes its own binary.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tandem-lab")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestUpExecFaultDown(t *testing.T) {
	testenv.Require(t)
	bin := build(t)
	name := testenv.NewName()
	t.Cleanup(func() { testenv.Sweep(name) })
	lab := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		if args[0] != "help" {
			cmd.Args = append([]string{bin, args[0], "--name", name}, args[1:]...)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), 0
	}
	must := func(args ...string) string {
		t.Helper()
		out, code := lab(args...)
		if code != 0 {
			t.Fatalf("tandem-lab %s: exit %d: %s", strings.Join(args, " "), code, out)
		}
		return out
	}

	if out := must("up"); !strings.Contains(out, "198.18.0.1/24") {
		t.Fatalf("up printed %q", out)
	}
	if out, code := lab("up"); code == 0 || !strings.Contains(out, "already up") {
		t.Fatalf("second up: exit %d, %q", code, out)
	}
	if out := must("exec", "a", "--", "ip", "-br", "addr", "show", "hb0"); !strings.Contains(out, "198.18.1.1/24") {
		t.Fatalf("exec in a: %q", out)
	}
	if _, code := lab("exec", "b", "--", "false"); code != 1 {
		t.Fatalf("exec false: exit %d, want 1", code)
	}
	must("fault", "a", "cut", "heartbeat")
	must("fault", "b", "freeze")
	if out := must("status"); !strings.Contains(out, "heartbeat cut") || !strings.Contains(out, "frozen") {
		t.Fatalf("status after faults:\n%s", out)
	}
	must("fault", "b", "thaw")
	if out := must("power", "a", "off"); !strings.Contains(out, "power off") {
		t.Fatalf("power off: %q", out)
	}
	if out, code := lab("exec", "a", "--", "true"); code != 1 || !strings.Contains(out, "powered off") {
		t.Fatalf("exec on a powered-off node: exit %d, %q", code, out)
	}
	must("power", "a", "on")
	must("down")
	if left := testenv.Leftovers(name); len(left) > 0 {
		t.Fatalf("down left: %v", left)
	}

	// A crashed lab server: down sweeps what it left.
	must("up")
	resp, err := testenv.Dial(filepath.Join(testenv.WorkDir(name), "lab.sock"), testenv.Request{Op: "status"})
	if err != nil {
		t.Fatal(err)
	}
	killServer(t, name)
	if left := testenv.Leftovers(name); len(left) == 0 || resp.Status.Hosts[0].PID == 0 {
		t.Fatal("the crashed server left nothing, so down's sweep is not tested")
	}
	if out := must("down"); !strings.Contains(out, "removed network namespace") {
		t.Fatalf("down after a crash printed %q", out)
	}
	if left := testenv.Leftovers(name); len(left) > 0 {
		t.Fatalf("down after a crash left: %v", left)
	}
}

// killServer kills the lab's server process with SIGKILL, as a crash would.
func killServer(t *testing.T, name string) {
	t.Helper()
	matches, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		args := strings.Split(string(data), "\x00")
		if len(args) >= 4 && filepath.Base(args[0]) == "tandem-lab" && args[1] == "serve" && args[3] == name {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(m))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
				return
			}
		}
	}
	t.Fatalf("no server process for lab %s", name)
}

// TestDemo runs the demo as make demo does, with freshly built binaries.
func TestDemo(t *testing.T) {
	testenv.Require(t)
	testenv.RequireCommands(t, "smbd", "samba", "smbclient", "smbclient")
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/tandem-ha/tandem/cmd/tandemd",
		"github.com/tandem-ha/tandem/cmd/haclient", "github.com/tandem-ha/tandem/cmd/tandem-lab").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(dir, "tandem-lab"), "demo").CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"client read //198.18.0.50/share/hello.txt",
		"fenced: confirmed off",
		"client read again",
		"standby (local)",
		"nothing left behind",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
}
