package smbservice

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseConf(t *testing.T) {
	c := parseConf([]byte(strings.Join([]string{
		"# comment",                     // 1
		"[global]",                      // 2
		"  Bind Interfaces  Only = yes", // 3
		"  interfaces = 198.18.0.1 \\",  // 4
		"    198.18.0.2",                // 5
		"  lock dir = /run/samba",       // 6
		"  netbios name yes",            // 7
		"[share",                        // 8
		"; another comment",             // 9
		"[data]",                        // 10
		"  path = /srv/samba",           // 11
		"  workgroup = X",               // 12
	}, "\n")))
	for _, tt := range []struct {
		name, value string
		want        int
	}{
		{"bind interfaces only", "", 3},
		{"BIND INTERFACES ONLY", "YES", 3},
		{"interfaces", "198.18.0.1 198.18.0.2", 4},
		{"lock directory", "", 6},
		{"path", "", 11},
		{"path", "/elsewhere", 0},
		{"netbios name", "", 0},
	} {
		if got := c.lineOf(tt.name, tt.value); got != tt.want {
			t.Errorf("lineOf(%q, %q) = %d, want %d", tt.name, tt.value, got, tt.want)
		}
	}
	if got := c.lineInShare("workgroup"); got != 12 {
		t.Errorf("lineInShare(workgroup) = %d, want 12", got)
	}
	if len(c.syntax) != 2 || c.syntax[0].Line != 7 || c.syntax[1].Line != 8 ||
		!strings.Contains(c.syntax[0].Text, "neither a section header nor") ||
		!strings.Contains(c.syntax[1].Text, "lacks its closing") {
		t.Errorf("syntax problems %+v, want lines 7 and 8", c.syntax)
	}
}

// TestTestparmStderr reads stderr as testparm 4.17 wrote it for a file with
// an unknown parameter and a bad boolean (captured on Debian 12).
func TestTestparmStderr(t *testing.T) {
	conf := "[global]\n  netbios name = TESTNODE\n  bogus option = 1\n[share]\n  path = /srv\n  read only = perhaps\n  workgroup = X\n"
	stderr := `Load smb config files from bad.conf
Unknown parameter encountered: "bogus option"
Ignoring unknown parameter "bogus option"
set_variable_helper(perhaps): value is not boolean!
WARNING: Ignoring invalid value 'frob' for parameter 'server role'
Global parameter workgroup found in service section!
ERROR: state directory /shared/state does not exist
WARNING: lock directory /run/x does not exist
Something new in a later Samba
Error loading services.
`
	r := report{path: "bad.conf", file: parseConf([]byte(conf))}
	refused := r.testparm([]byte(stderr), "")
	if !refused {
		t.Error("refusal not noticed")
	}
	want := []Problem{
		{3, `unknown parameter "bogus option" (smbd ignores it)`},
		{6, `parameter "read only": value "perhaps" is not boolean`},
		{0, `parameter "server role": invalid value "frob"`},
		{0, `testparm: state directory /shared/state does not exist`},
	}
	if len(r.problems) != len(want) {
		t.Fatalf("problems %+v, want %+v", r.problems, want)
	}
	for i := range want {
		if r.problems[i] != want[i] {
			t.Errorf("problem %d: %+v, want %+v", i, r.problems[i], want[i])
		}
	}
	wantWarn := []string{
		`bad.conf:7: global parameter "workgroup" in a share section has no effect there`,
		`bad.conf: testparm: lock directory /run/x does not exist`,
		`bad.conf: testparm: Something new in a later Samba`,
	}
	if strings.Join(r.warnings, "\n") != strings.Join(wantWarn, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(r.warnings, "\n"), strings.Join(wantWarn, "\n"))
	}

	// With the shared mount point known, a missing state directory on it
	// is expected on the node that does not hold the disk.
	r = report{path: "bad.conf", file: parseConf([]byte(conf))}
	r.testparm([]byte("ERROR: state directory /shared/state does not exist\n"), "/shared")
	if len(r.problems) != 0 || !r.excused || len(r.warnings) != 1 || !strings.Contains(r.warnings[0], "not mounted here") {
		t.Errorf("problems %+v, warnings %q; want one warning", r.problems, r.warnings)
	}
}

