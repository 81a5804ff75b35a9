package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Load reads the configuration file at path and parses it with Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a configuration. name is used in error
// messages, usually the file's path. Every problem found is reported: the
// error is then an ErrorList, one *Error per problem in file order.
//
// Parse looks at the host only to check the auth key file.
func Parse(name string, data []byte) (*Config, error) {
	c, _, err := parse(name, data)
	return c, err
}

// Check loads the file at path like Load and also returns warnings: valid
// settings that are unsafe, such as unsafe_no_fencing. Samba's own
// configuration is not checked here; see Config.SambaConfigs.
func Check(path string) (*Config, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	return parse(path, data)
}

func parse(name string, data []byte) (*Config, []Warning, error) {
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, nil, ErrorList{{File: name, Line: pe.Position.Line, Msg: pe.Message}}
		}
		return nil, nil, ErrorList{{File: name, Msg: err.Error()}}
	}
	d := &decoder{file: name, md: md, lines: indexLines(data), bad: map[string]bool{}}
	c := &Config{File: name}
	d.decodeTable(top, true, loc{}, []reflect.Value{reflect.ValueOf(c).Elem()}, nil, "")
	d.validating = true
	d.validate(c)
	sortProblems(d.errs)
	sort.SliceStable(d.warns, func(i, j int) bool { return lineLess(d.warns[i].Line, d.warns[j].Line) })
	if len(d.errs) > 0 {
		return nil, d.warns, d.errs
	}
	return c, d.warns, nil
}

// lineLess orders problems by line, with those of no line last.
func lineLess(a, b int) bool {
	if a == 0 || b == 0 {
		return a != 0 && b == 0
	}
	return a < b
}

func sortProblems(errs ErrorList) {
	sort.SliceStable(errs, func(i, j int) bool { return lineLess(errs[i].Line, errs[j].Line) })
}

type decoder struct {
	file  string
	md    toml.MetaData
	lines lineIndex
	errs  ErrorList
	warns []Warning
	// bad holds the paths of keys that failed to decode.
	bad map[string]bool
	// validating is set once decoding is done.
	validating bool
	// zeroOK is set while a field tagged zero:"ok" is decoded.
	zeroOK bool
}

// loc is where a value sits: idx is its indexed path for the line index
// ("resource[2].address"); where and key are what messages show, as in
// `resource "vip"` and "address".
type loc struct {
	idx   string
	where string
	key   string
}

func (l loc) child(k string) loc {
	return loc{idx: joinPath(l.idx, k), where: l.where, key: joinPath(l.key, k)}
}

func (l loc) elem(i int) loc {
	return loc{idx: indexPath(l.idx, i), where: l.where, key: indexPath(l.key, i)}
}

// section returns the location of the table k, shown as its own section
// when l is a section itself.
func (l loc) section(k string) loc {
	if l.key == "" {
		return loc{idx: joinPath(l.idx, k), where: joinPath(l.where, k)}
	}
	return l.child(k)
}

func (l loc) path() string {
	switch {
	case l.where == "":
		return l.key
	case l.key == "":
		return l.where
	}
	return l.where + ": " + l.key
}

func (d *decoder) problem(at loc, value, format string, args ...any) *Error {
	return &Error{File: d.file, Line: d.lines.line(at.idx), Path: at.path(), Value: value, Msg: fmt.Sprintf(format, args...)}
}

// errorf reports a problem at a key. While decoding, it marks the key as
// failed; while validating, it drops problems of keys that failed to decode
// or lie inside one, as they would only repeat the first problem.
func (d *decoder) errorf(at loc, value, format string, args ...any) {
	if d.validating {
		if d.failed(at.idx) {
			return
		}
	} else {
		d.bad[at.idx] = true
	}
	d.errs = append(d.errs, d.problem(at, value, format, args...))
}

// missing reports a required key or table missing from the table at.
func (d *decoder) missing(at loc, key, what string) {
	d.bad[joinPath(at.idx, key)] = true
	d.errs = append(d.errs, d.problem(at, "", "missing %s", what))
}

