package smbservice

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// manyConns returns n connections to one floating address on port 445,
// IPv4 or IPv6, each client with its own address.
func manyConns(n int, v6 bool) []Conn {
	conns := make([]Conn, n)
	server := netip.MustParseAddrPort("198.18.0.50:445")
	if v6 {
		server = netip.MustParseAddrPort("[2001:2::50]:445")
	}
	for i := range conns {
		var a netip.Addr
		if v6 {
			b := netip.MustParseAddr("2001:2::").As16()
			binary.BigEndian.PutUint32(b[12:], uint32(0x10000+i))
			a = netip.AddrFrom16(b)
		} else {
			a = netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		}
		conns[i] = Conn{Client: netip.AddrPortFrom(a, uint16(40000+i%20000)), Server: server}
	}
	slices.SortFunc(conns, Conn.Compare)
	return conns
}

func TestSyncCodecRoundTrip(t *testing.T) {
	add := []Conn{
		mustConn(t, "198.18.0.100:51234->198.18.0.50:139"),
		mustConn(t, "198.18.0.100:51234->198.18.0.50:445"),
		mustConn(t, "198.18.0.101:1->198.18.0.50:445"),
		mustConn(t, "[2001:2::100]:7->[2001:2::50]:445"),
	}
	remove := []Conn{mustConn(t, "198.18.0.102:9->198.18.0.50:445")}
	var items []item
	for _, c := range add {
		items = append(items, item{opAdd, c})
	}
	items = append(items, item{opRemove, remove[0]})
	bodies := packBodies(items, bodyLimit(syncDelta))
	if len(bodies) != 1 {
		t.Fatalf("%d bodies, want 1", len(bodies))
	}
	b := encodeSync(syncDelta, 7, 9, 0, 0, bodies[0])
	m, err := decodeSync(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.typ != syncDelta || m.epoch != 7 || m.seq != 9 || !slices.Equal(m.add, add) || !slices.Equal(m.remove, remove) {
		t.Fatalf("decoded %+v", m)
	}
	// 4 groups: add 139, add 445 (two clients), add v6, remove.
	if want := syncHeaderLen + (10 + 6) + (10 + 12) + (22 + 18) + (10 + 6) + crcLen; len(b) != want {
		t.Errorf("message of %d bytes, want %d", len(b), want)
	}
	a := syncAck{flags: ackGap, epoch: 7, next: 10}
	got, err := decodeAck(encodeAck(a))
	if err != nil || got != a {
		t.Fatalf("ack round trip: %+v, %v", got, err)
	}
}

// Every message of a full sync of 10,000 connections fits MaxSyncMessage,
// and the chunks are filled: IPv6 clients cost 18 bytes each.
func TestSyncFullSyncSizes(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		conns := manyConns(10000, v6)
		s := NewSync(SyncOptions{Epoch: 1, Window: 1 << 20})
		msgs := s.Changed(conns, nil, time.Unix(0, 0))
		per := 6
		if v6 {
			per = 18
		}
		want := (10000 + (bodyLimit(syncChunk)-22)/per - 1) / ((bodyLimit(syncChunk) - 22) / per)
		if v6 && len(msgs) != want || !v6 && len(msgs) > want+1 {
			t.Errorf("v6 %v: %d messages, want %d", v6, len(msgs), want)
		}
		for i, m := range msgs {
			if len(m) > MaxSyncMessage {
				t.Fatalf("message %d: %d bytes", i, len(m))
			}
		}
		v := NewView(VersionedList{})
		for _, m := range msgs {
			if _, err := v.Apply(m); err != nil {
				t.Fatal(err)
			}
		}
		if l := v.List(); !slices.Equal(l.Conns, conns) || l.Version != s.Version() {
			t.Fatalf("v6 %v: view holds %d connections at %v, want %d at %v", v6, len(l.Conns), l.Version, len(conns), s.Version())
		}
	}
}

