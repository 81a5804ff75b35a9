package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// LogInterval is the least time between two log lines about the same kind
// of bad input on the same medium; the line after a quiet spell says how
// many were held back.
const LogInterval = 10 * time.Second

// txQueue is how many messages may wait for a slow medium before new ones
// are dropped and counted as send errors.
const txQueue = 4

// promptSender is a Medium whose Send never waits for the line: it hands
// the message to the kernel without blocking, or to a goroutine of its
// own. A Node calls its Send directly instead of through a queue and a
// goroutine of the Node's, which saves a wake-up per message and medium.
// sendsPromptly reports whether this instance qualifies.
type promptSender interface {
	sendsPromptly() bool
}

// NodeConfig says what a Node needs. The cluster name, node names, key and
// timing come from tandem.toml, the generation from BumpGeneration.
type NodeConfig struct {
	// Cluster is the cluster name stamped into every message.
	Cluster string
	// Name is this node's name.
	Name string
	// Peers are the other nodes' names.
	Peers []string
	// Key is the shared secret (see NewCodec).
	Key []byte
	// Generation is this node's generation for this run.
	Generation uint64
	// Timing holds keepalive, warntime, deadtime and initdead; zero fields
	// take DefaultTiming's values.
	Timing Timing
	// Media are the media to send and receive on; the Node owns them once
	// Start succeeds and closes them when it stops. If Start fails they
	// stay the caller's to close.
	Media []Medium
	// Status is the first heartbeat payload (see SetStatus); may be empty.
	Status []byte
	// Logger receives liveness changes and, at a bounded rate, bad input;
	// slog.Default() when nil.
	Logger *slog.Logger
	// AppOnly delivers only application messages as EventReceived, not
	// plain heartbeats: their effect on liveness is all a consumer that
	// ignores their payload needs, and leaving them out saves it a wake-up
	// per keepalive.
	AppOnly bool
}

// Counters count what one medium carried. Bad input is counted by kind and
// never acted on.
type Counters struct {
	// Sent counts messages handed to the medium.
	Sent uint64
	// SendErrors counts messages the medium failed to send or that were
	// dropped because it was too slow.
	SendErrors uint64
	// Received counts authenticated, fresh messages from peers.
	Received uint64
	// Late counts heartbeats that came more than warntime after the
	// previous one from the same peer.
	Late uint64
	// Truncated counts input that ends before a field it declares.
	Truncated uint64
	// Malformed counts input with a bad magic, an unknown version or
	// message type, or a length out of bounds.
	Malformed uint64
	// Forged counts messages whose MAC does not verify.
	Forged uint64
	// Replayed counts authenticated messages seen before, or older than
	// the replay window or the sender's generation.
	Replayed uint64
	// Foreign counts messages of another cluster.
	Foreign uint64
	// UnknownSender counts authenticated messages from a node that is not
	// a configured peer, or signed with this node's name by another run.
	UnknownSender uint64
	// Looped counts this node's own messages coming back (broadcast).
	Looped uint64
	// ReceiveErrors counts failures of the medium to receive.
	ReceiveErrors uint64
}

// Bad sums the counters of rejected input.
func (c Counters) Bad() uint64 {
	return c.Truncated + c.Malformed + c.Forged + c.Replayed + c.Foreign + c.UnknownSender
}

// MediumStats are the counters of one medium.
type MediumStats struct {
	// Name is the medium's name.
	Name string
	Counters
}

// Stats is a snapshot of a Node.
type Stats struct {
	// Name is this node's name.
	Name string
	// Generation is this run's generation.
	Generation uint64
	// Sequence is the sequence number of the last message sent.
	Sequence uint64
	// Media are in the order of NodeConfig.Media.
	Media []MediumStats
	// Peers are in the order of NodeConfig.Peers.
	Peers []PeerStatus
}

type linkKey struct{ sender, medium string }

type packet struct {
	medium int
	data   []byte
	from   string
	at     time.Time
}

