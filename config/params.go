package config

import (
	"fmt"
	"reflect"
)

// Parameter describes one key of a resource kind. Parameters is the single
// description of every kind's keys: the decoder, the defaults and the OCF
// agents' meta-data all come from the same struct tags.
type Parameter struct {
	// Name is the key, as written in the [[resource]] table.
	Name string
	// Type is one of "string", "boolean", "integer", "duration" (Go syntax,
	// like "200ms"), "address" (an IP address), "address/prefix" (like
	// "198.18.0.50/24"), "string list", "integer list" or "table" (of string
	// values).
	Type string
	// Required is set for keys that must always be given. Keys required only
	// with some other setting (floatip's address unless dhcp) are not
	// Required; their Description says when they are needed.
	Required bool
	// Default is the value used when the key is not given, in TOML syntax
	// without quotes (a list as comma-separated items), or empty.
	Default string
	// Description says what the key does, in one line, starting in lower
	// case.
	Description string
	// Common is set for the keys every kind has: name, type,
	// monitor_interval, start_timeout, stop_timeout and restart_limit. An
	// OCF agent takes name and type from the cluster, not as parameters.
	Common bool
}

// Parameters lists the keys of a resource kind: the kind's own keys first,
// then the common ones.
func Parameters(kind Kind) ([]Parameter, error) {
	params := kindParams(kind, &Resource{})
	if params == nil {
		return nil, fmt.Errorf("config: unknown resource type %q; want one of %s", kind, kindList())
	}
	var out []Parameter
	for _, f := range fieldsOf(reflect.TypeOf(params).Elem()) {
		out = append(out, parameterOf(f, nil, false))
	}
	for _, f := range fieldsOf(resourceType) {
		out = append(out, parameterOf(f, kindDefaults[kind], true))
	}
	return out, nil
}

func parameterOf(f field, defs map[string]string, common bool) Parameter {
	def := f.def
	if o, ok := defs[f.key]; ok {
		def = o
	}
	if f.typ.Kind() == reflect.Bool && def == "" {
		def = "false"
	}
	return Parameter{
		Name:        f.key,
		Type:        typeName(f.typ),
		Required:    f.required,
		Default:     def,
		Description: f.desc,
		Common:      common,
	}
}
