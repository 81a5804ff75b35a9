package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeDaemon records the calls it gets and answers with what it is given.
type fakeDaemon struct {
	mu    sync.Mutex
	calls []string

	status    Status
	resources []Resource
	fence     FenceReport
	err       error
	block     bool // wait for the context to end before answering
}

func (d *fakeDaemon) record(ctx context.Context, call string) error {
	d.mu.Lock()
	d.calls = append(d.calls, call)
	block, err := d.block, d.err
	d.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (d *fakeDaemon) Calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

func (d *fakeDaemon) Status(ctx context.Context) (Status, error) {
	return d.status, d.record(ctx, "status")
}
func (d *fakeDaemon) Standby(ctx context.Context) error  { return d.record(ctx, "standby") }
func (d *fakeDaemon) Takeover(ctx context.Context) error { return d.record(ctx, "takeover") }
func (d *fakeDaemon) Failover(ctx context.Context) error { return d.record(ctx, "failover") }
func (d *fakeDaemon) Maintenance(ctx context.Context, on bool) error {
	return d.record(ctx, fmt.Sprintf("maintenance %v", on))
}
func (d *fakeDaemon) Resources(ctx context.Context) ([]Resource, error) {
	return d.resources, d.record(ctx, "resources")
}
func (d *fakeDaemon) Cleanup(ctx context.Context, name string) error {
	return d.record(ctx, "cleanup "+name)
}
func (d *fakeDaemon) Fence(ctx context.Context, node string, self bool) (FenceReport, error) {
	return d.fence, d.record(ctx, fmt.Sprintf("fence %s %v", node, self))
}

// serve starts a Server for d on a socket in a fresh directory and stops it
// when the test ends.
func serve(t *testing.T, d Daemon) (*Server, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "tandemd.sock")
	return serveAt(t, d, sock), sock
}

