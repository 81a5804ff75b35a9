package fence

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// labMetadata has the shape of fence-agents' metadata: required plug that
// obsoletes the deprecated port, an action with a default, a select, a
// boolean and an integer.
const labMetadata = `<?xml version="1.0" ?>
<resource-agent name="fence_fake" shortdesc="Fence agent for tests" >
<symlink name="fence_fake2" shortdesc="Same agent, other name"/>
<longdesc>fence_fake powers test nodes off.</longdesc>
<parameters>
	<parameter name="action" unique="0" required="1">
		<getopt mixed="-o, --action=[action]" />
		<content type="string" default="reboot"  />
		<shortdesc lang="en">Fencing action</shortdesc>
	</parameter>
	<parameter name="ip" unique="0" required="1" obsoletes="ipaddr">
		<getopt mixed="-a, --ip=[ip]" />
		<content type="string"  />
		<shortdesc lang="en">IP address or hostname of fencing device</shortdesc>
	</parameter>
	<parameter name="ipaddr" unique="0" required="1" deprecated="1">
		<getopt mixed="-a, --ip=[ip]" />
		<content type="string"  />
	</parameter>
	<parameter name="plug" unique="0" required="1" obsoletes="port">
		<getopt mixed="-n, --plug=[id]" />
		<content type="string"  />
	</parameter>
	<parameter name="port" unique="0" required="0" deprecated="1">
		<getopt mixed="-n, --plug=[id]" />
		<content type="string"  />
	</parameter>
	<parameter name="username" unique="0" required="1" obsoletes="login">
		<getopt mixed="-l, --username=[name]" />
		<content type="string"  />
	</parameter>
	<parameter name="login" unique="0" required="1" deprecated="1">
		<getopt mixed="-l, --username=[name]" />
		<content type="string"  />
	</parameter>
	<parameter name="passwd" unique="0" required="0">
		<getopt mixed="-p, --password=[password]" />
		<content type="string"  />
	</parameter>
	<parameter name="method" unique="0" required="1">
		<getopt mixed="-m, --method=[method]" />
		<content type="select" default="onoff"  >
			<option value="onoff" />
			<option value="cycle" />
		</content>
	</parameter>
	<parameter name="lanplus" unique="0" required="0">
		<getopt mixed="-P, --lanplus" />
		<content type="boolean" default="0"  />
	</parameter>
	<parameter name="ipport" unique="0" required="0">
		<getopt mixed="-u, --ipport=[port]" />
		<content type="integer" default="623"  />
	</parameter>
	<parameter name="power_wait" unique="0" required="0">
		<getopt mixed="--power-wait=[seconds]" />
		<content type="second" default="2"  />
	</parameter>
	<parameter name="ssh_options" unique="0" required="0">
		<getopt mixed="--ssh-options=[options]" />
		<content type="string"  />
	</parameter>
</parameters>
<actions>
	<action name="on" automatic="0"/>
	<action name="off" />
	<action name="status" />
	<action name="monitor" />
	<action name="metadata" />
</actions>
</resource-agent>
`

func TestParseMetadata(t *testing.T) {
	m, err := ParseMetadata([]byte(labMetadata))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "fence_fake" || m.ShortDesc != "Fence agent for tests" || len(m.Parameters) != 13 {
		t.Fatalf("metadata %+v", m)
	}
	if got := strings.Join(m.Actions, ","); got != "on,off,status,monitor,metadata" {
		t.Errorf("actions %s", got)
	}
	p, ok := m.Lookup("method")
	if !ok || p.Type != "select" || !p.HasDefault || p.Default != "onoff" || strings.Join(p.Options, ",") != "onoff,cycle" || p.LongOption != "method" || !p.Required {
		t.Errorf("method %+v", p)
	}
	if p, ok := m.Lookup("port"); !ok || !p.Deprecated {
		t.Errorf("port %+v", p)
	}
	if p, ok := m.Lookup("plug"); !ok || p.Obsoletes != "port" {
		t.Errorf("plug %+v", p)
	}
	// By long option, - and _ alike, as fence-agents read stdin.
	for key, want := range map[string]string{"password": "passwd", "power-wait": "power_wait", "ssh-options": "ssh_options"} {
		if p, ok := m.Lookup(key); !ok || p.Name != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", key, p.Name, ok, want)
		}
	}
	if _, ok := m.Lookup("nonesuch"); ok {
		t.Error("found nonesuch")
	}
	if !m.HasAction("off") || m.HasAction("reboot") {
		t.Error("HasAction")
	}
}

