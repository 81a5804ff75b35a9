// Package admin is tandemd's administrative API and its client: HTTP with
// JSON bodies over a unix socket, /run/tandem/tandemd.sock by default.
// haclient is its main user; anything that speaks HTTP over a unix socket
// can use it too:
//
//	curl --unix-socket /run/tandem/tandemd.sock http://tandemd/v1/status
//
// # Who may call
//
// The socket is created with mode 0600 and owned by root, and the server
// also reads each connection's peer credentials (SO_PEERCRED) and answers
// 403 Forbidden to any process that is not root. The two checks guard
// different things: the file mode keeps others from connecting, the
// credentials keep out whoever connected anyway (a descriptor passed on,
// the instant between bind and chmod).
//
// # Endpoints
//
//	GET  /v1/status                    Status
//	GET  /v1/resources                 ResourceList
//	POST /v1/standby                   204
//	POST /v1/takeover                  204
//	POST /v1/failover                  204
//	POST /v1/maintenance               MaintenanceRequest in, 204
//	POST /v1/resources/{name}/cleanup  204
//	POST /v1/fence                     FenceRequest in, FenceReport out
//
// Every error is answered with {"error": "..."} and a status chosen by the
// error the Daemon returns (ErrInvalid, ErrNotFound, ErrConflict,
// ErrUnavailable). API.md in this directory describes each endpoint and
// every field; the documents carry "schema": Schema, so that readers of
// haclient status --json can tell when the format changed.
//
// # Serving
//
// tandemd implements Daemon and runs:
//
//	l, err := admin.Listen(admin.DefaultSocket)
//	if err != nil {
//		return err
//	}
//	srv := admin.NewServer(daemon, logger)
//	go func() { errc <- srv.Serve(l) }()
//	...
//	srv.Shutdown(ctx) // on exit: Serve returns nil, the socket is removed
//
// # Calling
//
//	c := admin.NewClient(admin.DefaultSocket)
//	st, err := c.Status(ctx)
//	if errors.Is(err, admin.ErrUnreachable) {
//		// tandemd is not running, or the caller is not root
//	}
package admin
