package atmodem

import (
	"strings"
	"testing"
)

// Replies real firmware gives that the parsers used to misread (issue 13).
// Each of these failed before the fix: the wrong value, or an error where
// the line is well understood. Identifiers are fictional.

func TestRegistrationAsFirmwarePrintsIt(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		query bool
		want  string
	}{
		// Unquoted digits are hex, as quoted ones are (27.007 <lac>/<tac>/<ci>
		// are hex strings): the old reading took them for decimal.
		{"unquoted tac digits", "+CEREG: 1,2345,12345678,7", false, "stat=1/home lac=- tac=2345 ci=12345678 act=7"},
		{"unquoted lac digits query", "+CGREG: 2,5,4321,1234,2", true, "stat=5/roaming lac=4321 tac=- ci=1234 act=2"},
		// The <rac> of 27.007 v8.6 between <tac> and <ci> (Novatel E362
		// shape): the old reading took the RAC for the cell id.
		{"cereg rac inserted query", "+CEREG: 2,1, 1A2B, 20 ,1A2D101 ,7", true, "stat=1/home lac=- tac=1A2B ci=1A2D101 act=7"},
		{"cereg rac inserted urc", "+CEREG: 1, 1A2B, 3F ,1A2D101 ,7", false, "stat=1/home lac=- tac=1A2B ci=1A2D101 act=7"},
		// Without its prefix.
		{"bare query reply", `2,1,"1A2B","01A2D101",7`, true, "stat=1/home lac=- tac=1A2B ci=1A2D101 act=7"},
		// A quoted <stat> is no <stat>.
		{"quoted stat", `+CEREG: 2,"1"`, true, "error"},
		// Spaces inside a number: garbled, unknown.
		{"space inside lac", "+CREG: 2,1,  0 5, 2715", true, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRegistrationAs(DomainEPS, tt.line, tt.query)
			if d, ok := DomainOf(tt.line); ok {
				r, err = ParseRegistrationAs(d, tt.line, tt.query)
			}
			got := regString(r)
			if err != nil {
				got = "error"
			}
			if got != tt.want {
				t.Errorf("ParseRegistration(%q) = %s, want %s", tt.line, got, tt.want)
			}
		})
	}
	// A URC whose LAC lost its quotes is not a query reply.
	if IsRegQueryReply("+CREG: 1,0001,0010,0") {
		t.Error(`IsRegQueryReply("+CREG: 1,0001,0010,0") = true`)
	}
}

func TestCPINEveryState(t *testing.T) {
	for code, want := range map[string]string{
		"READY": SIMReady, "SIM PIN": SIMPIN, "SIM PUK": SIMPUK, "SIM PIN2": SIMPIN2, "SIM PUK2": SIMPUK2,
		"PH-SIM PIN": SIMPhSIMPIN, "PH-FSIM PIN": SIMPhFSIMPIN, "PH-FSIM PUK": SIMPhFSIMPUK,
		"PH-NET PIN": SIMPhNetPIN, "PH-NET PUK": SIMPhNetPUK, "PH-NETSUB PIN": SIMPhNetSubPIN,
		"PH-NETSUB PUK": SIMPhNetSubPUK, "PH-SP PIN": SIMPhSPPIN, "PH-SP PUK": SIMPhSPPUK,
		"PH-CORP PIN": SIMPhCorpPIN, "PH-CORP PUK": SIMPhCorpPUK, "NOT INSERTED": SIMAbsent,
	} {
		for _, line := range []string{"+CPIN: " + code, code, `+CPIN: "` + code + `"`} {
			got, err := ParseCPIN(line)
			if err != nil || got != want {
				t.Errorf("ParseCPIN(%q) = %q, %v; want %q", line, got, err, want)
			}
		}
		if SIMLocked(want) != (want != SIMReady && want != SIMAbsent) {
			t.Errorf("SIMLocked(%q) = %v", want, SIMLocked(want))
		}
	}
}

