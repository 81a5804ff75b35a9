package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tandem-ha/tandem/heartbeat"
	"github.com/tandem-ha/tandem/quorum"
)

const diskConfig = `[cluster]
name = "filer"
auth_key_file = "KEY"

[[node]]
name = "alpha"
address = "198.18.1.1"

[[node]]
name = "beta"
address = "198.18.1.2"

[heartbeat.disk]
device = "DEVICE"
interval = "100ms"

[watchdog]
timeout = "3s"
`

// diskSetup writes a configuration and an empty image for it.
func diskSetup(t *testing.T) (dir, conf, img string) {
	t.Helper()
	dir = t.TempDir()
	img = filepath.Join(dir, "quorum.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	conf = writeConfig(t, dir, strings.ReplaceAll(diskConfig, "DEVICE", img))
	return dir, conf, img
}

func TestDiskInit(t *testing.T) {
	_, conf, img := diskSetup(t)
	code, out, errs := cli(t, nil, "disk", "init", img, "--config", conf)
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		"disk init: " + img + `: quorum layout written for cluster "filer"`,
		"format version 1, sector size 4096 bytes",
		"interval 100ms, watchdog 3s, lease -, message wait -",
		"slot 0: alpha (status sector 1, mailbox sector 2)",
		"slot 1: beta (status sector 3, mailbox sector 4)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`creation id [0-9a-f]{16}\n`).MatchString(out) {
		t.Errorf("no creation id:\n%s", out)
	}

	// Another cluster's header is refused without --force.
	dir := t.TempDir()
	other := writeConfig(t, dir, strings.ReplaceAll(strings.ReplaceAll(diskConfig, "DEVICE", img), `"filer"`, `"other"`))
	code, out, errs = cli(t, nil, "disk", "init", "--config", other, img)
	if code != exitFailed || out != "" || !strings.Contains(errs, img) || !strings.Contains(errs, `the quorum header of cluster "filer"`) || !strings.Contains(errs, "force") {
		t.Errorf("init over another cluster: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, _ = cli(t, nil, "disk", "init", "--force", "--config", other, img)
	if code != exitOK || !strings.Contains(out, `replaced the header of cluster "filer"`) {
		t.Errorf("forced init: exit %d:\n%s", code, out)
	}

	// A filesystem signature.
	fs := filepath.Join(t.TempDir(), "xfs.img")
	data := make([]byte, 1<<20)
	copy(data, "XFSB")
	if err := os.WriteFile(fs, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = cli(t, nil, "disk", "init", fs, "--config", conf)
	if code != exitFailed || !strings.Contains(errs, "XFS filesystem (magic at byte 0)") {
		t.Errorf("init over XFS: exit %d, stderr %q", code, errs)
	}
	code, out, _ = cli(t, nil, "disk", "init", fs, "--config", conf, "--force")
	if code != exitOK || !strings.Contains(out, "overwrote XFS filesystem (magic at byte 0)") {
		t.Errorf("forced init over XFS: exit %d:\n%s", code, out)
	}
}

func TestDiskDump(t *testing.T) {
	_, conf, img := diskSetup(t)
	if code, _, errs := cli(t, nil, "disk", "init", img, "--config", conf); code != exitOK {
		t.Fatalf("init: %s", errs)
	}
	// alpha's slot holds a heartbeat, as its disk medium leaves it.
	codec, err := heartbeat.NewCodec("filer", []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := heartbeat.Status{Role: "active"}.MarshalBinary()
	msg, err := codec.Marshal(&heartbeat.Message{Type: heartbeat.TypeHeartbeat, Sender: "alpha", Generation: 4, Sequence: 81, Payload: st})
	if err != nil {
		t.Fatal(err)
	}
	d, err := quorum.Open(img, quorum.Options{Cluster: "filer"})
	if err != nil {
		t.Fatal(err)
	}
	err = d.WriteSlot(0, &quorum.Slot{Generation: 4, Counter: 1234, Role: quorum.RoleActive, Flags: quorum.FlagLease, AckFrom: quorum.NoSlot, Payload: msg})
	if err == nil {
		err = d.WriteMailbox(1, &quorum.Mailbox{Kind: quorum.MsgOff, From: 0, Sequence: 7})
	}
	d.Close()
	if err != nil {
		t.Fatal(err)
	}

	code, out, errs := cli(t, nil, "disk", "dump", img)
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		"Device:   " + img,
		"Cluster:  filer",
		"Timing:   interval 100ms, watchdog 3s, lease -, message wait -",
		"heartbeat from alpha, generation 4, sequence 81, role active (unverified)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^0\s+alpha\s+1\s+4\s+1234\s+active\s+yes\s+-\s+heartbeat`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^1\s+beta\s+3\s+0\s+0\s+unknown\s+no\s+-\s+empty$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^1\s+beta\s+4\s+off\s+alpha\s+7$`).MatchString(out) {
		t.Errorf("table rows:\n%s", out)
	}

	code, out, errs = cli(t, nil, "disk", "dump", "--json", img)
	if code != exitOK || errs != "" {
		t.Fatalf("json: exit %d, stderr %q", code, errs)
	}
	var doc diskDumpJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if doc.Header == nil || doc.Header.Cluster != "filer" || doc.Header.IntervalMS != 100 || len(doc.Slots) != 2 ||
		doc.Slots[0].Counter != 1234 || !doc.Slots[0].Lease || doc.Slots[0].Payload == nil || doc.Slots[0].Payload.Sequence != 81 ||
		doc.Mailboxes[1].Kind != "off" || doc.Mailboxes[1].From != "alpha" {
		t.Errorf("json:\n%s", out)
	}

	// A bit flip in beta's slot: reported in its place, with the device
	// and sector; the rest is still shown; exit status 1.
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt([]byte{0x01}, 3*4096+200)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli(t, nil, "disk", "dump", img)
	want := "quorum: " + img + ": sector 3 (slot 1): field crc32c at byte 4092: checksum mismatch"
	if code != exitFailed || !strings.Contains(out, "BAD: "+want) || !strings.Contains(errs, "haclient: disk dump: "+want) ||
		!strings.Contains(out, "heartbeat from alpha") {
		t.Errorf("dump of a flipped slot: exit %d, stderr %q:\n%s", code, errs, out)
	}
	code, out, _ = cli(t, nil, "disk", "dump", img, "--json")
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != exitFailed || !strings.HasPrefix(doc.Slots[1].Error, want) {
		t.Errorf("json dump of a flipped slot: exit %d, %v:\n%s", code, err, out)
	}

	// No header at all.
	blank := filepath.Join(t.TempDir(), "blank.img")
	if err := os.WriteFile(blank, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli(t, nil, "disk", "dump", blank)
	if code != exitFailed || !strings.Contains(out, "Header:   BAD: quorum: "+blank+": sector 0 (header): field magic at byte 0: bad magic") || errs == "" {
		t.Errorf("dump of a blank device: exit %d, stderr %q:\n%s", code, errs, out)
	}
}

func TestDiskUsage(t *testing.T) {
	_, conf, img := diskSetup(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"disk"}, exitUsage, "missing argument"},
		{[]string{"disk", "init"}, exitUsage, "missing argument"},
		{[]string{"disk", "format", img}, exitUsage, `argument "format": want init, dump or clear`},
		{[]string{"disk", "clear", img}, exitUsage, "missing argument: clear wants DEVICE NODE"},
		{[]string{"disk", "clear", img, ""}, exitUsage, "argument NODE: empty node name"},
		{[]string{"disk", "clear", img, "beta", "--force"}, exitUsage, "--force goes with init, not clear"},
		{[]string{"disk", "clear", img, "beta", "--json"}, exitUsage, "--json goes with dump, not clear"},
		{[]string{"disk", "clear", img, "beta", "gamma"}, exitUsage, `unexpected argument "gamma"`},
		{[]string{"disk", "init", img, "beta"}, exitUsage, `unexpected argument "beta"`},
		{[]string{"disk", "clear", filepath.Join(t.TempDir(), "none"), "beta"}, exitFailed, "disk clear: quorum: "},
		{[]string{"disk", "dump", img, "--force"}, exitUsage, "--force goes with init"},
		{[]string{"disk", "init", img, "--json", "--config", conf}, exitUsage, "--json goes with dump"},
		{[]string{"disk", "dump", img, "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"disk", "dump", filepath.Join(t.TempDir(), "none")}, exitFailed, "no such file"},
		{[]string{"disk", "init", img, "--config", filepath.Join(t.TempDir(), "none.toml")}, exitFailed, "none.toml"},
	} {
		code, _, errs := cli(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr %q, want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	code, out, _ := cli(t, nil, "help", "disk")
	if code != exitOK || !strings.Contains(out, "usage: haclient [--socket PATH] disk init|dump|clear DEVICE [NODE]") {
		t.Errorf("help disk: %d %q", code, out)
	}
}

func TestDiskClear(t *testing.T) {
	_, conf, img := diskSetup(t)
	if code, _, errs := cli(t, nil, "disk", "init", img, "--config", conf); code != exitOK {
		t.Fatalf("init: %s", errs)
	}
	d, err := quorum.Open(img, quorum.Options{Cluster: "filer"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pill := quorum.Message{Kind: quorum.MsgReset, From: "alpha", To: "beta", Sequence: 7}
	if err := d.WriteMessage(pill); err != nil {
		t.Fatal(err)
	}
	if err := d.Acknowledge(pill); err != nil {
		t.Fatal(err)
	}

	code, out, errs := cli(t, nil, "disk", "clear", img, "beta")
	want := "disk clear: " + img + ": mailbox of beta (sector 4): cleared reset #7 from alpha (acknowledged by beta)\n"
	if code != exitOK || errs != "" || out != want {
		t.Fatalf("clear: exit %d, stderr %q, stdout %q, want %q", code, errs, out, want)
	}
	if m, err := d.ReadMessage("beta"); err != nil || m.Kind != quorum.MsgNone || m.Sequence != 7 {
		t.Errorf("beta's mailbox after clear: %+v, %v", m, err)
	}
	code, out, _ = cli(t, nil, "disk", "clear", "--", img, "beta")
	if code != exitOK || out != "disk clear: "+img+": mailbox of beta (sector 4): already empty\n" {
		t.Errorf("clear of an empty mailbox: exit %d, %q", code, out)
	}

	// A message the node never acknowledged says so.
	if err := d.WriteMessage(quorum.Message{Kind: quorum.MsgOff, From: "beta", To: "alpha", Sequence: 2}); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli(t, nil, "disk", "clear", img, "alpha")
	if code != exitOK || !strings.HasSuffix(out, ": mailbox of alpha (sector 2): cleared off #2 from beta (not acknowledged by alpha)\n") {
		t.Errorf("clear of an unacknowledged message: exit %d, %q", code, out)
	}

	// An unreadable mailbox is overwritten, and what was wrong is shown.
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt([]byte{0x01}, 4*4096+100)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli(t, nil, "disk", "clear", img, "beta")
	if code != exitOK || !strings.Contains(out, ": mailbox of beta (sector 4): overwrote an unreadable sector with an empty mailbox\n") ||
		!strings.Contains(out, "it held: quorum: "+img+": sector 4 (mailbox of beta): read: field crc32c at byte 4092: checksum mismatch") {
		t.Errorf("clear of a corrupt mailbox: exit %d:\n%s", code, out)
	}
	if m, err := d.ReadMessage("beta"); err != nil || m.Kind != quorum.MsgNone {
		t.Errorf("beta's mailbox after clearing a corrupt one: %+v, %v", m, err)
	}
	code, out, _ = cli(t, nil, "disk", "dump", img)
	if code != exitOK || !regexp.MustCompile(`(?m)^1\s+beta\s+4\s+none\s+-\s+7$`).MatchString(out) {
		t.Errorf("dump after clear: exit %d:\n%s", code, out)
	}

	code, out, errs = cli(t, nil, "disk", "clear", img, "gamma")
	if code != exitFailed || out != "" || errs != "haclient: disk clear: "+img+": no node \"gamma\": the quorum header names alpha, beta\n" {
		t.Errorf("clear for an unknown node: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, _ = cli(t, nil, "help", "disk")
	if code != exitOK || !strings.Contains(out, "disk init|dump|clear DEVICE [NODE]") || !strings.Contains(out, "clear DEVICE NODE: remove the fence message left for NODE") {
		t.Errorf("help disk: %d %q", code, out)
	}
}

func TestDiskCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	for _, tc := range []struct {
		words string
		want  string
	}{
		{"haclient disk ''", "init dump clear"},
		{"haclient disk c", "clear"},
		{"haclient disk init /dev/sdb1 --", "--force --config --list-conns"},
		{"haclient disk dump /dev/sdb1 --", "--json"},
		{"haclient disk clear /dev/sdb1 beta --", "--socket"},
	} {
		if got := complete(t, bash, bashCompletion, tc.words); got != tc.want {
			t.Errorf("%s: have %q, want %q", tc.words, got, tc.want)
		}
	}
}
