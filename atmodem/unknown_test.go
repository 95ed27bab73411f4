package atmodem_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
)

// Unknown is not different (issue 12): a read that fails, times out or is
// garbled never produces a change event; a real change, confirmed by a
// second read or a URC plus a read, still does. All identifiers here are
// fictional test values (test network 001-01).

// settle waits until the monitor has taken n more full readings after the
// fault was used, so a false event would have been emitted by then.
func (h *monitorHarness) settle(t *testing.T, n int) {
	t.Helper()
	last := h.mon.Status().Time
	h.waitStatus(t, slow(5*time.Second), "monitor stopped reading the modem", func(st *atmodem.Status) bool {
		if st.Time.After(last) {
			last = st.Time
			n--
		}
		return n <= 0
	})
}

// waitStatus waits until cond holds for the monitor's status, looking at
// each change of it; it fails the test with msg after bound.
func (h *monitorHarness) waitStatus(t *testing.T, bound time.Duration, msg string, cond func(*atmodem.Status) bool) {
	t.Helper()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	for {
		st, next := atmodem.StatusWait(h.mon)
		if st != nil && cond(st) {
			return
		}
		select {
		case <-next:
		case <-timer.C:
			t.Fatal(msg)
		}
	}
}

// noEvents fails on any event of the given kinds seen so far.
func (h *monitorHarness) noEvents(t *testing.T, kinds ...atmodem.EventKind) {
	t.Helper()
	for {
		select {
		case ev := <-h.events:
			for _, k := range kinds {
				if ev.Kind == k {
					t.Fatalf("false %s event (%s) after a failed or garbled read", ev.Kind, ev.Source)
				}
			}
		default:
			return
		}
	}
}

// waitUsed waits until the simulator has used a counted override.
func waitUsed(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(slow(5 * time.Second)):
		t.Fatal("the faulty answer was never asked for")
	}
}

var simKinds = []atmodem.EventKind{atmodem.EventSIMChanged, atmodem.EventSIMRemoved, atmodem.EventSIMInserted}

func TestFailedSIMReadIsNoChange(t *testing.T) {
	noAnswer := modemsim.Response{NoAnswer: true, Times: 1}
	for _, tc := range []struct {
		name, dialect, cmd string
		r                  modemsim.Response
	}{
		{"cimi no answer", "generic", "AT+CIMI", noAnswer},
		{"cimi ERROR", "generic", "AT+CIMI", modemsim.Response{Final: "ERROR", Times: 1}},
		{"cimi CME error", "quectel", "AT+CIMI", modemsim.Response{Final: "+CME ERROR: 100", Times: 1}},
		{"cimi delayed past the timeout", "generic", "AT+CIMI",
			modemsim.Response{Lines: []string{"001010000000001"}, Final: "OK", Delay: modemsim.Duration(slow(400 * time.Millisecond)), Times: 1}},
		{"cimi garbled charset", "generic", "AT+CIMI", modemsim.Response{Lines: []string{"00101000000A001"}, Final: "OK", Times: 1}},
		{"cimi garbled length", "generic", "AT+CIMI", modemsim.Response{Lines: []string{"0010100000000010"}, Final: "OK", Times: 1}},
		{"cimi empty", "generic", "AT+CIMI", modemsim.Response{Final: "OK", Times: 1}},
		{"ccid no answer", "generic", "AT+CCID|AT+ICCID|AT+CRSM=176,12258,0,0,10", noAnswer},
		{"ccid ERROR", "generic", "AT+CCID|AT+ICCID|AT+CRSM=176,12258,0,0,10", modemsim.Response{Final: "ERROR", Times: 1}},
		{"ccid garbled", "generic", "AT+CCID|AT+ICCID|AT+CRSM=176,12258,0,0,10", modemsim.Response{Lines: []string{"+CCID: 89001000000000000X1"}, Final: "OK", Times: 1}},
		{"qccid no answer", "quectel", "AT+QCCID|AT+CCID|AT+CRSM=176,12258,0,0,10", noAnswer},
		{"cpin no answer", "generic", "AT+CPIN?", noAnswer},
		{"cpin ERROR", "generic", "AT+CPIN?", modemsim.Response{Final: "ERROR", Times: 1}},
		{"cpin garbled", "simcom", "AT+CPIN?", modemsim.Response{Lines: []string{"+CPIN: RE\x01DY"}, Final: "OK", Times: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has its own simulator and pty
			s, path := startSim(t, `{"dialect": "`+tc.dialect+`"}`)
			h := runMonitor(t, path)
			h.settle(t, 1)
			// cmd lists one or more commands ("|"): every ICCID
			// command fails, so no fallback reads the value.
			var used []<-chan struct{}
			for _, c := range strings.Split(tc.cmd, "|") {
				used = append(used, s.Respond(c, tc.r))
			}
			for _, u := range used {
				waitUsed(t, u)
			}
			h.settle(t, 3)
			h.noEvents(t, simKinds...)
			if st := h.mon.Status(); st.SIM.IMSI.Reveal() != "001010000000001" || st.SIM.ICCID.Reveal() != "8900100000000000001" {
				t.Fatal("status does not show the SIM again after the fault")
			}
		})
	}
}

