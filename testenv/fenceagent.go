package testenv

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// FenceAgentMain is the lab's power switch as a standard fence agent,
// fence_tandemlab. It speaks the fence-agents protocol: options as
// key=value lines on stdin (or -o/--action, -n/--plug, --socket on the
// command line), actions on, off, reboot, status, monitor, list, metadata
// and validate-all, and the agents' exit codes: 0 for success (and for
// status "on"), 2 for status "off", 1 for failure.
//
// The agent finds its lab's control socket next to the directory it is
// installed in (DIR/bin/fence_tandemlab talks to DIR/lab.sock), or at the
// socket option.
func FenceAgentMain(stdin io.Reader, stdout, stderr io.Writer, args []string) int {
	opts := map[string]string{"action": "reboot"}
	if len(args) == 0 {
		sc := bufio.NewScanner(stdin)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				fmt.Fprintf(stderr, "Parse error: stdin line %d: %q is not key=value\n", n, line)
				return 1
			}
			opts[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	} else if err := parseAgentArgs(args, opts); err != nil {
		fmt.Fprintf(stderr, "Parse error: %v\n", err)
		return 1
	}
	if v, ok := opts["option"]; ok { // the old name of action
		opts["action"] = v
	}
	if v, ok := opts["port"]; ok {
		opts["plug"] = v
	}
	for k := range opts {
		switch k {
		case "action", "option", "plug", "port", "socket", "nodename", "verbose", "debug":
		default:
			fmt.Fprintf(stderr, "Parse error: Ignoring unknown option '%s=%s'\n", k, opts[k])
		}
	}
	action := opts["action"]
	if action == "metadata" {
		io.WriteString(stdout, fenceMetadata)
		return 0
	}
	sock := opts["socket"]
	if sock == "" {
		sock = filepath.Join(filepath.Dir(filepath.Dir(os.Args[0])), "lab.sock")
	}
	plug := opts["plug"]
	needPlug := action != "monitor" && action != "list" && action != "validate-all"
	if needPlug && plug == "" {
		fmt.Fprintf(stderr, "Failed: You have to enter plug number or machine identification (plug=)\n")
		return 1
	}
	power := func(act string) (string, error) {
		resp, err := Dial(sock, Request{Op: "power", Node: plug, Action: act})
		return resp.Power, err
	}
	switch action {
	case "validate-all":
		return 0
	case "monitor":
		if _, err := Dial(sock, Request{Op: "status"}); err != nil {
			fmt.Fprintf(stderr, "Failed: Unable to connect/login to fencing device: %v\n", err)
			return 1
		}
		return 0
	case "list":
		for _, n := range []string{"a", "b"} {
			fmt.Fprintf(stdout, "%s,\n", n)
		}
		return 0
	case "status":
		p, err := power("status")
		if err != nil {
			fmt.Fprintf(stderr, "Failed: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "Status: %s\n", strings.ToUpper(p))
		if p == "off" {
			return 2
		}
		return 0
	case "on", "off", "reboot":
		p, err := power(action)
		if err != nil {
			fmt.Fprintf(stderr, "Failed: %v\n", err)
			return 1
		}
		want := "on"
		if action == "off" {
			want = "off"
		}
		if p != want {
			fmt.Fprintf(stderr, "Failed: Timed out waiting to power %s (power is %s)\n", strings.ToUpper(want), p)
			return 1
		}
		fmt.Fprintf(stdout, "Success: Powered %s\n", strings.ToUpper(want))
		return 0
	default:
		fmt.Fprintf(stderr, "Failed: Unrecognised action '%s'\n", action)
		return 1
	}
}

func parseAgentArgs(args []string, opts map[string]string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		key, val, hasVal := "", "", false
		switch {
		case strings.HasPrefix(a, "--"):
			key, val, hasVal = strings.Cut(a[2:], "=")
		case a == "-o" || a == "-n":
			key = map[string]string{"-o": "action", "-n": "plug"}[a]
		default:
			return fmt.Errorf("unknown argument %q", a)
		}
		if !hasVal {
			if i+1 >= len(args) {
				return fmt.Errorf("%s needs a value", a)
			}
			i++
			val = args[i]
		}
		opts[key] = val
	}
	return nil
}

const fenceMetadata = `<?xml version="1.0" ?>
<resource-agent name="fence_tandemlab" shortdesc="Fence agent for the tandem lab's power switch">
<longdesc>fence_tandemlab powers the nodes of a tandem lab off and on through the lab's control socket, as a networked power switch would.</longdesc>
<vendor-url>https://github.com/tandem-ha/tandem</vendor-url>
<parameters>
	<parameter name="action" unique="0" required="1">
		<getopt mixed="-o, --action=[action]" />
		<content type="string" default="reboot"  />
		<shortdesc lang="en">Fencing action</shortdesc>
	</parameter>
	<parameter name="plug" unique="0" required="1" obsoletes="port">
		<getopt mixed="-n, --plug=[id]" />
		<content type="string"  />
		<shortdesc lang="en">Lab node to act on: a or b</shortdesc>
	</parameter>
	<parameter name="port" unique="0" required="0" deprecated="1">
		<getopt mixed="-n, --plug=[id]" />
		<content type="string"  />
		<shortdesc lang="en">Lab node to act on: a or b</shortdesc>
	</parameter>
	<parameter name="socket" unique="0" required="0">
		<getopt mixed="--socket=[path]" />
		<content type="string"  />
		<shortdesc lang="en">The lab's control socket (default: lab.sock beside the agent's bin directory)</shortdesc>
	</parameter>
</parameters>
<actions>
	<action name="on" automatic="0"/>
	<action name="off" />
	<action name="reboot" />
	<action name="status" />
	<action name="list" />
	<action name="monitor" />
	<action name="metadata" />
	<action name="validate-all" />
</actions>
</resource-agent>
`
