package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tandem-ha/tandem/admin"
)

func runTickles(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.flags(cmd)
	asJSON := fs.Bool("json", false, "print the connection lists as JSON")
	if _, err := parse(cmd, fs, args, 0, 0); err != nil {
		return err
	}
	c := a.client()
	if *asJSON {
		data, err := c.TicklesJSON(ctx)
		if err != nil {
			return err
		}
		_, err = a.stdout.Write(data)
		return err
	}
	t, err := c.Tickles(ctx)
	if err != nil {
		return err
	}
	return printTickles(a.stdout, t, a.loc)
}

// printTickles prints the counters, then each list with the node it is
// from and its connections.
func printTickles(w io.Writer, t admin.Tickles, loc *time.Location) error {
	fmt.Fprintf(w, "Node:     %s (%s)\n", t.Node, t.Time.In(loc).Format(time.DateTime))
	if c := t.Counts; c == nil {
		fmt.Fprintf(w, "Tickles:  no tickle resource\n")
	} else {
		state := "stopped"
		if c.Running {
			state = "running"
		}
		last := "no round yet"
		if c.LastRound != nil {
			last = "last round " + c.LastRound.In(loc).Format(time.TimeOnly)
		}
		fmt.Fprintf(w, "Tickles:  %s, %d tracked; last start tickled %s in %d %s (%d sent, %d failed, %s); last stop reset %d\n",
			state, c.Tracked, plural(c.Tickled, "connection"), c.Rounds, pluralWord(c.Rounds, "round"), c.Sent, c.Failed, last, c.Reset)
		if c.PollFailures > 0 || c.LastError != "" {
			fmt.Fprintf(w, "Errors:   %d failed polls in a row; last: %s\n", c.PollFailures, dash(c.LastError))
		}
	}
	if len(t.Lists) == 0 {
		fmt.Fprintln(w, "\nNo connection lists.")
	}
	for _, l := range t.Lists {
		version := ""
		if l.Version != "" {
			version = ", version " + l.Version
		}
		fmt.Fprintf(w, "\nClients of %s, from %s%s: %s\n", l.Node, sourceName(l.Source), version, plural(l.Count, "connection"))
		for _, c := range l.Connections {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
	return nil
}

func sourceName(s string) string {
	switch s {
	case "tracked":
		return "this node's tracking"
	case "lan":
		return "the heartbeat LAN"
	case "disk":
		return "the quorum disk"
	case "file":
		return "the saved file"
	}
	return s
}

func plural(n int, word string) string { return fmt.Sprintf("%d %s", n, pluralWord(n, word)) }

func pluralWord(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
