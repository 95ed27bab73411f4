package at_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem/at"
)

// The engine over in-memory pipes: a scripted modem that the test answers
// command by command. Nothing here sleeps; every wait is on an event with
// a bounded deadline.

const bound = 10 * time.Second // a wait that only a broken engine reaches

type port struct {
	io.Reader
	io.Writer
}

// fakeModem is the modem's side of the pipes: cmds receives each command
// line the engine writes (without CR), send writes bytes to the engine.
type fakeModem struct {
	out  *io.PipeWriter
	cmds chan string
}

func start(t *testing.T, opts ...at.Option) (*at.Engine, *fakeModem) {
	t.Helper()
	fromModem, out := io.Pipe()
	in, toModem := io.Pipe()
	f := &fakeModem{out: out, cmds: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(in)
		sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
			if i := strings.IndexByte(string(data), '\r'); i >= 0 {
				return i + 1, data[:i], nil
			}
			if atEOF && len(data) > 0 {
				return len(data), data, nil
			}
			return 0, nil, nil
		})
		for sc.Scan() {
			f.cmds <- sc.Text()
		}
	}()
	e := at.New(port{fromModem, toModem}, opts...)
	t.Cleanup(func() {
		e.Close()
		out.Close()
		in.Close()
		e.Wait()
	})
	return e, f
}

// expect waits for the engine to send want.
func (f *fakeModem) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-f.cmds:
		if got != want {
			t.Fatalf("engine sent %q, want %q", got, want)
		}
	case <-time.After(bound):
		t.Fatalf("engine did not send %q", want)
	}
}

// answer waits for the engine to send want and answers it with reply. A
// resync probe ("AT") before it, which the engine sends when it has not yet
// read an earlier command's late final result, is answered OK.
func (f *fakeModem) answer(t *testing.T, want, reply string) {
	t.Helper()
	for {
		select {
		case c := <-f.cmds:
			switch c {
			case "AT":
				f.send(t, "\r\nOK\r\n")
				continue
			case want:
				f.send(t, reply)
				return
			}
			t.Fatalf("engine sent %q, want %q", c, want)
		case <-time.After(bound):
			t.Fatalf("engine did not send %q", want)
		}
	}
}

func (f *fakeModem) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(f.out, s); err != nil {
		t.Fatalf("modem write: %v", err)
	}
}

type result struct {
	lines []string
	err   error
}

// run starts c and returns where its result arrives.
func run(e *at.Engine, c at.Cmd) <-chan result {
	ch := make(chan result, 1)
	go func() {
		lines, err := e.Run(context.Background(), c)
		ch <- result{lines, err}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(bound):
		t.Fatal("command did not end")
		return result{}
	}
}

// recorder collects URC lines and signals each one.
type recorder struct {
	mu    sync.Mutex
	lines []string
	got   chan struct{}
}

func newRecorder() *recorder { return &recorder{got: make(chan struct{}, 64)} }

func (r *recorder) add(l string) {
	r.mu.Lock()
	r.lines = append(r.lines, l)
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (r *recorder) waitN(t *testing.T, n int) []string {
	t.Helper()
	for {
		r.mu.Lock()
		got := slices.Clone(r.lines)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.got:
		case <-time.After(bound):
			t.Fatalf("%d URCs arrived, want %d: %q", len(got), n, got)
		}
	}
}

func TestReplyFraming(t *testing.T) {
	e, f := start(t)
	ch := run(e, at.Cmd{Line: "AT+CSQ"})
	f.expect(t, "AT+CSQ")
	// Echo on, CR CR LF line ends, one byte per read.
	for _, b := range []byte("AT+CSQ\r\r\n+CSQ: 20,99\r\r\n\r\nOK\r\n") {
		f.send(t, string(b))
	}
	r := wait(t, ch)
	if r.err != nil || !slices.Equal(r.lines, []string{"+CSQ: 20,99"}) {
		t.Fatalf("reply %q, %v", r.lines, r.err)
	}
}

func TestURCInTheMiddleOfAReply(t *testing.T) {
	urcs := newRecorder()
	e, f := start(t, at.WithHandler("+CEREG:", urcs.add))
	ch := run(e, at.Cmd{Line: "AT+COPS?", Prefix: "+COPS:"})
	f.expect(t, "AT+COPS?")
	f.send(t, "\r\n+CEREG: 5\r\n\r\n+COPS: 0,2,\"00101\",7\r\n\r\n+CEREG: 1\r\n\r\nOK\r\n")
	r := wait(t, ch)
	if r.err != nil || !slices.Equal(r.lines, []string{`+COPS: 0,2,"00101",7`}) {
		t.Fatalf("reply %q, %v", r.lines, r.err)
	}
	if got := urcs.waitN(t, 2); !slices.Equal(got, []string{"+CEREG: 5", "+CEREG: 1"}) {
		t.Fatalf("URCs %q, want both in arrival order", got)
	}

	// Without a prefix, a registered URC is still not reply.
	ch = run(e, at.Cmd{Line: "ATI"})
	f.expect(t, "ATI")
	f.send(t, "\r\nQuectel\r\n\r\n+CEREG: 2\r\n\r\nEG25\r\n\r\nOK\r\n")
	r = wait(t, ch)
	if r.err != nil || !slices.Equal(r.lines, []string{"Quectel", "EG25"}) {
		t.Fatalf("reply %q, %v", r.lines, r.err)
	}
	urcs.waitN(t, 3)
}

