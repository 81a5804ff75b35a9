// Package daemon is tandemd's body: it builds the heartbeat media, the
// resource group and the fencer from the configuration, and runs the loop
// that feeds the decision core (package failover) with what happens and
// carries out what it decides.
//
// The loop is the only goroutine that touches the failover.Machine. Around
// it, each kind of work runs on a goroutine of its own and reports back
// through a channel as an event:
//
//	heartbeat.Node  ─ peer alive/dead, peer messages ─┐
//	ticker          ─ Tick ───────────────────────────┤
//	executor        ─ group start/stop/restart/monitor┤──► Machine.Step ──► actions
//	fencer          ─ fence result ───────────────────┤        │
//	admin API       ─ operator requests ──────────────┘        ├─► executor (group operations, one at a time)
//	                                                           ├─► fencer   (power the peer off, confirm)
//	                                                           ├─► heartbeat (messages to the peer)
//	                                                           └─► log, status, admin replies
//
// A planned shutdown (SIGTERM) hands the service to a live peer by the
// same handshake as haclient standby, or stops the group when the peer is
// gone, before Run returns.
package daemon
