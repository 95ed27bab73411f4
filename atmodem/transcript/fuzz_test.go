package transcript

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpus returns the transcript files of atmodem/testdata and the sample.
func corpus(tb testing.TB) []string {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "*.txt"))
	out := []string{sample}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// FuzzParse: Parse never panics, and what it accepts is written and
// parsed back to the same session.
func FuzzParse(f *testing.F) {
	for _, c := range corpus(f) {
		f.Add(c)
	}
	f.Add("~ 1.5h\n< \\x20x\\x20\n>  AT\n<< \\r\\r\\n\n")
	f.Fuzz(func(t *testing.T, text string) {
		tr, err := Parse("fuzz.txt", strings.NewReader(text))
		if err != nil {
			return
		}
		var b bytes.Buffer
		tr.WriteTo(&b)
		again, err := Parse("fuzz.txt", &b)
		if err != nil {
			t.Fatalf("written transcript does not parse: %v\n%s", err, b.String())
		}
		if len(again.Steps) != len(tr.Steps) || len(again.Header) != len(tr.Header) {
			t.Fatalf("round trip: %d steps / %d header lines, want %d / %d", len(again.Steps), len(again.Header), len(tr.Steps), len(tr.Header))
		}
		for i, s := range tr.Steps {
			a := again.Steps[i]
			if a.Kind != s.Kind || a.Text != s.Text || a.Delay != s.Delay {
				t.Fatalf("step %d: %+v, want %+v", i, a, s)
			}
			if s.Kind == Modem && strings.ContainsAny(s.Text, "\r\n") || s.Kind != Delay && s.Text == "" {
				t.Fatalf("step %d accepted with text %q", i, s.Text)
			}
		}
	})
}

// FuzzSplitModem: any modem bytes, cut into any chunks, become steps whose
// wire bytes are exactly the input.
func FuzzSplitModem(f *testing.F) {
	for _, c := range corpus(f) {
		tr, err := Parse("seed", strings.NewReader(c))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tr.ModemBytes(), uint8(0))
		f.Add(tr.ModemBytes(), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		n := int(chunk)
		if n == 0 {
			n = len(data) + 1
		}
		var steps []Step
		var rest []byte
		for i := 0; i < len(data); i += n {
			var st []Step
			st, rest = SplitModem(append(rest, data[i:min(i+n, len(data))]...), false)
			steps = append(steps, st...)
		}
		st, rest := SplitModem(rest, true)
		steps = append(steps, st...)
		if len(rest) != 0 {
			t.Fatalf("final split left %q", rest)
		}
		var got []byte
		for _, s := range steps {
			if s.Text == "" || s.Kind == Modem && strings.ContainsAny(s.Text, "\r\n") {
				t.Fatalf("bad step %+v", s)
			}
			got = append(got, s.Wire()...)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("steps give %q, want %q", got, data)
		}
		// And through the file format.
		tr := &Transcript{Steps: steps}
		var b bytes.Buffer
		tr.WriteTo(&b)
		again, err := Parse("fuzz", &b)
		if err != nil || !bytes.Equal(again.ModemBytes(), data) {
			t.Fatalf("file round trip: %v", err)
		}
	})
}
