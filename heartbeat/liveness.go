package heartbeat

import (
	"fmt"
	"time"
)

// Timing holds the liveness parameters, as in the [cluster] section of
// tandem.toml.
type Timing struct {
	// Keepalive is the interval between heartbeats a node sends.
	Keepalive time.Duration
	// Warntime: a heartbeat that arrives more than Warntime after the one
	// before on the same medium is reported late.
	Warntime time.Duration
	// Deadtime: a medium that has not carried a heartbeat from a peer for
	// Deadtime is down for that peer.
	Deadtime time.Duration
	// Initdead replaces Deadtime for a medium that has not heard the peer
	// since this node started.
	Initdead time.Duration
}

// DefaultTiming is the timing tandem ships with.
var DefaultTiming = Timing{
	Keepalive: 200 * time.Millisecond,
	Warntime:  time.Second,
	Deadtime:  2 * time.Second,
	Initdead:  30 * time.Second,
}

// WithDefaults returns t with every zero field taken from DefaultTiming.
func (t Timing) WithDefaults() Timing {
	if t.Keepalive == 0 {
		t.Keepalive = DefaultTiming.Keepalive
	}
	if t.Warntime == 0 {
		t.Warntime = DefaultTiming.Warntime
	}
	if t.Deadtime == 0 {
		t.Deadtime = DefaultTiming.Deadtime
	}
	if t.Initdead == 0 {
		t.Initdead = DefaultTiming.Initdead
	}
	return t
}

// Validate checks 0 < keepalive < warntime < deadtime <= initdead.
func (t Timing) Validate() error {
	switch {
	case t.Keepalive <= 0:
		return fmt.Errorf("heartbeat: keepalive %v must be positive", t.Keepalive)
	case t.Warntime <= t.Keepalive:
		return fmt.Errorf("heartbeat: warntime %v must be longer than keepalive %v", t.Warntime, t.Keepalive)
	case t.Deadtime <= t.Warntime:
		return fmt.Errorf("heartbeat: deadtime %v must be longer than warntime %v", t.Deadtime, t.Warntime)
	case t.Initdead < t.Deadtime:
		return fmt.Errorf("heartbeat: initdead %v must be at least deadtime %v", t.Initdead, t.Deadtime)
	}
	return nil
}

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventMediumUp: a medium carries heartbeats from the peer (again).
	EventMediumUp EventKind = iota + 1
	// EventMediumDown: a medium has not carried a heartbeat from the peer for
	// deadtime (initdead if it never did since start).
	EventMediumDown
	// EventLate: a heartbeat arrived more than warntime after the one
	// before on the same medium; Gap holds the measured interval. Reported
	// once per late episode: the next one comes after a heartbeat on time.
	EventLate
	// EventPeerAlive: the peer is heard on at least one medium after being
	// unknown or dead.
	EventPeerAlive
	// EventPeerDead: every medium is down for the peer.
	EventPeerDead
	// EventReceived: an accepted message; Event.Message holds it. Only a Node
	// reports these.
	EventReceived
)

// String returns a lower-case name such as "medium down".
func (k EventKind) String() string {
	switch k {
	case EventMediumUp:
		return "medium up"
	case EventMediumDown:
		return "medium down"
	case EventLate:
		return "late heartbeat"
	case EventPeerAlive:
		return "peer alive"
	case EventPeerDead:
		return "peer dead"
	case EventReceived:
		return "received"
	}
	return fmt.Sprintf("event %d", uint8(k))
}

// Event is what a Tracker, or a Node, reports.
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// Peer is the node the event is about (the sender for EventReceived).
	Peer string
	// Medium is the medium concerned; empty for EventPeerAlive and EventPeerDead.
	Medium string
	// Time is when the event was found, on the judging node's clock.
	Time time.Time
	// Gap is, for EventLate and EventMediumUp, the interval since the
	// previous heartbeat on that medium (0 for the first); for EventMediumDown,
	// the silence that brought it down; for EventPeerDead, the time since the
	// peer was last heard on any medium (or since start).
	Gap time.Duration
	// Message is the accepted message, for EventReceived.
	Message *Message
}

// String describes the event for a log line, e.g.
// "late heartbeat: 1250 ms (peer beta, medium udp)".
func (e Event) String() string {
	where := "peer " + e.Peer
	if e.Medium != "" {
		where += ", medium " + e.Medium
	}
	switch e.Kind {
	case EventLate, EventMediumDown, EventPeerDead:
		return fmt.Sprintf("%v: %d ms (%s)", e.Kind, e.Gap.Milliseconds(), where)
	case EventReceived:
		if e.Message != nil {
			return fmt.Sprintf("received %v gen %d seq %d (%s)", e.Message.Type, e.Message.Generation, e.Message.Sequence, where)
		}
	}
	return fmt.Sprintf("%v (%s)", e.Kind, where)
}