// Node runs the heartbeat of one node: it sends a heartbeat every
// keepalive on every medium, receives on each, verifies, drops replays,
// judges liveness and reports events and accepted messages on Events.
//
// Its goroutines are owned by the Node: they end when the context given to
// Start is cancelled or Close is called, and Close waits for them.
type Node struct {
	cfg    NodeConfig
	codec  *Codec
	log    *slog.Logger
	media  []Medium
	events chan Event
	tx     []chan []byte // per medium: its queue, or nil when Send is prompt
	sendMu []sync.Mutex  // per prompt medium: one Send at a time
	kick   chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
	errs   error

	// judging serialises judging and the events it yields, so Events
	// carries them in the order they were judged. It is held while Events
	// is full; mu is not, so heartbeats still go out.
	judging sync.Mutex
	timer   *time.Timer // fires at the tracker's next deadline, or later
	armed   time.Time   // when timer fires; zero when it is not set

	mu        sync.Mutex
	seq       uint64
	status    []byte
	counters  []Counters
	tracker   *Tracker
	windows   map[linkKey]*Window
	delivered map[string]*Window
	limiter   *logLimiter
}

// Start checks cfg and starts a Node. Cancelling ctx stops it as Close
// does. The first heartbeat goes out at once.
func Start(ctx context.Context, cfg NodeConfig) (*Node, error) {
	codec, err := NewCodec(cfg.Cluster, cfg.Key)
	if err != nil {
		return nil, err
	}
	if err := checkName("node name", cfg.Name); err != nil {
		return nil, err
	}
	for _, p := range cfg.Peers {
		if err := checkName("peer name", p); err != nil {
			return nil, err
		}
		if p == cfg.Name {
			return nil, fmt.Errorf("heartbeat: node %q is its own peer", p)
		}
	}
	if len(cfg.Status) > MaxPayload {
		return nil, fmt.Errorf("heartbeat: status is %d bytes, limit %d", len(cfg.Status), MaxPayload)
	}
	cfg.Timing = cfg.Timing.WithDefaults()
	names := make([]string, len(cfg.Media))
	for i, m := range cfg.Media {
		names[i] = m.Name()
	}
	tr, err := NewTracker(cfg.Timing, cfg.Peers, names, time.Now())
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	n := &Node{
		cfg:       cfg,
		codec:     codec,
		log:       log.With("node", cfg.Name, "generation", cfg.Generation),
		media:     slices.Clone(cfg.Media),
		events:    make(chan Event, 64),
		tx:        make([]chan []byte, len(cfg.Media)),
		sendMu:    make([]sync.Mutex, len(cfg.Media)),
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		status:    slices.Clone(cfg.Status),
		counters:  make([]Counters, len(cfg.Media)),
		tracker:   tr,
		windows:   map[linkKey]*Window{},
		delivered: map[string]*Window{},
		limiter:   newLogLimiter(LogInterval),
	}
	for _, p := range cfg.Peers {
		n.delivered[p] = &Window{}
		for _, m := range names {
			n.windows[linkKey{p, m}] = &Window{}
		}
	}
	n.ctx, n.cancel = context.WithCancel(ctx)
	n.timer = time.NewTimer(time.Hour)
	n.timer.Stop()
	n.arm(time.Now())
	for i, m := range n.media {
		n.wg.Add(1)
		go n.receiveLoop(i, m)
		if p, ok := m.(promptSender); ok && p.sendsPromptly() {
			continue
		}
		n.tx[i] = make(chan []byte, txQueue)
		n.wg.Add(1)
		go n.sendLoop(i, m, n.tx[i])
	}
	n.wg.Add(1)
	go n.keepaliveLoop()
	go n.run()
	return n, nil
}

// Events delivers liveness events and accepted messages (EventReceived)
// in the order they were judged. The channel is closed when the Node
// stops. The owner must drain it: while it is full, incoming messages wait
// (heartbeats still go out).
func (n *Node) Events() <-chan Event { return n.events }

