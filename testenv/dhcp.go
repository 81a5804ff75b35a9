package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DHCPOptions shape a lab DHCP server.
type DHCPOptions struct {
	// Host is the host dnsmasq runs on; empty means the client.
	Host string
	// First and Last bound the addresses leased; zero means DHCPRange.
	First, Last netip.Addr
	// LeaseTime is the lease's length; zero means 2 minutes, the shortest
	// dnsmasq grants.
	LeaseTime time.Duration
	// RenewTime (T1) and RebindTime (T2), when not zero, are sent as
	// options 58 and 59, so that a test sees renewals well before the
	// lease's end.
	RenewTime, RebindTime time.Duration
	// Lifetime bounds how long dnsmasq runs; zero means 10 minutes.
	Lifetime time.Duration
}

// DHCPServer is dnsmasq serving DHCP, and no DNS, on the public network
// from one host of the lab. Its lease file and log are in its own
// directory under the lab's.
type DHCPServer struct {
	// Host runs the server.
	Host *Host
	// Dir holds the lease file.
	Dir string

	cancel context.CancelFunc
	done   chan struct{}
	out    *syncBuffer
	err    error // how dnsmasq ended; set before done is closed
}

// DHCPLease is one line of dnsmasq's lease file.
type DHCPLease struct {
	// Expiry is when the lease ends.
	Expiry time.Time
	// MAC is the hardware address of the client that holds it.
	MAC net.HardwareAddr
	// Addr is the leased address.
	Addr netip.Addr
	// ClientID is the client identifier as sent (option 61, type byte
	// first); empty when the client sent none.
	ClientID []byte
}

// syncBuffer is a bytes.Buffer for a process's output read while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// dhcpReadyTimeout bounds dnsmasq's start.
const dhcpReadyTimeout = 10 * time.Second

// StartDHCP starts dnsmasq as a DHCP server on a host's public interface
// and returns once it serves. Stop ends it; closing the lab ends it too.
func (l *Lab) StartDHCP(opts DHCPOptions) (*DHCPServer, error) {
	if opts.Host == "" {
		opts.Host = "client"
	}
	if !opts.First.IsValid() {
		opts.First, opts.Last = DHCPRange[0], DHCPRange[1]
	}
	if opts.LeaseTime == 0 {
		opts.LeaseTime = 2 * time.Minute
	}
	if opts.Lifetime == 0 {
		opts.Lifetime = 10 * time.Minute
	}
	h := l.Host(opts.Host)
	switch {
	case h == nil:
		return nil, fmt.Errorf("testenv: dhcp: no host %q", opts.Host)
	case !PublicNet.Contains(opts.First) || !PublicNet.Contains(opts.Last) || opts.Last.Less(opts.First):
		return nil, fmt.Errorf("testenv: dhcp: range %s-%s is not a range inside %s", opts.First, opts.Last, PublicNet)
	case opts.LeaseTime < 2*time.Minute:
		return nil, fmt.Errorf("testenv: dhcp: lease time %v: dnsmasq grants 2 minutes at least", opts.LeaseTime)
	}
	dir, err := os.MkdirTemp(l.Dir, "dhcp-")
	if err != nil {
		return nil, err
	}
	mask := net.IP(net.CIDRMask(PublicNet.Bits(), 32)).String()
	args := []string{
		"--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
		"--interface=" + PublicIf, "--bind-interfaces", "--except-interface=lo",
		fmt.Sprintf("--dhcp-range=%s,%s,%s,%d", opts.First, opts.Last, mask, int(opts.LeaseTime.Seconds())),
		"--dhcp-authoritative", "--dhcp-leasefile=" + filepath.Join(dir, "leases"),
		"--pid-file=", "--user=root", "--group=root", "--log-facility=-", "--log-dhcp",
	}
	if opts.RenewTime > 0 {
		args = append(args, fmt.Sprintf("--dhcp-option=option:T1,%d", int(opts.RenewTime.Seconds())))
	}
	if opts.RebindTime > 0 {
		args = append(args, fmt.Sprintf("--dhcp-option=option:T2,%d", int(opts.RebindTime.Seconds())))
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Lifetime)
	s := &DHCPServer{Host: h, Dir: dir, cancel: cancel, done: make(chan struct{}), out: &syncBuffer{}}
	cmd := h.CommandContext(ctx, "dnsmasq", args...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("testenv: dhcp on %s: start dnsmasq: %w", h.Name, err)
	}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	l.event("dnsmasq serving DHCP on %s (%s-%s)", h.Name, opts.First, opts.Last)
	deadline := time.NewTimer(dhcpReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(s.out.String(), "DHCP, IP range") {
		select {
		case <-s.done:
			cancel()
			return nil, fmt.Errorf("testenv: dhcp on %s: dnsmasq exited (%v): %s", h.Name, s.err, strings.TrimSpace(s.out.String()))
		case <-deadline.C:
			s.Stop()
			return nil, fmt.Errorf("testenv: dhcp on %s: dnsmasq not serving after %v: %s", h.Name, dhcpReadyTimeout, strings.TrimSpace(s.out.String()))
		case <-tick.C:
		}
	}
	return s, nil
}

// StartDHCP is Lab.StartDHCP for a test: it skips (or, with
// TANDEM_LAB_REQUIRED=1, fails) the test when dnsmasq is not installed,
// fails it when dnsmasq does not start, and stops dnsmasq when the test
// ends.
func StartDHCP(t testing.TB, l *Lab, opts DHCPOptions) *DHCPServer {
	t.Helper()
	RequireCommands(t, "dnsmasq", "dnsmasq-base")
	s, err := l.StartDHCP(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// Log returns what dnsmasq has logged so far.
func (s *DHCPServer) Log() string { return s.out.String() }

// Stop ends dnsmasq and waits for it. It is safe to call more than once.
func (s *DHCPServer) Stop() error {
	s.cancel()
	select {
	case <-s.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("testenv: dhcp on %s: dnsmasq did not exit within 10s", s.Host.Name)
	}
}

// Leases reads dnsmasq's lease file; no file yet is no leases.
func (s *DHCPServer) Leases() ([]DHCPLease, error) {
	path := filepath.Join(s.Dir, "leases")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseLeases(path, data)
}

// parseLeases reads dnsmasq's lease file format: per line the expiry in
// seconds since the epoch (0 for infinite), MAC, address, host name or
// "*", client id in hex with colons or "*".
func parseLeases(path string, data []byte) ([]DHCPLease, error) {
	var out []DHCPLease
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 5 {
			return nil, fmt.Errorf("testenv: %s:%d: %d fields, want 5", path, n, len(f))
		}
		var l DHCPLease
		secs, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("testenv: %s:%d: expiry %q: %w", path, n, f[0], err)
		}
		if secs != 0 {
			l.Expiry = time.Unix(secs, 0)
		}
		if l.MAC, err = net.ParseMAC(f[1]); err != nil {
			return nil, fmt.Errorf("testenv: %s:%d: %w", path, n, err)
		}
		if l.Addr, err = netip.ParseAddr(f[2]); err != nil {
			return nil, fmt.Errorf("testenv: %s:%d: %w", path, n, err)
		}
		if f[4] != "*" {
			for _, h := range strings.Split(f[4], ":") {
				b, err := strconv.ParseUint(h, 16, 8)
				if err != nil {
					return nil, fmt.Errorf("testenv: %s:%d: client id %q: %w", path, n, f[4], err)
				}
				l.ClientID = append(l.ClientID, byte(b))
			}
		}
		out = append(out, l)
	}
	return out, sc.Err()
}
