// Package smbservice runs Samba's smbd for a failover pair and tells whether
// it serves.
//
// # Serving, not running
//
// A process that exists is not a file service. smbd can be alive and frozen
// — the kernel still completes TCP connects to it — or not yet listening
// although systemd says it started. So readiness and health are judged the
// way a client would: an SMB2 NEGOTIATE sent to the floating address and
// answered in full. Negotiate and NegotiateConn speak that one exchange with
// a small hand-written codec: a 112-byte request offering dialects 2.0.2 to
// 3.0.2, and a strict parser for the reply (ParseReply) whose errors give the
// offset and field at fault.
//
// The answer carries the server GUID, which Samba derives from the netbios
// name: both nodes configured alike show the same GUID, and a different one
// on the floating address means another server answers there.
//
// # Supervision
//
// A Supervisor runs smbd. Process, the one here, starts
//
//	smbd --foreground --no-process-group --debug-stdout -s CONFIG
//
// in a session of its own (smbd signals its whole process group when it
// exits), logs its output at a bounded rate, and records the main pid and
// start time under the run directory so that a restarted tandemd finds the
// smbd it started before and makes sure it is that smbd before it signals
// anything. Stopping sends SIGTERM, waits, then sends SIGKILL to every
// process left of the instance, children forked per client included, and
// succeeds only when none remains.
//
// # The smb resource
//
// Resource implements resources.Resource on top:
//
//	r, err := smbservice.New(smbservice.Params{
//		Name:    "smb",
//		Config:  "/etc/samba/smb.conf",
//		Address: netip.MustParseAddr("198.18.0.50"), // the floating IP
//	})
//	err = r.Validate(ctx) // smbd, smb.conf, testparm, failover-pair rules
//	err = r.Start(ctx)    // returns once NEGOTIATE is answered
//	err = r.Monitor(ctx)  // nil, resources.ErrStopped, or why it failed
//	err = r.Stop(ctx)     // nil only when no smbd is left and nothing listens
//
// Start after the floating address is up: with "bind interfaces only",
// smbd refuses to start when none of its addresses exists.
//
// # Checking smb.conf
//
// CheckConfig and Checker run testparm and read what it says on stderr —
// testparm exits 0 when it ignores an unknown parameter — pointing each
// complaint at its line, then check the settings a failover pair depends on:
// "bind interfaces only", the floating address in "interfaces", the shared
// state and private directories apart from the local lock, cache and pid
// directories, and an explicit "netbios name".
//
// # Clients back at once: tickles and resets
//
// A client of a node that died waits on its dead connection until a timeout
// — a minute for Windows, hours for an idle socket. A Tracker lists the
// established connections to the floating addresses on the SMB ports from
// sock_diag, one dump per Poll in the namespace it is given, IPv4 clients
// of dual-stack listeners unmapped, and reports what came and went; the
// list has a text form per Conn and a compact, versioned, checksummed
// binary form (MarshalConns, UnmarshalConns) for copies kept elsewhere.
// After a takeover a Tickler sends each known client a tickle ACK, sequence
// and acknowledgement 0, from the floating address and port over raw
// sockets, in rounds a little over a second apart: the client answers with
// its real ACK, the new node's kernel answers that with a RST, and the
// client reconnects. On a planned release, Reset destroys the server
// sockets through sock_diag instead, so clients reconnect at once.
package smbservice