// failed reports whether the key at idx, or a table holding it, failed to
// decode.
func (d *decoder) failed(idx string) bool {
	for ; idx != ""; idx = parentPath(idx) {
		if d.bad[idx] {
			return true
		}
	}
	return false
}

func (d *decoder) warnf(at loc, value, format string, args ...any) {
	d.warns = append(d.warns, Warning(*d.problem(at, value, format, args...)))
}

// field is one key of a table, read from a struct field's tags:
// toml (the key), desc, required and default.
type field struct {
	key      string
	desc     string
	required bool
	def      string
	hasDef   bool
	zeroOK   bool // a zero duration is allowed: it selects a computed default
	typ      reflect.Type
	index    int
}

func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		key := sf.Tag.Get("toml")
		if key == "" || key == "-" {
			continue
		}
		def, hasDef := sf.Tag.Lookup("default")
		fs = append(fs, field{
			key:      key,
			desc:     sf.Tag.Get("desc"),
			required: sf.Tag.Get("required") == "true",
			def:      def,
			hasDef:   hasDef,
			zeroOK:   sf.Tag.Get("zero") == "ok",
			typ:      sf.Type,
			index:    i,
		})
	}
	return fs
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
	addrType     = reflect.TypeFor[netip.Addr]()
	fenceType    = reflect.TypeFor[*Fence]()
	resourceType = reflect.TypeFor[Resource]()
)

// decodeTable decodes the keys of one table into the fields of targets,
// fills defaults (overridden by defs) and reports missing and unknown keys.
// present is false for a table the file does not have. A non-empty kind
// names the resource kind whose table this is, for messages about keys of
// other kinds; kind "?" marks a resource of no known kind, whose unknown
// keys are not reported.
func (d *decoder) decodeTable(m map[string]toml.Primitive, present bool, at loc, targets []reflect.Value, defs map[string]string, kind Kind) {
	known := map[string]bool{}
	for _, t := range targets {
		for _, f := range fieldsOf(t.Type()) {
			known[f.key] = true
			v := t.Field(f.index)
			p, ok := m[f.key]
			switch {
			case ok:
				d.zeroOK = f.zeroOK
				d.decodeValue(p, at, f.key, v)
				d.zeroOK = false
				if f.required && v.Kind() == reflect.String && v.Len() == 0 && !d.bad[at.child(f.key).idx] {
					d.errorf(at.child(f.key), `""`, "must not be empty")
				}
			case f.required && present:
				d.missing(at, f.key, describeMissing(f))
			case f.required:
			case isTable(f.typ) && f.typ.Kind() == reflect.Struct:
				d.decodeTable(nil, false, at.section(f.key), []reflect.Value{v}, nil, "")
			default:
				def, hasDef := f.def, f.hasDef
				if o, ok := defs[f.key]; ok {
					def, hasDef = o, true
				}
				if hasDef {
					v.Set(parseDefault(f.typ, def))
				}
			}
		}
	}
	if kind == "?" {
		return
	}
	for _, k := range sortedPrimitiveKeys(m) {
		if known[k] {
			continue
		}
		if others := kindsWithKey(k, kind); kind != "" && len(others) > 0 {
			d.errorf(at.child(k), "", "unknown key for type %s (a key of %s)", kind, strings.Join(others, ", "))
			continue
		}
		d.errorf(at.child(k), "", "unknown key")
	}
}

func describeMissing(f field) string {
	switch {
	case f.typ.Kind() == reflect.Slice && isTable(f.typ.Elem()):
		return "[[" + f.key + "]]"
	case isTable(f.typ):
		return "[" + f.key + "]"
	}
	return fmt.Sprintf("required key %q", f.key)
}

// isTable reports whether t is decoded from a TOML table by decodeTable.
func isTable(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && t != prefixType && t != addrType && t != reflect.TypeFor[Fence]()
}

