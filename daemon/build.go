package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/heartbeat"
	"github.com/tandem-ha/tandem/resources"
	"github.com/tandem-ha/tandem/smbservice"
)

// buildGroup makes the resource group the configuration describes.
func buildGroup(cfg *config.Config, runDir string, log *slog.Logger) (*resources.Group, error) {
	var members []resources.Member
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
			if f.DHCP {
				return nil, fmt.Errorf("daemon: resource %q: DHCP-leased addresses are not available in this version", r.Name)
			}
			res = resources.NewFloatIP(resources.FloatIPParams{
				Name: r.Name, Address: f.Address.String(), Interface: f.Interface,
				ARPRounds: f.ARPRounds, ARPInterval: f.ARPInterval,
				Log: log,
			})
		case r.SMB != nil:
			s := r.SMB
			if s.Mode != config.SMBModeProcess {
				return nil, fmt.Errorf("daemon: resource %q: smb mode %q is not available in this version (use %q)", r.Name, s.Mode, config.SMBModeProcess)
			}
			smb, err := smbservice.New(smbservice.Params{
				Name: r.Name, Config: s.Config, Smbd: s.Smbd, Address: s.Address,
				StartTimeout: r.StartTimeout, StopTimeout: r.StopTimeout,
				RunDir: runDir, Logger: log,
			})
			if err != nil {
				return nil, err
			}
			res = smb
		default:
			return nil, fmt.Errorf("daemon: resource %q: type %s is not available in this version", r.Name, r.Type)
		}
		members = append(members, resources.Member{Resource: res, Timeouts: resources.Timeouts{
			Start: r.StartTimeout, Stop: r.StopTimeout,
		}})
	}
	return resources.NewGroup(cfg.Cluster.Name, members...)
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
