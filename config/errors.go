package config

import (
	"strconv"
	"strings"
)

// Error is one problem found in a configuration file. It names the file, the
// line when one is known, the key path and what is wrong, in the form
//
//	config: tandem.toml:14: resource "vip": address "10.0.0.300/24": bad IP
type Error struct {
	// File is the name the configuration was loaded or parsed under.
	File string
	// Line is the 1-based line of the key, or of the table that lacks it;
	// 0 when the problem belongs to no single line.
	Line int
	// Path is the section and key, as in `resource "vip": address`; empty for
	// problems of the whole file.
	Path string
	// Value is the offending value as written in TOML, or empty.
	Value string
	// Msg says what is wrong.
	Msg string
}

// Error returns the problem as one line starting with "config: ".
func (e *Error) Error() string {
	return "config: " + e.text()
}

func (e *Error) text() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		if e.Value != "" {
			b.WriteByte(' ')
			b.WriteString(e.Value)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in one file, in file order. Load, Parse
// and Check return it as their error when anything is wrong; its message has
// one problem per line.
type ErrorList []*Error

// Error returns the problems one per line.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap returns the problems as a slice of errors, for errors.As and
// errors.Is.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Warning is a setting that is valid but unsafe or probably unintended, such
// as unsafe_no_fencing. Check reports warnings; Load and Parse do not.
type Warning struct {
	// File, Line, Path, Value and Msg are as in Error.
	File  string
	Line  int
	Path  string
	Value string
	Msg   string
}

// String returns the warning as one line starting with "config: warning: ".
func (w Warning) String() string {
	e := Error(w)
	return "config: warning: " + e.text()
}