func sortedPrimitiveKeys(m map[string]toml.Primitive) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// decodeValue decodes the value of key k of the table at into v.
func (d *decoder) decodeValue(p toml.Primitive, table loc, k string, v reflect.Value) {
	t := v.Type()
	switch {
	case t == fenceType:
		at := table.child(k)
		var raw any
		if d.raw(p, at, &raw) {
			v.Set(reflect.ValueOf(d.fence(raw, at)))
		}
	case isTable(t):
		at := table.section(k)
		m, ok := d.table(p, at)
		if !ok {
			return
		}
		if t.Kind() == reflect.Pointer {
			v.Set(reflect.New(t.Elem()))
			v = v.Elem()
		}
		d.decodeTable(m, true, at, []reflect.Value{v}, nil, "")
	case t.Kind() == reflect.Slice && isTable(t.Elem()):
		d.decodeList(p, table.child(k), k, v)
	default:
		at := table.child(k)
		var raw any
		if d.raw(p, at, &raw) {
			d.setValue(raw, at, v)
		}
	}
}

func (d *decoder) raw(p toml.Primitive, at loc, raw *any) bool {
	if err := d.md.PrimitiveDecode(p, raw); err != nil {
		d.errorf(at, "", "%v", err)
		return false
	}
	return true
}

// table decodes a TOML table into its keys' undecoded values. The decoder
// quietly leaves a map empty for a value that is not a table, so the type
// is checked first.
func (d *decoder) table(p toml.Primitive, at loc) (map[string]toml.Primitive, bool) {
	var raw any
	if !d.raw(p, at, &raw) {
		return nil, false
	}
	if _, ok := raw.(map[string]any); !ok {
		d.errorf(at, "", "want a table, have %s", describe(raw))
		return nil, false
	}
	var m map[string]toml.Primitive
	if err := d.md.PrimitiveDecode(p, &m); err != nil {
		d.errorf(at, "", "%v", err)
		return nil, false
	}
	return m, true
}

// decodeList decodes an array of tables, such as [[node]] or [[resource]].
// Elements are shown by name when they have one.
func (d *decoder) decodeList(p toml.Primitive, at loc, label string, v reflect.Value) {
	var raw any
	if !d.raw(p, at, &raw) {
		return
	}
	if !isTableList(raw) {
		d.errorf(at, "", "want [[%s]] tables, have %s", label, describe(raw))
		return
	}
	var list []toml.Primitive
	if err := d.md.PrimitiveDecode(p, &list); err != nil {
		d.errorf(at, "", "%v", err)
		return
	}
	v.Set(reflect.MakeSlice(v.Type(), len(list), len(list)))
	for i, ep := range list {
		el := loc{idx: indexPath(at.idx, i), where: entryLabel(label, i, "")}
		m, ok := d.table(ep, el)
		if !ok {
			continue
		}
		var name any
		if np, ok := m["name"]; ok && d.md.PrimitiveDecode(np, &name) == nil {
			if s, ok := name.(string); ok {
				el.where = entryLabel(label, i, s)
			}
		}
		ev := v.Index(i)
		if ev.Type() == resourceType {
			d.decodeResource(m, el, ev.Addr().Interface().(*Resource))
			continue
		}
		d.decodeTable(m, true, el, []reflect.Value{ev}, nil, "")
	}
}

// entryLabel is how messages name the i-th entry of an array of tables:
// by name when it has one.
func entryLabel(label string, i int, name string) string {
	if name != "" {
		return fmt.Sprintf("%s %q", label, name)
	}
	return fmt.Sprintf("%s #%d", label, i+1)
}

// isTableList reports whether raw is an array of tables: [[x]] tables, or
// an array of inline tables.
func isTableList(raw any) bool {
	switch l := raw.(type) {
	case []map[string]any:
		return true
	case []any:
		for _, e := range l {
			if _, ok := e.(map[string]any); !ok {
				return false
			}
		}
		return true
	}
	return false
}

// kindDefaults are the defaults a kind sets for the common resource keys.
var kindDefaults = map[Kind]map[string]string{
	KindSMB: {"start_timeout": "10s", "stop_timeout": "10s"},
}

// kindParams returns a new kind-specific part for kind and stores it in r,
// or nil for an unknown kind.
func kindParams(kind Kind, r *Resource) any {
	switch kind {
	case KindFilesystem:
		r.Filesystem = &Filesystem{}
		return r.Filesystem
	case KindFloatIP:
		r.FloatIP = &FloatIP{}
		return r.FloatIP
	case KindSMB:
		r.SMB = &SMB{}
		return r.SMB
	case KindTickle:
		r.Tickle = &Tickle{}
		return r.Tickle
	case KindOCF:
		r.OCF = &OCF{}
		return r.OCF
	case KindSystemd:
		r.Systemd = &Systemd{}
		return r.Systemd
	}
	return nil
}