func TestSyncDecodeErrors(t *testing.T) {
	c1 := mustConn(t, "198.18.0.100:1->198.18.0.50:445")
	c2 := mustConn(t, "198.18.0.100:2->198.18.0.50:445")
	body := packBodies([]item{{opAdd, c1}, {opAdd, c2}}, 1000)[0]
	good := encodeSync(syncDelta, 1, 1, 0, 0, body)
	if _, err := decodeSync(good); err != nil {
		t.Fatal(err)
	}
	// resum recomputes the CRC so that the field checks are reached.
	resum := func(b []byte) []byte {
		n := len(b) - crcLen
		binary.BigEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
		return b
	}
	edit := func(f func(b []byte) []byte) []byte { return resum(f(bytes.Clone(good))) }
	for _, tt := range []struct {
		name  string
		b     []byte
		field string
		off   int
	}{
		{"short", good[:20], "length", 20},
		{"magic", edit(func(b []byte) []byte { b[0] = 'X'; return b }), "magic", 0},
		{"version", edit(func(b []byte) []byte { b[4] = 2; return b }), "version", 4},
		{"type", edit(func(b []byte) []byte { b[5] = 9; return b }), "type", 5},
		{"reserved", edit(func(b []byte) []byte { b[7] = 1; return b }), "reserved", 6},
		{"checksum", func() []byte { b := bytes.Clone(good); b[30]++; return b }(), "checksum", len(good) - 4},
		{"epoch", edit(func(b []byte) []byte { clear(b[8:16]); return b }), "epoch", 8},
		{"sequence", edit(func(b []byte) []byte { clear(b[16:24]); return b }), "sequence", 16},
		{"op", edit(func(b []byte) []byte { b[24] = 3; return b }), "group op", 24},
		{"family", edit(func(b []byte) []byte { b[25] = 5; return b }), "group family", 25},
		{"count zero", edit(func(b []byte) []byte { b[32], b[33] = 0, 0; return b }), "client count", 32},
		{"count too big", edit(func(b []byte) []byte { b[33] = 3; return b }), "client count", 32},
		{"clients out of order", edit(func(b []byte) []byte { b[39], b[45] = 2, 1; return b }), "client", 40},
		{"port zero", edit(func(b []byte) []byte { b[38], b[39] = 0, 0; return b }), "client", 34},
		{"empty delta", encodeSync(syncDelta, 1, 1, 0, 0, nil), "groups", 24},
		{"chunk index", encodeSync(syncChunk, 1, 1, 2, 2, body), "chunk index", 24},
		{"chunk count", encodeSync(syncChunk, 1, 1, 0, 0, body), "chunk count", 28},
		{"remove in chunk", encodeSync(syncChunk, 1, 1, 0, 1, packBodies([]item{{opRemove, c1}}, 1000)[0]), "group op", 32},
		{"empty chunk of many", encodeSync(syncChunk, 1, 1, 0, 2, nil), "groups", 32},
		{"added and removed", encodeSync(syncDelta, 1, 1, 0, 0, packBodies([]item{{opAdd, c1}, {opRemove, c1}}, 1000)[0]), "client", 50},
		{"groups out of order", encodeSync(syncDelta, 1, 1, 0, 0, append(packBodies([]item{{opAdd, c2}}, 1000)[0], packBodies([]item{{opAdd, c1}}, 1000)[0]...)), "group", 40},
		{"too long", append(bytes.Clone(good), make([]byte, MaxSyncMessage)...), "length", MaxSyncMessage},
	} {
		_, err := decodeSync(tt.b)
		var se *SyncError
		if !errors.As(err, &se) || se.Field != tt.field || se.Offset != tt.off {
			t.Errorf("%s: %v; want field %q at offset %d", tt.name, err, tt.field, tt.off)
		}
	}
	ack := encodeAck(syncAck{epoch: 1, next: 2})
	for name, b := range map[string][]byte{
		"short":   ack[:27],
		"magic":   encodeSync(syncDelta, 1, 1, 0, 0, body),
		"flags":   resum(append(bytes.Clone(ack[:5]), append([]byte{0x80}, ack[6:]...)...)),
		"next":    encodeAck(syncAck{epoch: 1}),
		"garbage": []byte(strings.Repeat("x", 40)),
	} {
		if _, err := decodeAck(b); err == nil {
			t.Errorf("ack %s: accepted", name)
		}
	}
}

