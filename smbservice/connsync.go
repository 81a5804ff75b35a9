package smbservice

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// ListVersion says how recent a copy of the active node's connection list
// is: the epoch of the Sync that made it and the sequence number of the
// last message it includes. Copies from the same node compare: a greater
// epoch is newer (a later run of the node), then a greater Seq.
type ListVersion struct {
	Epoch, Seq uint64
}

// Compare returns -1, 0 or +1 as v is older than, the same as, or newer
// than w.
func (v ListVersion) Compare(w ListVersion) int {
	switch {
	case v.Epoch != w.Epoch:
		if v.Epoch < w.Epoch {
			return -1
		}
		return 1
	case v.Seq < w.Seq:
		return -1
	case v.Seq > w.Seq:
		return 1
	}
	return 0
}

// IsZero reports whether v is the version of no list at all.
func (v ListVersion) IsZero() bool { return v == ListVersion{} }

// String returns "EPOCH/SEQ".
func (v ListVersion) String() string { return fmt.Sprintf("%d/%d", v.Epoch, v.Seq) }

// VersionedList is a copy of a node's connection list, with its version
// and where it came from ("lan", "disk", "file", as the caller names it).
type VersionedList struct {
	Version ListVersion
	Conns   []Conn
	Source  string
}

// Newest returns the list with the greatest version; on a tie, the first
// given. Lists with a zero version count only when every list has one.
func Newest(lists ...VersionedList) VersionedList {
	var best VersionedList
	for i, l := range lists {
		if i == 0 || l.Version.Compare(best.Version) > 0 {
			best = l
		}
	}
	return best
}

// Defaults of SyncOptions.
const (
	DefaultResendAfter    = 500 * time.Millisecond
	DefaultMaxResendAfter = 8 * time.Second
	DefaultSyncWindow     = 64
	DefaultSyncQueue      = 1024
)

// SyncOptions tune a Sync. Zero fields take the defaults.
type SyncOptions struct {
	// Epoch names this stream; it must differ from that of every earlier
	// Sync of the node and should grow, so that copies compare by age
	// (tandemd's generation, bumped at each start, shifted left with a
	// counter of Syncs made in the run, fits). Zero takes the UnixNano of
	// the first time given to Changed or Tick.
	Epoch uint64
	// ResendAfter is how long a message waits for its acknowledgement
	// before it is sent again; each resend without progress doubles the
	// wait up to MaxResendAfter.
	ResendAfter, MaxResendAfter time.Duration
	// Window is how many messages may be unacknowledged on the wire.
	Window int
	// MaxQueue is how many unacknowledged messages are kept before they
	// are replaced by a full sync (never fewer than twice a full sync's).
	MaxQueue int
}

// SyncStats count what a Sync did.
type SyncStats struct {
	Version    ListVersion // of the list as last changed
	Conns      int         // connections in the list
	Queued     int         // messages not yet acknowledged
	Sent       uint64      // messages handed out, resends included
	Resent     uint64      // of which resends
	FullSyncs  uint64      // full syncs begun
	Acked      uint64      // highest sequence number acknowledged
	BadReplies uint64      // acknowledgements refused
}

// Sync replicates the active node's connection list to its peer over an
// unreliable, message-sized transport (the heartbeat LAN). It is a pure
// state machine: no goroutines, no I/O, no clock reads; time comes in with
// the calls. The driving loop:
//
//	msgs := s.Changed(added, removed, now) // from each Tracker poll
//	send(msgs)
//	...
//	msgs = s.Tick(now) // every few hundred ms: resends
//	msgs, err = s.Ack(reply, now) // for each acknowledgement from the peer
//
// Every message is at most MaxSyncMessage bytes and carries the stream's
// epoch and a sequence number. Changes go out as deltas; the first
// messages of a stream, a change larger than the list, a peer that lost
// its state or missed messages no longer kept, are answered with a full
// sync: the whole list in numbered chunks. Unacknowledged messages are
// resent after ResendAfter, backing off while nothing is acknowledged.
// Its methods are safe for concurrent use.
type Sync struct {
	mu    sync.Mutex
	o     SyncOptions
	epoch uint64
	seq   uint64 // last sequence number given out
	set   map[Conn]struct{}
	queue []*outMsg // unacknowledged, ascending
	acked uint64
	// snapEnd is the last sequence number of the latest full sync; it is
	// in flight while acked < snapEnd.
	snapEnd  uint64
	snapLen  int
	needFull bool
	rto      time.Duration
	stats    SyncStats
}

