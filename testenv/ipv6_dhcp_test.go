package testenv

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

func TestPublicIPv6(t *testing.T) {
	RequireCommands(t, "ping", "iputils-ping")
	lab := Start(t, Options{})
	a, b, client := lab.Node("a"), lab.Node("b"), lab.Client()
	ping6 := func(h *Host, to netip.Prefix) error {
		_, err := h.Run(context.Background(), "ping", "-6", "-c1", "-W1", to.Addr().String())
		return err
	}
	for _, h := range []*Host{a, b, client} {
		if !PublicNet6.Contains(h.PublicAddr6.Addr()) || h.PublicAddr6 == FloatIP6 {
			t.Fatalf("%s's IPv6 address %v: want one in %v other than %v", h.Name, h.PublicAddr6, PublicNet6, FloatIP6)
		}
		// Usable at once: no duplicate address detection to wait out.
		if err := ping6(client, h.PublicAddr6); err != nil {
			t.Fatalf("client to %s: %v", h.Name, err)
		}
	}
	if ok, _ := client.HasAddr(FloatIP6.Addr()); ok {
		t.Fatal("the lab assigned the floating IPv6 address")
	}
	// No IPv6 on the heartbeat LAN, apart from the kernel's link-local.
	if out := run(t, a, "ip", "-6", "-o", "addr", "show", "dev", HeartbeatIf, "scope", "global"); out != "" {
		t.Errorf("IPv6 addresses on the heartbeat LAN: %s", out)
	}
	// A reboot brings the address back.
	if err := lab.PowerOff("a"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.HasAddr(a.PublicAddr6.Addr()); ok {
		t.Fatal("a powered off still has its IPv6 address")
	}
	if err := lab.PowerOn("a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a's IPv6 address back after power on", func() bool { return ping6(client, a.PublicAddr6) == nil })
	if st := lab.Status(); st.Hosts[0].PublicAddr6 != "2001:2::1/64" {
		t.Errorf("status of a: IPv6 address %q", st.Hosts[0].PublicAddr6)
	}
}

func TestDHCPServer(t *testing.T) {
	lab := Start(t, Options{})
	srv := StartDHCP(t, lab, DHCPOptions{RenewTime: 30 * time.Second})
	a := lab.Node("a")
	clientID := []byte("\x00lab-test")
	var lease *nclient4.Lease
	var hw net.HardwareAddr
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := a.Do(func() error {
		ifi, err := net.InterfaceByName(PublicIf)
		if err != nil {
			return err
		}
		hw = ifi.HardwareAddr
		c, err := nclient4.New(PublicIf, nclient4.WithTimeout(time.Second))
		if err != nil {
			return err
		}
		defer c.Close()
		lease, err = c.Request(ctx, dhcpv4.WithOption(dhcpv4.OptClientIdentifier(clientID)))
		return err
	})
	if err != nil {
		t.Fatalf("lease from the lab's dnsmasq: %v\n%s", err, srv.Log())
	}
	ip, _ := netip.AddrFromSlice(lease.ACK.YourIPAddr.To4())
	if ip.Less(DHCPRange[0]) || DHCPRange[1].Less(ip) {
		t.Errorf("leased %v, outside %v-%v", ip, DHCPRange[0], DHCPRange[1])
	}
	if got := lease.ACK.IPAddressLeaseTime(0); got != 2*time.Minute {
		t.Errorf("lease time %v, want 2m", got)
	}
	if got := lease.ACK.IPAddressRenewalTime(0); got != 30*time.Second {
		t.Errorf("T1 %v, want the 30s asked for", got)
	}
	if got := net.IP(lease.ACK.SubnetMask()).String(); got != "255.255.255.0" {
		t.Errorf("mask %s", got)
	}
	if srvID := lease.ACK.ServerIdentifier(); !srvID.Equal(lab.Client().PublicAddr.Addr().AsSlice()) {
		t.Errorf("server id %v, want the client host's address", srvID)
	}
	var leases []DHCPLease
	eventually(t, 5*time.Second, "the lease file", func() bool {
		leases, err = srv.Leases()
		return err == nil && len(leases) == 1
	})
	l := leases[0]
	if l.Addr != ip || !bytes.Equal(l.MAC, hw) || !bytes.Equal(l.ClientID, clientID) ||
		l.Expiry.Before(time.Now().Add(time.Minute)) || l.Expiry.After(time.Now().Add(3*time.Minute)) {
		t.Errorf("lease file: %+v; want %v for %v with client id % x ending in about 2 minutes", l, ip, hw, clientID)
	}
}

func TestDHCPOptionsRefused(t *testing.T) {
	lab := &Lab{hosts: map[string]*Host{"client": {Name: "client"}}}
	for _, o := range []DHCPOptions{
		{Host: "nobody"},
		{First: netip.MustParseAddr("198.18.1.10"), Last: netip.MustParseAddr("198.18.1.20")},
		{First: netip.MustParseAddr("198.18.0.20"), Last: netip.MustParseAddr("198.18.0.10")},
		{LeaseTime: time.Minute},
	} {
		if _, err := lab.StartDHCP(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestParseLeases(t *testing.T) {
	data := []byte("1893456000 0a:00:00:00:00:01 198.18.0.150 * 00:66:69:6c:65:72\n0 0a:00:00:00:00:02 198.18.0.151 host *\n")
	ls, err := parseLeases("leases", data)
	if err != nil || len(ls) != 2 {
		t.Fatalf("%v, %v", ls, err)
	}
	if !ls[0].Expiry.Equal(time.Unix(1893456000, 0)) || string(ls[0].ClientID) != "\x00filer" || ls[0].Addr != netip.MustParseAddr("198.18.0.150") {
		t.Errorf("first: %+v", ls[0])
	}
	if !ls[1].Expiry.IsZero() || ls[1].ClientID != nil {
		t.Errorf("second: %+v", ls[1])
	}
	for _, bad := range []string{"1 2 3\n", "x 0a:00:00:00:00:01 198.18.0.150 * *\n", "1 zz 198.18.0.150 * *\n", "1 0a:00:00:00:00:01 198.18.0.300 * *\n", "1 0a:00:00:00:00:01 198.18.0.150 * 0g\n"} {
		if _, err := parseLeases("leases", []byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
