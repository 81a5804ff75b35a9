package fence

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// waitDelay is how long Wait waits for output pipes after the agent exited
// or was killed: something it started may hold them open.
const waitDelay = 2 * time.Second

// ownGroup makes cmd the leader of a process group of its own, and has a
// cancelled context kill that whole group: the programs an agent starts
// (ipmitool, ssh) die with it instead of outliving the timeout.
func ownGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// A session leader already leads its own group, and may not call
	// setpgid.
	if !cmd.SysProcAttr.Setsid {
		cmd.SysProcAttr.Setpgid = true
		cmd.SysProcAttr.Pgid = 0
	}
	cmd.Cancel = func() error {
		// The leader is not yet reaped here, so its pid still names the
		// group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitDelay
}

// headBuffer keeps the first max bytes written to it and drops the rest.
type headBuffer struct {
	bytes.Buffer
	max       int
	truncated bool
}

func (b *headBuffer) Write(p []byte) (int, error) {
	room := b.max - b.Len()
	if len(p) > room {
		b.truncated = true
	}
	if room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Lines returns the whole lines kept: a line cut short could end in the
// first part of a secret, which redaction would not recognise.
func (b *headBuffer) Lines() string {
	s := b.String()
	if b.truncated {
		if i := strings.LastIndexByte(s, '\n'); i >= 0 {
			return s[:i+1]
		}
		return ""
	}
	return s
}

// tailBuffer keeps about the last max bytes written to it.
type tailBuffer struct {
	buf       []byte
	max       int
	truncated bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
		b.truncated = true
	}
	return len(p), nil
}

// Lines returns the whole lines kept, for the reason headBuffer.Lines
// gives: the first line kept may have lost its start.
func (b *tailBuffer) Lines() string {
	s := b.buf
	if len(s) > b.max {
		s, b.truncated = s[len(s)-b.max:], true
	}
	if b.truncated {
		i := bytes.IndexByte(s, '\n')
		if i < 0 {
			return ""
		}
		s = s[i+1:]
	}
	return string(s)
}

var (
	// pyWarning is a Python warning line, such as fence-agents' own
	// "fence_ipmilan:5: DeprecationWarning: 'pipes' is deprecated"; the
	// next line, indented, quotes the source.
	pyWarning = regexp.MustCompile(`^\S+:\d+: [A-Za-z]*Warning: `)
	// logStamp is the time stamp fence-agents' logging puts first.
	logStamp = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ `)
)

// maxComplaint bounds the agent's complaint in an error message.
const maxComplaint = 1000

// condense turns an agent's standard error into one line for an error
// message: Python warnings and empty lines dropped, time stamps cut, lines
// joined by "; ", and only the end kept when it is long.
func condense(s string) string {
	var lines []string
	skipQuote := false
	for _, line := range strings.Split(s, "\n") {
		if skipQuote && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) {
			skipQuote = false
			continue
		}
		skipQuote = false
		if pyWarning.MatchString(line) {
			skipQuote = true
			continue
		}
		line = strings.TrimSpace(logStamp.ReplaceAllString(line, ""))
		if line != "" {
			lines = append(lines, line)
		}
	}
	out := strings.Join(lines, "; ")
	if len(out) > maxComplaint {
		out = "…" + out[len(out)-maxComplaint:]
	}
	return out
}
