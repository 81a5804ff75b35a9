package smbservice

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Checker checks an smb.conf: first with testparm, whose complaints it reads
// from stderr (testparm exits 0 even when it ignores unknown parameters),
// then against what a failover pair needs:
//
//   - "bind interfaces only = yes", so smbd binds nothing but what
//     "interfaces" lists;
//   - the floating address in "interfaces" (when Address is set), and, with
//     multichannel on, nothing else there: clients must not learn the
//     node's own addresses;
//   - "state directory" and "private dir" apart from the lock, cache and
//     pid directories, which stay local while the first two move with the
//     shared disk (under SharedDir, when set);
//   - an explicit "netbios name": left to default, it is the host name,
//     different on each node, and so is the server GUID it seeds.
//
// The zero Checker runs "testparm" from PATH and checks what it can without
// the floating address and the shared mount point.
type Checker struct {
	// Testparm is the testparm binary; "testparm" from PATH when empty.
	Testparm string
	// Address is the floating address; unset, "interfaces" is only
	// checked to be non-empty.
	Address netip.Addr
	// SharedDir is the shared filesystem's mount point, or empty.
	SharedDir string
}

// CheckConfig checks the smb.conf at path with the zero Checker. Problems
// make a *ConfigError; warnings ("path:line: text") are worth showing but
// do not make the file unfit.
func CheckConfig(ctx context.Context, path string) (warnings []string, err error) {
	return (&Checker{}).Check(ctx, path)
}

// Problem is one thing wrong in an smb.conf.
type Problem struct {
	// Line is the 1-based line in the file, or 0 when no line of the file
	// itself is at fault (a default, an included file).
	Line int
	// Text says what is wrong.
	Text string
}

// ConfigError lists the problems of one smb.conf.
type ConfigError struct {
	// Path is the smb.conf checked.
	Path string
	// Problems are in the order found.
	Problems []Problem
}

// Error lists the problems, one per line when there are several, each as
// "path:line: text".
func (e *ConfigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "smb.conf %s: ", e.Path)
	if len(e.Problems) > 1 {
		fmt.Fprintf(&b, "%d problems:", len(e.Problems))
	}
	for i, p := range e.Problems {
		if len(e.Problems) > 1 {
			b.WriteString("\n  ")
		} else if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(position(e.Path, p.Line) + p.Text)
	}
	return b.String()
}

// position prefixes a message with "path:line: ", or "path: " for line 0.
func position(path string, line int) string {
	if line == 0 {
		return path + ": "
	}
	return fmt.Sprintf("%s:%d: ", path, line)
}

// Check checks the smb.conf at path. It returns the warnings, and a
// *ConfigError listing the problems if there are any; other errors say that
// the check itself could not run.
func (c *Checker) Check(ctx context.Context, path string) (warnings []string, err error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("smb.conf: %w", err)
	}
	r := report{path: path, file: parseConf(src)}
	for _, s := range r.file.syntax {
		r.problem(s.Line, "%s", s.Text)
	}
	tp := c.Testparm
	if tp == "" {
		tp = "testparm"
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tp, "--suppress-prompt", "--verbose", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var exit *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exit) {
		return nil, fmt.Errorf("smb.conf %s: run %s: %w", path, tp, runErr)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("smb.conf %s: %s: %w", path, tp, ctx.Err())
	}
	refused := r.testparm(stderr.Bytes(), c.SharedDir)
	if exit != nil && !refused && len(r.problems) == 0 && !r.excused {
		r.problem(0, "testparm exited with status %d: %s", exit.ExitCode(), strings.TrimSpace(stderr.String()))
	}
	if g, ok := effectiveGlobals(stdout.Bytes()); ok {
		r.pair(g, c)
	}
	if len(r.problems) > 0 {
		return r.warnings, &ConfigError{Path: path, Problems: r.problems}
	}
	return r.warnings, nil
}

