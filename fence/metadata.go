package fence

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Metadata is what a fence agent says about itself (AGENT -o metadata):
// its parameters and actions, in the fence-agents XML format
// (<resource-agent><parameters><parameter name= required=>…).
type Metadata struct {
	// Name is the agent's name, such as fence_ipmilan.
	Name string
	// ShortDesc is the agent's one-line description.
	ShortDesc string
	// Parameters are the agent's parameters in the order given.
	Parameters []Parameter
	// Actions are the actions the agent supports: on, off, status…
	Actions []string
}

// Parameter is one parameter of a fence agent.
type Parameter struct {
	// Name is the name used on standard input, such as ip or password.
	Name string
	// LongOption is the command-line long option without dashes, such as
	// "password" for --password; fence-agents also accept it, with - or
	// _, as the name on standard input.
	LongOption string
	// Required is set when the agent needs the parameter.
	Required bool
	// Deprecated marks an old name kept for compatibility (passwd, port).
	Deprecated bool
	// Obsoletes is the old name this parameter replaces, if any.
	Obsoletes string
	// Type is the content type: string, boolean, integer, second, select.
	Type string
	// Default is the default value, when HasDefault.
	Default string
	// HasDefault is set when the agent has a default for the parameter.
	HasDefault bool
	// Options are the allowed values of a select parameter.
	Options []string
	// ShortDesc is the parameter's one-line description.
	ShortDesc string
}

type xmlAgent struct {
	XMLName   xml.Name `xml:"resource-agent"`
	Name      string   `xml:"name,attr"`
	ShortDesc string   `xml:"shortdesc,attr"`
	Params    []struct {
		Name       string `xml:"name,attr"`
		Required   string `xml:"required,attr"`
		Deprecated string `xml:"deprecated,attr"`
		Obsoletes  string `xml:"obsoletes,attr"`
		Getopt     struct {
			Mixed string `xml:"mixed,attr"`
		} `xml:"getopt"`
		Content struct {
			Type    string  `xml:"type,attr"`
			Default *string `xml:"default,attr"`
			Options []struct {
				Value string `xml:"value,attr"`
			} `xml:"option"`
		} `xml:"content"`
		ShortDesc string `xml:"shortdesc"`
	} `xml:"parameters>parameter"`
	Actions []struct {
		Name string `xml:"name,attr"`
	} `xml:"actions>action"`
}

// ParseMetadata parses a fence agent's metadata XML.
func ParseMetadata(data []byte) (*Metadata, error) {
	var x xmlAgent
	if err := xml.Unmarshal(data, &x); err != nil {
		return nil, fmt.Errorf("fence: metadata: %w", err)
	}
	m := &Metadata{Name: x.Name, ShortDesc: x.ShortDesc}
	for i, p := range x.Params {
		if p.Name == "" {
			return nil, fmt.Errorf("fence: metadata of %s: parameter %d has no name", x.Name, i+1)
		}
		q := Parameter{
			Name:       p.Name,
			LongOption: longOption(p.Getopt.Mixed),
			Required:   p.Required == "1",
			Deprecated: p.Deprecated == "1",
			Obsoletes:  p.Obsoletes,
			Type:       p.Content.Type,
			ShortDesc:  strings.TrimSpace(p.ShortDesc),
		}
		if p.Content.Default != nil {
			q.Default, q.HasDefault = *p.Content.Default, true
		}
		for _, o := range p.Content.Options {
			q.Options = append(q.Options, o.Value)
		}
		m.Parameters = append(m.Parameters, q)
	}
	if len(m.Parameters) == 0 {
		return nil, fmt.Errorf("fence: metadata of %q: no parameters", x.Name)
	}
	for _, a := range x.Actions {
		m.Actions = append(m.Actions, a.Name)
	}
	return m, nil
}

// longOption finds the long option in a getopt "mixed" attribute such as
// "-p, --password=[password]".
func longOption(mixed string) string {
	for _, f := range strings.Split(mixed, ",") {
		f = strings.TrimSpace(f)
		if name, ok := strings.CutPrefix(f, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			return name
		}
	}
	return ""
}

// norm folds the - and _ that fence-agents take as the same.
func norm(s string) string { return strings.ReplaceAll(s, "-", "_") }

// Lookup finds a parameter as fence-agents do on standard input: by name,
// or else by long option, - and _ alike.
func (m *Metadata) Lookup(key string) (Parameter, bool) {
	for _, p := range m.Parameters {
		if p.Name == key {
			return p, true
		}
	}
	for _, p := range m.Parameters {
		if p.LongOption != "" && norm(p.LongOption) == norm(key) {
			return p, true
		}
	}
	return Parameter{}, false
}

// HasAction reports whether the agent lists action.
func (m *Metadata) HasAction(action string) bool {
	for _, a := range m.Actions {
		if a == action {
			return true
		}
	}
	return false
}

