package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// PairConfig shapes the tandem.toml the lab writes for its two nodes.
type PairConfig struct {
	// Keepalive, Warntime, Deadtime, Initdead; zero means 100 ms, 300 ms,
	// 500 ms (the tuned profile) and 3 s.
	Keepalive, Warntime, Deadtime, Initdead time.Duration
	AutoFailback                            bool
	PreferredNode                           string
	// RestartLimit is the smb resource's restart_limit; zero means 2.
	RestartLimit int
	// MonitorInterval is the smb resource's monitor_interval; zero means
	// 300 ms, short so tests see failures fast (the product's default is
	// 2 s).
	MonitorInterval time.Duration
	// ExtraCluster is appended to the [cluster] table as it is.
	ExtraCluster string
	// Serial adds the serial cable as a heartbeat medium.
	Serial bool
	// Disk adds the quorum partition as a heartbeat medium, written every
	// DiskInterval (zero means the default, 200 ms). It must be
	// initialised (haclient disk init) before the daemons start.
	Disk         bool
	DiskInterval time.Duration
	// Watchdog gives each node the lab watchdog as its [watchdog], with
	// the lab's timeout (Options.WatchdogTimeout). With Disk it is always
	// given: tandemd requires a watchdog beside a quorum disk.
	Watchdog bool
	// DiskLease is the disk's lease; zero for tandemd's default.
	DiskLease time.Duration
	// FenceDelay is cluster.fence_delay; zero for none.
	FenceDelay time.Duration
	// Tickle adds a tickle resource for the floating address's clients
	// on port 445, after smb.
	Tickle bool
	// IPv6 adds the floating IPv6 address FloatIP6 as a second floatip
	// resource, vip6, served by smbd too; the tickle resource then
	// tickles its clients.
	IPv6 bool
}

// AuthKey is the shared key the lab's pair signs heartbeats with.
const AuthKey = "lab-shared-secret-0123456789"

// ShareName and ShareFile are the share the lab's pair serves and the file
// servedAddresses returns the addresses smbd listens on for a tandem.toml:
// FloatIP, and FloatIP6 when a floatip resource holds it. A file that does
// not decode (the lab also installs broken ones, for tandemd to refuse)
// gets FloatIP alone.
func servedAddresses(tandemToml string) []netip.Addr {
	addrs := []netip.Addr{FloatIP.Addr()}
	var doc struct {
		Resource []struct {
			Type    string `toml:"type"`
			Address string `toml:"address"`
		} `toml:"resource"`
	}
	if _, err := toml.Decode(tandemToml, &doc); err != nil {
		return addrs
	}
	for _, r := range doc.Resource {
		if r.Type == "floatip" && r.Address == FloatIP6.String() {
			addrs = append(addrs, FloatIP6.Addr())
		}
	}
	return addrs
}

// PrepareShare puts in it.
const (
	ShareName = "share"
	ShareFile = "hello.txt"
)

