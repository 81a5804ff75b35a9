package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/heartbeat"
	"github.com/tandem-ha/tandem/resources"
	"github.com/tandem-ha/tandem/smbservice"
)

// tickleHooks connect a tickle resource to the daemon: where the peer's
// connections come from at takeover, and where this node's go.
type tickleHooks struct {
	source   func(ctx context.Context) ([]smbservice.Conn, error)
	onChange func(added, removed []smbservice.Conn, now time.Time)
}

// buildGroup makes the resource group the configuration describes, and
// returns its tickle resource, if any.
func buildGroup(cfg *config.Config, runDir string, log *slog.Logger, hooks tickleHooks) (*resources.Group, *smbservice.Tickle, error) {
	var members []resources.Member
	var tickle *smbservice.Tickle
	for _, r := range cfg.Resources {
		var res resources.Resource
		switch {
		case r.Filesystem != nil:
			f := r.Filesystem
			res = resources.NewFilesystem(resources.FilesystemParams{
				Name: r.Name, Device: f.Device, Mountpoint: f.Mountpoint,
				FSType: f.FSType, Options: f.Options, Fsck: f.Fsck,
			})
		case r.FloatIP != nil:
			f := r.FloatIP
			p := resources.FloatIPParams{
				Name: r.Name, Interface: f.Interface,
				ARPRounds: f.ARPRounds, ARPInterval: f.ARPInterval,
				DHCP: f.DHCP, ClientID: f.ClientID,
				Log: log,
			}
			if !f.DHCP {
				p.Address = f.Address.String()
			}
			res = resources.NewFloatIP(p)
		case r.SMB != nil:
			s := r.SMB
			p := smbservice.Params{
				Name: r.Name, Config: s.Config, Smbd: s.Smbd, Address: s.Address,
				StartTimeout: r.StartTimeout, StopTimeout: r.StopTimeout,
				RunDir: runDir, Logger: log,
			}
			switch s.Mode {
			case config.SMBModeSystemd:
				if !smbservice.SystemdRunning() {
					return nil, nil, fmt.Errorf("daemon: resource %q: smb mode %q: systemd is not running on this host; use mode %q", r.Name, s.Mode, config.SMBModeProcess)
				}
				smb, err := smbservice.NewSystemd(p, s.Units)
				if err != nil {
					return nil, nil, err
				}
				res = smb
			default:
				smb, err := smbservice.New(p)
				if err != nil {
					return nil, nil, err
				}
				res = smb
			}
		case r.Tickle != nil:
			tk := r.Tickle
			fl := cfg.Resource(tk.FloatIP)
			if fl == nil || fl.FloatIP == nil || fl.FloatIP.DHCP {
				return nil, nil, fmt.Errorf("daemon: resource %q: floatip %q must be a floatip resource with a fixed address", r.Name, tk.FloatIP)
			}
			if tickle != nil {
				return nil, nil, fmt.Errorf("daemon: resource %q: the group has a tickle resource already", r.Name)
			}
			ports := make([]uint16, len(tk.Ports))
			for i, p := range tk.Ports {
				ports[i] = uint16(p)
			}
			tickle = smbservice.NewTickle(smbservice.TickleParams{
				Name: r.Name, Addrs: []netip.Addr{fl.FloatIP.Address.Addr()}, Ports: ports,
				Rounds: tk.Rounds, Interval: tk.Interval,
				Source: hooks.source, OnChange: hooks.onChange, Logger: log,
			})
			res = tickle
		default:
			return nil, nil, fmt.Errorf("daemon: resource %q: type %s is not available in this version", r.Name, r.Type)
		}
		members = append(members, resources.Member{Resource: res, Timeouts: resources.Timeouts{
			Start: r.StartTimeout, Stop: r.StopTimeout,
		}})
	}
	g, err := resources.NewGroup(cfg.Cluster.Name, members...)
	return g, tickle, err
}

// buildMedia opens the heartbeat media between the local node and the
// peer: the LAN always, the serial cable and the quorum disk when
// configured. On error it closes
// what it opened.
func buildMedia(cfg *config.Config, local, peer *config.Node, log *slog.Logger) (media []heartbeat.Medium, err error) {
	defer func() {
		if err != nil {
			for _, m := range media {
				m.Close()
			}
			media = nil
		}
	}()
	mode, err := heartbeat.ParseUDPMode(cfg.Heartbeat.UDP.Mode)
	if err != nil {
		return nil, err
	}
	udp, err := heartbeat.DialUDP(heartbeat.UDPConfig{
		Name: "lan", Mode: mode, Local: local.Address, Port: cfg.Heartbeat.UDP.Port,
		Peer: peer.Address, Group: cfg.Heartbeat.UDP.Group, Interface: cfg.Heartbeat.UDP.Interface,
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: heartbeat LAN: %w", err)
	}
	media = append(media, udp)
	if s := cfg.Heartbeat.Serial; s != nil && local.Serial != "" {
		serial, err := heartbeat.DialSerial(heartbeat.SerialConfig{Name: "serial", Device: local.Serial, Baud: s.Baud})
		if err != nil {
			return media, fmt.Errorf("daemon: serial cable: %w", err)
		}
		media = append(media, serial)
	}
	if d := cfg.Heartbeat.Disk; d != nil {
		disk, err := heartbeat.DialDisk(heartbeat.DiskConfig{
			Name: "disk", Device: d.Device, Cluster: cfg.Cluster.Name,
			Local: local.Name, Peer: peer.Name, Interval: d.Interval, Logger: log,
		})
		if err != nil {
			return media, fmt.Errorf("daemon: quorum disk: %w", err)
		}
		media = append(media, disk)
	}
	return media, nil
}

// readKey reads the shared key that signs heartbeats. The configuration
// checked its mode already; a trailing newline is not part of the key.
func readKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("daemon: auth key: %w", err)
	}
	key := []byte(strings.TrimRight(string(data), "\r\n"))
	if len(key) < heartbeat.MinKeyLen {
		return nil, fmt.Errorf("daemon: auth key %s: %d bytes, want at least %d", path, len(key), heartbeat.MinKeyLen)
	}
	return key, nil
}

// monitorInterval is how often the running group is checked: the shortest
// interval any resource asks for.
func monitorInterval(cfg *config.Config) time.Duration {
	d := 2 * time.Second
	for i, r := range cfg.Resources {
		if i == 0 || (r.MonitorInterval > 0 && r.MonitorInterval < d) {
			d = r.MonitorInterval
		}
	}
	if d <= 0 {
		d = 2 * time.Second
	}
	return d
}

// restartLimit is how often a failed resource is restarted in place: the
// strictest limit of any resource.
func restartLimit(cfg *config.Config) int {
	limit := 0
	for i, r := range cfg.Resources {
		if i == 0 || r.RestartLimit < limit {
			limit = r.RestartLimit
		}
	}
	if limit == 0 {
		return -1 // zero in the file means never restart in place
	}
	return limit
}

// resendInterval is how often the decision core repeats its report and
// any unanswered handshake message. Messages that matter go out at once;
// the repeats only cover loss, so they need not come with every heartbeat:
// each repeat is a burst of work on every medium of both nodes.
func resendInterval(cfg *config.Config) time.Duration {
	return max(cfg.Cluster.Keepalive, time.Second)
}

// tickInterval is how often the loop lets time pass in the decision core
// and checks whether a monitor is due: as often as the core asks, and
// often enough for the monitors' timing. Everything else reaches the loop
// as an event the moment it happens.
func tickInterval(core time.Duration, cfg *config.Config) time.Duration {
	return min(core, monitorInterval(cfg)/2)
}
