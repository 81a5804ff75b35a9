package smbservice

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/resources"
	"github.com/tandem-ha/tandem/testenv"
)

// In the lab: node a serves port 445 on the floating address and a client
// holds idle connections to it. The tracker on a lists them; Reset on a
// resets one at once; then a is powered off, b takes the address, and the
// remaining connection stays open until b tickles it, when it is reset at
// once.
func TestTickleLab(t *testing.T) {
	if _, err := exec.LookPath("socat"); err != nil {
		t.Skip("needs socat (Debian package socat) for a listener on the floating address")
	}
	lab := testenv.Start(t, testenv.Options{})
	a, b, client := lab.Node("a"), lab.Node("b"), lab.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vip := testenv.FloatIP.Addr()
	server := netip.AddrPortFrom(vip, 445)

	if _, err := a.Run(ctx, "ip", "addr", "add", testenv.FloatIP.String(), "dev", "pub0"); err != nil {
		t.Fatal(err)
	}
	ln := a.Command("socat", fmt.Sprintf("TCP-LISTEN:445,bind=%s,fork,reuseaddr", vip), "EXEC:cat")
	if err := ln.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Process.Kill(); ln.Wait() })

	dial := func() net.Conn {
		t.Helper()
		var c net.Conn
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := client.Do(func() error {
				var err error
				c, err = net.DialTimeout("tcp4", server.String(), time.Second)
				return err
			})
			if err == nil {
				t.Cleanup(func() { c.Close() })
				return c
			}
			if time.Now().After(deadline) {
				t.Fatalf("dial %s from the client: %v", server, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	idle := dial()
	want := connOf(idle)

	tr := &Tracker{Addrs: []netip.Addr{vip}, Ports: []uint16{445, 139}, Netns: a.NetnsPath()}
	defer tr.Close()
	// socat accepts asynchronously: the connection is established in the
	// kernel before the dial returns, so one poll sees it.
	added, _, err := tr.Poll()
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 1 || added[0] != want {
		t.Fatalf("tracked %v, want exactly %v", added, want)
	}

	// Planned release: Reset on the live node resets the client at once.
	other := dial()
	added, removed, err := tr.Poll()
	if err != nil || len(added) != 1 || added[0] != connOf(other) || len(removed) != 0 {
		t.Fatalf("poll after a second dial: added %v removed %v, %v; want %v added", added, removed, err, connOf(other))
	}
	began := time.Now()
	if n, err := Reset(a.NetnsPath(), added); err != nil || n != 1 {
		t.Fatalf("Reset: %d destroyed, %v", n, err)
	}
	if err := readErr(other, time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read after Reset: %v; want ECONNRESET", err)
	}
	t.Logf("client reset %v after Reset", time.Since(began))
	if _, removed, err := tr.Poll(); err != nil || len(removed) != 1 || removed[0] != connOf(other) {
		t.Fatalf("poll after Reset: removed %v, %v", removed, err)
	}
	conns := tr.Conns()

	// The lab's power-off kills a's processes before its network goes
	// dark, so their sockets would send FINs that a machine losing power
	// never sends: cut a's public link first to make it as silent.
	if err := lab.Cut("a", testenv.LinkPublic); err != nil {
		t.Fatal(err)
	}
	if err := lab.PowerOff("a"); err != nil {
		t.Fatal(err)
	}
	vipOnB := resources.NewFloatIP(resources.FloatIPParams{
		Name: "vip", Address: testenv.FloatIP.String(), Interface: "pub0",
		NetNS: b.NetnsPath(), ARPRounds: 1,
	})
	if err := vipOnB.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vipOnB.Stop(context.Background()) })

	// Without tickles the idle connection stays open: 5 s here; the 30 s
	// of the end-to-end failover test is the same observation held longer.
	if err := readErr(idle, 5*time.Second); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle client 5 s after the takeover without tickles: %v; want it still open", err)
	}

	done := make(chan error, 1)
	began = time.Now()
	go func() {
		done <- b.Do(func() error {
			_, err := (&Tickler{}).Tickle(ctx, conns)
			return err
		})
	}()
	err = readErr(idle, time.Second)
	took := time.Since(began)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("idle client read after the tickle: %v; want ECONNRESET within 1 s", err)
	}
	t.Logf("client reset %v after the first tickle", took)
	if err := <-done; err != nil {
		t.Fatalf("Tickle from b: %v", err)
	}
}