func TestFailedSIMReadIsUnknownInStatus(t *testing.T) {
	s, path := startSim(t, `{"dialect": "generic"}`)
	h := runMonitor(t, path)
	s.Respond("AT+CIMI", modemsim.Response{Final: "ERROR"}) // until further notice
	h.settle(t, 2)
	st := h.mon.Status()
	if st.SIM.Known() || !st.Unknown(atmodem.ReadIMSI) || st.Unknown(atmodem.ReadICCID) {
		t.Fatalf("IMSI read failing: SIM known %v, IMSI unknown %v", st.SIM.Known(), st.Unknown(atmodem.ReadIMSI))
	}
	if j := st.Revealed(); j.SIM.IMSI != nil {
		t.Fatal("an unknown IMSI is not null in the status JSON")
	}
	h.noEvents(t, simKinds...)
}

// A wrong but well-formed IMSI in one reply is not believed: the second
// read does not agree.
func TestOneOffWrongIMSINotBelieved(t *testing.T) {
	s, path := startSim(t, `{"dialect": "generic"}`)
	h := runMonitor(t, path)
	h.settle(t, 1)
	used := s.Respond("AT+CIMI", modemsim.Response{Lines: []string{"001010000000077"}, Final: "OK", Times: 1})
	waitUsed(t, used)
	h.settle(t, 3)
	h.noEvents(t, simKinds...)
}

// A real swap that the modem does not announce is seen by polling,
// confirmed by the second read, and reported once.
func TestSilentSIMSwapConfirmed(t *testing.T) {
	s, path := startSim(t, `{"dialect": "generic"}`)
	h := runMonitor(t, path)
	h.settle(t, 1)
	s.ReplaceSIM(modemsim.SIMState{IMSI: "001010000000002", ICCID: "8900100000000000002"})
	ev := h.expect(t, slow(3*time.Second), atmodem.EventSIMChanged)[0]
	if ev.Source != "poll" || ev.OldSIM.IMSI.Reveal() != "001010000000001" || ev.NewSIM.IMSI.Reveal() != "001010000000002" {
		t.Fatalf("sim_changed from %s carries the wrong SIMs", ev.Source)
	}
	h.settle(t, 2)
	h.noEvents(t, simKinds...)
}

// A swap announced by URCs is still reported (the URC plus the read).
func TestSIMSwapAfterFaultStillReported(t *testing.T) {
	s, path := startSim(t, `{"dialect": "quectel"}`)
	h := runMonitor(t, path)
	waitUsed(t, s.Respond("AT+CIMI", modemsim.Response{NoAnswer: true, Times: 1}))
	h.settle(t, 1)
	s.RemoveSIM()
	h.expect(t, slow(3*time.Second), atmodem.EventSIMRemoved)
	s.InsertSIM(modemsim.SIMState{IMSI: "001010000000002", ICCID: "8900100000000000002"})
	h.expect(t, slow(3*time.Second), atmodem.EventSIMInserted, atmodem.EventSIMChanged)
}

var cellKinds = []atmodem.EventKind{atmodem.EventCellChanged, atmodem.EventRegistration}

