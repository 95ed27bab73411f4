package atmodem_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/atmodem/at"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
	"github.com/mtcagent/mtcagent/atmodem/serialport"
	"github.com/mtcagent/mtcagent/atmodem/transcript"
)

// slow scales waits for emulated CPUs.
func slow(d time.Duration) time.Duration {
	if testing.Short() {
		return 4 * d
	}
	return d
}

// startSim serves scenario JSON on a real pty and returns the sim and the
// port path.
func startSim(t *testing.T, scenario string) (*modemsim.Sim, string) {
	t.Helper()
	s, p, err := modemsim.ServeScenarioPTY([]byte(scenario), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return s, p.Path()
}

// openEngine opens path as the agent does and starts an engine on it.
func openEngine(t *testing.T, path string, wrap func(io.ReadWriter) io.ReadWriter, opts ...at.Option) *at.Engine {
	t.Helper()
	port, err := serialport.OpenDevice(path)
	if err != nil {
		t.Fatal(err)
	}
	var rw io.ReadWriter = port
	if wrap != nil {
		rw = wrap(port)
	}
	e := at.New(rw, opts...)
	t.Cleanup(func() {
		e.Close()
		port.Close()
		e.Wait()
	})
	return e
}

type urcLog struct {
	mu    sync.Mutex
	lines []string
	ch    chan string
}

func newURCLog() *urcLog { return &urcLog{ch: make(chan string, 64)} }

func (u *urcLog) add(l string) {
	u.mu.Lock()
	u.lines = append(u.lines, l)
	u.mu.Unlock()
	u.ch <- l
}

func (u *urcLog) wait(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(slow(3 * time.Second))
	for {
		select {
		case l := <-u.ch:
			if l == want {
				return
			}
		case <-timeout:
			t.Fatalf("URC %q never reached its handler", want)
		}
	}
}

// The engine tests below run at.Engine against the simulator through a
// real pty and serialport.OpenDevice (the stack the agent uses); the
// engine's own unit tests, over in-memory pipes, are in atmodem/at.

func TestURCInTheMiddleOfAReply(t *testing.T) {
	_, path := startSim(t, `{"dialect": "quectel",
	  "responses": {
	    "AT+CSQ": ["+CSQ: 20,99", "+CEREG: 1,\"1A2B\",\"01A2D101\",7"],
	    "AT+CGSN": ["+QUSIM: 1", "350000000000001", "+QIND: SMS DONE"],
	    "AT+CEREG?": ["+CEREG: 5,\"1A2C\",\"01A2D102\",7", "+CEREG: 2,1,\"1A2B\",\"01A2D101\",7", "+CEREG: 2"]
	  }}`)
	e := openEngine(t, path, nil)
	urcs := newURCLog()
	e.Handle("+CEREG:", urcs.add)
	e.Handle("+QUSIM:", urcs.add)
	e.Handle("+QIND:", urcs.add)
	ctx := context.Background()

	lines, err := e.Run(ctx, at.Cmd{Line: "AT+CSQ", Prefix: "+CSQ:"})
	if err != nil || len(lines) != 1 || lines[0] != "+CSQ: 20,99" {
		t.Fatalf("CSQ reply = %q, %v", lines, err)
	}
	urcs.wait(t, `+CEREG: 1,"1A2B","01A2D101",7`)

	lines, err = e.Command(ctx, "AT+CGSN")
	if err != nil || len(lines) != 1 || lines[0] != "350000000000001" {
		t.Fatalf("CGSN reply = %q, %v", lines, err)
	}
	urcs.wait(t, "+QUSIM: 1")
	urcs.wait(t, "+QIND: SMS DONE")

	// Same prefix: the query reply (<n>,<stat>,...) stays, the URC forms go.
	lines, err = e.Run(ctx, at.Cmd{Line: "AT+CEREG?", Prefix: "+CEREG:", Accept: atmodem.IsRegQueryReply})
	if err != nil || len(lines) != 1 || lines[0] != `+CEREG: 2,1,"1A2B","01A2D101",7` {
		t.Fatalf("CEREG reply = %q, %v", lines, err)
	}
	urcs.wait(t, `+CEREG: 5,"1A2C","01A2D102",7`)
	urcs.wait(t, "+CEREG: 2")
}

func TestURCsKeepArrivalOrder(t *testing.T) {
	s, path := startSim(t, `{}`)
	e := openEngine(t, path, nil)
	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	const n = 50
	handler := func(l string) {
		mu.Lock()
		got = append(got, l)
		if len(got) == n {
			close(done)
		}
		mu.Unlock()
		time.Sleep(100 * time.Microsecond) // a slow handler must not reorder
	}
	e.Handle("+A:", handler)
	e.Handle("+B:", handler)
	// One command first: a URC the simulator prints before the host has
	// the port open and in raw mode is lost on the pty, as on a real
	// line (the test failed about once in ten under -race for that).
	ctx, cancel := context.WithTimeout(context.Background(), slow(5*time.Second))
	defer cancel()
	if _, err := e.Command(ctx, "AT"); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < n; i++ {
		l := "+A: " + string(rune('a'+i%26))
		if i%3 == 0 {
			l = "+B: " + string(rune('a'+i%26))
		}
		want = append(want, l)
		s.URC(l)
	}
	select {
	case <-done:
	case <-time.After(slow(5 * time.Second)):
		t.Fatal("URCs lost")
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("order:\n got %q\nwant %q", got, want)
	}
}

func TestLateReplyIsDiscarded(t *testing.T) {
	_, path := startSim(t, `{"responses": {"AT+CGMR": {"lines": ["LATE-REVISION"], "delay": "600ms"}}}`)
	e := openEngine(t, path, nil, at.WithResync(2*time.Second, 100*time.Millisecond))
	ctx := context.Background()
	_, err := e.Run(ctx, at.Cmd{Line: "AT+CGMR", Timeout: 150 * time.Millisecond})
	if !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("want timeout, got %v", err)
	}
	var ce *at.CommandError
	if !errors.As(err, &ce) || ce.Cmd != "AT+CGMR" {
		t.Fatalf("want CommandError for AT+CGMR, got %#v", err)
	}
	lines, err := e.Command(ctx, "AT+CGMI")
	if err != nil || len(lines) != 1 || lines[0] != "Generic" {
		t.Fatalf("next command got %q, %v: the late reply leaked into it", lines, err)
	}
}