func TestConfigErrorMessage(t *testing.T) {
	one := &ConfigError{Path: "/etc/samba/smb.conf", Problems: []Problem{{3, "unknown parameter \"x\""}}}
	if got, want := one.Error(), `smb.conf /etc/samba/smb.conf: /etc/samba/smb.conf:3: unknown parameter "x"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	two := &ConfigError{Path: "s.conf", Problems: []Problem{{3, "a"}, {0, "b"}}}
	if got, want := two.Error(), "smb.conf s.conf: 2 problems:\n  s.conf:3: a\n  s.conf: b"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestIfaceAddrAndUnder(t *testing.T) {
	for in, want := range map[string]string{
		"198.18.0.50":                 "198.18.0.50",
		"198.18.0.50/24":              "198.18.0.50",
		"198.18.0.50/255.255.255.0":   "198.18.0.50",
		"198.18.0.50;speed=100000000": "198.18.0.50",
		"2001:db8::50/64":             "2001:db8::50",
		"eth0":                        "invalid IP",
	} {
		if got := ifaceAddr(in).String(); got != want {
			t.Errorf("ifaceAddr(%q) = %s, want %s", in, got, want)
		}
	}
	for _, tt := range []struct {
		path, dir string
		want      bool
	}{
		{"/srv/samba/state", "/srv/samba", true},
		{"/srv/samba", "/srv/samba/", true},
		{"/srv/sambax", "/srv/samba", false},
		{"/srv", "/srv/samba", false},
		{"/srv/samba/../x", "/srv/samba", false},
	} {
		if got := under(tt.path, tt.dir); got != tt.want {
			t.Errorf("under(%q, %q) = %v", tt.path, tt.dir, got)
		}
	}
}

// confDirs makes the directories of a test smb.conf and returns the
// [global] lines that name them.
func confDirs(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	for _, d := range []struct{ param, dir string }{
		{"lock directory", "lock"}, {"state directory", "state"}, {"cache directory", "cache"},
		{"pid directory", "pid"}, {"private dir", "private"}, {"ncalrpc dir", "ncalrpc"},
	} {
		p := filepath.Join(root, d.dir)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, "  "+d.param+" = "+p)
	}
	return strings.Join(lines, "\n") + "\n"
}

func needTestparm(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("testparm"); err != nil {
		t.Skip("testparm not installed (Debian package samba-common-bin): ", err)
	}
}

func writeConf(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "smb.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckWithTestparm runs the real testparm on good and bad files and
// checks what Check makes of its output.
func TestCheckWithTestparm(t *testing.T) {
	needTestparm(t)
	root := t.TempDir()
	dirs := confDirs(t, root)
	good := "[global]\n  netbios name = TDLTEST\n  interfaces = 198.18.0.1\n  bind interfaces only = yes\n  disable netbios = yes\n" + dirs +
		"[data]\n  path = " + root + "\n"
	addr := netip.MustParseAddr("198.18.0.1")
	ctx := context.Background()

	type want struct {
		problems []string // each a substring of one problem, "line:text"
		warnings []string
	}
	for _, tt := range []struct {
		name    string
		conf    string
		checker Checker
		want    want
	}{
		{"good", good, Checker{Address: addr}, want{}},
		{"unknown parameters", strings.Replace(good, "  disable netbios = yes\n", "  disable netbios = yes\n  bogus option = 1\n", 1) + "  frobnicate = yes\n",
			Checker{Address: addr}, want{problems: []string{`6:unknown parameter "bogus option"`, `unknown parameter "frobnicate"`}}},
		{"bad boolean", good + "  read only = perhaps\n", Checker{Address: addr},
			want{problems: []string{`parameter "read only": value "perhaps" is not boolean`}}},
		{"invalid value", strings.Replace(good, "[data]", "  server role = frob\n[data]", 1), Checker{Address: addr},
			want{problems: []string{`parameter "server role": invalid value "frob"`}}},
		{"unterminated section", strings.Replace(good, "[data]", "[data", 1), Checker{Address: addr},
			want{problems: []string{`section header "[data" lacks its closing "]"`}}},
		{"testparm ERROR", strings.Replace(good, "[data]", "  unix password sync = yes\n  passwd program = /bin/false\n[data]", 1), Checker{Address: addr},
			want{problems: []string{`the 'passwd program' (/bin/false) requires a '%u' parameter`}}},
		{"global parameter in share", good + "  workgroup = X\n", Checker{Address: addr},
			want{warnings: []string{`global parameter "workgroup" in a share section`}}},
		{"pair rules", strings.NewReplacer(
			"  bind interfaces only = yes\n", "",
			"interfaces = 198.18.0.1", "interfaces = 198.18.0.1 eth0",
			filepath.Join(root, "pid"), filepath.Join(root, "state"),
			"  netbios name = TDLTEST\n", "",
		).Replace(good), Checker{Address: addr},
			want{
				problems: []string{
					`"bind interfaces only" is "No"`,
					`multichannel is on and "interfaces" lists eth0`,
					`"state directory" and "pid directory" are both`,
				},
				warnings: []string{`"netbios name" is not set`},
			}},
		{"floating address missing", good, Checker{Address: netip.MustParseAddr("198.18.0.9")},
			want{problems: []string{`"interfaces" = "198.18.0.1" does not list the floating address 198.18.0.9`}}},
		{"shared disk", good, Checker{Address: addr, SharedDir: filepath.Join(root, "lock")},
			want{
				problems: []string{`"lock directory" ` + filepath.Join(root, "lock") + ` is on the shared disk`},
				warnings: []string{`"state directory" ` + filepath.Join(root, "state") + ` is not under the shared mount point`, `"private dir"`},
			}},
		{"shared disk not mounted", strings.NewReplacer(
			"state directory = "+filepath.Join(root, "state"), "state directory = /nonexistent-shared/state",
			"private dir = "+filepath.Join(root, "private"), "private dir = /nonexistent-shared/private",
		).Replace(good), Checker{Address: addr, SharedDir: "/nonexistent-shared"},
			want{warnings: []string{"state directory /nonexistent-shared/state does not exist (on the shared disk, not mounted here?)"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConf(t, tt.conf)
			warnings, err := tt.checker.Check(ctx, path)
			var ce *ConfigError
			if err != nil && !errors.As(err, &ce) {
				t.Fatalf("Check: %v", err)
			}
			var got []string
			if ce != nil {
				for _, p := range ce.Problems {
					got = append(got, fmt.Sprintf("%d:%s", p.Line, p.Text))
				}
			}
			if len(got) != len(tt.want.problems) {
				t.Errorf("problems:\n  %s\nwant %d:\n  %s", strings.Join(got, "\n  "), len(tt.want.problems), strings.Join(tt.want.problems, "\n  "))
			}
			for _, w := range tt.want.problems {
				if !containsOne(got, w) {
					t.Errorf("no problem contains %q; problems:\n  %s", w, strings.Join(got, "\n  "))
				}
			}
			for _, w := range tt.want.warnings {
				if !containsOne(warnings, w) {
					t.Errorf("no warning contains %q; warnings:\n  %s", w, strings.Join(warnings, "\n  "))
				}
			}
			if len(tt.want.warnings) == 0 && len(warnings) > 0 {
				t.Errorf("unexpected warnings:\n  %s", strings.Join(warnings, "\n  "))
			}
			if ce != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func containsOne(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestCheckConfig(t *testing.T) {
	needTestparm(t)
	if _, err := CheckConfig(context.Background(), "/nonexistent/smb.conf"); err == nil || !strings.Contains(err.Error(), "/nonexistent/smb.conf") {
		t.Errorf("missing file: %v", err)
	}
	path := writeConf(t, "[global]\n  netbios name = TDLTEST\n  interfaces = 198.18.0.1\n  bind interfaces only = yes\n  bogus = 1\n")
	_, err := CheckConfig(context.Background(), path)
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Line != 5 {
		t.Errorf("CheckConfig: %v; want one problem at line 5", err)
	}
	c := Checker{Testparm: "/nonexistent/testparm"}
	if _, err := c.Check(context.Background(), path); err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), "/nonexistent/testparm") {
		t.Errorf("missing testparm: %v; want an error naming it, not a ConfigError", err)
	}
}
