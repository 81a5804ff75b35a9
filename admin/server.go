package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultSocket is where tandemd listens and haclient dials.
const DefaultSocket = "/run/tandem/tandemd.sock"

// MaxRequestBody bounds the body of a request, in bytes. A larger body is
// refused with 413 Request Entity Too Large.
const MaxRequestBody = 64 << 10

// Daemon is what the server asks of tandemd. Each method gets the request's
// context, which ends when the client goes away; an operation that changes
// the cluster (a move, a fencing) must not be left half done because of
// that, so a Daemon hands such work to its own loop and only waits for it
// under ctx.
//
// Errors marked with ErrInvalid, ErrNotFound, ErrConflict or ErrUnavailable
// (see Errorf), or wrapping context.DeadlineExceeded, choose the HTTP status
// (see API.md); any other error is a 500. The message goes to the client as
// is, so it should say what failed and why without repeating the
// operation's name, which haclient adds.
type Daemon interface {
	// Status returns the state of the pair. The server fills in
	// Status.Schema, a zero Status.Time, Link.LastHeardAgoMS and
	// Status.UnsafeWarning.
	Status(ctx context.Context) (Status, error)
	// Standby gives up the service: the group is stopped here and the
	// peer, if alive, takes it. It returns when the group is stopped here.
	Standby(ctx context.Context) error
	// Takeover takes the service: a live peer stops the group first, a
	// dead one is fenced. It returns when the group is started here.
	Takeover(ctx context.Context) error
	// Failover moves the service to the other node, wherever it runs now.
	// It returns when the group is started there.
	Failover(ctx context.Context) error
	// Maintenance turns maintenance mode on or off. While it is on,
	// failures are reported but not acted on.
	Maintenance(ctx context.Context, on bool) error
	// Resources returns the resource group in start order.
	Resources(ctx context.Context) ([]Resource, error)
	// Cleanup clears the failure record of the named resource; an unknown
	// name is an ErrNotFound.
	Cleanup(ctx context.Context, name string) error
	// Fence fences node now, through its configured agent or the disk.
	// It refuses the local node (ErrInvalid) unless self is true. The error
	// is nil only when the node is confirmed fenced.
	Fence(ctx context.Context, node string, self bool) (FenceReport, error)
}

// Server serves the admin API of a Daemon over a unix socket, to root only:
// the peer's credentials are read with SO_PEERCRED when each connection is
// accepted, and every request on a connection whose peer is not uid 0 (or
// the server's own uid, which is root's under tandemd) is answered with 403
// Forbidden.
type Server struct {
	daemon  Daemon
	log     *slog.Logger
	mux     *http.ServeMux
	srv     *http.Server
	allowed func(uid uint32) bool
	now     func() time.Time
}

// NewServer returns a server for d that logs to log (slog.Default() when
// nil). Serve starts it.
func NewServer(d Daemon, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	euid := uint32(os.Geteuid())
	s := &Server{
		daemon:  d,
		log:     log,
		mux:     http.NewServeMux(),
		allowed: func(uid uint32) bool { return uid == 0 || uid == euid },
		now:     time.Now,
	}
	s.routes()
	s.srv = &http.Server{
		Handler:           s,
		ConnContext:       connContext,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// Serve answers requests on l, usually from Listen, until Shutdown. It
// returns nil after Shutdown, and otherwise the error that stopped it.
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("admin: serve %s: %w", l.Addr(), err)
}

// Shutdown closes the listener, waits for the requests under way to end or
// ctx to be done, and closes the connections. Serve returns.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
}