// report gathers what a check finds.
type report struct {
	path     string
	file     conf
	problems []Problem
	warnings []string
	excused  bool // testparm's failure came from directories on the unmounted shared disk
}

func (r *report) problem(line int, format string, args ...any) {
	r.problems = append(r.problems, Problem{Line: line, Text: fmt.Sprintf(format, args...)})
}

func (r *report) warn(line int, format string, args ...any) {
	r.warnings = append(r.warnings, position(r.path, line)+fmt.Sprintf(format, args...))
}

// What testparm says on stderr, as Samba 4.17 words it.
var (
	reUnknown    = regexp.MustCompile(`^(?:Unknown parameter encountered|Ignoring unknown parameter):? "(.*)"$`)
	reBadValue   = regexp.MustCompile(`^set_variable_helper\((.*)\): value is (not .*?)!?$`)
	reInvalid    = regexp.MustCompile(`^WARNING: Ignoring invalid value '(.*)' for parameter '(.*)'$`)
	reGlobalInSh = regexp.MustCompile(`^Global parameter (.*) found in service section!?$`)
	reNoDir      = regexp.MustCompile(`^ERROR: (.+?) (/.*) does not exist$`)
	reQuoted     = regexp.MustCompile(`'([^']+)'|"([^"]+)"`)
	reNoise      = regexp.MustCompile(`^(Load smb config files from |Loaded services file OK|Weak crypto is allowed|Server role: |Press enter)`)
)

// testparm turns testparm's stderr into problems and warnings, each with
// the line of the file it concerns where the file shows it. It reports
// whether testparm refused to load the file at all.
func (r *report) testparm(stderr []byte, shared string) (refused bool) {
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || reNoise.MatchString(line) || seen[line] {
			continue
		}
		seen[line] = true
		switch m := []string(nil); {
		case line == "Error loading services.":
			refused = true
		case match(reUnknown, line, &m):
			if key := "unknown " + norm(m[1]); !seen[key] {
				seen[key] = true
				r.problem(r.file.lineOf(m[1], ""), "unknown parameter %q (smbd ignores it)", m[1])
			}
		case match(reBadValue, line, &m):
			n, name := r.file.lineOfValue(m[1])
			if name != "" {
				r.problem(n, "parameter %q: value %q is %s", name, m[1], m[2])
			} else {
				r.problem(n, "value %q is %s", m[1], m[2])
			}
		case match(reInvalid, line, &m):
			r.problem(r.file.lineOf(m[2], m[1]), "parameter %q: invalid value %q", m[2], m[1])
		case match(reGlobalInSh, line, &m):
			r.warn(r.file.lineInShare(m[1]), "global parameter %q in a share section has no effect there", m[1])
		case match(reNoDir, line, &m) && shared != "" && under(m[2], shared):
			// Normal on the node that does not hold the shared disk.
			r.excused = true
			r.warn(r.file.lineOf(m[1], m[2]), "%s %s does not exist (on the shared disk, not mounted here?)", m[1], m[2])
		case strings.HasPrefix(line, "ERROR:"), strings.HasPrefix(line, "Error:"):
			r.problem(r.lineIn(line), "testparm: %s", strings.TrimSpace(line[len("ERROR:"):]))
		case strings.HasPrefix(line, "WARNING:"):
			r.warn(r.lineIn(line), "testparm: %s", strings.TrimSpace(line[len("WARNING:"):]))
		default:
			r.warn(r.lineIn(line), "testparm: %s", line)
		}
	}
	if refused && len(r.problems) == 0 {
		r.problem(0, "testparm could not load the file (a malformed line or an include that fails?)")
	}
	return refused
}

// lineIn finds the line of the file whose parameter a free-text message
// names in quotes, such as "the 'passwd program' (/bin/false) requires".
func (r *report) lineIn(msg string) int {
	for _, q := range reQuoted.FindAllStringSubmatch(msg, -1) {
		if n := r.file.lineOf(q[1]+q[2], ""); n > 0 {
			return n
		}
	}
	return 0
}