// Validate checks a configured parameter set, as an [Agent] takes it,
// against the agent's parameters: every key must be a parameter of the
// agent (a key ending in _file may name a secret file for the parameter
// without the suffix), values of boolean, integer, second and select
// parameters must fit, and every required parameter must be given. action
// is set by each operation and not required; plug and port stand for each
// other, as do a parameter and the old name it obsoletes; a parameter with
// a default or a deprecated one is never missing.
//
// The error lists every problem, one per line, and suggests close names
// for an unknown one.
func (m *Metadata) Validate(params map[string]string) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("fence: agent %s: "+format, append([]any{m.Name}, args...)...))
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	given := map[string]bool{}
	for _, k := range keys {
		if k == "action" || k == "option" {
			bad("parameter %q is set by each operation, not configurable", k)
			continue
		}
		p, ok := m.Lookup(k)
		if ok {
			if err := p.check(params[k]); err != nil && !secretKey(k) {
				bad("parameter %s: %v", k, err)
			} else if err != nil {
				bad("parameter %s: not a valid %s", k, p.Type)
			}
		} else if base, isFile := strings.CutSuffix(k, fileSuffix); isFile && base != "" {
			p, ok = m.Lookup(base)
		}
		if !ok {
			msg := fmt.Sprintf("unknown parameter %q", k)
			if near := m.near(k); len(near) > 0 {
				msg += "; did you mean " + quoteList(near) + "?"
			}
			bad("%s", msg)
			continue
		}
		given[p.Name] = true
	}
	for _, p := range m.Parameters {
		if !p.Required || p.Name == "action" || p.HasDefault || p.Deprecated || m.satisfied(p, given) {
			continue
		}
		bad("required parameter %q is missing", p.Name)
	}
	return errors.Join(errs...)
}

// satisfied reports whether p, or a name that stands for it, is given.
func (m *Metadata) satisfied(p Parameter, given map[string]bool) bool {
	if given[p.Name] || (p.Obsoletes != "" && given[p.Obsoletes]) {
		return true
	}
	if (p.Name == "plug" && given["port"]) || (p.Name == "port" && given["plug"]) {
		return true
	}
	for _, q := range m.Parameters {
		if !given[q.Name] {
			continue
		}
		if q.Obsoletes == p.Name || (p.LongOption != "" && norm(q.LongOption) == norm(p.LongOption)) {
			return true
		}
	}
	return false
}

// check checks a value against the parameter's content type.
func (p Parameter) check(v string) error {
	switch p.Type {
	case "boolean":
		switch strings.ToLower(v) {
		case "", "1", "0", "yes", "no", "on", "off", "true", "false":
			return nil
		}
		return fmt.Errorf("%q is not a boolean (1, 0, yes, no, on, off, true, false)", v)
	case "integer":
		if _, err := strconv.Atoi(v); err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
	case "second":
		if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 {
			return fmt.Errorf("%q is not a number of seconds", v)
		}
	case "select":
		if len(p.Options) == 0 {
			return nil
		}
		for _, o := range p.Options {
			if o == v {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(p.Options, ", "))
	}
	return nil
}

// near lists up to three names close to key, closest first: parameter
// names or long options (with _ for -) within a small edit distance, or
// containing key or contained in it. For an unknown secret file key
// (pasword_file) it suggests secret file keys (password_file).
func (m *Metadata) near(key string) []string {
	if base, ok := strings.CutSuffix(key, fileSuffix); ok && base != "" {
		out := m.near(base)
		for i := range out {
			out[i] += fileSuffix
		}
		return out
	}
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	seen := map[string]bool{}
	k := strings.ToLower(norm(key))
	for _, p := range m.Parameters {
		if p.Deprecated || p.Name == "action" {
			continue
		}
		for _, n := range []string{p.Name, norm(p.LongOption)} {
			if n == "" || seen[n] {
				continue
			}
			ln := strings.ToLower(n)
			d := distance(k, ln)
			limit := max(1, min(len(k), len(ln))/3)
			switch {
			case d <= limit:
			case len(k) >= 3 && (strings.Contains(ln, k) || strings.Contains(k, ln)):
				d = limit + 1
			default:
				continue
			}
			seen[n] = true
			cs = append(cs, cand{n, d})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].d < cs[j].d })
	var out []string
	for i := 0; i < len(cs) && i < 3; i++ {
		out = append(out, cs[i].name)
	}
	return out
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// LoadMetadata runs the agent for its metadata: AGENT -o metadata (a
// command line is fine here: no parameters, no secrets), or, when that
// fails, action=metadata on standard input.
func (a *Agent) LoadMetadata(ctx context.Context) (*Metadata, error) {
	out, err := a.exec(ctx, "metadata", []string{"-o", "metadata"}, "", nil)
	if err == nil {
		if m, perr := ParseMetadata(out); perr == nil {
			return m, nil
		}
	}
	if ctx.Err() != nil {
		return nil, err
	}
	out, err2 := a.exec(ctx, "metadata", nil, "action=metadata\n", nil)
	if err2 != nil {
		return nil, err2
	}
	m, perr := ParseMetadata(out)
	if perr != nil {
		return nil, &Error{Agent: a.Name, Action: "metadata", ExitCode: 0, Err: perr}
	}
	return m, nil
}

// Check reads the agent's metadata, checks Params against it and that the
// agent has the actions off and status, and keeps the metadata in
// a.Metadata. Call it before the Agent is shared between goroutines: it
// sets a field.
func (a *Agent) Check(ctx context.Context) error {
	m, err := a.LoadMetadata(ctx)
	if err != nil {
		return err
	}
	var errs []error
	if err := m.Validate(a.Params); err != nil {
		errs = append(errs, err)
	}
	for _, act := range []string{"off", "status"} {
		if len(m.Actions) > 0 && !m.HasAction(act) {
			errs = append(errs, fmt.Errorf("fence: agent %s: has no action %s", a.Name, act))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	a.Metadata = m
	return nil
}
