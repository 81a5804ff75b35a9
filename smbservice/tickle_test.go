package smbservice

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestChecksumVectors(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want uint16
	}{
		// RFC 1071 section 3: the sum of these bytes is ddf2.
		{"RFC 1071", "0001f203f4f5f6f7", ^uint16(0xddf2)},
		// An IPv4 header with its checksum field zeroed; b861 is the
		// checksum carried by the packet it came from.
		{"IPv4 header", "450000730000400040110000c0a80001c0a800c7", 0xb861},
		{"odd length", "0001f203f4f5f6f701", ^uint16(0xdef2)},
		{"empty", "", 0xffff},
	} {
		b, _ := hex.DecodeString(tt.in)
		if got := finish(sum(0, b)); got != tt.want {
			t.Errorf("%s: checksum %04x, want %04x", tt.name, got, tt.want)
		}
	}
}

func TestTickle4Golden(t *testing.T) {
	c := mustConn(t, "198.18.0.100:51234->198.18.0.50:445")
	got := appendTickle4(nil, c, 1234)
	const want = "4500002800004000" + "4006ae15" + "c6120032" + "c6120064" + // IPv4 header
		"01bdc822" + "00000000" + "00000000" + "5010" + "04d2" + "5468" + "0000" // TCP header
	if hex.EncodeToString(got) != want {
		t.Fatalf("IPv4 tickle:\n%x\nwant:\n%s", got, want)
	}
	// A header with its checksum in sums to zero.
	if s := finish(sum(0, got[:20])); s != 0 {
		t.Errorf("IPv4 header checksum does not verify: %04x", s)
	}
	ps := append(append([]byte{}, got[12:20]...), 0, 6, 0, 20)
	if s := finish(sum(sum(0, ps), got[20:])); s != 0 {
		t.Errorf("TCP checksum does not verify: %04x", s)
	}
}

func TestTickle6Golden(t *testing.T) {
	c := mustConn(t, "[2001:db8::7]:51234->[2001:db8::50]:445")
	got := appendTickle6(nil, c, 1234)
	const want = "01bdc822" + "00000000" + "00000000" + "5010" + "04d2" + "855a" + "0000"
	if hex.EncodeToString(got) != want {
		t.Fatalf("IPv6 tickle:\n%x\nwant:\n%s", got, want)
	}
	src, dst := c.Server.Addr().As16(), c.Client.Addr().As16()
	ps := append(append(append([]byte{}, src[:]...), dst[:]...), 0, 0, 0, 20, 0, 0, 0, 6)
	if s := finish(sum(sum(0, ps), got)); s != 0 {
		t.Errorf("TCP checksum does not verify: %04x", s)
	}
}

// fakeSender records when each connection was tickled.
type fakeSender struct {
	mu     sync.Mutex
	sent   map[Conn][]time.Time
	fail   map[Conn]error
	closed bool
}

func (f *fakeSender) send(c Conn, window uint16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail[c]; err != nil {
		return err
	}
	f.sent[c] = append(f.sent[c], time.Now())
	return nil
}

func (f *fakeSender) close() error { f.closed = true; return nil }

func TestTickleRounds(t *testing.T) {
	c1 := mustConn(t, "198.18.0.100:1->198.18.0.50:445")
	c2 := mustConn(t, "[2001:db8::7]:2->[2001:db8::50]:445")
	bad := mustConn(t, "198.18.0.101:3->198.18.0.50:445")
	f := &fakeSender{sent: map[Conn][]time.Time{}, fail: map[Conn]error{bad: errors.New("network is unreachable")}}
	tk := &Tickler{Rounds: 3, Interval: 30 * time.Millisecond, open: func(string) (sender, error) { return f, nil }}
	began := time.Now()
	res, err := tk.Tickle(context.Background(), []Conn{c1, bad, c2})
	took := time.Since(began)
	if err == nil || !strings.Contains(err.Error(), "3 of 9 tickles failed") || !strings.Contains(err.Error(), bad.String()) {
		t.Errorf("Tickle: %v; want the 3 failures to %s reported", err, bad)
	}
	if res != (TickleResult{Rounds: 3, Sent: 6, Failed: 3}) {
		t.Errorf("result %+v", res)
	}
	for _, c := range []Conn{c1, c2} {
		ts := f.sent[c]
		if len(ts) != 3 {
			t.Fatalf("%s tickled %d times, want 3", c, len(ts))
		}
		for i := 1; i < len(ts); i++ {
			if d := ts[i].Sub(ts[i-1]); d < 25*time.Millisecond {
				t.Errorf("%s: rounds %d and %d only %v apart", c, i-1, i, d)
			}
		}
	}
	if took < 60*time.Millisecond || took > 2*time.Second {
		t.Errorf("Tickle took %v, want about two intervals", took)
	}
	if !f.closed {
		t.Error("sender not closed")
	}

	// A cancelled context ends it between rounds.
	f = &fakeSender{sent: map[Conn][]time.Time{}}
	tk = &Tickler{Interval: time.Hour, open: func(string) (sender, error) { return f, nil }}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res, err = tk.Tickle(ctx, []Conn{c1})
	if !errors.Is(err, context.DeadlineExceeded) || res.Rounds != 1 || res.Sent != 1 {
		t.Errorf("Tickle with a deadline: %+v, %v; want one round and the deadline", res, err)
	}
}
