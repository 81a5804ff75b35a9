package daemon_test

import (
	"testing"
	"time"

	"github.com/tandem-ha/tandem/admin"
	"github.com/tandem-ha/tandem/testenv"
)

// BenchmarkTickleReset: the active node loses power while a client holds
// a connection through the floating address; the figure is the time from
// the survivor raising the address to the client's connection being
// reset, side by side with and without tickles. An idle client without
// tickles is never reset (TestWithoutTicklesClientsWait waits 30 s), so
// the comparison uses a client with a request in flight, which its own
// retransmissions eventually bring to the survivor's kernel.
func BenchmarkTickleReset(b *testing.B) {
	for _, c := range []struct {
		name     string
		tickle   bool
		inFlight bool
	}{
		{"tickles/idle", true, false},
		{"tickles/in-flight", true, true},
		{"none/in-flight", false, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := newPair(b, pairOptions{Tickle: c.tickle})
			p.startBoth()
			s := samples{}
			for b.Loop() {
				active := p.waitActive(30 * time.Second)
				survivor := other(active)
				p.read(10 * time.Second)
				conn := dial(b, p.lab, testenv.FloatIP.Addr())
				if c.tickle {
					p.knows(survivor, conn, 15*time.Second)
				}
				if err := p.lab.PowerOff(active); err != nil {
					b.Fatal(err)
				}
				if c.inFlight {
					if _, err := conn.conn.Write([]byte("\x00\x00\x00\x04ping")); err != nil {
						b.Fatal(err)
					}
				}
				up := p.addrUp(survivor, testenv.FloatIP.Addr(), 20*time.Second)
				reset := conn.waitReset(b, 30*time.Second)
				s.add("reset-after-takeover", reset.Sub(up))
				conn.conn.Close()
				if err := p.lab.PowerOn(active); err != nil {
					b.Fatal(err)
				}
				p.start(active)
				p.waitRole(active, admin.RoleStandby, 30*time.Second)
			}
			s.report(b)
		})
	}
}
