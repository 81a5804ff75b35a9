// Command tandemd runs one node of a tandem pair: it watches the peer over
// the heartbeat media, holds or takes over the service, and answers
// haclient on /run/tandem/tandemd.sock.
//
//	tandemd [--config FILE] [--node NAME] [--log-level LEVEL] [--log-format text|json]
//
// SIGTERM or SIGINT hands the service to a live peer (or stops it) and
// exits. Under systemd (NOTIFY_SOCKET set) it reports READY=1, STATUS= and
// STOPPING=1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	sdaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/tandem-ha/tandem/admin"
	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/daemon"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("tandemd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", config.DefaultPath, "configuration file")
	node := fs.String("node", "", "this node's name (default: the host name)")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	format := fs.String("log-format", "text", "log format: text or json")
	stateDir := fs.String("state-dir", daemon.DefaultStateDir, "directory for the generation counter")
	runDir := fs.String("run-dir", daemon.DefaultRunDir, "directory for the admin socket and pid files")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tandemd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "tandemd: --log-level %q: want debug, info, warn or error\n", *level)
		return 2
	}
	var handler slog.Handler
	switch *format {
	case "text":
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})
	case "json":
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl})
	default:
		fmt.Fprintf(stderr, "tandemd: --log-format %q: want text or json\n", *format)
		return 2
	}
	log := slog.New(handler)

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "tandemd: refusing to start: %v\n", err)
		return 1
	}
	notify := func(state string) {
		if _, err := sdaemon.SdNotify(false, state); err != nil {
			log.Warn("sd_notify", "err", err)
		}
	}
	d, err := daemon.New(cfg, daemon.Options{
		Node: *node, StateDir: *stateDir, RunDir: *runDir, Logger: log, Notify: notify,
	})
	if err != nil {
		fmt.Fprintf(stderr, "tandemd: refusing to start: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	ln, err := admin.Listen(filepath.Join(*runDir, "tandemd.sock"))
	if err != nil {
		fmt.Fprintf(stderr, "tandemd: refusing to start: %v\n", err)
		return 1
	}
	srv := admin.NewServer(d, log)
	go srv.Serve(ln)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("tandemd started", "config", *cfgPath, "node", d.Node())
	if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("tandemd stopped", "err", err)
		return 1
	}
	log.Info("tandemd stopped")
	return 0
}
