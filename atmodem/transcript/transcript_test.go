package transcript

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const sample = `# source: hand-written for the package tests
# kind: synthetic
#
# expect: nothing
< RDY
> ATE0
<< ATE0\r
< OK
> AT+CSQ
~ 5ms
<< \r\r\n+CSQ: 20,99\r\r\n
< OK

# a comment between steps
> AT+COPS?
< +COPS: 0,0,"Test \\ Network\x20",7
< OK
`

func mustParse(t testing.TB, text string) *Transcript {
	t.Helper()
	tr, err := Parse("sample.txt", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestParseAndWrite(t *testing.T) {
	tr := mustParse(t, sample)
	if got := tr.Meta("kind"); len(got) != 1 || got[0] != "synthetic" || !tr.Synthetic() {
		t.Fatalf("kind = %q", got)
	}
	if got := tr.Meta("source"); len(got) != 1 {
		t.Fatalf("source = %q", got)
	}
	want := []Step{
		{Kind: Modem, Text: "RDY", Line: 5},
		{Kind: Host, Text: "ATE0", Line: 6},
		{Kind: ModemRaw, Text: "ATE0\r", Line: 7},
		{Kind: Modem, Text: "OK", Line: 8},
		{Kind: Host, Text: "AT+CSQ", Line: 9},
		{Kind: Delay, Delay: 5 * time.Millisecond, Line: 10},
		{Kind: ModemRaw, Text: "\r\r\n+CSQ: 20,99\r\r\n", Line: 11},
		{Kind: Modem, Text: "OK", Line: 12},
		{Kind: Host, Text: "AT+COPS?", Line: 15},
		{Kind: Modem, Text: `+COPS: 0,0,"Test \ Network ",7`, Line: 16},
		{Kind: Modem, Text: "OK", Line: 17},
	}
	if len(tr.Steps) != len(want) {
		t.Fatalf("%d steps, want %d: %v", len(tr.Steps), len(want), tr.Steps)
	}
	for i := range want {
		if tr.Steps[i] != want[i] {
			t.Errorf("step %d = %+v, want %+v", i, tr.Steps[i], want[i])
		}
	}
	wantWire := "\r\nRDY\r\nATE0\r\r\nOK\r\n\r\r\n+CSQ: 20,99\r\r\n\r\nOK\r\n\r\n+COPS: 0,0,\"Test \\ Network \",7\r\n\r\nOK\r\n"
	if got := string(tr.ModemBytes()); got != wantWire {
		t.Errorf("modem bytes = %q\nwant %q", got, wantWire)
	}
	if got := strings.Join(tr.HostLines(), "|"); got != "ATE0|AT+CSQ|AT+COPS?" {
		t.Errorf("host lines = %q", got)
	}
	// Written and parsed again: the same steps and header.
	var b bytes.Buffer
	if _, err := tr.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	again := mustParse(t, b.String())
	if len(again.Steps) != len(tr.Steps) || strings.Join(again.Header, "\n") != strings.Join(tr.Header, "\n") {
		t.Fatalf("round trip changed the transcript:\n%s", b.String())
	}
	for i := range tr.Steps {
		a, b := again.Steps[i], tr.Steps[i]
		if a.Kind != b.Kind || a.Text != b.Text || a.Delay != b.Delay {
			t.Errorf("round trip step %d: %+v, want %+v", i, a, b)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ text, want string }{
		{"? AT\n", "sample.txt:1: line starts with"},
		{"# h\n>AT\n", "sample.txt:2: line starts with"},
		{"~ soon\n", "bad delay"},
		{"~ -5ms\n", "bad delay"},
		{"> \n", "empty > step"},
		{"<\n", "empty < step"},
		{`< a\r\nb` + "\n", "use << for raw bytes"},
		{`> AT\n` + "\n", "use << for raw bytes"},
		{`< \x4` + "\n", "short"},
		{`< \xZZ` + "\n", "bad \\x escape"},
	}
	for _, tt := range tests {
		_, err := Parse("sample.txt", strings.NewReader(tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) error %v, want one containing %q", tt.text, err, tt.want)
		}
	}
}

func TestEscape(t *testing.T) {
	for _, s := range []string{"", "OK", " lead", "trail ", `back\slash`, "\x00\x1b\x7f\xff\r\n\t", "Tëst", `\x41`} {
		e := Escape(s)
		for i := 0; i < len(e); i++ {
			if e[i] < 0x20 || e[i] >= 0x7f {
				t.Errorf("Escape(%q) = %q: not printable ASCII", s, e)
			}
		}
		if strings.HasSuffix(e, " ") {
			t.Errorf("Escape(%q) = %q ends in a space", s, e)
		}
		if u, err := Unescape(e); err != nil || u != s {
			t.Errorf("Unescape(Escape(%q)) = %q, %v", s, u, err)
		}
	}
	// Unknown escapes stay: lines recorded verbatim keep their backslashes.
	if u, _ := Unescape(`C:\dir\`); u != `C:\dir\` {
		t.Errorf("Unescape kept = %q", u)
	}
}

// readAll reads from r until n bytes came or the deadline passed.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 64)
	type res struct {
		n   int
		err error
	}
	for len(got) < n {
		ch := make(chan res, 1)
		go func() { k, err := r.Read(buf); ch <- res{k, err} }()
		select {
		case x := <-ch:
			if x.err != nil {
				t.Fatalf("read after %q: %v", got, x.err)
			}
			got = append(got, buf[:x.n]...)
		case <-time.After(5 * time.Second):
			t.Fatalf("read blocked after %q, want %d bytes", got, n)
		}
	}
	return string(got)
}

func TestReplayerPlaysStrictly(t *testing.T) {
	tr := mustParse(t, sample)
	r := NewReplayer(tr)
	if got := readN(t, r, len("\r\nRDY\r\n")); got != "\r\nRDY\r\n" {
		t.Fatalf("leading output %q", got)
	}
	// A command written in pieces, ended by CR.
	for _, p := range []string{"AT", "E0", "\r"} {
		if _, err := io.WriteString(r, p); err != nil {
			t.Fatal(err)
		}
	}
	want := "ATE0\r\r\nOK\r\n"
	if got := readN(t, r, len(want)); got != want {
		t.Fatalf("reply %q, want %q", got, want)
	}
	io.WriteString(r, "AT+CSQ\r\n") // CR LF: the empty line is ignored
	want = "\r\r\n+CSQ: 20,99\r\r\n\r\nOK\r\n"
	if got := readN(t, r, len(want)); got != want {
		t.Fatalf("reply %q, want %q", got, want)
	}
	io.WriteString(r, "AT+COPS?\r")
	want = "\r\n+COPS: 0,0,\"Test \\ Network \",7\r\n\r\nOK\r\n"
	if got := readN(t, r, len(want)); got != want {
		t.Fatalf("reply %q, want %q", got, want)
	}
	select {
	case <-r.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the last step")
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close after a full replay: %v", err)
	}
	if _, err := r.Read(make([]byte, 8)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

func TestReplayerFailsOnWrongWrite(t *testing.T) {
	r := NewReplayer(mustParse(t, sample))
	_, err := io.WriteString(r, "ATE1\r")
	var se *StepError
	if !errors.As(err, &se) || !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong write: %v, want a StepError", err)
	}
	if se.Step != 2 || se.Line != 6 || se.Want != "ATE0" || se.Got != "ATE1" || se.Name != "sample.txt" {
		t.Fatalf("StepError %+v", se)
	}
	for _, want := range []string{"sample.txt", "step 2", "line 6", `"ATE1"`, `"ATE0"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	// The failure sticks: reads and writes fail, Close reports it.
	if _, err := r.Read(make([]byte, 64)); err != nil && !errors.Is(err, ErrMismatch) {
		t.Fatalf("read after failure: %v", err)
	}
	if _, err := io.WriteString(r, "ATE0\r"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("write after failure: %v", err)
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("Done not closed after a failure")
	}
	if err := r.Close(); !errors.As(err, &se) {
		t.Fatalf("Close after failure: %v", err)
	}
}

func TestReplayerFailsOnWriteAfterEnd(t *testing.T) {
	r := NewReplayer(mustParse(t, "> AT\n< OK\n"))
	io.WriteString(r, "AT\r")
	_, err := io.WriteString(r, "AT+CSQ\r")
	var se *StepError
	if !errors.As(err, &se) || se.Want != "" || !strings.Contains(err.Error(), "after the last step") {
		t.Fatalf("write past the end: %v", err)
	}
}

func TestReplayerReportsUnusedSteps(t *testing.T) {
	tr := mustParse(t, sample)
	r := NewReplayer(tr)
	readN(t, r, len("\r\nRDY\r\n"))
	io.WriteString(r, "ATE0\r")
	readN(t, r, len("ATE0\r\r\nOK\r\n"))
	err := r.Close()
	var ue *UnusedError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnused) {
		t.Fatalf("Close with steps left: %v, want an UnusedError", err)
	}
	if ue.Index != 5 || ue.Count != 7 || ue.First.Text != "AT+CSQ" || ue.First.Line != 9 {
		t.Fatalf("UnusedError %+v", ue)
	}
	if !strings.Contains(err.Error(), "first step 5 (line 9): > AT+CSQ") {
		t.Errorf("error %q does not name the first unused step", err)
	}

	// Output the modem sent but nobody read is unused too.
	r = NewReplayer(mustParse(t, "< RDY\n> AT\n< OK\n"))
	if err := r.Close(); !errors.As(err, &ue) || ue.Index != 1 || ue.Count != 3 {
		t.Fatalf("unread output: %v", err)
	}
	r = NewReplayer(mustParse(t, "> AT\n< OK\n< +CEREG: 1\n"))
	io.WriteString(r, "AT\r")
	if _, err := io.ReadFull(r, make([]byte, len("\r\nOK\r\n")+3)); err != nil { // and part of the URC
		t.Fatal(err)
	}
	if err := r.Close(); !errors.As(err, &ue) || ue.Index != 3 || ue.Count != 1 {
		t.Fatalf("partly read output: %v", err)
	}
}

func TestReplayerDelays(t *testing.T) {
	tr := mustParse(t, "> AT\n~ 30ms\n< OK\n> AT+CSQ\n~ 1h\n< +CSQ: 20,99\n< OK\n> AT+CGMI\n< X\n")
	var mu sync.Mutex
	var asked []time.Duration
	var fire []func()
	after := func(d time.Duration, f func()) func() bool {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, d)
		fire = append(fire, f)
		return func() bool { return true }
	}
	r := NewReplayer(tr, WithAfterFunc(after))
	io.WriteString(r, "AT\r")
	got := make(chan string, 1)
	go func() { b := make([]byte, 16); n, _ := r.Read(b); got <- string(b[:n]) }()
	select {
	case g := <-got:
		t.Fatalf("read %q during the delay", g)
	case <-time.After(20 * time.Millisecond):
	}
	mu.Lock()
	if len(asked) != 1 || asked[0] != 30*time.Millisecond {
		t.Fatalf("delays asked for: %v", asked)
	}
	f := fire[0]
	mu.Unlock()
	f() // the 30ms have passed
	if g := <-got; g != "\r\nOK\r\n" {
		t.Fatalf("after the delay read %q", g)
	}
	// The host moves on during an hour-long delay: the output before the
	// next host step is released at once.
	io.WriteString(r, "AT+CSQ\r")
	io.WriteString(r, "AT+CGMI\r")
	want := "\r\n+CSQ: 20,99\r\n\r\nOK\r\n\r\nX\r\n"
	if got := readN(t, r, len(want)); got != want {
		t.Fatalf("got %q", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// A real delay passes on its own.
	r = NewReplayer(mustParse(t, "~ 1ms\n< RDY\n"))
	readN(t, r, len("\r\nRDY\r\n"))

	// NoDelays skips them; Close ends a pending delay.
	r = NewReplayer(mustParse(t, "~ 1h\n< RDY\n"), NoDelays())
	readN(t, r, len("\r\nRDY\r\n"))
	r = NewReplayer(mustParse(t, "~ 1h\n< RDY\n"))
	done := make(chan error, 1)
	go func() { _, err := r.Read(make([]byte, 8)); done <- err }()
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("read during a delay after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}

// chunkPort is a fake port: each Read returns the next chunk; writes are
// kept.
type chunkPort struct {
	mu     sync.Mutex
	chunks []string
	wrote  bytes.Buffer
	closed bool
}

func (c *chunkPort) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func (c *chunkPort) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wrote.Write(p)
}

func (c *chunkPort) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func TestRecorder(t *testing.T) {
	port := &chunkPort{}
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	rec := NewRecorder(port, RecordDelays(20*time.Millisecond, clock))
	buf := make([]byte, 256)
	modem := func(chunks ...string) {
		port.mu.Lock()
		port.chunks = append(port.chunks, chunks...)
		port.mu.Unlock()
		for {
			port.mu.Lock()
			left := len(port.chunks)
			port.mu.Unlock()
			if left == 0 {
				return
			}
			rec.Read(buf)
		}
	}
	modem("\r\nRD", "Y\r\n")
	rec.Write([]byte("ATE0\r"))
	modem("ATE0\r", "\r\nOK\r\n") // echo
	rec.Write([]byte("AT+CSQ\r"))
	now = now.Add(50 * time.Millisecond)
	modem("\r\r\n+CSQ: 20,99\r\r\n", "\r\r\nOK\r\r\n")
	rec.Write([]byte("AT+C"))
	rec.Write([]byte("GMI\r\n"))
	modem("\r\nQuectel\r\n\r\nOK\r") // the LF comes later
	rec.Write([]byte("AT\r"))
	modem("\n\r\nOK\r\n", "\xff\x00noise")
	tr := rec.Transcript("rec.txt", "source: TestRecorder", "kind: synthetic")
	var b bytes.Buffer
	tr.WriteTo(&b)
	want := `# source: TestRecorder
# kind: synthetic
< RDY
> ATE0
<< ATE0\r
< OK
> AT+CSQ
~ 50ms
<< \r\r\n
<< +CSQ: 20,99\r\r\n
<< \r\r\n
<< OK\r\r\n
> AT+CGMI
< Quectel
<< \r\n
<< OK\r
> AT
<< \n
< OK
<< \xFF\x00noise
`
	if b.String() != want {
		t.Fatalf("recorded:\n%s\nwant:\n%s", b.String(), want)
	}
	if port.wrote.String() != "ATE0\rAT+CSQ\rAT+CGMI\r\nAT\r" {
		t.Fatalf("host bytes not passed through: %q", port.wrote.String())
	}
	if err := rec.Close(); err != nil || !port.closed {
		t.Fatalf("Close: %v", err)
	}

	// Replayed, the recording gives the host exactly the bytes it saw.
	again := mustParse(t, b.String())
	wantBytes := "\r\nRDY\r\nATE0\r\r\nOK\r\n\r\r\n+CSQ: 20,99\r\r\n\r\r\nOK\r\r\n\r\nQuectel\r\n\r\nOK\r\n\r\nOK\r\n\xff\x00noise"
	if got := string(again.ModemBytes()); got != wantBytes {
		t.Fatalf("replayed bytes %q\nwant %q", got, wantBytes)
	}
}

func TestSplitModemAnyChunking(t *testing.T) {
	streams := []string{
		"\r\nOK\r\n",
		"\r\r\n+CSQ: 20,99\r\r\n\r\r\nOK\r\r\n",
		"ATE0\r\r\nOK\r\n\n\r+X\n\r",
		"\r\n\r\n\r\nOK\r\n\r",
		"garbage\x00\xff\r\nRDY\r\n",
	}
	for _, s := range streams {
		for size := 1; size <= len(s); size++ {
			var steps []Step
			var rest []byte
			for i := 0; i < len(s); i += size {
				end := min(i+size, len(s))
				var st []Step
				st, rest = SplitModem(append(rest, s[i:end]...), false)
				steps = append(steps, st...)
			}
			st, rest := SplitModem(rest, true)
			steps = append(steps, st...)
			var got []byte
			for _, st := range steps {
				got = append(got, st.Wire()...)
			}
			if string(got) != s || len(rest) != 0 {
				t.Fatalf("chunks of %d: bytes %q, want %q (rest %q)", size, got, s, rest)
			}
		}
	}
}

func TestOneByte(t *testing.T) {
	r := OneByte(NewReplayer(mustParse(t, "< +CSQ: 20,99\n")))
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	if n != 1 || err != nil {
		t.Fatalf("OneByte read %d, %v", n, err)
	}
	if got := "\r" + readN(t, r, len("\r\n+CSQ: 20,99\r\n")-1); got != "\r\n+CSQ: 20,99\r\n" {
		t.Fatalf("got %q", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStall(t *testing.T) {
	r := Stall(NewReplayer(mustParse(t, "< 0123456789\n")), 4, time.Millisecond)
	// No read crosses a stall point: reads end at bytes 4, 8, 12, 14.
	var sizes []int
	buf := make([]byte, 64)
	for total := 0; total < 14; {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, n)
		total += n
	}
	if fmt.Sprint(sizes) != "[4 4 4 2]" {
		t.Fatalf("read sizes %v, want [4 4 4 2]", sizes)
	}
	// Close ends a long stall at once.
	r = Stall(NewReplayer(mustParse(t, "< 0123456789\n")), 2, time.Hour)
	readN(t, r, 2)
	done := make(chan error, 1)
	go func() { _, err := r.Read(make([]byte, 8)); done <- err }()
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("read in a stall after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the stall")
	}
}

func TestVanish(t *testing.T) {
	rep := NewReplayer(mustParse(t, "< RDY\n> AT\n< OK\n"))
	v := Vanish(rep, 4)
	buf := make([]byte, 64)
	n, err := v.Read(buf)
	if n != 4 || err != nil || string(buf[:n]) != "\r\nRD" {
		t.Fatalf("first read %q, %v: want the 4 bytes before the port vanishes", buf[:n], err)
	}
	if _, err := v.Read(buf); !errors.Is(err, ErrVanished) {
		t.Fatalf("read after vanishing: %v", err)
	}
	if _, err := v.Write([]byte("AT\r")); !errors.Is(err, ErrVanished) {
		t.Fatalf("write after vanishing: %v", err)
	}
	if err := v.Close(); !errors.Is(err, ErrUnused) {
		t.Fatalf("Close of the replayer under a vanished port: %v, want unused steps", err)
	}
}

func TestCorpusParses(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "*.txt"))
	if len(files) == 0 {
		t.Skip("no corpus")
	}
	for _, f := range files {
		tr, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		tr.WriteTo(&b)
		orig, _ := os.ReadFile(f)
		again, err := Parse(tr.Name, &b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.ModemBytes(), tr.ModemBytes()) || strings.Join(again.HostLines(), "\n") != strings.Join(tr.HostLines(), "\n") {
			t.Errorf("%s: written and parsed again, the session changed", f)
		}
		_ = orig
	}
	if _, err := Load(filepath.Join("..", "testdata", "no-such-file.txt")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}
