package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/admin"
	"github.com/tandem-ha/tandem/smbservice"
)

// fakeDaemon records the calls it gets and answers with what it is given.
type fakeDaemon struct {
	mu    sync.Mutex
	calls []string

	status admin.Status
	fence  admin.FenceReport
	err    error
}

func (d *fakeDaemon) record(call string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, call)
	return d.err
}

func (d *fakeDaemon) Calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

func (d *fakeDaemon) Status(context.Context) (admin.Status, error) {
	return d.status, d.record("status")
}
func (d *fakeDaemon) Standby(context.Context) error  { return d.record("standby") }
func (d *fakeDaemon) Takeover(context.Context) error { return d.record("takeover") }
func (d *fakeDaemon) Failover(context.Context) error { return d.record("failover") }
func (d *fakeDaemon) Maintenance(_ context.Context, on bool) error {
	return d.record(fmt.Sprintf("maintenance %v", on))
}
func (d *fakeDaemon) Resources(context.Context) ([]admin.Resource, error) {
	return d.status.Resources, d.record("resources")
}
func (d *fakeDaemon) Cleanup(_ context.Context, name string) error {
	return d.record("cleanup " + name)
}
func (d *fakeDaemon) Fence(_ context.Context, node string, self bool) (admin.FenceReport, error) {
	return d.fence, d.record(fmt.Sprintf("fence %s %v", node, self))
}

// serve runs an admin server for d on a socket in a fresh directory.
func serve(t *testing.T, d admin.Daemon) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "tandemd.sock")
	l, err := admin.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := admin.NewServer(d, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return sock
}

// cli runs haclient with args and returns its exit code and output.
func cli(t *testing.T, a *app, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	if a == nil {
		a = newApp(nil, nil)
	}
	a.stdout, a.stderr, a.loc = &out, &errb, time.UTC
	code = a.run(context.Background(), args)
	return code, out.String(), errb.String()
}

func ms(v int64) *int64 { return &v }

func sampleStatus() admin.Status {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	heard := t0.Add(-120 * time.Millisecond)
	return admin.Status{
		Time:    t0,
		Cluster: "filer",
		Node:    "alpha",
		Nodes: []admin.Node{
			{Name: "alpha", Local: true, Role: admin.RoleActive},
			{Name: "beta", Role: admin.RoleStandby, Links: []admin.Link{
				{Medium: "udp", State: admin.LinkUp, LastHeard: &heard, LastHeardAgoMS: ms(120)},
				{Medium: "serial", State: admin.LinkDown, LastHeard: &heard, LastHeardAgoMS: ms(5230), Late: 2,
					Bad: admin.BadPackets{Forged: 3, Replayed: 1}},
				{Medium: "disk", State: admin.LinkUnknown},
			}},
		},
		Resources: []admin.Resource{
			{Name: "data", Type: "filesystem", State: admin.ResourceStarted, Where: "alpha"},
			{Name: "vip", Type: "floatip", State: admin.ResourceStarted, Where: "alpha"},
			{Name: "smb", Type: "smb", State: admin.ResourceFailed, Where: "alpha", Failures: 3, LastError: "no NEGOTIATE answer\nfrom 198.18.0.50:445"},
			{Name: "reconnect", Type: "tickle", State: admin.ResourceStopped},
		},
		Maintenance:     true,
		UnsafeNoFencing: true,
		LastFence: &admin.FenceReport{Target: "beta", Method: "fence_ipmilan", Result: admin.FenceFailed,
			Started: t0.Add(-20 * time.Second), DurationMS: 12100, Error: "status still on"},
		Tickles: &admin.TickleCounts{Running: true, Tracked: 12, Tickled: 9, Rounds: 3, Reset: 2, PollFailures: 1, LastError: "netlink: busy"},
		Notices: []admin.Notice{
			{Time: t0.Add(-7 * time.Minute), Level: admin.LevelInfo, Text: "one"},
			{Time: t0.Add(-6 * time.Minute), Level: admin.LevelInfo, Text: "two"},
			{Time: t0.Add(-5 * time.Minute), Level: admin.LevelInfo, Text: "alpha took the service"},
			{Time: t0.Add(-4 * time.Minute), Level: admin.LevelWarning, Text: "late heartbeat: 1200 ms on udp"},
			{Time: t0.Add(-3 * time.Minute), Level: admin.LevelError, Text: "smb: monitor: no NEGOTIATE answer"},
			{Time: t0.Add(-2 * time.Minute), Level: admin.LevelWarning, Text: "maintenance mode on"},
			{Time: t0.Add(-1 * time.Minute), Level: admin.LevelError, Text: "fencing of beta failed"},
		},
	}
}

