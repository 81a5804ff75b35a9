package smbservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tandem-ha/tandem/resources"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Defaults of Params.
const (
	DefaultPort           = 445
	DefaultStartTimeout   = 20 * time.Second
	DefaultMonitorTimeout = time.Second
)

// readyInterval is the pause between NEGOTIATE attempts while smbd starts.
// smbd answers some 40–55 ms after launch; a refused connect costs little.
const readyInterval = 10 * time.Millisecond

// Params configures an smb resource. Zero fields take the documented
// defaults.
type Params struct {
	// Name is the resource's name from the configuration.
	Name string
	// Config is the smb.conf smbd runs with.
	Config string
	// Smbd is the smbd binary; DefaultSmbd when empty.
	Smbd string
	// Testparm is the testparm binary Validate runs; "testparm" from PATH
	// when empty.
	Testparm string
	// Address is the floating address clients use. Readiness and health
	// are judged by an SMB2 NEGOTIATE answered there, and smb.conf must
	// list it in "interfaces".
	Address netip.Addr
	// Port is the SMB port; DefaultPort when zero.
	Port uint16
	// StartTimeout bounds Start: launch and the first answered NEGOTIATE;
	// DefaultStartTimeout when zero.
	StartTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL;
	// DefaultStopTimeout when zero.
	StopTimeout time.Duration
	// MonitorTimeout bounds one NEGOTIATE round trip; DefaultMonitorTimeout
	// when zero.
	MonitorTimeout time.Duration
	// RunDir holds the pid file; DefaultRunDir when empty.
	RunDir string
	// SharedDir, when set, is the shared filesystem's mount point: Validate
	// warns when smb.conf keeps "state directory" or "private dir" outside
	// it, and does not count them missing while it is not mounted.
	SharedDir string
	// SambaLog leaves smbd's logging to smb.conf instead of Logger.
	SambaLog bool
	// Logger receives smbd's output, events and Validate's warnings;
	// slog.Default() when nil.
	Logger *slog.Logger
}

// Resource is the smb resource: smbd supervised as a process, ready and
// healthy when it answers an SMB2 NEGOTIATE on the floating address. It
// implements resources.Resource.
type Resource struct {
	p   Params
	sup Supervisor
	log *slog.Logger

	// dial opens the TCP connection of a NEGOTIATE; listeners returns the
	// TCP sockets listening on a port. Tests replace both to reach into
	// another network namespace.
	dial      func(ctx context.Context, addr netip.AddrPort) (net.Conn, error)
	listeners func(port uint16) ([]netip.AddrPort, error)

	mu   sync.Mutex // serialises Start, Stop and Monitor
	guid GUID       // server GUID of the last answer; zero before one
}

var _ resources.Resource = (*Resource)(nil)

// New returns the smb resource p describes. It checks the parameters only;
// Validate checks the host and smb.conf.
func New(p Params) (*Resource, error) {
	switch {
	case p.Name == "":
		return nil, errors.New("smb resource: empty name")
	case strings.ContainsAny(p.Name, "/\x00"):
		return nil, fmt.Errorf("smb %q: name must not contain \"/\"", p.Name)
	case p.Config == "":
		return nil, fmt.Errorf("smb %q: config: empty smb.conf path", p.Name)
	case !p.Address.IsValid():
		return nil, fmt.Errorf("smb %q: address: none given", p.Name)
	}
	p.Address = p.Address.Unmap()
	if p.Smbd == "" {
		p.Smbd = DefaultSmbd
	}
	if p.Port == 0 {
		p.Port = DefaultPort
	}
	if p.StartTimeout <= 0 {
		p.StartTimeout = DefaultStartTimeout
	}
	if p.StopTimeout <= 0 {
		p.StopTimeout = DefaultStopTimeout
	}
	if p.MonitorTimeout <= 0 {
		p.MonitorTimeout = DefaultMonitorTimeout
	}
	if p.RunDir == "" {
		p.RunDir = DefaultRunDir
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	r := &Resource{
		p:   p,
		log: p.Logger.With("resource", p.Name),
		sup: &Process{
			Name:        p.Name,
			Smbd:        p.Smbd,
			Config:      p.Config,
			RunDir:      p.RunDir,
			StopTimeout: p.StopTimeout,
			SambaLog:    p.SambaLog,
			Logger:      p.Logger,
		},
		dial: func(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr.String())
		},
		listeners: func(port uint16) ([]netip.AddrPort, error) {
			return tcpListeners(&netlink.Handle{}, port)
		},
	}
	return r, nil
}