// Listen creates the socket at path with mode 0600, and its directory with
// mode 0755 when it is missing. A socket left by a run that is gone is
// replaced; one that a process still answers on, or a file that is not a
// socket, is an error.
func Listen(path string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("admin: socket directory: %w", err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, fmt.Errorf("admin: socket directory: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("admin: socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("admin: %s exists and is not a socket (%s); not replacing it", path, fi.Mode().Type())
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("admin: %s: another process answers on it (another tandemd?)", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("admin: %s: probe existing socket: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin: remove stale socket: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("admin: socket: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin: listen: %w", err)
	}
	// Until this chmod the umask decides the mode; the SO_PEERCRED check
	// keeps anyone who connects in that instant out.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin: socket mode: %w", err)
	}
	return l, nil
}

// peer is what connContext learnt of a connection's other end.
type peer struct {
	cred *unix.Ucred
	err  error
}

type peerKey struct{}

// connContext records the peer's credentials once per connection.
func connContext(ctx context.Context, c net.Conn) context.Context {
	cred, err := peerCred(c)
	return context.WithValue(ctx, peerKey{}, peer{cred: cred, err: err})
}

// peerCred reads SO_PEERCRED of a unix socket connection.
func peerCred(c net.Conn) (*unix.Ucred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("connection from %s is not over a unix socket", c.RemoteAddr())
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	if credErr != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	return cred, nil
}

// ServeHTTP checks the peer, bounds the body and routes the request. It is
// the handler Serve uses; requests that did not come through Serve on a
// unix socket carry no credentials and are refused.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, _ := r.Context().Value(peerKey{}).(peer)
	switch {
	case p.cred == nil:
		why := p.err
		if why == nil {
			why = errors.New("no credentials recorded for the connection")
		}
		s.log.Warn("admin: refused a request", "method", r.Method, "path", r.URL.Path, "err", why)
		writeError(w, http.StatusForbidden, fmt.Sprintf("permission denied: cannot identify the client: %v", why))
		return
	case !s.allowed(p.cred.Uid):
		s.log.Warn("admin: refused a request", "method", r.Method, "path", r.URL.Path, "uid", p.cred.Uid, "pid", p.cred.Pid)
		writeError(w, http.StatusForbidden, fmt.Sprintf("permission denied: uid %d (pid %d) is not root; the admin API is for root only", p.cred.Uid, p.cred.Pid))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBody)
	s.log.Debug("admin: request", "method", r.Method, "path", r.URL.Path, "uid", p.cred.Uid, "pid", p.cred.Pid)
	s.mux.ServeHTTP(w, r)
}

// routes registers every endpoint, and for each path an answer of 405 with
// a JSON body to the other methods.
func (s *Server) routes() {
	for _, rt := range []struct {
		method, path string
		h            http.HandlerFunc
	}{
		{http.MethodGet, "/v1/status", s.status},
		{http.MethodGet, "/v1/resources", s.resources},
		{http.MethodGet, "/v1/tickles", s.tickles},
		{http.MethodPost, "/v1/standby", s.action("standby", s.daemon.Standby)},
		{http.MethodPost, "/v1/takeover", s.action("takeover", s.daemon.Takeover)},
		{http.MethodPost, "/v1/failover", s.action("failover", s.daemon.Failover)},
		{http.MethodPost, "/v1/maintenance", s.maintenance},
		{http.MethodPost, "/v1/resources/{name}/cleanup", s.cleanup},
		{http.MethodPost, "/v1/fence", s.fence},
	} {
		s.mux.Handle(rt.method+" "+rt.path, rt.h)
		s.mux.Handle(rt.path, methodNotAllowed(rt.method))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: method not allowed, use %s", r.Method, r.URL.Path, allow))
	})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.daemon.Status(r.Context())
	if err != nil {
		writeDaemonError(w, err)
		return
	}
	st.normalize(s.now())
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) resources(w http.ResponseWriter, r *http.Request) {
	rs, err := s.daemon.Resources(r.Context())
	if err != nil {
		writeDaemonError(w, err)
		return
	}
	if rs == nil {
		rs = []Resource{}
	}
	writeJSON(w, http.StatusOK, ResourceList{Schema: Schema, Resources: rs})
}

func (s *Server) action(name string, do func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := noBody(r); err != nil {
			writeError(w, statusOfBody(err), fmt.Sprintf("%s: %v", name, err))
			return
		}
		if err := do(r.Context()); err != nil {
			writeDaemonError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) maintenance(w http.ResponseWriter, r *http.Request) {
	var req MaintenanceRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, statusOfBody(err), fmt.Sprintf("maintenance: %v", err))
		return
	}
	if req.On == nil {
		writeError(w, http.StatusBadRequest, `maintenance: request body: want {"on": true} or {"on": false}, "on" is missing`)
		return
	}
	if err := s.daemon.Maintenance(r.Context(), *req.On); err != nil {
		writeDaemonError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) cleanup(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if name == "" {
		writeError(w, http.StatusBadRequest, "cleanup: no resource name in the path")
		return
	}
	if err := noBody(r); err != nil {
		writeError(w, statusOfBody(err), fmt.Sprintf("cleanup: %v", err))
		return
	}
	if err := s.daemon.Cleanup(r.Context(), name); err != nil {
		writeDaemonError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) fence(w http.ResponseWriter, r *http.Request) {
	var req FenceRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, statusOfBody(err), fmt.Sprintf("fence: %v", err))
		return
	}
	if req.Node == "" {
		writeError(w, http.StatusBadRequest, `fence: request body: "node" is missing or empty`)
		return
	}
	rep, err := s.daemon.Fence(r.Context(), req.Node, req.Self)
	if err == nil && rep.Result != FenceDone {
		// A fencing that is not confirmed must never read as a success.
		err = fmt.Errorf("%s: result %q, not %q: %s", req.Node, rep.Result, FenceDone, rep.Error)
	}
	if err != nil {
		writeDaemonError(w, err)
		return
	}
	rep.Schema = Schema
	writeJSON(w, http.StatusOK, rep)
}

// errTooLarge and errBadBody classify request body problems.
var (
	errTooLarge = fmt.Errorf("request body larger than %d bytes", MaxRequestBody)
	errBadBody  = errors.New("request body")
)

func statusOfBody(err error) int {
	if errors.Is(err, errTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// readJSON decodes exactly one JSON object into v; unknown fields and
// anything after the object are errors.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return bodyError(err)
		}
		return fmt.Errorf("%w: more than one JSON value", errBadBody)
	}
	return nil
}

// noBody makes sure a request that takes no body has none, other than
// an empty JSON object.
func noBody(r *http.Request) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	if b = bytes.TrimSpace(b); len(b) == 0 || string(b) == "{}" {
		return nil
	}
	return fmt.Errorf("%w: this endpoint takes no body", errBadBody)
}

func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return errTooLarge
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: empty, want a JSON object", errBadBody)
	default:
		return fmt.Errorf("%w: %v", errBadBody, err)
	}
}

func writeDaemonError(w http.ResponseWriter, err error) {
	writeError(w, statusOf(err), err.Error())
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorBody{Error: msg})
}

// writeJSON encodes v before writing anything, so that a failure to encode
// is still a clean 500.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		buf.Reset()
		code = http.StatusInternalServerError
		b, _ := json.Marshal(ErrorBody{Error: "encode response: " + err.Error()})
		buf.Write(append(b, '\n'))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}
