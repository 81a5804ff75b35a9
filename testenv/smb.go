package testenv

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// SMBConfig describes an smb.conf for a lab node.
type SMBConfig struct {
	// NetbiosName is the server's name; the same on both nodes, since it
	// seeds the SMB2 server GUID. Empty means "TANDEMLAB".
	NetbiosName string
	// Addresses smbd binds to (bind interfaces only = yes).
	Addresses []netip.Addr
	// Share is the share's name; empty means "share".
	Share string
	// Path is the directory the share serves.
	Path string
	// StateDir holds Samba's state and private directories, which belong
	// on the shared disk in a failover pair; empty means the node's own
	// directory.
	StateDir string
	// File is where to write the smb.conf, as the machine running the lab
	// sees it; empty means Dir/smb.conf. Dir/etc/smb.conf is the node's
	// /etc/tandem/smb.conf.
	File string
}

// WriteSMBConf writes an smb.conf for the node and returns its path. Lock,
// cache, pid and log directories are the node's own; the share allows
// guests, so a client reads it with smbclient -N.
func (h *Host) WriteSMBConf(c SMBConfig) (string, error) {
	if c.NetbiosName == "" {
		c.NetbiosName = "TANDEMLAB"
	}
	if c.Share == "" {
		c.Share = "share"
	}
	local := filepath.Join(h.Dir, "samba")
	if c.StateDir == "" {
		c.StateDir = filepath.Join(local, "state")
	}
	dirs := map[string]string{
		"lock directory":  filepath.Join(local, "lock"),
		"cache directory": filepath.Join(local, "cache"),
		"pid directory":   filepath.Join(local, "run"),
		"ncalrpc dir":     filepath.Join(local, "run", "ncalrpc"),
		"state directory": c.StateDir,
		"private dir":     filepath.Join(c.StateDir, "private"),
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	var ifs []string
	for _, a := range c.Addresses {
		ifs = append(ifs, a.String())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[global]\n")
	fmt.Fprintf(&b, "\tnetbios name = %s\n\tworkgroup = TANDEM\n\tserver role = standalone server\n", c.NetbiosName)
	fmt.Fprintf(&b, "\tinterfaces = %s\n\tbind interfaces only = yes\n", strings.Join(ifs, " "))
	fmt.Fprintf(&b, "\tsmb ports = 445\n\tdisable netbios = yes\n\tserver multi channel support = no\n")
	for _, k := range []string{"lock directory", "cache directory", "pid directory", "ncalrpc dir", "state directory", "private dir"} {
		fmt.Fprintf(&b, "\t%s = %s\n", k, dirs[k])
	}
	fmt.Fprintf(&b, "\tlog file = %s\n\tmax log size = 1000\n\tlog level = 1\n", filepath.Join(local, "log.smbd"))
	fmt.Fprintf(&b, "\tpassdb backend = tdbsam\n\tmap to guest = Bad User\n\tguest account = nobody\n")
	fmt.Fprintf(&b, "\tload printers = no\n\tprinting = bsd\n\tprintcap name = /dev/null\n\tdisable spoolss = yes\n\tusershare path =\n")
	fmt.Fprintf(&b, "\n[%s]\n\tpath = %s\n\tguest ok = yes\n\tread only = no\n\tforce user = root\n", c.Share, c.Path)
	path := c.File
	if path == "" {
		path = filepath.Join(h.Dir, "smb.conf")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	return path, nil
}