type outMsg struct {
	seq  uint64
	b    []byte
	sent time.Time // zero until first sent
}

// NewSync returns a Sync whose list is empty.
func NewSync(o SyncOptions) *Sync {
	if o.ResendAfter <= 0 {
		o.ResendAfter = DefaultResendAfter
	}
	if o.MaxResendAfter < o.ResendAfter {
		o.MaxResendAfter = max(DefaultMaxResendAfter, o.ResendAfter)
	}
	if o.Window <= 0 {
		o.Window = DefaultSyncWindow
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = DefaultSyncQueue
	}
	return &Sync{o: o, epoch: o.Epoch, set: map[Conn]struct{}{}, needFull: true, rto: o.ResendAfter}
}

func (s *Sync) start(now time.Time) {
	if s.epoch == 0 {
		s.epoch = uint64(now.UnixNano())
		if s.epoch == 0 {
			s.epoch = 1
		}
	}
}

// Changed applies a change of the list, as Tracker.Poll reports it
// (removed first, then added; connections already in or out are
// ignored), and returns the messages to send now.
func (s *Sync) Changed(added, removed []Conn, now time.Time) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.start(now)
	var items []item
	for _, c := range removed {
		if _, ok := s.set[c]; ok {
			delete(s.set, c)
			items = append(items, item{opRemove, c})
		}
	}
	for _, c := range added {
		if _, ok := s.set[c]; !ok && c.valid() == nil {
			s.set[c] = struct{}{}
			items = append(items, item{opAdd, c})
		}
	}
	if s.needFull || len(items) > len(s.set) {
		s.fullSync()
		return s.sendable(now)
	}
	if len(items) == 0 {
		return nil
	}
	slices.SortFunc(items, func(a, b item) int {
		if a.op != b.op {
			return int(a.op) - int(b.op)
		}
		return a.c.Compare(b.c)
	})
	// A connection that went and came back in one change is both removed
	// and added: keep the add only, which leaves the peer right.
	items = slices.DeleteFunc(items, func(it item) bool {
		if it.op != opRemove {
			return false
		}
		_, back := s.set[it.c]
		return back
	})
	if len(items) == 0 {
		return nil
	}
	for _, body := range packBodies(items, bodyLimit(syncDelta)) {
		s.seq++
		s.queue = append(s.queue, &outMsg{seq: s.seq, b: encodeSync(syncDelta, s.epoch, s.seq, 0, 0, body)})
	}
	s.stats.Version = ListVersion{s.epoch, s.seq}
	if len(s.queue) > max(s.o.MaxQueue, 2*s.snapLen) {
		s.fullSync()
	}
	return s.sendable(now)
}

// fullSync drops every queued message and queues the whole list in
// chunks.
func (s *Sync) fullSync() {
	conns := slices.SortedFunc(maps.Keys(s.set), Conn.Compare)
	items := make([]item, len(conns))
	for i, c := range conns {
		items[i] = item{opAdd, c}
	}
	bodies := packBodies(items, bodyLimit(syncChunk))
	s.queue = s.queue[:0]
	for i, body := range bodies {
		s.seq++
		s.queue = append(s.queue, &outMsg{seq: s.seq, b: encodeSync(syncChunk, s.epoch, s.seq, uint32(i), uint32(len(bodies)), body)})
	}
	s.snapEnd, s.snapLen, s.needFull = s.seq, len(bodies), false
	s.stats.FullSyncs++
	s.stats.Version = ListVersion{s.epoch, s.seq}
	s.rto = s.o.ResendAfter
}

