// Command haclient controls the tandemd running on this node through its
// admin socket, /run/tandem/tandemd.sock, and checks configurations.
//
// Usage:
//
//	haclient [--socket PATH] COMMAND [ARGS]
//
// The commands:
//
//	status [--json]       the pair: node roles, each heartbeat medium per peer
//	                      (up/down, last heard, late and bad packets), the
//	                      resources with state and node, the last fencing and
//	                      recent notices; a WARNING line when unsafe_no_fencing
//	                      is set or the last fencing failed
//	standby               give up the service; the peer takes it
//	takeover              take the service to this node
//	failover              move the service to the other node
//	maintenance on|off    stop or resume acting on failures
//	resources [--json]    the resources with state and node
//	cleanup NAME          clear a failed resource's record
//	fence NODE [--self]   fence a node now; the local node only with --self
//	disk init DEVICE [--force] [--config FILE]
//	                      write a fresh quorum partition for the cluster,
//	                      nodes (slots in [[node]] order) and timings of the
//	                      configuration; refuses a device holding a
//	                      filesystem, a partition table, a volume label or
//	                      another cluster's header unless --force; needs no
//	                      daemon
//	disk dump DEVICE [--json]
//	                      every sector of a quorum partition: header, each
//	                      node's status slot (counter, role, the heartbeat
//	                      it holds, unverified) and mailbox; a bad sector is
//	                      shown in its place, and the exit status is 1
//	disk clear DEVICE NODE
//	                      remove the fence message (poison pill) left in
//	                      NODE's mailbox, also when the sector is
//	                      unreadable; a node that finds a message for
//	                      itself at start runs no resources until it is
//	                      cleared; needs no daemon
//	config check [FILE]   check a configuration (default /etc/tandem/tandem.toml)
//	                      and, with testparm, the smb.conf of each smb
//	                      resource; needs no daemon
//	completion bash       print the bash completion script
//	help [COMMAND]        show the help
//
// --socket PATH is accepted before the command and among its arguments.
// --json prints the daemon's document as it sent it; its schema is described
// in admin/API.md.
//
// haclient exits with 0 when done, 1 when the operation failed (the daemon's
// message follows "haclient: COMMAND: " on stderr), 2 on a usage error, and
// 3 when tandemd cannot be reached.
package main