func serveAt(t *testing.T, d Daemon, sock string) *Server {
	t.Helper()
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(d, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

func testStatus() Status {
	heard := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	return Status{
		Time:    heard.Add(1500 * time.Millisecond),
		Cluster: "filer",
		Node:    "alpha",
		Nodes: []Node{
			{Name: "alpha", Local: true, Role: RoleActive},
			{Name: "beta", Role: RoleStandby, Links: []Link{
				{Medium: "udp", State: LinkUp, LastHeard: &heard, Late: 2, Bad: BadPackets{Forged: 3, Replayed: 1}},
				{Medium: "serial", State: LinkDown},
			}},
		},
		Resources: []Resource{
			{Name: "data", Type: "filesystem", State: ResourceStarted, Where: "alpha"},
			{Name: "smb", Type: "smb", State: ResourceFailed, Where: "alpha", LastError: "no NEGOTIATE answer", Failures: 3},
		},
		Maintenance:     true,
		UnsafeNoFencing: true,
		LastFence:       &FenceReport{Schema: 1, Target: "beta", Method: "fence_ipmilan", Result: FenceFailed, Started: heard, DurationMS: 1200, Error: "status still on"},
		Notices:         []Notice{{Time: heard, Level: LevelWarning, Text: "late heartbeat: 1200 ms on udp"}},
	}
}

func TestEndpoints(t *testing.T) {
	d := &fakeDaemon{
		status:    testStatus(),
		resources: testStatus().Resources,
		fence:     FenceReport{Target: "beta", Method: "fence_ipmilan", Result: FenceDone, DurationMS: 3200},
	}
	_, sock := serve(t, d)
	c := NewClient(sock)
	defer c.Close()
	ctx := context.Background()

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Schema != Schema || st.Cluster != "filer" || st.Local().Name != "alpha" || st.Peer().Role != RoleStandby {
		t.Errorf("Status: %+v", st)
	}
	l := st.Peer().Links[0]
	if l.LastHeardAgoMS == nil || *l.LastHeardAgoMS != 1500 || l.Bad.Total() != 4 {
		t.Errorf("Status: link %+v", l)
	}
	if st.UnsafeWarning != UnsafeNoFencingWarning {
		t.Errorf("Status: unsafe warning %q", st.UnsafeWarning)
	}

	rs, err := c.Resources(ctx)
	if err != nil {
		t.Fatalf("Resources: %v", err)
	}
	if !reflect.DeepEqual(rs, d.resources) {
		t.Errorf("Resources: have %+v, want %+v", rs, d.resources)
	}

	for _, call := range []func(context.Context) error{c.Standby, c.Takeover, c.Failover} {
		if err := call(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Maintenance(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := c.Maintenance(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx, "smb"); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx, "odd name/x"); err != nil {
		t.Fatal(err)
	}
	rep, err := c.Fence(ctx, "beta", false)
	if err != nil {
		t.Fatalf("Fence: %v", err)
	}
	if rep.Target != "beta" || rep.Result != FenceDone || rep.Duration() != 3200*time.Millisecond {
		t.Errorf("Fence: %+v", rep)
	}
	if _, err := c.Fence(ctx, "alpha", true); err != nil {
		t.Fatalf("Fence self: %v", err)
	}

	want := []string{"status", "resources", "standby", "takeover", "failover",
		"maintenance true", "maintenance false", "cleanup smb", "cleanup odd name/x",
		"fence beta false", "fence alpha true"}
	if got := d.Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls:\nhave %q\nwant %q", got, want)
	}
}

func TestStatusDocument(t *testing.T) {
	d := &fakeDaemon{status: Status{Cluster: "filer", Node: "alpha", Nodes: []Node{{Name: "alpha", Local: true}, {Name: "beta"}}}}
	srv, sock := serve(t, d)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	srv.now = func() time.Time { return now }
	data, err := NewClient(sock).StatusJSON(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%v in %s", err, data)
	}
	// Every documented key is present, arrays are arrays even when empty,
	// nulls are null: a reader never has to guess.
	for key, want := range map[string]any{
		"schema":            float64(1),
		"time":              "2026-05-01T12:00:00Z",
		"cluster":           "filer",
		"node":              "alpha",
		"resources":         []any{},
		"notices":           []any{},
		"maintenance":       false,
		"unsafe_no_fencing": false,
		"unsafe_warning":    "",
		"last_fence":        nil,
	} {
		if got, ok := doc[key]; !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: have %#v (present %v), want %#v", key, got, ok, want)
		}
	}
	beta := doc["nodes"].([]any)[1].(map[string]any)
	if beta["role"] != "unknown" || !reflect.DeepEqual(beta["links"], []any{}) {
		t.Errorf("peer without role or links: %v", beta)
	}
}

func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		is     error
	}{
		{Errorf(ErrInvalid, "node %q is not in the cluster", "gamma"), http.StatusBadRequest, ErrInvalid},
		{fmt.Errorf("no resource %q: %w", "x", ErrNotFound), http.StatusNotFound, ErrNotFound},
		{fmt.Errorf("a failover is under way: %w", ErrConflict), http.StatusConflict, ErrConflict},
		{fmt.Errorf("still starting: %w", ErrUnavailable), http.StatusServiceUnavailable, ErrUnavailable},
		{fmt.Errorf("stop group: %w", context.DeadlineExceeded), http.StatusGatewayTimeout, context.DeadlineExceeded},
		{errors.New("smb: stop: smbd pid 812 still running"), http.StatusInternalServerError, nil},
	} {
		d := &fakeDaemon{err: tc.err}
		_, sock := serve(t, d)
		err := NewClient(sock).Takeover(context.Background())
		var ae *Error
		if !errors.As(err, &ae) {
			t.Fatalf("%v: have %T %v, want *Error", tc.err, err, err)
		}
		if ae.Status != tc.status || ae.Op != "takeover" || ae.Message != tc.err.Error() {
			t.Errorf("%v: have %+v", tc.err, ae)
		}
		if want := "takeover: " + tc.err.Error(); err.Error() != want {
			t.Errorf("message %q, want %q", err, want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%v: errors.Is(%v) false", err, tc.is)
		}
		for _, other := range []error{ErrInvalid, ErrNotFound, ErrConflict, ErrUnavailable, ErrForbidden, ErrUnreachable} {
			if other != tc.is && errors.Is(err, other) {
				t.Errorf("%v: errors.Is(%v) true", err, other)
			}
		}
	}
}

func TestErrorf(t *testing.T) {
	cause := errors.New("unit smbd.service: no such unit")
	err := Errorf(ErrNotFound, "resource %q: %w", "smb", cause)
	if err.Error() != `resource "smb": unit smbd.service: no such unit` {
		t.Errorf("message %q", err)
	}
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, cause) || errors.Is(err, ErrConflict) {
		t.Errorf("%v: wrong kinds", err)
	}
	if statusOf(err) != http.StatusNotFound {
		t.Errorf("status %d", statusOf(err))
	}
}