func TestLateReplyAfterSilenceIsDiscarded(t *testing.T) {
	s, path := startSim(t, `{}`)
	// A short resync wait forces the probe path: the late reply arrives
	// while the probe is out.
	e := openEngine(t, path, nil, at.WithResync(50*time.Millisecond, 300*time.Millisecond))
	ctx := context.Background()
	s.Fault("silence", 400*time.Millisecond)
	if _, err := e.Run(ctx, at.Cmd{Line: "AT+CGSN", Timeout: 100 * time.Millisecond}); !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("want timeout, got %v", err)
	}
	lines, err := e.Command(ctx, "AT+CGMM")
	if err != nil || len(lines) != 1 || lines[0] != "LTE Modem" {
		t.Fatalf("after silence got %q, %v", lines, err)
	}
	lines, err = e.Command(ctx, "AT+CGMI")
	if err != nil || len(lines) != 1 || lines[0] != "Generic" {
		t.Fatalf("second command got %q, %v", lines, err)
	}
}

func TestOneByteReadsAndPartialLines(t *testing.T) {
	s, path := startSim(t, `{"dialect": "simcom"}`)
	e := openEngine(t, path, func(rw io.ReadWriter) io.ReadWriter {
		return struct {
			io.Reader
			io.Writer
		}{iotest.OneByteReader(rw), rw}
	})
	m := atmodem.NewModem(e, nil)
	ctx := context.Background()
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	s.Fault("partial", slow(2*time.Second))
	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dialect != "simcom" || st.SIM.ICCID.Reveal() != "8900100000000000001" || st.Cell == nil || st.Cell.RAT != "lte" {
		t.Fatalf("status over 1-byte reads wrong: dialect %s cell %+v", st.Dialect, st.Cell)
	}
}

