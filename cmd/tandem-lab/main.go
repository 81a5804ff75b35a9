// Command tandem-lab builds tandem's lab — two nodes and a client in
// namespaces on one machine, with a shared disk, a serial cable, a watchdog
// and a power switch — and lets a person steer it and break it.
//
//	tandem-lab up [--name NAME]            build a lab and leave it running
//	tandem-lab status [--name NAME] [--json]
//	tandem-lab exec [--name NAME] HOST -- COMMAND [ARG...]
//	tandem-lab fault [--name NAME] HOST cut|restore public|heartbeat|serial
//	tandem-lab fault [--name NAME] HOST freeze|thaw|fail-disk|restore-disk
//	tandem-lab power [--name NAME] HOST on|off|reboot|status
//	tandem-lab down [--name NAME | --all]  tear it down, or sweep what a crashed run left
//	tandem-lab demo [--bin DIR]            run a tandem pair in a lab, power the active node off, watch the takeover
//
// HOST is a, b or client. NAME defaults to tdldemo. Needs root.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tandem-ha/tandem/testenv"
)

const defaultName = "tdldemo"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  tandem-lab up [--name NAME]
  tandem-lab status [--name NAME] [--json]
  tandem-lab exec [--name NAME] HOST -- COMMAND [ARG...]
  tandem-lab fault [--name NAME] HOST cut|restore public|heartbeat|serial
  tandem-lab fault [--name NAME] HOST freeze|thaw|fail-disk|restore-disk
  tandem-lab power [--name NAME] HOST on|off|reboot|status
  tandem-lab down [--name NAME | --all]
  tandem-lab demo [--bin DIR]
