package heartbeat

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

var nodeTiming = Timing{
	Keepalive: 20 * time.Millisecond,
	Warntime:  200 * time.Millisecond,
	Deadtime:  400 * time.Millisecond,
	Initdead:  800 * time.Millisecond,
}

// waitFor polls cond until it holds or ten seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// collector drains a Node's events so tests can look at them.
type collector struct {
	mu     sync.Mutex
	events []Event
	closed chan struct{}
}

func collect(n *Node) *collector {
	c := &collector{closed: make(chan struct{})}
	go func() {
		defer close(c.closed)
		for e := range n.Events() {
			c.mu.Lock()
			c.events = append(c.events, e)
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) find(match func(Event) bool) []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Event
	for _, e := range c.events {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

func (c *collector) has(kind EventKind, peer, medium string) bool {
	return len(c.find(func(e Event) bool { return e.Kind == kind && e.Peer == peer && e.Medium == medium })) > 0
}

// syncBuffer is a log destination shared by goroutines.
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

// tap records what passes through Send.
type tap struct {
	Medium
	mu   sync.Mutex
	sent [][]byte
}

func (t *tap) Send(msg []byte) error {
	t.mu.Lock()
	t.sent = append(t.sent, bytes.Clone(msg))
	t.mu.Unlock()
	return t.Medium.Send(msg)
}

func (t *tap) first() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.sent) == 0 {
		return nil
	}
	return t.sent[0]
}

func startNode(t *testing.T, cfg NodeConfig) *Node {
	t.Helper()
	if cfg.Cluster == "" {
		cfg.Cluster = "filer"
	}
	if cfg.Key == nil {
		cfg.Key = testKey
	}
	if cfg.Timing == (Timing{}) {
		cfg.Timing = nodeTiming
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func mediumStats(n *Node, name string) Counters {
	for _, m := range n.Stats().Media {
		if m.Name == name {
			return m.Counters
		}
	}
	return Counters{}
}

func TestNodePairOverUDP(t *testing.T) {
	a1, b1 := loopbackPair(t, "lan1")
	a2, b2 := loopbackPair(t, "lan2")
	atap := &tap{Medium: a1}
	standby, err := Status{Role: "standby"}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	alpha := startNode(t, NodeConfig{Name: "alpha", Peers: []string{"beta"}, Generation: 7, Media: []Medium{atap, a2}, Status: standby})
	beta := startNode(t, NodeConfig{Name: "beta", Peers: []string{"alpha"}, Generation: 3, Media: []Medium{b1, b2}, Logger: logger})
	ae, be := collect(alpha), collect(beta)

	waitFor(t, "both nodes alive to each other on both media", func() bool {
		return be.has(EventPeerAlive, "alpha", "") && ae.has(EventPeerAlive, "beta", "") &&
			be.has(EventMediumUp, "alpha", "lan1") && be.has(EventMediumUp, "alpha", "lan2") &&
			ae.has(EventMediumUp, "beta", "lan1") && ae.has(EventMediumUp, "beta", "lan2")
	})
	hb := be.find(func(e Event) bool { return e.Kind == EventReceived && e.Message.Type == TypeHeartbeat })
	if len(hb) == 0 {
		t.Fatal("no heartbeat delivered")
	}
	var st Status
	if err := st.UnmarshalBinary(hb[0].Message.Payload); err != nil || st.Role != "standby" {
		t.Fatalf("first heartbeat status %+v, %v", st, err)
	}
	if m := hb[0].Message; m.Sender != "alpha" || m.Generation != 7 {
		t.Fatalf("heartbeat %+v", m)
	}

	// A new status goes out at once and arrives.
	active, _ := Status{Role: "active", Items: []StatusItem{{"vip", "started"}}}.MarshalBinary()
	if err := alpha.SetStatus(active); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new status", func() bool {
		return len(be.find(func(e Event) bool {
			return e.Kind == EventReceived && bytes.Equal(e.Message.Payload, active)
		})) > 0
	})

	// An application message arrives once although both media carry it.
	if err := alpha.Send(TypeAppFirst+2, []byte("release")); err != nil {
		t.Fatal(err)
	}
	isApp := func(e Event) bool { return e.Kind == EventReceived && e.Message.Type == TypeAppFirst+2 }
	waitFor(t, "the application message", func() bool { return len(be.find(isApp)) > 0 })
	heard := func(medium int) uint64 { return beta.Stats().Peers[0].Media[medium].Heard }
	h1, h2 := heard(0), heard(1)
	waitFor(t, "more heartbeats on both media", func() bool { return heard(0) > h1+3 && heard(1) > h2+3 })
	if got := be.find(isApp); len(got) != 1 || string(got[0].Message.Payload) != "release" {
		t.Fatalf("application message delivered %d times: %v", len(got), got)
	}

	// Inject bad input into beta's lan1 from a third socket.
	inj := listenLoopback(t)
	defer inj.Close()
	inject := func(b []byte) {
		t.Helper()
		if _, err := inj.WriteTo(b, b1.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	wrongKey, _ := NewCodec("filer", bytes.Repeat([]byte{9}, 32))
	otherCluster, _ := NewCodec("other", testKey)
	good := testCodec(t)
	forged := mustMarshal(t, wrongKey, &Message{Type: TypeAppFirst, Sender: "alpha", Generation: 7, Sequence: 1 << 40})
	foreign := mustMarshal(t, otherCluster, &Message{Type: TypeHeartbeat, Sender: "alpha", Generation: 7, Sequence: 1 << 40})
	stranger := mustMarshal(t, good, &Message{Type: TypeAppFirst, Sender: "mallory", Generation: 1, Sequence: 1})
	selfOld := mustMarshal(t, good, &Message{Type: TypeHeartbeat, Sender: "beta", Generation: 2, Sequence: 1})
	selfNow := mustMarshal(t, good, &Message{Type: TypeHeartbeat, Sender: "beta", Generation: 3, Sequence: 1})
	replayed := atap.first()
	truncated := replayed[:len(replayed)-5]

	before := mediumStats(beta, "lan1")
	const forgedCount = 50
	for range forgedCount {
		inject(forged)
	}
	for _, b := range [][]byte{foreign, stranger, selfOld, selfNow, replayed, truncated, []byte("garbage")} {
		inject(b)
	}
	waitFor(t, "bad input counted", func() bool {
		c := mediumStats(beta, "lan1")
		return c.Forged-before.Forged == forgedCount && c.Foreign-before.Foreign == 1 &&
			c.UnknownSender-before.UnknownSender == 2 && c.Looped-before.Looped == 1 &&
			c.Replayed-before.Replayed == 1 && c.Truncated-before.Truncated == 1 &&
			c.Malformed-before.Malformed == 1
	})
	if c := mediumStats(beta, "lan2"); c.Bad() != 0 {
		t.Errorf("lan2 counted bad input it never saw: %+v", c)
	}
	if got := be.find(func(e Event) bool {
		return e.Kind == EventReceived && (e.Message.Sender != "alpha" || e.Message.Type == TypeAppFirst && e.Message.Sequence == 1<<40)
	}); len(got) != 0 {
		t.Fatalf("bad input delivered: %v", got)
	}
	// Fifty forged packets, one log line (the limit is one per kind per
	// LogInterval).
	if n := strings.Count(logs.String(), "kind=forged"); n != 1 {
		t.Errorf("%d log lines about forged packets, want 1:\n%s", n, logs.String())
	}
	for _, kind := range []string{"foreign", "replayed", "truncated", "malformed", "unknown", "self"} {
		if !strings.Contains(logs.String(), "kind="+kind) {
			t.Errorf("no log line of kind %s", kind)
		}
	}

	s := beta.Stats()
	if s.Name != "beta" || s.Generation != 3 || s.Sequence == 0 || len(s.Media) != 2 || s.Media[0].Sent == 0 || s.Media[0].Received == 0 {
		t.Errorf("stats %+v", s)
	}
	if s.Peers[0].State != PeerAlive {
		t.Errorf("peer %+v", s.Peers[0])
	}

	// Alpha stops: beta sees every medium go down, then the peer dead.
	stopped := time.Now()
	if err := alpha.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alpha dead", func() bool { return be.has(EventPeerDead, "alpha", "") })
	dead := be.find(func(e Event) bool { return e.Kind == EventPeerDead })[0]
	if dead.Gap < nodeTiming.Deadtime {
		t.Errorf("declared dead after %v of silence, deadtime %v", dead.Gap, nodeTiming.Deadtime)
	}
	if !be.has(EventMediumDown, "alpha", "lan1") || !be.has(EventMediumDown, "alpha", "lan2") {
		t.Errorf("media not reported down")
	}
	t.Logf("peer dead %v after alpha stopped (deadtime %v)", dead.Time.Sub(stopped), nodeTiming.Deadtime)
	if !strings.Contains(logs.String(), "peer dead") {
		t.Errorf("peer death not logged")
	}

	if err := beta.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-be.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Events not closed after Close")
	}
	if err := beta.Send(TypeAppFirst, nil); err == nil {
		t.Error("Send after Close succeeded")
	}
}

// memMedium is an in-memory medium: Send puts a copy into out, Receive
// takes from in.
type memMedium struct {
	name    string
	in, out chan []byte
	done    chan struct{}
	once    sync.Once
}

func newMem(name string, in, out chan []byte) *memMedium {
	return &memMedium{name: name, in: in, out: out, done: make(chan struct{})}
}

func (m *memMedium) Name() string { return m.name }

func (m *memMedium) Send(msg []byte) error {
	select {
	case m.out <- bytes.Clone(msg):
	default: // a full line loses the message, as a real one would
	}
	return nil
}

func (m *memMedium) Receive() ([]byte, string, error) {
	select {
	case b := <-m.in:
		return b, "mem", nil
	case <-m.done:
		return nil, "", net.ErrClosed
	}
}

func (m *memMedium) Close() error {
	m.once.Do(func() { close(m.done) })
	return nil
}

func TestNodePeerRestart(t *testing.T) {
	toAlpha, toBeta := make(chan []byte, 64), make(chan []byte, 64)
	beta := startNode(t, NodeConfig{Name: "beta", Peers: []string{"alpha"}, Generation: 1, Media: []Medium{newMem("mem", toBeta, toAlpha)}})
	be := collect(beta)
	gens := func(g uint64) int {
		return len(be.find(func(e Event) bool { return e.Kind == EventReceived && e.Message.Generation == g }))
	}

	alpha1 := startNode(t, NodeConfig{Name: "alpha", Peers: []string{"beta"}, Generation: 5, Media: []Medium{newMem("mem", toAlpha, toBeta)}})
	waitFor(t, "generation 5 heard", func() bool { return gens(5) > 2 })
	alpha1.Close()

	// The restarted peer starts its sequence again at 1 with a higher
	// generation: accepted at once, no replay counted.
	alpha2 := startNode(t, NodeConfig{Name: "alpha", Peers: []string{"beta"}, Generation: 6, Media: []Medium{newMem("mem", toAlpha, toBeta)}})
	waitFor(t, "generation 6 heard", func() bool { return gens(6) > 2 })
	if c := mediumStats(beta, "mem"); c.Replayed != 0 {
		t.Fatalf("restart counted as replay: %+v", c)
	}
	first := be.find(func(e Event) bool { return e.Kind == EventReceived && e.Message.Generation == 6 })[0]
	if first.Message.Sequence != 1 {
		t.Errorf("restarted peer's first message has sequence %d", first.Message.Sequence)
	}
	alpha2.Close()

	// A node that comes back with an older generation (a restored state
	// dir) is rejected until it is fixed: every message counts as a replay.
	alpha0 := startNode(t, NodeConfig{Name: "alpha", Peers: []string{"beta"}, Generation: 4, Media: []Medium{newMem("mem", toAlpha, toBeta)}})
	waitFor(t, "old generation rejected", func() bool { return mediumStats(beta, "mem").Replayed > 3 })
	alpha0.Close()
	if gens(4) != 0 {
		t.Fatalf("old generation delivered")
	}
	waitFor(t, "alpha dead", func() bool { return be.has(EventPeerDead, "alpha", "") })
}

func TestNodeStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	toAlpha, toBeta := make(chan []byte, 8), make(chan []byte, 8)
	m := newMem("mem", toAlpha, toBeta)
	n, err := Start(ctx, NodeConfig{Cluster: "filer", Name: "alpha", Peers: []string{"beta"}, Key: testKey, Media: []Medium{m}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a heartbeat sent", func() bool { return len(toBeta) > 0 })
	cancel()
	select {
	case <-n.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("node still running after its context was cancelled")
	}
	select {
	case <-m.done:
	default:
		t.Fatal("medium not closed")
	}
	if n.Stats().Peers[0].Media[0].State != LinkUnknown {
		t.Fatal("peer heard from nowhere")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

// failing is a medium whose Receive fails until closed.
type failing struct {
	memMedium
}

func (f *failing) Receive() ([]byte, string, error) {
	select {
	case <-f.done:
		return nil, "", net.ErrClosed
	default:
		return nil, "", errors.New("device unplugged")
	}
}

func TestNodeReceiveErrorsArePaced(t *testing.T) {
	f := &failing{memMedium{name: "serial", out: make(chan []byte, 1), done: make(chan struct{})}}
	logs := &syncBuffer{}
	n := startNode(t, NodeConfig{Name: "alpha", Peers: []string{"beta"}, Media: []Medium{f}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	waitFor(t, "receive errors counted", func() bool { return mediumStats(n, "serial").ReceiveErrors >= 3 })
	start := time.Now()
	c0 := mediumStats(n, "serial").ReceiveErrors
	waitFor(t, "more receive errors", func() bool { return mediumStats(n, "serial").ReceiveErrors >= c0+3 })
	if el := time.Since(start); el < 2*nodeTiming.Keepalive {
		t.Errorf("3 retries in %v: not paced by keepalive %v", el, nodeTiming.Keepalive)
	}
	if got := strings.Count(logs.String(), "device unplugged"); got != 1 {
		t.Errorf("%d log lines for the failing medium, want 1", got)
	}
}

func TestStartRejects(t *testing.T) {
	m := newMem("mem", make(chan []byte), make(chan []byte))
	base := NodeConfig{Cluster: "filer", Name: "alpha", Peers: []string{"beta"}, Key: testKey, Media: []Medium{m}}
	for _, tc := range []struct {
		name string
		edit func(*NodeConfig)
		want string
	}{
		{"short key", func(c *NodeConfig) { c.Key = []byte("k") }, "key is 1 bytes"},
		{"no cluster", func(c *NodeConfig) { c.Cluster = "" }, "empty cluster name"},
		{"no name", func(c *NodeConfig) { c.Name = "" }, "empty node name"},
		{"self as peer", func(c *NodeConfig) { c.Peers = []string{"alpha"} }, `node "alpha" is its own peer`},
		{"no peers", func(c *NodeConfig) { c.Peers = nil }, "no peers"},
		{"no media", func(c *NodeConfig) { c.Media = nil }, "no media"},
		{"same medium twice", func(c *NodeConfig) { c.Media = []Medium{m, m} }, `medium "mem" named twice`},
		{"bad timing", func(c *NodeConfig) { c.Timing = Timing{Keepalive: time.Second, Warntime: time.Millisecond} }, "warntime"},
		{"big status", func(c *NodeConfig) { c.Status = make([]byte, MaxPayload+1) }, "status is 1201 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			n, err := Start(context.Background(), cfg)
			if err == nil {
				n.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %q, want %q", err, tc.want)
			}
		})
	}
}

func TestNodeSendRejects(t *testing.T) {
	n := startNode(t, NodeConfig{Name: "alpha", Peers: []string{"beta"}, Media: []Medium{newMem("mem", make(chan []byte), make(chan []byte, 64))}})
	if err := n.Send(TypeHeartbeat, nil); err == nil || !strings.Contains(err.Error(), "not an application message type") {
		t.Errorf("Send(heartbeat): %v", err)
	}
	if err := n.Send(TypeAppFirst, make([]byte, MaxPayload+1)); err == nil || !strings.Contains(err.Error(), "limit 1200") {
		t.Errorf("Send(oversized): %v", err)
	}
	if err := n.SetStatus(make([]byte, MaxPayload+1)); err == nil {
		t.Error("SetStatus(oversized) succeeded")
	}
}

func TestLogLimiter(t *testing.T) {
	l := newLogLimiter(10 * time.Second)
	type want struct {
		ok   bool
		held int
	}
	for i, tc := range []struct {
		kind string
		ms   int
		want want
	}{
		{"forged", 0, want{true, 0}},
		{"forged", 1, want{false, 0}},
		{"replayed", 2, want{true, 0}},
		{"forged", 9999, want{false, 0}},
		{"forged", 10000, want{true, 2}},
		{"forged", 30000, want{true, 0}},
	} {
		ok, held := l.allow(tc.kind, at(tc.ms))
		if (want{ok, held}) != tc.want {
			t.Errorf("step %d: got %v %d, want %+v", i, ok, held, tc.want)
		}
	}
}

func TestNodeAppOnly(t *testing.T) {
	toAlpha, toBeta := make(chan []byte, 64), make(chan []byte, 64)
	beta := startNode(t, NodeConfig{Name: "beta", Peers: []string{"alpha"}, Generation: 1, AppOnly: true, Media: []Medium{newMem("mem", toBeta, toAlpha)}})
	be := collect(beta)
	alpha := startNode(t, NodeConfig{Name: "alpha", Peers: []string{"beta"}, Generation: 1, Media: []Medium{newMem("mem", toAlpha, toBeta)}})
	// Heartbeats keep alpha alive without being delivered.
	waitFor(t, "alpha alive", func() bool { return be.has(EventPeerAlive, "alpha", "") })
	waitFor(t, "several heartbeats", func() bool { return mediumStats(beta, "mem").Received > 3 })
	if got := be.find(func(e Event) bool { return e.Kind == EventReceived }); len(got) != 0 {
		t.Fatalf("AppOnly delivered %d plain heartbeats", len(got))
	}
	// Application messages still come through, once each.
	if err := alpha.Send(TypeAppFirst, []byte("report")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the application message", func() bool {
		return len(be.find(func(e Event) bool {
			return e.Kind == EventReceived && e.Message.Type == TypeAppFirst && string(e.Message.Payload) == "report"
		})) == 1
	})
}
