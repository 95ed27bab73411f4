package transcript

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Kind is what a step does.
type Kind int

// The step kinds, by their marker in a file.
const (
	Host     Kind = iota // "> ": the host writes Text and a CR
	Modem                // "< ": the modem sends "\r\n" Text "\r\n"
	ModemRaw             // "<< ": the modem sends Text exactly
	Delay                // "~ ": the modem pauses for Delay
)

// Step is one line of a transcript.
type Step struct {
	Kind  Kind
	Text  string        // decoded; empty for Delay
	Delay time.Duration // Delay steps only
	Line  int           // line in the file, 0 for steps built in code
}

// Wire returns the bytes a modem step puts on the line.
func (s Step) Wire() []byte {
	switch s.Kind {
	case Modem:
		return []byte("\r\n" + s.Text + "\r\n")
	case ModemRaw:
		return []byte(s.Text)
	}
	return nil
}

// String renders the step as a line of a transcript file.
func (s Step) String() string {
	switch s.Kind {
	case Host:
		return "> " + Escape(s.Text)
	case Modem:
		return "< " + Escape(s.Text)
	case ModemRaw:
		return "<< " + Escape(s.Text)
	case Delay:
		return "~ " + s.Delay.String()
	}
	return "?"
}

// Transcript is one recorded session.
type Transcript struct {
	Name   string   // file name, used in errors
	Header []string // "#" lines before the first step, without "#" and one space
	Steps  []Step
}

// Meta returns the values of "key: value" header lines, in order.
func (t *Transcript) Meta(key string) []string {
	var out []string
	for _, h := range t.Header {
		k, v, ok := strings.Cut(h, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), key) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// Synthetic reports whether the header says "kind: synthetic".
func (t *Transcript) Synthetic() bool {
	k := t.Meta("kind")
	return len(k) > 0 && strings.HasPrefix(strings.ToLower(k[0]), "synthetic")
}

// ModemBytes returns everything the modem sends in the session, in order.
func (t *Transcript) ModemBytes() []byte {
	var b []byte
	for _, s := range t.Steps {
		b = append(b, s.Wire()...)
	}
	return b
}

// HostLines returns the lines the host writes, in order.
func (t *Transcript) HostLines() []string {
	var out []string
	for _, s := range t.Steps {
		if s.Kind == Host {
			out = append(out, s.Text)
		}
	}
	return out
}

// WriteTo writes the transcript in the file format.
func (t *Transcript) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	for _, h := range t.Header {
		if h == "" {
			b.WriteString("#\n")
			continue
		}
		b.WriteString("# " + strings.NewReplacer("\n", " ", "\r", " ").Replace(h) + "\n")
	}
	for _, s := range t.Steps {
		b.WriteString(s.String() + "\n")
	}
	return b.WriteTo(w)
}

// ErrSyntax is wrapped by every *ParseError.
var ErrSyntax = errors.New("bad transcript")

// ParseError is a malformed line of a transcript file.
type ParseError struct {
	Name string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("transcript %s:%d: %s", e.Name, e.Line, e.Msg)
}

func (e *ParseError) Unwrap() error { return ErrSyntax }

// Load reads a transcript file.
func Load(path string) (*Transcript, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	defer f.Close()
	return Parse(filepath.Base(path), f)
}

// maxFileLine bounds one line of a transcript file.
const maxFileLine = 1 << 20

// Parse reads a transcript; name is used in errors.
func Parse(name string, r io.Reader) (*Transcript, error) {
	t := &Transcript{Name: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxFileLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		bad := func(format string, a ...any) error {
			return &ParseError{Name: name, Line: n, Msg: fmt.Sprintf(format, a...)}
		}
		switch {
		case strings.TrimSpace(line) == "":
			continue
		case strings.HasPrefix(line, "#"):
			if len(t.Steps) == 0 {
				h := strings.TrimPrefix(line, "#")
				t.Header = append(t.Header, strings.TrimPrefix(h, " "))
			}
			continue
		}
		marker, text, _ := strings.Cut(line, " ")
		var st Step
		switch marker {
		case ">":
			st.Kind = Host
		case "<":
			st.Kind = Modem
		case "<<":
			st.Kind = ModemRaw
		case "~":
			d, err := time.ParseDuration(strings.TrimSpace(text))
			if err != nil || d < 0 {
				return nil, bad("bad delay %q", text)
			}
			t.Steps = append(t.Steps, Step{Kind: Delay, Delay: d, Line: n})
			continue
		default:
			return nil, bad("line starts with %q: want >, <, <<, ~ or #", marker)
		}
		dec, err := Unescape(text)
		if err != nil {
			return nil, bad("%v", err)
		}
		switch {
		case dec == "":
			return nil, bad("empty %s step", marker)
		case st.Kind != ModemRaw && strings.ContainsAny(dec, "\r\n"):
			return nil, bad("%s step holds a CR or LF: use << for raw bytes", marker)
		}
		st.Text, st.Line = dec, n
		t.Steps = append(t.Steps, st)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("transcript %s: %w", name, err)
	}
	return t, nil
}

// Escape writes s with every byte outside printable ASCII, and a backslash
// or a trailing space, as an escape.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == ' ' && (i == len(s)-1 || i == 0):
			b.WriteString(`\x20`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02X`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Unescape decodes \\, \r, \n, \t and \xHH. Any other backslash stays as
// it is, so a line recorded verbatim keeps its backslashes.
func Unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '\\':
			b.WriteByte('\\')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'x':
			if i+3 >= len(s) {
				return "", fmt.Errorf("short \\x escape")
			}
			h, ok := unhex(s[i+2], s[i+3])
			if !ok {
				return "", fmt.Errorf("bad \\x escape %q", s[i:i+4])
			}
			b.WriteByte(h)
			i += 2
		default:
			b.WriteByte(c)
			continue
		}
		i++
	}
	return b.String(), nil
}

func unhex(a, b byte) (byte, bool) {
	v := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, true
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	x, ok1 := v(a)
	y, ok2 := v(b)
	return x<<4 | y, ok1 && ok2
}
