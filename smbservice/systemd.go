package smbservice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// systemdRunDir exists, as a directory, exactly when systemd is the init
// system (sd_booted(3)).
const systemdRunDir = "/run/systemd/system"

// SystemdRunning reports whether the host runs systemd as its init system:
// /run/systemd/system is a directory, the test sd_booted(3) makes. The smb
// resource's systemd mode needs it.
func SystemdRunning() bool { return systemdRunningAt(systemdRunDir) }

func systemdRunningAt(dir string) bool {
	fi, err := os.Lstat(dir)
	return err == nil && fi.IsDir()
}

// systemdConn is the part of go-systemd's *dbus.Conn that Systemd uses, so
// that its logic is tested without systemd.
type systemdConn interface {
	StartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	StopUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	KillUnitWithTarget(ctx context.Context, name string, target sddbus.Who, signal int32) error
	ResetFailedUnitContext(ctx context.Context, name string) error
	GetUnitPropertiesContext(ctx context.Context, unit string) (map[string]any, error)
	GetUnitTypePropertyContext(ctx context.Context, unit, unitType, property string) (*sddbus.Property, error)
	Connected() bool
	Close()
}

var _ systemdConn = (*sddbus.Conn)(nil)

// connectSystemd opens a connection to systemd: over the system bus, or,
// when the bus cannot be reached (its daemon restarting), over systemd's
// private socket, which needs no bus daemon but root.
func connectSystemd(ctx context.Context) (systemdConn, error) {
	return connectFirst(ctx,
		dialer{"system bus", sddbus.NewSystemConnectionContext},
		dialer{"private socket /run/systemd/private", sddbus.NewSystemdConnectionContext})
}

// dialer is one way to reach systemd.
type dialer struct {
	name string
	dial func(context.Context) (*sddbus.Conn, error)
}

// connectFirst returns a connection by the first dialer that succeeds.
//
// go-systemd closes a connection when the context it was dialled with ends,
// so the dial gets a context that never ends; ctx bounds only the wait, and
// a connection that comes after ctx ended is closed.
func connectFirst(ctx context.Context, dialers ...dialer) (systemdConn, error) {
	type result struct {
		c   *sddbus.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		long := context.WithoutCancel(ctx)
		var errs []string
		for _, d := range dialers {
			c, err := d.dial(long)
			if err == nil {
				done <- result{c, nil}
				return
			}
			errs = append(errs, fmt.Sprintf("%s: %v", d.name, err))
		}
		done <- result{nil, errors.New(strings.Join(errs, "; "))}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, r.err
		}
		return r.c, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// Timing of systemd supervision.
const (
	// unitPollInterval is how often a unit's state is read while waiting
	// for it to become inactive, and how often the connection is checked
	// while a job runs.
	unitPollInterval = 20 * time.Millisecond
)

// Systemd supervises smbd through systemd units, such as smbd.service and,
// where the site uses them, nmbd.service and winbind.service. Launch starts
// the units in order over D-Bus and waits for each start job; Halt stops them
// in reverse order, waits for each stop job and then makes sure each unit is
// inactive, escalating to SIGKILL for every process of a unit that has not
// stopped within StopTimeout; Alive reads each unit's ActiveState.
//
// A connection to systemd that was lost (the D-Bus daemon restarted) is
// opened again, once per operation.
//
// Set the exported fields before first use and do not change them after. A
// Systemd is safe for concurrent use.
type Systemd struct {
	// Units are the units started in order and stopped in reverse order,
	// such as "smbd.service".
	Units []string
	// StopTimeout is how long Halt waits for a unit to stop before it
	// kills its processes with SIGKILL; DefaultStopTimeout when zero.
	StopTimeout time.Duration
	// Logger receives supervision events; slog.Default() when nil.
	Logger *slog.Logger

	// connect opens a connection to systemd; connectSystemd when nil.
	connect func(ctx context.Context) (systemdConn, error)

	mu   sync.Mutex // serialises operations; guards conn
	conn systemdConn
}

var _ Supervisor = (*Systemd)(nil)

// unitTypes are the unit types systemd knows, by file name suffix, with the
// D-Bus interface name of their type-specific properties.
var unitTypes = map[string]string{
	"service": "Service", "socket": "Socket", "target": "Target", "device": "Device",
	"mount": "Mount", "automount": "Automount", "swap": "Swap", "timer": "Timer",
	"path": "Path", "slice": "Slice", "scope": "Scope",
}

// checkUnitName checks that name reads as a systemd unit name, such as
// "smbd.service". Templates need an instance ("getty@tty1.service").
func checkUnitName(name string) error {
	dot := strings.LastIndexByte(name, '.')
	switch {
	case name == "":
		return errors.New("empty unit name")
	case len(name) > 255:
		return fmt.Errorf("unit name %q is longer than 255 bytes", name)
	case dot <= 0 || unitTypes[name[dot+1:]] == "":
		return fmt.Errorf("%q is not a unit name: want NAME.TYPE, such as smbd.service", name)
	case strings.HasSuffix(name[:dot], "@"):
		return fmt.Errorf("unit %q is a template: name an instance, such as %s", name, strings.Replace(name, "@.", "@INSTANCE.", 1))
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(":-_.\\@", c)) {
			return fmt.Errorf("unit name %q: character %q is not allowed", name, c)
		}
	}
	return nil
}