// link carries messages between a Sync and a View, losing, repeating and
// reordering some as the seeded random source says.
type link struct {
	t       *testing.T
	r       *rand.Rand
	s       *Sync
	v       *View
	loss    float64
	toView  [][]byte
	toSync  [][]byte
	dropped int
}

func (l *link) send(msgs [][]byte) {
	for _, m := range msgs {
		if l.r.Float64() < l.loss {
			l.dropped++
			continue
		}
		l.toView = append(l.toView, m)
		if l.r.Float64() < l.loss/4 {
			l.toView = append(l.toView, m)
		}
	}
	if len(l.toView) > 1 && l.r.Float64() < l.loss {
		i := l.r.IntN(len(l.toView) - 1)
		l.toView[i], l.toView[i+1] = l.toView[i+1], l.toView[i]
	}
}

// deliver hands every message in flight over, both ways, until none is.
func (l *link) deliver(now time.Time) {
	for range 100 {
		if len(l.toView)+len(l.toSync) == 0 {
			return
		}
		in := l.toView
		l.toView = nil
		for _, m := range in {
			reply, err := l.v.Apply(m)
			if err != nil {
				l.t.Fatalf("Apply: %v", err)
			}
			if l.r.Float64() >= l.loss {
				l.toSync = append(l.toSync, reply)
			}
		}
		acks := l.toSync
		l.toSync = nil
		for _, a := range acks {
			msgs, err := l.s.Ack(a, now)
			if err != nil {
				l.t.Fatalf("Ack: %v", err)
			}
			l.send(msgs)
		}
	}
	l.t.Fatal("messages still in flight after 100 exchanges")
}

// settle ticks until the view holds the sender's list, within a bound.
func (l *link) settle(now time.Time) time.Time {
	l.t.Helper()
	for range 400 {
		l.deliver(now)
		if l.v.List().Version == l.s.Version() && l.s.Stats().Queued == 0 {
			return now
		}
		now = now.Add(100 * time.Millisecond)
		l.send(l.s.Tick(now))
	}
	l.t.Fatalf("no convergence: view %v, sync %+v", l.v.List().Version, l.s.Stats())
	return now
}

func (l *link) check(want map[Conn]bool) {
	l.t.Helper()
	got := l.v.List().Conns
	if len(got) != len(want) {
		l.t.Fatalf("view holds %d connections, want %d", len(got), len(want))
	}
	for _, c := range got {
		if !want[c] {
			l.t.Fatalf("view holds %v, not in the list", c)
		}
	}
}

// Random changes over a link that loses, repeats and reorders messages:
// after each settles, the view holds exactly the active list at its
// version.
func TestSyncConvergesOverLossyLink(t *testing.T) {
	for _, loss := range []float64{0, 0.1, 0.3} {
		t.Run(fmt.Sprint(loss), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(loss*100)))
			l := &link{t: t, r: r, s: NewSync(SyncOptions{Epoch: 5, Window: 16}), v: NewView(VersionedList{}), loss: loss}
			pool := manyConns(3000, false)
			pool = append(pool, manyConns(500, true)...)
			live := map[Conn]bool{}
			now := time.Unix(1000, 0)
			for round := range 60 {
				var added, removed []Conn
				for range r.IntN(300) {
					c := pool[r.IntN(len(pool))]
					if live[c] {
						delete(live, c)
						removed = append(removed, c)
					} else {
						live[c] = true
						added = append(added, c)
					}
				}
				added = slices.DeleteFunc(added, func(c Conn) bool { return !live[c] })
				removed = slices.DeleteFunc(removed, func(c Conn) bool { return live[c] })
				l.send(l.s.Changed(added, removed, now))
				if round%5 == 4 {
					now = l.settle(now)
					l.check(live)
				}
			}
			if loss > 0 && l.dropped == 0 {
				t.Fatal("the link lost nothing")
			}
			t.Logf("loss %v: %+v; view %+v", loss, l.s.Stats(), l.v.Stats())
		})
	}
}