// LinkState is the state of one medium for one peer.
type LinkState uint8

// Link states.
const (
	// LinkUnknown: not heard since start, initdead not yet over.
	LinkUnknown LinkState = iota
	// LinkUp: heard within deadtime.
	LinkUp
	// LinkDown: silent for deadtime, or never heard within initdead.
	LinkDown
)

// String returns "unknown", "up" or "down".
func (s LinkState) String() string {
	switch s {
	case LinkUp:
		return "up"
	case LinkDown:
		return "down"
	}
	return "unknown"
}

// MarshalText returns the state's name, for JSON status output.
func (s LinkState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a name as String writes it.
func (s *LinkState) UnmarshalText(b []byte) error {
	for _, v := range []LinkState{LinkUnknown, LinkUp, LinkDown} {
		if string(b) == v.String() {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("heartbeat: unknown medium state %q", b)
}

// PeerState is the liveness of a peer across all media.
type PeerState uint8

// Peer states.
const (
	// PeerUnknown: not yet judged, within initdead of start.
	PeerUnknown PeerState = iota
	// PeerAlive: at least one medium is up.
	PeerAlive
	// PeerDead: every medium is down.
	PeerDead
)

// String returns "unknown", "alive" or "dead".
func (s PeerState) String() string {
	switch s {
	case PeerAlive:
		return "alive"
	case PeerDead:
		return "dead"
	}
	return "unknown"
}

// MarshalText returns the state's name, for JSON status output.
func (s PeerState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a name as String writes it.
func (s *PeerState) UnmarshalText(b []byte) error {
	for _, v := range []PeerState{PeerUnknown, PeerAlive, PeerDead} {
		if string(b) == v.String() {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("heartbeat: unknown peer state %q", b)
}

// LinkStatus is a snapshot of one medium for one peer.
type LinkStatus struct {
	// Medium is the medium's name.
	Medium string
	// State is up, down or unknown.
	State LinkState
	// LastHeard is zero when the medium never carried a heartbeat from
	// the peer.
	LastHeard time.Time
	// Heard counts heartbeats from the peer on this medium.
	Heard uint64
	// Late counts heartbeats that came more than warntime after the
	// previous one.
	Late uint64
}

// PeerStatus is a snapshot of one peer.
type PeerStatus struct {
	// Name is the peer's node name.
	Name string
	// State is alive, dead or unknown.
	State PeerState
	// Since is when State was entered (the tracker's start for
	// PeerUnknown).
	Since time.Time
	// LastHeard is the latest LastHeard of its media.
	LastHeard time.Time
	// Media are the peer's media, in the tracker's order.
	Media []LinkStatus
}

type link struct {
	state         LinkState
	last          time.Time
	heard         uint64
	late          uint64
	inLateEpisode bool
}

type peer struct {
	name  string
	state PeerState
	since time.Time
	last  time.Time
	links []link
}

// Tracker judges the liveness of peers on each medium. It is pure logic:
// time comes in as arguments, nothing runs in the background, and the same
// calls give the same events whatever the real clock does, so tests drive
// it through hours of simulated time in milliseconds. A Tracker is not safe
// for concurrent use.
//
// Rules: a medium is up for a peer while it carried a heartbeat within
// deadtime; one that has not carried any since start is unknown until
// initdead after start, then down. A peer is alive while any medium is up,
// and dead only when every medium is down: for the first initdead after
// start, a peer can therefore only be declared dead once every medium has
// heard it and lost it again. Expiries are judged before each new
// heartbeat, so a heartbeat after more than deadtime of silence reports the
// medium down (and perhaps the peer dead) and then up again, whether or not
// Tick ran in between.
type Tracker struct {
	timing Timing
	start  time.Time
	media  []string
	peers  []*peer
}

// NewTracker returns a tracker for the named peers over the named media,
// started at start. Names must be unique and non-empty; the timing must
// pass Validate.
func NewTracker(timing Timing, peers, media []string, start time.Time) (*Tracker, error) {
	if err := timing.Validate(); err != nil {
		return nil, err
	}
	if len(peers) == 0 {
		return nil, fmt.Errorf("heartbeat: no peers to track")
	}
	if len(media) == 0 {
		return nil, fmt.Errorf("heartbeat: no media to track peers on")
	}
	if err := unique("peer", peers); err != nil {
		return nil, err
	}
	if err := unique("medium", media); err != nil {
		return nil, err
	}
	t := &Tracker{timing: timing, start: start, media: append([]string(nil), media...)}
	for _, name := range peers {
		t.peers = append(t.peers, &peer{name: name, since: start, links: make([]link, len(media))})
	}
	return t, nil
}

func unique(what string, names []string) error {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" {
			return fmt.Errorf("heartbeat: empty %s name", what)
		}
		if seen[n] {
			return fmt.Errorf("heartbeat: %s %q named twice", what, n)
		}
		seen[n] = true
	}
	return nil
}

// Timing returns the tracker's timing.
func (t *Tracker) Timing() Timing { return t.timing }

func (t *Tracker) find(peerName, medium string) (*peer, int) {
	for _, p := range t.peers {
		if p.name == peerName {
			for i, m := range t.media {
				if m == medium {
					return p, i
				}
			}
			return p, -1
		}
	}
	return nil, -1
}

// Heard records an authenticated, fresh heartbeat from peer on medium at
// now and returns the events it causes, after those of any expiry up to
// now. It fails for a peer or medium the tracker does not know.
func (t *Tracker) Heard(peerName, medium string, now time.Time) ([]Event, error) {
	p, i := t.find(peerName, medium)
	if p == nil {
		return nil, fmt.Errorf("heartbeat: unknown peer %q", peerName)
	}
	if i < 0 {
		return nil, fmt.Errorf("heartbeat: unknown medium %q", medium)
	}
	evs := t.Tick(now)
	l := &p.links[i]
	var gap time.Duration
	if !l.last.IsZero() {
		gap = now.Sub(l.last)
	}
	switch {
	case l.state != LinkUp:
		evs = append(evs, Event{Kind: EventMediumUp, Peer: p.name, Medium: medium, Time: now, Gap: gap})
		l.inLateEpisode = false
	case gap > t.timing.Warntime:
		l.late++
		if !l.inLateEpisode {
			l.inLateEpisode = true
			evs = append(evs, Event{Kind: EventLate, Peer: p.name, Medium: medium, Time: now, Gap: gap})
		}
	default:
		l.inLateEpisode = false
	}
	l.state = LinkUp
	l.last = now
	l.heard++
	if now.After(p.last) {
		p.last = now
	}
	if p.state != PeerAlive {
		p.state = PeerAlive
		p.since = now
		evs = append(evs, Event{Kind: EventPeerAlive, Peer: p.name, Time: now})
	}
	return evs, nil
}

// Tick judges expiries up to now and returns the events they cause.
func (t *Tracker) Tick(now time.Time) []Event {
	var evs []Event
	for _, p := range t.peers {
		down := 0
		for i := range p.links {
			l := &p.links[i]
			switch l.state {
			case LinkUp:
				if now.Sub(l.last) >= t.timing.Deadtime {
					l.state = LinkDown
					evs = append(evs, Event{Kind: EventMediumDown, Peer: p.name, Medium: t.media[i], Time: now, Gap: now.Sub(l.last)})
				}
			case LinkUnknown:
				if now.Sub(t.start) >= t.timing.Initdead {
					l.state = LinkDown
					evs = append(evs, Event{Kind: EventMediumDown, Peer: p.name, Medium: t.media[i], Time: now, Gap: now.Sub(t.start)})
				}
			}
			if l.state == LinkDown {
				down++
			}
		}
		if down == len(p.links) && p.state != PeerDead {
			p.state = PeerDead
			p.since = now
			from := p.last
			if from.IsZero() {
				from = t.start
			}
			evs = append(evs, Event{Kind: EventPeerDead, Peer: p.name, Time: now, Gap: now.Sub(from)})
		}
	}
	return evs
}

// NextDeadline returns the earliest time at which Tick would report an
// expiry, and false when nothing can expire (every medium is down).
func (t *Tracker) NextDeadline() (time.Time, bool) {
	var next time.Time
	found := false
	consider := func(d time.Time) {
		if !found || d.Before(next) {
			next, found = d, true
		}
	}
	for _, p := range t.peers {
		for _, l := range p.links {
			switch l.state {
			case LinkUp:
				consider(l.last.Add(t.timing.Deadtime))
			case LinkUnknown:
				consider(t.start.Add(t.timing.Initdead))
			}
		}
	}
	return next, found
}

// Status returns a snapshot of every peer, in the order given to
// NewTracker.
func (t *Tracker) Status() []PeerStatus {
	out := make([]PeerStatus, 0, len(t.peers))
	for _, p := range t.peers {
		ps := PeerStatus{Name: p.name, State: p.state, Since: p.since, LastHeard: p.last, Media: make([]LinkStatus, len(p.links))}
		for i, l := range p.links {
			ps.Media[i] = LinkStatus{Medium: t.media[i], State: l.state, LastHeard: l.last, Heard: l.heard, Late: l.late}
		}
		out = append(out, ps)
	}
	return out
}
