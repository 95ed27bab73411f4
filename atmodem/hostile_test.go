package atmodem_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/atmodem/at"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
)

// A hostile modem (issue 12, "everything bounded"): endless replies, lines
// without end, NULs and bytes that are not UTF-8, URC floods, RDY in the
// middle of a command, over-long +CUSD/+CMGL lines (the class of oFono's
// CVE-2024-7539/7540). Each test checks that nothing false is taken as a
// value, that memory stays bounded and is given back, and that the next
// command works.

// heapWatch samples the heap while a hostile modem runs.
type heapWatch struct {
	base uint64
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func watchHeap() *heapWatch {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w := &heapWatch{base: ms.HeapInuse, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > w.peak.Load() {
				w.peak.Store(ms.HeapInuse)
			}
			select {
			case <-w.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return w
}

// check fails if the heap grew by more than peakMiB during the run, or
// is still more than keptMiB above where it started after a GC.
func (w *heapWatch) check(t *testing.T, peakMiB, keptMiB uint64) {
	t.Helper()
	close(w.stop)
	<-w.done
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	grow := func(v uint64) uint64 {
		if v < w.base {
			return 0
		}
		return v - w.base
	}
	peak, kept := grow(w.peak.Load()), grow(ms.HeapInuse)
	t.Logf("heap in use: +%.1f MiB at peak, +%.2f MiB after", float64(peak)/(1<<20), float64(kept)/(1<<20))
	if peak > peakMiB<<20 {
		t.Errorf("heap in use grew by %.1f MiB during the flood (bound %d MiB)", float64(peak)/(1<<20), peakMiB)
	}
	if kept > keptMiB<<20 {
		t.Errorf("heap in use still %.1f MiB above its start after the flood (bound %d MiB): memory not given back", float64(kept)/(1<<20), keptMiB)
	}
}

// recovers checks that a normal command works again.
func recovers(t *testing.T, e *at.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), slow(10*time.Second))
	defer cancel()
	var err error
	for i := 0; i < 3; i++ {
		var lines []string
		lines, err = e.Run(ctx, at.Cmd{Line: "AT+CSQ", Prefix: "+CSQ:"})
		if err == nil && len(lines) == 1 && lines[0] == "+CSQ: 21,99" {
			return
		}
		if err == nil {
			t.Fatalf("AT+CSQ after the hostile reply: %q", lines)
		}
	}
	t.Fatalf("AT+CSQ after the hostile reply: %v", err)
}

func TestHostileEndlessReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  at.Cmd
		r    modemsim.Response
	}{
		// Ended by the line bound, then the stream is aborted by the
		// resync probe (V.250).
		{"lines", at.Cmd{Line: "AT+CGMR"}, modemsim.Response{Lines: []string{"EVIL1.0"}, Endless: true, Final: "OK"}},
		// Ended by the byte bound.
		{"bytes", at.Cmd{Line: "AT+CGMR"}, modemsim.Response{Lines: []string{strings.Repeat("R", 4000)}, Endless: true, Final: "OK"}},
		// Prefix lines of a query, which are also URCs: none of the late
		// ones is taken for a URC while the reply is drained.
		{"prefixed", at.Cmd{Line: "AT+CEREG?", Prefix: "+CEREG:", Accept: atmodem.IsRegQueryReply},
			modemsim.Response{Lines: []string{`+CEREG: 2,1,"FFFF","0BADCE11",7`}, Endless: true, Final: "OK"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, path := startSim(t, `{"dialect": "generic", "network": {"rssi_dbm": -71}}`)
			s.Respond(tc.cmd.Line, tc.r)
			urcs := newURCLog()
			var n atomic.Int64
			e := openEngine(t, path, nil, at.WithTimeout(slow(3*time.Second)),
				at.WithHandler("+CEREG:", func(l string) { n.Add(1) }), at.WithUnknown(urcs.add))
			w := watchHeap()
			start := time.Now()
			lines, err := e.Run(context.Background(), tc.cmd)
			if !errors.Is(err, at.ErrOverflow) || lines != nil {
				t.Fatalf("endless reply: got %d lines, err %v; want ErrOverflow and no lines", len(lines), err)
			}
			if d := time.Since(start); d > slow(time.Second) {
				t.Errorf("the endless reply took %v to end the command (bound: the byte/line caps, not the timeout)", d)
			}
			s.Respond(tc.cmd.Line, modemsim.Response{Lines: []string{"SIM1.0"}, Final: "OK"})
			recovers(t, e)
			w.check(t, 8, 1)
			if got := n.Load(); got != 0 {
				t.Errorf("%d lines of the drained reply were taken for +CEREG URCs", got)
			}
		})
	}
}