func TestParseMetadataErrors(t *testing.T) {
	for name, in := range map[string]string{
		"not xml":       "Usage: fence_x [options]",
		"other root":    `<agent name="x"><parameters><parameter name="a"/></parameters></agent>`,
		"no parameters": `<resource-agent name="fence_x"><parameters/></resource-agent>`,
		"nameless":      `<resource-agent name="fence_x"><parameters><parameter required="1"/></parameters></resource-agent>`,
	} {
		if m, err := ParseMetadata([]byte(in)); err == nil || !strings.HasPrefix(err.Error(), "fence: metadata") {
			t.Errorf("%s: %+v, %v", name, m, err)
		}
	}
}

func TestValidate(t *testing.T) {
	m, err := ParseMetadata([]byte(labMetadata))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		params map[string]string
		want   []string // lines of the error; none for valid
	}{
		{"complete", map[string]string{"ip": "198.18.9.2", "plug": "2", "username": "admin", "password_file": "/etc/tandem/ipmi-beta", "lanplus": "1", "ipport": "6230", "method": "cycle", "power_wait": "0.5"}, nil},
		{"old names and aliases", map[string]string{"ipaddr": "198.18.9.2", "port": "2", "login": "admin", "passwd_file": "/etc/x"}, nil},
		{"long options", map[string]string{"ip": "x", "plug": "1", "username": "u", "power-wait": "3", "ssh-options": "-4"}, nil},
		{"unknown with suggestion", map[string]string{"ip": "x", "plug": "1", "usrname": "admin"}, []string{
			`fence: agent fence_fake: unknown parameter "usrname"; did you mean "username"?`,
			`fence: agent fence_fake: required parameter "username" is missing`,
		}},
		{"unknown without suggestion", map[string]string{"ip": "x", "plug": "1", "username": "u", "colour": "blue"}, []string{
			`fence: agent fence_fake: unknown parameter "colour"`,
		}},
		{"unknown secret file", map[string]string{"ip": "x", "plug": "1", "username": "u", "pasword_file": "/etc/x"}, []string{
			`fence: agent fence_fake: unknown parameter "pasword_file"; did you mean "password_file"?`,
		}},
		{"missing required", map[string]string{"username": "u"}, []string{
			`fence: agent fence_fake: required parameter "ip" is missing`,
			`fence: agent fence_fake: required parameter "plug" is missing`,
		}},
		{"bad values", map[string]string{"ip": "x", "plug": "1", "username": "u", "lanplus": "maybe", "ipport": "x623", "method": "reset", "power_wait": "-1"}, []string{
			`fence: agent fence_fake: parameter ipport: "x623" is not an integer`,
			`fence: agent fence_fake: parameter lanplus: "maybe" is not a boolean (1, 0, yes, no, on, off, true, false)`,
			`fence: agent fence_fake: parameter method: "reset" is not one of onoff, cycle`,
			`fence: agent fence_fake: parameter power_wait: "-1" is not a number of seconds`,
		}},
		{"action", map[string]string{"ip": "x", "plug": "1", "username": "u", "action": "reboot"}, []string{
			`fence: agent fence_fake: parameter "action" is set by each operation, not configurable`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := m.Validate(tc.params)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want:\n%s", strings.Join(tc.want, "\n"))
			}
			if got, want := err.Error(), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestNear(t *testing.T) {
	m, err := ParseMetadata([]byte(labMetadata))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"usrname":  "username",
		"user":     "username",
		"ip_addr":  "ip",
		"lan_plus": "lanplus",
		"metod":    "method",
		"zzz":      "",
	} {
		if got := strings.Join(m.near(key), ","); !strings.HasPrefix(got, want) || (want == "" && got != "") {
			t.Errorf("near(%q) = %q, want %q first", key, got, want)
		}
	}
}

// metadataAgent is a fake agent that answers metadata only on stdin, as a
// minimal agent might, and records its runs.
func TestLoadMetadataFallsBackToStdin(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "md.xml"), []byte(labMetadata), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
dir=$(dirname "$0")
echo "$*" >> "$dir/args"
if [ $# -gt 0 ]; then echo "unknown option $1" >&2; exit 1; fi
grep -q '^action=metadata$' && cat "$dir/md.xml"
`
	path := filepath.Join(dir, "fence_stdin_only")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	a := &Agent{Name: path, Node: "beta", Params: map[string]string{"ip": "x", "plug": "1", "username": "u"}}
	if err := a.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.Metadata == nil || a.Metadata.Name != "fence_fake" {
		t.Fatalf("metadata not kept: %+v", a.Metadata)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	if string(args) != "-o metadata\n\n" {
		t.Errorf("runs with arguments %q, want -o metadata, then none", args)
	}
	a.Params = map[string]string{"ip": "x", "plug": "1"}
	a.Metadata = nil
	if err := a.Check(context.Background()); err == nil || err.Error() != `fence: agent fence_fake: required parameter "username" is missing` {
		t.Errorf("check: %v", err)
	}
	if a.Metadata != nil {
		t.Error("a failed check kept the metadata")
	}
}

func TestLoadMetadataFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fence_broken")
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho 'Traceback: no module named fencing' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := &Agent{Name: path, Timeout: 5 * time.Second}
	_, err := a.LoadMetadata(context.Background())
	want := "fence: agent " + path + ": metadata: exit 1: Traceback: no module named fencing"
	if err == nil || err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}
}

// TestIPMILanMetadata checks the real fence_ipmilan of Debian's
// fence-agents: its metadata parses, tandem's documented configuration
// passes, and mistakes are named.
func TestIPMILanMetadata(t *testing.T) {
	if _, err := os.Stat(filepath.Join(AgentDir, "fence_ipmilan")); err != nil {
		t.Skip("fence_ipmilan is not installed (Debian package fence-agents): ", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := &Agent{
		Name: "fence_ipmilan",
		Node: "beta",
		Params: map[string]string{
			"ip":            "198.18.9.2",
			"username":      "admin",
			"password_file": filepath.Join(t.TempDir(), "ipmi-beta"),
			"lanplus":       "1",
		},
	}
	if err := os.WriteFile(a.Params["password_file"], []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(ctx); err != nil {
		t.Fatal(err)
	}
	m := a.Metadata
	if m.Name != "fence_ipmilan" || !m.HasAction("off") || !m.HasAction("status") || !m.HasAction("monitor") {
		t.Errorf("metadata %s, actions %v", m.Name, m.Actions)
	}
	if p, ok := m.Lookup("password"); !ok || p.Type != "string" {
		t.Errorf("password parameter: %+v, %v", p, ok)
	}
	if p, ok := m.Lookup("method"); !ok || p.Type != "select" || !p.HasDefault {
		t.Errorf("method parameter: %+v", p)
	}
	// The _file parameters fence_ipmilan knows itself stay paths.
	if _, ok := m.Lookup("debug_file"); !ok {
		t.Error("no debug_file parameter")
	}
	err := m.Validate(map[string]string{"ip": "x", "usrname": "admin", "method": "reset", "ipport": "six"})
	if err == nil {
		t.Fatal("mistakes passed")
	}
	for _, want := range []string{
		`fence: agent fence_ipmilan: unknown parameter "usrname"; did you mean "username"?`,
		`fence: agent fence_ipmilan: parameter method: "reset" is not one of onoff, cycle`,
		`fence: agent fence_ipmilan: parameter ipport: "six" is not an integer`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// Old names, as older configurations have them, still pass.
	if err := m.Validate(map[string]string{"ipaddr": "x", "login": "admin", "passwd_file": "/etc/x", "port": "1"}); err != nil {
		t.Errorf("old names: %v", err)
	}
}

// TestIPMILanRun runs the real fence_ipmilan against an address nobody
// answers: it must read our stdin, fail, and have its complaint reach the
// error without the password.
func TestIPMILanRun(t *testing.T) {
	if _, err := os.Stat(filepath.Join(AgentDir, "fence_ipmilan")); err != nil {
		t.Skip("fence_ipmilan is not installed (Debian package fence-agents): ", err)
	}
	pw := filepath.Join(t.TempDir(), "ipmi-beta")
	if err := os.WriteFile(pw, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &Agent{
		Name:    "fence_ipmilan",
		Node:    "beta",
		Params:  map[string]string{"ip": "127.0.0.1", "ipport": "9", "username": "admin", "password_file": pw, "lanplus": "1", "ipmitool_timeout": "1", "verbose": "1"},
		Timeout: 30 * time.Second,
		Retry:   Retry{Attempts: 1},
	}
	res, err := a.Status(context.Background())
	if err == nil {
		t.Fatalf("status of a device nobody runs succeeded: %+v", res)
	}
	msg := err.Error()
	t.Log(msg)
	if !strings.HasPrefix(msg, "fence: agent fence_ipmilan: status for beta: exit 1: ") {
		t.Errorf("error %q", msg)
	}
	if strings.Contains(msg, secret) {
		t.Errorf("error shows the password: %q", msg)
	}
	if strings.Contains(msg, "Ignoring unknown option") {
		t.Errorf("the agent did not take a parameter: %q", msg)
	}
}