// Name implements resources.Resource.
func (r *Resource) Name() string { return r.p.Name }

// AddrPort is the address on which readiness and health are checked.
func (r *Resource) AddrPort() netip.AddrPort { return netip.AddrPortFrom(r.p.Address, r.p.Port) }

func (r *Resource) errf(format string, args ...any) error {
	return fmt.Errorf("smb %q: "+format, append([]any{r.p.Name}, args...)...)
}

// negotiate runs one NEGOTIATE round trip on the floating address.
func (r *Resource) negotiate(ctx context.Context) (Reply, error) {
	conn, err := r.dial(ctx, r.AddrPort())
	if err != nil {
		return Reply{}, fmt.Errorf("smb2 negotiate with %s: %w", r.AddrPort(), err)
	}
	defer conn.Close()
	return NegotiateConn(ctx, conn)
}

// Start launches smbd unless it runs, and returns once smbd answers an SMB2
// NEGOTIATE on the floating address with the same server GUID twice in a
// row, within StartTimeout. If smbd it launched does not get there, Start
// stops it again before it returns the error.
func (r *Resource) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.p.StartTimeout)
	defer cancel()
	fresh := r.sup.Alive(ctx) != nil
	began := time.Now()
	if err := r.sup.Launch(ctx); err != nil {
		return r.errf("start: %w", err)
	}
	reply, err := r.waitReady(ctx)
	if err != nil {
		if fresh {
			// Stop what this call launched, on a budget of its own: the
			// caller's may be spent.
			hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), r.p.StopTimeout+killGrace)
			if herr := r.sup.Halt(hctx); herr != nil {
				err = errors.Join(err, r.errf("stop after failed start: %w", herr))
			}
			hcancel()
		}
		return err
	}
	r.guid = reply.ServerGUID
	r.log.Info("smbd ready", "address", r.AddrPort(), "after", time.Since(began).Round(time.Millisecond),
		"dialect", reply.Dialect, "server_guid", reply.ServerGUID)
	return nil
}

// waitReady polls with NEGOTIATE until two answers in a row carry the same
// server GUID, smbd dies, or ctx ends.
func (r *Resource) waitReady(ctx context.Context) (Reply, error) {
	var (
		prev    Reply
		have    bool
		lastErr error
	)
	t := time.NewTicker(readyInterval)
	defer t.Stop()
	for {
		if err := r.sup.Alive(ctx); err != nil {
			return Reply{}, r.errf("start: %w", err)
		}
		actx, cancel := context.WithTimeout(ctx, r.p.MonitorTimeout)
		reply, err := r.negotiate(actx)
		cancel()
		switch {
		case err != nil:
			have, lastErr = false, err
		case have && reply.ServerGUID == prev.ServerGUID:
			return reply, nil
		default:
			if have {
				r.log.Warn("server GUID changed between two answers while starting",
					"address", r.AddrPort(), "was", prev.ServerGUID, "now", reply.ServerGUID)
			}
			// Confirm at once: a second answer with the same GUID.
			prev, have = reply, true
			continue
		}
		select {
		case <-ctx.Done():
			return Reply{}, r.errf("smbd does not answer SMB2 NEGOTIATE on %s within %v (last: %v): %w",
				r.AddrPort(), r.p.StartTimeout, lastErr, ctx.Err())
		case <-t.C:
		}
	}
}

