package atmodem

import (
	"strconv"
	"strings"
)

// field is one comma-separated value of an information line.
type field struct {
	s      string // without quotes, trimmed
	quoted bool
	empty  bool // nothing between the commas
}

// splitFields splits the value part of "+XXX: a,"b,c",,3" into fields,
// honouring double quotes. It never fails: an unterminated quote runs to
// the end of the line.
func splitFields(s string) []field {
	var out []field
	var cur strings.Builder
	inQ, quoted := false, false
	flush := func() {
		v := cur.String()
		if !quoted {
			v = strings.TrimSpace(v)
		}
		out = append(out, field{s: v, quoted: quoted, empty: v == "" && !quoted})
		cur.Reset()
		quoted = false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQ = !inQ
			quoted = true
		case c == ',' && !inQ:
			flush()
		default:
			if inQ || c != ' ' || cur.Len() > 0 {
				cur.WriteByte(c)
			}
		}
	}
	flush()
	return out
}

// value returns the text after "PREFIX:" with the prefix checked, or the
// whole line when prefix is empty.
func value(line, prefix string) (string, bool) {
	if prefix == "" {
		return strings.TrimSpace(line), true
	}
	rest, ok := strings.CutPrefix(line, prefix)
	if !ok {
		return "", false
	}
	return strings.TrimSpace(rest), true
}

// valueOf is value for a reply that may have lost its prefix: the text
// after "PREFIX:", or the whole line when it carries no "+NAME:"-style
// prefix of another command (a bare `2,1,"1A2B",...`).
func valueOf(line, prefix string) (string, bool) {
	if v, ok := value(line, prefix); ok {
		return v, true
	}
	t := strings.TrimSpace(line)
	if t == "" || strings.ContainsRune("+#^%$!", rune(t[0])) {
		return "", false
	}
	if i := strings.IndexByte(t, ':'); i > 0 && isCommandName(t[:i]) {
		return "", false // "CSQ: 20,99" or "ICCID: ..." is not ours
	}
	return t, true
}

func atoiDefault(s string, def int) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return def
	}
	return n
}

// blank reports whether the field holds nothing ("", or "" quoted).
func (f field) blank() bool { return strings.TrimSpace(f.s) == "" }

func (f field) int() (int, bool) {
	if f.empty {
		return 0, false
	}
	n, err := strconv.Atoi(f.s)
	return n, err == nil
}

// hexOrDec reads a LAC, TAC or cell id. 27.007 gives them as quoted hex
// strings; modems that drop the quotes print decimal, unless the value has
// hex letters or a 0x prefix.
func (f field) hexOrDec() (uint64, bool) {
	s := strings.TrimSpace(f.s)
	if f.empty || s == "" {
		return 0, false
	}
	base := 10
	if f.quoted {
		base = 16
	}
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		s, base = h, 16
	} else if strings.ContainsAny(s, "abcdefABCDEF") {
		base = 16
	} else if len(s) > 1 && s[0] == '0' {
		// Zero-padded to a fixed width ("0012", "00A1B2C3" without
		// letters): a hex string that lost its quotes, as no modem
		// pads a decimal number.
		base = 16
	}
	if len(s) > 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, base, 64)
	return n, err == nil
}

// hex reads a LAC, TAC or cell id of +CxREG: a hex string (27.007),
// quoted or not, with an optional 0x. Spaces inside it make it no number.
func (f field) hex() (uint64, bool) {
	s := strings.TrimSpace(f.s)
	if f.empty || s == "" {
		return 0, false
	}
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		s = h
	}
	if s == "" || len(s) > 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 16, 64)
	return n, err == nil
}

func ptr[T any](v T) *T { return &v }
