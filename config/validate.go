package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// statFile is the seam the auth key check reads file metadata through.
var statFile = os.Stat

var (
	// nameRE is what cluster, node and resource names may hold: they appear
	// in packets, on the disk, in logs and on command lines.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	// paramKeyRE is what fence and OCF parameter names may hold: they are
	// written as key=value lines and as OCF_RESKEY_<key> variables.
	paramKeyRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)
	// ocfPartRE is one part of an OCF provider:agent.
	ocfPartRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// unitRE is a systemd unit name with its suffix.
	unitRE = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|mount|timer|path|scope|slice)$`)
	// fsTypeRE is a filesystem type as mount(8) takes it.
	fsTypeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
)

// nameRule says what nameRE accepts, for messages.
const nameRule = "want letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64"

var standardBauds = []int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600}

func sectionLoc(section, key string) loc {
	return loc{idx: joinPath(section, key), where: section, key: key}
}

func (c *Config) nodeLoc(i int) loc {
	return loc{idx: indexPath("node", i), where: entryLabel("node", i, c.Nodes[i].Name)}
}

func (c *Config) resourceLoc(i int) loc {
	return loc{idx: indexPath("resource", i), where: entryLabel("resource", i, c.Resources[i].Name)}
}

func quoteDur(d time.Duration) string { return strconv.Quote(d.String()) }

func (d *decoder) validate(c *Config) {
	d.validateCluster(c)
	d.validateNodes(c)
	d.validateHeartbeat(c)
	d.validateWatchdog(c)
	d.validateResources(c)
	d.validateFencing(c)
}

func (d *decoder) absPath(at loc, p string) bool {
	if !filepath.IsAbs(p) {
		d.errorf(at, strconv.Quote(p), "want an absolute path")
		return false
	}
	return true
}

func (d *decoder) validateCluster(c *Config) {
	cl := &c.Cluster
	if d.lines.has("cluster.name") && !nameRE.MatchString(cl.Name) {
		d.errorf(sectionLoc("cluster", "name"), strconv.Quote(cl.Name), nameRule)
	}
	if d.absPath(sectionLoc("cluster", "auth_key_file"), cl.AuthKeyFile) {
		d.checkKeyFile(sectionLoc("cluster", "auth_key_file"), cl.AuthKeyFile)
	}
	if cl.Keepalive > 0 && cl.Warntime > 0 && cl.Warntime <= cl.Keepalive {
		d.errorf(sectionLoc("cluster", "warntime"), quoteDur(cl.Warntime), "must be longer than keepalive %s", quoteDur(cl.Keepalive))
	}
	if cl.Warntime > 0 && cl.Deadtime > 0 && cl.Deadtime <= cl.Warntime {
		d.errorf(sectionLoc("cluster", "deadtime"), quoteDur(cl.Deadtime), "must be longer than warntime %s", quoteDur(cl.Warntime))
	}
	if cl.Deadtime > 0 && cl.Initdead > 0 && cl.Initdead < cl.Deadtime {
		d.errorf(sectionLoc("cluster", "initdead"), quoteDur(cl.Initdead), "must be at least deadtime %s", quoteDur(cl.Deadtime))
	}
	if cl.PreferredNode != "" && c.Node(cl.PreferredNode) == nil {
		d.errorf(sectionLoc("cluster", "preferred_node"), strconv.Quote(cl.PreferredNode), "no such node; the nodes are %s", c.nodeNames())
	}
	if cl.FenceDelay < 0 {
		d.errorf(sectionLoc("cluster", "fence_delay"), quoteDur(cl.FenceDelay), "must not be negative")
	}
	if cl.FenceDelay > 0 && cl.PreferredNode == "" {
		d.warnf(sectionLoc("cluster", "fence_delay"), quoteDur(cl.FenceDelay), "applies to the node that is not preferred: without preferred_node, the node whose name sorts first is preferred")
	}
	if cl.AutoFailback && cl.PreferredNode == "" {
		d.warnf(sectionLoc("cluster", "auto_failback"), "true", "has no effect without preferred_node, the node to fail back to")
	}
}

// checkKeyFile checks the shared key file without reading the key.
func (d *decoder) checkKeyFile(at loc, path string) {
	value := strconv.Quote(path)
	fi, err := statFile(path)
	switch {
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		d.errorf(at, value, "%v", err)
	case !fi.Mode().IsRegular():
		d.errorf(at, value, "not a regular file (%s)", fi.Mode().Type())
	case fi.Mode().Perm()&0o077 != 0:
		d.errorf(at, value, "mode %04o, want 0600: the key must be readable by its owner only", fi.Mode().Perm())
	case fi.Size() == 0:
		d.errorf(at, value, "empty")
	}
}

func (d *decoder) validateNodes(c *Config) {
	if !d.lines.has("node") {
		return // reported as missing
	}
	if n := len(c.Nodes); n != 2 {
		at := loc{idx: "node"}
		if n > 2 {
			at.idx = indexPath("node", 2)
		}
		d.errorf(at, "", "tandem runs a pair: want exactly two [[node]] entries, have %d", n)
	}
	names := map[string]int{}
	addrs := map[netip.Addr]int{}
	for i, n := range c.Nodes {
		at := c.nodeLoc(i)
		if d.lines.has(at.child("name").idx) {
			if !nameRE.MatchString(n.Name) {
				d.errorf(at.child("name"), strconv.Quote(n.Name), nameRule)
			} else if j, dup := names[n.Name]; dup {
				d.errorf(at.child("name"), strconv.Quote(n.Name), "already the name of the node on line %d", d.lines.line(indexPath("node", j)))
			} else {
				names[n.Name] = i
			}
		}
		if a := n.Address; a.IsValid() {
			switch {
			case a.IsUnspecified() || a.IsMulticast():
				d.errorf(at.child("address"), strconv.Quote(a.String()), "not a unicast address")
			case addrs[a] > 0:
				d.errorf(at.child("address"), strconv.Quote(a.String()), "already the address of %s", entryLabel("node", addrs[a]-1, c.Nodes[addrs[a]-1].Name))
			default:
				addrs[a] = i + 1
			}
			if i > 0 && c.Nodes[0].Address.IsValid() && a.Is4() != c.Nodes[0].Address.Is4() {
				d.errorf(at.child("address"), strconv.Quote(a.String()), "not of the same IP family as %s's %q", entryLabel("node", 0, c.Nodes[0].Name), c.Nodes[0].Address)
			}
		}
		if n.Serial != "" {
			d.absPath(at.child("serial"), n.Serial)
		}
		if n.Fence != nil {
			d.validateFence(at.child("fence"), n.Fence)
		}
	}
}

func (d *decoder) validateFence(at loc, f *Fence) {
	if f.Agent != "" && !(filepath.IsAbs(f.Agent) || paramKeyRE.MatchString(f.Agent)) {
		d.errorf(at.child("agent"), strconv.Quote(f.Agent), "want a command like fence_ipmilan or an absolute path")
	}
	if f.Agent == "" && d.lines.has(at.child("agent").idx) {
		d.errorf(at.child("agent"), `""`, "must not be empty")
	}
	for _, k := range sortedKeys(f.Params) {
		v := f.Params[k]
		kat := at.child(k)
		switch {
		case !paramKeyRE.MatchString(k):
			d.errorf(kat, "", "bad parameter name; want letters, digits, '_' or '-'")
		case k == "action":
			d.errorf(kat, "", "set by tandem for each operation; remove it")
		case strings.ContainsAny(v, "\n\r\x00"):
			d.errorf(kat, "", "value must be one line")
		case strings.HasSuffix(k, "_file"):
			d.absPath(kat, v)
		case isSecretKey(k):
			d.warnf(kat, "", "secret written in the configuration; put it in a file readable by root only and name it with %s_file", k)
		}
	}
}

func (d *decoder) validateHeartbeat(c *Config) {
	hb := &c.Heartbeat
	udp := &hb.UDP
	if udp.Port < 1 || udp.Port > 65535 {
		d.errorf(sectionLoc("heartbeat.udp", "port"), strconv.Itoa(udp.Port), "out of range 1-65535")
	}
	family := ""
	if len(c.Nodes) > 0 && c.Nodes[0].Address.IsValid() {
		family = "IPv6"
		if c.Nodes[0].Address.Is4() {
			family = "IPv4"
		}
	}
	groupAt := sectionLoc("heartbeat.udp", "group")
	switch udp.Mode {
	case ModeUnicast, ModeBroadcast:
		if udp.Group.IsValid() {
			d.errorf(groupAt, strconv.Quote(udp.Group.String()), "only used in multicast mode")
		}
		if udp.Mode == ModeBroadcast && family == "IPv6" {
			d.errorf(sectionLoc("heartbeat.udp", "mode"), strconv.Quote(udp.Mode), "IPv6 has no broadcast; the node addresses are IPv6")
		}
	case ModeMulticast:
		switch g := udp.Group; {
		case !g.IsValid():
			if !d.lines.has(groupAt.idx) {
				d.errorf(sectionLoc("heartbeat.udp", "mode"), `"multicast"`, "needs group, the multicast group to send to")
			}
		case !g.IsMulticast():
			d.errorf(groupAt, strconv.Quote(g.String()), "not a multicast address")
		case family != "" && g.Is4() != (family == "IPv4"):
			d.errorf(groupAt, strconv.Quote(g.String()), "not %s like the node addresses", family)
		}
	default:
		d.errorf(sectionLoc("heartbeat.udp", "mode"), strconv.Quote(udp.Mode), "want unicast, multicast or broadcast")
	}
	if udp.Interface != "" {
		d.checkInterface(sectionLoc("heartbeat.udp", "interface"), udp.Interface)
	}

	withSerial := 0
	for _, n := range c.Nodes {
		if n.Serial != "" {
			withSerial++
		}
	}
	switch {
	case withSerial == 0 && hb.Serial != nil:
		d.errorf(loc{idx: "heartbeat.serial", where: "heartbeat.serial"}, "", "no node has serial, the device of its end of the cable")
	case withSerial > 0 && withSerial < len(c.Nodes):
		for i, n := range c.Nodes {
			if n.Serial == "" {
				d.errorf(c.nodeLoc(i), "", "missing serial: the serial medium needs both ends of the cable")
			}
		}
	case withSerial > 0 && hb.Serial == nil:
		hb.Serial = &Serial{}
		d.decodeTable(nil, false, loc{}, valuesOf(hb.Serial), nil, "")
	}
	if hb.Serial != nil && !slices.Contains(standardBauds, hb.Serial.Baud) {
		d.errorf(sectionLoc("heartbeat.serial", "baud"), strconv.Itoa(hb.Serial.Baud), "not a standard rate (%s)", joinInts(standardBauds))
	}

	if disk := hb.Disk; disk != nil {
		if disk.Device != "" {
			d.absPath(sectionLoc("heartbeat.disk", "device"), disk.Device)
		}
		if disk.Interval > 0 && c.Cluster.Deadtime > 0 && disk.Interval >= c.Cluster.Deadtime {
			d.errorf(sectionLoc("heartbeat.disk", "interval"), quoteDur(disk.Interval), "must be shorter than cluster.deadtime %s", quoteDur(c.Cluster.Deadtime))
		}
		if disk.Lease < 0 {
			d.errorf(sectionLoc("heartbeat.disk", "lease"), quoteDur(disk.Lease), "must not be negative")
		} else if disk.Lease > 0 && disk.Interval > 0 && disk.Lease < 2*disk.Interval {
			d.errorf(sectionLoc("heartbeat.disk", "lease"), quoteDur(disk.Lease), "must be at least two intervals (%s): one late write must not cost the service", quoteDur(2*disk.Interval))
		}
	}
}

func (d *decoder) checkInterface(at loc, name string) {
	if len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\x00") {
		d.errorf(at, strconv.Quote(name), "not an interface name")
	}
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func (d *decoder) validateWatchdog(c *Config) {
	w := &c.Watchdog
	d.absPath(sectionLoc("watchdog", "device"), w.Device)
	if w.Timeout > 0 && w.Timeout%time.Second != 0 {
		d.errorf(sectionLoc("watchdog", "timeout"), quoteDur(w.Timeout), "want whole seconds: the watchdog counts in seconds")
	}
}

func (d *decoder) validateResources(c *Config) {
	names := map[string]int{}
	mounts := map[string]int{}
	addrs := map[netip.Addr]int{}
	var firstFloat *FloatIP
	for i := range c.Resources {
		r := &c.Resources[i]
		at := c.resourceLoc(i)
		if d.lines.has(at.child("name").idx) {
			if !nameRE.MatchString(r.Name) {
				d.errorf(at.child("name"), strconv.Quote(r.Name), nameRule)
			} else if j, dup := names[r.Name]; dup {
				d.errorf(at.child("name"), strconv.Quote(r.Name), "already the name of the resource on line %d", d.lines.line(indexPath("resource", j)))
			} else {
				names[r.Name] = i
			}
		}
		if r.RestartLimit < 0 {
			d.errorf(at.child("restart_limit"), strconv.Itoa(r.RestartLimit), "must not be negative")
		}
		switch {
		case r.Filesystem != nil:
			fsys := r.Filesystem
			if fsys.Device != "" {
				d.absPath(at.child("device"), fsys.Device)
			}
			if fsys.Mountpoint != "" && d.absPath(at.child("mountpoint"), fsys.Mountpoint) {
				switch {
				case filepath.Clean(fsys.Mountpoint) != fsys.Mountpoint:
					d.errorf(at.child("mountpoint"), strconv.Quote(fsys.Mountpoint), "want a clean path, %q", filepath.Clean(fsys.Mountpoint))
				case fsys.Mountpoint == "/":
					d.errorf(at.child("mountpoint"), `"/"`, "cannot be the root directory")
				case mounts[fsys.Mountpoint] > 0:
					d.errorf(at.child("mountpoint"), strconv.Quote(fsys.Mountpoint), "already the mountpoint of %s", c.resourceLoc(mounts[fsys.Mountpoint]-1).where)
				default:
					mounts[fsys.Mountpoint] = i + 1
				}
			}
			if !fsTypeRE.MatchString(fsys.FSType) {
				d.errorf(at.child("fstype"), strconv.Quote(fsys.FSType), "not a filesystem type")
			}
			if strings.ContainsAny(fsys.Options, " \t\n\x00") {
				d.errorf(at.child("options"), strconv.Quote(fsys.Options), "want comma-separated options without spaces")
			}
		case r.FloatIP != nil:
			fip := r.FloatIP
			d.validateFloatIP(at, fip)
			if a := fip.Address.Addr(); fip.Address.IsValid() {
				if addrs[a] > 0 {
					d.errorf(at.child("address"), strconv.Quote(fip.Address.String()), "already the address of %s", c.resourceLoc(addrs[a]-1).where)
				}
				addrs[a] = i + 1
			}
			if firstFloat == nil {
				firstFloat = fip
			}
		case r.Tickle != nil:
			d.validateTickle(c, i, at)
		case r.OCF != nil:
			d.validateOCF(at, r.OCF)
		case r.Systemd != nil:
			if r.Systemd.Unit != "" && !unitRE.MatchString(r.Systemd.Unit) {
				d.errorf(at.child("unit"), strconv.Quote(r.Systemd.Unit), "not a systemd unit name, like nmbd.service")
			}
		}
	}
	// The smb defaults need the first floatip, wherever it is listed.
	for i := range c.Resources {
		if s := c.Resources[i].SMB; s != nil {
			d.validateSMB(c.resourceLoc(i), s, firstFloat)
		}
	}
	if len(c.Resources) == 0 {
		d.warnf(loc{}, "", "no [[resource]]: the cluster serves nothing")
	}
}

func (d *decoder) validateFloatIP(at loc, f *FloatIP) {
	addrAt := at.child("address")
	switch {
	case f.DHCP:
		if d.lines.has(addrAt.idx) {
			d.errorf(addrAt, "", "not used with dhcp = true: the address comes from the lease")
		}
		if f.ClientID == "" {
			d.errorf(at, "", `missing required key "client_id": dhcp = true needs the client identifier both nodes use`)
		}
		if f.Interface == "" {
			d.errorf(at, "", `missing required key "interface": dhcp = true asks on a named interface, as there is no subnet to find it by`)
		}
	case !d.lines.has(addrAt.idx):
		d.errorf(at, "", `missing required key "address" (or dhcp = true)`)
	case f.ClientID != "":
		d.errorf(at.child("client_id"), strconv.Quote(f.ClientID), "only used with dhcp = true")
	}
	if p := f.Address; p.IsValid() {
		a := p.Addr()
		value := strconv.Quote(p.String())
		switch {
		case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
			d.errorf(addrAt, value, "not a unicast address for clients")
		case a.Is4() && p.Bits() < 31 && a == p.Masked().Addr():
			d.errorf(addrAt, value, "the subnet's network address, not a host address")
		case a.Is4() && p.Bits() < 31 && a == lastAddr(p):
			d.errorf(addrAt, value, "the subnet's broadcast address, not a host address")
		}
	}
	if f.Interface != "" {
		d.checkInterface(at.child("interface"), f.Interface)
	}
	if f.ARPRounds < 1 || f.ARPRounds > 100 {
		d.errorf(at.child("arp_rounds"), strconv.Itoa(f.ARPRounds), "out of range 1-100")
	}
}

// lastAddr is the highest address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func (d *decoder) validateSMB(at loc, s *SMB, firstFloat *FloatIP) {
	d.absPath(at.child("config"), s.Config)
	switch s.Mode {
	case SMBModeProcess:
		if d.lines.has(at.child("units").idx) {
			d.errorf(at.child("units"), "", `only used with mode = "systemd"`)
		}
		s.Units = nil
		d.absPath(at.child("smbd"), s.Smbd)
	case SMBModeSystemd:
		if d.lines.has(at.child("smbd").idx) {
			d.errorf(at.child("smbd"), "", `only used with mode = "process"; systemd starts smbd`)
		}
		s.Smbd = ""
		if len(s.Units) == 0 && d.lines.has(at.child("units").idx) {
			d.errorf(at.child("units"), "[]", "want at least one unit")
		}
		for i, u := range s.Units {
			if !unitRE.MatchString(u) {
				d.errorf(at.child("units").elem(i), strconv.Quote(u), "not a systemd unit name, like smbd.service")
			}
		}
	default:
		d.errorf(at.child("mode"), strconv.Quote(s.Mode), "want process or systemd")
	}
	switch a := s.Address; {
	case a.IsValid():
		if a.IsUnspecified() || a.IsMulticast() {
			d.errorf(at.child("address"), strconv.Quote(a.String()), "not a unicast address")
		}
	case d.lines.has(at.child("address").idx):
		// Reported by the decoder.
	case firstFloat == nil:
		d.errorf(at, "", "missing address, the address smbd is checked on, and no floatip resource to take it from")
	case firstFloat.Address.IsValid():
		s.Address = firstFloat.Address.Addr()
	}
}

func (d *decoder) validateTickle(c *Config, i int, at loc) {
	t := c.Resources[i].Tickle
	if t.FloatIP != "" {
		fat := at.child("floatip")
		value := strconv.Quote(t.FloatIP)
		j := slices.IndexFunc(c.Resources, func(r Resource) bool { return r.Name == t.FloatIP })
		switch {
		case j < 0:
			if !d.anyNameFailed(c) {
				d.errorf(fat, value, "no such resource")
			}
		case c.Resources[j].Type != "" && c.Resources[j].Type != KindFloatIP:
			d.errorf(fat, value, "is a %s resource, not floatip", c.Resources[j].Type)
		case j > i:
			d.errorf(fat, value, "listed after this resource; list it before, so the address is up when clients are tickled")
		}
	}
	seen := map[int]bool{}
	for k, p := range t.Ports {
		switch {
		case p < 1 || p > 65535:
			d.errorf(at.child("ports").elem(k), strconv.Itoa(p), "out of range 1-65535")
		case seen[p]:
			d.errorf(at.child("ports").elem(k), strconv.Itoa(p), "listed twice")
		}
		seen[p] = true
	}
	if len(t.Ports) == 0 {
		d.errorf(at.child("ports"), "[]", "want at least one port")
	}
	if t.Rounds < 1 || t.Rounds > 100 {
		d.errorf(at.child("rounds"), strconv.Itoa(t.Rounds), "out of range 1-100")
	}
	if t.Interval > 0 && t.Interval < 500*time.Millisecond {
		d.errorf(at.child("interval"), quoteDur(t.Interval), "must be at least 500ms: clients answer one tickle per 500ms")
	}
}

// anyNameFailed reports whether some resource's name failed to decode, so
// that a reference to it cannot be judged.
func (d *decoder) anyNameFailed(c *Config) bool {
	for i := range c.Resources {
		if d.failed(c.resourceLoc(i).child("name").idx) {
			return true
		}
	}
	return false
}

func (d *decoder) validateOCF(at loc, o *OCF) {
	if o.Agent != "" {
		parts := strings.Split(o.Agent, ":")
		switch {
		case len(parts) == 3 && parts[0] == "ocf":
			d.errorf(at.child("agent"), strconv.Quote(o.Agent), "want provider:agent, without the ocf: class, as in %q", parts[1]+":"+parts[2])
		case len(parts) != 2 || !ocfPartRE.MatchString(parts[0]) || !ocfPartRE.MatchString(parts[1]):
			d.errorf(at.child("agent"), strconv.Quote(o.Agent), `want provider:agent, like "heartbeat:IPaddr2"`)
		}
	}
	for _, k := range sortedKeys(o.Params) {
		kat := at.child("params").child(k)
		switch {
		case !paramKeyRE.MatchString(k) || strings.Contains(k, "-"):
			d.errorf(kat, "", "bad parameter name; want letters, digits and '_' (it becomes OCF_RESKEY_%s)", k)
		case strings.ContainsRune(o.Params[k], 0):
			d.errorf(kat, "", "value must not hold a NUL byte")
		}
	}
}

func (d *decoder) validateFencing(c *Config) {
	cl := &c.Cluster
	unsafeAt := sectionLoc("cluster", "unsafe_no_fencing")
	if c.Fenced() {
		if cl.UnsafeNoFencing {
			d.warnf(unsafeAt, "true", "has no effect: fencing is configured")
		}
		return
	}
	if cl.UnsafeNoFencing {
		d.warnf(unsafeAt, "true", "no fencing: shared disks are not protected against two active nodes")
		return
	}
	if len(c.Nodes) == 0 {
		return
	}
	fenced := 0
	for i, n := range c.Nodes {
		if n.Fence != nil || d.failed(c.nodeLoc(i).child("fence").idx) {
			fenced++
		}
	}
	if fenced == 0 {
		d.errorf(loc{idx: "cluster", where: "cluster"}, "", "no fencing: no node has fence and there is no [heartbeat.disk]; configure one, or set unsafe_no_fencing = true in a lab")
		return
	}
	for i, n := range c.Nodes {
		if n.Fence == nil && !d.failed(c.nodeLoc(i).child("fence").idx) {
			d.errorf(c.nodeLoc(i), "", "no fence, and no [heartbeat.disk] to fence it through: its peer could never take over from it")
		}
	}
}

// valuesOf returns the struct v points to, as decodeTable's target.
func valuesOf(v any) []reflect.Value {
	return []reflect.Value{reflect.ValueOf(v).Elem()}
}