// sendable marks the queued messages inside the window that were never
// sent as sent now, and returns them.
func (s *Sync) sendable(now time.Time) [][]byte {
	var out [][]byte
	for _, m := range s.queue[:min(len(s.queue), s.o.Window)] {
		if m.sent.IsZero() {
			m.sent = now
			out = append(out, m.b)
		}
	}
	s.stats.Sent += uint64(len(out))
	return out
}

// Tick returns the messages to resend now: those in the window whose
// acknowledgement is overdue.
func (s *Sync) Tick(now time.Time) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.needFull {
		// Nothing to say before the first Changed: an empty list sent now
		// would wipe the peer's copy for nothing.
		return nil
	}
	var out [][]byte
	for _, m := range s.queue[:min(len(s.queue), s.o.Window)] {
		if !m.sent.IsZero() && now.Sub(m.sent) >= s.rto {
			m.sent = now
			out = append(out, m.b)
		}
	}
	if len(out) > 0 {
		s.rto = min(2*s.rto, s.o.MaxResendAfter)
		s.stats.Resent += uint64(len(out))
		s.stats.Sent += uint64(len(out))
	}
	return append(out, s.sendable(now)...)
}

// Ack takes an acknowledgement from the peer and returns the messages to
// send now: those the window lets out, a message the peer reports
// missing, or a full sync when the peer has lost the stream. A malformed
// acknowledgement, or one of a message never sent, is an error and
// changes nothing.
func (s *Sync) Ack(reply []byte, now time.Time) ([][]byte, error) {
	a, err := decodeAck(reply)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && a.epoch == s.epoch && a.next-1 > s.seq {
		err = fmt.Errorf("connection acknowledgement: next %d, but the stream is at %d", a.next, s.seq)
	}
	if err != nil {
		s.stats.BadReplies++
		return nil, err
	}
	if s.needFull {
		return nil, nil
	}
	if a.epoch != s.epoch || a.flags&ackFull != 0 {
		// The peer follows another stream or cannot continue this one. A
		// full sync under way answers that already; a lost chunk of it is
		// resent by Tick.
		if s.acked >= s.snapEnd {
			s.fullSync()
		}
		return s.sendable(now), nil
	}
	if a.next-1 > s.acked {
		s.acked = a.next - 1
		i := 0
		for i < len(s.queue) && s.queue[i].seq <= s.acked {
			i++
		}
		s.queue = slices.Delete(s.queue, 0, i)
		s.rto = s.o.ResendAfter
	}
	out := s.sendable(now)
	if a.flags&ackGap != 0 && len(s.queue) > 0 {
		if m := s.queue[0]; m.seq > a.next {
			// Messages the peer needs were dropped: only a full sync helps.
			s.fullSync()
			return append(out, s.sendable(now)...), nil
		} else if now.Sub(m.sent) >= s.o.ResendAfter/4 {
			m.sent = now
			s.stats.Resent++
			s.stats.Sent++
			out = append(out, m.b)
		}
	}
	return out, nil
}

// Version returns the version of the list as last changed.
func (s *Sync) Version() ListVersion {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ListVersion{s.epoch, s.seq}
}

// List returns the list, sorted, with its version.
func (s *Sync) List() VersionedList {
	s.mu.Lock()
	defer s.mu.Unlock()
	return VersionedList{Version: ListVersion{s.epoch, s.seq}, Conns: slices.SortedFunc(maps.Keys(s.set), Conn.Compare), Source: "local"}
}

// Stats returns the counters.
func (s *Sync) Stats() SyncStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Version = ListVersion{s.epoch, s.seq}
	st.Conns, st.Queued, st.Acked = len(s.set), len(s.queue), s.acked
	return st
}

// ViewStats count what a View did.
type ViewStats struct {
	Version  ListVersion // of the list held
	Conns    int         // connections in it
	Applied  uint64      // messages applied
	Ignored  uint64      // duplicates, and messages out of order
	Refused  uint64      // malformed messages
	Resyncs  uint64      // full syncs completed
	Requests uint64      // full syncs asked for
}

