package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tandem-ha/tandem/testenv"
)

// demo builds a lab, runs tandemd on both nodes, shows haclient status,
// reads the share through the floating address, powers the active node off
// and prints the takeover as the survivor logged it, then reads again.
// bin is the directory holding tandemd and haclient.
func demo(w io.Writer, bin string) (err error) {
	t0 := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(w, "[%7.3fs] %s\n", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
	}
	for _, b := range []string{"tandemd", "haclient"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%s not found in %s (run make build, or give --bin)", b, bin)
		}
	}
	lab, err := testenv.New(testenv.Options{})
	if err != nil {
		return err
	}
	var daemons []*exec.Cmd
	defer func() {
		for _, d := range daemons {
			d.Process.Signal(syscall.SIGTERM)
		}
		cerr := lab.Close()
		if err == nil {
			err = cerr
		}
		if left := testenv.Leftovers(lab.Name); len(left) > 0 && err == nil {
			err = fmt.Errorf("lab left behind: %s", strings.Join(left, "; "))
		}
		if err == nil {
			say("lab %s torn down, nothing left behind", lab.Name)
		}
	}()
	say("lab %s up: nodes a and b, a client, shared disk, heartbeat LAN, fence agent %s", lab.Name, lab.FenceAgent())
	if err := lab.PrepareShare("hello from the shared disk"); err != nil {
		return err
	}
	cfg := lab.TandemConfig(testenv.PairConfig{})
	for _, n := range []string{"a", "b"} {
		if err := lab.InstallTandem(n, cfg); err != nil {
			return err
		}
	}
	say("same /etc/tandem/tandem.toml on both nodes (keepalive 100ms, deadtime 500ms):")
	for _, line := range strings.Split(strings.TrimSpace(cfg), "\n") {
		fmt.Fprintf(w, "            | %s\n", line)
	}
	start := func(n string) error {
		logf, err := os.OpenFile(filepath.Join(lab.Node(n).Dir, "tandemd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer logf.Close()
		cmd := lab.Node(n).Command(filepath.Join(bin, "tandemd"), "--node", n)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return err
		}
		go cmd.Wait()
		daemons = append(daemons, cmd)
		return nil
	}
	for _, n := range []string{"a", "b"} {
		if err := start(n); err != nil {
			return err
		}
	}
	say("tandemd started on a and b")
	haclient := func(n string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return lab.Node(n).Run(ctx, filepath.Join(bin, "haclient"), args...)
	}
	holder := func() string {
		for _, n := range []string{"a", "b"} {
			if ok, _ := lab.Node(n).HasAddr(testenv.FloatIP.Addr()); ok {
				return n
			}
		}
		return ""
	}
	read := func(within time.Duration) (string, error) {
		deadline := time.Now().Add(within)
		for {
			out, err := lab.ReadShare(time.Second)
			if err == nil {
				first, _, _ := strings.Cut(out, "\n")
				return first, nil
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("the client could not read the share within %v: %w", within, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	text, err := read(30 * time.Second)
	if err != nil {
		return err
	}
	active := holder()
	say("client read //%s/%s/%s: %q (served by %s)", testenv.FloatIP.Addr(), testenv.ShareName, testenv.ShareFile, text, active)
	if out, err := haclient(active, "status"); err == nil {
		say("haclient status on %s:", active)
		io.WriteString(w, indent(out))
	} else {
		return err
	}

	survivor := lab.Peer(active).Name
	fault := time.Now()
	say("powering %s off", active)
	if err := lab.PowerOff(active); err != nil {
		return err
	}
	text, err = read(30 * time.Second)
	if err != nil {
		return err
	}
	outage := time.Since(fault)
	say("client read again: %q (served by %s), %v after the power-off (smbclient attempts one after another, each up to 1 s)", text, holder(), outage.Round(time.Millisecond))
	say("takeover on %s, as it logged it (times from the power-off):", survivor)
	for _, l := range timeline(filepath.Join(lab.Node(survivor).Dir, "tandemd.log"), fault) {
		fmt.Fprintf(w, "            %s\n", l)
	}

	say("powering %s on and starting tandemd: it rejoins as standby", active)
	if err := lab.PowerOn(active); err != nil {
		return err
	}
	if err := start(active); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := haclient(active, "status")
		if err == nil && strings.Contains(out, "standby") {
			say("haclient status on %s:", active)
			io.WriteString(w, indent(out))
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not rejoin as standby: %v %s", active, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("            | " + l + "\n")
	}
	return b.String()
}

// timeline picks the survivor's decisive log lines after the fault.
func timeline(logPath string, fault time.Time) []string {
	f, err := os.Open(logPath)
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		ts, rest, ok := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		if !ok || strings.Contains(rest, "level=DEBUG") {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || at.Before(fault.Truncate(time.Millisecond)) {
			continue
		}
		msg := rest
		if i := strings.Index(rest, "msg="); i >= 0 {
			msg = rest[i+4:]
		}
		for _, key := range []string{"is dead", "fencing", "fenced", "taking the service", "smbd ready", "group started"} {
			if strings.Contains(msg, key) {
				out = append(out, fmt.Sprintf("+%6.0f ms  %s", float64(at.Sub(fault).Microseconds())/1000, msg))
				break
			}
		}
	}
	return out
}
