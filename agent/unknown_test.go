package agent

import (
	"crypto/ed25519"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem/modemsim"
	"github.com/mtcagent/mtcagent/attest"
)

// Unknown is not different (issue 12): a failed or garbled SIM read never
// signs a SIM event and never drives the binding policy. Identifiers here
// are fictional test values.

func lockConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Poll = slow(300 * time.Millisecond)
	cfg.Heartbeat = 0
	cfg.BindingAction = attest.ActionLock
	cfg.StateDir = filepath.Join(t.TempDir(), "state") // kept across the restart
	return cfg
}

// settle waits for n more full readings of the modem.
func (h *harness) settle(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(slow(5 * time.Second))
	var last time.Time
	if st := h.a.Status(); st != nil {
		last = st.Time
	}
	for n > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the agent stopped reading the modem")
		}
		if st := h.a.Status(); st != nil && st.Time.After(last) {
			last = st.Time
			n--
			continue
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// signedEvents returns the event names of every queued message, verified.
func (h *harness) signedEvents(t *testing.T) []string {
	t.Helper()
	key, _, err := attest.LoadOrCreateDeviceKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	v := &attest.Verifier{Key: key.Public().(ed25519.PublicKey), SkipFreshness: true}
	var out []string
	for _, msg := range h.out.Messages() {
		res, err := v.Verify(msg[1:])
		if err != nil {
			t.Fatalf("queued message does not verify: %v", err)
		}
		out = append(out, res.Token.Event)
	}
	return out
}

func (h *harness) noSignedSIMEvent(t *testing.T) {
	t.Helper()
	for _, e := range h.signedEvents(t) {
		switch e {
		case "sim_changed", "sim_removed", "sim_restored":
			t.Fatalf("a failed SIM read signed %s", e)
		}
	}
	for _, e := range h.a.Recent() {
		switch e.Type {
		case "sim_changed", "sim_removed", "sim_restored":
			t.Fatalf("a failed SIM read queued %s", e.Type)
		}
	}
}

func TestFailedSIMReadNeitherReportsNorLocks(t *testing.T) {
	for _, tc := range []struct {
		name, dialect, cmd string
		r                  modemsim.Response
	}{
		{"cimi no answer", "generic", "AT+CIMI", modemsim.Response{NoAnswer: true, Times: 1}},
		{"cimi ERROR", "quectel", "AT+CIMI", modemsim.Response{Final: "ERROR", Times: 1}},
		{"cimi garbled", "generic", "AT+CIMI", modemsim.Response{Lines: []string{"0010100000000019999"}, Final: "OK", Times: 1}},
		{"ccid no answer", "generic", "AT+CCID|AT+ICCID|AT+CRSM=176,12258,0,0,10", modemsim.Response{NoAnswer: true, Times: 1}},
		{"ccid ERROR", "generic", "AT+CCID|AT+ICCID|AT+CRSM=176,12258,0,0,10", modemsim.Response{Final: "ERROR", Times: 1}},
		{"qccid garbled", "quectel", "AT+QCCID|AT+CCID|AT+CRSM=176,12258,0,0,10", modemsim.Response{Lines: []string{"+QCCID: 89001000000000000G1"}, Final: "OK", Times: 1}},
		{"cpin no answer", "generic", "AT+CPIN?", modemsim.Response{NoAnswer: true, Times: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := lockConfig(t)
			h := start(t, `{"dialect": "`+tc.dialect+`"}`, cfg)
			h.waitFor(t, "sim_bound")
			// cmd lists one or more commands ("|"): every ICCID
			// command fails, so no fallback reads the value.
			var used []<-chan struct{}
			for _, c := range strings.Split(tc.cmd, "|") {
				used = append(used, h.sim.Respond(c, tc.r))
			}
			for _, u := range used {
				select {
				case <-u:
				case <-time.After(slow(5 * time.Second)):
					t.Fatal("the faulty answer was never asked for")
				}
			}
			h.settle(t, 3)
			h.noSignedSIMEvent(t)
			if h.a.Policy().Locked() {
				t.Fatal("a failed SIM read locked the device")
			}
			// And after a restart with the same SIM, still not locked.
			h.stop()
			h2 := start(t, `{"dialect": "`+tc.dialect+`"}`, cfg)
			h2.settle(t, 2)
			if h2.a.Policy().Locked() {
				t.Fatal("locked after a restart with the same SIM")
			}
			h2.noSignedSIMEvent(t)
		})
	}
}

// A SIM whose identity cannot be read at start is not observed; once it
// is read, the binding is checked (here: the bound SIM, so no event).
func TestSIMUnknownAtStartObservedLater(t *testing.T) {
	cfg := lockConfig(t)
	h := start(t, `{}`, cfg)
	h.waitFor(t, "sim_bound")
	h.stop()
	h2 := start(t, `{"responses": {"AT+CIMI": {"final": "ERROR", "times": 3}}}`, cfg)
	h2.settle(t, 4)
	if h2.a.Policy().Locked() {
		t.Fatal("an unreadable IMSI at start locked the device")
	}
	h2.noSignedSIMEvent(t)
}

// A real swap is still reported and, with lock, locks.
func TestRealSwapStillLocks(t *testing.T) {
	cfg := lockConfig(t)
	h := start(t, `{"dialect": "generic"}`, cfg)
	h.waitFor(t, "sim_bound")
	h.sim.ReplaceSIM(modemsim.SIMState{IMSI: "001010000000002", ICCID: "8900100000000000002"})
	h.waitFor(t, "sim_changed")
	if !h.a.Policy().Locked() {
		t.Fatal("a confirmed SIM swap did not lock")
	}
}

// A failed or garbled identity read after a restart is no firmware change.
func TestFailedRevisionReadIsNoFirmwareChange(t *testing.T) {
	for _, resp := range []string{`"ERROR"`, `{"no_answer": true}`, `["` + strings.Repeat("R1", 100) + `"]`} {
		cfg := DefaultConfig()
		cfg.Heartbeat = 0
		cfg.Poll = slow(300 * time.Millisecond)
		cfg.StateDir = filepath.Join(t.TempDir(), "state")
		h := start(t, `{"modem": {"revision": "R1"}}`, cfg)
		h.waitFor(t, "sim_bound")
		h.stop()
		h2 := start(t, `{"modem": {"revision": "R1"}, "responses": {"AT+CGMR": `+resp+`}}`, cfg)
		h2.settle(t, 2)
		for _, e := range h2.a.Recent() {
			if e.Type == "firmware_changed" {
				t.Fatalf("AT+CGMR answered %s: a false firmware_changed", resp)
			}
		}
	}
}
