package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeKey creates a shared key file with the given mode and content in a
// temporary directory and returns its path.
func writeKey(t testing.TB, mode os.FileMode, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "authkey")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// base is a valid configuration; error cases edit it. Its line numbers are
// part of the expected messages.
const base = `[cluster]
name = "filer"
auth_key_file = "@KEY@"

[[node]]
name = "alpha"
address = "198.18.1.1"
fence = { agent = "fence_lab", plug = "alpha" }

[[node]]
name = "beta"
address = "198.18.1.2"
fence = { agent = "fence_lab", plug = "beta" }

[[resource]]
name = "data"
type = "filesystem"
device = "/dev/loop1"
mountpoint = "/srv/samba"

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
`

// edit returns base with the key path filled in, each pair of edits applied
// once (old text, new text) and more appended at line 34.
func edit(key string, more string, edits ...string) string {
	doc := strings.ReplaceAll(base, "@KEY@", key)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(doc, edits[i]) {
			panic("edit: no " + edits[i])
		}
		doc = strings.Replace(doc, edits[i], edits[i+1], 1)
	}
	return doc + more
}

func TestBaseIsValid(t *testing.T) {
	key := writeKey(t, 0o600, "k")
	if _, err := Parse("tandem.toml", []byte(edit(key, ""))); err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	key := writeKey(t, 0o600, "secret")
	dir := t.TempDir()
	openKey := writeKey(t, 0o644, "secret")
	emptyKey := writeKey(t, 0o600, "")
	missing := filepath.Join(dir, "nokey")

	tests := []struct {
		name  string
		doc   string
		wants []string
	}{
		// Syntax, as the TOML parser reports it.
		{"syntax", edit(key, "", `name = "filer"`, `name = "filer`),
			[]string{`config: tandem.toml:2: strings cannot contain newlines`}},
		{"duplicate key", edit(key, "", `name = "filer"`, "name = \"filer\"\nname = \"x\""),
			[]string{`config: tandem.toml:3: Key 'cluster.name' has already been defined.`}},

		// Unknown keys.
		{"unknown section", edit(key, "[clustr]\nname = \"x\"\n"),
			[]string{`config: tandem.toml:34: clustr: unknown key`}},
		{"unknown cluster key", edit(key, "", `name = "filer"`, "name = \"filer\"\ndedtime = \"2s\""),
			[]string{`config: tandem.toml:3: cluster: dedtime: unknown key`}},
		{"unknown node key", edit(key, "", `address = "198.18.1.2"`, "address = \"198.18.1.2\"\nfencing = true"),
			[]string{`config: tandem.toml:13: node "beta": fencing: unknown key`}},
		{"unknown key in heartbeat", edit(key, "[heartbeat.udp]\nprot = 694\n"),
			[]string{`config: tandem.toml:35: heartbeat.udp: prot: unknown key`}},
		{"unknown medium", edit(key, "[heartbeat.usb]\n"),
			[]string{`config: tandem.toml:34: heartbeat: usb: unknown key`}},
		{"key of another kind", edit(key, "", `address = "198.18.0.50/24"`, "address = \"198.18.0.50/24\"\nmountpoint = \"/srv\""),
			[]string{`config: tandem.toml:25: resource "vip": mountpoint: unknown key for type floatip (a key of filesystem)`}},
		{"key of no kind", edit(key, "", `floatip = "vip"`, "floatip = \"vip\"\nport = 445"),
			[]string{`config: tandem.toml:34: resource "reconnect": port: unknown key`}},

		// Wrong types.
		{"duration as integer", edit(key, "", `name = "filer"`, "name = \"filer\"\nkeepalive = 200"),
			[]string{`config: tandem.toml:3: cluster: keepalive: want a duration like "200ms", have integer 200`}},
		{"port as string", edit(key, "[heartbeat.udp]\nport = \"694\"\n"),
			[]string{`config: tandem.toml:35: heartbeat.udp: port: want an integer, have string "694"`}},
		{"bool as string", edit(key, "", `name = "filer"`, "name = \"filer\"\nauto_failback = \"yes\""),
			[]string{`config: tandem.toml:3: cluster: auto_failback: want true or false, have string "yes"`}},
		{"list as string", edit(key, "", `floatip = "vip"`, "floatip = \"vip\"\nports = \"445\""),
			[]string{`config: tandem.toml:34: resource "reconnect": ports: want a list of integers, have string "445"`}},
		{"list element", edit(key, "", `floatip = "vip"`, "floatip = \"vip\"\nports = [445,\n  \"139\"]"),
			[]string{`config: tandem.toml:35: resource "reconnect": ports[1]: want an integer, have string "139"`}},
		{"table as value", edit(key, "[heartbeat]\nudp = 5\n"),
			[]string{`config: tandem.toml:35: heartbeat.udp: want a table, have integer 5`}},
		{"name as integer", edit(key, "", `name = "vip"`, `name = 7`),
			[]string{`config: tandem.toml:22: resource #2: name: want a string, have integer 7`}},
		{"fence not a table", edit(key, "", `fence = { agent = "fence_lab", plug = "beta" }`, `fence = "fence_lab"`),
			[]string{`config: tandem.toml:13: node "beta": fence: want a table like { agent = "fence_ipmilan", ... }, have string "fence_lab"`}},
		{"fence flag", edit(key, "", `plug = "beta"`, `plug = "beta", lanplus = true`),
			[]string{`config: tandem.toml:13: node "beta": fence.lanplus: want a string or an integer (fence agents take text; write "1" for a flag), have boolean true`}},
		{"ocf param", edit(key, "[[resource]]\nname = \"ip2\"\ntype = \"ocf\"\nagent = \"heartbeat:IPaddr2\"\nparams = { ip = \"198.18.0.51\", nic = [\"eth0\"] }\n"),
			[]string{`config: tandem.toml:38: resource "ip2": params.nic: want a string, an integer or a boolean, have array`}},

		// Durations.
		{"bad duration", edit(key, "", `name = "filer"`, "name = \"filer\"\ndeadtime = \"2x\""),
			[]string{`config: tandem.toml:3: cluster: deadtime "2x": bad duration; want a number and a unit, like "200ms"`}},
		{"zero duration", edit(key, "", `floatip = "vip"`, "floatip = \"vip\"\nmonitor_interval = \"0s\""),
			[]string{`config: tandem.toml:34: resource "reconnect": monitor_interval "0s": must be longer than zero`}},
		{"negative duration", edit(key, "[heartbeat.disk]\ndevice = \"/dev/loop0\"\ninterval = \"-1s\"\n"),
			[]string{`config: tandem.toml:36: heartbeat.disk: interval "-1s": must be longer than zero`}},
		{"negative fence delay", edit(key, "", `name = "filer"`, "name = \"filer\"\nfence_delay = \"-2s\""),
			[]string{`config: tandem.toml:3: cluster: fence_delay "-2s": must be longer than zero`}},
		{"short lease", edit(key, "[heartbeat.disk]\ndevice = \"/dev/loop0\"\ninterval = \"200ms\"\nlease = \"300ms\"\n"),
			[]string{`config: tandem.toml:37: heartbeat.disk: lease "300ms": must be at least two intervals ("400ms"): one late write must not cost the service`}},

		// Addresses.
		{"bad floating IP", edit(key, "", `"198.18.0.50/24"`, `"10.0.0.300/24"`),
			[]string{`config: tandem.toml:24: resource "vip": address "10.0.0.300/24": bad IP`}},
		{"no prefix length", edit(key, "", `"198.18.0.50/24"`, `"198.18.0.50"`),
			[]string{`config: tandem.toml:24: resource "vip": address "198.18.0.50": missing prefix length, as in "198.18.0.50/24"`}},
		{"bad prefix length", edit(key, "", `"198.18.0.50/24"`, `"198.18.0.50/33"`),
			[]string{`config: tandem.toml:24: resource "vip": address "198.18.0.50/33": bad prefix length`}},
		{"network address", edit(key, "", `"198.18.0.50/24"`, `"198.18.0.0/24"`),
			[]string{`config: tandem.toml:24: resource "vip": address "198.18.0.0/24": the subnet's network address, not a host address`}},
		{"broadcast address", edit(key, "", `"198.18.0.50/24"`, `"198.18.0.255/24"`),
			[]string{`config: tandem.toml:24: resource "vip": address "198.18.0.255/24": the subnet's broadcast address, not a host address`}},
		{"bad node address", edit(key, "", `"198.18.1.2"`, `"198.18.1.256"`),
			[]string{`config: tandem.toml:12: node "beta": address "198.18.1.256": bad IP`}},
		{"unspecified node address", edit(key, "", `"198.18.1.2"`, `"0.0.0.0"`),
			[]string{`config: tandem.toml:12: node "beta": address "0.0.0.0": not a unicast address`}},
		{"duplicate node address", edit(key, "", `"198.18.1.2"`, `"198.18.1.1"`),
			[]string{`config: tandem.toml:12: node "beta": address "198.18.1.1": already the address of node "alpha"`}},
		{"mixed families", edit(key, "", `"198.18.1.2"`, `"2001:db8::2"`),
			[]string{`config: tandem.toml:12: node "beta": address "2001:db8::2": not of the same IP family as node "alpha"'s "198.18.1.1"`}},
		{"duplicate floating IP", edit(key, "[[resource]]\nname = \"vip2\"\ntype = \"floatip\"\naddress = \"198.18.0.50/16\"\n"),
			[]string{`config: tandem.toml:37: resource "vip2": address "198.18.0.50/16": already the address of resource "vip"`}},

		// Heartbeat media.
		{"port range", edit(key, "[heartbeat.udp]\nport = 70000\n"),
			[]string{`config: tandem.toml:35: heartbeat.udp: port 70000: out of range 1-65535`}},
		{"bad mode", edit(key, "[heartbeat.udp]\nmode = \"anycast\"\n"),
			[]string{`config: tandem.toml:35: heartbeat.udp: mode "anycast": want unicast, multicast or broadcast`}},
		{"multicast without group", edit(key, "[heartbeat.udp]\nmode = \"multicast\"\n"),
			[]string{`config: tandem.toml:35: heartbeat.udp: mode "multicast": needs group, the multicast group to send to`}},
		{"group not multicast", edit(key, "[heartbeat.udp]\nmode = \"multicast\"\ngroup = \"198.18.1.9\"\n"),
			[]string{`config: tandem.toml:36: heartbeat.udp: group "198.18.1.9": not a multicast address`}},
		{"group of other family", edit(key, "[heartbeat.udp]\nmode = \"multicast\"\ngroup = \"ff02::1:2\"\n"),
			[]string{`config: tandem.toml:36: heartbeat.udp: group "ff02::1:2": not IPv4 like the node addresses`}},
		{"group in unicast", edit(key, "[heartbeat.udp]\ngroup = \"239.0.0.1\"\n"),
			[]string{`config: tandem.toml:35: heartbeat.udp: group "239.0.0.1": only used in multicast mode`}},
		{"bad interface", edit(key, "[heartbeat.udp]\ninterface = \"a/b\"\n"),
			[]string{`config: tandem.toml:35: heartbeat.udp: interface "a/b": not an interface name`}},
		{"serial on one node", edit(key, "", `address = "198.18.1.1"`, "address = \"198.18.1.1\"\nserial = \"/dev/ttyS1\""),
			[]string{`config: tandem.toml:11: node "beta": missing serial: the serial medium needs both ends of the cable`}},
		{"serial section without cable", edit(key, "[heartbeat.serial]\nbaud = 9600\n"),
			[]string{`config: tandem.toml:34: heartbeat.serial: no node has serial, the device of its end of the cable`}},
		{"bad baud", edit(key, "[heartbeat.serial]\nbaud = 100000\n",
			`address = "198.18.1.1"`, "address = \"198.18.1.1\"\nserial = \"/dev/ttyS1\"",
			`address = "198.18.1.2"`, "address = \"198.18.1.2\"\nserial = \"/dev/ttyS1\""),
			[]string{`config: tandem.toml:37: heartbeat.serial: baud 100000: not a standard rate (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)`}},
		{"relative serial", edit(key, "", `address = "198.18.1.1"`, "address = \"198.18.1.1\"\nserial = \"ttyS1\"",
			`address = "198.18.1.2"`, "address = \"198.18.1.2\"\nserial = \"/dev/ttyS1\""),
			[]string{`config: tandem.toml:8: node "alpha": serial "ttyS1": want an absolute path`}},
		{"disk without device", edit(key, "[heartbeat.disk]\ninterval = \"100ms\"\n"),
			[]string{`config: tandem.toml:34: heartbeat.disk: missing required key "device"`}},
		{"disk interval too long", edit(key, "[heartbeat.disk]\ndevice = \"/dev/loop0\"\ninterval = \"2s\"\n"),
			[]string{`config: tandem.toml:36: heartbeat.disk: interval "2s": must be shorter than cluster.deadtime "2s"`}},
		{"watchdog fraction", edit(key, "[watchdog]\ntimeout = \"1500ms\"\n"),
			[]string{`config: tandem.toml:35: watchdog: timeout "1.5s": want whole seconds: the watchdog counts in seconds`}},
		{"watchdog relative", edit(key, "[watchdog]\ndevice = \"watchdog\"\n"),
			[]string{`config: tandem.toml:35: watchdog: device "watchdog": want an absolute path`}},

		// Cluster.
		{"missing cluster", strings.Replace(edit(key, ""), "[cluster]\nname = \"filer\"\nauth_key_file = \""+key+"\"\n", "", 1),
			[]string{`config: tandem.toml: missing [cluster]`}},
		{"missing name", edit(key, "", "name = \"filer\"\n", ""),
			[]string{`config: tandem.toml:1: cluster: missing required key "name"`}},
		{"bad cluster name", edit(key, "", `name = "filer"`, `name = "my filer"`),
			[]string{`config: tandem.toml:2: cluster: name "my filer": want letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64`}},
		{"warntime", edit(key, "", `name = "filer"`, "name = \"filer\"\nkeepalive = \"1s\""),
			[]string{`config: tandem.toml:1: cluster: warntime "1s": must be longer than keepalive "1s"`}},
		{"deadtime", edit(key, "", `name = "filer"`, "name = \"filer\"\ndeadtime = \"500ms\""),
			[]string{`config: tandem.toml:3: cluster: deadtime "500ms": must be longer than warntime "1s"`}},
		{"initdead", edit(key, "", `name = "filer"`, "name = \"filer\"\ninitdead = \"1s\""),
			[]string{`config: tandem.toml:3: cluster: initdead "1s": must be at least deadtime "2s"`}},
		{"preferred node", edit(key, "", `name = "filer"`, "name = \"filer\"\npreferred_node = \"gamma\""),
			[]string{`config: tandem.toml:3: cluster: preferred_node "gamma": no such node; the nodes are "alpha", "beta"`}},

		// The shared key file.
		{"key missing", edit(missing, ""),
			[]string{`config: tandem.toml:3: cluster: auth_key_file "` + missing + `": no such file or directory`}},
		{"key readable by others", edit(openKey, ""),
			[]string{`config: tandem.toml:3: cluster: auth_key_file "` + openKey + `": mode 0644, want 0600: the key must be readable by its owner only`}},
		{"key empty", edit(emptyKey, ""),
			[]string{`config: tandem.toml:3: cluster: auth_key_file "` + emptyKey + `": empty`}},
		{"key is a directory", edit(dir, ""),
			[]string{`config: tandem.toml:3: cluster: auth_key_file "` + dir + `": not a regular file (d---------)`}},
		{"key relative", edit("authkey", ""),
			[]string{`config: tandem.toml:3: cluster: auth_key_file "authkey": want an absolute path`}},

		// Nodes.
		{"one node", edit(key, "", "[[node]]\nname = \"beta\"\naddress = \"198.18.1.2\"\nfence = { agent = \"fence_lab\", plug = \"beta\" }\n", ""),
			[]string{`config: tandem.toml:5: tandem runs a pair: want exactly two [[node]] entries, have 1`}},
		{"three nodes", edit(key, "[[node]]\nname = \"gamma\"\naddress = \"198.18.1.3\"\nfence = { agent = \"fence_lab\" }\n"),
			[]string{`config: tandem.toml:34: tandem runs a pair: want exactly two [[node]] entries, have 3`}},
		{"no nodes", edit(key, "", "[[node]]\nname = \"alpha\"\naddress = \"198.18.1.1\"\nfence = { agent = \"fence_lab\", plug = \"alpha\" }\n\n[[node]]\nname = \"beta\"\naddress = \"198.18.1.2\"\nfence = { agent = \"fence_lab\", plug = \"beta\" }\n", ""),
			[]string{`config: tandem.toml: missing [[node]]`}},
		{"duplicate node name", edit(key, "", `name = "beta"`, `name = "alpha"`),
			[]string{`config: tandem.toml:11: node "alpha": name "alpha": already the name of the node on line 5`}},
		{"node without address", edit(key, "", "address = \"198.18.1.2\"\n", ""),
			[]string{`config: tandem.toml:10: node "beta": missing required key "address"`}},

		// Fencing.
		{"no fencing", edit(key, "",
			"fence = { agent = \"fence_lab\", plug = \"alpha\" }\n", "",
			"fence = { agent = \"fence_lab\", plug = \"beta\" }\n", ""),
			[]string{`config: tandem.toml:1: cluster: no fencing: no node has fence and there is no [heartbeat.disk]; configure one, or set unsafe_no_fencing = true in a lab`}},
		{"one node unfenced", edit(key, "", "fence = { agent = \"fence_lab\", plug = \"beta\" }\n", ""),
			[]string{`config: tandem.toml:10: node "beta": no fence, and no [heartbeat.disk] to fence it through: its peer could never take over from it`}},
		{"fence without agent", edit(key, "", `fence = { agent = "fence_lab", plug = "beta" }`, `fence = { plug = "beta" }`),
			[]string{`config: tandem.toml:13: node "beta": fence: missing required key "agent"`}},
		{"fence action", edit(key, "", `plug = "beta"`, `plug = "beta", action = "reboot"`),
			[]string{`config: tandem.toml:13: node "beta": fence.action: set by tandem for each operation; remove it`}},
		{"fence relative secret file", edit(key, "", `plug = "beta"`, `plug = "beta", password_file = "ipmi-beta"`),
			[]string{`config: tandem.toml:13: node "beta": fence.password_file "ipmi-beta": want an absolute path`}},
		{"fence bad agent", edit(key, "", `agent = "fence_lab", plug = "beta"`, `agent = "../fence_lab", plug = "beta"`),
			[]string{`config: tandem.toml:13: node "beta": fence.agent "../fence_lab": want a command like fence_ipmilan or an absolute path`}},
		{"fence multi-line value", edit(key, "", `plug = "beta"`, `plug = "beta\naction=on"`),
			[]string{`config: tandem.toml:13: node "beta": fence.plug: value must be one line`}},

		// Resources.
		{"duplicate resource name", edit(key, "", `name = "smb"`, `name = "data"`),
			[]string{`config: tandem.toml:27: resource "data": name "data": already the name of the resource on line 15`}},
		{"bad resource name", edit(key, "", `name = "smb"`, `name = "s m b"`),
			[]string{`config: tandem.toml:27: resource "s m b": name "s m b": want letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64`}},
		{"unknown type", edit(key, "", `type = "smb"`, `type = "nfs"`),
			[]string{`config: tandem.toml:28: resource "smb": type "nfs": unknown type; want one of filesystem, floatip, smb, tickle, ocf, systemd`}},
		{"missing type", edit(key, "", "type = \"smb\"\n", ""),
			[]string{`config: tandem.toml:26: resource "smb": missing required key "type"`}},
		{"missing name", edit(key, "", "name = \"smb\"\n", ""),
			[]string{`config: tandem.toml:26: resource #3: missing required key "name"`}},
		{"missing mountpoint", edit(key, "", "mountpoint = \"/srv/samba\"\n", ""),
			[]string{`config: tandem.toml:15: resource "data": missing required key "mountpoint"`}},
		{"relative mountpoint", edit(key, "", `"/srv/samba"`, `"srv/samba"`),
			[]string{`config: tandem.toml:19: resource "data": mountpoint "srv/samba": want an absolute path`}},
		{"unclean mountpoint", edit(key, "", `"/srv/samba"`, `"/srv/samba/"`),
			[]string{`config: tandem.toml:19: resource "data": mountpoint "/srv/samba/": want a clean path, "/srv/samba"`}},
		{"duplicate mountpoint", edit(key, "[[resource]]\nname = \"data2\"\ntype = \"filesystem\"\ndevice = \"/dev/loop2\"\nmountpoint = \"/srv/samba\"\n"),
			[]string{`config: tandem.toml:38: resource "data2": mountpoint "/srv/samba": already the mountpoint of resource "data"`}},
		{"mount options", edit(key, "", `mountpoint = "/srv/samba"`, "mountpoint = \"/srv/samba\"\noptions = \"noatime, acl\""),
			[]string{`config: tandem.toml:20: resource "data": options "noatime, acl": want comma-separated options without spaces`}},
		{"negative restart limit", edit(key, "", `type = "smb"`, "type = \"smb\"\nrestart_limit = -1"),
			[]string{`config: tandem.toml:29: resource "smb": restart_limit -1: must not be negative`}},
		{"tickle of nothing", edit(key, "", `floatip = "vip"`, `floatip = "vip6"`),
			[]string{`config: tandem.toml:33: resource "reconnect": floatip "vip6": no such resource`}},
		{"tickle of a mount", edit(key, "", `floatip = "vip"`, `floatip = "data"`),
			[]string{`config: tandem.toml:33: resource "reconnect": floatip "data": is a filesystem resource, not floatip`}},
		{"tickle before its address", edit(key, "[[resource]]\nname = \"vip2\"\ntype = \"floatip\"\naddress = \"198.18.0.51/24\"\n", `floatip = "vip"`, `floatip = "vip2"`),
			[]string{`config: tandem.toml:33: resource "reconnect": floatip "vip2": listed after this resource; list it before, so the address is up when clients are tickled`}},
		{"tickle ports", edit(key, "", `floatip = "vip"`, "floatip = \"vip\"\nports = [445, 0, 445]"),
			[]string{
				`config: tandem.toml:34: resource "reconnect": ports[1] 0: out of range 1-65535`,
				`config: tandem.toml:34: resource "reconnect": ports[2] 445: listed twice`,
			}},
		{"tickle interval", edit(key, "", `floatip = "vip"`, "floatip = \"vip\"\ninterval = \"100ms\""),
			[]string{`config: tandem.toml:34: resource "reconnect": interval "100ms": must be at least 500ms: clients answer one tickle per 500ms`}},
		{"dhcp without client id", edit(key, "", `address = "198.18.0.50/24"`, "dhcp = true\ninterface = \"eth0\""),
			[]string{`config: tandem.toml:21: resource "vip": missing required key "client_id": dhcp = true needs the client identifier both nodes use`}},
		{"dhcp with address", edit(key, "", `address = "198.18.0.50/24"`, "address = \"198.18.0.50/24\"\ndhcp = true\nclient_id = \"filer\"\ninterface = \"eth0\""),
			[]string{`config: tandem.toml:24: resource "vip": address: not used with dhcp = true: the address comes from the lease`}},
		{"dhcp without interface", edit(key, "", `address = "198.18.0.50/24"`, "dhcp = true\nclient_id = \"filer\""),
			[]string{`config: tandem.toml:21: resource "vip": missing required key "interface": dhcp = true asks on a named interface, as there is no subnet to find it by`}},
		{"client id without dhcp", edit(key, "", `address = "198.18.0.50/24"`, "address = \"198.18.0.50/24\"\nclient_id = \"filer\""),
			[]string{`config: tandem.toml:25: resource "vip": client_id "filer": only used with dhcp = true`}},
		{"floatip without address", edit(key, "", "address = \"198.18.0.50/24\"\n", ""),
			[]string{
				`config: tandem.toml:21: resource "vip": missing required key "address" (or dhcp = true)`,
			}},
		{"smb without any address", edit(key, "", "[[resource]]\nname = \"vip\"\ntype = \"floatip\"\naddress = \"198.18.0.50/24\"\n", "", `floatip = "vip"`, `floatip = "data"`),
			[]string{
				`config: tandem.toml:22: resource "smb": missing address, the address smbd is checked on, and no floatip resource to take it from`,
				`config: tandem.toml:29: resource "reconnect": floatip "data": is a filesystem resource, not floatip`,
			}},
		{"arp rounds", edit(key, "", `address = "198.18.0.50/24"`, "address = \"198.18.0.50/24\"\narp_rounds = 0"),
			[]string{`config: tandem.toml:25: resource "vip": arp_rounds 0: out of range 1-100`}},
		{"smb units in process mode", edit(key, "", `type = "smb"`, "type = \"smb\"\nunits = [\"smbd.service\"]"),
			[]string{`config: tandem.toml:29: resource "smb": units: only used with mode = "systemd"`}},
		{"smbd in systemd mode", edit(key, "", `type = "smb"`, "type = \"smb\"\nmode = \"systemd\"\nsmbd = \"/usr/sbin/smbd\""),
			[]string{`config: tandem.toml:30: resource "smb": smbd: only used with mode = "process"; systemd starts smbd`}},
		{"smb bad unit", edit(key, "", `type = "smb"`, "type = \"smb\"\nmode = \"systemd\"\nunits = [\"smbd.service\", \"nmbd\"]"),
			[]string{`config: tandem.toml:30: resource "smb": units[1] "nmbd": not a systemd unit name, like smbd.service`}},
		{"smb bad mode", edit(key, "", `type = "smb"`, "type = \"smb\"\nmode = \"inetd\""),
			[]string{`config: tandem.toml:29: resource "smb": mode "inetd": want process or systemd`}},
		{"smb relative config", edit(key, "", `type = "smb"`, "type = \"smb\"\nconfig = \"smb.conf\""),
			[]string{`config: tandem.toml:29: resource "smb": config "smb.conf": want an absolute path`}},
		{"ocf agent", edit(key, "[[resource]]\nname = \"ip2\"\ntype = \"ocf\"\nagent = \"IPaddr2\"\n"),
			[]string{`config: tandem.toml:37: resource "ip2": agent "IPaddr2": want provider:agent, like "heartbeat:IPaddr2"`}},
		{"ocf class", edit(key, "[[resource]]\nname = \"ip2\"\ntype = \"ocf\"\nagent = \"ocf:heartbeat:IPaddr2\"\n"),
			[]string{`config: tandem.toml:37: resource "ip2": agent "ocf:heartbeat:IPaddr2": want provider:agent, without the ocf: class, as in "heartbeat:IPaddr2"`}},
		{"ocf param name", edit(key, "[[resource]]\nname = \"ip2\"\ntype = \"ocf\"\nagent = \"heartbeat:IPaddr2\"\n[resource.params]\ncidr-netmask = 24\n"),
			[]string{`config: tandem.toml:39: resource "ip2": params.cidr-netmask: bad parameter name; want letters, digits and '_' (it becomes OCF_RESKEY_cidr-netmask)`}},
		{"systemd unit", edit(key, "[[resource]]\nname = \"nmb\"\ntype = \"systemd\"\nunit = \"nmbd\"\n"),
			[]string{`config: tandem.toml:37: resource "nmb": unit "nmbd": not a systemd unit name, like nmbd.service`}},
		{"systemd without unit", edit(key, "[[resource]]\nname = \"nmb\"\ntype = \"systemd\"\n"),
			[]string{`config: tandem.toml:34: resource "nmb": missing required key "unit"`}},

		// Many problems at once, reported in file order whichever check
		// found them.
		{"file order", edit(key, "[watchdog]\ntimeout = 5\n",
			`name = "filer"`, "name = \"filer\"\npreferred_node = \"gamma\"",
			`"198.18.0.50/24"`, `"10.0.0.300/24"`,
			`name = "beta"`, `name = "alpha"`,
			`floatip = "vip"`, "floatip = \"vip\"\nrounds = \"3\""),
			[]string{
				`config: tandem.toml:3: cluster: preferred_node "gamma": no such node; the nodes are "alpha", "alpha"`,
				`config: tandem.toml:12: node "alpha": name "alpha": already the name of the node on line 6`,
				`config: tandem.toml:25: resource "vip": address "10.0.0.300/24": bad IP`,
				`config: tandem.toml:35: resource "reconnect": rounds: want an integer, have string "3"`,
				`config: tandem.toml:37: watchdog: timeout: want a duration like "200ms", have integer 5`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("tandem.toml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded; want\n%s", strings.Join(tt.wants, "\n"))
			}
			if c != nil {
				t.Errorf("Parse returned a Config with an error")
			}
			if got, want := err.Error(), strings.Join(tt.wants, "\n"); got != want {
				t.Errorf("Parse error:\n%s\nwant:\n%s", got, want)
			}
			var list ErrorList
			if !asList(err, &list) || len(list) != len(tt.wants) {
				t.Errorf("error is %T with %d problems, want ErrorList with %d", err, len(list), len(tt.wants))
			}
		})
	}
}

func asList(err error, list *ErrorList) bool {
	l, ok := err.(ErrorList)
	*list = l
	return ok
}

func TestInlineArrayOfTables(t *testing.T) {
	key := writeKey(t, 0o600, "k")
	doc := `node = [
  { name = "alpha", address = "198.18.1.1", fence = { agent = "fence_lab" } },
  { name = "beta", address = "198.18.1.2", fence = { agent = "fence_lab" }, color = "red" },
]
[cluster]
name = "filer"
auth_key_file = "` + key + `"
`
	_, err := Parse("tandem.toml", []byte(doc))
	if want := `config: tandem.toml:3: node "beta": color: unknown key`; err == nil || err.Error() != want {
		t.Errorf("Parse error = %v, want %s", err, want)
	}
	doc = strings.Replace(doc, `, color = "red"`, "", 1)
	c, err := Parse("tandem.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 2 || c.Nodes[1].Name != "beta" || c.Nodes[1].Fence.Agent != "fence_lab" {
		t.Errorf("nodes = %+v", c.Nodes)
	}
}
