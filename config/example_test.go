package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tandem-ha/tandem/config"
)

func ExampleParse() {
	dir, err := os.MkdirTemp("", "tandem")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	key := filepath.Join(dir, "authkey")
	if err := os.WriteFile(key, []byte("0123456789abcdef"), 0o600); err != nil {
		panic(err)
	}

	doc := `[cluster]
name = "filer"
auth_key_file = "` + key + `"
deadtime = "2s"
unsafe_no_fencing = true

[[node]]
name = "alpha"
address = "198.18.1.1"

[[node]]
name = "beta"
address = "198.18.1.2"

[[resource]]
name = "vip"
type = "floatip"
address = "198.18.0.50/24"
`
	c, err := config.Parse("tandem.toml", []byte(doc))
	if err != nil {
		fmt.Println(err)
		return
	}
	vip := c.Resource("vip")
	fmt.Println(c.Cluster.Keepalive, c.Cluster.Deadtime, vip.FloatIP.Address, vip.FloatIP.ARPRounds, vip.MonitorInterval)

	// A misspelt key and a bad address are both reported, with their lines.
	bad := strings.Replace(doc, `deadtime = "2s"`, `dedtime = "2s"`, 1)
	bad = strings.Replace(bad, "198.18.0.50/24", "10.0.0.300/24", 1)
	_, err = config.Parse("tandem.toml", []byte(bad))
	fmt.Println(err)
	// Output:
	// 200ms 2s 198.18.0.50/24 3 2s
	// config: tandem.toml:4: cluster: dedtime: unknown key
	// config: tandem.toml:18: resource "vip": address "10.0.0.300/24": bad IP
}

func ExampleParameters() {
	params, err := config.Parameters(config.KindTickle)
	if err != nil {
		panic(err)
	}
	for _, p := range params {
		if p.Common {
			continue
		}
		fmt.Printf("%-8s %-12s required=%-5v default=%q\n", p.Name, p.Type, p.Required, p.Default)
	}
	// Output:
	// floatip  string       required=true  default=""
	// ports    integer list required=false default="445,139"
	// rounds   integer      required=false default="3"
	// interval duration     required=false default="1s"
}