// Close stops the Node, closes its media and waits for its goroutines. It
// returns the media's close errors and is safe to call more than once.
func (n *Node) Close() error {
	n.cancel()
	<-n.done
	return n.errs
}

// Done is closed when the Node has stopped.
func (n *Node) Done() <-chan struct{} { return n.done }

// SetStatus replaces the heartbeat payload (at most MaxPayload bytes;
// usually a Status's encoding) and sends a heartbeat carrying it at once,
// so the peer learns of a change without waiting for the next keepalive.
func (n *Node) SetStatus(payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("heartbeat: status is %d bytes, limit %d", len(payload), MaxPayload)
	}
	n.mu.Lock()
	n.status = slices.Clone(payload)
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
	return nil
}

// Send signs an application message (t in TypeAppFirst..TypeAppLast) and
// sends it on every medium. The peer's Node delivers it once, however many
// media carry it. It fails when the Node has stopped, or when no medium
// could take it.
func (n *Node) Send(t Type, payload []byte) error {
	if !t.IsApp() {
		return fmt.Errorf("heartbeat: %v is not an application message type", t)
	}
	if n.ctx.Err() != nil {
		return errors.New("heartbeat: node stopped")
	}
	msg, err := n.next(t, payload)
	if err != nil {
		return err
	}
	if n.broadcast(msg) == 0 {
		return fmt.Errorf("heartbeat: %v: every medium's queue is full", t)
	}
	return nil
}

// Stats returns a snapshot of the counters and of every peer's liveness.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := Stats{Name: n.cfg.Name, Generation: n.cfg.Generation, Sequence: n.seq, Peers: n.tracker.Status()}
	for i, m := range n.media {
		c := n.counters[i]
		c.Late = 0
		for _, p := range s.Peers {
			c.Late += p.Media[i].Late
		}
		s.Media = append(s.Media, MediumStats{Name: m.Name(), Counters: c})
	}
	return s
}

// next signs a message with the next sequence number.
func (n *Node) next(t Type, payload []byte) ([]byte, error) {
	n.mu.Lock()
	n.seq++
	m := Message{Type: t, Sender: n.cfg.Name, Generation: n.cfg.Generation, Sequence: n.seq, Payload: payload}
	if t == TypeHeartbeat {
		m.Payload = n.status
	}
	msg, err := n.codec.Marshal(&m)
	n.mu.Unlock()
	return msg, err
}

// broadcast hands msg to every medium, directly or through its queue, and
// returns how many took it.
func (n *Node) broadcast(msg []byte) int {
	took := 0
	for i := range n.tx {
		if n.deliver(i, msg) {
			took++
		}
	}
	return took
}

// deliver hands msg to medium i, directly or through its queue, and
// reports whether it took it.
func (n *Node) deliver(i int, msg []byte) bool {
	q := n.tx[i]
	if q == nil {
		n.sendMu[i].Lock()
		n.send(i, n.media[i], msg)
		n.sendMu[i].Unlock()
		return true
	}
	select {
	case q <- msg:
		return true
	default:
		n.mu.Lock()
		n.counters[i].SendErrors++
		n.mu.Unlock()
		n.logLimited(i, "queue", "send queue full, message dropped", time.Now())
		return false
	}
}

// SendOn signs an application message and sends it on the named medium
// only: bulk data, such as connection lists, goes over the heartbeat LAN
// and stays off the serial cable and the quorum disk, whose bandwidth and
// single slot belong to liveness and the decision core.
func (n *Node) SendOn(medium string, t Type, payload []byte) error {
	if !t.IsApp() {
		return fmt.Errorf("heartbeat: %v is not an application message type", t)
	}
	if n.ctx.Err() != nil {
		return errors.New("heartbeat: node stopped")
	}
	for i, m := range n.media {
		if m.Name() != medium {
			continue
		}
		msg, err := n.next(t, payload)
		if err != nil {
			return err
		}
		if !n.deliver(i, msg) {
			return fmt.Errorf("heartbeat: %v: the %s queue is full", t, medium)
		}
		return nil
	}
	return fmt.Errorf("heartbeat: no medium %q", medium)
}

