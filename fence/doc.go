// Package fence powers the peer off and confirms it, so that the survivor
// takes over only from a node known to be down. It carries out the
// decision to fence (package failover makes it); it never decides when.
//
// A [Fencer] is anything that can fence one node: Fence returns nil only
// once the node is confirmed off. The daemon holds one per peer and retries
// a failed Fence until it succeeds; takeover waits for it.
//
// [Agent] is the Fencer for standard fence agents: the fence_* programs of
// Debian's fence-agents (fence_ipmilan, fence_redfish, fence_apc…) and the
// lab's power switch. It speaks their protocol as Pacemaker's fencer does:
// the agent runs with no arguments and reads key=value lines on standard
// input,
//
//	action=off
//	ip=198.18.9.2
//	password=…
//	username=admin
//
// and answers with its exit status: 0 for success, 1 for failure, and for
// action status 0 for on and 2 for off. Fence runs off, then status, and
// succeeds only when status says off. Secrets come from files (a parameter
// password_file=/etc/tandem/ipmi-beta passes password=<content>), never
// travel on a command line and never appear in errors. Every run has a
// timeout and its own process group, killed whole when the time is up; a
// few attempts with backoff ride out a lost request.
//
// Configuration mistakes are best found at start, not at the moment a node
// must be fenced: [Agent.Check] reads the agent's metadata (AGENT -o
// metadata) and checks the configured parameters against it, naming an
// unknown parameter and the names close to it, or a missing required one.
// [Agent.Monitor] checks that the fencing device answers, for a periodic
// check while nothing needs fencing.
//
// A daemon builds an Agent from a node's configuration:
//
//	peer := &fence.Agent{
//		Name:   "fence_ipmilan",
//		Node:   "beta",
//		Params: map[string]string{"ip": "198.18.9.2", "username": "admin", "password_file": "/etc/tandem/ipmi-beta", "lanplus": "1"},
//	}
//	if err := peer.Check(ctx); err != nil {
//		return err // refuse to start: fencing would fail when needed
//	}
//	var f fence.Fencer = peer
//	res, err := f.Fence(ctx) // err names agent, action, node, exit status and the agent's message
package fence
