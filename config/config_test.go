package config

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// designExample reads testdata/tandem.toml, the example of DESIGN.md, with
// its auth_key_file pointed at key. The path has the same number of lines,
// so line numbers stay those of the file.
func designExample(t testing.TB, key string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/tandem.toml")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(data, []byte(`"/etc/tandem/authkey"`), []byte(strconv.Quote(key)))
}

func TestDesignExample(t *testing.T) {
	key := writeKey(t, 0o600, "0123456789abcdef")
	path := filepath.Join(t.TempDir(), "tandem.toml")
	if err := os.WriteFile(path, designExample(t, key), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File: path,
		Cluster: Cluster{
			Name:          "filer",
			AuthKeyFile:   key,
			Keepalive:     200 * time.Millisecond,
			Warntime:      time.Second,
			Deadtime:      2 * time.Second,
			Initdead:      30 * time.Second,
			PreferredNode: "alpha",
		},
		Nodes: []Node{
			{Name: "alpha", Address: netip.MustParseAddr("198.18.1.1"), Serial: "/dev/ttyS1", Fence: &Fence{
				Agent:  "fence_ipmilan",
				Params: map[string]string{"ip": "198.18.9.1", "username": "admin", "password_file": "/etc/tandem/ipmi-alpha"},
			}},
			{Name: "beta", Address: netip.MustParseAddr("198.18.1.2"), Serial: "/dev/ttyS1", Fence: &Fence{
				Agent:  "fence_ipmilan",
				Params: map[string]string{"ip": "198.18.9.2", "username": "admin", "password_file": "/etc/tandem/ipmi-beta"},
			}},
		},
		Heartbeat: Heartbeat{
			UDP:    UDP{Port: 694, Mode: ModeUnicast},
			Serial: &Serial{Baud: 115200},
			Disk:   &Disk{Device: "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part1", Interval: 200 * time.Millisecond},
		},
		Watchdog: Watchdog{Device: "/dev/watchdog", Timeout: 5 * time.Second},
		Resources: []Resource{
			{
				Name: "data", Type: KindFilesystem,
				MonitorInterval: 2 * time.Second, StartTimeout: 20 * time.Second, StopTimeout: 20 * time.Second, RestartLimit: 3,
				Filesystem: &Filesystem{Device: "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part2", Mountpoint: "/srv/samba", FSType: "ext4"},
			},
			{
				Name: "vip", Type: KindFloatIP,
				MonitorInterval: 2 * time.Second, StartTimeout: 20 * time.Second, StopTimeout: 20 * time.Second, RestartLimit: 3,
				FloatIP: &FloatIP{Address: netip.MustParsePrefix("198.18.0.50/24"), ARPRounds: 3, ARPInterval: time.Second},
			},
			{
				Name: "smb", Type: KindSMB,
				MonitorInterval: 2 * time.Second, StartTimeout: 10 * time.Second, StopTimeout: 10 * time.Second, RestartLimit: 3,
				SMB: &SMB{Config: "/etc/samba/smb.conf", Smbd: "/usr/sbin/smbd", Mode: SMBModeProcess, Address: netip.MustParseAddr("198.18.0.50")},
			},
			{
				Name: "reconnect", Type: KindTickle,
				MonitorInterval: 2 * time.Second, StartTimeout: 20 * time.Second, StopTimeout: 20 * time.Second, RestartLimit: 3,
				Tickle: &Tickle{FloatIP: "vip", Ports: []int{445, 139}, Rounds: 3, Interval: time.Second},
			},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load:\n%s\nwant:\n%s", dump(t, got), dump(t, want))
	}
	if got := got.SambaConfigs(); !reflect.DeepEqual(got, []string{"/etc/samba/smb.conf"}) {
		t.Errorf("SambaConfigs() = %q", got)
	}
	if !got.Fenced() {
		t.Error("Fenced() = false")
	}
	if r := got.Resource("vip"); r == nil || r.FloatIP == nil {
		t.Errorf("Resource(vip) = %+v", r)
	}
	if r := got.Resource("nfs"); r != nil {
		t.Errorf("Resource(nfs) = %+v, want nil", r)
	}
}

func dump(t testing.TB, c *Config) string {
	t.Helper()
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tandem.toml")
	_, err := Load(path)
	if err == nil || err.Error() != "config: open "+path+": no such file or directory" {
		t.Errorf("Load = %v", err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load error %v is not ErrNotExist", err)
	}
	if _, _, err := Check(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Check error %v is not ErrNotExist", err)
	}
}

// everyKind is a configuration with one resource of each kind and nothing
// but required keys, so that every default applies.
const everyKind = `[cluster]
name = "lab"
auth_key_file = "@KEY@"
unsafe_no_fencing = true

[[node]]
name = "a"
address = "198.18.1.1"

[[node]]
name = "b"
address = "198.18.1.2"

[[resource]]
name = "data"
type = "filesystem"
device = "/dev/loop1"
mountpoint = "/srv/data"

[[resource]]
name = "vip"
type = "floatip"
address = "198.18.0.50/24"

[[resource]]
name = "smb"
type = "smb"

[[resource]]
name = "reconnect"
type = "tickle"
floatip = "vip"

[[resource]]
name = "ip2"
type = "ocf"
agent = "heartbeat:IPaddr2"

[[resource]]
name = "nmb"
type = "systemd"
unit = "nmbd.service"
`

func TestDefaults(t *testing.T) {
	key := writeKey(t, 0o600, "k")
	doc := strings.ReplaceAll(everyKind, "@KEY@", key)
	got, err := Parse("tandem.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	common := func(name string, kind Kind) Resource {
		return Resource{Name: name, Type: kind, MonitorInterval: 2 * time.Second, StartTimeout: 20 * time.Second, StopTimeout: 20 * time.Second, RestartLimit: 3}
	}
	data := common("data", KindFilesystem)
	data.Filesystem = &Filesystem{Device: "/dev/loop1", Mountpoint: "/srv/data", FSType: "ext4"}
	vip := common("vip", KindFloatIP)
	vip.FloatIP = &FloatIP{Address: netip.MustParsePrefix("198.18.0.50/24"), ARPRounds: 3, ARPInterval: time.Second}
	smb := common("smb", KindSMB)
	smb.StartTimeout, smb.StopTimeout = 10*time.Second, 10*time.Second
	smb.SMB = &SMB{Config: "/etc/samba/smb.conf", Smbd: "/usr/sbin/smbd", Mode: SMBModeProcess, Address: netip.MustParseAddr("198.18.0.50")}
	tickle := common("reconnect", KindTickle)
	tickle.Tickle = &Tickle{FloatIP: "vip", Ports: []int{445, 139}, Rounds: 3, Interval: time.Second}
	ocf := common("ip2", KindOCF)
	ocf.OCF = &OCF{Agent: "heartbeat:IPaddr2"}
	nmb := common("nmb", KindSystemd)
	nmb.Systemd = &Systemd{Unit: "nmbd.service"}
	want := &Config{
		File: "tandem.toml",
		Cluster: Cluster{
			Name: "lab", AuthKeyFile: key, UnsafeNoFencing: true,
			Keepalive: 200 * time.Millisecond, Warntime: time.Second, Deadtime: 2 * time.Second, Initdead: 30 * time.Second,
		},
		Nodes: []Node{
			{Name: "a", Address: netip.MustParseAddr("198.18.1.1")},
			{Name: "b", Address: netip.MustParseAddr("198.18.1.2")},
		},
		Heartbeat: Heartbeat{UDP: UDP{Port: 694, Mode: ModeUnicast}},
		Watchdog:  Watchdog{Device: "/dev/watchdog", Timeout: 5 * time.Second},
		Resources: []Resource{data, vip, smb, tickle, ocf, nmb},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse:\n%s\nwant:\n%s", dump(t, got), dump(t, want))
	}
}

func TestDefaultAuthKeyFile(t *testing.T) {
	var seen string
	old := statFile
	statFile = func(name string) (os.FileInfo, error) {
		seen = name
		return old(writeKey(t, 0o600, "k"))
	}
	t.Cleanup(func() { statFile = old })
	doc := strings.Replace(strings.ReplaceAll(everyKind, "@KEY@", "x"), "auth_key_file = \"x\"\n", "", 1)
	c, err := Parse("tandem.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.AuthKeyFile != "/etc/tandem/authkey" || seen != "/etc/tandem/authkey" {
		t.Errorf("auth_key_file = %q, checked %q; want /etc/tandem/authkey", c.Cluster.AuthKeyFile, seen)
	}
}

// validDocs are valid configurations beyond the defaults, for round trips.
func validDocs(key string) map[string]string {
	withKey := func(s string) string { return strings.ReplaceAll(s, "@KEY@", key) }
	return map[string]string{
		"every kind": withKey(everyKind),
		"tuned": withKey(`[cluster]
name = "filer"
auth_key_file = "@KEY@"
keepalive = "100ms"
warntime = "300ms"
deadtime = "500ms"
initdead = "500ms"
auto_failback = true
preferred_node = "b"

[[node]]
name = "a"
address = "2001:db8:1::1"
serial = "/dev/ttyS0"
fence = { agent = "/usr/local/sbin/fence_lab", port = 623, "plug" = "x\ty\"z" }

[[node]]
name = "b"
address = "2001:db8:1::2"
serial = "/dev/ttyUSB0"

[heartbeat.udp]
port = 6940
mode = "multicast"
group = "ff02::1:6"
interface = "hb0"

[heartbeat.serial]
baud = 19200

[heartbeat.disk]
device = "/dev/loop0"
interval = "100ms"

[watchdog]
device = "/run/lab/watchdog"
timeout = "1s"

[[resource]]
name = "vip6"
type = "floatip"
address = "2001:db8::50/64"
interface = "pub0"
arp_rounds = 5
arp_interval = "500ms"
monitor_interval = "1s"

[[resource]]
name = "vip4"
type = "floatip"
dhcp = true
client_id = "filer-vip"
interface = "eth0"

[[resource]]
name = "data"
type = "filesystem"
device = "/dev/loop1"
mountpoint = "/srv/data"
fstype = "xfs"
options = "noatime,nodiratime"
fsck = true
restart_limit = 0

[[resource]]
name = "smb"
type = "smb"
mode = "systemd"
units = ["smbd.service", "winbind.service"]
config = "/srv/data/smb.conf"
start_timeout = "30s"

[[resource]]
name = "tickle"
type = "tickle"
floatip = "vip6"
ports = [445]
rounds = 2
interval = "750ms"

[[resource]]
name = "ip2"
type = "ocf"
agent = "heartbeat:IPaddr2"
params = { ip = "198.18.0.51", cidr_netmask = 24, lvs_support = false }
`),
		"broadcast, dhcp first": withKey(`[cluster]
name = "x"
auth_key_file = "@KEY@"
[[node]]
name = "a"
address = "198.18.1.1"
fence = { agent = "fence_lab" }
[[node]]
name = "b"
address = "198.18.1.2"
fence = { agent = "fence_lab", password_file = "/etc/tandem/pw" }
[heartbeat.udp]
mode = "broadcast"
[[resource]]
name = "dyn"
type = "floatip"
dhcp = true
client_id = "x"
interface = "eth0"
[[resource]]
name = "smb"
type = "smb"
`),
	}
}

func TestRoundTrip(t *testing.T) {
	key := writeKey(t, 0o600, "k")
	for name, doc := range validDocs(key) {
		t.Run(name, func(t *testing.T) {
			c, err := Parse("a.toml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			out, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := Parse("a.toml", out)
			if err != nil {
				t.Fatalf("Parse(Marshal): %v\n%s", err, out)
			}
			if !reflect.DeepEqual(c, c2) {
				t.Errorf("round trip changed the config:\n%s\nthen:\n%s", out, dump(t, c2))
			}
			out2, err := Marshal(c2)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, out2) {
				t.Errorf("Marshal is not stable:\n%s\nthen:\n%s", out, out2)
			}
		})
	}
}

func TestParsedValues(t *testing.T) {
	key := writeKey(t, 0o600, "k")
	docs := validDocs(key)
	c, err := Parse("a.toml", []byte(docs["tuned"]))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Nodes[0].Fence.Params; !reflect.DeepEqual(got, map[string]string{"port": "623", "plug": "x\ty\"z"}) {
		t.Errorf("fence params = %q", got)
	}
	if c.Nodes[1].Fence != nil {
		t.Errorf("node b fence = %+v, want nil", c.Nodes[1].Fence)
	}
	if got := c.Resource("ip2").OCF.Params; !reflect.DeepEqual(got, map[string]string{"ip": "198.18.0.51", "cidr_netmask": "24", "lvs_support": "false"}) {
		t.Errorf("ocf params = %q", got)
	}
	smb := c.Resource("smb").SMB
	if smb.Smbd != "" || !reflect.DeepEqual(smb.Units, []string{"smbd.service", "winbind.service"}) {
		t.Errorf("systemd smb = %+v", smb)
	}
	if want := netip.MustParseAddr("2001:db8::50"); smb.Address != want {
		t.Errorf("smb address = %v, want %v from the first floatip", smb.Address, want)
	}
	if r := c.Resource("smb"); r.StartTimeout != 30*time.Second || r.StopTimeout != 10*time.Second {
		t.Errorf("smb timeouts = %v, %v", r.StartTimeout, r.StopTimeout)
	}
	if c.Heartbeat.Serial.Baud != 19200 || c.Heartbeat.UDP.Group != netip.MustParseAddr("ff02::1:6") {
		t.Errorf("heartbeat = %+v %+v", c.Heartbeat.UDP, c.Heartbeat.Serial)
	}

	c, err = Parse("a.toml", []byte(docs["broadcast, dhcp first"]))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Resource("smb").SMB.Address; a.IsValid() {
		t.Errorf("smb address = %v; want none when the first floatip uses DHCP", a)
	}
	if c.Heartbeat.Serial != nil {
		t.Errorf("serial medium on without serial devices: %+v", c.Heartbeat.Serial)
	}
}

func TestCheckWarnings(t *testing.T) {
	key := writeKey(t, 0o600, "k")
	tests := []struct {
		name  string
		doc   string
		wants []string
	}{
		{"none", edit(key, ""), nil},
		{"unsafe", edit(key, "",
			`name = "filer"`, "name = \"filer\"\nunsafe_no_fencing = true",
			"fence = { agent = \"fence_lab\", plug = \"alpha\" }\n", "",
			"fence = { agent = \"fence_lab\", plug = \"beta\" }\n", ""),
			[]string{`config: warning: tandem.toml:3: cluster: unsafe_no_fencing true: no fencing: shared disks are not protected against two active nodes`}},
		{"unsafe but fenced", edit(key, "", `name = "filer"`, "name = \"filer\"\nunsafe_no_fencing = true"),
			[]string{`config: warning: tandem.toml:3: cluster: unsafe_no_fencing true: has no effect: fencing is configured`}},
		{"inline password", edit(key, "", `plug = "beta"`, `plug = "beta", passwd = "hunter2"`),
			[]string{`config: warning: tandem.toml:13: node "beta": fence.passwd: secret written in the configuration; put it in a file readable by root only and name it with passwd_file`}},
		{"failback without preference", edit(key, "", `name = "filer"`, "name = \"filer\"\nauto_failback = true"),
			[]string{`config: warning: tandem.toml:3: cluster: auto_failback true: has no effect without preferred_node, the node to fail back to`}},
		{"no resources", strings.SplitN(edit(key, ""), "[[resource]]", 2)[0],
			[]string{`config: warning: tandem.toml: no [[resource]]: the cluster serves nothing`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tandem.toml")
			if err := os.WriteFile(path, []byte(tt.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			c, warns, err := Check(path)
			if err != nil {
				t.Fatal(err)
			}
			if c == nil {
				t.Fatal("Check returned no Config")
			}
			var got []string
			for _, w := range warns {
				got = append(got, strings.Replace(w.String(), path, "tandem.toml", 1))
			}
			if !reflect.DeepEqual(got, tt.wants) {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wants, "\n"))
			}
		})
	}
}

func TestCheckReturnsErrorsAndWarnings(t *testing.T) {
	key := writeKey(t, 0o600, "k")
	path := filepath.Join(t.TempDir(), "tandem.toml")
	doc := edit(key, "", `name = "filer"`, "name = \"filer\"\nauto_failback = true\nkeepalive = \"5s\"")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, warns, err := Check(path)
	if c != nil || err == nil || len(warns) != 1 {
		t.Fatalf("Check = %v, %v, %v; want no config, an error and a warning", c, warns, err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 1 || e.Path != "cluster: warntime" || e.File != path {
		t.Errorf("error = %#v", e)
	}
}

func TestLocalNodeAndPeer(t *testing.T) {
	key := writeKey(t, 0o600, "k")
	c, err := Parse("tandem.toml", []byte(edit(key, "")))
	if err != nil {
		t.Fatal(err)
	}
	old := hostname
	t.Cleanup(func() { hostname = old })
	tests := []struct {
		host, override string
		want           string
		err            string
	}{
		{host: "alpha", want: "alpha"},
		{host: "beta.example.net", want: "beta"},
		{host: "gamma", override: "beta", want: "beta"},
		{host: "alpha", override: "gamma", err: `config: tandem.toml: no node named "gamma" (--node); the nodes are "alpha", "beta"`},
		{host: "gamma.example.net", err: `config: tandem.toml: no node named like this host "gamma.example.net"; the nodes are "alpha", "beta"; pass --node NAME`},
		{host: "", err: "config: host name: no host name; pass --node NAME"},
	}
	for _, tt := range tests {
		hostname = func() (string, error) {
			if tt.host == "" {
				return "", errors.New("no host name")
			}
			return tt.host, nil
		}
		n, err := c.LocalNode(tt.override)
		switch {
		case tt.err != "":
			if err == nil || err.Error() != tt.err {
				t.Errorf("LocalNode(%q) on %q = %v, %v; want error %s", tt.override, tt.host, n, err, tt.err)
			}
		case err != nil || n.Name != tt.want:
			t.Errorf("LocalNode(%q) on %q = %v, %v; want %s", tt.override, tt.host, n, err, tt.want)
		}
	}
	if p, err := c.Peer("alpha"); err != nil || p.Name != "beta" {
		t.Errorf("Peer(alpha) = %v, %v", p, err)
	}
	if p, err := c.Peer("beta"); err != nil || p.Name != "alpha" {
		t.Errorf("Peer(beta) = %v, %v", p, err)
	}
	if _, err := c.Peer("gamma"); err == nil || err.Error() != `config: tandem.toml: no node named "gamma"; the nodes are "alpha", "beta"` {
		t.Errorf("Peer(gamma) error = %v", err)
	}
}

func TestFenceLogValue(t *testing.T) {
	f := &Fence{Agent: "fence_ipmilan", Params: map[string]string{
		"ip": "198.18.9.1", "password": "hunter2", "password_file": "/etc/tandem/ipmi", "snmp_priv_passwd": "x",
	}}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})).Info("fence", "fence", f)
	got := b.String()
	want := "level=INFO msg=fence fence.agent=fence_ipmilan fence.ip=198.18.9.1 fence.password=(hidden) fence.password_file=/etc/tandem/ipmi fence.snmp_priv_passwd=(hidden)\n"
	if got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}

func TestParameters(t *testing.T) {
	if _, err := Parameters("nfs"); err == nil || err.Error() != `config: unknown resource type "nfs"; want one of filesystem, floatip, smb, tickle, ocf, systemd` {
		t.Errorf("Parameters(nfs) error = %v", err)
	}
	key := writeKey(t, 0o600, "k")
	c, err := Parse("tandem.toml", []byte(strings.ReplaceAll(everyKind, "@KEY@", key)))
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range Kinds() {
		params, err := Parameters(kind)
		if err != nil {
			t.Fatal(err)
		}
		var r *Resource
		for i := range c.Resources {
			if c.Resources[i].Type == kind {
				r = &c.Resources[i]
			}
		}
		// Every parameter is decoded into a field of the resource, and
		// every default is what a resource without the key gets.
		text, err := Marshal(&Config{Resources: []Resource{*r}})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, p := range params {
			if seen[p.Name] {
				t.Errorf("%s: parameter %s listed twice", kind, p.Name)
			}
			seen[p.Name] = true
			if p.Description == "" || p.Type == "" {
				t.Errorf("%s: parameter %s lacks a description or type: %+v", kind, p.Name, p)
			}
			if p.Required && p.Default != "" {
				t.Errorf("%s: parameter %s is required and has a default", kind, p.Name)
			}
			if p.Default == "" || kind == KindSMB && (p.Name == "units" || p.Name == "smbd") {
				continue
			}
			if line := p.Name + " = " + tomlDefault(p); !strings.Contains(string(text), "\n"+line+"\n") {
				t.Errorf("%s: default %s not what the decoder set:\n%s", kind, line, text)
			}
		}
	}
	smb, _ := Parameters(KindSMB)
	want := Parameter{Name: "start_timeout", Type: "duration", Default: "10s", Description: "longest a start may take", Common: true}
	if i := indexParam(smb, "start_timeout"); i < 0 || smb[i] != want {
		t.Errorf("smb start_timeout = %+v, want %+v", smb[i], want)
	}
	tickle, _ := Parameters(KindTickle)
	if i := indexParam(tickle, "ports"); i < 0 || tickle[i].Type != "integer list" || tickle[i].Default != "445,139" {
		t.Errorf("tickle ports = %+v", tickle[i])
	}
	if i := indexParam(tickle, "floatip"); i != 0 || !tickle[i].Required {
		t.Errorf("tickle floatip = %+v at %d, want required and first", tickle[i], i)
	}
}

func indexParam(params []Parameter, name string) int {
	for i, p := range params {
		if p.Name == name {
			return i
		}
	}
	return -1
}

// tomlDefault writes a parameter's default as Marshal writes the value.
func tomlDefault(p Parameter) string {
	switch p.Type {
	case "integer", "boolean":
		return p.Default
	case "integer list":
		return "[" + strings.ReplaceAll(p.Default, ",", ", ") + "]"
	}
	return strconv.Quote(p.Default)
}

func TestMarshalErrors(t *testing.T) {
	if _, err := Marshal(nil); err == nil {
		t.Error("Marshal(nil) succeeded")
	}
	c := &Config{Resources: []Resource{{Name: "x", Type: KindSMB}}}
	if _, err := Marshal(c); err == nil || err.Error() != `config: marshal: resource "x" has no smb part` {
		t.Errorf("Marshal without kind part: %v", err)
	}
	c = &Config{Cluster: Cluster{Name: "\xff"}}
	if _, err := Marshal(c); err == nil {
		t.Error("Marshal of invalid UTF-8 succeeded")
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "t.toml", Line: 3, Path: "cluster: name", Value: `"x y"`, Msg: "bad"}, `config: t.toml:3: cluster: name "x y": bad`},
		{Error{File: "t.toml", Path: "cluster", Msg: "bad"}, `config: t.toml: cluster: bad`},
		{Error{File: "t.toml", Line: 1, Msg: "bad"}, `config: t.toml:1: bad`},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %s, want %s", got, tt.want)
		}
	}
	list := ErrorList{&tests[0].e, &tests[1].e}
	if got := list.Error(); got != tests[0].want+"\n"+tests[1].want {
		t.Errorf("ErrorList.Error() = %s", got)
	}
	var e *Error
	if !errors.As(error(list), &e) || e != &tests[0].e {
		t.Errorf("errors.As found %v", e)
	}
}
