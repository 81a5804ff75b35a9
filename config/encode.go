package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Marshal writes c as a configuration file with every setting spelled out,
// defaults included: what tandemd runs with. Parse reads it back to an equal
// Config. Marshal does not validate c.
func Marshal(c *Config) ([]byte, error) {
	if c == nil {
		return nil, errors.New("config: marshal: nil Config")
	}
	w := &writer{}
	w.table("[cluster]", reflect.ValueOf(&c.Cluster).Elem())
	for _, n := range c.Nodes {
		w.table("[[node]]", reflect.ValueOf(&n).Elem())
		if n.Fence != nil {
			w.fence(n.Fence)
		}
	}
	w.table("[heartbeat.udp]", reflect.ValueOf(&c.Heartbeat.UDP).Elem())
	if c.Heartbeat.Serial != nil {
		w.table("[heartbeat.serial]", reflect.ValueOf(c.Heartbeat.Serial).Elem())
	}
	if c.Heartbeat.Disk != nil {
		w.table("[heartbeat.disk]", reflect.ValueOf(c.Heartbeat.Disk).Elem())
	}
	w.table("[watchdog]", reflect.ValueOf(&c.Watchdog).Elem())
	for i := range c.Resources {
		r := &c.Resources[i]
		params := r.params()
		if params == nil {
			return nil, fmt.Errorf("config: marshal: resource %q has no %s part", r.Name, r.Type)
		}
		rv := reflect.ValueOf(r).Elem()
		w.b.WriteString("\n[[resource]]\n")
		w.fields(rv, "name", "type")
		w.fields(reflect.ValueOf(params).Elem())
		w.fields(rv, "monitor_interval", "start_timeout", "stop_timeout", "restart_limit")
	}
	if w.err != nil {
		return nil, w.err
	}
	return w.b.Bytes(), nil
}

// params returns the part of r that its Type names, or nil.
func (r *Resource) params() any {
	var p any
	switch r.Type {
	case KindFilesystem:
		p = r.Filesystem
	case KindFloatIP:
		p = r.FloatIP
	case KindSMB:
		p = r.SMB
	case KindTickle:
		p = r.Tickle
	case KindOCF:
		p = r.OCF
	case KindSystemd:
		p = r.Systemd
	}
	if v := reflect.ValueOf(p); !v.IsValid() || v.IsNil() {
		return nil
	}
	return p
}

type writer struct {
	b   bytes.Buffer
	err error
}

func (w *writer) table(header string, v reflect.Value) {
	if w.b.Len() > 0 {
		w.b.WriteByte('\n')
	}
	w.b.WriteString(header + "\n")
	w.fields(v)
}

// fields writes the leaf keys of struct v, all of them or those named.
func (w *writer) fields(v reflect.Value, only ...string) {
	for _, f := range fieldsOf(v.Type()) {
		if len(only) > 0 && !slices.Contains(only, f.key) {
			continue
		}
		if isTable(f.typ) || f.typ == fenceType || f.typ.Kind() == reflect.Slice && isTable(f.typ.Elem()) {
			continue
		}
		if s, ok := w.value(v.Field(f.index)); ok {
			w.b.WriteString(quoteKey(f.key) + " = " + s + "\n")
		}
	}
}

// value renders v in TOML; false for a value that is left out (an empty
// string, list or table, or an unset address).
func (w *writer) value(v reflect.Value) (string, bool) {
	switch x := v.Interface().(type) {
	case time.Duration:
		return strconv.Quote(x.String()), true
	case netip.Prefix:
		return strconv.Quote(x.String()), x.IsValid()
	case netip.Addr:
		return strconv.Quote(x.String()), x.IsValid()
	case map[string]string:
		return w.inline(x, ""), len(x) > 0
	}
	switch v.Kind() {
	case reflect.String:
		return w.quote(v.String()), v.Len() > 0
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), true
	case reflect.Int:
		return strconv.FormatInt(v.Int(), 10), true
	case reflect.Slice:
		items := make([]string, v.Len())
		for i := range items {
			items[i], _ = w.value(v.Index(i))
		}
		return "[" + strings.Join(items, ", ") + "]", !v.IsNil()
	}
	w.err = fmt.Errorf("config: marshal: no TOML form for %s", v.Type())
	return "", false
}

func (w *writer) fence(f *Fence) {
	w.b.WriteString("fence = " + w.inline(f.Params, f.Agent) + "\n")
}

// inline renders a table of strings as an inline table, agent first when
// given.
func (w *writer) inline(m map[string]string, agent string) string {
	var items []string
	if agent != "" {
		items = append(items, "agent = "+w.quote(agent))
	}
	for _, k := range sortedKeys(m) {
		items = append(items, quoteKey(k)+" = "+w.quote(m[k]))
	}
	return "{ " + strings.Join(items, ", ") + " }"
}

func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := range len(k) {
		if !isBareKeyChar(k[i]) {
			return tomlQuote(k)
		}
	}
	return k
}

func (w *writer) quote(s string) string {
	if !utf8.ValidString(s) {
		w.err = fmt.Errorf("config: marshal: %q is not UTF-8", s)
	}
	return tomlQuote(s)
}

// tomlQuote writes s as a TOML basic string.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
