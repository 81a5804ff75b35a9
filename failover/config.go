package failover

import (
	"errors"
	"fmt"
	"time"
)

// Defaults for the zero fields of a Config.
const (
	DefaultInitDead       = 30 * time.Second
	DefaultResendInterval = 200 * time.Millisecond
	DefaultFenceRetryMin  = time.Second
	DefaultFenceRetryMax  = 30 * time.Second
	DefaultRestartLimit   = 3
	DefaultRestartWindow  = 10 * time.Minute
)

// Config is what a Machine needs to know about its node and the pair. A zero
// duration or limit selects the default named beside it.
type Config struct {
	// Node is this node's name; Peer is the other node's. Both are required
	// and must differ.
	Node, Peer string

	// Incarnation names this run of the daemon: the generation number it
	// persists and bumps at every start. It must be non-zero and greater than
	// that of any earlier run on this node, so that the peer can tell this
	// run's messages from a dead run's.
	Incarnation uint64

	// PreferredNode (preferred_node) is the node that takes the service when
	// both start together, and the one auto_failback returns it to. Empty, or
	// one of Node and Peer. When empty, the node whose name sorts first is
	// preferred at start-up and there is no failback.
	PreferredNode string

	// AutoFailback (auto_failback): when the preferred node rejoins as
	// standby, move the service back to it by a planned handover.
	AutoFailback bool

	// InitDead (initdead) is how long to wait at start-up for the peer before
	// treating it as dead. Default DefaultInitDead.
	InitDead time.Duration

	// ResendInterval is how often the Machine repeats its Report and any
	// unanswered handshake message. Default DefaultResendInterval; the
	// keepalive interval is a good value.
	ResendInterval time.Duration

	// FenceRetryMin and FenceRetryMax bound the backoff between failed
	// fencing attempts, which doubles from the one to the other. Defaults
	// DefaultFenceRetryMin and DefaultFenceRetryMax.
	FenceRetryMin, FenceRetryMax time.Duration

	// FenceDelay holds back this node's first fencing attempt against the
	// preferred node, so that when the two lose each other while both are
	// alive the preferred node fences first and wins. Zero (the default) for
	// no delay.
	FenceDelay time.Duration

	// RestartLimit is how many times a failed resource is restarted in place
	// within RestartWindow before the service leaves this node. Zero selects
	// DefaultRestartLimit; a negative value means never restart in place.
	RestartLimit int

	// RestartWindow is the window RestartLimit counts in. Default
	// DefaultRestartWindow.
	RestartWindow time.Duration

	// Disk says the pair shares a quorum disk. This node then takes or keeps
	// the service only while it renews its own slot (the lease), and a
	// peer fenced through the disk counts as down only once its slot has
	// been still for DiskWait. The daemon reports the disk with DiskStatus
	// events.
	Disk bool
	// Lease is how long this node keeps the service without renewing its
	// slot; required with Disk. The peer's lease is taken to be the same
	// (both nodes read one configuration).
	Lease time.Duration
	// PeerWatchdog is the peer's watchdog timeout; required with Disk.
	PeerWatchdog time.Duration
	// DiskInterval is how often each node writes its slot; required with
	// Disk. Two of them are the margin of DiskWait: a movement of the
	// peer's counter is seen up to one interval late.
	DiskInterval time.Duration
	// UnsafeNoFencing (unsafe_no_fencing) skips fencing: a silent peer is
	// taken to be down at once. A Notice says so every time a fence is
	// skipped. Only for labs: it does not protect shared disks.
	UnsafeNoFencing bool
}

// validate checks c and fills in defaults.
func (c *Config) validate() error {
	switch {
	case c.Node == "":
		return errors.New("failover: config: no node name")
	case c.Peer == "":
		return errors.New("failover: config: no peer name")
	case c.Node == c.Peer:
		return fmt.Errorf("failover: config: node and peer are both %q", c.Node)
	case c.PreferredNode != "" && c.PreferredNode != c.Node && c.PreferredNode != c.Peer:
		return fmt.Errorf("failover: config: preferred node %q is neither %q nor %q", c.PreferredNode, c.Node, c.Peer)
	case c.Incarnation == 0:
		return errors.New("failover: config: incarnation 0")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"initdead", &c.InitDead, DefaultInitDead},
		{"resend interval", &c.ResendInterval, DefaultResendInterval},
		{"fence retry min", &c.FenceRetryMin, DefaultFenceRetryMin},
		{"fence retry max", &c.FenceRetryMax, DefaultFenceRetryMax},
		{"fence delay", &c.FenceDelay, 0},
		{"restart window", &c.RestartWindow, DefaultRestartWindow},
	} {
		if *d.v < 0 {
			return fmt.Errorf("failover: config: %s %v is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Disk {
		switch {
		case c.Lease <= 0:
			return errors.New("failover: config: a quorum disk needs a lease")
		case c.PeerWatchdog <= 0:
			return errors.New("failover: config: a quorum disk needs the peer's watchdog timeout")
		case c.DiskInterval <= 0:
			return errors.New("failover: config: a quorum disk needs its interval")
		}
	}
	if c.FenceRetryMax < c.FenceRetryMin {
		return fmt.Errorf("failover: config: fence retry max %v is below min %v", c.FenceRetryMax, c.FenceRetryMin)
	}
	switch {
	case c.RestartLimit == 0:
		c.RestartLimit = DefaultRestartLimit
	case c.RestartLimit < 0:
		c.RestartLimit = 0
	}
	return nil
}

// preferred returns the node that takes the service when both start
// together.
func (c *Config) preferred() string {
	if c.PreferredNode != "" {
		return c.PreferredNode
	}
	return min(c.Node, c.Peer)
}

// DiskWait is how long the peer's slot must stay still, after a fence
// message was left for it, before the peer counts as down without an
// agent's word: its lease, within which it may still hold the service
// without renewing, then its watchdog timeout, within which an unfed
// watchdog resets it, and two disk intervals of margin.
func (c *Config) DiskWait() time.Duration {
	return c.Lease + c.PeerWatchdog + 2*c.DiskInterval
}