func match(re *regexp.Regexp, s string, m *[]string) bool {
	*m = re.FindStringSubmatch(s)
	return *m != nil
}

// pair checks the effective global settings against the needs of a failover
// pair.
func (r *report) pair(g map[string]string, c *Checker) {
	if !isTrue(g["bind interfaces only"]) {
		r.problem(r.file.lineOf("bind interfaces only", ""), "\"bind interfaces only\" is %q: a failover pair needs yes, so that smbd binds only the floating address", g["bind interfaces only"])
	}
	ifaces := strings.FieldsFunc(g["interfaces"], func(c rune) bool { return c == ',' || c == ' ' || c == '\t' })
	ifLine := r.file.lineOf("interfaces", "")
	switch {
	case len(ifaces) == 0:
		r.problem(ifLine, "\"interfaces\" is empty: it must list the floating address")
	case c.Address.IsValid():
		var others []string
		found := false
		for _, e := range ifaces {
			if ifaceAddr(e) == c.Address.Unmap() {
				found = true
			} else {
				others = append(others, e)
			}
		}
		if !found {
			r.problem(ifLine, "\"interfaces\" = %q does not list the floating address %s", g["interfaces"], c.Address)
		}
		if found && len(others) > 0 && isTrue(g["server multi channel support"]) {
			r.problem(r.file.lineOf("server multi channel support", ""),
				"multichannel is on and \"interfaces\" lists %s beside the floating address: clients would learn addresses that do not move; turn \"server multi channel support\" off or list only %s",
				strings.Join(others, ", "), c.Address)
		}
	}
	local := []string{"lock directory", "cache directory", "pid directory"}
	for _, moving := range []string{"state directory", "private dir"} {
		m := g[moving]
		for _, l := range local {
			d := g[l]
			if m == "" || d == "" {
				continue
			}
			switch {
			case filepath.Clean(m) == filepath.Clean(d):
				r.problem(r.file.lineOf(moving, ""), "%q and %q are both %s: the first moves with the shared disk, the second must stay local", moving, l, m)
			case under(m, d):
				r.problem(r.file.lineOf(moving, ""), "%q %s lies inside %q %s: the first moves with the shared disk, the second must stay local", moving, m, l, d)
			case under(d, m):
				r.problem(r.file.lineOf(l, ""), "%q %s lies inside %q %s: the first must stay local, the second moves with the shared disk", l, d, moving, m)
			}
		}
		if c.SharedDir != "" && m != "" && !under(m, c.SharedDir) {
			r.warn(r.file.lineOf(moving, ""), "%q %s is not under the shared mount point %s: the peer will not see its contents after a takeover", moving, m, c.SharedDir)
		}
	}
	if c.SharedDir != "" {
		for _, l := range local {
			if d := g[l]; d != "" && under(d, c.SharedDir) {
				r.problem(r.file.lineOf(l, ""), "%q %s is on the shared disk (%s): it must stay local", l, d, c.SharedDir)
			}
		}
	}
	if r.file.lineOf("netbios name", "") == 0 {
		r.warn(0, "\"netbios name\" is not set, so it is this host's name (%s): set the same name on both nodes, so that clients see one server with one server GUID", g["netbios name"])
	}
}

// ifaceAddr returns the address of an "interfaces" entry such as
// "198.18.0.50", "198.18.0.50/24" or "198.18.0.50;speed=1000000000", or
// the zero Addr for an interface name.
func ifaceAddr(entry string) netip.Addr {
	entry, _, _ = strings.Cut(entry, ";")
	entry, _, _ = strings.Cut(entry, "/")
	a, err := netip.ParseAddr(entry)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// under reports whether path is dir or lies inside it.
func under(path, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func isTrue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "yes", "true", "on", "1":
		return true
	}
	return false
}

