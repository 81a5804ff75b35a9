package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/heartbeat"
	"github.com/tandem-ha/tandem/quorum"
	"github.com/tandem-ha/tandem/smbservice"
)

func runDisk(_ context.Context, a *app, cmd *command, args []string) error {
	fs := a.flags(cmd)
	force := fs.Bool("force", false, "init: overwrite a filesystem, a partition table or another cluster's header")
	asJSON := fs.Bool("json", false, "dump: print the dump as JSON")
	configPath := fs.String("config", a.configPath, "init: the configuration naming the cluster, its nodes and timings")
	listConns := fs.Int("list-conns", quorum.DefaultListConns, "init: size each node's connection-list area for this many IPv6 connections; 0 for none")
	ops, err := parse(cmd, fs, args, 2, 3)
	if err != nil {
		return err
	}
	if ops[1] == "" {
		return usagef(cmd, "argument DEVICE: empty path")
	}
	switch ops[0] {
	case "init", "dump":
		if len(ops) > 2 {
			return usagef(cmd, "unexpected argument %q", ops[2])
		}
	case "clear":
		if len(ops) < 3 {
			return usagef(cmd, "missing argument: clear wants DEVICE NODE")
		}
		if ops[2] == "" {
			return usagef(cmd, "argument NODE: empty node name")
		}
	}
	switch ops[0] {
	case "init":
		if *asJSON {
			return usagef(cmd, "--json goes with dump, not init")
		}
		if *listConns < 0 {
			return usagef(cmd, "--list-conns %d: want 0 or more connections", *listConns)
		}
		return a.diskInit(ops[1], *configPath, *force, *listConns)
	case "dump":
		if *force {
			return usagef(cmd, "--force goes with init, not dump")
		}
		if flagSet(fs, "list-conns") {
			return usagef(cmd, "--list-conns goes with init, not dump")
		}
		return a.diskDump(ops[1], *asJSON)
	case "clear":
		switch {
		case *force:
			return usagef(cmd, "--force goes with init, not clear")
		case *asJSON:
			return usagef(cmd, "--json goes with dump, not clear")
		case flagSet(fs, "list-conns"):
			return usagef(cmd, "--list-conns goes with init, not clear")
		}
		return a.diskClear(ops[1], ops[2])
	}
	return usagef(cmd, "argument %q: want init, dump or clear", ops[0])
}

// diskClear empties NODE's mailbox on device, so that a node that found
// a fence message there at start may run its resources again, and says
// what it removed.
func (a *app) diskClear(device, node string) error {
	d, err := quorum.Open(device, quorum.Options{})
	if err != nil {
		return fmt.Errorf("disk clear: %w", err)
	}
	defer d.Close()
	h := d.Header()
	i, ok := h.SlotOf(node)
	if !ok {
		return fmt.Errorf("disk clear: %s: no node %q: the quorum header names %s", device, node, strings.Join(h.Nodes, ", "))
	}
	c, err := d.ClearMailbox(node)
	if err != nil {
		return fmt.Errorf("disk clear: %w", err)
	}
	w := a.stdout
	where := fmt.Sprintf("disk clear: %s: mailbox of %s (sector %d)", device, node, quorum.MailboxSector(i))
	switch {
	case c.Unreadable != nil:
		fmt.Fprintf(w, "%s: overwrote an unreadable sector with an empty mailbox\n  it held: %v\n", where, c.Unreadable)
	case c.Previous.Kind == quorum.MsgNone:
		fmt.Fprintf(w, "%s: already empty\n", where)
	default:
		ack := "not acknowledged by " + node
		if c.Acknowledged {
			ack = "acknowledged by " + node
		}
		fmt.Fprintf(w, "%s: cleared %v #%d from %s (%s)\n", where, c.Previous.Kind, c.Previous.Sequence, c.Previous.From, ack)
	}
	return nil
}

