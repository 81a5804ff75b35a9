package smbservice

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/quorum"
	"github.com/tandem-ha/tandem/resources"
	"github.com/tandem-ha/tandem/testenv"
)

// The tickle resource end to end without the daemon, IPv4 and IPv6: a
// serves port 445 on both floating addresses (a dual-stack listener, so
// IPv4 clients show v4-mapped) and its tickle resource tracks the
// client's idle connections; the list reaches b through a Sync and a View
// joined by a direct in-process transport, and a's quorum-disk area (an
// image file here). a dies silently; b raises both addresses: the
// clients stay connected, unaware, for the 3 s watched. Then b starts its
// tickle resource, whose source merges the replicated list with the disk
// copy, and both clients are reset within 1 s.
func TestTickleResourceLab(t *testing.T) {
	testenv.RequireCommands(t, "socat", "socat")
	lab := testenv.Start(t, testenv.Options{})
	a, b, client := lab.Node("a"), lab.Node("b"), lab.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vip4, vip6 := testenv.FloatIP.Addr(), testenv.FloatIP6.Addr()
	addrs := []netip.Addr{vip4, vip6}

	for _, args := range [][]string{
		{"addr", "add", testenv.FloatIP.String(), "dev", testenv.PublicIf},
		{"addr", "add", testenv.FloatIP6.String(), "dev", testenv.PublicIf, "nodad"},
	} {
		if _, err := a.Run(ctx, "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	ln := a.Command("socat", "TCP6-LISTEN:445,ipv6only=0,fork,reuseaddr", "EXEC:cat")
	if err := ln.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Process.Kill(); ln.Wait() })

	dial := func(network string, to netip.Addr) net.Conn {
		t.Helper()
		server := netip.AddrPortFrom(to, 445).String()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var c net.Conn
			err := client.Do(func() error {
				var err error
				c, err = net.DialTimeout(network, server, time.Second)
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
	idle := []net.Conn{dial("tcp4", vip4), dial("tcp6", vip6)}
	want := map[Conn]bool{connOf(idle[0]): true, connOf(idle[1]): true}

	// a is active: its tickle resource tracks, a Sync replicates to b's
	// View, a DiskMirror copies to a's area of the quorum disk.
	img := filepath.Join(t.TempDir(), "quorum.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := quorum.Init(img, "lab", []string{"a", "b"}, quorum.Params{Interval: time.Second}, false); err != nil {
		t.Fatal(err)
	}
	disk, err := quorum.Open(img, quorum.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	repl := NewSync(SyncOptions{})
	view := NewView(VersionedList{})
	mirror := NewDiskMirror(disk, 0, 100*time.Millisecond, nil)
	var transport sync.Mutex
	onA := NewTickle(TickleParams{
		Name: "reconnect", Addrs: addrs, Netns: a.NetnsPath(),
		OnChange: func(added, removed []Conn, now time.Time) {
			transport.Lock()
			defer transport.Unlock()
			for _, m := range repl.Changed(added, removed, now) {
				reply, err := view.Apply(m)
				if err != nil {
					t.Errorf("b: apply: %v", err)
					return
				}
				if _, err := repl.Ack(reply, now); err != nil {
					t.Errorf("a: ack: %v", err)
				}
			}
			mirror.Update(repl.List())
		},
	})
	if err := onA.Start(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := view.List()
		if len(l.Conns) == len(want) && want[l.Conns[0]] && want[l.Conns[1]] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's view holds %v 5 s after the dials, want %v", l.Conns, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := mirror.Close(); err != nil {
		t.Fatal(err)
	}
	// The disk copy alone would do as well, were the LAN gone with a.
	if dl, err := ReadDiskList(disk, 0); err != nil || len(dl.Conns) != 2 || !want[dl.Conns[0]] || !want[dl.Conns[1]] || dl.Version != view.List().Version {
		t.Fatalf("a's disk area: %v at %v, %v; want %v at %v", dl.Conns, dl.Version, err, want, view.List().Version)
	}
	if st := onA.Status(); st.Tracked != 2 || !st.Running {
		t.Fatalf("a's status %+v", st)
	}

	// a dies: nothing of it resets anything. Its public link goes dark
	// first, so that the killed listener's FINs never reach the client.
	onA.reset = func(string, []Conn) (int, error) { return 0, nil }
	if err := onA.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lab.Cut("a", testenv.LinkPublic); err != nil {
		t.Fatal(err)
	}
	if err := lab.PowerOff("a"); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []netip.Prefix{testenv.FloatIP, testenv.FloatIP6} {
		vip := resources.NewFloatIP(resources.FloatIPParams{
			Name: "vip", Address: prefix.String(), Interface: testenv.PublicIf, NetNS: b.NetnsPath(), ARPRounds: 1,
		})
		if err := vip.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { vip.Stop(context.Background()) })
	}

	// Tickles off: the clients do not notice.
	if err := readAll(idle, 3*time.Second); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle clients 3 s after the takeover without tickles: %v; want them still open", err)
	}

	onB := NewTickle(TickleParams{
		Name: "reconnect", Addrs: addrs, Netns: b.NetnsPath(),
		Source: func(context.Context) ([]Conn, error) {
			fromDisk, err := ReadDiskList(disk, 0)
			l := Newest(view.List(), fromDisk)
			t.Logf("b tickles the list from %s, version %v (disk %v)", l.Source, l.Version, fromDisk.Version)
			return l.Conns, err
		},
	})
	began := time.Now()
	if err := onB.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { onB.Stop(context.Background()) })
	for i, c := range idle {
		if err := readErr(c, time.Second-time.Since(began)); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("%s after b's tickles: %v; want ECONNRESET within 1 s of Start", connOf(c), err)
		}
		t.Logf("client %d reset %v after Start", i, time.Since(began))
	}
	if st := onB.Status(); st.Tickled != 2 || st.Sent < 2 {
		t.Fatalf("b's status %+v", st)
	}
}

// readAll reads from every connection with a deadline and returns the
// first error that is not the deadline's, or the deadline's.
func readAll(conns []net.Conn, within time.Duration) error {
	errs := make(chan error, len(conns))
	for _, c := range conns {
		go func() { errs <- readErr(c, within) }()
	}
	var first error
	for range conns {
		if err := <-errs; first == nil || errors.Is(first, os.ErrDeadlineExceeded) {
			first = err
		}
	}
	if first != nil && !errors.Is(first, os.ErrDeadlineExceeded) {
		return fmt.Errorf("a connection ended: %w", first)
	}
	return first
}