// checkUnits checks a list of units: at least one, each a unit name, none
// twice. Errors name the position.
func checkUnits(units []string) error {
	if len(units) == 0 {
		return errors.New("units: none given (want at least smbd.service)")
	}
	for i, u := range units {
		if err := checkUnitName(u); err != nil {
			return fmt.Errorf("units[%d]: %w", i, err)
		}
		if j := slices.Index(units[:i], u); j >= 0 {
			return fmt.Errorf("units[%d]: %q is listed twice (also units[%d])", i, u, j)
		}
	}
	return nil
}

func (s *Systemd) stopTimeout() time.Duration {
	if s.StopTimeout <= 0 {
		return DefaultStopTimeout
	}
	return s.StopTimeout
}

func (s *Systemd) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// Close closes the connection to systemd, if one is open. A later operation
// opens a new one.
func (s *Systemd) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// session is one operation's use of the connection: it may open the
// connection again once.
type session struct {
	s         *Systemd
	reconnect bool // a lost connection was opened again already
}

// begin starts an operation; s.mu must be held for its length.
func (s *Systemd) begin() *session { return &session{s: s} }

// get returns the open connection, opening one when there is none or the
// one there was is lost.
func (o *session) get(ctx context.Context) (systemdConn, error) {
	s := o.s
	if s.conn != nil && !s.conn.Connected() {
		if err := o.drop(); err != nil {
			return nil, err
		}
	}
	if s.conn == nil {
		connect := s.connect
		if connect == nil {
			connect = connectSystemd
		}
		c, err := connect(ctx)
		if err != nil {
			return nil, fmt.Errorf("connect to systemd: %w", err)
		}
		s.conn = c
	}
	return s.conn, nil
}

// drop closes a lost connection so that get opens another, or fails when
// this operation did so already.
func (o *session) drop() error {
	if o.reconnect {
		return errors.New("the connection to systemd was lost again after reconnecting")
	}
	o.reconnect = true
	o.s.logger().Warn("connection to systemd lost; reconnecting")
	o.s.conn.Close()
	o.s.conn = nil
	return nil
}

