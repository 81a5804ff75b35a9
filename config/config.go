package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// DefaultPath is where tandemd and haclient look for the configuration.
const DefaultPath = "/etc/tandem/tandem.toml"

// Config is a validated configuration with every default filled in.
type Config struct {
	// File is the name the configuration was loaded or parsed under.
	File string `toml:"-"`
	// Cluster holds the settings of the pair as a whole.
	Cluster Cluster `toml:"cluster" required:"true" desc:"settings of the pair as a whole"`
	// Nodes are the two members of the pair, in file order.
	Nodes []Node `toml:"node" required:"true" desc:"the two members of the pair"`
	// Heartbeat configures the media the nodes watch each other over.
	Heartbeat Heartbeat `toml:"heartbeat" desc:"the media the nodes watch each other over"`
	// Watchdog configures the local hardware watchdog.
	Watchdog Watchdog `toml:"watchdog" desc:"the local watchdog"`
	// Resources is the resource group: started in this order, stopped in
	// reverse.
	Resources []Resource `toml:"resource" desc:"the resource group, started top to bottom and stopped bottom to top"`
}

// Cluster is the [cluster] section.
type Cluster struct {
	// Name identifies the cluster in every heartbeat and in the quorum disk
	// header.
	Name string `toml:"name" required:"true" desc:"the cluster's name, carried in every heartbeat and in the quorum disk header"`
	// AuthKeyFile names the file holding the shared heartbeat key.
	AuthKeyFile string `toml:"auth_key_file" default:"/etc/tandem/authkey" desc:"file holding the shared key that signs heartbeats; mode 0600, not empty"`
	// Keepalive is the interval between heartbeats.
	Keepalive time.Duration `toml:"keepalive" default:"200ms" desc:"interval between heartbeats"`
	// Warntime is the silence after which a late heartbeat is logged.
	Warntime time.Duration `toml:"warntime" default:"1s" desc:"silence after which a late heartbeat is logged"`
	// Deadtime is the silence after which the peer is declared dead.
	Deadtime time.Duration `toml:"deadtime" default:"2s" desc:"silence after which the peer is declared dead"`
	// Initdead is the deadtime used right after start, while the network and
	// the peer come up.
	Initdead time.Duration `toml:"initdead" default:"30s" desc:"deadtime right after start, while the network and the peer come up"`
	// AutoFailback moves the service back to PreferredNode when it rejoins.
	AutoFailback bool `toml:"auto_failback" default:"false" desc:"move the service back to preferred_node when it rejoins"`
	// PreferredNode is the node that takes the service when both start; empty
	// for a deterministic rule.
	PreferredNode string `toml:"preferred_node" desc:"node that takes the service when both start together"`
	// UnsafeNoFencing allows a cluster with neither fence agents nor a disk
	// medium. Shared data is then not protected against two active nodes.
	UnsafeNoFencing bool `toml:"unsafe_no_fencing" default:"false" desc:"allow running with neither fence agents nor a disk medium (labs only)"`
	// FenceDelay holds back the node that is not preferred_node before it
	// fences the preferred one, so that when the two lose each other while
	// both live, exactly one is fenced: the one not preferred.
	FenceDelay time.Duration `toml:"fence_delay" default:"0s" zero:"ok" desc:"delay before the node that is not preferred_node fences the preferred one, so that only one of two nodes that lost each other is fenced"`
}

// Node is one [[node]] entry.
type Node struct {
	// Name is the node's host name, or what tandemd --node gives.
	Name string `toml:"name" required:"true" desc:"the node's host name, or what tandemd --node gives"`
	// Address is the node's address on the heartbeat LAN.
	Address netip.Addr `toml:"address" required:"true" desc:"the node's address on the heartbeat LAN"`
	// Serial is this node's end of the serial cable; empty without one.
	Serial string `toml:"serial" desc:"this node's end of the serial cable, such as /dev/ttyS1"`
	// Fence is how the peer powers this node off; nil without an agent.
	Fence *Fence `toml:"fence" desc:"fence agent that powers this node off: agent and its parameters"`
}

// Fence names a standard fence agent (fence-agents protocol) and the
// parameters passed to it on standard input.
type Fence struct {
	// Agent is the agent's command, such as fence_ipmilan, or an absolute
	// path.
	Agent string
	// Params holds the agent's parameters as text. Integers are written in
	// decimal. Keys ending in _file, such as password_file, name a file whose
	// content is the secret: the value stays a path and the secret is never
	// read here.
	Params map[string]string
}

