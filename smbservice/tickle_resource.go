package smbservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/tandem-ha/tandem/resources"
)

// Defaults of TickleParams.
const (
	// DefaultPollInterval is how often the active node lists its
	// connections.
	DefaultPollInterval = time.Second
	// DefaultTrackFailures is how many polls in a row may fail before
	// Monitor reports the resource failed.
	DefaultTrackFailures = 5
)

// TickleParams configure a tickle resource. Zero fields take the
// documented defaults.
type TickleParams struct {
	// Name is the resource's name from the configuration.
	Name string
	// Addrs are the floating addresses whose clients are tickled and
	// tracked; Ports the server ports (445 and 139 when empty).
	Addrs []netip.Addr
	Ports []uint16
	// Netns is the network namespace to work in; empty means tandemd's.
	Netns string
	// Rounds and Interval shape the tickles, as in Tickler.
	Rounds   int
	Interval time.Duration
	// Source gives, at each Start, the connections the peer held: the
	// list replicated from it (View.List), merged with the one on the
	// quorum disk (ReadDiskList) by Newest. Nil tickles nothing.
	Source func(ctx context.Context) ([]Conn, error)
	// OnChange receives the changes of this node's own connections while
	// the resource runs, from the resource's goroutine, at most once per
	// PollInterval: the caller feeds them to its Sync. The first call
	// after Start lists every connection as added. Nil drops them.
	OnChange func(added, removed []Conn, now time.Time)
	// PollInterval spaces the polls (DefaultPollInterval when zero).
	PollInterval time.Duration
	// TrackFailures is how many failed polls in a row make Monitor fail
	// (DefaultTrackFailures when zero).
	TrackFailures int
	// Logger receives events; slog.Default() when nil.
	Logger *slog.Logger
}

// TickleStatus is what a tickle resource did, for status displays.
type TickleStatus struct {
	// Running says the resource is started.
	Running bool
	// Tracked is how many connections the last poll found.
	Tracked int
	// Tickled is how many connections the last Start tickled; Sent and
	// Failed count the segments of all its rounds.
	Tickled, Sent, Failed int
	// Rounds is how many rounds the last Start has sent; LastRound when
	// the latest began (zero when none).
	Rounds    int
	LastRound time.Time
	// Reset is how many connections the last Stop reset.
	Reset int
	// LastPoll is when the last successful poll ended; PollFailures how
	// many polls in a row failed since, LastError the latest failure.
	LastPoll     time.Time
	PollFailures int
	LastError    string
}

// connTracker is what the resource asks of a Tracker.
type connTracker interface {
	Poll() (added, removed []Conn, err error)
	Conns() []Conn
	Close() error
}

// Tickle is the tickle resource: on Start it tickles the clients the
// peer held on the floating addresses so that they reconnect at once,
// and begins tracking this node's own clients for the peer; on Stop it
// resets them (SOCK_DESTROY) so that they reconnect to the node taking
// over without waiting. It implements resources.Resource.
type Tickle struct {
	p   TickleParams
	log *slog.Logger

	// Seams for tests: the tracker, the sending of rounds and the reset.
	newTracker func() connTracker
	tickle     func(ctx context.Context, conns []Conn, rounds int) (TickleResult, error)
	reset      func(netns string, conns []Conn) (int, error)

	mu      sync.Mutex // held by Start and Stop
	running bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	stMu    sync.Mutex // guards what the goroutines update
	tracked []Conn
	st      TickleStatus
}

var _ resources.Resource = (*Tickle)(nil)

// NewTickle returns a tickle resource; Validate checks its parameters.
func NewTickle(p TickleParams) *Tickle {
	if len(p.Ports) == 0 {
		p.Ports = []uint16{445, 139}
	}
	if p.Rounds <= 0 {
		p.Rounds = DefaultTickleRounds
	}
	if p.Interval <= 0 {
		p.Interval = DefaultTickleInterval
	}
	if p.PollInterval <= 0 {
		p.PollInterval = DefaultPollInterval
	}
	if p.TrackFailures <= 0 {
		p.TrackFailures = DefaultTrackFailures
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	t := &Tickle{p: p, log: log.With("resource", p.Name), reset: Reset}
	t.newTracker = func() connTracker { return &Tracker{Addrs: p.Addrs, Ports: p.Ports, Netns: p.Netns} }
	t.tickle = func(ctx context.Context, conns []Conn, rounds int) (TickleResult, error) {
		tk := &Tickler{Netns: p.Netns, Rounds: rounds, Interval: p.Interval}
		return tk.Tickle(ctx, conns)
	}
	return t
}

// Name returns the resource's name.
func (t *Tickle) Name() string { return t.p.Name }

func (t *Tickle) errorf(format string, args ...any) error {
	return fmt.Errorf("tickle %s: "+format, append([]any{t.p.Name}, args...)...)
}

// Validate checks the parameters.
func (t *Tickle) Validate(context.Context) error {
	if t.p.Name == "" {
		return errors.New("tickle: empty name")
	}
	if len(t.p.Addrs) == 0 {
		return t.errorf("no floating address")
	}
	for i, a := range t.p.Addrs {
		if !a.IsValid() || a.Zone() != "" || a.IsUnspecified() {
			return t.errorf("address %d %q: want an IPv4 or IPv6 address without zone", i, a)
		}
	}
	for i, p := range t.p.Ports {
		if p == 0 {
			return t.errorf("port %d: zero", i)
		}
	}
	if t.p.Interval < 500*time.Millisecond {
		return t.errorf("interval %v: clients answer one tickle per 500ms, so rounds closer than that are lost", t.p.Interval)
	}
	return nil
}

// wanted reports whether c is to one of the floating addresses and ports.
func (t *Tickle) wanted(c Conn) bool {
	return slices.Contains(t.p.Ports, c.Server.Port()) && slices.ContainsFunc(t.p.Addrs, func(a netip.Addr) bool { return a.Unmap() == c.Server.Addr() })
}

// Start tickles the peer's clients, the first round before it returns and
// the others on a goroutine, and starts tracking. A failing Source or
// failing tickles are logged and counted, not errors: the service runs
// without them, its clients only reconnect later.
func (t *Tickle) Start(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running {
		return nil
	}
	var conns []Conn
	if t.p.Source != nil {
		all, err := t.p.Source(ctx)
		if err != nil {
			t.log.Warn("tickle: the peer's connections are not all known", "err", err)
			t.count(func(st *TickleStatus) { st.LastError = err.Error() })
		}
		conns = slices.DeleteFunc(slices.Clone(all), func(c Conn) bool { return !t.wanted(c) })
	}
	t.count(func(st *TickleStatus) {
		*st = TickleStatus{Running: true, Tickled: len(conns), LastError: st.LastError}
	})
	runCtx, cancel := context.WithCancel(context.Background())
	t.running, t.cancel = true, cancel
	if len(conns) > 0 {
		t.round(ctx, conns, 1)
		if t.p.Rounds > 1 {
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				timer := time.NewTimer(t.p.Interval)
				defer timer.Stop()
				select {
				case <-runCtx.Done():
					return
				case <-timer.C:
				}
				t.round(runCtx, conns, t.p.Rounds-1)
			}()
		}
		t.log.Info("tickled the peer's clients", "connections", len(conns), "rounds", t.p.Rounds)
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.track(runCtx)
	}()
	return nil
}

