package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tandem-ha/tandem/admin"
	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/smbservice"
)

// Exit codes.
const (
	exitOK          = 0 // done
	exitFailed      = 1 // the operation failed, or the config has errors
	exitUsage       = 2 // unknown command, bad arguments
	exitUnreachable = 3 // tandemd could not be reached
)

// app is one run of haclient: where it writes, and what it talks to.
type app struct {
	stdout, stderr io.Writer
	// socket is tandemd's socket, from --socket.
	socket string
	// configPath is what config check reads when given no FILE.
	configPath string
	// loc is the time zone times are shown in.
	loc *time.Location
	// checkSMB checks one smb.conf.
	checkSMB func(ctx context.Context, c *smbservice.Checker, path string) ([]string, error)
}

func newApp(stdout, stderr io.Writer) *app {
	return &app{
		stdout:     stdout,
		stderr:     stderr,
		socket:     admin.DefaultSocket,
		configPath: config.DefaultPath,
		loc:        time.Local,
		checkSMB: func(ctx context.Context, c *smbservice.Checker, path string) ([]string, error) {
			return c.Check(ctx, path)
		},
	}
}

// command is one subcommand.
type command struct {
	name    string
	args    string // the synopsis after the name
	summary string
	run     func(ctx context.Context, a *app, cmd *command, args []string) error
}

// commands in the order usage lists them.
var commands []*command

func init() {
	commands = []*command{
		{"status", "[--json]", "show the pair: node roles, heartbeat media, resources, warnings", runStatus},
		{"standby", "", "give up the service; the peer takes it", runAction},
		{"takeover", "", "take the service to this node", runAction},
		{"failover", "", "move the service to the other node", runAction},
		{"maintenance", "on|off", "stop or resume acting on failures", runMaintenance},
		{"resources", "[--json]", "list the resources with state and node", runResources},
		{"cleanup", "NAME", "clear a failed resource's record", runCleanup},
		{"tickles", "[--json]", "list the client connections tracked for tickle ACKs, with the node each list is from", runTickles},
		{"fence", "NODE [--self]", "fence a node now (the local one only with --self)", runFence},
		{"disk", "init|dump|clear DEVICE [NODE]", "init [--force] [--config FILE] [--list-conns N]: write a fresh quorum partition for the configured pair; dump [--json]: show its every sector; clear DEVICE NODE: remove the fence message left for NODE", runDisk},
		{"config", "check [FILE]", "check a configuration and its smb.conf files (default " + config.DefaultPath + ")", runConfig},
		{"completion", "bash", "print the shell completion script", runCompletion},
		{"help", "[COMMAND]", "show this help, or a command's", runHelp},
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is a mistake on the command line: exit 2.
type usageError struct {
	cmd *command // nil before the command is known
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd *command, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// errReported is a failure whose details the command has printed.
var errReported = errors.New("failed")

// run runs haclient with args (without the program name) and returns the
// exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newApp(stdout, stderr).run(ctx, args)
}

func (a *app) run(ctx context.Context, args []string) int {
	fs := a.flags(nil)
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		err = usagef(nil, "%v", err)
	}
	if err == nil && fs.NArg() == 0 {
		err = usagef(nil, "no command given")
	}
	var cmd *command
	if err == nil {
		name := fs.Arg(0)
		if cmd = lookup(name); cmd == nil {
			err = usagef(nil, "unknown command %q", name)
		} else {
			err = cmd.run(ctx, a, cmd, fs.Args()[1:])
		}
	}
	return a.exit(cmd, err)
}

// exit reports err and turns it into an exit code.
func (a *app) exit(cmd *command, err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		a.usage(a.stdout, cmd)
		return exitOK
	case errors.As(err, &ue):
		prefix := "haclient: "
		if ue.cmd != nil {
			prefix += ue.cmd.name + ": "
		}
		fmt.Fprintln(a.stderr, prefix+ue.msg)
		if ue.cmd != nil {
			fmt.Fprintf(a.stderr, "usage: %s\n", synopsis(ue.cmd))
		} else {
			fmt.Fprintln(a.stderr, "run 'haclient help' for the commands")
		}
		return exitUsage
	case errors.Is(err, errReported):
		return exitFailed
	case errors.Is(err, admin.ErrUnreachable):
		fmt.Fprintln(a.stderr, "haclient: "+err.Error())
		return exitUnreachable
	default:
		fmt.Fprintln(a.stderr, "haclient: "+err.Error())
		return exitFailed
	}
}