// TestWithURCs: the engine knows no URCs of its own; the caller declares
// the ones it does not follow with WithURCs.
func TestWithURCs(t *testing.T) {
	t.Run("default none", func(t *testing.T) {
		e, f := start(t)
		ch := run(e, at.Cmd{Line: "ATI"})
		f.expect(t, "ATI")
		f.send(t, "\r\nQuectel\r\n\r\nRDY\r\n\r\nOK\r\n")
		if r := wait(t, ch); r.err != nil || !slices.Equal(r.lines, []string{"Quectel", "RDY"}) {
			t.Fatalf("reply %q, %v: an undeclared line is reply", r.lines, r.err)
		}
	})
	t.Run("declared", func(t *testing.T) {
		unknown, marks, cereg := newRecorder(), newRecorder(), newRecorder()
		e, f := start(t, at.WithURCs("RDY", "+CEREG:"), at.WithHandler("+CEREG:", cereg.add),
			at.WithHandler("+MARK", marks.add), at.WithUnknown(unknown.add))
		ch := run(e, at.Cmd{Line: "ATI"})
		f.expect(t, "ATI")
		f.send(t, "\r\nQuectel\r\n\r\nRDY\r\n\r\n+CEREG: 1\r\n\r\nOK\r\n")
		if r := wait(t, ch); r.err != nil || !slices.Equal(r.lines, []string{"Quectel"}) {
			t.Fatalf("reply %q, %v: declared URCs are not reply", r.lines, r.err)
		}
		// The handler beats the declaration of the same prefix.
		if got := cereg.waitN(t, 1); got[0] != "+CEREG: 1" {
			t.Fatalf("+CEREG handler got %q", got)
		}
		// URCs are dispatched in order: once +MARK is handled, RDY was
		// dropped, not handed to the unknown handler.
		f.send(t, "\r\nRDY\r\n\r\n+MARK\r\n")
		marks.waitN(t, 1)
		unknown.mu.Lock()
		defer unknown.mu.Unlock()
		if len(unknown.lines) != 0 {
			t.Fatalf("declared URCs reached the unknown handler: %q", unknown.lines)
		}
	})
}

func TestErrors(t *testing.T) {
	e, f := start(t)
	ch := run(e, at.Cmd{Line: `AT+CPIN="1234"`})
	f.expect(t, `AT+CPIN="1234"`)
	f.send(t, "\r\n+CME ERROR: 10\r\n")
	r := wait(t, ch)
	var ce *at.CommandError
	var cme *at.CMEError
	if !errors.As(r.err, &ce) || ce.Cmd != "AT+CPIN" || !errors.As(r.err, &cme) || cme.Code != 10 || !at.IsCME(r.err, at.CMESIMNotInserted) {
		t.Fatalf("err %v, want a CommandError for AT+CPIN wrapping +CME ERROR 10", r.err)
	}
	if strings.Contains(r.err.Error(), "1234") {
		t.Fatalf("error %q shows the command's arguments", r.err)
	}
	for _, tt := range []struct {
		final string
		want  error
	}{
		{"ERROR", at.ErrModemError},
		{"NO CARRIER", at.ErrModemError},
	} {
		ch = run(e, at.Cmd{Line: "ATD"})
		f.expect(t, "ATD")
		f.send(t, "\r\n"+tt.final+"\r\n")
		if r := wait(t, ch); !errors.Is(r.err, tt.want) {
			t.Fatalf("%s: err %v, want %v", tt.final, r.err, tt.want)
		}
	}
	ch = run(e, at.Cmd{Line: "AT+CMGS"})
	f.expect(t, "AT+CMGS")
	f.send(t, "\r\n+CMS ERROR: 500\r\n")
	var cms *at.CMSError
	if r := wait(t, ch); !errors.As(r.err, &cms) || cms.Code != 500 {
		t.Fatalf("err %v, want +CMS ERROR 500", r.err)
	}
}

// TestLateReplyDiscarded: a reply that comes after its command timed out
// is not taken as the next command's.
func TestLateReplyDiscarded(t *testing.T) {
	e, f := start(t, at.WithTimeout(time.Second))
	ch := run(e, at.Cmd{Line: "AT+CGMR", Timeout: 20 * time.Millisecond})
	f.expect(t, "AT+CGMR")
	if r := wait(t, ch); !errors.Is(r.err, at.ErrTimeout) {
		t.Fatalf("err %v, want ErrTimeout", r.err)
	}
	f.send(t, "\r\nREV1\r\n\r\nOK\r\n")
	ch = run(e, at.Cmd{Line: "AT+CSQ"})
	f.answer(t, "AT+CSQ", "\r\n+CSQ: 21,99\r\n\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil || !slices.Equal(r.lines, []string{"+CSQ: 21,99"}) {
		t.Fatalf("reply %q, %v", r.lines, r.err)
	}
}