func TestFailedNetworkReadIsNoChange(t *testing.T) {
	for _, tc := range []struct {
		name, cmd string
		r         modemsim.Response
	}{
		{"cereg no answer", "AT+CEREG?", modemsim.Response{NoAnswer: true, Times: 1}},
		{"cereg ERROR", "AT+CEREG?", modemsim.Response{Final: "ERROR", Times: 1}},
		{"cereg OK without reading", "AT+CEREG?", modemsim.Response{Final: "OK", Times: 1}},
		{"cereg garbled tac", "AT+CEREG?", modemsim.Response{Lines: []string{`+CEREG: 2,1,"1Z2B","01A2D101",7`}, Final: "OK", Times: 1}},
		{"cereg garbled cell", "AT+CEREG?", modemsim.Response{Lines: []string{`+CEREG: 2,1,"1A2B","01A2D1010AB0C0",7`}, Final: "OK", Times: 1}},
		{"cereg one-off other cell", "AT+CEREG?", modemsim.Response{Lines: []string{`+CEREG: 2,1,"1A2B","01A2D177",7`}, Final: "OK", Times: 1}},
		{"cereg one-off other area", "AT+CEREG?", modemsim.Response{Lines: []string{`+CEREG: 2,1,"1A2C","01A2D101",7`}, Final: "OK", Times: 1}},
		{"creg no answer", "AT+CREG?", modemsim.Response{NoAnswer: true, Times: 1}},
		{"cops no answer", "AT+COPS?", modemsim.Response{NoAnswer: true, Times: 2}},
		{"cops garbled plmn", "AT+COPS?", modemsim.Response{Lines: []string{`+COPS: 0,2,"0010X",7`}, Final: "OK", Times: 2}},
		{"cops one-off other plmn", "AT+COPS?", modemsim.Response{Lines: []string{`+COPS: 0,2,"00102",7`}, Final: "OK", Times: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has its own simulator and pty
			s, path := startSim(t, `{"dialect": "generic"}`)
			h := runMonitor(t, path)
			h.settle(t, 1)
			used := s.Respond(tc.cmd, tc.r)
			waitUsed(t, used)
			h.settle(t, 3)
			h.noEvents(t, cellKinds...)
		})
	}
}

// A garbled registration URC is no cell change either.
func TestGarbledRegistrationURCIsNoChange(t *testing.T) {
	s, path := startSim(t, `{"dialect": "quectel"}`)
	h := runMonitor(t, path)
	h.settle(t, 1)
	s.URC(`+CEREG: 1,"1A2B","01A2D1#1",7`)
	s.URC(`+CEREG: 1,"1A2B3C4D","01A2D101",7`)
	h.settle(t, 2)
	h.noEvents(t, atmodem.EventCellChanged)
}

// A real cell change seen only by polling is confirmed and reported.
func TestPolledCellChangeConfirmed(t *testing.T) {
	s, path := startSim(t, `{"dialect": "generic"}`)
	h := runMonitor(t, path)
	h.settle(t, 1)
	// Answer the queries with the new cell, with no URC announcing it.
	for _, c := range []string{"AT+CEREG?", "AT+CREG?", "AT+CGREG?"} {
		cmd := c[2 : len(c)-1]
		s.Respond(c, modemsim.Response{Lines: []string{cmd + `: 2,1,"1A2B","01A2D202",7`}, Final: "OK"})
	}
	ev := h.expect(t, slow(3*time.Second), atmodem.EventCellChanged)[0]
	if ev.Source != "poll" || ev.NewReg.CellID == nil || *ev.NewReg.CellID != 0x01a2d202 {
		t.Fatalf("cell event %v", ev)
	}
}

func TestFailedIdentityReadIsUnknown(t *testing.T) {
	for _, tc := range []struct {
		cmd string
		r   modemsim.Response
	}{
		{"AT+CGMR", modemsim.Response{Final: "ERROR"}},
		{"AT+CGMR", modemsim.Response{NoAnswer: true}},
		{"AT+CGMR", modemsim.Response{Lines: []string{strings.Repeat("R1", 100)}, Final: "OK"}}, // garbled: too long
	} {
		s, path := startSim(t, `{"dialect": "generic"}`)
		s.Respond(tc.cmd, tc.r)
		h := runMonitor(t, path)
		st := h.mon.Status()
		if !st.Unknown(atmodem.ReadRevision) || st.Modem.Revision != "" || st.Unknown(atmodem.ReadModel) {
			t.Fatalf("%s failing: revision unknown %v", tc.cmd, st.Unknown(atmodem.ReadRevision))
		}
	}
}