// effectiveGlobals reads the [global] section testparm prints on stdout:
// with --verbose, every global parameter with its effective value.
func effectiveGlobals(stdout []byte) (map[string]string, bool) {
	g := map[string]string{}
	in, found := false, false
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			in = strings.EqualFold(line, "[global]")
			found = found || in
			continue
		}
		if k, v, ok := strings.Cut(line, "="); in && ok {
			g[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return g, found
}

// conf is the line structure of an smb.conf, for pointing at lines.
type conf struct {
	params []confParam
	syntax []Problem // lines that are neither a section, a parameter nor a comment
}

type confParam struct {
	line    int
	section string // normalised; "global" before any section header
	name    string // normalised
	raw     string // as written
	value   string
}

// norm normalises a section or parameter name as Samba compares them: case
// and white space do not count.
func norm(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), "")
}

// parseConf reads the lines of an smb.conf as Samba's parser does: "#" and
// ";" start comments, a trailing "\" continues a line, "[name]" opens a
// section, "name = value" sets a parameter. Lines Samba would silently skip
// are reported as syntax problems.
func parseConf(src []byte) conf {
	var c conf
	section := "global"
	lines := strings.Split(string(src), "\n")
	for i := 0; i < len(lines); i++ {
		n := i + 1
		text := strings.TrimSpace(strings.TrimSuffix(lines[i], "\r"))
		for strings.HasSuffix(text, "\\") && i+1 < len(lines) {
			i++
			text = strings.TrimSuffix(text, "\\") + " " + strings.TrimSpace(strings.TrimSuffix(lines[i], "\r"))
		}
		switch {
		case text == "" || text[0] == '#' || text[0] == ';':
		case text[0] == '[':
			end := strings.IndexByte(text, ']')
			if end < 0 {
				c.syntax = append(c.syntax, Problem{n, fmt.Sprintf("section header %q lacks its closing \"]\"", text)})
				continue
			}
			section = norm(text[1:end])
			if section == "globals" {
				section = "global"
			}
		default:
			k, v, ok := strings.Cut(text, "=")
			if !ok {
				c.syntax = append(c.syntax, Problem{n, fmt.Sprintf("%q is neither a section header nor \"name = value\" (Samba skips it)", text)})
				continue
			}
			c.params = append(c.params, confParam{line: n, section: section, name: norm(k), raw: strings.TrimSpace(k), value: strings.TrimSpace(v)})
		}
	}
	return c
}

// synonyms maps a normalised parameter name to the other spellings Samba
// accepts for it, so that a name testparm prints finds the line the file
// spells differently.
var synonyms = map[string][]string{
	"privatedir":    {"privatedirectory"},
	"lockdirectory": {"lockdir"},
}

// lineOf returns the line that sets parameter name (to value, if value is
// not empty), or 0.
func (c conf) lineOf(name, value string) int {
	names := append([]string{norm(name)}, synonyms[norm(name)]...)
	for _, p := range c.params {
		for _, n := range names {
			if p.name == n && (value == "" || sameValue(p.value, value)) {
				return p.line
			}
		}
	}
	return 0
}

// lineOfValue returns the first line whose value is value, and the
// parameter it sets there.
func (c conf) lineOfValue(value string) (int, string) {
	for _, p := range c.params {
		if sameValue(p.value, value) {
			return p.line, p.raw
		}
	}
	return 0, ""
}

// sameValue compares parameter values as Samba reads them: case and runs
// of white space do not count.
func sameValue(a, b string) bool {
	return strings.EqualFold(strings.Join(strings.Fields(a), " "), strings.Join(strings.Fields(b), " "))
}

// lineInShare returns the first line that sets name outside [global].
func (c conf) lineInShare(name string) int {
	for _, p := range c.params {
		if p.name == norm(name) && p.section != "global" {
			return p.line
		}
	}
	return 0
}
