package smbservice

import (
	"testing"
	"time"
)

// BenchmarkSyncFullSync10k measures encoding a full sync of 10,000 IPv6
// connections into messages (median wall and CPU time per full sync).
func BenchmarkSyncFullSync10k(b *testing.B) {
	conns := manyConns(benchConns, true)
	var n int
	measure(b, func() {
		s := NewSync(SyncOptions{Epoch: 1, Window: 1 << 20})
		n = len(s.Changed(conns, nil, time.Unix(0, 0)))
	})
	b.ReportMetric(float64(n), "messages")
}

// BenchmarkViewApplyFullSync10k measures applying a full sync of 10,000
// IPv6 connections, every message decoded and acknowledged.
func BenchmarkViewApplyFullSync10k(b *testing.B) {
	msgs := NewSync(SyncOptions{Epoch: 1, Window: 1 << 20}).Changed(manyConns(benchConns, true), nil, time.Unix(0, 0))
	measure(b, func() {
		v := NewView(VersionedList{})
		for _, m := range msgs {
			if _, err := v.Apply(m); err != nil {
				b.Fatal(err)
			}
		}
		if v.Stats().Conns != benchConns {
			b.Fatalf("view holds %d", v.Stats().Conns)
		}
	})
}

// BenchmarkSyncDelta10k measures one poll's worth of change to a list of
// 10,000: 100 connections gone, 100 new, encoded on one side, applied and
// acknowledged on the other.
func BenchmarkSyncDelta10k(b *testing.B) {
	// The pool holds 101 windows of 100; the list is all but one window,
	// and each change brings that one back and drops the next.
	pool := manyConns(benchConns+100, true)
	window := func(w int) []Conn { return pool[w*100 : (w+1)*100] }
	s := NewSync(SyncOptions{Epoch: 1, Window: 1 << 20})
	v := NewView(VersionedList{})
	now := time.Unix(0, 0)
	for _, m := range s.Changed(pool[100:], nil, now) {
		reply, _ := v.Apply(m)
		s.Ack(reply, now)
	}
	out := 0
	measure(b, func() {
		next := (out + 1) % 101
		for _, m := range s.Changed(window(out), window(next), now) {
			reply, err := v.Apply(m)
			if err != nil {
				b.Fatal(err)
			}
			s.Ack(reply, now)
		}
		out = next
	})
	if st := v.Stats(); st.Conns != benchConns || st.Version != s.Version() {
		b.Fatalf("view holds %d at %v", st.Conns, st.Version)
	}
}
