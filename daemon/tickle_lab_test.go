package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/admin"
	"github.com/tandem-ha/tandem/testenv"
)

// The tickle tests hold a client's TCP connection to smbd through the
// floating address and watch what becomes of it when the service moves.

// clientConn is an idle client connection and what became of it.
type clientConn struct {
	conn  net.Conn
	ended chan connEnd
}

type connEnd struct {
	at  time.Time
	err error
}

// dial opens an idle TCP connection from the client to addr:445, without
// keepalive (Go's default would find the dead server on its own after
// 15 s and blur what the tickle does), and watches it.
func dial(t testing.TB, lab *testenv.Lab, addr netip.Addr) *clientConn {
	t.Helper()
	var conn net.Conn
	err := lab.Client().Do(func() error {
		var err error
		d := net.Dialer{Timeout: 2 * time.Second, KeepAlive: -1}
		conn, err = d.Dial("tcp", netip.AddrPortFrom(addr, 445).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &clientConn{conn: conn, ended: make(chan connEnd, 1)}
	go func() {
		buf := make([]byte, 512)
		for {
			if _, err := conn.Read(buf); err != nil {
				c.ended <- connEnd{time.Now(), err}
				return
			}
		}
	}()
	return c
}

// knows waits until node's tickles list the connection as one of the
// peer's (replicated over the LAN).
func (p *pair) knows(node string, c *clientConn, timeout time.Duration) {
	p.t.Helper()
	local := c.conn.LocalAddr().String()
	p.waitFor(timeout, node+" to know the client connection "+local, func() bool {
		out, err := p.haclient(node, "tickles", "--json")
		if err != nil {
			return false
		}
		var tk admin.Tickles
		if json.Unmarshal([]byte(out), &tk) != nil {
			return false
		}
		for _, l := range tk.Lists {
			for _, conn := range l.Connections {
				if l.Source == "lan" && strings.HasPrefix(conn, local+"->") {
					return true
				}
			}
		}
		return false
	})
}

// addrUp waits until node holds the floating address and says when it
// saw it come.
func (p *pair) addrUp(node string, addr netip.Addr, timeout time.Duration) time.Time {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok, _ := p.lab.Node(node).HasAddr(addr); ok {
			return time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.t.Fatalf("%s did not raise %v within %v", node, addr, timeout)
	return time.Time{}
}

// waitReset waits for the connection to be reset and returns when it was.
func (c *clientConn) waitReset(t testing.TB, timeout time.Duration) time.Time {
	t.Helper()
	select {
	case e := <-c.ended:
		if !errors.Is(e.err, syscall.ECONNRESET) {
			t.Fatalf("the connection ended with %v, not a reset", e.err)
		}
		return e.at
	case <-time.After(timeout):
		t.Fatalf("the connection was not reset within %v", timeout)
	}
	return time.Time{}
}

func TestTickleResetsClientsAfterPowerOff(t *testing.T) {
	for _, inFlight := range []bool{false, true} {
		name := "idle"
		if inFlight {
			name = "request in flight"
		}
		t.Run(name, func(t *testing.T) {
			p := newPair(t, pairOptions{Tickle: true})
			active := p.startBoth()
			survivor := other(active)
			p.read(10 * time.Second)
			c := dial(t, p.lab, testenv.FloatIP.Addr())
			p.knows(survivor, c, 15*time.Second)
			if err := p.lab.PowerOff(active); err != nil {
				t.Fatal(err)
			}
			if inFlight {
				// A request the dead node never answers: the client
				// retransmits it with backoff.
				if _, err := c.conn.Write([]byte("\x00\x00\x00\x04ping")); err != nil {
					t.Fatal(err)
				}
			}
			up := p.addrUp(survivor, testenv.FloatIP.Addr(), 20*time.Second)
			reset := c.waitReset(t, 5*time.Second)
			if d := reset.Sub(up); d > time.Second {
				t.Fatalf("the client was reset %v after %s raised the address", d, survivor)
			}
			t.Logf("client reset %v after the survivor raised the address", reset.Sub(up).Round(time.Millisecond))
			p.read(10 * time.Second)
			out, err := p.haclient(survivor, "tickles")
			if err != nil || !strings.Contains(out, "tickled") {
				t.Fatalf("haclient tickles: %v: %s", err, out)
			}
		})
	}
}

func TestWithoutTicklesClientsWait(t *testing.T) {
	p := newPair(t, pairOptions{})
	active := p.startBoth()
	survivor := other(active)
	p.read(10 * time.Second)
	c := dial(t, p.lab, testenv.FloatIP.Addr())
	if err := p.lab.PowerOff(active); err != nil {
		t.Fatal(err)
	}
	up := p.addrUp(survivor, testenv.FloatIP.Addr(), 20*time.Second)
	p.read(10 * time.Second)
	select {
	case e := <-c.ended:
		t.Fatalf("without tickles the connection ended %v after the takeover: %v", e.at.Sub(up), e.err)
	case <-time.After(time.Until(up.Add(30 * time.Second))):
	}
}

func TestPlannedFailoverResetsClients(t *testing.T) {
	p := newPair(t, pairOptions{Tickle: true})
	active := p.startBoth()
	p.read(10 * time.Second)
	c := dial(t, p.lab, testenv.FloatIP.Addr())
	// Wait until the active node tracks it.
	p.waitFor(10*time.Second, "the active node to track the client", func() bool {
		out, err := p.haclient(active, "tickles")
		return err == nil && strings.Contains(out, c.conn.LocalAddr().String())
	})
	start := time.Now()
	if out, err := p.haclient(active, "failover"); err != nil {
		t.Fatalf("haclient failover: %v: %s", err, out)
	}
	reset := c.waitReset(t, 10*time.Second)
	t.Logf("client reset %v after haclient failover began", reset.Sub(start).Round(time.Millisecond))
	p.waitServing(other(active), 20*time.Second)
	c2 := dial(t, p.lab, testenv.FloatIP.Addr())
	c2.conn.Close()
}

func TestTickleResetsIPv6ClientsAfterPowerOff(t *testing.T) {
	p := newPair(t, pairOptions{Tickle: true, IPv6: true})
	active := p.startBoth()
	survivor := other(active)
	p.read(10 * time.Second)
	c := dial(t, p.lab, testenv.FloatIP6.Addr())
	p.knows(survivor, c, 15*time.Second)
	if err := p.lab.PowerOff(active); err != nil {
		t.Fatal(err)
	}
	up := p.addrUp(survivor, testenv.FloatIP6.Addr(), 20*time.Second)
	reset := c.waitReset(t, 5*time.Second)
	if d := reset.Sub(up); d > time.Second {
		t.Fatalf("the client was reset %v after %s raised the address", d, survivor)
	}
	t.Logf("IPv6 client reset %v after the survivor raised the address", reset.Sub(up).Round(time.Millisecond))
	// The client's neighbour cache points at the survivor: the unsolicited
	// neighbour advertisements did it, and a new connection reaches it.
	p.waitFor(5*time.Second, "the client's neighbour entry to point at "+survivor, func() bool {
		out, err := p.lab.Client().Run(context.Background(), "ip", "-6", "neigh", "show", testenv.FloatIP6.Addr().String())
		if err != nil {
			return false
		}
		want, err := p.lab.Node(survivor).Run(context.Background(), "cat", "/sys/class/net/"+testenv.PublicIf+"/address")
		return err == nil && strings.Contains(out, strings.TrimSpace(want))
	})
	c2 := dial(t, p.lab, testenv.FloatIP6.Addr())
	c2.conn.Close()
}