func TestFenceNotConfirmedIsAnError(t *testing.T) {
	d := &fakeDaemon{fence: FenceReport{Target: "beta", Result: FenceFailed, Error: "agent timed out"}}
	_, sock := serve(t, d)
	_, err := NewClient(sock).Fence(context.Background(), "beta", false)
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusInternalServerError || !strings.Contains(ae.Message, "agent timed out") {
		t.Fatalf("have %v", err)
	}
}

// rawClient speaks HTTP to the socket without the Client's conveniences.
func rawClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
}

func TestBadRequests(t *testing.T) {
	d := &fakeDaemon{}
	_, sock := serve(t, d)
	hc := rawClient(sock)
	defer hc.CloseIdleConnections()
	big := `{"node": "` + strings.Repeat("x", MaxRequestBody) + `"}`
	for _, tc := range []struct {
		method, path, body string
		status             int
		msg                string
	}{
		{"GET", "/v1/standby", "", 405, "method not allowed, use POST"},
		{"POST", "/v1/status", "", 405, "use GET"},
		{"DELETE", "/v1/resources/smb/cleanup", "", 405, "use POST"},
		{"GET", "/v2/status", "", 404, "no endpoint GET /v2/status"},
		{"GET", "/", "", 404, "no endpoint"},
		{"POST", "/v1/maintenance", "", 400, "request body: empty"},
		{"POST", "/v1/maintenance", `{}`, 400, `"on" is missing`},
		{"POST", "/v1/maintenance", `{"on": "yes"}`, 400, "cannot unmarshal string"},
		{"POST", "/v1/maintenance", `{"on": true, "force": true}`, 400, `unknown field "force"`},
		{"POST", "/v1/maintenance", `{"on": true} {"on": false}`, 400, "more than one JSON value"},
		{"POST", "/v1/fence", `{"self": true}`, 400, `"node" is missing`},
		{"POST", "/v1/fence", big, 413, "larger than"},
		{"POST", "/v1/standby", `{"now": true}`, 400, "takes no body"},
		{"POST", "/v1/takeover", strings.Repeat(" ", MaxRequestBody+1), 413, "larger than"},
	} {
		req, err := http.NewRequest(tc.method, "http://tandemd"+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var eb ErrorBody
		if err := json.Unmarshal(data, &eb); err != nil {
			t.Errorf("%s %s: body %q is not an error document: %v", tc.method, tc.path, data, err)
		}
		if resp.StatusCode != tc.status || !strings.Contains(eb.Error, tc.msg) {
			t.Errorf("%s %s %.40q: have %d %q, want %d containing %q", tc.method, tc.path, tc.body, resp.StatusCode, eb.Error, tc.status, tc.msg)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
		}
	}
	if calls := d.Calls(); len(calls) != 0 {
		t.Errorf("bad requests reached the daemon: %q", calls)
	}
}

func TestForbidden(t *testing.T) {
	d := &fakeDaemon{}
	srv, sock := serve(t, d)
	srv.allowed = func(uint32) bool { return false }
	err := NewClient(sock).Failover(context.Background())
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("have %v, want ErrForbidden", err)
	}
	want := fmt.Sprintf("failover: permission denied: uid %d (pid %d) is not root", os.Getuid(), os.Getpid())
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("have %q, want it to start with %q", err, want)
	}
	if calls := d.Calls(); len(calls) != 0 {
		t.Errorf("a refused request reached the daemon: %q", calls)
	}
}