// diskInit writes a fresh quorum layout for the cluster of the
// configuration at configPath and prints what it wrote.
func (a *app) diskInit(device, configPath string, force bool, listConns int) error {
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	p := quorum.Params{Interval: heartbeat.DefaultDiskInterval, Watchdog: cfg.Watchdog.Timeout}
	if cfg.Heartbeat.Disk != nil {
		p.Interval = cfg.Heartbeat.Disk.Interval
	}
	p.ListConns = listConns
	if listConns == 0 {
		p.ListSectors = quorum.NoList
	}
	var nodes []string
	for _, n := range cfg.Nodes {
		nodes = append(nodes, n.Name)
	}
	rep, err := quorum.Init(device, cfg.Cluster.Name, nodes, p, force)
	if err != nil {
		return fmt.Errorf("disk init: %w", err)
	}
	h := rep.Header
	w := a.stdout
	fmt.Fprintf(w, "disk init: %s: quorum layout written for cluster %q\n", device, h.Cluster)
	mode := "O_DIRECT"
	if !rep.Direct {
		mode = "buffered, O_DSYNC"
	}
	fmt.Fprintf(w, "  format version %d, sector size %d bytes (device block %d bytes, %s), %d sectors\n",
		quorum.Version, h.SectorSize, rep.BlockSize, mode, h.Sectors())
	fmt.Fprintf(w, "  creation id %016x\n", h.CreationID)
	fmt.Fprintf(w, "  interval %v, watchdog %s, lease %s, message wait %s\n", h.Interval, optDur(h.Watchdog), optDur(h.Lease), optDur(h.MsgWait))
	for i, n := range h.Nodes {
		fmt.Fprintf(w, "  slot %d: %s (status sector %d, mailbox sector %d)\n", i, n, quorum.SlotSector(i), quorum.MailboxSector(i))
	}
	if h.ListSectors > 0 {
		fmt.Fprintf(w, "  connection-list areas: 2 copies of %d sectors per node, %d bytes each, sectors %d to %d\n",
			h.ListSectors, h.ListSectors*quorum.ListBytesPerSector(h.SectorSize), h.ListSector(0, 0, 0), h.Sectors()-1)
	} else {
		fmt.Fprintf(w, "  no connection-list areas\n")
	}
	if prev := rep.Previous; prev != nil {
		fmt.Fprintf(w, "  replaced the header of cluster %q (creation id %016x)\n", prev.Cluster, prev.CreationID)
	}
	for _, s := range rep.Overwritten {
		fmt.Fprintf(w, "  overwrote %s\n", s)
	}
	return nil
}

func optDur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.String()
}

// diskDump prints every sector of the quorum layout on device. It returns
// errReported when a sector is bad, after printing all of them.
func (a *app) diskDump(device string, asJSON bool) error {
	r, err := quorum.Dump(device, quorum.Options{})
	if err != nil {
		return fmt.Errorf("disk dump: %w", err)
	}
	doc := dumpDoc(r)
	if asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doc); err != nil {
			return err
		}
	} else if err := printDump(a.stdout, doc); err != nil {
		return err
	}
	if bad := doc.errors(); len(bad) > 0 {
		for _, e := range bad {
			fmt.Fprintln(a.stderr, "haclient: disk dump: "+e)
		}
		return errReported
	}
	return nil
}

// diskDumpJSON is the JSON form of haclient disk dump.
type diskDumpJSON struct {
	Device      string            `json:"device"`
	BlockSize   int               `json:"block_size"`
	Size        int64             `json:"size"`
	DirectIO    bool              `json:"direct_io"`
	Header      *diskHeaderJSON   `json:"header"`
	HeaderError string            `json:"header_error,omitempty"`
	Slots       []diskSlotJSON    `json:"slots"`
	Mailboxes   []diskMailboxJSON `json:"mailboxes"`
	Lists       []diskListJSON    `json:"lists"`
}

// diskListJSON is a node's connection-list area.
type diskListJSON struct {
	Index  int    `json:"index"`
	Node   string `json:"node"`
	Sector int64  `json:"sector"`
	// Blank: never written. Otherwise the newer whole copy, if any.
	Blank      bool     `json:"blank"`
	Write      uint64   `json:"write,omitempty"`
	Copy       int      `json:"copy"`
	Version    string   `json:"version,omitempty"`
	Bytes      int      `json:"bytes"`
	Count      int      `json:"count"`
	CopyErrors []string `json:"copy_errors,omitempty"`
	Error      string   `json:"error,omitempty"`
}

type diskHeaderJSON struct {
	Version     int      `json:"version"`
	SectorSize  int      `json:"sector_size"`
	Cluster     string   `json:"cluster"`
	Nodes       []string `json:"nodes"`
	IntervalMS  int64    `json:"interval_ms"`
	WatchdogMS  int64    `json:"watchdog_ms"`
	LeaseMS     int64    `json:"lease_ms"`
	MsgWaitMS   int64    `json:"msgwait_ms"`
	CreationID  string   `json:"creation_id"`
	ListSectors int      `json:"list_sectors"`
}

type diskSlotJSON struct {
	Index        int                `json:"index"`
	Node         string             `json:"node"`
	Sector       int64              `json:"sector"`
	Generation   uint64             `json:"generation"`
	Counter      uint64             `json:"counter"`
	Role         string             `json:"role,omitempty"`
	Lease        bool               `json:"lease"`
	Ack          *diskMessageJSON   `json:"ack,omitempty"`
	PayloadBytes int                `json:"payload_bytes"`
	Payload      *diskHeartbeatJSON `json:"payload,omitempty"`
	PayloadError string             `json:"payload_error,omitempty"`
	Error        string             `json:"error,omitempty"`
}