func TestICCIDFromEveryCommand(t *testing.T) {
	const hexy = "89001000A0000000012" // hex digit in the account part
	tests := []struct {
		lines []string
		want  string
	}{
		{[]string{"+CCID: " + hexy}, hexy},
		{[]string{"%XICCID: 8900100000000000001F"}, "8900100000000000001"}, // Nordic
		{[]string{"^ICCID: " + swapBCD("8900100000000000001F")}, "8900100000000000001"},
		{[]string{"+ICCID: 8900100000000000001"}, "8900100000000000001"},
		{[]string{"$ICCID: 8900100000000000001"}, "8900100000000000001"},
		{[]string{"+CCID: 1234567890123456789"}, ""}, // not 89: not an ICCID
	}
	for i, tt := range tests {
		id, err := ParseICCIDLines(tt.lines)
		if id.Reveal() != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("case %d: ParseICCIDLines(%q) = %q, %v", i, tt.lines, id.Reveal(), err)
		}
	}
	id, err := ParseCRSMICCID(`+CRSM: 144,0,"` + swapBCD(hexy+"F") + `"`)
	if err != nil || id.Reveal() != hexy {
		t.Errorf("ParseCRSMICCID with a hex digit = %q, %v", id.Reveal(), err)
	}
}

func TestIMEIWithTrailingFields(t *testing.T) {
	const imei = "000000001234560"
	for _, lines := range [][]string{
		{"+CGSN: " + imei + ",SN0012345678"},
		{imei + " SN: 0012345678"},
		{`+CGSN: "` + imei + `","extra"`},
		{"#CGSN: " + imei},
		{"IMEI: " + imei, "IMEI SV: 12"},
		{"IMEI SV: 12", "IMEI: " + imei},
	} {
		got, err := ParseSerial(lines)
		if err != nil || got.Reveal() != imei {
			t.Errorf("ParseSerial(%q) gave an IMEI of %d characters, %v", lines, len(got.Reveal()), err)
		}
	}
}

func TestSignalAndOperatorWithoutPrefix(t *testing.T) {
	if s, err := ParseCSQ("20,99"); err != nil || sigString(s) != sigString(Signal{RSSIdBm: ptr(-73)}) {
		t.Errorf("ParseCSQ(bare) = %s, %v", sigString(s), err)
	}
	if _, err := ParseCSQ("CSQ: 20,99"); err == nil {
		t.Error("ParseCSQ took another line's value")
	}
	if op, err := ParseCOPS(`0,2,"00101",7`); err != nil || op.MCC == nil || *op.MCC != "001" {
		t.Errorf("ParseCOPS(bare) = %v", err)
	}
	for _, l := range []string{`+COPS: 0,5,"Test"`, `+COPS: 0,,"Test"`, `+COPS: 9`} {
		if _, err := ParseCOPS(l); err == nil {
			t.Errorf("ParseCOPS(%q): no error", l)
		}
	}
	if !strings.Contains(sigString(Signal{}), "-") {
		t.Fatal("sigString changed")
	}
}

func TestEIDFromCGLA(t *testing.T) {
	const eid = "89001012012341234012345678901030" // fictional, check digits valid
	r := "BF3E125A10" + eid + "9000"
	tests := []struct{ line, want string }{
		{`+CGLA: 46,"` + r + `"`, eid},
		{`+CGLA: 46,"` + strings.ToLower(r) + `"`, eid},
		{`+CGLA: 44,"` + r[:len(r)-2] + `"`, ""},                          // cut short
		{`+CGLA: 46,"BF3E125A10` + eid[:31] + `1` + `9000"`, ""},          // check digits wrong
		{`+CGLA: 46,"` + strings.Replace(r, "9000", "6A88", 1) + `"`, ""}, // not found
		{`+CGLA: 47,"` + r + `"`, ""},                                     // length disagrees
		{`+CCHO: 1`, ""},
	}
	for i, tt := range tests {
		got, err := ParseCGLAEID(tt.line)
		if got.Reveal() != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("case %d: ParseCGLAEID gave %d characters, %v", i, len(got.Reveal()), err)
		}
	}
	for _, l := range []string{"1", "+CCHO: 1", `+CCHO: "1"`} {
		if n, err := ParseCCHO([]string{l}); err != nil || n != 1 {
			t.Errorf("ParseCCHO(%q) = %d, %v", l, n, err)
		}
	}
}