func TestNotOverUnixSocket(t *testing.T) {
	srv := NewServer(&fakeDaemon{}, slog.New(slog.DiscardHandler))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no TCP loopback: %v", err)
	}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())
	resp, err := http.Get("http://" + l.Addr().String() + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(data), "not over a unix socket") {
		t.Errorf("have %d %s", resp.StatusCode, data)
	}
}

func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	_, err := NewClient(missing).Status(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("have %T %v, want *UnreachableError", err, err)
	}
	for _, want := range []string{"status: ", missing, "is tandemd running?", "no such file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}

	// A socket nobody listens on any more.
	dead := filepath.Join(dir, "dead.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: dead, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	err = NewClient(dead).Standby(context.Background())
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("have %v", err)
	}
}

func TestClientTimeout(t *testing.T) {
	d := &fakeDaemon{block: true}
	_, sock := serve(t, d)
	c := &Client{Socket: sock, Timeout: 50 * time.Millisecond}
	err := c.Takeover(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("have %v, want a deadline error", err)
	}
	if !strings.Contains(err.Error(), "takeover: no answer from tandemd at "+sock) {
		t.Errorf("message %q", err)
	}
}

func TestClientSchemaCheck(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"schema": 2, "cluster": "filer"}`)
	})}
	go hs.Serve(l)
	defer hs.Close()
	_, err = NewClient(sock).Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "schema 2, this client reads schema 1") {
		t.Errorf("have %v", err)
	}
	// The raw document is still there for whoever can read it.
	if data, err := NewClient(sock).StatusJSON(context.Background()); err != nil || !strings.Contains(string(data), `"schema": 2`) {
		t.Errorf("StatusJSON: %s, %v", data, err)
	}
}

func TestListen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "tandem")
	sock := filepath.Join(dir, "tandemd.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: os.ModeDir | 0o755, sock: os.ModeSocket | 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}

	// While it listens, a second daemon must not take the socket over.
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "another process answers") {
		t.Errorf("second Listen: %v", err)
	}

	// A socket left behind by a crash is replaced.
	l.SetUnlinkOnClose(false)
	l.Close()
	l, err = Listen(sock)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	l.Close()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}

	// Anything else in the way is left alone.
	if err := os.WriteFile(sock, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("over a regular file: %v", err)
	}
	if data, _ := os.ReadFile(sock); string(data) != "data" {
		t.Errorf("regular file changed: %q", data)
	}
}

func TestShutdownRemovesSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "tandemd.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(&fakeDaemon{}, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	if _, err := NewClient(sock).Resources(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after Shutdown: %v", err)
	}
}

func TestFenceReportString(t *testing.T) {
	for _, tc := range []struct {
		r    FenceReport
		want string
	}{
		{FenceReport{Target: "beta", Method: "fence_ipmilan", Result: FenceDone, DurationMS: 3200}, "fencing of beta by fence_ipmilan done in 3.2s"},
		{FenceReport{Target: "beta", Method: "disk", Result: FenceRunning, DurationMS: 500}, "fencing of beta by disk running for 500ms"},
		{FenceReport{Target: "beta", Result: FenceFailed, DurationMS: 12100, Error: "status still on"}, "fencing of beta failed after 12.1s: status still on"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("have %q, want %q", got, tc.want)
		}
	}
}
