package daemon

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tandem-ha/tandem/failover"
	"github.com/tandem-ha/tandem/resources"
)

// job is one operation on the group.
type job struct {
	op       failover.ResourceOp
	force    bool   // OpStop: kill holders first
	resource string // OpRestart: the resource to restart
}

// executor carries out group operations one at a time, in the order they
// were asked for, off the loop, and reports each as a ResourceResult.
type executor struct {
	group *resources.Group
	out   chan<- any
	log   *slog.Logger
	done  chan struct{}

	mu      sync.Mutex
	queue   []job
	running bool
	wg      sync.WaitGroup
}

func newExecutor(g *resources.Group, out chan<- any, log *slog.Logger) *executor {
	return &executor{group: g, out: out, log: log, done: make(chan struct{})}
}

func (e *executor) submit(j job) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.queue = append(e.queue, j)
	if !e.running {
		e.running = true
		e.wg.Add(1)
		go e.work()
	}
}

// busy reports whether an operation is running or waiting.
func (e *executor) busy() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.running
}

func (e *executor) work() {
	defer e.wg.Done()
	for {
		e.mu.Lock()
		if len(e.queue) == 0 {
			e.running = false
			e.mu.Unlock()
			return
		}
		j := e.queue[0]
		e.queue = e.queue[1:]
		e.mu.Unlock()
		if res, report := e.run(j); report {
			select {
			case e.out <- res:
			case <-e.done:
				return
			}
		}
	}
}

// run carries out one job. Monitors report failures only.
func (e *executor) run(j job) (failover.ResourceResult, bool) {
	ctx := context.Background()
	var err error
	switch j.op {
	case failover.OpStart:
		err = e.group.Start(ctx)
	case failover.OpStop:
		if j.force {
			err = e.group.ForceStop(ctx)
		} else {
			err = e.group.Stop(ctx)
		}
	case failover.OpRestart:
		err = e.group.Restart(ctx, j.resource)
	case failover.OpMonitor:
		err = e.group.Monitor(ctx)
		if err == nil {
			return failover.ResourceResult{}, false
		}
	}
	if err != nil {
		e.log.Warn("group operation failed", "op", j.op.String(), "err", err)
	}
	return failover.ResourceResult{Op: j.op, Resource: failedResource(err, j.resource), Err: err}, true
}

// failedResource names the resource an error is about.
func failedResource(err error, fallback string) string {
	var se *resources.StartError
	if errors.As(err, &se) && se.Failed != nil {
		return se.Failed.Resource
	}
	var oe *resources.OpError
	if errors.As(err, &oe) {
		return oe.Resource
	}
	return fallback
}

// close stops reporting; an operation under way runs to its end.
func (e *executor) close() {
	close(e.done)
	e.wg.Wait()
}

// rebootNow restarts the machine at once, without stopping anything: the
// last resort when the group cannot be stopped. Inside a pid namespace the
// kernel ends that namespace instead, which is what a lab node's reboot is.
func rebootNow() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}