// A modem deaf to the abort, streaming for a while: the command ends at its
// timeout when no bound is reached (the lines are not its reply), memory
// stays bounded, and once the stream stops the engine is in step again.
func TestHostileEndlessReplyEndsAtTimeout(t *testing.T) {
	s, path := startSim(t, `{"dialect": "generic", "network": {"rssi_dbm": -71}}`)
	s.Respond("AT+CSQ", modemsim.Response{Lines: []string{"NOISE NOISE NOISE"}, Endless: true, For: modemsim.Duration(slow(1500 * time.Millisecond)), Final: "OK", Times: 1})
	var unknown atomic.Int64
	// The resync's quiet spell is the engine's default (100 ms), not
	// shorter: a probe whose own OK comes later than the quiet spell after
	// the stream's final is taken for a dropped one, and its OK then ends
	// the next command (seen with 50 ms on a loaded machine).
	e := openEngine(t, path, nil, at.WithTimeout(slow(500*time.Millisecond)), at.WithResync(50*time.Millisecond, slow(100*time.Millisecond)),
		at.WithUnknown(func(string) { unknown.Add(1); time.Sleep(time.Millisecond) }))
	w := watchHeap()
	start := time.Now()
	_, err := e.Run(context.Background(), at.Cmd{Line: "AT+CSQ", Prefix: "+CSQ:"})
	if !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("endless unprefixed reply: err %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > slow(2*time.Second) {
		t.Errorf("command took %v, past its timeout", d)
	}
	recovers(t, e)
	w.check(t, 8, 1)
}

// A 1 MB line without a line end (then OK) is noise: never the revision,
// never an IMEI found in its tail.
func TestHostileMegabyteLine(t *testing.T) {
	const mb = 1 << 20
	t.Run("revision", func(t *testing.T) {
		s, path := startSim(t, `{"dialect": "generic"}`)
		s.Respond("AT+CGMR", modemsim.Response{Long: mb, Raw: `EVIL1.0\r\n`, Final: "OK"})
		h := runMonitorWith(t, path, func(c *atmodem.MonitorConfig) {
			c.EngineOptions = []at.Option{at.WithTimeout(slow(2 * time.Second)), at.WithResync(100*time.Millisecond, 50*time.Millisecond)}
		})
		st := h.mon.Status()
		if !st.Unknown(atmodem.ReadRevision) || st.Modem.Revision != "" {
			t.Fatalf("a 1 MB line became the revision %.40q (unknown %v)", st.Modem.Revision, st.Unknown(atmodem.ReadRevision))
		}
		if st.Unknown(atmodem.ReadModel) || st.Unknown(atmodem.ReadIMEI) || !st.SIM.Known() {
			t.Fatalf("the reads after the 1 MB line failed: %+v", st.Modem)
		}
	})
	t.Run("imei in the tail", func(t *testing.T) {
		s, path := startSim(t, `{"dialect": "generic", "network": {"rssi_dbm": -71}}`)
		s.Respond("AT+CGSN", modemsim.Response{Long: mb, Raw: `350000000000019\r\n`, Final: "OK"})
		e := openEngine(t, path, nil, at.WithTimeout(slow(2*time.Second)))
		w := watchHeap()
		lines, err := e.Command(context.Background(), "AT+CGSN")
		if !errors.Is(err, at.ErrOverflow) {
			t.Fatalf("1 MB line: lines %.60q, err %v; want ErrOverflow", lines, err)
		}
		if imei, perr := atmodem.ParseSerial(lines); perr == nil {
			t.Fatalf("the tail of a 1 MB line became the IMEI %v", imei)
		}
		recovers(t, e)
		w.check(t, 4, 1)
	})
	t.Run("never ends", func(t *testing.T) {
		// No line end and no final result: the command ends at once
		// (not at its timeout) and the next one ends the noise.
		s, path := startSim(t, `{"dialect": "generic", "network": {"rssi_dbm": -71}}`)
		s.Respond("AT+CGMR", modemsim.Response{Long: mb})
		e := openEngine(t, path, nil, at.WithTimeout(slow(5*time.Second)), at.WithResync(100*time.Millisecond, 50*time.Millisecond))
		w := watchHeap()
		start := time.Now()
		if _, err := e.Command(context.Background(), "AT+CGMR"); !errors.Is(err, at.ErrOverflow) {
			t.Fatalf("unending 1 MB line: err %v, want ErrOverflow", err)
		}
		if d := time.Since(start); d > slow(2*time.Second) {
			t.Errorf("took %v", d)
		}
		recovers(t, e)
		w.check(t, 4, 1)
	})
}