// lostConn reports whether err says the connection itself failed, rather
// than systemd answering with an error. Right after the bus daemon went
// away a write can fail before the connection notices that it is closed.
func lostConn(c systemdConn, err error) bool {
	return !c.Connected() || errors.Is(err, dbus.ErrClosed) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// do runs call on the connection. When call fails because the connection
// was lost, the connection is opened again and call repeated, once per
// operation.
func (o *session) do(ctx context.Context, call func(systemdConn) error) error {
	for {
		c, err := o.get(ctx)
		if err != nil {
			return err
		}
		err = call(c)
		if err == nil || ctx.Err() != nil || !lostConn(c, err) {
			return err
		}
		if o.reconnect {
			return fmt.Errorf("the connection to systemd was lost again after reconnecting: %w", err)
		}
		if c == o.s.conn {
			o.drop()
		}
	}
}

// unitState is what systemd says of a unit.
type unitState struct {
	unit   string
	load   string // LoadState: loaded, not-found, masked, ...
	active string // ActiveState: active, reloading, inactive, failed, activating, deactivating
	sub    string // SubState: running, dead, exited, auto-restart, ...
	result string // the type's Result, such as "exit-code"; read only for failed units
}

// String describes the state as systemctl shows it: "failed (failed),
// result \"exit-code\"".
func (u unitState) String() string {
	s := fmt.Sprintf("%s (%s)", u.active, u.sub)
	if u.result != "" && u.result != "success" {
		s += fmt.Sprintf(", result %q", u.result)
	}
	if u.load != "" && u.load != "loaded" {
		s += fmt.Sprintf(", load state %q", u.load)
	}
	return s
}

// running reports whether the unit runs: active, or reloading while active.
func (u unitState) running() bool { return u.active == "active" || u.active == "reloading" }

// stopped reports whether no process of the unit runs: inactive, or failed
// (a failed unit's processes are gone; its state waits for a reset).
func (u unitState) stopped() bool { return u.active == "inactive" || u.active == "failed" }

// state reads the unit's state; for a failed unit also its Result.
func (o *session) state(ctx context.Context, unit string) (unitState, error) {
	st := unitState{unit: unit}
	err := o.do(ctx, func(c systemdConn) error {
		props, err := c.GetUnitPropertiesContext(ctx, unit)
		if err != nil {
			return err
		}
		st.load, _ = props["LoadState"].(string)
		st.active, _ = props["ActiveState"].(string)
		st.sub, _ = props["SubState"].(string)
		if st.active == "" {
			return fmt.Errorf("no ActiveState among its %d properties", len(props))
		}
		if st.active == "failed" {
			typ := unitTypes[unit[strings.LastIndexByte(unit, '.')+1:]]
			if p, err := c.GetUnitTypePropertyContext(ctx, unit, typ, "Result"); err == nil {
				st.result, _ = p.Value.Value().(string)
			}
		}
		return nil
	})
	if err != nil {
		return unitState{}, fmt.Errorf("%s: read state: %w", unit, err)
	}
	return st, nil
}

// queue queues a start or stop job for unit. Its result comes on the
// returned channel, over the returned connection, unless that is lost.
func (o *session) queue(ctx context.Context, unit, kind string) (<-chan string, systemdConn, error) {
	ch := make(chan string, 1) // buffered: go-systemd delivers results under a lock
	var c systemdConn
	err := o.do(ctx, func(conn systemdConn) error {
		c = conn
		var err error
		if kind == "start" {
			_, err = conn.StartUnitContext(ctx, unit, "replace", ch)
		} else {
			_, err = conn.StopUnitContext(ctx, unit, "replace", ch)
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s: %w", unit, kind, err)
	}
	return ch, c, nil
}

// job queues a start or stop job for unit and waits for its result, within
// ctx. A connection lost while the job runs is opened again and the job
// queued again (both are idempotent), once per operation.
func (o *session) job(ctx context.Context, unit, kind string) (string, error) {
	for {
		ch, c, err := o.queue(ctx, unit, kind)
		if err != nil {
			return "", err
		}
		result, err := waitJob(ctx, c, ch)
		switch {
		case err == nil:
			return result, nil
		case ctx.Err() != nil:
			return "", fmt.Errorf("%s: %s job: no result: %w", unit, kind, err)
		case o.reconnect:
			return "", fmt.Errorf("%s: %s job: %w", unit, kind, err)
		}
		// The connection was lost with the job running; o.get opens it
		// again in the next round.
	}
}

// waitJob waits for a job's result on ch until ctx ends or c is lost, which
// it notices within unitPollInterval.
func waitJob(ctx context.Context, c systemdConn, ch <-chan string) (string, error) {
	t := time.NewTicker(unitPollInterval)
	defer t.Stop()
	for {
		select {
		case r := <-ch:
			return r, nil
		case <-ctx.Done():
			return "", ctx.Err()
		case <-t.C:
			if !c.Connected() {
				// A result may have come just before.
				select {
				case r := <-ch:
					return r, nil
				default:
				}
				return "", errors.New("the connection to systemd was lost while the job ran")
			}
		}
	}
}

// jobError describes a job that did not end in "done", with the unit's state
// when it can be read.
func (o *session) jobError(ctx context.Context, unit, kind, result string) error {
	msg := fmt.Sprintf("%s: %s job failed: result %q", unit, kind, result)
	if st, err := o.state(ctx, unit); err == nil {
		msg += "; unit " + st.String()
	}
	return errors.New(msg)
}

// Launch implements Supervisor: it starts each unit in order and waits for
// each start job to end. It returns before smbd serves: systemd reports a
// start done before smbd listens.
func (s *Systemd) Launch(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.begin()
	for _, u := range s.Units {
		result, err := o.job(ctx, u, "start")
		if err != nil {
			return err
		}
		if result != "done" {
			return o.jobError(ctx, u, "start", result)
		}
		s.logger().Info("unit started", "unit", u)
	}
	return nil
}

// Alive implements Supervisor: nil when every unit is active, an error
// wrapping ErrNotRunning when every unit is inactive, and an error naming
// the first unit in any other state, or one inactive while others run.
func (s *Systemd) Alive(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.begin()
	var running, inactive []unitState
	for _, u := range s.Units {
		st, err := o.state(ctx, u)
		if err != nil {
			return err
		}
		switch {
		case st.load == "not-found" || st.load == "masked":
			return fmt.Errorf("%s: %s", u, st)
		case st.running():
			running = append(running, st)
		case st.active == "inactive":
			inactive = append(inactive, st)
		default:
			return fmt.Errorf("%s is %s", u, st)
		}
	}
	switch {
	case len(inactive) == 0:
		return nil
	case len(running) == 0:
		return fmt.Errorf("%s inactive: %w", strings.Join(s.Units, ", "), ErrNotRunning)
	}
	return fmt.Errorf("%s is %s while %s runs", inactive[0].unit, inactive[0], running[0].unit)
}

// Halt implements Supervisor: it stops the units in reverse order. For each
// it waits for the stop job, at most StopTimeout (less when ctx's deadline
// leaves no room for the SIGKILL round), and confirms the unit is inactive;
// a unit that is not gets SIGKILL for all its processes and another stop
// job. A failed unit's state is reset once it is stopped, so that the next
// Alive reads the units as cleanly stopped. Halt returns nil only when every
// unit is inactive.
func (s *Systemd) Halt(ctx context.Context) error {
	return s.halt(ctx, false)
}

// Kill is Halt without the grace: every process of every unit gets SIGKILL
// at once, then a stop job, and Kill returns nil only when every unit is
// inactive.
func (s *Systemd) Kill(ctx context.Context) error {
	return s.halt(ctx, true)
}

func (s *Systemd) halt(ctx context.Context, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.begin()
	for _, u := range slices.Backward(s.Units) {
		if err := o.stopUnit(ctx, u, force); err != nil {
			return err
		}
	}
	return nil
}

// stopUnit stops one unit, escalating to SIGKILL, and resets its failed
// state.
func (o *session) stopUnit(ctx context.Context, unit string, force bool) error {
	log := o.s.logger().With("unit", unit)
	began := time.Now()
	if !force {
		// Leave room for the SIGKILL round within the caller's deadline.
		termEnd := began.Add(o.s.stopTimeout())
		if dl, ok := ctx.Deadline(); ok {
			if end := dl.Add(-min(killGrace, time.Until(dl)/4)); end.Before(termEnd) {
				termEnd = end
			}
		}
		tctx, cancel := context.WithDeadline(ctx, termEnd)
		result, err := o.job(tctx, unit, "stop")
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return err
		case err != nil && tctx.Err() == nil:
			// Not a timeout: systemd refused or could not be reached.
			return err
		case err == nil && result != "done":
			log.Warn("stop job did not succeed", "result", result)
		}
		st, serr := o.state(ctx, unit)
		if serr != nil {
			return serr
		}
		if st.stopped() {
			return o.stopped(ctx, st)
		}
		log.Warn("unit did not stop; sending SIGKILL to all its processes",
			"waited", time.Since(began).Round(time.Millisecond), "state", st.String())
	}
	// Kill, then stop again: a unit that restarts on failure would come
	// back otherwise, and the stop job takes it to inactive.
	if err := o.do(ctx, func(c systemdConn) error {
		return c.KillUnitWithTarget(ctx, unit, sddbus.All, int32(syscall.SIGKILL))
	}); err != nil {
		return fmt.Errorf("%s: SIGKILL: %w", unit, err)
	}
	// The unit's state tells when it is down; the stop job's result adds
	// nothing.
	if _, _, err := o.queue(ctx, unit, "stop"); err != nil {
		log.Warn("stop job after SIGKILL not queued", "err", err)
	}
	kctx, cancel := context.WithTimeout(ctx, killGrace)
	defer cancel()
	t := time.NewTicker(unitPollInterval)
	defer t.Stop()
	for {
		st, serr := o.state(ctx, unit)
		if serr != nil {
			return serr
		}
		if st.stopped() {
			return o.stopped(ctx, st)
		}
		select {
		case <-kctx.Done():
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%s: still %s after SIGKILL: %w", unit, st, err)
			}
			return fmt.Errorf("%s: still %s %v after SIGKILL", unit, st, killGrace)
		case <-t.C:
		}
	}
}

// stopped finishes the stop of a unit that no longer runs: a failed unit's
// state is reset.
func (o *session) stopped(ctx context.Context, st unitState) error {
	if st.active == "failed" {
		o.s.logger().Info("unit had failed; resetting its state", "unit", st.unit, "state", st.String())
		if err := o.do(ctx, func(c systemdConn) error { return c.ResetFailedUnitContext(ctx, st.unit) }); err != nil {
			return fmt.Errorf("%s: reset failed state: %w", st.unit, err)
		}
	}
	o.s.logger().Info("unit stopped", "unit", st.unit)
	return nil
}

// check reads each unit's state and fails for one systemd does not know or
// that is masked.
func (s *Systemd) check(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.begin()
	var errs []error
	for _, u := range s.Units {
		st, err := o.state(ctx, u)
		switch {
		case err != nil:
			errs = append(errs, err)
		case st.load == "not-found":
			errs = append(errs, fmt.Errorf("%s: no such unit", u))
		case st.load != "loaded":
			errs = append(errs, fmt.Errorf("%s: load state %q", u, st.load))
		}
	}
	return errors.Join(errs...)
}

// SystemdResource is the smb resource in systemd mode: smbd runs under its
// units, started and stopped over D-Bus, and is ready and healthy, as in
// process mode, when it answers an SMB2 NEGOTIATE on the floating address.
// It implements resources.Resource and resources.ForceStopper.
type SystemdResource struct {
	*Resource
	units *Systemd

	// booted tells whether systemd runs; SystemdRunning unless a test
	// says otherwise.
	booted func() bool
}

// NewSystemd returns the smb resource p describes, in systemd mode: units
// (such as "smbd.service", then "nmbd.service" or "winbind.service") are
// started in this order and stopped in reverse. Of p, Smbd and Config serve
// Validate (Config must be the smb.conf the units' smbd reads); RunDir and
// SambaLog are not used. It checks the parameters only; Validate checks
// the host.
func NewSystemd(p Params, units []string) (*SystemdResource, error) {
	return newSystemd(p, units, connectSystemd)
}

// newSystemd is NewSystemd with the connection to systemd made by connect.
func newSystemd(p Params, units []string, connect func(context.Context) (systemdConn, error)) (*SystemdResource, error) {
	r, err := New(p)
	if err != nil {
		return nil, err
	}
	if err := checkUnits(units); err != nil {
		return nil, r.errf("%w", err)
	}
	sd := &Systemd{
		Units:       slices.Clone(units),
		StopTimeout: r.p.StopTimeout,
		Logger:      r.log,
		connect:     connect,
	}
	r.sup = sd
	return &SystemdResource{Resource: r, units: sd, booted: SystemdRunning}, nil
}

// Units returns the units in start order.
func (r *SystemdResource) Units() []string { return slices.Clone(r.units.Units) }

// Validate checks that systemd runs and knows each unit, then what the
// process mode's Validate checks: the smbd binary and smb.conf.
func (r *SystemdResource) Validate(ctx context.Context) error {
	if !r.booted() {
		return r.errf("systemd mode: systemd is not running on this host (%s is not a directory): use mode \"process\"", systemdRunDir)
	}
	var errs []error
	if err := r.units.check(ctx); err != nil {
		errs = append(errs, r.errf("%w", err))
	}
	if err := r.Resource.Validate(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ForceStop implements resources.ForceStopper: every process of every unit
// gets SIGKILL at once, then the units are stopped, and, as Stop does,
// ForceStop returns nil only when every unit is inactive and nothing listens
// on the floating address's port.
func (r *SystemdResource) ForceStop(ctx context.Context) error {
	if err := r.units.Kill(ctx); err != nil {
		return r.errf("force stop: %w", err)
	}
	return r.Resource.Stop(ctx)
}

// Close closes the connection to systemd. The resource stays usable: a later
// operation connects again.
func (r *SystemdResource) Close() error {
	r.units.Close()
	return nil
}
