package heartbeat

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var (
	t0         = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	testTiming = Timing{Keepalive: 100 * time.Millisecond, Warntime: 500 * time.Millisecond, Deadtime: time.Second, Initdead: 5 * time.Second}
)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// brief renders events compactly: "up beta/udp", "late beta/udp 700ms",
// "dead beta".
func brief(evs []Event) string {
	var parts []string
	for _, e := range evs {
		var s string
		switch e.Kind {
		case EventMediumUp:
			s = "up " + e.Peer + "/" + e.Medium
		case EventMediumDown:
			s = "down " + e.Peer + "/" + e.Medium
		case EventLate:
			s = fmt.Sprintf("late %s/%s %v", e.Peer, e.Medium, e.Gap)
		case EventPeerAlive:
			s = "alive " + e.Peer
		case EventPeerDead:
			s = "dead " + e.Peer
		default:
			s = e.Kind.String()
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func newTestTracker(t *testing.T, media ...string) *Tracker {
	t.Helper()
	tr, err := NewTracker(testTiming, []string{"beta"}, media, t0)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// step is one call on a tracker: a heartbeat on a medium, or a tick.
type step struct {
	ms     int
	medium string // "" for Tick
	want   string // brief of the events
}

func runSteps(t *testing.T, tr *Tracker, steps []step) {
	t.Helper()
	for _, s := range steps {
		var evs []Event
		if s.medium == "" {
			evs = tr.Tick(at(s.ms))
		} else {
			var err error
			if evs, err = tr.Heard("beta", s.medium, at(s.ms)); err != nil {
				t.Fatal(err)
			}
		}
		if got := brief(evs); got != s.want {
			t.Fatalf("at %d ms %q: got [%s], want [%s]", s.ms, s.medium, got, s.want)
		}
	}
}

func TestTrackerScenarios(t *testing.T) {
	for _, tc := range []struct {
		name  string
		media []string
		steps []step
	}{
		{"never heard: dead at initdead", []string{"udp", "serial"}, []step{
			{0, "", ""},
			{4999, "", ""},
			{5000, "", "down beta/udp, down beta/serial, dead beta"},
			{9000, "", ""},
		}},
		{"alive, then silent: dead after deadtime", []string{"udp"}, []step{
			{50, "udp", "up beta/udp, alive beta"},
			{150, "udp", ""},
			{1149, "", ""},
			{1150, "", "down beta/udp, dead beta"},
			{1200, "", ""},
			{1300, "udp", "up beta/udp, alive beta"},
		}},
		{"one medium lost is not death", []string{"udp", "serial"}, []step{
			{0, "udp", "up beta/udp, alive beta"},
			{0, "serial", "up beta/serial"},
			{100, "serial", ""},
			{550, "serial", ""},
			{1000, "", "down beta/udp"},
			{1050, "serial", ""},
			{2049, "", ""},
			{2050, "", "down beta/serial, dead beta"},
		}},
		{"unheard medium waits for initdead", []string{"udp", "serial"}, []step{
			{100, "udp", "up beta/udp, alive beta"},
			{1100, "", "down beta/udp"},
			{4999, "", ""},
			{5000, "", "down beta/serial, dead beta"},
		}},
		{"late once per episode", []string{"udp"}, []step{
			{0, "udp", "up beta/udp, alive beta"},
			{100, "udp", ""},
			{800, "udp", "late beta/udp 700ms"},
			{1500, "udp", ""},
			{2100, "udp", ""},
			{2200, "udp", ""},
			{2800, "udp", "late beta/udp 600ms"},
		}},
		{"exactly warntime is on time", []string{"udp"}, []step{
			{0, "udp", "up beta/udp, alive beta"},
			{500, "udp", ""},
			{1001, "udp", "late beta/udp 501ms"},
		}},
		{"silence past deadtime without a tick", []string{"udp"}, []step{
			{0, "udp", "up beta/udp, alive beta"},
			{1500, "udp", "down beta/udp, dead beta, up beta/udp, alive beta"},
			{1600, "udp", ""},
		}},
		{"late on one medium only", []string{"udp", "serial"}, []step{
			{0, "udp", "up beta/udp, alive beta"},
			{0, "serial", "up beta/serial"},
			{100, "udp", ""},
			{200, "udp", ""},
			{700, "serial", "late beta/serial 700ms"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, newTestTracker(t, tc.media...), tc.steps)
		})
	}
}

func TestTrackerStatus(t *testing.T) {
	tr := newTestTracker(t, "udp", "serial")
	runSteps(t, tr, []step{
		{0, "udp", "up beta/udp, alive beta"},
		{100, "udp", ""},
		{900, "udp", "late beta/udp 800ms"},
		{1600, "udp", ""},
	})
	st := tr.Status()
	if len(st) != 1 {
		t.Fatalf("%d peers", len(st))
	}
	p := st[0]
	if p.Name != "beta" || p.State != PeerAlive || !p.Since.Equal(at(0)) || !p.LastHeard.Equal(at(1600)) {
		t.Errorf("peer status %+v", p)
	}
	udp, serial := p.Media[0], p.Media[1]
	if udp.Medium != "udp" || udp.State != LinkUp || udp.Heard != 4 || udp.Late != 2 || !udp.LastHeard.Equal(at(1600)) {
		t.Errorf("udp status %+v", udp)
	}
	if serial.Medium != "serial" || serial.State != LinkUnknown || serial.Heard != 0 || !serial.LastHeard.IsZero() {
		t.Errorf("serial status %+v", serial)
	}
	if got := fmt.Sprint(PeerAlive, PeerDead, PeerUnknown, LinkUp, LinkDown, LinkUnknown); got != "alive dead unknown up down unknown" {
		t.Errorf("state names: %s", got)
	}
}

func TestTrackerNextDeadline(t *testing.T) {
	tr := newTestTracker(t, "udp", "serial")
	if d, ok := tr.NextDeadline(); !ok || !d.Equal(at(5000)) {
		t.Fatalf("at start: %v, %v; want initdead", d, ok)
	}
	runSteps(t, tr, []step{{200, "udp", "up beta/udp, alive beta"}, {300, "serial", "up beta/serial"}})
	if d, ok := tr.NextDeadline(); !ok || !d.Equal(at(1200)) {
		t.Fatalf("after heartbeats: %v, %v; want 1200 ms", d, ok)
	}
	runSteps(t, tr, []step{{1200, "", "down beta/udp"}})
	if d, ok := tr.NextDeadline(); !ok || !d.Equal(at(1300)) {
		t.Fatalf("after udp down: %v, %v; want 1300 ms", d, ok)
	}
	runSteps(t, tr, []step{{1300, "", "down beta/serial, dead beta"}})
	if d, ok := tr.NextDeadline(); ok {
		t.Fatalf("all down: deadline %v", d)
	}
}

func TestTrackerRejects(t *testing.T) {
	tr := newTestTracker(t, "udp")
	if _, err := tr.Heard("gamma", "udp", t0); err == nil || !strings.Contains(err.Error(), `unknown peer "gamma"`) {
		t.Errorf("unknown peer: %v", err)
	}
	if _, err := tr.Heard("beta", "disk", t0); err == nil || !strings.Contains(err.Error(), `unknown medium "disk"`) {
		t.Errorf("unknown medium: %v", err)
	}
	for _, tc := range []struct {
		timing       Timing
		peers, media []string
		want         string
	}{
		{Timing{}, []string{"b"}, []string{"u"}, "keepalive 0s must be positive"},
		{Timing{Keepalive: time.Second, Warntime: time.Second, Deadtime: 2 * time.Second, Initdead: 2 * time.Second}, []string{"b"}, []string{"u"}, "warntime 1s must be longer than keepalive 1s"},
		{Timing{Keepalive: 1, Warntime: time.Second, Deadtime: time.Second, Initdead: time.Second}, []string{"b"}, []string{"u"}, "deadtime 1s must be longer than warntime 1s"},
		{Timing{Keepalive: 1, Warntime: 2, Deadtime: time.Second, Initdead: time.Millisecond}, []string{"b"}, []string{"u"}, "initdead 1ms must be at least deadtime 1s"},
		{testTiming, nil, []string{"u"}, "no peers"},
		{testTiming, []string{"b"}, nil, "no media"},
		{testTiming, []string{"b", "b"}, []string{"u"}, `peer "b" named twice`},
		{testTiming, []string{"b"}, []string{"u", ""}, "empty medium name"},
	} {
		if _, err := NewTracker(tc.timing, tc.peers, tc.media, t0); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewTracker: got %v, want %q", err, tc.want)
		}
	}
	if got := (Timing{Keepalive: time.Second}).WithDefaults(); got.Keepalive != time.Second || got.Deadtime != DefaultTiming.Deadtime {
		t.Errorf("WithDefaults: %+v", got)
	}
	if err := DefaultTiming.Validate(); err != nil {
		t.Errorf("DefaultTiming: %v", err)
	}
}

// TestTrackerSimulated drives a tracker through hours of simulated time
// with loss, jitter and outages on three media, and checks every event
// against a model computed from the heartbeat times alone.
func TestTrackerSimulated(t *testing.T) {
	media := []string{"udp", "serial", "disk"}
	r := rand.New(rand.NewPCG(3, 4))
	const steps = 200000 // 10 ms each: more than 33 simulated minutes
	tr, err := NewTracker(testTiming, []string{"beta"}, media, t0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	last := make([]time.Time, len(media)) // model: last heartbeat per medium
	up := make([]bool, len(media))
	everDown := make([]bool, len(media))
	peerAlive, peerDead := false, false
	outage := make([]int, len(media)) // remaining steps of silence per medium
	var counts [EventReceived + 1]int
	for i := range steps {
		now := at(i * 10)
		// Start or end outages; sometimes the whole peer goes silent.
		if r.IntN(3000) == 0 {
			n := 50 + r.IntN(300)
			for m := range outage {
				outage[m] = max(outage[m], n)
			}
		}
		for m := range media {
			if outage[m] > 0 {
				outage[m]--
				continue
			}
			if r.IntN(1500) == 0 {
				outage[m] = r.IntN(250)
			}
		}
		var evs []Event
		if i%7 == 0 {
			evs = append(evs, tr.Tick(now)...)
		}
		for m, name := range media {
			// Keepalive every 100 ms with jitter and 2% loss.
			if outage[m] > 0 || i%10 != m || r.IntN(50) == 0 {
				continue
			}
			e, err := tr.Heard("beta", name, now.Add(time.Duration(r.IntN(5))*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, e...)
		}
		for _, e := range evs {
			counts[e.Kind]++
			m := indexOf(media, e.Medium)
			switch e.Kind {
			case EventMediumUp:
				if up[m] {
					t.Fatalf("step %d: %s up twice", i, e.Medium)
				}
				up[m] = true
				last[m] = e.Time
			case EventMediumDown:
				if !up[m] && !(last[m].IsZero() && !everDown[m]) {
					t.Fatalf("step %d: %s down while neither up nor unknown", i, e.Medium)
				}
				silent := e.Time.Sub(t0)
				limit := testTiming.Initdead
				if !last[m].IsZero() {
					silent, limit = e.Time.Sub(last[m]), testTiming.Deadtime
				}
				if silent < limit || silent > limit+80*time.Millisecond {
					t.Fatalf("step %d: %s down after %v of silence, limit %v", i, e.Medium, silent, limit)
				}
				up[m], everDown[m] = false, true
			case EventLate:
				if e.Gap <= testTiming.Warntime || e.Gap >= testTiming.Deadtime {
					t.Fatalf("step %d: late gap %v", i, e.Gap)
				}
			case EventPeerAlive:
				if peerAlive {
					t.Fatalf("step %d: alive twice", i)
				}
				peerAlive, peerDead = true, false
			case EventPeerDead:
				for m := range media {
					if up[m] {
						t.Fatalf("step %d: peer dead while %s is up", i, media[m])
					}
					if !everDown[m] {
						t.Fatalf("step %d: peer dead before %s was judged", i, media[m])
					}
				}
				if peerDead {
					t.Fatalf("step %d: dead twice", i)
				}
				peerAlive, peerDead = false, true
			}
		}
		// Between calls, the peer is alive exactly when a medium is up.
		anyUp := false
		for m := range media {
			anyUp = anyUp || up[m]
			if up[m] && tr.Status()[0].Media[m].State != LinkUp {
				t.Fatalf("step %d: model has %s up, tracker %v", i, media[m], tr.Status()[0].Media[m].State)
			}
		}
		if anyUp != peerAlive {
			t.Fatalf("step %d: a medium up %v, peer alive %v", i, anyUp, peerAlive)
		}
		// Track the latest heartbeat time the model knows.
		for m := range media {
			if st := tr.Status()[0].Media[m]; up[m] {
				last[m] = st.LastHeard
			}
		}
	}
	if counts[EventPeerDead] < 5 || counts[EventMediumDown] < 20 || counts[EventLate] < 5 {
		t.Fatalf("simulation too tame: %v", counts)
	}
	t.Logf("%d steps in %v: %d medium down, %d peer dead, %d late", steps, time.Since(start),
		counts[EventMediumDown], counts[EventPeerDead], counts[EventLate])
}

func indexOf(names []string, s string) int {
	for i, n := range names {
		if n == s {
			return i
		}
	}
	return -1
}