// Over-long +CUSD and +CMGL lines (oFono CVE-2024-7539/7540 overflowed on
// these): dropped whole; the command they were in fails; no handler sees a
// piece of them. Real sizes still pass.
func TestHostileOverlongLines(t *testing.T) {
	s, path := startSim(t, `{"dialect": "generic", "network": {"rssi_dbm": -71}}`)
	pdu := strings.Repeat("07911326040000F0", 22) // 352 hex digits: a full SMS PDU
	var listing []string
	for i := 0; i < 100; i++ {
		listing = append(listing, fmt.Sprintf("+CMGL: %d,1,,176", i), pdu)
	}
	s.Respond("AT+CMGL=4", modemsim.Response{Lines: listing, Final: "OK", Times: 1})
	cops := "+COPS: " + strings.TrimSuffix(strings.Repeat(`(2,"Test Network Operator","TestNet","00101",7),`, 40), ",") + ",,(0-4),(0-2)"
	s.Respond("AT+COPS=?", modemsim.Response{Lines: []string{cops}, Final: "OK"})

	var mu sync.Mutex
	var seen []string
	line := make(chan struct{}, 1) // a line reached a handler
	e := openEngine(t, path, nil, at.WithTimeout(slow(2*time.Second)), at.WithResync(100*time.Millisecond, 50*time.Millisecond),
		at.WithHandler("+CUSD:", func(l string) { mu.Lock(); seen = append(seen, l); mu.Unlock(); signal(line) }),
		at.WithUnknown(func(l string) { mu.Lock(); seen = append(seen, l); mu.Unlock(); signal(line) }))
	ctx := context.Background()

	// What real modems send passes.
	if lines, err := e.Command(ctx, "AT+CMGL=4"); err != nil || len(lines) != 200 {
		t.Fatalf("a 100-message +CMGL listing: %d lines, %v", len(lines), err)
	}
	if lines, err := e.Command(ctx, "AT+COPS=?"); err != nil || len(lines) != 1 || lines[0] != cops {
		t.Fatalf("a %d-byte +COPS=? line: %d lines, %v", len(cops), len(lines), err)
	}

	long := `+CMGL: 1,1,,176\r\n` + strings.Repeat("0", 8192) + `\r\n`
	for _, tc := range []struct {
		name, cmd string
		r         modemsim.Response
	}{
		{"cmgl pdu over 4 KiB", "AT+CMGL=4", modemsim.Response{Raw: long, Final: "OK", Times: 1}},
		{"cmgl over 256 lines", "AT+CMGL=4", modemsim.Response{Lines: append(append([]string{}, listing...), listing[:120]...), Final: "OK", Times: 1}},
		{"cusd answer over 4 KiB", "AT+CUSD=1,\"*100#\",15", modemsim.Response{Raw: `\r\n+CUSD: 0,"` + strings.Repeat("00410042", 1024) + `",72\r\n`, Final: "OK", Times: 1}},
	} {
		s.Respond(tc.cmd, tc.r)
		lines, err := e.Command(ctx, tc.cmd)
		if !errors.Is(err, at.ErrOverflow) || lines != nil {
			t.Errorf("%s: %d lines, err %v; want ErrOverflow", tc.name, len(lines), err)
		}
		var oe *at.OverflowError
		if !errors.As(err, &oe) {
			t.Errorf("%s: %v is no *OverflowError", tc.name, err)
		}
		recovers(t, e)
	}
	// An over-long +CUSD URC between commands reaches no handler.
	s.URC(`+CUSD: 0,"` + strings.Repeat("4142", 2048) + `",15`)
	s.URC(`+CUSD: 0,"4142",15`)
	recovers(t, e)
	bound := time.NewTimer(slow(2 * time.Second))
	defer bound.Stop()
	for {
		mu.Lock()
		got := append([]string(nil), seen...)
		mu.Unlock()
		if len(got) > 0 && got[len(got)-1] == `+CUSD: 0,"4142",15` {
			for _, l := range got {
				if len(l) > at.MaxLineBytes || (strings.HasPrefix(l, "+CUSD:") && l != `+CUSD: 0,"4142",15`) || strings.HasPrefix(l, "4142") || strings.HasPrefix(l, "0000") {
					t.Errorf("a piece of an over-long line reached a handler: %.60q (%d bytes)", l, len(l))
				}
			}
			break
		}
		select {
		case <-line:
		case <-bound.C:
			t.Fatalf("the short +CUSD URC never came; handlers saw %d lines", len(got))
		}
	}
}