type diskMessageJSON struct {
	Kind     string `json:"kind"`
	From     string `json:"from,omitempty"`
	Sequence uint64 `json:"sequence"`
}

// diskHeartbeatJSON summarises the signed message a slot holds. It is not
// verified: the dump has no key.
type diskHeartbeatJSON struct {
	Type       string `json:"type"`
	Cluster    string `json:"cluster"`
	Sender     string `json:"sender"`
	Generation uint64 `json:"generation"`
	Sequence   uint64 `json:"sequence"`
	Role       string `json:"role,omitempty"`
}

type diskMailboxJSON struct {
	Index  int    `json:"index"`
	Node   string `json:"node"`
	Sector int64  `json:"sector"`
	diskMessageJSON
	Error string `json:"error,omitempty"`
}

func dumpDoc(r *quorum.Report) *diskDumpJSON {
	doc := &diskDumpJSON{Device: r.Device, BlockSize: r.BlockSize, Size: r.Size, DirectIO: r.Direct,
		Slots: []diskSlotJSON{}, Mailboxes: []diskMailboxJSON{}, Lists: []diskListJSON{}}
	if r.HeaderErr != nil {
		doc.HeaderError = r.HeaderErr.Error()
		return doc
	}
	h := r.Header
	doc.Header = &diskHeaderJSON{
		Version: quorum.Version, SectorSize: h.SectorSize, Cluster: h.Cluster, Nodes: h.Nodes,
		IntervalMS: h.Interval.Milliseconds(), WatchdogMS: h.Watchdog.Milliseconds(),
		LeaseMS: h.Lease.Milliseconds(), MsgWaitMS: h.MsgWait.Milliseconds(),
		CreationID: fmt.Sprintf("%016x", h.CreationID), ListSectors: h.ListSectors,
	}
	sender := func(i uint8) string {
		if int(i) < len(h.Nodes) {
			return h.Nodes[i]
		}
		return ""
	}
	for _, s := range r.Slots {
		js := diskSlotJSON{Index: s.Index, Node: s.Node, Sector: s.Sector}
		if s.Err != nil {
			js.Error = s.Err.Error()
			doc.Slots = append(doc.Slots, js)
			continue
		}
		js.Generation, js.Counter, js.Role = s.Slot.Generation, s.Slot.Counter, s.Slot.Role.String()
		js.Lease = s.Slot.Flags&quorum.FlagLease != 0
		if s.Slot.AckKind != quorum.MsgNone {
			js.Ack = &diskMessageJSON{Kind: s.Slot.AckKind.String(), From: sender(s.Slot.AckFrom), Sequence: s.Slot.AckSequence}
		}
		js.PayloadBytes = len(s.Slot.Payload)
		if len(s.Slot.Payload) > 0 {
			m, cluster, err := heartbeat.Inspect(s.Slot.Payload)
			if err != nil {
				js.PayloadError = err.Error()
			} else {
				js.Payload = &diskHeartbeatJSON{Type: m.Type.String(), Cluster: cluster, Sender: m.Sender, Generation: m.Generation, Sequence: m.Sequence}
				var st heartbeat.Status
				if m.Type == heartbeat.TypeHeartbeat && st.UnmarshalBinary(m.Payload) == nil {
					js.Payload.Role = st.Role
				}
			}
		}
		doc.Slots = append(doc.Slots, js)
	}
	for _, m := range r.Mailboxes {
		jm := diskMailboxJSON{Index: m.Index, Node: m.Node, Sector: m.Sector}
		if m.Err != nil {
			jm.Error = m.Err.Error()
		} else {
			jm.diskMessageJSON = diskMessageJSON{Kind: m.Mailbox.Kind.String(), From: sender(m.Mailbox.From), Sequence: m.Mailbox.Sequence}
		}
		doc.Mailboxes = append(doc.Mailboxes, jm)
	}
	for _, l := range r.Lists {
		doc.Lists = append(doc.Lists, listDoc(l))
	}
	return doc
}

func listDoc(l quorum.ListReport) diskListJSON {
	jl := diskListJSON{Index: l.Index, Node: l.Node, Sector: l.Sector, Blank: l.Blank}
	for c, err := range l.CopyErrs {
		if err != nil {
			jl.CopyErrors = append(jl.CopyErrors, fmt.Sprintf("copy %d: %v", c, err))
		}
	}
	if l.Err != nil {
		jl.Error = l.Err.Error()
	}
	if l.List == nil {
		return jl
	}
	jl.Write, jl.Copy, jl.Bytes = l.List.Sequence, l.List.Copy, len(l.List.Data)
	jl.Version = smbservice.ListVersion{Epoch: l.List.Epoch, Seq: l.List.Version}.String()
	conns, err := smbservice.UnmarshalConns(l.List.Data)
	if err != nil {
		jl.Error = fmt.Sprintf("connection list of %s (write %d): %v", l.Node, l.List.Sequence, err)
	}
	jl.Count = len(conns)
	return jl
}

