package config

import (
	"strconv"
	"strings"
)

// lineIndex maps the path of every key, table header and array element of a
// TOML document to the line it starts on. Paths name array elements by index,
// as in "resource[2].address" or "resource[3].ports[1]", which the decoder's
// own metadata cannot: it keys positions by path without the index, so every
// [[resource]] shares one entry.
type lineIndex map[string]int

// line returns the line of path, or of its nearest enclosing key or table
// that appears in the document, or 0.
func (ix lineIndex) line(path string) int {
	for path != "" {
		if n, ok := ix[path]; ok {
			return n
		}
		path = parentPath(path)
	}
	return 0
}

// has reports whether path is written in the document.
func (ix lineIndex) has(path string) bool {
	_, ok := ix[path]
	return ok
}

func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// indexLines scans a document that the TOML parser has accepted. It follows
// the lexical rules only as far as needed to find keys and where they start;
// on input the parser would refuse it stops early rather than fail.
func indexLines(data []byte) lineIndex {
	s := &lineScanner{src: data, line: 1, ix: lineIndex{}, arrays: map[string]int{}}
	if len(data) >= 3 && string(data[:3]) == "\xef\xbb\xbf" {
		s.pos = 3
	}
	s.document()
	return s.ix
}

type lineScanner struct {
	src    []byte
	pos    int
	line   int
	ix     lineIndex
	arrays map[string]int // array-of-tables path → elements seen so far
	table  string         // path of the current table
}

func (s *lineScanner) eof() bool { return s.pos >= len(s.src) }

func (s *lineScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.pos]
}

func (s *lineScanner) at(prefix string) bool {
	return strings.HasPrefix(string(s.src[s.pos:min(len(s.src), s.pos+len(prefix))]), prefix)
}

func (s *lineScanner) advance() {
	if s.src[s.pos] == '\n' {
		s.line++
	}
	s.pos++
}

func (s *lineScanner) record(path string, line int) {
	if _, ok := s.ix[path]; !ok {
		s.ix[path] = line
	}
}

// blank skips spaces and tabs, and also newlines and comments when
// multiline is set.
func (s *lineScanner) blank(multiline bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.pos++
		case multiline && c == '\n':
			s.advance()
		case multiline && c == '#':
			s.comment()
		default:
			return
		}
	}
}

func (s *lineScanner) comment() {
	for !s.eof() && s.peek() != '\n' {
		s.pos++
	}
}

func (s *lineScanner) document() {
	for !s.eof() {
		start := s.pos
		s.blank(true)
		if s.eof() {
			return
		}
		if s.peek() == '[' {
			s.header()
		} else {
			s.keyValue(s.table)
		}
		if s.pos == start {
			return // not TOML the parser accepted; nothing more to learn
		}
	}
}

func (s *lineScanner) header() {
	line := s.line
	s.pos++
	array := s.peek() == '['
	if array {
		s.pos++
	}
	parts := s.key()
	path := ""
	for i, p := range parts {
		path = joinPath(path, p)
		if array && i == len(parts)-1 {
			n := s.arrays[path]
			s.arrays[path] = n + 1
			s.record(path, line)
			path = indexPath(path, n)
		} else if n, ok := s.arrays[path]; ok {
			path = indexPath(path, n-1)
		}
		s.record(path, line)
	}
	s.blank(false)
	for !s.eof() && s.peek() == ']' {
		s.pos++
	}
	s.table = path
}

// key reads a dotted key and returns its parts.
func (s *lineScanner) key() []string {
	var parts []string
	for {
		s.blank(false)
		if s.eof() {
			return parts
		}
		switch c := s.peek(); {
		case c == '"':
			start := s.pos
			s.basicString()
			raw := string(s.src[start:s.pos])
			if k, err := strconv.Unquote(raw); err == nil {
				parts = append(parts, k)
			} else {
				parts = append(parts, strings.Trim(raw, `"`))
			}
		case c == '\'':
			start := s.pos
			s.literalString()
			parts = append(parts, strings.Trim(string(s.src[start:s.pos]), "'"))
		default:
			start := s.pos
			for !s.eof() && isBareKeyChar(s.peek()) {
				s.pos++
			}
			if s.pos == start {
				return parts
			}
			parts = append(parts, string(s.src[start:s.pos]))
		}
		s.blank(false)
		if s.peek() != '.' {
			return parts
		}
		s.pos++
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func (s *lineScanner) keyValue(table string) {
	line := s.line
	parts := s.key()
	if len(parts) == 0 {
		return
	}
	path := table
	for _, p := range parts {
		path = joinPath(path, p)
		s.record(path, line)
	}
	s.blank(false)
	if s.peek() != '=' {
		return
	}
	s.pos++
	s.blank(false)
	s.value(path)
}

func (s *lineScanner) value(path string) {
	switch {
	case s.eof():
	case s.at(`"""`):
		s.multiline(`"""`, true)
	case s.at(`'''`):
		s.multiline(`'''`, false)
	case s.peek() == '"':
		s.basicString()
	case s.peek() == '\'':
		s.literalString()
	case s.peek() == '[':
		s.array(path)
	case s.peek() == '{':
		s.inlineTable(path)
	default:
		for !s.eof() && !strings.ContainsRune(",]}\n#", rune(s.peek())) {
			s.pos++
		}
	}
}

func (s *lineScanner) basicString() {
	s.pos++
	for !s.eof() {
		switch s.peek() {
		case '\\':
			s.pos = min(s.pos+2, len(s.src))
			continue
		case '"':
			s.pos++
			return
		case '\n':
			return
		}
		s.pos++
	}
}

func (s *lineScanner) literalString() {
	s.pos++
	for !s.eof() {
		switch s.peek() {
		case '\'':
			s.pos++
			return
		case '\n':
			return
		}
		s.pos++
	}
}

func (s *lineScanner) multiline(delim string, escapes bool) {
	s.pos += len(delim)
	for !s.eof() {
		if escapes && s.peek() == '\\' {
			s.pos++
			if !s.eof() {
				s.advance()
			}
			continue
		}
		if s.at(delim) {
			s.pos += len(delim)
			// Up to two quotes right before the closing ones belong to the string.
			for i := 0; i < 2 && !s.eof() && s.peek() == delim[0]; i++ {
				s.pos++
			}
			return
		}
		s.advance()
	}
}

func (s *lineScanner) array(path string) {
	s.pos++
	for i := 0; ; i++ {
		s.blank(true)
		if s.eof() {
			return
		}
		if s.peek() == ']' {
			s.pos++
			return
		}
		start := s.pos
		elem := indexPath(path, i)
		s.record(elem, s.line)
		s.value(elem)
		s.blank(true)
		if s.peek() == ',' {
			s.pos++
		} else if s.pos == start {
			return
		}
	}
}

func (s *lineScanner) inlineTable(path string) {
	s.pos++
	for {
		s.blank(true)
		if s.eof() {
			return
		}
		if s.peek() == '}' {
			s.pos++
			return
		}
		start := s.pos
		s.keyValue(path)
		s.blank(true)
		if s.peek() == ',' {
			s.pos++
		} else if s.pos == start {
			return
		}
	}
}