// send sends msg on medium i and counts the outcome.
func (n *Node) send(i int, m Medium, msg []byte) {
	err := m.Send(msg)
	n.mu.Lock()
	if err != nil {
		n.counters[i].SendErrors++
	} else {
		n.counters[i].Sent++
	}
	n.mu.Unlock()
	if err != nil {
		n.logLimited(i, "send", "send failed", time.Now(), "err", err)
	}
}

func (n *Node) keepaliveLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Timing.Keepalive)
	defer t.Stop()
	for {
		msg, err := n.next(TypeHeartbeat, nil)
		if err != nil {
			// Only an oversized status can fail, and SetStatus refuses those.
			n.log.Error("heartbeat: cannot sign heartbeat", "err", err)
		} else {
			n.broadcast(msg)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
			t.Reset(n.cfg.Timing.Keepalive)
		}
	}
}

func (n *Node) sendLoop(i int, m Medium, q <-chan []byte) {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case msg := <-q:
			n.send(i, m, msg)
		}
	}
}

// receiveLoop receives on medium i and judges what arrives on the same
// goroutine, so a packet costs no hand-off to another.
func (n *Node) receiveLoop(i int, m Medium) {
	defer n.wg.Done()
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		data, from, err := m.Receive()
		if n.ctx.Err() != nil {
			return
		}
		if err != nil {
			n.mu.Lock()
			n.counters[i].ReceiveErrors++
			n.mu.Unlock()
			n.logLimited(i, "receive", "receive failed", time.Now(), "err", err)
			pause.Reset(n.cfg.Timing.Keepalive)
			select {
			case <-n.ctx.Done():
				return
			case <-pause.C:
			}
			continue
		}
		p := packet{medium: i, data: data, from: from, at: time.Now()}
		n.judging.Lock()
		evs := n.judge(p)
		n.arm(p.at)
		n.emit(evs)
		n.judging.Unlock()
	}
}

// run is the owner: it judges the tracker's deadlines, and on the way out
// closes the media, waits for every other goroutine and closes Events.
func (n *Node) run() {
	defer close(n.done)
	defer close(n.events)
	defer n.timer.Stop()
	for {
		select {
		case <-n.ctx.Done():
			for _, m := range n.media {
				n.errs = errors.Join(n.errs, m.Close())
			}
			n.wg.Wait()
			return
		case now := <-n.timer.C:
			n.judging.Lock()
			n.armed = time.Time{}
			n.mu.Lock()
			evs := n.tracker.Tick(now)
			n.mu.Unlock()
			n.arm(now)
			n.emit(evs)
			n.judging.Unlock()
		}
	}
}

// arm makes the timer fire no later than the tracker's next deadline; the
// caller holds judging. Heartbeats push deadlines later, and resetting the
// timer for every packet costs more than the packet, so a timer that
// fires in time is left alone until it is about to fire: a packet that
// comes within a keepalive of that pushes it to the new deadline while its
// goroutine is awake anyway, and only a silence lets it fire, early, for
// run to find nothing due and arm it again.
func (n *Node) arm(now time.Time) {
	n.mu.Lock()
	next, ok := n.tracker.NextDeadline()
	n.mu.Unlock()
	switch {
	case !ok:
		return
	case n.armed.IsZero() || next.Before(n.armed):
	case next.After(n.armed) && n.armed.Sub(now) < n.cfg.Timing.Keepalive:
	default:
		return
	}
	n.armed = next
	n.timer.Reset(time.Until(next))
}