// A peer that restarts without its state asks for a full sync; one that
// restarts from an older saved copy is brought up to date; a sender that
// restarts (new epoch) replaces the view.
func TestSyncRestarts(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	conns := manyConns(200, false)
	l := &link{t: t, r: r, s: NewSync(SyncOptions{Epoch: 10}), v: NewView(VersionedList{})}
	now := time.Unix(1000, 0)
	l.send(l.s.Changed(conns[:100], nil, now))
	now = l.settle(now)
	saved := l.v.List()
	l.send(l.s.Changed(conns[100:150], conns[:10], now))
	now = l.settle(now)
	want := map[Conn]bool{}
	for _, c := range conns[10:150] {
		want[c] = true
	}
	full := l.s.Stats().FullSyncs

	// The peer restarts from the older saved copy: the sender still has
	// nothing queued, so it must send a full sync.
	l.v = NewView(saved)
	l.send(l.s.Changed(conns[150:151], nil, now))
	want[conns[150]] = true
	now = l.settle(now)
	l.check(want)
	if got := l.s.Stats().FullSyncs; got != full+1 {
		t.Errorf("full syncs %d after the peer came back with an old copy, want %d", got, full+1)
	}

	// The peer restarts with nothing: it answers the next delta asking
	// for a full sync.
	l.v = NewView(VersionedList{})
	l.send(l.s.Changed(conns[151:152], nil, now))
	want[conns[151]] = true
	now = l.settle(now)
	l.check(want)

	// The active node restarts: a new Sync, a new epoch, a new list.
	l.s = NewSync(SyncOptions{Epoch: 11})
	l.send(l.s.Changed(conns[:5], nil, now))
	l.settle(now)
	l.check(map[Conn]bool{conns[0]: true, conns[1]: true, conns[2]: true, conns[3]: true, conns[4]: true})
	if v := l.v.List().Version; v.Epoch != 11 {
		t.Errorf("view at %v after the sender restarted, want epoch 11", v)
	}
}

