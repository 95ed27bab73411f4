package at

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mtcagent/mtcagent/atmodem/transcript"
)

func TestLineSplitter(t *testing.T) {
	long := strings.Repeat("A", MaxLineBytes)
	tests := []struct {
		name   string
		max    int
		chunks []string
		want   []string
		rest   string
	}{
		{"crlf", 0, []string{"\r\nOK\r\n"}, []string{"OK"}, ""},
		{"reply", 0, []string{"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"}, []string{"+CSQ: 20,99", "OK"}, ""},
		{"cr cr lf", 0, []string{"\r\r\n+CSQ: 20,99\r\r\n\r\r\nOK\r\r\n"}, []string{"+CSQ: 20,99", "OK"}, ""},
		{"lf cr", 0, []string{"\n\r+CSQ: 20,99\n\r\n\rOK\n\r"}, []string{"+CSQ: 20,99", "OK"}, ""},
		{"bare lf", 0, []string{"+CSQ: 20,99\nOK\n"}, []string{"+CSQ: 20,99", "OK"}, ""},
		{"echo bare cr", 0, []string{"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n"}, []string{"AT+CSQ", "+CSQ: 20,99", "OK"}, ""},
		{"split across reads", 0, []string{"\r", "\n+C", "SQ: 2", "0,99\r", "\n\r\nO", "K\r", "\n"}, []string{"+CSQ: 20,99", "OK"}, ""},
		{"unfinished", 0, []string{"\r\nOK\r\n\r\n+CEREG: 1"}, []string{"OK"}, "+CEREG: 1"},
		{"nul and controls dropped", 0, []string{"\x00\r\nO\x00K\x1b\r\n\x7f"}, []string{"OK"}, ""},
		{"tab kept", 0, []string{"a\tb\r\n"}, []string{"a\tb"}, ""},
		{"high bytes kept", 0, []string{"\r\n\xff\xfeNOISE\r\n"}, []string{"\xff\xfeNOISE"}, ""},
		{"utf-8 kept", 0, []string{"\r\n+COPS: 0,0,\"Tëst\",7\r\n"}, []string{"+COPS: 0,0,\"Tëst\",7"}, ""},
		{"blank lines vanish", 0, []string{"\r\n\r\n\r\n\n\n\r\r"}, nil, ""},
		{"over-long line dropped whole", 4, []string{"ABCDEFGHIJ\r\nOK\r\n"}, []string{"OK"}, ""},
		{"over-long line dropped across reads", 4, []string{"ABC", "DEF", "GHIJ", "\r\nOK\r\n"}, []string{"OK"}, ""},
		{"over-long unfinished keeps nothing", 4, []string{"OK\r\nABCDEFGHIJ"}, []string{"OK"}, ""},
		{"max line exact", 4, []string{"ABCD\r\nEF"}, []string{"ABCD"}, "EF"},
		{"default max exact", 0, []string{long + "\r\n"}, []string{long}, ""},
		{"default max dropped", 0, []string{long + "XY\r\nOK\r\n"}, []string{"OK"}, ""},
		{"controls do not count", 2, []string{"A\x01\x02B\r\n"}, []string{"AB"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := lineSplitter{maxLine: tt.max}
			var got []string
			for _, c := range tt.chunks {
				s.feed([]byte(c), func(l string) { got = append(got, l) }, nil)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("lines = %q, want %q", got, tt.want)
			}
			if s.pending() != tt.rest {
				t.Errorf("pending = %q, want %q", s.pending(), tt.rest)
			}
		})
	}
}

// seedWires returns the raw modem bytes of every session of the
// transcript corpus (../testdata/*.txt), the splitter's fuzz seeds.
func seedWires(tb testing.TB) [][]byte {
	paths, _ := filepath.Glob(filepath.Join("..", "testdata", "*.txt"))
	var wires [][]byte
	for _, p := range paths {
		tr, err := transcript.Load(p)
		if err != nil {
			tb.Fatalf("seeds: %v", err)
		}
		wires = append(wires, tr.ModemBytes())
	}
	if len(wires) == 0 {
		tb.Fatal("seeds: no transcripts in ../testdata")
	}
	return wires
}

// Run with: go test ./atmodem/at -run '^$' -fuzz FuzzLineSplitter
func FuzzLineSplitter(f *testing.F) {
	for _, w := range seedWires(f) {
		f.Add(w, uint8(0), uint16(0))
		f.Add(w, uint8(1), uint16(16))
	}
	f.Add([]byte("\r\r\n+CSQ: 20,99\r\r\n\n\rOK\n\r\x00\x7f\tX"), uint8(3), uint16(4))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, max uint16) {
		split := func(data []byte, chunk int) ([]string, string) {
			s := lineSplitter{maxLine: int(max)}
			var lines []string
			emit := func(l string) { lines = append(lines, l) }
			if chunk <= 0 {
				s.feed(data, emit, nil)
			} else {
				for i := 0; i < len(data); i += chunk {
					s.feed(data[i:min(i+chunk, len(data))], emit, nil)
				}
			}
			return lines, s.pending()
		}
		whole, rest := split(data, 0)
		limit := int(max)
		if limit <= 0 {
			limit = MaxLineBytes
		}
		for _, l := range whole {
			if l == "" || len(l) > limit {
				t.Fatalf("line of %d bytes (limit %d)", len(l), limit)
			}
			for i := 0; i < len(l); i++ {
				if c := l[i]; (c < 0x20 && c != '\t') || c == 0x7f {
					t.Fatalf("control byte %#x in line %q", c, l)
				}
			}
		}
		// Any chunking gives the same lines.
		chunked, rest2 := split(data, int(chunk))
		if strings.Join(chunked, "\n") != strings.Join(whole, "\n") || len(chunked) != len(whole) || rest2 != rest {
			t.Fatalf("chunks of %d changed the lines: %q / %q", chunk, chunked, whole)
		}
		// Joining the lines with CRLF and splitting again gives them back.
		var b bytes.Buffer
		for _, l := range whole {
			b.WriteString(l + "\r\n")
		}
		again, rest3 := split(b.Bytes(), 0)
		if strings.Join(again, "\n") != strings.Join(whole, "\n") || len(again) != len(whole) || rest3 != "" {
			t.Fatalf("re-split %q, want %q", again, whole)
		}
	})
}
