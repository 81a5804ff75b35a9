/*
Package failover is tandem's decision core: a pure state machine, one per
node, that decides who runs the service. Events go in, actions come out. It
starts no goroutines, does no I/O and reads no clock: the daemon feeds it
what happened and when, and carries out what it asks. Its tests run
thousands of simulated seconds in milliseconds for that reason.

# Contract

A Machine is made by New from a Config and driven by Step(now, event). now
is a monotonic reading (time.Since of the daemon's start). Events are Tick,
PeerAlive and PeerDead from the heartbeat layer, PeerMessage (a Report or
handshake message from the peer), ResourceResult from the executor,
FenceResult from the fencer, and AdminRequest from haclient. Step returns
actions to carry out in order: StartGroup, StopGroup, RestartResource,
Fence, SelfFence, Send, plus Notice, RoleChanged and AdminReply to log and
show. Results of StartGroup, StopGroup, RestartResource and Fence come back
as events, at any later time; at most one group operation and one fencing
are outstanding at a time. Status returns a snapshot for haclient status.

The Machine keeps one rule above all: at most one node holds the service,
and only that node runs the group. Holding passes from one node to the
other in exactly three ways:

  - release: the holder stops its group, then sends Release; the peer takes
    the service when it arrives and confirms with ReleaseAck. The Release is
    repeated until confirmed. Standby, takeover (a Request to the holder),
    failover, auto_failback and a resource that failed past its restart
    limit all move the service this way.
  - fencing: a node that does not hold the service and finds the peer dead
    (PeerDead, or nothing heard within initdead) fences it, retrying with
    backoff for as long as it takes, and takes the service only once the
    fencing device confirmed the peer off. A fencing once begun is carried
    through even if the peer is heard again.
  - election: when neither node holds the service, as when both start
    together, the preferred node (preferred_node, or the name that sorts
    first) takes it, once the peer reported itself quiescent after hearing
    this very run of the preferred node.

Every message names the run of the daemon it comes from and the run it is
for (Header: incarnations, the generation number the daemon bumps at every
start), and every holding carries an epoch, so that late, duplicated or
reordered messages and messages from runs that are over change nothing. A
group stop that fails is escalated to a forced stop (killing what holds the
resources) and then to SelfFence: the Machine never reports stopped while
something runs. In maintenance mode, which both nodes share, failures are
recorded but nothing is started, restarted, moved or fenced.

# Driving loop

The daemon owns the Machine in one goroutine; the heartbeat layer, the
executor, the fencer and the admin API talk to it over channels:

	m, err := failover.New(cfg)
	if err != nil {
		return err
	}
	origin := time.Now()
	ticker := time.NewTicker(m.TickInterval())
	defer ticker.Stop()
	for {
		var ev failover.Event
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
			ev = failover.Tick{}
		case alive := <-hb.PeerChanges():
			ev = failover.PeerDead{}
			if alive {
				ev = failover.PeerAlive{}
			}
		case payload := <-hb.Payloads():
			msg, err := failover.UnmarshalMessage(payload)
			if err != nil {
				badPayloads.Inc() // authenticated, yet malformed
				continue
			}
			ev = failover.PeerMessage{Message: msg}
		case ev = <-results: // ResourceResult and FenceResult from the workers below
		case req := <-admin:
			ev = req.Event
		}
		for _, a := range m.Step(time.Since(origin), ev) {
			switch a := a.(type) {
			case failover.Send:
				b, err := a.Message.MarshalBinary()
				if err == nil {
					hb.SendPayload(b)
				}
			case failover.StartGroup:
				go func() { results <- failover.ResourceResult{Op: failover.OpStart, Err: group.Start(ctx)} }()
			case failover.StopGroup:
				go func() { results <- failover.ResourceResult{Op: failover.OpStop, Err: group.Stop(ctx, a.Force)} }()
			case failover.RestartResource:
				go func() { results <- failover.ResourceResult{Op: failover.OpRestart, Resource: a.Name, Err: group.Restart(ctx, a.Name)} }()
			case failover.Fence:
				go func() { results <- fencer.Off(ctx, a.Node) }()
			case failover.SelfFence:
				selfFence(a.Reason) // reboot now, or stop feeding the watchdog
			case failover.Notice:
				log(a.Level, a.Text)
			case failover.RoleChanged:
				notifyStatus(a.To, a.Reason)
			case failover.AdminReply:
				req.Reply(a)
			}
		}
	}

Monitor failures are fed in the same way, as ResourceResult{Op: OpMonitor}.
*/
package failover
