package modemsim_test

import (
	"bufio"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem/modemsim"
)

// host is the test's end of an in-process pipe to a Sim. A net.Pipe has
// no buffer, so a reader goroutine takes every line the Sim writes (an
// answer or a URC the test caused) as it comes.
type host struct {
	t     *testing.T
	c     net.Conn
	lines chan string
}

func serve(t *testing.T, scenario string) (*modemsim.Sim, *host) {
	t.Helper()
	sc, err := modemsim.Parse([]byte(scenario))
	if err != nil {
		t.Fatal(err)
	}
	s := modemsim.New(sc)
	a, b := net.Pipe()
	go s.Serve(a)
	h := &host{t: t, c: b, lines: make(chan string, 256)}
	go func() {
		defer close(h.lines)
		rd := bufio.NewReader(b)
		for {
			l, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			h.lines <- strings.TrimRight(l, "\r\n")
		}
	}()
	t.Cleanup(func() { b.Close(); a.Close(); s.Stop() })
	h.cmd("ATE0") // the echo off, as the agent starts
	return s, h
}

// cmd sends one command line and returns the lines before the final
// result code (information lines, and any URC in between) and that code;
// no final result within the bound fails the test.
func (h *host) cmd(line string) ([]string, string) {
	h.t.Helper()
	if _, err := h.c.Write([]byte(line + "\r")); err != nil {
		h.t.Fatalf("%s: %v", line, err)
	}
	var info []string
	bound := time.After(5 * time.Second)
	for {
		select {
		case l, ok := <-h.lines:
			switch {
			case !ok:
				h.t.Fatalf("%s: connection closed; got %q", line, info)
			case l == "" || l == line: // blank lines, the echo before ATE0
			case l == "OK" || l == "ERROR" || strings.HasPrefix(l, "+CME ERROR:"):
				return info, l
			default:
				info = append(info, l)
			}
		case <-bound:
			h.t.Fatalf("%s: no final result; got %q", line, info)
		}
	}
}

func TestParseRefusesBadScenarios(t *testing.T) {
	for _, tc := range []struct{ name, json, want string }{
		{"dialect", `{"dialect": "nokia"}`, `dialect "nokia"`},
		{"not JSON", `{"dialect": `, ""},
		{"unknown field", `{"dialekt": "quectel"}`, "dialekt"},
		{"bad duration", `{"timeline": [{"at": "soon", "urc": "+CEREG: 0"}]}`, "soon"},
	} {
		_, err := modemsim.Parse([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error naming %q, got %v", tc.name, tc.want, err)
		}
	}
}

func TestAnswersFromState(t *testing.T) {
	_, h := serve(t, `{"dialect": "quectel", "modem": {"manufacturer": "Quectel", "model": "EC25"},
	  "sim": {"state": "ready", "imsi": "001010000000001", "iccid": "8900100000000000001"}}`)
	if info, final := h.cmd("AT+CGMI"); final != "OK" || len(info) != 1 || info[0] != "Quectel" {
		t.Fatalf("AT+CGMI: %q %s", info, final)
	}
	if info, final := h.cmd("AT+CIMI"); final != "OK" || len(info) != 1 || info[0] != "001010000000001" {
		t.Fatalf("AT+CIMI: %q %s", info, final)
	}
	if info, final := h.cmd("AT+CPIN?"); final != "OK" || len(info) != 1 || info[0] != "+CPIN: READY" {
		t.Fatalf("AT+CPIN?: %q %s", info, final)
	}
	if _, final := h.cmd("AT+NOSUCHCOMMAND"); final == "OK" {
		t.Fatal("an unknown command answered OK")
	}
}

func TestOverridesCountedAndUsed(t *testing.T) {
	s, h := serve(t, `{"dialect": "generic", "responses": {"AT+CSQ": "ERROR"}}`)
	if _, final := h.cmd("AT+CSQ"); final != "ERROR" {
		t.Fatalf("the scenario's override: %s", final)
	}
	used := s.Respond("AT+CGMM", modemsim.Response{Lines: []string{"ODD MODEL"}, Final: "OK", Times: 1})
	if info, _ := h.cmd("AT+CGMM"); len(info) != 1 || info[0] != "ODD MODEL" {
		t.Fatalf("the override: %q", info)
	}
	select {
	case <-used:
	default:
		t.Fatal("the override's channel is not closed once used")
	}
	if info, _ := h.cmd("AT+CGMM"); len(info) == 1 && info[0] == "ODD MODEL" {
		t.Fatal("a Times: 1 override answered twice")
	}
}

func TestSIMRemovedAndSwapped(t *testing.T) {
	s, h := serve(t, `{"dialect": "generic", "sim": {"state": "ready", "imsi": "001010000000001", "iccid": "8900100000000000001"}}`)
	s.Apply(modemsim.Step{SIM: []byte(`"remove"`)})
	if _, final := h.cmd("AT+CPIN?"); final == "OK" {
		t.Fatal("AT+CPIN? answered OK with the SIM removed")
	}
	s.ReplaceSIM(modemsim.SIMState{State: "ready", IMSI: "001010000000002", ICCID: "8900100000000000002"})
	if info, final := h.cmd("AT+CIMI"); final != "OK" || !slices.Contains(info, "001010000000002") {
		t.Fatalf("AT+CIMI after the swap: %q %s", info, final) // (a URC of the swap may come first)
	}
}
