package testenv

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func TestServedAddresses(t *testing.T) {
	v4 := fmt.Sprintf("[[resource]]\nname = \"vip\"\ntype = \"floatip\"\naddress = %q\n", FloatIP)
	v6 := fmt.Sprintf("[[resource]]\nname = \"vip6\"\ntype = \"floatip\"\naddress = %q\n", FloatIP6)
	for _, tc := range []struct {
		name, toml string
		want       []netip.Addr
	}{
		{"IPv4 only", v4, []netip.Addr{FloatIP.Addr()}},
		{"IPv4 and IPv6", v4 + "\n" + v6, []netip.Addr{FloatIP.Addr(), FloatIP6.Addr()}},
		// The address named elsewhere than in a floatip is not served.
		{"IPv6 in a comment", v4 + "# " + FloatIP6.String() + "\n", []netip.Addr{FloatIP.Addr()}},
		{"a file that does not decode", v4 + v6 + "[[resource\n", []netip.Addr{FloatIP.Addr()}},
	} {
		if got := servedAddresses(tc.toml); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