// signal tells a waiting test that something happened, without blocking.
func signal(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// NULs and bytes that are not UTF-8 in a reply: never a value, no false
// event, and the next command works.
func TestHostileNULsAndInvalidUTF8(t *testing.T) {
	s, path := startSim(t, `{"dialect": "quectel"}`)
	h := runMonitor(t, path)
	for _, r := range []modemsim.Response{
		{Raw: `\r\n\xFF\xFE001010000000002\r\n`, Final: "OK", Times: 1},              // not UTF-8
		{Raw: `\r\n\x00\x00\xC3\x28\x00\r\n\r\n\x80\x80\r\n`, Final: "OK", Times: 1}, // NULs, broken UTF-8, nothing else
		{Raw: `\r\n00101\x000000000\xFF02\r\n`, Final: "OK", Times: 1},               // NUL and a stray byte inside
	} {
		done := s.Respond("AT+CIMI", r)
		waitUsed(t, done)
		h.settle(t, 2)
		h.noEvents(t, simKinds...)
	}
	done := s.Respond(`AT+QENG="servingcell"`, modemsim.Response{Raw: "\\r\\n+QENG: \"servingcell\",\"NOCONN\",\"LTE\",\"FDD\",001,01,\\xFF1A2D1FF,123\\r\\n", Final: "OK", Times: 1})
	waitUsed(t, done)
	h.settle(t, 2)
	h.noEvents(t, append(simKinds, atmodem.EventCellChanged)...)
	if st := h.mon.Status(); st.SIM.IMSI.Reveal() != "001010000000001" {
		t.Fatal("status does not show the SIM after the noise")
	}
}

// 10,000 URCs as fast as the pty takes them: the queue stays bounded
// (oldest dropped), the reader never waits for the slow handler (no
// deadlock: commands run meanwhile), the newest URC is delivered, and
// memory is given back.
func TestHostileURCFlood(t *testing.T) {
	s, path := startSim(t, `{"dialect": "generic", "network": {"rssi_dbm": -71}}`)
	var handled atomic.Int64
	last := make(chan struct{})
	e := openEngine(t, path, nil, at.WithTimeout(slow(2*time.Second)),
		at.WithHandler("+CEREG:", func(l string) {
			handled.Add(1)
			if l == "+CEREG: 5" {
				close(last)
				return
			}
			time.Sleep(100 * time.Microsecond) // a slow handler
		}))
	w := watchHeap()
	pad := strings.Repeat("F", 3000)
	flood := make(chan struct{})
	go func() {
		defer close(flood)
		for i := 0; i < 10000; i++ {
			s.URC(fmt.Sprintf(`+CEREG: 1,"1A2B","%08X",7,%s`, i, pad))
		}
		s.URC("+CEREG: 5")
	}()
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := e.Run(ctx, at.Cmd{Line: "AT+CSQ", Prefix: "+CSQ:"}); err != nil {
			t.Fatalf("command during the flood: %v", err)
		}
	}
	<-flood
	select {
	case <-last:
	case <-time.After(slow(10 * time.Second)):
		t.Fatalf("the newest URC never arrived (%d handled)", handled.Load())
	}
	recovers(t, e)
	w.check(t, 8, 1)
	t.Logf("%d of 10001 URCs handled", handled.Load())
}

