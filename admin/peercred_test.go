package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dialEnv makes the test binary, run as another user, call the server on
// the socket it names and report the outcome as a dialOutcome on stdout.
const dialEnv = "TANDEM_ADMIN_TEST_DIAL"

// nobody is the uid the client runs as.
const nobody = 65534

type dialOutcome struct {
	UID         int    `json:"uid"`
	Status      int    `json:"status"`
	Unreachable bool   `json:"unreachable"`
	Message     string `json:"message"`
}

func TestMain(m *testing.M) {
	if sock := os.Getenv(dialEnv); sock != "" {
		os.Exit(dialAndReport(sock))
	}
	os.Exit(m.Run())
}

func dialAndReport(sock string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := dialOutcome{UID: os.Getuid()}
	_, err := NewClient(sock).Status(ctx)
	var ae *Error
	switch {
	case err == nil:
	case errors.As(err, &ae):
		out.Status = ae.Status
	default:
		out.Unreachable = errors.Is(err, ErrUnreachable)
	}
	if err != nil {
		out.Message = err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// runAsNobody runs a copy of this test binary, kept where uid 65534 can
// execute it, as that uid against the socket.
func runAsNobody(t *testing.T, bin, sock string) dialOutcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), dialEnv+"="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("run %s as uid %d: %v\n%s", bin, nobody, err, stderr.String())
	}
	var out dialOutcome
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("output of %s as uid %d: %v in %q", bin, nobody, err, stdout)
	}
	if out.UID != nobody {
		t.Fatalf("client ran as uid %d, want %d", out.UID, nobody)
	}
	return out
}

// copyExecutable copies the running test binary to dir with mode 0755:
// the build cache it runs from is root's only.
func copyExecutable(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "admin.test")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test runs a client as uid 65534 to check that the server refuses it")
	}
	// A directory of its own that uid 65534 can enter, outside the test's
	// private temporary directory.
	dir, err := os.MkdirTemp("", "tandem-admin-peercred-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := copyExecutable(t, dir)
	d := &fakeDaemon{status: testStatus()}
	sock := filepath.Join(dir, "tandemd.sock")
	serveAt(t, d, sock)

	// The socket's mode keeps other users from connecting at all.
	out := runAsNobody(t, bin, sock)
	if !out.Unreachable || !strings.Contains(out.Message, "permission denied") || !strings.Contains(out.Message, "root's only") {
		t.Errorf("socket mode 0600: have %+v, want unreachable, permission denied", out)
	}

	// Past the file mode, the peer credentials still keep them out.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	out = runAsNobody(t, bin, sock)
	want := fmt.Sprintf("status: permission denied: uid %d", nobody)
	if out.Status != 403 || !strings.HasPrefix(out.Message, want) || !strings.Contains(out.Message, "root only") {
		t.Errorf("socket mode 0666: have %+v, want 403 %q", out, want)
	}
	if calls := d.Calls(); len(calls) != 0 {
		t.Errorf("uid %d reached the daemon: %q", nobody, calls)
	}

	// Root, on the same socket, is served.
	if _, err := NewClient(sock).Status(context.Background()); err != nil {
		t.Errorf("root: %v", err)
	}
}