func synopsis(c *command) string {
	s := "haclient [--socket PATH] " + c.name
	if c.args != "" {
		s += " " + c.args
	}
	return s
}

// usage prints the help of cmd, or of haclient when cmd is nil.
func (a *app) usage(w io.Writer, cmd *command) {
	if cmd != nil && cmd.name != "help" {
		fmt.Fprintf(w, "usage: %s\n\n%s.\n\n--socket PATH  tandemd's socket (default %s)\n", synopsis(cmd), cmd.summary, admin.DefaultSocket)
		return
	}
	fmt.Fprintf(w, "usage: haclient [--socket PATH] COMMAND [ARGS]\n\nhaclient controls the local tandemd, the failover manager of an SMB file server pair.\n\n")
	width := 0
	for _, c := range commands {
		width = max(width, len(strings.TrimSpace(c.name+" "+c.args)))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintf(w, "\n--socket PATH  tandemd's socket (default %s), accepted by every command\n", admin.DefaultSocket)
	fmt.Fprintf(w, "\nExit status: 0 done, 1 the operation failed, 2 bad usage, 3 tandemd unreachable.\n")
}

// flags returns a flag set for cmd with --socket, which every command
// takes, before the command as well as after it.
func (a *app) flags(cmd *command) *flag.FlagSet {
	name := "haclient"
	if cmd != nil {
		name = cmd.name
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&a.socket, "socket", a.socket, "tandemd's socket")
	return fs
}

// parse parses args with fs, flags and operands in any order ("fence beta
// --self"), and checks the number of operands.
func parse(cmd *command, fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef(cmd, "%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			operands = append(operands, rest...)
			break
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
	switch {
	case len(operands) < minArgs:
		return nil, usagef(cmd, "missing argument: want %s", cmd.args)
	case len(operands) > maxArgs:
		return nil, usagef(cmd, "unexpected argument %q", operands[maxArgs])
	}
	return operands, nil
}

func (a *app) client() *admin.Client {
	return admin.NewClient(a.socket)
}

func runStatus(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.flags(cmd)
	asJSON := fs.Bool("json", false, "print the status document as JSON")
	if _, err := parse(cmd, fs, args, 0, 0); err != nil {
		return err
	}
	return status(ctx, a.client(), a.stdout, *asJSON, a.loc)
}

// status prints the status of the pair, as a table or as the daemon's JSON.
func status(ctx context.Context, c *admin.Client, w io.Writer, asJSON bool, loc *time.Location) error {
	if asJSON {
		data, err := c.StatusJSON(ctx)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	return printStatus(w, st, loc)
}

func runResources(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.flags(cmd)
	asJSON := fs.Bool("json", false, "print the resource list as JSON")
	if _, err := parse(cmd, fs, args, 0, 0); err != nil {
		return err
	}
	return resources(ctx, a.client(), a.stdout, *asJSON)
}

// resources prints the resource group, as a table or as the daemon's JSON.
func resources(ctx context.Context, c *admin.Client, w io.Writer, asJSON bool) error {
	if asJSON {
		data, err := c.ResourcesJSON(ctx)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	rs, err := c.Resources(ctx)
	if err != nil {
		return err
	}
	return printResources(w, rs)
}

func runAction(ctx context.Context, a *app, cmd *command, args []string) error {
	if _, err := parse(cmd, a.flags(cmd), args, 0, 0); err != nil {
		return err
	}
	return action(ctx, a.client(), a.stdout, cmd.name)
}

// action asks for a move: standby, takeover or failover.
func action(ctx context.Context, c *admin.Client, w io.Writer, name string) error {
	var err error
	switch name {
	case "standby":
		err = c.Standby(ctx)
	case "takeover":
		err = c.Takeover(ctx)
	case "failover":
		err = c.Failover(ctx)
	default:
		return fmt.Errorf("%s: not a move", name)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s: done\n", name)
	return err
}

func runMaintenance(ctx context.Context, a *app, cmd *command, args []string) error {
	ops, err := parse(cmd, a.flags(cmd), args, 1, 1)
	if err != nil {
		return err
	}
	var on bool
	switch ops[0] {
	case "on":
		on = true
	case "off":
	default:
		return usagef(cmd, "argument %q: want on or off", ops[0])
	}
	return maintenance(ctx, a.client(), a.stdout, on)
}

// maintenance turns maintenance mode on or off.
func maintenance(ctx context.Context, c *admin.Client, w io.Writer, on bool) error {
	if err := c.Maintenance(ctx, on); err != nil {
		return err
	}
	if on {
		_, err := fmt.Fprintln(w, "maintenance mode on: failures are reported, not acted on")
		return err
	}
	_, err := fmt.Fprintln(w, "maintenance mode off")
	return err
}

func runCleanup(ctx context.Context, a *app, cmd *command, args []string) error {
	ops, err := parse(cmd, a.flags(cmd), args, 1, 1)
	if err != nil {
		return err
	}
	if ops[0] == "" {
		return usagef(cmd, "argument NAME: empty resource name")
	}
	return cleanup(ctx, a.client(), a.stdout, ops[0])
}

// cleanup clears the failure record of a resource.
func cleanup(ctx context.Context, c *admin.Client, w io.Writer, name string) error {
	if err := c.Cleanup(ctx, name); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "cleanup: %s: failure record cleared\n", name)
	return err
}

func runFence(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.flags(cmd)
	self := fs.Bool("self", false, "allow fencing the local node")
	ops, err := parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	if ops[0] == "" {
		return usagef(cmd, "argument NODE: empty node name")
	}
	return fence(ctx, a.client(), a.stdout, ops[0], *self)
}

// fence fences a node and prints what happened.
func fence(ctx context.Context, c *admin.Client, w io.Writer, node string, self bool) error {
	rep, err := c.Fence(ctx, node, self)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, rep.String())
	return err
}

func runConfig(ctx context.Context, a *app, cmd *command, args []string) error {
	ops, err := parse(cmd, a.flags(cmd), args, 1, 2)
	if err != nil {
		return err
	}
	if ops[0] != "check" {
		return usagef(cmd, "unknown subcommand %q: want check", ops[0])
	}
	file := a.configPath
	if len(ops) == 2 {
		file = ops[1]
	}
	return a.configCheck(ctx, file)
}

func runCompletion(_ context.Context, a *app, cmd *command, args []string) error {
	ops, err := parse(cmd, a.flags(cmd), args, 1, 1)
	if err != nil {
		return err
	}
	if ops[0] != "bash" {
		return usagef(cmd, "argument %q: no completion for that shell, only for bash", ops[0])
	}
	_, err = io.WriteString(a.stdout, bashCompletion)
	return err
}

func runHelp(_ context.Context, a *app, cmd *command, args []string) error {
	ops, err := parse(cmd, a.flags(cmd), args, 0, 1)
	if err != nil {
		return err
	}
	if len(ops) == 0 {
		a.usage(a.stdout, nil)
		return nil
	}
	c := lookup(ops[0])
	if c == nil {
		return usagef(cmd, "unknown command %q", ops[0])
	}
	a.usage(a.stdout, c)
	return nil
}
