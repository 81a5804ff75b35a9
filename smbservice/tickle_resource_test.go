package smbservice

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/quorum"
	"github.com/tandem-ha/tandem/resources"
)

// fakeTracker replays polls: each Poll takes the next entry of script, the
// last one repeating.
type fakeTracker struct {
	mu     sync.Mutex
	script []fakePoll
	polls  int
	closed int
	tr     Tracker
}

type fakePoll struct {
	conns []Conn
	err   error
}

func (f *fakeTracker) Poll() ([]Conn, []Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.script[min(f.polls, len(f.script)-1)]
	f.polls++
	if p.err != nil {
		return nil, nil, p.err
	}
	a, r := f.tr.update(p.conns)
	return a, r, nil
}

func (f *fakeTracker) Conns() []Conn { return f.tr.Conns() }

func (f *fakeTracker) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed++
	return nil
}

func (f *fakeTracker) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls
}

type tickleCall struct {
	at     time.Time
	conns  []Conn
	rounds int
}

// fakeTickle builds a resource whose tracker, tickles and resets are
// recorded.
func fakeTickle(t *testing.T, p TickleParams, script ...fakePoll) (*Tickle, *fakeTracker, func() []tickleCall, func() [][]Conn) {
	t.Helper()
	r := NewTickle(p)
	ft := &fakeTracker{script: script}
	var mu sync.Mutex
	var calls []tickleCall
	var resets [][]Conn
	r.newTracker = func() connTracker { return ft }
	r.tickle = func(ctx context.Context, conns []Conn, rounds int) (TickleResult, error) {
		mu.Lock()
		calls = append(calls, tickleCall{time.Now(), conns, rounds})
		mu.Unlock()
		return TickleResult{Rounds: rounds, Sent: rounds * len(conns)}, nil
	}
	r.reset = func(netns string, conns []Conn) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		resets = append(resets, conns)
		return len(conns), nil
	}
	return r, ft,
		func() []tickleCall { mu.Lock(); defer mu.Unlock(); return slices.Clone(calls) },
		func() [][]Conn { mu.Lock(); defer mu.Unlock(); return slices.Clone(resets) }
}

func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTickleResourceLifecycle(t *testing.T) {
	vip := netip.MustParseAddr("198.18.0.50")
	mine := mustConn(t, "198.18.0.100:1->198.18.0.50:445")
	other := []Conn{
		mustConn(t, "198.18.0.100:2->198.18.0.51:445"), // another address
		mustConn(t, "198.18.0.100:3->198.18.0.50:22"),  // another port
	}
	c2 := mustConn(t, "198.18.0.101:5->198.18.0.50:139")
	var changes [][2][]Conn
	var chMu sync.Mutex
	p := TickleParams{
		Name: "reconnect", Addrs: []netip.Addr{vip}, Rounds: 3, Interval: 50 * time.Millisecond, PollInterval: 10 * time.Millisecond,
		Source: func(context.Context) ([]Conn, error) { return append([]Conn{mine}, other...), nil },
		OnChange: func(added, removed []Conn, _ time.Time) {
			chMu.Lock()
			changes = append(changes, [2][]Conn{added, removed})
			chMu.Unlock()
		},
	}
	r, ft, calls, resets := fakeTickle(t, p, fakePoll{conns: []Conn{mine}}, fakePoll{conns: []Conn{mine, c2}})
	ctx := context.Background()
	if err := r.Validate(ctx); err == nil || !strings.Contains(err.Error(), "interval") {
		t.Fatalf("Validate with a 50ms interval: %v", err)
	}
	if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
		t.Fatalf("Monitor before Start: %v", err)
	}
	began := time.Now()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if c := calls(); len(c) != 1 || c[0].rounds != 1 || !slices.Equal(c[0].conns, []Conn{mine}) {
		t.Fatalf("tickles when Start returned: %+v; want one round to %v only", c, mine)
	}
	if err := r.Start(ctx); err != nil || len(calls()) > 2 {
		t.Fatalf("second Start: %v, %d tickle calls", err, len(calls()))
	}
	eventuallyTrue(t, "later rounds", func() bool { return len(calls()) == 2 })
	if c := calls()[1]; c.rounds != 2 || c.at.Sub(began) < p.Interval {
		t.Fatalf("later rounds: %d rounds %v after Start; want 2 after %v", c.rounds, c.at.Sub(began), p.Interval)
	}
	eventuallyTrue(t, "both changes", func() bool { chMu.Lock(); defer chMu.Unlock(); return len(changes) == 2 })
	chMu.Lock()
	if !slices.Equal(changes[0][0], []Conn{mine}) || !slices.Equal(changes[1][0], []Conn{c2}) {
		t.Fatalf("changes %v", changes)
	}
	chMu.Unlock()
	if err := r.Monitor(ctx); err != nil {
		t.Fatal(err)
	}
	st := r.Status()
	if !st.Running || st.Tickled != 1 || st.Rounds != 3 || st.Sent != 3 || st.Tracked != 2 {
		t.Fatalf("status %+v", st)
	}
	if got := r.Tracked(); !slices.Equal(got, []Conn{mine, c2}) {
		t.Fatalf("Tracked: %v", got)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := resets(); len(rs) != 1 || !slices.Equal(rs[0], []Conn{mine, c2}) {
		t.Fatalf("resets %v", rs)
	}
	polls := ft.count()
	time.Sleep(5 * p.PollInterval)
	if ft.count() != polls {
		t.Fatal("polls went on after Stop")
	}
	if st := r.Status(); st.Running || st.Reset != 2 {
		t.Fatalf("status after Stop %+v", st)
	}
	if err := r.Stop(ctx); err != nil || len(resets()) != 1 {
		t.Fatalf("second Stop: %v, %d resets", err, len(resets()))
	}
	if err := r.Monitor(ctx); !errors.Is(err, resources.ErrStopped) {
		t.Fatalf("Monitor after Stop: %v", err)
	}
}

