package testenv

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Request is one order to a lab over its control socket, one JSON object a
// line. The fence agent and tandem-lab speak it.
type Request struct {
	// Op is "power", "fault", "status" or "shutdown".
	Op string `json:"op"`
	// Node is "a", "b" or "client".
	Node string `json:"node,omitempty"`
	// Action is, for "power": on, off, reboot or status; for "fault": cut,
	// restore, freeze, thaw, fail-disk or restore-disk.
	Action string `json:"action,omitempty"`
	// Link is, for cut and restore: public, heartbeat or serial.
	Link string `json:"link,omitempty"`
}

// Response answers a Request.
type Response struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Power is "on" or "off" after a power request.
	Power string `json:"power,omitempty"`
	// Status describes the lab, for "status".
	Status *Status `json:"status,omitempty"`
}

// Status describes a lab and its hosts.
type Status struct {
	Name  string       `json:"name"`
	Dir   string       `json:"dir"`
	Hosts []HostStatus `json:"hosts"`
	// SerialCut says whether the serial cable is cut.
	SerialCut bool `json:"serial_cut"`
}

// HostStatus describes one host.
type HostStatus struct {
	Name          string   `json:"name"`
	Power         string   `json:"power"`
	PID           int      `json:"pid,omitempty"`
	Frozen        bool     `json:"frozen,omitempty"`
	PublicAddr    string   `json:"public_addr"`
	PublicAddr6   string   `json:"public_addr6,omitempty"`
	HeartbeatAddr string   `json:"heartbeat_addr,omitempty"`
	Cut           []string `json:"cut,omitempty"`
	DiskFailed    bool     `json:"disk_failed,omitempty"`
	WatchdogArmed bool     `json:"watchdog_armed,omitempty"`
	WatchdogFired int      `json:"watchdog_fired,omitempty"`
}

// serveControl answers requests on the lab's control socket until it is
// closed. Only root may talk to it.
func (l *Lab) serveControl(ln *net.UnixListener) {
	defer l.ctlWG.Done()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		l.ctlWG.Add(1)
		go func() {
			defer l.ctlWG.Done()
			defer c.Close()
			if !peerIsRoot(c) {
				json.NewEncoder(c).Encode(Response{Error: "only root may steer the lab"})
				return
			}
			c.SetDeadline(time.Now().Add(60 * time.Second))
			sc := bufio.NewScanner(c)
			enc := json.NewEncoder(c)
			for sc.Scan() {
				var req Request
				if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
					enc.Encode(Response{Error: "bad request: " + err.Error()})
					continue
				}
				enc.Encode(l.handle(req))
				if req.Op == "shutdown" {
					l.shutdownOnce.Do(func() { close(l.shutdown) })
					return
				}
			}
		}()
	}
}

func peerIsRoot(c *net.UnixConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	rc.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	return err == nil && cred != nil && cred.Uid == 0
}

// handle carries out one request.
func (l *Lab) handle(req Request) Response {
	fail := func(err error) Response { return Response{Error: err.Error()} }
	switch req.Op {
	case "status":
		st := l.Status()
		return Response{OK: true, Status: &st}
	case "shutdown":
		return Response{OK: true}
	case "power", "fault":
	default:
		return fail(fmt.Errorf("unknown op %q (want power, fault, status or shutdown)", req.Op))
	}
	h := l.Host(req.Node)
	if h == nil {
		return fail(fmt.Errorf("unknown node %q (want a, b or client)", req.Node))
	}
	var err error
	switch req.Op + " " + req.Action {
	case "power on":
		err = l.PowerOn(h.Name)
	case "power off":
		err = l.PowerOff(h.Name)
	case "power reboot":
		if err = l.PowerOff(h.Name); err == nil {
			err = l.PowerOn(h.Name)
		}
	case "power status":
	case "fault cut", "fault restore":
		var link Link
		if link, err = ParseLink(req.Link); err == nil {
			if req.Action == "cut" {
				err = l.Cut(h.Name, link)
			} else {
				err = l.Restore(h.Name, link)
			}
		}
	case "fault freeze":
		err = l.Freeze(h.Name)
	case "fault thaw":
		err = l.Thaw(h.Name)
	case "fault fail-disk":
		err = l.FailDisk(h.Name)
	case "fault restore-disk":
		err = l.RestoreDisk(h.Name)
	default:
		err = fmt.Errorf("unknown %s action %q", req.Op, req.Action)
	}
	if err != nil {
		return fail(err)
	}
	power := "off"
	if h.Powered() {
		power = "on"
	}
	return Response{OK: true, Power: power}
}

// Dial sends one request to the lab whose control socket is at path.
func Dial(path string, req Request) (Response, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return Response{}, fmt.Errorf("testenv: lab control socket %s: %w", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(90 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Response{}, err
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return Response{}, fmt.Errorf("testenv: lab control socket %s: %w", path, err)
	}
	if !resp.OK {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

// ctlState is the part of a lab that serves its socket.
type ctlState struct {
	ctl          *net.UnixListener
	ctlWG        sync.WaitGroup
	shutdown     chan struct{}
	shutdownOnce sync.Once
}

func (l *Lab) listenControl() error {
	path := l.ControlSocket()
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("testenv: control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	l.ctl = ln
	l.shutdown = make(chan struct{})
	l.ctlWG.Add(1)
	go l.serveControl(ln)
	return nil
}

// Done is closed when a client asks the lab to shut down.
func (l *Lab) Done() <-chan struct{} { return l.shutdown }