// RDY in the middle of a command: the modem restarted and dropped the
// command. RDY is a URC (never a reply line, never the revision), the
// command fails, and the next command works.
func TestHostileRDYMidCommand(t *testing.T) {
	s, path := startSim(t, `{"dialect": "quectel", "network": {"rssi_dbm": -71}}`)
	var rdy atomic.Int64
	e := openEngine(t, path, nil, at.WithTimeout(slow(500*time.Millisecond)), at.WithResync(50*time.Millisecond, 50*time.Millisecond),
		at.WithHandler("RDY", func(string) { rdy.Add(1) }))
	s.Respond("AT+CGMR", modemsim.Response{Raw: `\r\nRDY\r\n\r\n+CPIN: READY\r\n`, Times: 1})
	lines, err := e.Command(context.Background(), "AT+CGMR")
	if err == nil {
		t.Fatalf("a command the modem dropped by restarting answered %q", lines)
	}
	if rev, perr := atmodem.ParseInfo(lines, "+CGMR:"); perr == nil {
		t.Fatalf("RDY mid-command became the revision %q", rev)
	}
	recovers(t, e)
	if rdy.Load() != 1 {
		t.Errorf("RDY handler ran %d times, want 1", rdy.Load())
	}
	// RDY between the lines of an answer is not part of it.
	s.Respond("AT+CGMR", modemsim.Response{Lines: []string{"RDY", "SIM1.0"}, Final: "OK", Times: 1})
	if lines, err := e.Command(context.Background(), "AT+CGMR"); err != nil || len(lines) != 1 || lines[0] != "SIM1.0" {
		t.Fatalf("AT+CGMR with RDY in the middle: %q, %v", lines, err)
	}
}

// firehose is a port that answers every command with bytes without end
// and never a line end: the engine over an in-memory io.ReadWriter.
type firehose struct {
	mu    sync.Mutex
	quiet bool // after the next write: answer "\r\nOK\r\n" per command
	owe   int
}

func (f *firehose) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.quiet {
		if f.owe == 0 {
			f.mu.Unlock()
			time.Sleep(time.Millisecond)
			f.mu.Lock()
			return 0, nil
		}
		f.owe--
		return copy(p, "\r\n+CSQ: 21,99\r\n\r\nOK\r\n"), nil
	}
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func (f *firehose) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.owe++
	return len(p), nil
}

func TestHostileFirehoseInMemory(t *testing.T) {
	f := &firehose{}
	e := at.New(f, at.WithTimeout(slow(2*time.Second)), at.WithResync(50*time.Millisecond, 50*time.Millisecond))
	defer func() { e.Close(); e.Wait() }()
	w := watchHeap()
	if _, err := e.Command(context.Background(), "AT+CGMR"); !errors.Is(err, at.ErrOverflow) {
		t.Fatalf("endless bytes without a line end: %v, want ErrOverflow", err)
	}
	time.Sleep(100 * time.Millisecond) // the noise keeps coming
	f.mu.Lock()
	f.quiet, f.owe = true, 0
	f.mu.Unlock()
	recovers(t, e)
	w.check(t, 4, 1)
}

var _ io.ReadWriter = (*firehose)(nil)
