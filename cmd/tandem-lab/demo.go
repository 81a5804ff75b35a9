package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/tandem-ha/tandem/testenv"
)

// demo builds a lab, serves a share from the shared disk through node a,
// reads it from the client, and shows that a power-off takes the node, its
// mount and its smbd away at once.
func demo(w io.Writer) (err error) {
	t0 := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(w, "[%7.3fs] %s\n", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
	}
	lab, err := testenv.New(testenv.Options{})
	if err != nil {
		return err
	}
	defer func() {
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
	a, b, client := lab.Node("a"), lab.Node("b"), lab.Client()
	say("lab %s up: node a %s, node b %s, client %s; shared disk %s", lab.Name, a.PublicAddr.Addr(), b.PublicAddr.Addr(), client.PublicAddr.Addr(), lab.DataDevice())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mnt := lab.Mountpoint()
	if _, err := a.Run(ctx, "mount", "-t", "ext4", lab.DataDevice(), mnt); err != nil {
		return err
	}
	if _, err := a.Run(ctx, "sh", "-c", "mkdir -p "+mnt+"/share && echo 'hello from the shared disk, served by node a' > "+mnt+"/share/hello.txt && sync"); err != nil {
		return err
	}
	say("node a mounted the data volume on %s", mnt)
	if ok, _ := b.Mounted(); !ok {
		say("node b does not see that mount (its own mount namespace)")
	}
	conf, err := a.WriteSMBConf(testenv.SMBConfig{Addresses: []netip.Addr{a.PublicAddr.Addr()}, Path: mnt + "/share"})
	if err != nil {
		return err
	}
	smbd := a.Command("smbd", "--foreground", "--no-process-group", "-s", conf)
	if err := smbd.Start(); err != nil {
		return fmt.Errorf("start smbd (is the samba package installed?): %w", err)
	}
	go smbd.Wait()
	say("smbd started on node a")
	read := func() (string, error) {
		c, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return client.Run(c, "smbclient", "-N", "-t", "2", "//"+a.PublicAddr.Addr().String()+"/share", "-c", "get hello.txt -")
	}
	var out string
	deadline := time.Now().Add(20 * time.Second)
	for {
		if out, err = read(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the client could not read the share: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	first, _, _ := strings.Cut(out, "\n")
	say("client read //%s/share/hello.txt: %q", a.PublicAddr.Addr(), first)

	if err := lab.PowerOff("a"); err != nil {
		return err
	}
	smbdLeft, _ := a.Running("smbd")
	mounted, _ := a.Mounted()
	say("node a powered off: smbd running %v, data volume mounted %v", smbdLeft, mounted)
	if _, err := read(); err != nil {
		say("client read fails, as it must with the server gone (takeover comes with tandemd)")
	}
	return nil
}