// errors lists the sectors that failed to decode.
func (d *diskDumpJSON) errors() []string {
	var out []string
	if d.HeaderError != "" {
		out = append(out, d.HeaderError)
	}
	for _, s := range d.Slots {
		if s.Error != "" {
			out = append(out, s.Error)
		}
	}
	for _, m := range d.Mailboxes {
		if m.Error != "" {
			out = append(out, m.Error)
		}
	}
	for _, l := range d.Lists {
		if l.Error != "" {
			out = append(out, l.Error)
		}
	}
	return out
}

func printDump(w io.Writer, d *diskDumpJSON) error {
	mode := "O_DIRECT"
	if !d.DirectIO {
		mode = "buffered"
	}
	fmt.Fprintf(w, "Device:   %s (%d bytes, block %d bytes, %s)\n", d.Device, d.Size, d.BlockSize, mode)
	if d.Header == nil {
		fmt.Fprintf(w, "Header:   BAD: %s\n", d.HeaderError)
		return nil
	}
	h := d.Header
	ms := func(v int64) string { return optDur(time.Duration(v) * time.Millisecond) }
	fmt.Fprintf(w, "Cluster:  %s\n", h.Cluster)
	fmt.Fprintf(w, "Format:   version %d, sector size %d, creation id %s\n", h.Version, h.SectorSize, h.CreationID)
	fmt.Fprintf(w, "Timing:   interval %s, watchdog %s, lease %s, message wait %s\n\n", ms(h.IntervalMS), ms(h.WatchdogMS), ms(h.LeaseMS), ms(h.MsgWaitMS))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tNODE\tSECTOR\tGENERATION\tCOUNTER\tROLE\tLEASE\tACK\tPAYLOAD")
	for _, s := range d.Slots {
		if s.Error != "" {
			fmt.Fprintf(tw, "%d\t%s\t%d\tBAD: %s\n", s.Index, s.Node, s.Sector, s.Error)
			continue
		}
		lease := "no"
		if s.Lease {
			lease = "yes"
		}
		ack := "-"
		if s.Ack != nil {
			ack = fmt.Sprintf("%s #%d from %s", s.Ack.Kind, s.Ack.Sequence, dash(s.Ack.From))
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", s.Index, s.Node, s.Sector, s.Generation, s.Counter, s.Role, lease, ack, payloadSummary(s))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "MAILBOX\tNODE\tSECTOR\tMESSAGE\tFROM\tSEQUENCE")
	for _, m := range d.Mailboxes {
		if m.Error != "" {
			fmt.Fprintf(tw, "%d\t%s\t%d\tBAD: %s\n", m.Index, m.Node, m.Sector, m.Error)
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%d\n", m.Index, m.Node, m.Sector, m.Kind, dash(m.From), m.Sequence)
	}
	if len(d.Lists) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "LIST\tNODE\tSECTOR\tWRITE\tCOPY\tVERSION\tCONNECTIONS")
	}
	for _, l := range d.Lists {
		switch {
		case l.Blank:
			fmt.Fprintf(tw, "%d\t%s\t%d\t-\t-\t-\tnever written\n", l.Index, l.Node, l.Sector)
		case l.Write == 0:
			fmt.Fprintf(tw, "%d\t%s\t%d\tBAD: %s\n", l.Index, l.Node, l.Sector, l.Error)
		case l.Error != "":
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\tBAD: %s\n", l.Index, l.Node, l.Sector, l.Write, l.Copy, l.Version, l.Error)
		default:
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\t%d (%d bytes)\n", l.Index, l.Node, l.Sector, l.Write, l.Copy, l.Version, l.Count, l.Bytes)
		}
		for _, e := range l.CopyErrors {
			if l.Write != 0 {
				fmt.Fprintf(tw, "\t\t\t\t\t\t(not whole: %s)\n", e)
			}
		}
	}
	return tw.Flush()
}

func payloadSummary(s diskSlotJSON) string {
	switch {
	case s.PayloadBytes == 0:
		return "empty"
	case s.Payload == nil:
		return fmt.Sprintf("%d bytes, not a message: %s", s.PayloadBytes, strings.TrimPrefix(s.PayloadError, "heartbeat: "))
	}
	p := s.Payload
	out := fmt.Sprintf("%s from %s, generation %d, sequence %d", p.Type, p.Sender, p.Generation, p.Sequence)
	if p.Role != "" {
		out += ", role " + p.Role
	}
	return out + " (unverified)"
}

// flagSet reports whether the flag called name was given.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