// LogValue shows the agent and its parameters with any inline password or
// secret replaced, so that a Fence can be logged.
func (f *Fence) LogValue() slog.Value {
	if f == nil {
		return slog.Value{}
	}
	attrs := []slog.Attr{slog.String("agent", f.Agent)}
	for _, k := range sortedKeys(f.Params) {
		v := f.Params[k]
		if isSecretKey(k) {
			v = "(hidden)"
		}
		attrs = append(attrs, slog.String(k, v))
	}
	return slog.GroupValue(attrs...)
}

func isSecretKey(k string) bool {
	if strings.HasSuffix(k, "_file") {
		return false
	}
	k = strings.ToLower(k)
	return strings.Contains(k, "pass") || strings.Contains(k, "secret") || strings.Contains(k, "key")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Heartbeat is the [heartbeat] section: one table per medium.
type Heartbeat struct {
	// UDP is the heartbeat LAN medium; it is always on.
	UDP UDP `toml:"udp" desc:"the heartbeat LAN medium, always on"`
	// Serial is the serial cable medium; nil when the nodes have no serial
	// port. Giving each node a serial device turns it on with the defaults.
	Serial *Serial `toml:"serial" desc:"the serial cable medium, on when the nodes have serial set"`
	// Disk is the quorum partition medium; nil without one.
	Disk *Disk `toml:"disk" desc:"the quorum partition on the shared disk"`
}

// UDP modes.
const (
	ModeUnicast   = "unicast"
	ModeMulticast = "multicast"
	ModeBroadcast = "broadcast"
)

// UDP is the [heartbeat.udp] section.
type UDP struct {
	// Port is the UDP port heartbeats are sent to.
	Port int `toml:"port" default:"694" desc:"UDP port heartbeats are sent to"`
	// Mode is ModeUnicast (to the peer's address), ModeMulticast (to Group)
	// or ModeBroadcast.
	Mode string `toml:"mode" default:"unicast" desc:"unicast (to the peer's address), multicast (to group) or broadcast"`
	// Group is the multicast group; set only in multicast mode.
	Group netip.Addr `toml:"group" desc:"multicast group; required in multicast mode"`
	// Interface is the heartbeat LAN's interface; empty to find it from the
	// node's address.
	Interface string `toml:"interface" desc:"interface of the heartbeat LAN; found from the node's address when not given"`
}

// Serial is the [heartbeat.serial] section.
type Serial struct {
	// Baud is the line speed.
	Baud int `toml:"baud" default:"115200" desc:"line speed in baud"`
}

// Disk is the [heartbeat.disk] section.
type Disk struct {
	// Device is the quorum partition, seen by both nodes.
	Device string `toml:"device" required:"true" desc:"the quorum partition, seen by both nodes"`
	// Interval is how often each node writes its slot.
	Interval time.Duration `toml:"interval" default:"200ms" desc:"how often each node writes its slot"`
	// Lease is how long an active node holds the service without renewing
	// its slot: past it, the node stops the group and its watchdog is no
	// longer fed until the group is stopped. Zero selects DefaultLease.
	Lease time.Duration `toml:"lease" default:"0s" zero:"ok" desc:"how long an active node keeps the service without renewing its slot; 0 for the larger of deadtime and five intervals"`
}

// LeaseTime returns the lease in effect: Lease, or the larger of deadtime
// and five disk intervals when Lease is zero.
func (c *Config) LeaseTime() time.Duration {
	d := c.Heartbeat.Disk
	if d == nil {
		return 0
	}
	if d.Lease > 0 {
		return d.Lease
	}
	return max(c.Cluster.Deadtime, 5*d.Interval)
}

// Watchdog is the [watchdog] section.
type Watchdog struct {
	// Device is the watchdog device.
	Device string `toml:"device" default:"/dev/watchdog" desc:"the watchdog device"`
	// Timeout is the time without a keepalive after which the watchdog
	// resets the node; whole seconds.
	Timeout time.Duration `toml:"timeout" default:"5s" desc:"time without a keepalive after which the node is reset; whole seconds"`
}

// Kind is a resource type, the value of a resource's type key.
type Kind string

// The resource kinds.
const (
	KindFilesystem Kind = "filesystem"
	KindFloatIP    Kind = "floatip"
	KindSMB        Kind = "smb"
	KindTickle     Kind = "tickle"
	KindOCF        Kind = "ocf"
	KindSystemd    Kind = "systemd"
)

// Kinds lists every resource kind.
func Kinds() []Kind {
	return []Kind{KindFilesystem, KindFloatIP, KindSMB, KindTickle, KindOCF, KindSystemd}
}

// Resource is one [[resource]] entry: the keys every kind has, and exactly
// one non-nil kind-specific part, the one Type names.
type Resource struct {
	// Name identifies the resource in the group, in logs and in haclient.
	Name string `toml:"name" required:"true" desc:"the resource's name, unique in the group"`
	// Type is the resource's kind.
	Type Kind `toml:"type" required:"true" desc:"the resource's kind: filesystem, floatip, smb, tickle, ocf or systemd"`
	// MonitorInterval is how often the resource is checked while it runs.
	MonitorInterval time.Duration `toml:"monitor_interval" default:"2s" desc:"how often the running resource is checked"`
	// StartTimeout bounds a start.
	StartTimeout time.Duration `toml:"start_timeout" default:"20s" desc:"longest a start may take"`
	// StopTimeout bounds a stop.
	StopTimeout time.Duration `toml:"stop_timeout" default:"20s" desc:"longest a stop may take before it escalates"`
	// RestartLimit is how many monitor failures are restarted in place
	// before the service moves to the other node.
	RestartLimit int `toml:"restart_limit" default:"3" desc:"monitor failures restarted in place before the service moves"`

	// Filesystem is set for KindFilesystem.
	Filesystem *Filesystem `toml:"-"`
	// FloatIP is set for KindFloatIP.
	FloatIP *FloatIP `toml:"-"`
	// SMB is set for KindSMB.
	SMB *SMB `toml:"-"`
	// Tickle is set for KindTickle.
	Tickle *Tickle `toml:"-"`
	// OCF is set for KindOCF.
	OCF *OCF `toml:"-"`
	// Systemd is set for KindSystemd.
	Systemd *Systemd `toml:"-"`
}

// Filesystem is a mount of the shared disk.
type Filesystem struct {
	// Device is the block device to mount.
	Device string `toml:"device" required:"true" desc:"block device to mount"`
	// Mountpoint is the absolute directory it is mounted on.
	Mountpoint string `toml:"mountpoint" required:"true" desc:"absolute directory to mount it on"`
	// FSType is the filesystem type.
	FSType string `toml:"fstype" default:"ext4" desc:"filesystem type"`
	// Options are mount options, comma-separated as for mount -o.
	Options string `toml:"options" desc:"mount options, comma-separated as for mount -o"`
	// Fsck runs a filesystem check before mounting.
	Fsck bool `toml:"fsck" default:"false" desc:"check the filesystem before mounting it"`
}

// FloatIP is the floating address clients reach the service on.
type FloatIP struct {
	// Address is the address with its prefix length, IPv4 or IPv6; invalid
	// when DHCP is set.
	Address netip.Prefix `toml:"address" desc:"address with prefix length, like 198.18.0.50/24 or 2001:db8::50/64; required unless dhcp"`
	// Interface carries the address; empty to find it from the subnet.
	Interface string `toml:"interface" desc:"interface to add the address to; found from the subnet when not given"`
	// DHCP takes the address from a DHCP lease with ClientID.
	DHCP bool `toml:"dhcp" default:"false" desc:"take the address from a DHCP lease instead"`
	// ClientID is the fixed DHCP client identifier both nodes use.
	ClientID string `toml:"client_id" desc:"DHCP client identifier both nodes use; required with dhcp"`
	// ARPRounds is how many gratuitous ARP (or unsolicited neighbour
	// advertisement) rounds are sent after the address is added.
	ARPRounds int `toml:"arp_rounds" default:"3" desc:"rounds of gratuitous ARP (IPv6: unsolicited neighbour advertisements) after the address is added"`
	// ARPInterval is the time between rounds.
	ARPInterval time.Duration `toml:"arp_interval" default:"1s" desc:"time between announcement rounds"`
}

// SMB modes.
const (
	SMBModeProcess = "process"
	SMBModeSystemd = "systemd"
)

// SMB is smbd serving the shares.
type SMB struct {
	// Config is the smb.conf smbd runs with.
	Config string `toml:"config" default:"/etc/samba/smb.conf" desc:"smb.conf that smbd runs with"`
	// Smbd is the smbd binary, in process mode; empty in systemd mode.
	Smbd string `toml:"smbd" default:"/usr/sbin/smbd" desc:"smbd binary (process mode)"`
	// Mode is SMBModeProcess (tandem supervises smbd in its own session) or
	// SMBModeSystemd (tandem starts and stops Units).
	Mode string `toml:"mode" default:"process" desc:"process (smbd supervised by tandem) or systemd (units started by systemd)"`
	// Units are the systemd units started in order, in systemd mode; nil in
	// process mode.
	Units []string `toml:"units" default:"smbd.service" desc:"systemd units to start (systemd mode)"`
	// Address is where the readiness and health NEGOTIATE goes. When not
	// given it is the first floatip resource's address; it stays invalid
	// when that address comes from DHCP.
	Address netip.Addr `toml:"address" desc:"address the readiness and health check connects to; the first floatip resource's address when not given"`
}

// Tickle sends tickle ACKs to the clients of a floating address after
// takeover so that they reconnect at once.
type Tickle struct {
	// FloatIP names the floatip resource whose clients are tickled; it is
	// listed before this one.
	FloatIP string `toml:"floatip" required:"true" desc:"name of the floatip resource, listed before this one, whose clients are tickled"`
	// Ports are the server ports whose connections are tracked.
	Ports []int `toml:"ports" default:"445,139" desc:"server ports whose client connections are tracked"`
	// Rounds is how many tickle ACKs each client gets.
	Rounds int `toml:"rounds" default:"3" desc:"tickle ACKs sent to each client"`
	// Interval is the time between rounds; clients answer at most one such
	// ACK per 500ms.
	Interval time.Duration `toml:"interval" default:"1s" desc:"time between rounds; at least 500ms, as clients answer one tickle per 500ms"`
}

// OCF runs an installed OCF resource agent.
type OCF struct {
	// Agent is "provider:agent", such as "heartbeat:IPaddr2".
	Agent string `toml:"agent" required:"true" desc:"the agent as provider:agent, like heartbeat:IPaddr2"`
	// Params are passed to the agent as OCF_RESKEY_<key>.
	Params map[string]string `toml:"params" desc:"agent parameters, passed as OCF_RESKEY_<key>"`
}

// Systemd starts and stops a systemd unit.
type Systemd struct {
	// Unit is the unit's name, such as nmbd.service.
	Unit string `toml:"unit" required:"true" desc:"the unit, like nmbd.service"`
}

// Resource returns the resource with the given name, or nil.
func (c *Config) Resource(name string) *Resource {
	for i := range c.Resources {
		if c.Resources[i].Name == name {
			return &c.Resources[i]
		}
	}
	return nil
}

// Node returns the node with the given name, or nil.
func (c *Config) Node(name string) *Node {
	for i := range c.Nodes {
		if c.Nodes[i].Name == name {
			return &c.Nodes[i]
		}
	}
	return nil
}

// SambaConfigs returns the smb.conf paths of the smb resources, in order and
// without repeats, for checking with testparm.
func (c *Config) SambaConfigs() []string {
	var paths []string
	for _, r := range c.Resources {
		if r.SMB != nil && !slices.Contains(paths, r.SMB.Config) {
			paths = append(paths, r.SMB.Config)
		}
	}
	return paths
}

// Fenced reports whether the peer can be fenced: by a fence agent or
// through the quorum disk.
func (c *Config) Fenced() bool {
	if c.Heartbeat.Disk != nil {
		return true
	}
	for _, n := range c.Nodes {
		if n.Fence == nil {
			return false
		}
	}
	return len(c.Nodes) > 0
}

// hostname is the seam LocalNode reads the host name through.
var hostname = os.Hostname

// LocalNode returns the node this process runs on: the one named override
// when it is not empty (tandemd --node), else the one named like the host,
// either its full name or its first label.
func (c *Config) LocalNode(override string) (*Node, error) {
	if override != "" {
		if n := c.Node(override); n != nil {
			return n, nil
		}
		return nil, fmt.Errorf("config: %s: no node named %q (--node); the nodes are %s", c.File, override, c.nodeNames())
	}
	host, err := hostname()
	if err != nil {
		return nil, fmt.Errorf("config: host name: %w; pass --node NAME", err)
	}
	if n := c.Node(host); n != nil {
		return n, nil
	}
	if short, _, ok := strings.Cut(host, "."); ok {
		if n := c.Node(short); n != nil {
			return n, nil
		}
	}
	return nil, fmt.Errorf("config: %s: no node named like this host %q; the nodes are %s; pass --node NAME", c.File, host, c.nodeNames())
}

// Peer returns the node other than the one named local.
func (c *Config) Peer(local string) (*Node, error) {
	if c.Node(local) == nil {
		return nil, fmt.Errorf("config: %s: no node named %q; the nodes are %s", c.File, local, c.nodeNames())
	}
	for i := range c.Nodes {
		if c.Nodes[i].Name != local {
			return &c.Nodes[i], nil
		}
	}
	return nil, fmt.Errorf("config: %s: node %q has no peer", c.File, local)
}

func (c *Config) nodeNames() string {
	names := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		names[i] = fmt.Sprintf("%q", n.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