// TestGarbageAndEcho: a line of noise from an idle modem reaches the
// unknown-line handler (not silently dropped), and commands still work
// while the modem echoes them.
func TestGarbageAndEcho(t *testing.T) {
	s, path := startSim(t, `{}`)
	e := openEngine(t, path, nil)
	unknown := make(chan string, 16)
	e.HandleUnknown(func(l string) {
		select {
		case unknown <- l:
		default:
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), slow(10*time.Second))
	defer cancel()
	// One command first: the port is open and raw and the engine idle, so
	// the noise is an unsolicited line, not the reply of a command in
	// flight (under load the first command could race the noise).
	if _, err := e.Command(ctx, "AT+CGMI"); err != nil {
		t.Fatal(err)
	}
	s.Fault("garbage", 0)
	// Unknown lines are dispatched in order but asynchronously.
	select {
	case <-unknown:
	case <-ctx.Done():
		t.Fatal("garbage line did not reach the unknown-URC handler: silently dropped")
	}
	s.Fault("echo", 0)
	for i := 0; i < 3; i++ {
		lines, err := e.Command(ctx, "AT+CGMI")
		if err != nil || len(lines) != 1 || lines[0] != "Generic" {
			t.Fatalf("with echo got %q, %v", lines, err)
		}
	}
	_, err := e.Command(ctx, "AT+NOSUCH")
	if !errors.Is(err, at.ErrModemError) {
		t.Fatalf("want ErrModemError, got %v", err)
	}
}

func TestCMEErrorTyped(t *testing.T) {
	_, path := startSim(t, `{"sim": {"state": "absent"}}`)
	e := openEngine(t, path, nil)
	_, err := e.Command(context.Background(), "AT+CIMI")
	var cme *at.CMEError
	if !errors.As(err, &cme) || cme.Code != 10 || !at.IsCME(err, at.CMESIMNotInserted) {
		t.Fatalf("want +CME ERROR 10, got %v", err)
	}
}

func TestContextCancelAndClose(t *testing.T) {
	s, path := startSim(t, `{}`)
	e := openEngine(t, path, nil)
	s.Fault("silence", 300*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := e.Command(ctx, "AT"); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("want deadline error, got %v", err)
	}
	if lines, err := e.Command(context.Background(), "AT+CGMI"); err != nil || lines[0] != "Generic" {
		t.Fatalf("after cancel got %q, %v", lines, err)
	}
}

func testLog() *slog.Logger {
	if os.Getenv("MTC_TEST_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// monitorHarness runs a Monitor on the simulator's pty.
type monitorHarness struct {
	mon    *atmodem.Monitor
	events chan atmodem.Event
	cancel context.CancelFunc
	done   chan struct{}
}

func runMonitor(t *testing.T, path string) *monitorHarness {
	t.Helper()
	return runMonitorWith(t, path, nil)
}

// runMonitorWith is runMonitor with the configuration changed by edit.
func runMonitorWith(t *testing.T, path string, edit func(*atmodem.MonitorConfig)) *monitorHarness {
	t.Helper()
	h := &monitorHarness{events: make(chan atmodem.Event, 256), done: make(chan struct{})}
	cfg := atmodem.MonitorConfig{
		Open: func(ctx context.Context) (io.ReadWriteCloser, error) {
			return serialport.OpenDevice(path)
		},
		Poll:          slow(300 * time.Millisecond),
		BackoffMin:    50 * time.Millisecond,
		BackoffMax:    200 * time.Millisecond,
		EngineOptions: []at.Option{at.WithTimeout(slow(300 * time.Millisecond)), at.WithResync(100*time.Millisecond, 50*time.Millisecond)},
		OnEvent:       func(ev atmodem.Event) { h.events <- ev },
		Log:           testLog(),
	}
	if edit != nil {
		edit(&cfg)
	}
	h.mon = atmodem.NewMonitor(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.mon.Run(ctx); close(h.done) }()
	t.Cleanup(h.stop)
	select {
	case <-h.mon.Ready():
	case <-time.After(slow(5 * time.Second)):
		t.Fatal("monitor never read the modem")
	}
	return h
}

func (h *monitorHarness) stop() {
	h.cancel()
	<-h.done
}

// expect waits for events of the given kinds in order (others between are
// allowed) and returns them.
func (h *monitorHarness) expect(t *testing.T, within time.Duration, kinds ...atmodem.EventKind) []atmodem.Event {
	t.Helper()
	var got []atmodem.Event
	var seen []string
	deadline := time.After(within)
	for len(got) < len(kinds) {
		select {
		case ev := <-h.events:
			seen = append(seen, string(ev.Kind))
			if ev.Kind == kinds[len(got)] {
				got = append(got, ev)
			}
		case <-deadline:
			t.Fatalf("want events %v in order, saw %v", kinds, seen)
		}
	}
	return got
}

func TestSIMSwapEventsInOrder(t *testing.T) {
	for _, dialect := range []string{"generic", "quectel", "simcom"} {
		t.Run(dialect, func(t *testing.T) {
			s, path := startSim(t, `{"dialect": "`+dialect+`"}`)
			h := runMonitor(t, path)
			s.RemoveSIM()
			h.expect(t, slow(3*time.Second), atmodem.EventSIMRemoved)
			s.InsertSIM(modemsim.SIMState{IMSI: "001010000000002", ICCID: "8900100000000000002"})
			evs := h.expect(t, slow(3*time.Second), atmodem.EventSIMInserted, atmodem.EventSIMChanged)
			ch := evs[1]
			if ch.OldSIM.ICCID.Reveal() != "8900100000000000001" || ch.NewSIM.ICCID.Reveal() != "8900100000000000002" {
				t.Fatalf("sim_changed carries the wrong SIMs")
			}
			if st := h.mon.Status(); st.SIM.IMSI.Reveal() != "001010000000002" {
				t.Fatal("status not updated to the new SIM")
			}
		})
	}
}

func TestCellChangeFromURC(t *testing.T) {
	s, path := startSim(t, `{"dialect": "quectel"}`)
	h := runMonitor(t, path)
	cell := uint64(0x01a2d202)
	tac := uint32(0x1a2c)
	s.SetNetwork(modemsim.Network{CellID: &cell, TAC: &tac})
	ev := h.expect(t, slow(2*time.Second), atmodem.EventCellChanged)[0]
	if ev.Source != "urc" || ev.NewReg.CellID == nil || *ev.NewReg.CellID != cell {
		t.Fatalf("cell event %+v", ev)
	}
	stat := 2
	s.SetNetwork(modemsim.Network{Stat: &stat})
	h.expect(t, slow(2*time.Second), atmodem.EventRegistration)
}

func TestRebootRecovers(t *testing.T) {
	s, path := startSim(t, `{"dialect": "quectel"}`)
	h := runMonitor(t, path)
	s.Fault("reboot", 500*time.Millisecond)
	rdy := time.Now().Add(500 * time.Millisecond)
	h.expect(t, slow(3*time.Second), atmodem.EventModemReset)
	// Back to a full status read after RDY, with registration URCs
	// re-enabled, within 2 s of RDY.
	var fresh bool
	recovered := eventually(time.Until(rdy.Add(slow(2*time.Second))), func() bool {
		st := h.mon.Status()
		fresh = st != nil && st.Time.After(rdy) && st.Registration[atmodem.DomainEPS].Registered()
		return fresh && s.URCMode("+CEREG") == 2 && s.URCMode("+CREG") == 2
	})
	if !recovered {
		t.Fatalf("not recovered within 2 s of RDY (fresh status %v, +CEREG URC mode %d)", fresh, s.URCMode("+CEREG"))
	}
	// And a cell change now arrives as a URC.
	for len(h.events) > 0 {
		<-h.events
	}
	cell := uint64(0x0badcafe)
	s.SetNetwork(modemsim.Network{CellID: &cell})
	ev := h.expect(t, slow(time.Second), atmodem.EventCellChanged)[0]
	if ev.Source != "urc" {
		t.Fatalf("cell change seen by %s, not by URC", ev.Source)
	}
}

func TestGenericSilentResetDetected(t *testing.T) {
	s, path := startSim(t, `{"dialect": "generic"}`)
	h := runMonitor(t, path)
	s.Fault("reboot", 200*time.Millisecond) // generic: no RDY; URC setting lost
	h.expect(t, slow(5*time.Second), atmodem.EventModemReset)
}

func TestUnplugReopensWithoutLeaks(t *testing.T) {
	s, path := startSim(t, `{"dialect": "quectel"}`)
	h := runMonitor(t, path)
	base := runtime.NumGoroutine()
	for _, d := range []time.Duration{3 * time.Second, 600 * time.Millisecond} {
		s.Fault("unplug", d) // the first for 3 s, as a real re-enumeration can take
		h.expect(t, d+slow(3*time.Second), atmodem.EventPortLost, atmodem.EventPortRegained)
		regained := time.Now()
		// A full reading after the replug (a reading that changed nothing
		// is no event: the status's time is the condition).
		h.waitStatus(t, slow(5*time.Second), "no status after replug", func(st *atmodem.Status) bool {
			return st.Time.After(regained) && st.SIM.State == atmodem.SIMReady
		})
	}
	// The engines of the lost sessions end (bounded: a loaded machine is
	// slow to schedule them, not wrong).
	if !eventually(slow(5*time.Second), func() bool { return runtime.NumGoroutine() <= base+2 }) {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines grew from %d to %d after unplugs:\n%s", base, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
}

// eventually reports whether cond holds within bound. Only for conditions
// no event announces (a goroutine count, the simulator's URC modes); it
// looks again every 2 ms.
func eventually(bound time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	look := time.NewTicker(2 * time.Millisecond)
	defer look.Stop()
	for !cond() {
		select {
		case <-look.C:
		case <-deadline.C:
			return cond()
		}
	}
	return true
}

// The simulator's transcript keeps what a real capture would: an echo and
// garbage are raw steps, so a replay gives the host the same bytes.
func TestSimRecordsEchoAndGarbage(t *testing.T) {
	s, path := startSim(t, `{}`)
	var rec syncBuffer
	s.Record(&rec)
	e := openEngine(t, path, nil)
	s.Fault("echo", 0)
	s.Fault("garbage", 0)
	if _, err := e.Command(context.Background(), "AT+CGMI"); err != nil {
		t.Fatal(err)
	}
	tr, err := transcript.Parse("sim", bytes.NewReader(rec.Bytes()))
	if err != nil {
		t.Fatalf("the recording does not parse: %v\n%s", err, rec.Bytes())
	}
	var echo, noise bool
	for _, st := range tr.Steps {
		if st.Kind != transcript.ModemRaw {
			continue
		}
		echo = echo || st.Text == "AT+CGMI\r"
		noise = noise || strings.HasPrefix(st.Text, "\r\n") && len(st.Text) > 4
	}
	if !echo || !noise {
		t.Fatalf("echo recorded %v, garbage recorded %v:\n%s", echo, noise, rec.Bytes())
	}
}