func TestStatusTable(t *testing.T) {
	sock := serve(t, &fakeDaemon{status: sampleStatus()})
	code, out, errs := cli(t, nil, "status", "--socket", sock)
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	want := `cluster filer: alpha active (local), beta standby; maintenance ON
WARNING: ` + admin.UnsafeNoFencingWarning + `
WARNING: fencing of beta by fence_ipmilan failed after 12.1s: status still on (began May  1 11:59:40)
MAINTENANCE MODE: failures are reported, not acted on
tickles: 12 tracked, 9 tickled in 3 round(s), 2 reset; tracking failed 1 time(s): netlink: busy

PEER  MEDIUM  STATE    LAST HEARD  LATE  BAD
beta  udp     up       120ms ago   0     0
beta  serial  down     5.2s ago    2     4 (forged 3, replayed 1)
beta  disk    unknown  never       0     0

RESOURCE   TYPE        STATE    WHERE  FAILURES  LAST ERROR
data       filesystem  started  alpha  0         -
vip        floatip     started  alpha  0         -
smb        smb         failed   alpha  3         no NEGOTIATE answer from 198.18.0.50:445
reconnect  tickle      stopped  -      0         -

TIME             LEVEL    NOTICE
May  1 11:55:00  info     alpha took the service
May  1 11:56:00  warning  late heartbeat: 1200 ms on udp
May  1 11:57:00  error    smb: monitor: no NEGOTIATE answer
May  1 11:58:00  warning  maintenance mode on
May  1 11:59:00  error    fencing of beta failed
`
	if out != want {
		t.Errorf("have:\n%s\nwant:\n%s", out, want)
	}
}

func TestStatusQuiet(t *testing.T) {
	st := admin.Status{Cluster: "filer", Node: "beta", Nodes: []admin.Node{
		{Name: "beta", Local: true, Role: admin.RoleFencing, Reason: "peer silent on all media"},
		{Name: "alpha", Role: admin.RoleDead},
	}, LastFence: &admin.FenceReport{Target: "alpha", Method: "disk", Result: admin.FenceRunning, DurationMS: 800}}
	sock := serve(t, &fakeDaemon{status: st})
	code, out, _ := cli(t, nil, "--socket", sock, "status")
	want := `cluster filer: beta fencing (local, peer silent on all media), alpha dead; maintenance off
last fencing of alpha by disk running for 800ms (began -)

no resources configured
`
	if code != exitOK || out != want {
		t.Errorf("exit %d, have:\n%s\nwant:\n%s", code, out, want)
	}
}