// emit logs events and delivers them on Events; the caller holds judging.
func (n *Node) emit(evs []Event) {
	for _, e := range evs {
		n.logEvent(e)
		select {
		case n.events <- e:
		case <-n.ctx.Done():
		}
	}
}

// judge verifies one received packet and returns the events it causes.
func (n *Node) judge(p packet) []Event {
	medium := n.media[p.medium].Name()
	m, err := n.codec.Unmarshal(p.data)
	n.mu.Lock()
	defer n.mu.Unlock()
	c := &n.counters[p.medium]
	if err != nil {
		var kind string
		switch {
		case errors.Is(err, ErrTruncated):
			c.Truncated++
			kind = "truncated"
		case errors.Is(err, ErrBadMAC):
			c.Forged++
			kind = "forged"
		case errors.Is(err, ErrForeignCluster):
			c.Foreign++
			kind = "foreign"
		default:
			c.Malformed++
			kind = "malformed"
		}
		n.logLimitedLocked(p.medium, kind, "message rejected", p.at, "from", p.from, "err", err)
		return nil
	}
	if m.Sender == n.cfg.Name {
		if m.Generation == n.cfg.Generation {
			c.Looped++
			return nil
		}
		c.UnknownSender++
		n.logLimitedLocked(p.medium, "self", "message signed with this node's name by another generation: two nodes share a name, or an old message is replayed",
			p.at, "from", p.from, "sender_generation", m.Generation)
		return nil
	}
	w := n.windows[linkKey{m.Sender, medium}]
	if w == nil {
		c.UnknownSender++
		n.logLimitedLocked(p.medium, "unknown", "message from a node that is not a peer", p.at, "from", p.from, "sender", m.Sender)
		return nil
	}
	if err := w.Accept(m.Generation, m.Sequence); err != nil {
		c.Replayed++
		n.logLimitedLocked(p.medium, "replayed", "message rejected", p.at, "from", p.from, "sender", m.Sender, "err", err)
		return nil
	}
	c.Received++
	evs, err := n.tracker.Heard(m.Sender, medium, p.at)
	if err != nil {
		// The windows are built from the same peers and media as the
		// tracker, so this is a broken invariant, not bad input.
		panic(err)
	}
	if n.delivered[m.Sender].Accept(m.Generation, m.Sequence) == nil && (m.Type.IsApp() || !n.cfg.AppOnly) {
		evs = append(evs, Event{Kind: EventReceived, Peer: m.Sender, Medium: medium, Time: p.at, Message: m})
	}
	return evs
}

func (n *Node) logEvent(e Event) {
	attrs := []any{"peer", e.Peer}
	if e.Medium != "" {
		attrs = append(attrs, "medium", e.Medium)
	}
	switch e.Kind {
	case EventLate:
		n.log.Warn(fmt.Sprintf("late heartbeat: %d ms", e.Gap.Milliseconds()), attrs...)
	case EventMediumDown:
		n.log.Warn("medium down", append(attrs, "silent_ms", e.Gap.Milliseconds())...)
	case EventPeerDead:
		n.log.Warn("peer dead: silent on every medium", append(attrs, "silent_ms", e.Gap.Milliseconds())...)
	case EventMediumUp:
		n.log.Info("medium up", attrs...)
	case EventPeerAlive:
		n.log.Info("peer alive", attrs...)
	}
}

func (n *Node) logLimited(i int, kind, msg string, now time.Time, attrs ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.logLimitedLocked(i, kind, msg, now, attrs...)
}

func (n *Node) logLimitedLocked(i int, kind, msg string, now time.Time, attrs ...any) {
	medium := n.media[i].Name()
	ok, held := n.limiter.allow(medium+"/"+kind, now)
	if !ok {
		return
	}
	attrs = append([]any{"medium", medium, "kind", kind}, attrs...)
	if held > 0 {
		attrs = append(attrs, "suppressed", held)
	}
	n.log.Warn("heartbeat: "+msg, attrs...)
}