HOST is a, b or client; NAME defaults to `+defaultName+`.
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("tandem-lab "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", defaultName, "the lab's name (starts with "+testenv.Prefix+")")
	asJSON := fs.Bool("json", false, "status: print JSON")
	all := fs.Bool("all", false, "down: sweep every lab's leftovers")
	bin := fs.String("bin", "", "demo: directory holding tandemd and haclient (default: beside tandem-lab)")
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		usage(stdout)
		return 0
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := testenv.CheckName(*name); err != nil {
		fmt.Fprintf(stderr, "tandem-lab: --name: %v\n", err)
		return 2
	}
	rest := fs.Args()
	var err error
	switch cmd {
	case "up":
		err = up(*name, stdout)
	case "serve":
		err = serve(*name)
	case "status":
		err = status(*name, *asJSON, stdout)
	case "exec":
		return execIn(*name, rest, stdout, stderr)
	case "fault":
		err = fault(*name, rest, stdout)
	case "power":
		err = power(*name, rest, stdout)
	case "down":
		if *all {
			*name = ""
		}
		err = down(*name, stdout)
	case "demo":
		if *bin == "" {
			exe, _ := os.Executable()
			*bin = filepath.Dir(exe)
		}
		err = demo(stdout, *bin)
	default:
		fmt.Fprintf(stderr, "tandem-lab: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "tandem-lab %s: %v\n", cmd, err)
			usage(stderr)
			return 2
		}
		fmt.Fprintf(stderr, "tandem-lab %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func socket(name string) string { return filepath.Join(testenv.WorkDir(name), "lab.sock") }

// up starts "tandem-lab serve" in the background and waits until its lab
// answers.
func up(name string, stdout io.Writer) error {
	if _, err := testenv.Dial(socket(name), testenv.Request{Op: "status"}); err == nil {
		return fmt.Errorf("lab %s is already up (tandem-lab down --name %s first)", name, name)
	}
	if left := testenv.Leftovers(name); len(left) > 0 {
		return fmt.Errorf("lab %s left things behind (%s): run tandem-lab down --name %s", name, strings.Join(left, "; "), name)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(testenv.BaseDir, 0o755); err != nil {
		return err
	}
	logPath := testenv.WorkDir(name) + ".log"
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	srv := exec.Command(exe, "serve", "--name", name)
	srv.Stdout, srv.Stderr = logf, logf
	if err := testenv.StartDetached(name, srv); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	deadline := time.After(30 * time.Second)
	for {
		if _, err := testenv.Dial(socket(name), testenv.Request{Op: "status"}); err == nil {
			break
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("lab server exited (%v): %s", err, strings.TrimSpace(string(log)))
		case <-deadline:
			return fmt.Errorf("lab %s did not come up within 30 s; see %s", name, logPath)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return status(name, false, stdout)
}

// serve runs a lab until asked to shut down or signalled.
func serve(name string) error {
	lab, err := testenv.New(testenv.Options{Name: name})
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-lab.Done():
	case s := <-sigs:
		fmt.Fprintf(os.Stderr, "tandem-lab: %v: shutting down\n", s)
	}
	return lab.Close()
}

func status(name string, asJSON bool, stdout io.Writer) error {
	resp, err := testenv.Dial(socket(name), testenv.Request{Op: "status"})
	if err != nil {
		return err
	}
	st := resp.Status
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(stdout, "lab %s in %s (serial cable %s)\n", st.Name, st.Dir, map[bool]string{true: "cut", false: "connected"}[st.SerialCut])
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tPOWER\tPUBLIC\tHEARTBEAT\tFAULTS")
	for _, h := range st.Hosts {
		var faults []string
		for _, c := range h.Cut {
			faults = append(faults, c+" cut")
		}
		if h.Frozen {
			faults = append(faults, "frozen")
		}
		if h.DiskFailed {
			faults = append(faults, "disk failed")
		}
		if h.WatchdogFired > 0 {
			faults = append(faults, fmt.Sprintf("watchdog fired %d×", h.WatchdogFired))
		}
		hb := h.HeartbeatAddr
		if hb == "" {
			hb = "-"
		}
		f := strings.Join(faults, ", ")
		if f == "" {
			f = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, h.Power, h.PublicAddr, hb, f)
	}
	return tw.Flush()
}

func execIn(name string, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) < 2 {
		fmt.Fprintln(stderr, "tandem-lab exec: want HOST -- COMMAND [ARG...]")
		return 2
	}
	host, argv := args[0], args[1:]
	if argv[0] == "--" {
		argv = argv[1:]
	}
	cmd, err := testenv.HostCommand(name, host, argv...)
	if err != nil {
		fmt.Fprintf(stderr, "tandem-lab exec: %v\n", err)
		return 1
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		fmt.Fprintf(stderr, "tandem-lab exec: %v\n", err)
		return 1
	}
	return 0
}

func fault(name string, args []string, stdout io.Writer) error {
	if len(args) < 2 {
		return usageError{"want HOST ACTION [LINK]"}
	}
	req := testenv.Request{Op: "fault", Node: args[0], Action: args[1]}
	switch args[1] {
	case "cut", "restore":
		if len(args) != 3 {
			return usageError{args[1] + " needs a link: public, heartbeat or serial"}
		}
		req.Link = args[2]
	case "freeze", "thaw", "fail-disk", "restore-disk":
		if len(args) != 2 {
			return usageError{fmt.Sprintf("%s takes no more arguments, got %q", args[1], args[2:])}
		}
	default:
		return usageError{fmt.Sprintf("unknown fault %q", args[1])}
	}
	if _, err := testenv.Dial(socket(name), req); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s done\n", args[0], strings.TrimSpace(args[1]+" "+req.Link))
	return nil
}

func power(name string, args []string, stdout io.Writer) error {
	if len(args) != 2 {
		return usageError{"want HOST on|off|reboot|status"}
	}
	resp, err := testenv.Dial(socket(name), testenv.Request{Op: "power", Node: args[0], Action: args[1]})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: power %s\n", args[0], resp.Power)
	return nil
}

// down asks a running lab to close itself, then sweeps whatever is left,
// which is everything when the lab's server crashed.
func down(name string, stdout io.Writer) error {
	if name != "" {
		if _, err := testenv.Dial(socket(name), testenv.Request{Op: "shutdown"}); err == nil {
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := os.Stat(testenv.WorkDir(name)); os.IsNotExist(err) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			fmt.Fprintf(stdout, "lab %s closed\n", name)
		}
	}
	removed, err := testenv.Sweep(name)
	for _, r := range removed {
		fmt.Fprintf(stdout, "removed %s\n", r)
	}
	return err
}
