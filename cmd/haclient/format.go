package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tandem-ha/tandem/admin"
)

// maxNotices is how many of the latest notices the status table shows.
const maxNotices = 5

// printStatus writes the status as an operator reads it: one header line,
// the warnings that must not be missed, the heartbeat media, the resources
// and the latest notices.
func printStatus(w io.Writer, st admin.Status, loc *time.Location) error {
	var b strings.Builder
	nodes := make([]string, 0, len(st.Nodes))
	for _, n := range st.Nodes {
		s := n.Name + " " + string(n.Role)
		switch {
		case n.Local && n.Reason != "":
			s += " (local, " + n.Reason + ")"
		case n.Local:
			s += " (local)"
		case n.Reason != "":
			s += " (" + n.Reason + ")"
		}
		nodes = append(nodes, s)
	}
	mode := "off"
	if st.Maintenance {
		mode = "ON"
	}
	fmt.Fprintf(&b, "cluster %s: %s; maintenance %s\n", st.Cluster, strings.Join(nodes, ", "), mode)

	if st.UnsafeNoFencing {
		warning := st.UnsafeWarning
		if warning == "" {
			warning = admin.UnsafeNoFencingWarning
		}
		fmt.Fprintf(&b, "WARNING: %s\n", warning)
	}
	if f := st.LastFence; f != nil {
		if f.Result == admin.FenceFailed {
			fmt.Fprintf(&b, "WARNING: %s (began %s)\n", f, stamp(f.Started, loc))
		} else {
			fmt.Fprintf(&b, "last %s (began %s)\n", f, stamp(f.Started, loc))
		}
	}
	if st.Maintenance {
		b.WriteString("MAINTENANCE MODE: failures are reported, not acted on\n")
	}
	if tk := st.Tickles; tk != nil {
		fmt.Fprintf(&b, "tickles: %d tracked, %d tickled in %d round(s), %d reset", tk.Tracked, tk.Tickled, tk.Rounds, tk.Reset)
		if tk.LastError != "" {
			fmt.Fprintf(&b, "; tracking failed %d time(s): %s", tk.PollFailures, tk.LastError)
		}
		b.WriteString("\n")
	}

	var links [][]string
	for _, n := range st.Nodes {
		for _, l := range n.Links {
			links = append(links, []string{n.Name, l.Medium, string(l.State), heard(l.LastHeardAgoMS), fmt.Sprint(l.Late), bad(l.Bad)})
		}
	}
	if len(links) > 0 {
		b.WriteString("\n")
		table(&b, []string{"PEER", "MEDIUM", "STATE", "LAST HEARD", "LATE", "BAD"}, links)
	}

	b.WriteString("\n")
	resourceTable(&b, st.Resources)

	if len(st.Notices) > 0 {
		notices := st.Notices[max(len(st.Notices)-maxNotices, 0):]
		rows := make([][]string, 0, len(notices))
		for _, n := range notices {
			rows = append(rows, []string{stamp(n.Time, loc), string(n.Level), n.Text})
		}
		b.WriteString("\n")
		table(&b, []string{"TIME", "LEVEL", "NOTICE"}, rows)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// printResources writes the resource table.
func printResources(w io.Writer, rs []admin.Resource) error {
	var b strings.Builder
	resourceTable(&b, rs)
	_, err := io.WriteString(w, b.String())
	return err
}

func resourceTable(b *strings.Builder, rs []admin.Resource) {
	if len(rs) == 0 {
		b.WriteString("no resources configured\n")
		return
	}
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		rows = append(rows, []string{r.Name, r.Type, string(r.State), dash(r.Where), fmt.Sprint(r.Failures), dash(r.LastError)})
	}
	table(b, []string{"RESOURCE", "TYPE", "STATE", "WHERE", "FAILURES", "LAST ERROR"}, rows)
}

// table writes aligned columns. Cells must not hold tabs or newlines;
// those in messages from the daemon are replaced.
func table(b *strings.Builder, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	clean := strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = clean.Replace(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// heard shows how long ago a medium last carried a heartbeat.
func heard(ms *int64) string {
	if ms == nil {
		return "never"
	}
	d := time.Duration(*ms) * time.Millisecond
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms ago", *ms)
	case d < time.Minute:
		return fmt.Sprintf("%.1fs ago", d.Seconds())
	default:
		return d.Truncate(time.Second).String() + " ago"
	}
}

// bad shows the total of bad packets and the kinds that are not zero.
func bad(p admin.BadPackets) string {
	total := p.Total()
	if total == 0 {
		return "0"
	}
	var kinds []string
	for _, k := range []struct {
		name string
		n    uint64
	}{
		{"forged", p.Forged}, {"replayed", p.Replayed}, {"truncated", p.Truncated},
		{"foreign", p.Foreign}, {"malformed", p.Malformed}, {"unknown sender", p.UnknownSender},
	} {
		if k.n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k.name, k.n))
		}
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(kinds, ", "))
}

// stamp shows a time of day with its date, in loc.
func stamp(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(loc).Format("Jan _2 15:04:05")
}