// kindsWithKey lists the kinds other than kind that have key k.
func kindsWithKey(k string, kind Kind) []string {
	var out []string
	for _, other := range Kinds() {
		if other == kind {
			continue
		}
		for _, f := range fieldsOf(reflect.TypeOf(kindParams(other, &Resource{})).Elem()) {
			if f.key == k {
				out = append(out, string(other))
			}
		}
	}
	return out
}

func (d *decoder) decodeResource(m map[string]toml.Primitive, at loc, r *Resource) {
	targets := []reflect.Value{reflect.ValueOf(r).Elem()}
	kind := Kind("?")
	var raw any
	if tp, ok := m["type"]; ok && d.md.PrimitiveDecode(tp, &raw) == nil {
		if s, ok := raw.(string); ok {
			if params := kindParams(Kind(s), r); params != nil {
				kind = Kind(s)
				targets = append(targets, reflect.ValueOf(params).Elem())
			} else {
				d.errorf(at.child("type"), strconv.Quote(s), "unknown type; want one of %s", kindList())
			}
		}
	}
	d.decodeTable(m, true, at, targets, kindDefaults[kind], kind)
	if kind == "?" {
		r.Type = ""
	}
}

func kindList() string {
	var names []string
	for _, k := range Kinds() {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

// setValue converts a decoded TOML value to v's type.
func (d *decoder) setValue(raw any, at loc, v reflect.Value) {
	t := v.Type()
	switch {
	case t == durationType:
		s, ok := raw.(string)
		if !ok {
			d.errorf(at, "", `want a duration like "200ms", have %s`, describe(raw))
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.errorf(at, strconv.Quote(s), `bad duration; want a number and a unit, like "200ms"`)
			return
		}
		if dur < 0 || (dur == 0 && !d.zeroOK) {
			d.errorf(at, strconv.Quote(s), "must be longer than zero")
			return
		}
		v.SetInt(int64(dur))
	case t == prefixType:
		s, ok := raw.(string)
		if !ok {
			d.errorf(at, "", `want an address with prefix length like "198.18.0.50/24", have %s`, describe(raw))
			return
		}
		p, msg := parsePrefix(s)
		if msg != "" {
			d.errorf(at, strconv.Quote(s), "%s", msg)
			return
		}
		v.Set(reflect.ValueOf(p))
	case t == addrType:
		s, ok := raw.(string)
		if !ok {
			d.errorf(at, "", `want an IP address like "198.18.1.1", have %s`, describe(raw))
			return
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			d.errorf(at, strconv.Quote(s), "bad IP")
			return
		}
		v.Set(reflect.ValueOf(a))
	case t.Kind() == reflect.String:
		s, ok := raw.(string)
		if !ok {
			d.errorf(at, "", "want a string, have %s", describe(raw))
			return
		}
		v.SetString(s)
	case t.Kind() == reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			d.errorf(at, "", "want true or false, have %s", describe(raw))
			return
		}
		v.SetBool(b)
	case t.Kind() == reflect.Int:
		n, ok := raw.(int64)
		if !ok {
			d.errorf(at, "", "want an integer, have %s", describe(raw))
			return
		}
		if v.OverflowInt(n) {
			d.errorf(at, strconv.FormatInt(n, 10), "out of range")
			return
		}
		v.SetInt(n)
	case t.Kind() == reflect.Slice:
		list, ok := raw.([]any)
		if !ok {
			d.errorf(at, "", "want a list of %ss, have %s", typeName(t.Elem()), describe(raw))
			return
		}
		s := reflect.MakeSlice(t, len(list), len(list))
		for i, e := range list {
			d.setValue(e, at.elem(i), s.Index(i))
		}
		v.Set(s)
	case t.Kind() == reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			d.errorf(at, "", "want a table of strings, have %s", describe(raw))
			return
		}
		out := make(map[string]string, len(m))
		for k, e := range m {
			if s, ok := scalarText(e, true); ok {
				out[k] = s
			} else {
				d.errorf(at.child(k), "", "want a string, an integer or a boolean, have %s", describe(e))
			}
		}
		if len(out) > 0 {
			v.Set(reflect.ValueOf(out))
		}
	default:
		panic(fmt.Sprintf("config: no decoding for %s at %s", t, at.idx))
	}
}