// Unacknowledged messages are resent after ResendAfter, then after twice
// that, up to MaxResendAfter; an acknowledgement resets the wait.
func TestSyncResendBackoff(t *testing.T) {
	s := NewSync(SyncOptions{Epoch: 1, ResendAfter: 100 * time.Millisecond, MaxResendAfter: 400 * time.Millisecond})
	t0 := time.Unix(0, 0)
	if msgs := s.Tick(t0); msgs != nil {
		t.Fatalf("Tick before any change sent %d messages", len(msgs))
	}
	first := s.Changed(manyConns(1, false), nil, t0)
	if len(first) != 1 {
		t.Fatalf("%d messages for one connection", len(first))
	}
	var resends []time.Duration
	for ms := 10; ms <= 2000; ms += 10 {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		if msgs := s.Tick(now); len(msgs) > 0 {
			if !bytes.Equal(msgs[0], first[0]) {
				t.Fatal("resent another message")
			}
			resends = append(resends, now.Sub(t0))
		}
	}
	want := []time.Duration{100, 300, 700, 1100, 1500, 1900}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(resends, want) {
		t.Fatalf("resent at %v, want %v", resends, want)
	}
	v := NewView(VersionedList{})
	reply, err := v.Apply(first[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ack(reply, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Queued != 0 || st.Acked != 1 {
		t.Fatalf("after the ack: %+v", st)
	}
	s.Changed(manyConns(2, false), nil, t0.Add(2*time.Second))
	if msgs := s.Tick(t0.Add(2100 * time.Millisecond)); len(msgs) != 1 {
		t.Fatalf("after an ack the wait is back to 100ms: %d resent", len(msgs))
	}
}

// The window bounds the messages on the wire; acknowledgements let the
// rest out.
func TestSyncWindow(t *testing.T) {
	s := NewSync(SyncOptions{Epoch: 1, Window: 4})
	now := time.Unix(0, 0)
	msgs := s.Changed(manyConns(2000, true), nil, now)
	total := s.Stats().Queued
	if len(msgs) != 4 || total < 30 {
		t.Fatalf("%d messages out of %d queued, want 4 of 30 or more", len(msgs), total)
	}
	v := NewView(VersionedList{})
	got := 0
	for range 100 {
		if len(msgs) == 0 {
			break
		}
		var next [][]byte
		for _, m := range msgs {
			got++
			reply, err := v.Apply(m)
			if err != nil {
				t.Fatal(err)
			}
			more, err := s.Ack(reply, now)
			if err != nil {
				t.Fatal(err)
			}
			next = append(next, more...)
		}
		msgs = next
	}
	if got != total || len(v.List().Conns) != 2000 {
		t.Fatalf("%d messages delivered of %d; view holds %d", got, total, len(v.List().Conns))
	}
}

func TestSyncBadAcks(t *testing.T) {
	s := NewSync(SyncOptions{Epoch: 3})
	now := time.Unix(0, 0)
	s.Changed(manyConns(3, false), nil, now)
	for name, b := range map[string][]byte{
		"garbage": []byte("nonsense"),
		"future":  encodeAck(syncAck{epoch: 3, next: 99}),
	} {
		if msgs, err := s.Ack(b, now); err == nil || msgs != nil {
			t.Errorf("%s: %d messages, %v; want an error", name, len(msgs), err)
		}
	}
	if st := s.Stats(); st.BadReplies != 2 || st.Queued != 1 {
		t.Errorf("stats %+v", st)
	}
	v := NewView(VersionedList{})
	if reply, err := v.Apply([]byte("TDCS")); err == nil || reply != nil {
		t.Errorf("Apply of garbage: %x, %v", reply, err)
	}
}

func TestNewest(t *testing.T) {
	lan := VersionedList{Version: ListVersion{5, 10}, Source: "lan"}
	disk := VersionedList{Version: ListVersion{5, 9}, Source: "disk"}
	later := VersionedList{Version: ListVersion{6, 1}, Source: "disk"}
	for _, tt := range []struct {
		in   []VersionedList
		want string
	}{
		{[]VersionedList{lan, disk}, "lan"},
		{[]VersionedList{disk, lan}, "lan"},
		{[]VersionedList{lan, later}, "disk"},
		{[]VersionedList{{Source: "lan"}, {Source: "disk"}}, "lan"},
	} {
		if got := Newest(tt.in...).Source; got != tt.want {
			t.Errorf("Newest(%v) from %s, want %s", tt.in, got, tt.want)
		}
	}
}

// FuzzSyncMessage feeds the message decoder, and a View, arbitrary bytes.
// What decodes is in canonical form: encoding it again gives the same
// bytes. The seed corpus is in testdata/fuzz/FuzzSyncMessage.
func FuzzSyncMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		reply, err := NewView(VersionedList{}).Apply(b)
		if !bytes.Equal(b, orig) {
			t.Fatal("Apply changed its input")
		}
		m, err2 := decodeSync(b)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("Apply: %v; decode: %v", err, err2)
		}
		if err != nil {
			var se *SyncError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > max(len(b), MaxSyncMessage) {
				t.Fatalf("error %v is not a *SyncError with an offset inside the message", err)
			}
			return
		}
		if _, err := decodeAck(reply); err != nil {
			t.Fatalf("reply does not decode: %v", err)
		}
		var items []item
		for _, c := range m.add {
			items = append(items, item{opAdd, c})
		}
		for _, c := range m.remove {
			items = append(items, item{opRemove, c})
		}
		bodies := packBodies(items, MaxSyncMessage)
		if len(bodies) != 1 {
			t.Fatalf("%d bodies", len(bodies))
		}
		if again := encodeSync(m.typ, m.epoch, m.seq, m.index, m.count, bodies[0]); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}