func TestReplyOverflow(t *testing.T) {
	e, f := start(t)
	ch := run(e, at.Cmd{Line: "AT+CMGL"})
	f.expect(t, "AT+CMGL")
	var b strings.Builder
	for i := 0; i <= at.MaxReplyLines; i++ {
		fmt.Fprintf(&b, "+CMGL: %d\r\n", i)
	}
	f.send(t, b.String()+"OK\r\n")
	r := wait(t, ch)
	var oe *at.OverflowError
	if !errors.Is(r.err, at.ErrOverflow) || !errors.As(r.err, &oe) || oe.Bound != "lines" || r.lines != nil {
		t.Fatalf("reply of %d lines, err %v: want an OverflowError (lines) and no reply", len(r.lines), r.err)
	}
	// The rest of the reply is drained; the next command works.
	ch = run(e, at.Cmd{Line: "AT+CSQ"})
	f.answer(t, "AT+CSQ", "\r\n+CSQ: 21,99\r\n\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil || !slices.Equal(r.lines, []string{"+CSQ: 21,99"}) {
		t.Fatalf("next command: %q, %v", r.lines, r.err)
	}
}

func TestClosedPort(t *testing.T) {
	e, f := start(t)
	ch := run(e, at.Cmd{Line: "AT"})
	f.expect(t, "AT")
	f.out.CloseWithError(errors.New("usb gone"))
	if r := wait(t, ch); !errors.Is(r.err, at.ErrClosed) {
		t.Fatalf("err %v, want ErrClosed", r.err)
	}
	select {
	case <-e.Done():
	case <-time.After(bound):
		t.Fatal("Done not closed after the port failed")
	}
	if !errors.Is(e.Err(), at.ErrClosed) {
		t.Fatalf("Err() = %v", e.Err())
	}
	if _, err := e.Command(context.Background(), "AT"); !errors.Is(err, at.ErrClosed) {
		t.Fatalf("command after the port failed: %v", err)
	}
}

// TestNoiseNeverReply: a line that is not UTF-8 (a baud mismatch, a modem
// waking up) and control bytes never reach a reply; the noise line goes
// to the unknown handler, so it is seen.
func TestNoiseNeverReply(t *testing.T) {
	unknown := newRecorder()
	e, f := start(t, at.WithUnknown(unknown.add))
	ch := run(e, at.Cmd{Line: "AT+CGMI"})
	f.expect(t, "AT+CGMI")
	f.send(t, "\r\n\xff\xfe\x80noise\r\n\r\nGen\x00er\x1bic\r\n\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil || !slices.Equal(r.lines, []string{"Generic"}) {
		t.Fatalf("reply %q, %v", r.lines, r.err)
	}
	if got := unknown.waitN(t, 1); got[0] != "\xff\xfe\x80noise" {
		t.Fatalf("unknown handler got %q", got)
	}
}

// TestOverlongLine: a line over MaxLineBytes ends the command with an
// OverflowError and is never cut into lines; the next command works.
func TestOverlongLine(t *testing.T) {
	e, f := start(t)
	ch := run(e, at.Cmd{Line: "AT+CUSD=1"})
	f.expect(t, "AT+CUSD=1")
	f.send(t, "\r\n+CUSD: 0,\""+strings.Repeat("A", at.MaxLineBytes)+"\"\r\n\r\nOK\r\n")
	r := wait(t, ch)
	var oe *at.OverflowError
	if !errors.As(r.err, &oe) || oe.Bound != "line" || oe.Limit != at.MaxLineBytes || r.lines != nil {
		t.Fatalf("reply %q, err %v: want an OverflowError (line)", r.lines, r.err)
	}
	ch = run(e, at.Cmd{Line: "AT+CSQ", Prefix: "+CSQ:"})
	f.answer(t, "AT+CSQ", "\r\n+CSQ: 21,99\r\n\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil || !slices.Equal(r.lines, []string{"+CSQ: 21,99"}) {
		t.Fatalf("next command: %q, %v", r.lines, r.err)
	}
}

// TestCancelledCommand: a cancelled command returns the context's error;
// the engine probes before the next one, whose reply is its own.
func TestCancelledCommand(t *testing.T) {
	e, f := start(t, at.WithResync(0, 20*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() {
		_, err := e.Command(ctx, "AT+COPS=?")
		ch <- err
	}()
	f.expect(t, "AT+COPS=?")
	cancel()
	select {
	case err := <-ch:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(bound):
		t.Fatal("cancelled command did not return")
	}
	next := run(e, at.Cmd{Line: "AT+CGMI"})
	// The owed final is not coming: the engine probes at once (no resync
	// wait); the modem answers the probe, then the command.
	f.expect(t, "AT")
	f.send(t, "\r\nOK\r\n")
	f.answer(t, "AT+CGMI", "\r\nGeneric\r\n\r\nOK\r\n")
	if r := wait(t, next); r.err != nil || !slices.Equal(r.lines, []string{"Generic"}) {
		t.Fatalf("reply %q, %v", r.lines, r.err)
	}
}
