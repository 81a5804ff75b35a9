package daemon_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/admin"
	"github.com/tandem-ha/tandem/testenv"
)

// TestDHCPAddressFollowsTheService runs the pair with a DHCP-leased
// floating address from dnsmasq: the active node obtains it with the
// pair's client identifier, and after a failover the other node obtains
// the same address.
func TestDHCPAddressFollowsTheService(t *testing.T) {
	p := newPair(t, pairOptions{})
	cfg := p.config()
	cfg = strings.Replace(cfg, fmt.Sprintf("address = %q", testenv.FloatIP.String()),
		fmt.Sprintf("dhcp = true\nclient_id = \"lab-vip\"\ninterface = %q", testenv.PublicIf), 1)
	// Without a fixed address smbd has nothing to bind to ahead of time:
	// the group is the volume and the address.
	if i := strings.Index(cfg, "\n[[resource]]\nname = \"smb\""); i >= 0 {
		cfg = cfg[:i+1]
	}
	for _, n := range []string{"a", "b"} {
		p.writeConfig(n, cfg)
	}
	srv := testenv.StartDHCP(t, p.lab, testenv.DHCPOptions{})
	active := p.startBoth()

	var leased netip.Addr
	p.waitFor(10*time.Second, "a lease for the client id", func() bool {
		leases, err := srv.Leases()
		if err != nil || len(leases) != 1 {
			return false
		}
		leased = leases[0].Addr
		ok, _ := p.lab.Node(active).HasAddr(leased)
		return ok
	})
	if !strings.Contains(string(mustLeases(t, srv)[0].ClientID), "lab-vip") {
		t.Fatalf("the lease's client id is %q", mustLeases(t, srv)[0].ClientID)
	}

	if out, err := p.haclient(active, "failover"); err != nil {
		t.Fatalf("haclient failover: %v: %s", err, out)
	}
	next := other(active)
	p.waitRole(next, admin.RoleActive, 20*time.Second)
	p.waitFor(10*time.Second, next+" to hold "+leased.String(), func() bool {
		ok, _ := p.lab.Node(next).HasAddr(leased)
		return ok
	})
	if ok, _ := p.lab.Node(active).HasAddr(leased); ok {
		t.Fatalf("%s still holds %v after the failover", active, leased)
	}
	if leases := mustLeases(t, srv); len(leases) != 1 || leases[0].Addr != leased {
		t.Fatalf("leases after the failover: %+v, want the one lease of %v", leases, leased)
	}
}

func mustLeases(t *testing.T, srv *testenv.DHCPServer) []testenv.DHCPLease {
	t.Helper()
	l, err := srv.Leases()
	if err != nil {
		t.Fatal(err)
	}
	return l
}