// Monitor returns nil while smbd runs and answers an SMB2 NEGOTIATE on the
// floating address within MonitorTimeout with the server GUID seen before.
// A TCP connect alone proves nothing: a frozen smbd still accepts. Monitor
// returns resources.ErrStopped when smbd is cleanly stopped.
func (r *Resource) Monitor(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.sup.Alive(ctx); err != nil {
		if errors.Is(err, ErrNotRunning) {
			return r.errf("smbd is not running: %w", resources.ErrStopped)
		}
		return r.errf("%w", err)
	}
	actx, cancel := context.WithTimeout(ctx, r.p.MonitorTimeout)
	defer cancel()
	reply, err := r.negotiate(actx)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			return r.errf("smbd runs but does not serve: %v: %w", err, cerr)
		}
		return r.errf("smbd runs but does not serve: %w", err)
	}
	switch {
	case r.guid == (GUID{}):
		r.guid = reply.ServerGUID
	case reply.ServerGUID != r.guid:
		return r.errf("server GUID on %s changed from %v to %v: another server answers there",
			r.AddrPort(), r.guid, reply.ServerGUID)
	}
	return nil
}

// Stop stops every smbd process of the resource (SIGTERM, StopTimeout, then
// SIGKILL) and returns nil only when none remains and nothing listens on the
// floating address's port any more.
func (r *Resource) Stop(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.sup.Halt(ctx); err != nil {
		return r.errf("stop: %w", err)
	}
	r.guid = GUID{}
	ls, err := r.listeners(r.p.Port)
	if err != nil {
		return r.errf("stop: check that nothing listens on %s: %w", r.AddrPort(), err)
	}
	var still []string
	for _, l := range ls {
		if covers(l.Addr(), r.p.Address) {
			still = append(still, l.String())
		}
	}
	if len(still) > 0 {
		return r.errf("stop: smbd is stopped, but %s still listen(s) for %s: another server (such as the distribution's smbd.service) would serve the floating address",
			strings.Join(still, ", "), r.AddrPort())
	}
	return nil
}

// covers reports whether a socket listening on l accepts connections to
// addr: the same address, or a wildcard of a family that reaches it (an
// IPv6 wildcard socket accepts IPv4 too unless it is v6-only, which the
// socket dump does not tell, so it counts).
func covers(l, addr netip.Addr) bool {
	l = l.Unmap()
	switch {
	case l == addr:
		return true
	case l == netip.IPv6Unspecified():
		return true
	case l == netip.IPv4Unspecified():
		return addr.Is4()
	}
	return false
}

// tcpListeners lists the TCP sockets in LISTEN state on port, IPv4 and
// IPv6, through the sock_diag netlink interface of h's network namespace.
func tcpListeners(h *netlink.Handle, port uint16) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		var (
			socks []*netlink.Socket
			err   error
		)
		for range 3 {
			socks, err = h.SocketDiagTCP(fam)
			if !errors.Is(err, netlink.ErrDumpInterrupted) {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("sock_diag dump (family %d): %w", fam, err)
		}
		for _, s := range socks {
			if s.State != netlink.TCP_LISTEN || s.ID.SourcePort != port {
				continue
			}
			if a, ok := netip.AddrFromSlice(s.ID.Source); ok {
				out = append(out, netip.AddrPortFrom(a.Unmap(), port))
			}
		}
	}
	return out, nil
}

// Validate checks that the smbd binary and smb.conf exist and that smb.conf
// passes testparm and the rules for a failover pair (see Checker). Warnings
// are logged; problems make the error.
func (r *Resource) Validate(ctx context.Context) error {
	var errs []error
	if fi, err := os.Stat(r.p.Smbd); err != nil {
		errs = append(errs, r.errf("smbd binary: %w", err))
	} else if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		errs = append(errs, r.errf("smbd binary %s is not an executable file", r.p.Smbd))
	}
	if _, err := os.Stat(r.p.Config); err != nil {
		errs = append(errs, r.errf("config: %w", err))
		return errors.Join(errs...)
	}
	c := Checker{Testparm: r.p.Testparm, Address: r.p.Address, SharedDir: r.p.SharedDir}
	warnings, err := c.Check(ctx, r.p.Config)
	for _, w := range warnings {
		r.log.Warn("smb.conf: " + w)
	}
	if err != nil {
		errs = append(errs, r.errf("%w", err))
	}
	return errors.Join(errs...)
}