// round sends rounds of tickles and counts them.
func (t *Tickle) round(ctx context.Context, conns []Conn, rounds int) {
	began := time.Now()
	res, err := t.tickle(ctx, conns, rounds)
	t.count(func(st *TickleStatus) {
		st.Rounds += res.Rounds
		st.Sent += res.Sent
		st.Failed += res.Failed
		if res.Rounds > 0 {
			st.LastRound = began.Add(time.Duration(res.Rounds-1) * t.p.Interval)
		}
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.log.Warn("tickle: segments not sent", "err", err)
	}
}

// count updates the status under its lock.
func (t *Tickle) count(fn func(st *TickleStatus)) {
	t.stMu.Lock()
	defer t.stMu.Unlock()
	fn(&t.st)
}

// track polls the connections until ctx ends and hands the changes to
// OnChange.
func (t *Tickle) track(ctx context.Context) {
	tr := t.newTracker()
	defer tr.Close()
	ticker := time.NewTicker(t.p.PollInterval)
	defer ticker.Stop()
	for {
		added, removed, err := tr.Poll()
		now := time.Now()
		if err != nil {
			var n int
			t.count(func(st *TickleStatus) {
				st.PollFailures++
				st.LastError = err.Error()
				n = st.PollFailures
			})
			if n == 1 || n == t.p.TrackFailures {
				t.log.Warn("tickle: cannot list connections", "failures", n, "err", err)
			}
		} else {
			conns := slices.Clone(tr.Conns())
			t.count(func(st *TickleStatus) {
				st.PollFailures, st.LastPoll, st.Tracked = 0, now, len(conns)
				t.tracked = conns
			})
			if (len(added) > 0 || len(removed) > 0) && t.p.OnChange != nil {
				t.p.OnChange(added, removed, now)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Stop ends the tickles and the tracking, then resets every connection
// to the floating addresses still open on this node, so that its clients
// reconnect at once to whichever node holds the address next. A reset
// that fails is logged, not an error: nothing of the resource runs.
func (t *Tickle) Stop(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.running {
		return nil
	}
	t.cancel()
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return t.errorf("stop: %w", ctx.Err())
	}
	t.running = false
	tr := t.newTracker()
	_, _, err := tr.Poll()
	conns := slices.Clone(tr.Conns())
	tr.Close()
	n := 0
	if err == nil && len(conns) > 0 {
		n, err = t.reset(t.p.Netns, conns)
	}
	if err != nil {
		t.log.Warn("tickle: clients not all reset", "err", err)
	}
	t.count(func(st *TickleStatus) {
		st.Running, st.Reset, st.Tracked = false, n, 0
		t.tracked = nil
		if err != nil {
			st.LastError = err.Error()
		}
	})
	if n > 0 {
		t.log.Info("reset the clients' connections", "connections", n)
	}
	return nil
}

// Monitor returns nil while the resource runs and tracking works,
// resources.ErrStopped when it is stopped, and an error once
// TrackFailures polls in a row have failed.
func (t *Tickle) Monitor(context.Context) error {
	st := t.Status()
	switch {
	case !st.Running:
		return resources.ErrStopped
	case st.PollFailures >= t.p.TrackFailures:
		return t.errorf("tracking failed %d times in a row: %s", st.PollFailures, st.LastError)
	}
	return nil
}

// Status returns the counters.
func (t *Tickle) Status() TickleStatus {
	t.stMu.Lock()
	defer t.stMu.Unlock()
	return t.st
}

// Tracked returns the connections the last poll found, sorted.
func (t *Tickle) Tracked() []Conn {
	t.stMu.Lock()
	defer t.stMu.Unlock()
	return slices.Clone(t.tracked)
}
