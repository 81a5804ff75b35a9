package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/admin"
	"github.com/tandem-ha/tandem/quorum"
	"github.com/tandem-ha/tandem/smbservice"
)

// tickleDaemon is a fakeDaemon that lists connections.
type tickleDaemon struct {
	fakeDaemon
	tickles admin.Tickles
}

func (d *tickleDaemon) Tickles(context.Context) (admin.Tickles, error) {
	return d.tickles, d.record("tickles")
}

func TestTickles(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	last := t0.Add(-2 * time.Second)
	d := &tickleDaemon{tickles: admin.Tickles{Time: t0, Node: "beta",
		Lists: []admin.TickleList{
			{Node: "alpha", Source: "lan", Version: "9/42", Count: 2, Connections: []string{"198.18.0.100:51234->198.18.0.50:445", "[2001:2::100]:40000->[2001:2::50]:445"}},
			{Node: "alpha", Source: "disk"},
		},
		Counts: &admin.TickleCounts{Running: true, Tracked: 3, Tickled: 2, Sent: 6, Rounds: 3, LastRound: &last}}}
	sock := serve(t, d)
	code, out, errs := cli(t, nil, "--socket", sock, "tickles")
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		"Node:     beta (2026-05-01 12:00:00)",
		"Tickles:  running, 3 tracked; last start tickled 2 connections in 3 rounds (6 sent, 0 failed, last round 11:59:58); last stop reset 0",
		"Clients of alpha, from the heartbeat LAN, version 9/42: 2 connections\n  198.18.0.100:51234->198.18.0.50:445\n  [2001:2::100]:40000->[2001:2::50]:445\n",
		"Clients of alpha, from the quorum disk: 0 connections\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = cli(t, nil, "--socket", sock, "tickles", "--json")
	var doc admin.Tickles
	if code != exitOK || json.Unmarshal([]byte(out), &doc) != nil || doc.Schema != 1 || len(doc.Lists) != 2 || doc.Lists[1].Connections == nil {
		t.Fatalf("--json: exit %d:\n%s", code, out)
	}
	if code, _, errs := cli(t, nil, "--socket", sock, "tickles", "extra"); code != exitUsage || !strings.Contains(errs, "usage: haclient [--socket PATH] tickles [--json]") {
		t.Errorf("extra argument: exit %d, %q", code, errs)
	}
	// A daemon that does not track connections.
	sock = serve(t, &fakeDaemon{})
	code, _, errs = cli(t, nil, "--socket", sock, "tickles")
	if code != exitFailed || errs != "haclient: tickles: this tandemd does not track client connections\n" {
		t.Errorf("without tracking: exit %d, stderr %q", code, errs)
	}
}

// disk init sizes the connection-list areas; dump shows each area's
// write, version and count.
func TestDiskListArea(t *testing.T) {
	_, conf, img := diskSetup(t)
	code, out, errs := cli(t, nil, "disk", "init", img, "--config", conf, "--list-conns", "1000")
	want := quorum.ListSectorsFor(1000, 4096)
	if code != exitOK || !strings.Contains(out, "connection-list areas: 2 copies of 5 sectors per node") || want != 5 {
		t.Fatalf("init: exit %d (%d sectors expected), stderr %q:\n%s", code, want, errs, out)
	}
	code, out, _ = cli(t, nil, "disk", "dump", img)
	if code != exitOK || !regexp.MustCompile(`(?m)^0\s+alpha\s+5\s+-\s+-\s+-\s+never written$`).MatchString(out) {
		t.Fatalf("dump of a fresh area: exit %d:\n%s", code, out)
	}
	d, err := quorum.Open(img, quorum.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := smbservice.NewDiskMirror(d, 1, time.Hour, nil)
	conns := []smbservice.Conn{{Client: netip.MustParseAddrPort("198.18.0.100:5"), Server: netip.MustParseAddrPort("198.18.0.50:445")}}
	m.Update(smbservice.VersionedList{Version: smbservice.ListVersion{Epoch: 3, Seq: 8}, Conns: conns})
	err = m.Close()
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli(t, nil, "disk", "dump", img)
	if code != exitOK || !regexp.MustCompile(`(?m)^1\s+beta\s+15\s+1\s+0\s+3/8\s+1 \(23 bytes\)$`).MatchString(out) {
		t.Fatalf("dump after a write: exit %d:\n%s", code, out)
	}
	code, out, _ = cli(t, nil, "disk", "dump", "--json", img)
	var doc diskDumpJSON
	if code != exitOK || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Lists) != 2 || doc.Lists[1].Count != 1 || doc.Lists[1].Version != "3/8" || !doc.Lists[0].Blank {
		t.Fatalf("dump --json: exit %d:\n%s", code, out)
	}

	// --list-conns 0: no area, as on disks made before areas existed.
	code, out, _ = cli(t, nil, "disk", "init", img, "--config", conf, "--list-conns", "0", "--force")
	if code != exitOK || !strings.Contains(out, "no connection-list areas") || !strings.Contains(out, "5 sectors") {
		t.Fatalf("init without area: exit %d:\n%s", code, out)
	}
	code, out, _ = cli(t, nil, "disk", "dump", img)
	if code != exitOK || strings.Contains(out, "LIST") {
		t.Fatalf("dump without area: exit %d:\n%s", code, out)
	}
	for _, args := range [][]string{
		{"disk", "init", img, "--config", conf, "--list-conns", "-1"},
		{"disk", "dump", img, "--list-conns", "5"},
	} {
		if code, _, errs := cli(t, nil, args...); code != exitUsage || !strings.Contains(errs, "--list-conns") {
			t.Errorf("%v: exit %d, %q", args, code, errs)
		}
	}
}
