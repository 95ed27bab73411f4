// Package config reads mtcagent's configuration file: a small INI/TOML-like
// format that has comments, keeps line numbers for error messages, and maps
// one-to-one onto OpenWrt's UCI sections.
//
//	# comment
//	[agent]
//	modem = auto
//	state_dir = /var/lib/mtcagent
//
//	[recipient "operator"]
//	status = full          # trailing comments are allowed
//	location = "region:2km"
//
// A section is a name with an optional quoted label. Keys are lower-case
// words; values run to the end of the line (or to an unquoted '#'), and may be
// double-quoted. The package only parses: each consumer interprets its own
// sections and reports problems through Errorf, which names file and line.
package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// File is a parsed configuration file.
type File struct {
	Path     string
	Sections []*Section
}

// Section is one [name "label"] block with its entries in file order.
type Section struct {
	Name, Label string
	Line        int
	Entries     []Entry
	file        *File
}

// Entry is one key = value line.
type Entry struct {
	Key, Value string
	Line       int
}

// OnOff parses a switch: "on" or "off", nothing else.
func (e Entry) OnOff() (bool, error) {
	switch e.Value {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("%s %q: want on or off", e.Key, e.Value)
}

// Error is a configuration problem at a line of a file.
type Error struct {
	Path string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

// Load reads and parses the file at path.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, string(b))
}

// Parse parses text; path is used only in error messages.
func Parse(path, text string) (*File, error) {
	f := &File{Path: path}
	var cur *Section
	for i, raw := range strings.Split(text, "\n") {
		n := i + 1
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			s, err := parseHeader(line)
			if err != nil {
				return nil, &Error{path, n, err.Error()}
			}
			s.Line, s.file = n, f
			f.Sections = append(f.Sections, s)
			cur = s
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &Error{path, n, "expected key = value or [section]"}
		}
		k = strings.TrimSpace(k)
		if !isWord(k) {
			return nil, &Error{path, n, fmt.Sprintf("invalid key %q", k)}
		}
		val, err := parseValue(strings.TrimSpace(v))
		if err != nil {
			return nil, &Error{path, n, err.Error()}
		}
		if cur == nil {
			return nil, &Error{path, n, fmt.Sprintf("key %q outside any [section]", k)}
		}
		for _, e := range cur.Entries {
			if e.Key == k {
				return nil, &Error{path, n, fmt.Sprintf("%q set twice in [%s] (first on line %d)", k, cur.Name, e.Line)}
			}
		}
		cur.Entries = append(cur.Entries, Entry{Key: k, Value: val, Line: n})
	}
	return f, nil
}

func parseHeader(line string) (*Section, error) {
	end := strings.LastIndexByte(line, ']')
	if end < 0 {
		return nil, fmt.Errorf("section header without ']'")
	}
	if rest := strings.TrimSpace(line[end+1:]); rest != "" && rest[0] != '#' {
		return nil, fmt.Errorf("unexpected text after section header")
	}
	inner := strings.TrimSpace(line[1:end])
	name, label, _ := strings.Cut(inner, " ")
	s := &Section{Name: name}
	if !isWord(name) {
		return nil, fmt.Errorf("invalid section name %q", name)
	}
	if label = strings.TrimSpace(label); label != "" {
		l, err := strconv.Unquote(label)
		if err != nil || l == "" {
			return nil, fmt.Errorf("section label must be a non-empty quoted string")
		}
		s.Label = l
	}
	return s, nil
}

func parseValue(v string) (string, error) {
	if strings.HasPrefix(v, `"`) {
		end := closingQuote(v)
		if end < 0 {
			return "", fmt.Errorf("unterminated quoted value")
		}
		s, err := strconv.Unquote(v[:end+1])
		if err != nil {
			return "", fmt.Errorf("invalid quoted value: %v", err)
		}
		if rest := strings.TrimSpace(v[end+1:]); rest != "" && rest[0] != '#' {
			return "", fmt.Errorf("unexpected text after quoted value")
		}
		return s, nil
	}
	if i := strings.Index(v, "#"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	return v, nil
}

func closingQuote(v string) int {
	for i := 1; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

func isWord(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// All returns the sections called name, in file order.
func (f *File) All(name string) []*Section {
	var out []*Section
	for _, s := range f.Sections {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// Section returns the single unlabelled section called name, or nil.
func (f *File) Section(name string) *Section {
	for _, s := range f.Sections {
		if s.Name == name && s.Label == "" {
			return s
		}
	}
	return nil
}

// Get returns the value of key and whether it was set.
func (s *Section) Get(key string) (Entry, bool) {
	if s == nil {
		return Entry{}, false
	}
	for _, e := range s.Entries {
		if e.Key == key {
			return e, true
		}
	}
	return Entry{}, false
}

// Errorf returns an Error at line (an entry's or the section's).
func (s *Section) Errorf(line int, format string, a ...any) error {
	path := ""
	if s.file != nil {
		path = s.file.Path
	}
	return &Error{Path: path, Line: line, Msg: fmt.Sprintf(format, a...)}
}

// Unknown returns an error for the first key not in known, so a typo is
// refused rather than silently ignored.
func (s *Section) Unknown(known ...string) error {
	if s == nil {
		return nil
	}
next:
	for _, e := range s.Entries {
		for _, k := range known {
			if e.Key == k {
				continue next
			}
		}
		return s.Errorf(e.Line, "unknown key %q in [%s]", e.Key, s.Name)
	}
	return nil
}

// ParseDuration reads a duration, the one syntax of every duration key:
// Go's (90s, 15m, 1h30m, 250ms) or a number of days ("7d", "0.5d").
// Negative values are refused.
func ParseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if n, ok := strings.CutSuffix(v, "d"); ok && n != "" && !strings.ContainsAny(n, "hmsuµn") {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days < 0 || days > 36600 {
			return 0, fmt.Errorf("want a duration like 90s, 15m, 1h or 7d (not %q)", v)
		}
		return time.Duration(days * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want a duration like 90s, 15m, 1h or 7d (not %q)", v)
	}
	return d, nil
}

// Duration returns the entry's value as a duration from min to max (max
// 0: no upper bound). The error does not name the key: callers prefix it.
func (e Entry) Duration(min, max time.Duration) (time.Duration, error) {
	d, err := ParseDuration(e.Value)
	switch {
	case err != nil:
		return 0, err
	case d < min:
		return 0, fmt.Errorf("%q is shorter than the minimum %v", e.Value, min)
	case max > 0 && d > max:
		return 0, fmt.Errorf("%q is longer than the maximum %v", e.Value, max)
	}
	return d, nil
}

// ParseSize reads a byte count: a whole number with an optional binary
// K, M or G multiple, optionally followed by B or iB (65536, 64K, 4M,
// 4MiB, 256KiB), at most 1 TiB.
func ParseSize(v string) (int64, error) {
	s := strings.ToUpper(strings.TrimSpace(v))
	s = strings.TrimSuffix(s, "B")
	s = strings.TrimSuffix(s, "I")
	mul := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mul = 1 << 10
	case strings.HasSuffix(s, "M"):
		mul = 1 << 20
	case strings.HasSuffix(s, "G"):
		mul = 1 << 30
	}
	if mul > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mul {
		return 0, fmt.Errorf("%q: want a size like 65536, 256K or 4M", v)
	}
	return n * mul, nil
}
