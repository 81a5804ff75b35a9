package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
)

// Prefix starts the name of every lab and of everything a lab creates.
const Prefix = "tdl"

// BaseDir holds each lab's work directory, BaseDir/NAME.
const BaseDir = "/tmp/tandem-lab"

var nameRE = regexp.MustCompile(`^` + Prefix + `[a-z0-9]{1,9}$`)

// Addresses of the lab's networks. Only 198.18.0.0/15, the range set aside
// for benchmarking, is used, and only inside the lab's namespaces.
var (
	// PublicNet is the client-facing network.
	PublicNet = netip.MustParsePrefix("198.18.0.0/24")
	// HeartbeatNet is the dedicated heartbeat LAN between the nodes.
	HeartbeatNet = netip.MustParsePrefix("198.18.1.0/24")
	// FloatIP is the address the service floats on. The lab never assigns
	// it; the service under test does.
	FloatIP = netip.MustParsePrefix("198.18.0.50/24")

	// PublicNet6 is the public network's IPv6 subnet, inside 2001:2::/48,
	// the IPv6 range set aside for benchmarking. The heartbeat LAN has no
	// IPv6 addresses.
	PublicNet6 = netip.MustParsePrefix("2001:2::/64")
	// FloatIP6 is the IPv6 address the service can float on; like FloatIP,
	// the lab never assigns it.
	FloatIP6 = netip.MustParsePrefix("2001:2::50/64")

	// DHCPRange is the range a lab DHCP server leases from by default,
	// on the public network, clear of the hosts and FloatIP.
	DHCPRange = [2]netip.Addr{netip.MustParseAddr("198.18.0.150"), netip.MustParseAddr("198.18.0.159")}
)

// Interface names inside a host.
const (
	PublicIf    = "pub0"
	HeartbeatIf = "hb0"
)

type hostPlan struct {
	name      string
	public    netip.Prefix
	heartbeat netip.Prefix // invalid for the client
	public6   netip.Prefix
}

var plans = []hostPlan{
	{"a", netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("198.18.1.1/24"), netip.MustParsePrefix("2001:2::1/64")},
	{"b", netip.MustParsePrefix("198.18.0.2/24"), netip.MustParsePrefix("198.18.1.2/24"), netip.MustParsePrefix("2001:2::2/64")},
	{"client", netip.MustParsePrefix("198.18.0.100/24"), netip.Prefix{}, netip.MustParsePrefix("2001:2::100/64")},
}

// NewName returns a fresh random lab name.
func NewName() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return Prefix + hex.EncodeToString(b[:])
}

// CheckName reports whether name is a valid lab name.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("testenv: lab name %q: want %q followed by 1 to 9 lowercase letters or digits", name, Prefix)
	}
	return nil
}

// WorkDir is the work directory of the lab called name.
func WorkDir(name string) string { return filepath.Join(BaseDir, name) }

func nsName(lab, host string) string { return lab + "-" + host }