func TestJSON(t *testing.T) {
	sock := serve(t, &fakeDaemon{status: sampleStatus()})
	c := admin.NewClient(sock)
	for _, tc := range []struct {
		args []string
		raw  func(context.Context) ([]byte, error)
	}{
		{[]string{"status", "--json"}, c.StatusJSON},
		{[]string{"resources", "--json"}, c.ResourcesJSON},
	} {
		code, out, errs := cli(t, nil, append(tc.args, "--socket", sock)...)
		want, err := tc.raw(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if code != exitOK || errs != "" || out != string(want) {
			t.Errorf("%v: exit %d, stderr %q, have\n%s\nwant\n%s", tc.args, code, errs, out, want)
		}
		if !strings.HasPrefix(out, "{\n  \"schema\": 1,") {
			t.Errorf("%v: document does not start with the schema: %.40q", tc.args, out)
		}
	}
}

func TestResourcesTable(t *testing.T) {
	sock := serve(t, &fakeDaemon{status: sampleStatus()})
	code, out, _ := cli(t, nil, "--socket", sock, "resources")
	if code != exitOK || !strings.HasPrefix(out, "RESOURCE   TYPE") || !strings.Contains(out, "\nsmb        smb         failed   alpha  3 ") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestCommands(t *testing.T) {
	d := &fakeDaemon{fence: admin.FenceReport{Target: "beta", Method: "fence_ipmilan", Result: admin.FenceDone, DurationMS: 3200}}
	sock := serve(t, d)
	for _, tc := range []struct {
		args []string
		call string
		out  string
	}{
		{[]string{"standby"}, "standby", "standby: done\n"},
		{[]string{"takeover"}, "takeover", "takeover: done\n"},
		{[]string{"failover"}, "failover", "failover: done\n"},
		{[]string{"maintenance", "on"}, "maintenance true", "maintenance mode on: failures are reported, not acted on\n"},
		{[]string{"maintenance", "off"}, "maintenance false", "maintenance mode off\n"},
		{[]string{"cleanup", "smb"}, "cleanup smb", "cleanup: smb: failure record cleared\n"},
		{[]string{"fence", "beta"}, "fence beta false", "fencing of beta by fence_ipmilan done in 3.2s\n"},
		{[]string{"fence", "alpha", "--self"}, "fence alpha true", "fencing of beta by fence_ipmilan done in 3.2s\n"},
		{[]string{"fence", "--self", "--", "-odd"}, "fence -odd true", "fencing of beta by fence_ipmilan done in 3.2s\n"},
	} {
		forms := [][]string{append([]string{"--socket", sock}, tc.args...)}
		if !slices.Contains(tc.args, "--") {
			forms = append(forms, append(slices.Clone(tc.args), "--socket="+sock))
		}
		for _, args := range forms {
			n := len(d.Calls())
			code, out, errs := cli(t, nil, args...)
			if code != exitOK || out != tc.out || errs != "" {
				t.Errorf("%q: exit %d, stdout %q, stderr %q; want 0, %q", args, code, out, errs, tc.out)
			}
			if calls := d.Calls()[n:]; !reflect.DeepEqual(calls, []string{tc.call}) {
				t.Errorf("%q: daemon got %q, want %q", args, calls, tc.call)
			}
		}
	}
}

func TestDaemonErrors(t *testing.T) {
	d := &fakeDaemon{err: admin.Errorf(admin.ErrConflict, "peer %s holds the service and does not answer", "beta")}
	sock := serve(t, d)
	for _, cmd := range [][]string{{"takeover"}, {"status"}, {"status", "--json"}, {"resources"}, {"cleanup", "smb"}, {"fence", "beta"}, {"maintenance", "on"}} {
		code, out, errs := cli(t, nil, append(cmd, "--socket", sock)...)
		want := "haclient: " + cmd[0] + ": peer beta holds the service and does not answer\n"
		if code != exitFailed || errs != want || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 1, %q", cmd, code, out, errs, want)
		}
	}
}

func TestUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "tandemd.sock")
	for _, cmd := range [][]string{{"status"}, {"status", "--json"}, {"standby"}, {"fence", "beta"}} {
		code, out, errs := cli(t, nil, append([]string{"--socket", sock}, cmd...)...)
		if code != exitUnreachable || out != "" {
			t.Errorf("%q: exit %d, stdout %q", cmd, code, out)
		}
		for _, want := range []string{"haclient: " + cmd[0] + ": cannot reach tandemd at " + sock, "is tandemd running?"} {
			if !strings.Contains(errs, want) {
				t.Errorf("%q: stderr %q lacks %q", cmd, errs, want)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	// Nothing listens here: a command that wrongly went to the daemon
	// would exit 3, not 2.
	sock := filepath.Join(t.TempDir(), "tandemd.sock")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{nil, "haclient: no command given\n"},
		{[]string{"frob"}, `haclient: unknown command "frob"`},
		{[]string{"--bogus", "status"}, "haclient: flag provided but not defined: -bogus"},
		{[]string{"status", "--verbose"}, "haclient: status: flag provided but not defined: -verbose\nusage: haclient [--socket PATH] status [--json]\n"},
		{[]string{"status", "alpha"}, `haclient: status: unexpected argument "alpha"`},
		{[]string{"takeover", "now"}, `haclient: takeover: unexpected argument "now"`},
		{[]string{"maintenance"}, "haclient: maintenance: missing argument: want on|off"},
		{[]string{"maintenance", "yes"}, `haclient: maintenance: argument "yes": want on or off`},
		{[]string{"maintenance", "on", "off"}, `haclient: maintenance: unexpected argument "off"`},
		{[]string{"cleanup"}, "haclient: cleanup: missing argument: want NAME"},
		{[]string{"cleanup", ""}, "haclient: cleanup: argument NAME: empty resource name"},
		{[]string{"fence"}, "haclient: fence: missing argument: want NODE [--self]"},
		{[]string{"fence", "beta", "alpha"}, `haclient: fence: unexpected argument "alpha"`},
		{[]string{"fence", "--self=maybe", "beta"}, `haclient: fence: invalid boolean value "maybe" for -self`},
		{[]string{"config"}, "haclient: config: missing argument: want check [FILE]"},
		{[]string{"config", "lint"}, `haclient: config: unknown subcommand "lint": want check`},
		{[]string{"config", "check", "a.toml", "b.toml"}, `haclient: config: unexpected argument "b.toml"`},
		{[]string{"completion", "zsh"}, `haclient: completion: argument "zsh": no completion for that shell, only for bash`},
		{[]string{"help", "frob"}, `haclient: help: unknown command "frob"`},
		{[]string{"status", "--socket"}, "haclient: status: flag needs an argument: -socket"},
	} {
		code, out, errs := cli(t, nil, append([]string{"--socket", sock}, tc.args...)...)
		if code != exitUsage || out != "" || !strings.HasPrefix(errs, tc.msg) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and stderr starting %q", tc.args, code, out, errs, tc.msg)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "usage: haclient [--socket PATH] COMMAND [ARGS]"},
		{[]string{"--help"}, "  fence NODE [--self]"},
		{[]string{"help", "fence"}, "usage: haclient [--socket PATH] fence NODE [--self]\n"},
		{[]string{"status", "-h"}, "usage: haclient [--socket PATH] status [--json]\n"},
	} {
		code, out, errs := cli(t, nil, tc.args...)
		if code != exitOK || errs != "" || !strings.Contains(out, tc.want) {
			t.Errorf("%q: exit %d, stderr %q, stdout lacks %q:\n%s", tc.args, code, errs, tc.want, out)
		}
	}
}

// writeConfig writes a configuration with its key file into dir and
// returns its path.
func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	key := filepath.Join(dir, "authkey")
	if err := os.WriteFile(key, []byte("0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "tandem.toml")
	doc := strings.ReplaceAll(body, "KEY", key)
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

const goodConfig = `[cluster]
name = "filer"
auth_key_file = "KEY"
unsafe_no_fencing = true

[[node]]
name = "alpha"
address = "198.18.1.1"

[[node]]
name = "beta"
address = "198.18.1.2"

[[resource]]
name = "data"
type = "filesystem"
device = "/dev/vdb"
mountpoint = "/srv/samba"

[[resource]]
name = "vip"
type = "floatip"
address = "198.18.0.50/24"

[[resource]]
name = "smb"
type = "smb"
config = "SMBCONF"
`

// fakeSMB stands in for testparm and remembers what it was asked.
type fakeSMB struct {
	checked  []smbservice.Checker
	paths    []string
	warnings []string
	err      error
}

func (f *fakeSMB) check(_ context.Context, c *smbservice.Checker, path string) ([]string, error) {
	f.checked = append(f.checked, *c)
	f.paths = append(f.paths, path)
	return f.warnings, f.err
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	file := writeConfig(t, dir, strings.ReplaceAll(goodConfig, "SMBCONF", "/etc/samba/filer.conf"))

	smb := &fakeSMB{warnings: []string{"/etc/samba/filer.conf:4: global parameter \"x\" in a share section has no effect there"}}
	a := newApp(nil, nil)
	a.checkSMB = smb.check
	code, out, errs := cli(t, a, "config", "check", file)
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 || lines[0] != "config OK: "+file ||
		!strings.HasPrefix(lines[1], "config: warning: ") || !strings.Contains(lines[1], "unsafe_no_fencing") ||
		lines[2] != `smb.conf: warning: resource "smb": /etc/samba/filer.conf:4: global parameter "x" in a share section has no effect there` {
		t.Errorf("stdout:\n%s", out)
	}
	if !reflect.DeepEqual(smb.paths, []string{"/etc/samba/filer.conf"}) {
		t.Errorf("checked %q", smb.paths)
	}
	if c := smb.checked[0]; c.Address.String() != "198.18.0.50" || c.SharedDir != "/srv/samba" {
		t.Errorf("checker %+v: want the floating address and the shared mount point", c)
	}

	// Problems in smb.conf, each on its own line.
	smb = &fakeSMB{err: &smbservice.ConfigError{Path: "/etc/samba/filer.conf", Problems: []smbservice.Problem{
		{Line: 7, Text: `unknown parameter "bind interface only" (smbd ignores it)`},
		{Line: 0, Text: `"netbios name" is not set`},
	}}}
	a = newApp(nil, nil)
	a.checkSMB = smb.check
	code, out, errs = cli(t, a, "config", "check", file)
	want := `smb.conf: resource "smb": /etc/samba/filer.conf:7: unknown parameter "bind interface only" (smbd ignores it)
smb.conf: resource "smb": /etc/samba/filer.conf: "netbios name" is not set
`
	if code != exitFailed || out != "" || !strings.HasPrefix(errs, want) || !strings.HasSuffix(errs, "haclient: config check: "+file+": 2 errors\n") {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}

	// testparm that cannot run is an error too.
	smb = &fakeSMB{err: errors.New("smb.conf /etc/samba/filer.conf: run testparm: executable file not found in $PATH")}
	a = newApp(nil, nil)
	a.checkSMB = smb.check
	if code, _, errs = cli(t, a, "config", "check", file); code != exitFailed || !strings.Contains(errs, "run testparm") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestConfigCheckErrors(t *testing.T) {
	dir := t.TempDir()
	bad := strings.ReplaceAll(goodConfig, `mountpoint = "/srv/samba"`, `mountpont = "/srv/samba"`)
	bad = strings.ReplaceAll(bad, "198.18.0.50/24", "10.0.0.300/24")
	file := writeConfig(t, dir, bad)
	smb := &fakeSMB{}
	a := newApp(nil, nil)
	a.checkSMB = smb.check
	code, out, errs := cli(t, a, "config", "check", file)
	if code != exitFailed || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
	var problems []string
	for _, l := range lines {
		if strings.HasPrefix(l, "config: tandem.toml") || strings.HasPrefix(l, "config: "+file) {
			problems = append(problems, l)
		}
	}
	if len(problems) < 2 || !strings.Contains(errs, "mountpont") || !strings.Contains(errs, `"10.0.0.300/24"`) {
		t.Errorf("stderr does not name both problems:\n%s", errs)
	}
	if !strings.HasSuffix(errs, fmt.Sprintf("haclient: config check: %s: %d errors\n", file, len(problems))) {
		t.Errorf("stderr does not end with the count of %d:\n%s", len(problems), errs)
	}
	if len(smb.paths) != 0 {
		t.Errorf("smb.conf checked although the configuration is bad: %q", smb.paths)
	}

	// No file at all; and the default path when none is given.
	missing := filepath.Join(dir, "none.toml")
	a = newApp(nil, nil)
	a.configPath = missing
	if code, _, errs = cli(t, a, "config", "check"); code != exitFailed || !strings.Contains(errs, missing) || !strings.Contains(errs, "no such file") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestConfigCheckTestparm(t *testing.T) {
	if _, err := exec.LookPath("testparm"); err != nil {
		t.Skip("testparm not installed (Debian package samba-common-bin)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "smb.conf")
	smbConf := "[global]\n\tnetbios name = FILER\n\tbind interfaces only = yes\n\tinterfaces = 198.18.0.50/24\n\tbind interface only = yes\n"
	if err := os.WriteFile(conf, []byte(smbConf), 0o644); err != nil {
		t.Fatal(err)
	}
	file := writeConfig(t, dir, strings.ReplaceAll(goodConfig, "SMBCONF", conf))
	code, out, errs := cli(t, nil, "config", "check", file)
	want := fmt.Sprintf(`smb.conf: resource "smb": %s:5: unknown parameter "bind interface only"`, conf)
	if code != exitFailed || !strings.Contains(errs, want) {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant a line starting %q", code, out, errs, want)
	}
}

func TestBashCompletion(t *testing.T) {
	code, script, _ := cli(t, nil, "completion", "bash")
	if code != exitOK || !strings.Contains(script, "complete -F _haclient haclient") {
		t.Fatalf("exit %d:\n%s", code, script)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	for _, tc := range []struct {
		words string
		want  string
	}{
		{"haclient ''", "status standby takeover failover maintenance resources cleanup tickles fence disk config completion help --socket --help"},
		{"haclient tic", "tickles"},
		{"haclient tickles --", "--json --socket"},
		{"haclient disk init /dev/sdb1 --l", "--list-conns"},
		{"haclient disk init --list-conns ''", ""},
		{"haclient mai", "maintenance"},
		{"haclient maintenance ''", "on off --socket"},
		{"haclient --socket /tmp/s.sock st", "status standby"},
		{"haclient status --", "--json --socket"},
		{"haclient fence beta --s", "--self --socket"},
		{"haclient config ''", "check"},
		{"haclient completion ''", "bash"},
	} {
		if got := complete(t, bash, script, tc.words); got != tc.want {
			t.Errorf("%s: have %q, want %q", tc.words, got, tc.want)
		}
	}
}

// complete runs the completion script in bash for the command line words
// (the last one being completed) and returns what it offers.
func complete(t *testing.T, bash, script, words string) string {
	t.Helper()
	prog := script + "\nCOMP_WORDS=(" + words + ")\nCOMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n_haclient\necho \"${COMPREPLY[*]}\"\n"
	out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", words, err, out)
	}
	return strings.TrimSpace(string(out))
}