// TandemConfig returns a tandem.toml for the lab's pair: both nodes fenced
// through the lab's power switch, the data volume, the floating address and
// smbd with /etc/tandem/smb.conf.
func (l *Lab) TandemConfig(c PairConfig) string {
	if c.Keepalive == 0 {
		c.Keepalive, c.Warntime, c.Deadtime = 100*time.Millisecond, 300*time.Millisecond, 500*time.Millisecond
	}
	if c.Initdead == 0 {
		c.Initdead = 3 * time.Second
	}
	if c.RestartLimit == 0 {
		c.RestartLimit = 2
	}
	if c.MonitorInterval == 0 {
		c.MonitorInterval = 300 * time.Millisecond
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[cluster]\nname = \"lab\"\nauth_key_file = \"/etc/tandem/authkey\"\n")
	fmt.Fprintf(&b, "keepalive = %q\nwarntime = %q\ndeadtime = %q\ninitdead = %q\nauto_failback = %v\n",
		c.Keepalive.String(), c.Warntime.String(), c.Deadtime.String(), c.Initdead.String(), c.AutoFailback)
	if c.PreferredNode != "" {
		fmt.Fprintf(&b, "preferred_node = %q\n", c.PreferredNode)
	}
	if c.FenceDelay > 0 {
		fmt.Fprintf(&b, "fence_delay = %q\n", c.FenceDelay.String())
	}
	b.WriteString(c.ExtraCluster)
	for _, n := range []string{"a", "b"} {
		fmt.Fprintf(&b, "\n[[node]]\nname = %q\naddress = %q\nfence = { agent = %q, plug = %q }\n",
			n, l.Node(n).HeartbeatAddr.Addr().String(), l.FenceAgent(), n)
		if c.Serial {
			fmt.Fprintf(&b, "serial = %q\n", l.SerialDevice())
		}
	}
	fmt.Fprintf(&b, "\n[heartbeat.udp]\nport = 694\n")
	if c.Serial {
		fmt.Fprintf(&b, "\n[heartbeat.serial]\nbaud = %d\n", l.Baud())
	}
	if c.Disk {
		fmt.Fprintf(&b, "\n[heartbeat.disk]\ndevice = %q\n", l.QuorumDevice())
		if c.DiskInterval != 0 {
			fmt.Fprintf(&b, "interval = %q\n", c.DiskInterval.String())
		}
		if c.DiskLease != 0 {
			fmt.Fprintf(&b, "lease = %q\n", c.DiskLease.String())
		}
	}
	if c.Disk || c.Watchdog {
		fmt.Fprintf(&b, "\n[watchdog]\ndevice = %q\ntimeout = %q\n", l.WatchdogDevice(), l.opts.WatchdogTimeout.String())
	}
	fmt.Fprintf(&b, "\n[[resource]]\nname = \"data\"\ntype = \"filesystem\"\ndevice = %q\nmountpoint = %q\nstop_timeout = \"10s\"\n",
		l.DataDevice(), l.Mountpoint())
	fmt.Fprintf(&b, "\n[[resource]]\nname = \"vip\"\ntype = \"floatip\"\naddress = %q\n", FloatIP.String())
	tickled := "vip"
	if c.IPv6 {
		fmt.Fprintf(&b, "\n[[resource]]\nname = \"vip6\"\ntype = \"floatip\"\naddress = %q\n", FloatIP6.String())
		tickled = "vip6"
	}
	fmt.Fprintf(&b, "\n[[resource]]\nname = \"smb\"\ntype = \"smb\"\nconfig = \"/etc/tandem/smb.conf\"\nmonitor_interval = %q\nrestart_limit = %d\n", c.MonitorInterval.String(), c.RestartLimit)
	if c.Tickle {
		fmt.Fprintf(&b, "\n[[resource]]\nname = \"reconnect\"\ntype = \"tickle\"\nfloatip = %q\nports = [445]\n", tickled)
	}
	return b.String()
}

// InstallTandem puts a node's /etc/tandem in place: tandem.toml with the
// given content, the key (mode 0600) and an smb.conf serving the share
// from the data volume on the floating address.
func (l *Lab) InstallTandem(node, tandemToml string) error {
	h := l.Node(node)
	etc := filepath.Join(h.Dir, "etc")
	if err := os.WriteFile(filepath.Join(etc, "authkey"), []byte(AuthKey+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(etc, "tandem.toml"), []byte(tandemToml), 0o644); err != nil {
		return err
	}
	_, err := h.WriteSMBConf(SMBConfig{
		Addresses: servedAddresses(tandemToml),
		Share:     ShareName,
		Path:      filepath.Join(l.Mountpoint(), ShareName),
		File:      filepath.Join(etc, "smb.conf"),
	})
	return err
}

// PrepareShare puts the share's directory and ShareFile, holding content,
// on the data volume, through node a, and unmounts it again.
func (l *Lab) PrepareShare(content string) error {
	mnt := l.Mountpoint()
	dir := filepath.Join(mnt, ShareName)
	_, err := l.Node("a").Run(context.Background(), "sh", "-c", fmt.Sprintf(
		"mount %s %s && mkdir -p %s && printf '%%s\\n' '%s' > %s/%s && umount %s",
		l.DataDevice(), mnt, dir, content, dir, ShareFile, mnt))
	return err
}

// ReadShare makes the client read ShareFile through the floating address
// once, within bound, with smbclient.
func (l *Lab) ReadShare(bound time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	return l.Client().Run(ctx, "smbclient", "-N", "-t", "1", "//"+FloatIP.Addr().String()+"/"+ShareName, "-c", "get "+ShareFile+" -")
}