// A failing source does not fail Start; persistent tracking failures fail
// Monitor; a poll that works again clears them.
func TestTickleResourceFailures(t *testing.T) {
	p := TickleParams{
		Name: "reconnect", Addrs: []netip.Addr{netip.MustParseAddr("2001:2::50")}, PollInterval: 5 * time.Millisecond, TrackFailures: 3,
		Source: func(context.Context) ([]Conn, error) { return nil, errors.New("disk unreadable") },
	}
	bad := fakePoll{err: errors.New("sock_diag: permission denied")}
	r, ft, calls, _ := fakeTickle(t, p, bad, bad, bad, bad, fakePoll{})
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx)
	if len(calls()) != 0 {
		t.Fatal("tickled with no connections")
	}
	var err error
	eventuallyTrue(t, "Monitor failing", func() bool { err = r.Monitor(ctx); return err != nil })
	if !strings.Contains(err.Error(), "reconnect") || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Monitor: %v; want the resource and the cause named", err)
	}
	eventuallyTrue(t, "Monitor healthy again", func() bool { return ft.count() > 5 && r.Monitor(ctx) == nil })
}

func TestTickleValidate(t *testing.T) {
	good := TickleParams{Name: "t", Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.50")}}
	if err := NewTickle(good).Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]TickleParams{
		"no name":    {Addrs: good.Addrs},
		"no address": {Name: "t"},
		"zone":       {Name: "t", Addrs: []netip.Addr{netip.MustParseAddr("fe80::1%eth0")}},
		"port zero":  {Name: "t", Addrs: good.Addrs, Ports: []uint16{445, 0}},
		"interval":   {Name: "t", Addrs: good.Addrs, Interval: 100 * time.Millisecond},
	} {
		if err := NewTickle(p).Validate(context.Background()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The mirror writes a changed list once, skips versions already written,
// and writes the last change at Close; what it writes reads back.
func TestDiskMirror(t *testing.T) {
	var mu sync.Mutex
	var written []ListVersion
	m := newDiskMirror(func(l VersionedList) error {
		mu.Lock()
		defer mu.Unlock()
		written = append(written, l.Version)
		return nil
	}, time.Hour, nil)
	m.Update(VersionedList{Version: ListVersion{1, 1}})
	eventuallyTrue(t, "first write", func() bool { v, _ := m.Written(); return v == ListVersion{1, 1} })
	m.Update(VersionedList{Version: ListVersion{1, 2}})
	m.Update(VersionedList{Version: ListVersion{1, 3}})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []ListVersion{{1, 1}, {1, 3}}; !slices.Equal(written, want) {
		t.Fatalf("written %v, want %v", written, want)
	}

	path := t.TempDir() + "/quorum.img"
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := quorum.Init(path, "filer", []string{"alpha", "beta"}, quorum.Params{Interval: time.Second}, false); err != nil {
		t.Fatal(err)
	}
	d, err := quorum.Open(path, quorum.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if l, err := ReadDiskList(d, 0); err != nil || !l.Version.IsZero() {
		t.Fatalf("fresh area: %+v, %v", l, err)
	}
	dm := NewDiskMirror(d, 0, time.Hour, nil)
	want := VersionedList{Version: ListVersion{4, 40}, Conns: manyConns(10000, true), Source: "disk"}
	dm.Update(want)
	if err := dm.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDiskList(d, 0)
	if err != nil || got.Version != want.Version || !slices.Equal(got.Conns, want.Conns) {
		t.Fatalf("read back %v with %d connections, %v", got.Version, len(got.Conns), err)
	}
}