// View is the peer's side of a Sync: the list as the active node last
// sent it, which the node tickles when it takes over. It applies messages
// in order, acknowledges each, and asks for a full sync when it cannot go
// on. It is a pure state machine, safe for concurrent use.
type View struct {
	mu      sync.Mutex
	epoch   uint64
	applied uint64 // last sequence number applied
	version ListVersion
	set     map[Conn]struct{}
	// pending collects a full sync until its last chunk.
	pending              []Conn
	pendStart, pendCount uint64
	pendActive           bool
	changes              uint64
	notify               chan struct{}
	stats                ViewStats
}

// NewView returns a View that holds l, such as a list read back from a
// file; the zero VersionedList gives an empty view that follows no stream.
func NewView(l VersionedList) *View {
	v := &View{set: make(map[Conn]struct{}, len(l.Conns))}
	for _, c := range l.Conns {
		v.set[c] = struct{}{}
	}
	v.epoch, v.applied, v.version = l.Version.Epoch, l.Version.Seq, l.Version
	return v
}

// Apply applies one message from the peer's Sync and returns the
// acknowledgement to send back. A malformed message is an error, with no
// reply, and changes nothing.
func (v *View) Apply(msg []byte) ([]byte, error) {
	m, err := decodeSync(msg)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.stats.Refused++
		return nil, err
	}
	var flags byte
	switch {
	case m.typ == syncChunk && m.index == 0 && (m.epoch != v.epoch || m.seq > v.applied):
		// A full sync starts, whatever came before.
		v.epoch, v.applied = m.epoch, m.seq
		v.pending, v.pendStart, v.pendCount, v.pendActive = append(v.pending[:0], m.add...), m.seq, uint64(m.count), true
		v.stats.Applied++
		v.complete()
	case m.epoch != v.epoch:
		flags = ackFull
		v.stats.Requests++
	case m.seq <= v.applied:
		v.stats.Ignored++
	case m.seq > v.applied+1:
		flags = ackGap
		v.stats.Ignored++
	case m.typ == syncChunk:
		if !v.pendActive || m.seq != v.pendStart+uint64(m.index) || uint64(m.count) != v.pendCount {
			flags = ackFull
			v.stats.Requests++
			break
		}
		v.applied = m.seq
		v.pending = append(v.pending, m.add...)
		v.stats.Applied++
		v.complete()
	default: // the next delta
		if v.pendActive {
			flags = ackFull
			v.stats.Requests++
			break
		}
		for _, c := range m.remove {
			delete(v.set, c)
		}
		for _, c := range m.add {
			v.set[c] = struct{}{}
		}
		v.applied = m.seq
		v.version = ListVersion{v.epoch, v.applied}
		v.stats.Applied++
		v.changed()
	}
	return encodeAck(syncAck{flags: flags, epoch: v.epoch, next: v.applied + 1}), nil
}

// complete installs the pending full sync when its last chunk is in.
func (v *View) complete() {
	if v.applied != v.pendStart+v.pendCount-1 {
		return
	}
	v.set = make(map[Conn]struct{}, len(v.pending))
	for _, c := range v.pending {
		v.set[c] = struct{}{}
	}
	v.pending, v.pendActive = nil, false
	v.version = ListVersion{v.epoch, v.applied}
	v.stats.Resyncs++
	v.changed()
}

func (v *View) changed() {
	v.changes++
	if v.notify != nil {
		select {
		case v.notify <- struct{}{}:
		default:
		}
	}
}

// List returns the list held, sorted, with its version; Source is "lan".
func (v *View) List() VersionedList {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.list()
}

func (v *View) list() VersionedList {
	return VersionedList{Version: v.version, Conns: slices.SortedFunc(maps.Keys(v.set), Conn.Compare), Source: "lan"}
}

// Stats returns the counters.
func (v *View) Stats() ViewStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.stats
	st.Version, st.Conns = v.version, len(v.set)
	return st
}

// snapshot returns the list and the change count it has.
func (v *View) snapshot() (VersionedList, uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.list(), v.changes
}

// watch returns a channel that receives a value after changes, at most
// one waiting.
func (v *View) watch() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.notify == nil {
		v.notify = make(chan struct{}, 1)
	}
	return v.notify
}