// scalarText renders a string, an integer or (when bools is set) a boolean
// as parameter text.
func scalarText(raw any, bools bool) (string, bool) {
	switch x := raw.(type) {
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	case bool:
		if bools {
			return strconv.FormatBool(x), true
		}
	}
	return "", false
}

// fence decodes a node's fence table: agent and free-form parameters.
func (d *decoder) fence(raw any, at loc) *Fence {
	m, ok := raw.(map[string]any)
	if !ok {
		d.errorf(at, "", `want a table like { agent = "fence_ipmilan", ... }, have %s`, describe(raw))
		return nil
	}
	f := &Fence{Params: map[string]string{}}
	for _, k := range sortedAnyKeys(m) {
		if k == "agent" {
			s, ok := m[k].(string)
			if !ok {
				d.errorf(at.child(k), "", "want a string, have %s", describe(m[k]))
				continue
			}
			f.Agent = s
			continue
		}
		s, ok := scalarText(m[k], false)
		if !ok {
			d.errorf(at.child(k), "", `want a string or an integer (fence agents take text; write "1" for a flag), have %s`, describe(m[k]))
			continue
		}
		f.Params[k] = s
	}
	if _, ok := m["agent"]; !ok {
		d.missing(at, "agent", `required key "agent"`)
	}
	return f
}

func sortedAnyKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parsePrefix parses an address with prefix length and says what is wrong
// in the words an operator expects.
func parsePrefix(s string) (netip.Prefix, string) {
	addr, bits, ok := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, "bad IP"
	}
	if !ok {
		return netip.Prefix{}, "missing prefix length, as in " + strconv.Quote(addr+"/24")
	}
	n, err := strconv.Atoi(bits)
	if err != nil || n < 0 || n > a.BitLen() || strconv.Itoa(n) != bits {
		return netip.Prefix{}, "bad prefix length"
	}
	return netip.PrefixFrom(a, n), ""
}

// parseDefault converts a default tag to a value of type t.
func parseDefault(t reflect.Type, s string) reflect.Value {
	v := reflect.New(t).Elem()
	switch {
	case t == durationType:
		dur, err := time.ParseDuration(s)
		if err != nil {
			panic(fmt.Sprintf("config: bad default %q for %s", s, t))
		}
		v.SetInt(int64(dur))
	case t.Kind() == reflect.String:
		v.SetString(s)
	case t.Kind() == reflect.Bool:
		v.SetBool(s == "true")
	case t.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			panic(fmt.Sprintf("config: bad default %q for %s", s, t))
		}
		v.SetInt(int64(n))
	case t.Kind() == reflect.Slice:
		parts := strings.Split(s, ",")
		v = reflect.MakeSlice(t, len(parts), len(parts))
		for i, p := range parts {
			v.Index(i).Set(parseDefault(t.Elem(), p))
		}
	default:
		panic(fmt.Sprintf("config: no default for %s", t))
	}
	return v
}

// describe names a decoded TOML value's type, with the value when short.
func describe(raw any) string {
	switch x := raw.(type) {
	case string:
		return "string " + strconv.Quote(x)
	case int64:
		return "integer " + strconv.FormatInt(x, 10)
	case float64:
		return "float " + strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case []any:
		return "array"
	case []map[string]any:
		return "array of tables"
	case map[string]any:
		return "table"
	}
	return "date-time"
}

// typeName names a Go type of this package as a parameter type.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == prefixType:
		return "address/prefix"
	case t == addrType:
		return "address"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() == reflect.Int:
		return "integer"
	case t.Kind() == reflect.Slice:
		return typeName(t.Elem()) + " list"
	case t.Kind() == reflect.Map:
		return "table"
	}
	return t.String()
}
