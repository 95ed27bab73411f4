package atmodem

import (
	"fmt"
	"strings"
	"testing"
)

// The lines below are as modems print them: the forms of TS 27.007 and the
// examples of the Quectel EC2x/BG9x/RG50x and SIMCom SIM7000/SIM7600/SIM8200
// AT manuals, including their odd ones. Every identifier is fictional: the
// test network 001-01, IMSI 00101..., ICCID 8900100..., IMEI 35000000....

func opt[T any](p *T) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func optHex[T uint32 | uint64](p *T) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%X", *p)
}

func regString(r *Registration) string {
	if r == nil {
		return "nil"
	}
	return fmt.Sprintf("stat=%d/%s lac=%s tac=%s ci=%s act=%s", r.Stat, r.State, optHex(r.LAC), optHex(r.TAC), optHex(r.CellID), opt(r.AcT))
}

func TestParseRegistration(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		query bool
		dom   Domain
		want  string // regString, or "error"
	}{
		// +CREG (CS), 27.007 §7.2
		{"creg n=0", "+CREG: 0,1", true, DomainCS, "stat=1/home lac=- tac=- ci=- act=-"},
		{"creg n=1", "+CREG: 1,5", true, DomainCS, "stat=5/roaming lac=- tac=- ci=- act=-"},
		{"creg n=2", `+CREG: 2,1,"1A2B","01A2D101",7`, true, DomainCS, "stat=1/home lac=1A2B tac=- ci=1A2D101 act=7"},
		{"creg n=2 gsm no act", `+CREG: 2,1,"00C3","0000A1B2"`, true, DomainCS, "stat=1/home lac=C3 tac=- ci=A1B2 act=-"},
		{"creg n=2 not registered", "+CREG: 2,2", true, DomainCS, "stat=2/searching lac=- tac=- ci=- act=-"},
		{"creg n=3 with cause", `+CREG: 3,3,"1A2B","01A2D101",7,0,11`, true, DomainCS, "stat=3/denied lac=1A2B tac=- ci=1A2D101 act=7"},
		{"creg urc stat only", "+CREG: 1", false, DomainCS, "stat=1/home lac=- tac=- ci=- act=-"},
		{"creg urc location", `+CREG: 5,"1A2B","01A2D101",2`, false, DomainCS, "stat=5/roaming lac=1A2B tac=- ci=1A2D101 act=2"},
		{"creg urc lower-case hex", `+CREG: 1,"1a2b","01a2d101",7`, false, DomainCS, "stat=1/home lac=1A2B tac=- ci=1A2D101 act=7"},
		// Unquoted location fields are hex too (27.007 defines them as
		// hex strings; ModemManager reads them the same way).
		{"creg unquoted digits are hex", "+CREG: 2,1,6699,27447553,7", true, DomainCS, "stat=1/home lac=6699 tac=- ci=27447553 act=7"},
		{"creg unquoted hex letters", "+CREG: 2,1,1A2B,1A2D101,7", true, DomainCS, "stat=1/home lac=1A2B tac=- ci=1A2D101 act=7"},
		{"creg unquoted zero-padded hex", "+CREG: 2,1,0012,00012345,0", true, DomainCS, "stat=1/home lac=12 tac=- ci=12345 act=0"},
		{"creg 0x prefix", "+CREG: 2,1,0x1A2B,0x01A2D101,7", true, DomainCS, "stat=1/home lac=1A2B tac=- ci=1A2D101 act=7"},
		{"creg empty location", `+CREG: 2,1,,,7`, true, DomainCS, "stat=1/home lac=- tac=- ci=- act=7"},
		{"creg empty quoted location", `+CREG: 2,1,"","",7`, true, DomainCS, "stat=1/home lac=- tac=- ci=- act=7"},
		{"creg no space", `+CREG:2,1,"1A2B","01A2D101",7`, true, DomainCS, "stat=1/home lac=1A2B tac=- ci=1A2D101 act=7"},
		{"creg spaces after commas", `+CREG: 2, 1, "1A2B", "01A2D101", 7`, true, DomainCS, "stat=1/home lac=1A2B tac=- ci=1A2D101 act=7"},
		// +CGREG (PS), §10.1.20: <rac> after <AcT>
		{"cgreg n=2 rac", `+CGREG: 2,1,"1A2B","01A2D101",7,"01"`, true, DomainPS, "stat=1/home lac=1A2B tac=- ci=1A2D101 act=7"},
		{"cgreg urc", `+CGREG: 1,"1A2B","01A2D101",2,"01"`, false, DomainPS, "stat=1/home lac=1A2B tac=- ci=1A2D101 act=2"},
		{"cgreg n=0 idle", "+CGREG: 0,0", true, DomainPS, "stat=0/idle lac=- tac=- ci=- act=-"},
		{"cgreg emergency", "+CGREG: 0,8", true, DomainPS, "stat=8/emergency lac=- tac=- ci=- act=-"},
		// +CEREG (EPS), §10.1.22
		{"cereg n=2", `+CEREG: 2,1,"1A2B","01A2D101",7`, true, DomainEPS, "stat=1/home lac=- tac=1A2B ci=1A2D101 act=7"},
		{"cereg urc n=2", `+CEREG: 1,"1A2B","01A2D101",7`, false, DomainEPS, "stat=1/home lac=- tac=1A2B ci=1A2D101 act=7"},
		{"cereg urc n=1", "+CEREG: 2", false, DomainEPS, "stat=2/searching lac=- tac=- ci=- act=-"},
		{"cereg n=3 reject cause", `+CEREG: 3,3,"1A2B","01A2D101",7,0,15`, true, DomainEPS, "stat=3/denied lac=- tac=1A2B ci=1A2D101 act=7"},
		{"cereg n=4 psm timers", `+CEREG: 4,1,"1A2B","01A2D101",9,,,"00100010","00011110"`, true, DomainEPS, "stat=1/home lac=- tac=1A2B ci=1A2D101 act=9"},
		{"cereg urc n=5 all extras", `+CEREG: 5,"1A2B","01A2D101",8,0,0,"00000101","11100000"`, false, DomainEPS, "stat=5/roaming lac=- tac=1A2B ci=1A2D101 act=8"},
		{"cereg sms only", `+CEREG: 2,6,"1A2B","01A2D101",7`, true, DomainEPS, "stat=6/home_sms_only lac=- tac=1A2B ci=1A2D101 act=7"},
		{"cereg csfb not preferred", `+CEREG: 2,9,"1A2B","01A2D101",7`, true, DomainEPS, "stat=9/home_csfb_not_preferred lac=- tac=1A2B ci=1A2D101 act=7"},
		{"cereg unknown tac", `+CEREG: 2,4,"FFFE","FFFFFFFF",7`, true, DomainEPS, "stat=4/unknown lac=- tac=FFFE ci=FFFFFFFF act=7"},
		{"cereg 3-byte tac", `+CEREG: 2,1,"01A2B3","01A2D101",7`, true, DomainEPS, "stat=1/home lac=- tac=1A2B3 ci=1A2D101 act=7"},
		{"cereg bad act ignored", `+CEREG: 2,1,"1A2B","01A2D101",99`, true, DomainEPS, "stat=1/home lac=- tac=1A2B ci=1A2D101 act=-"},
		// +C5GREG (5GS), §10.1.x: NSSAI after <AcT>; 36-bit NR cell id
		{"c5greg n=2", `+C5GREG: 2,1,"01A2B3","00000000E",11,1,"01"`, true, Domain5GS, "stat=1/home lac=- tac=1A2B3 ci=E act=11"},
		{"c5greg nr cell id", `+C5GREG: 2,1,"00A1B2","A1B2C3D4E",11,2,"01:02"`, true, Domain5GS, "stat=1/home lac=- tac=A1B2 ci=A1B2C3D4E act=11"},
		{"c5greg urc", `+C5GREG: 1,"00A1B2","A1B2C3D4E",11,0,,0,0`, false, Domain5GS, "stat=1/home lac=- tac=A1B2 ci=A1B2C3D4E act=11"},
		{"c5greg emergency", "+C5GREG: 0,11", true, Domain5GS, "stat=11/emergency lac=- tac=- ci=- act=-"},
		{"c5greg not searching", "+C5GREG: 0,0", true, Domain5GS, "stat=0/idle lac=- tac=- ci=- act=-"},
		// out of range and garbage
		// A garbled location is an unknown reading, not a location with
		// a hole (which would compare as a cell change).
		{"tac too wide", `+CEREG: 2,1,"1A2B3C4D","01A2D101",7`, true, DomainEPS, "error"},
		{"cell id too wide", `+CEREG: 2,1,"1A2B","1A2B3C4D5E6F",7`, true, DomainEPS, "error"},
		{"tac not hex", `+CEREG: 2,1,"1Z2B","01A2D101",7`, true, DomainEPS, "error"},
		{"cell id not hex", `+CEREG: 1,"1A2B","01A2D1#1",7`, false, DomainEPS, "error"},
		{"bad stat", "+CEREG: 2,12", true, DomainEPS, "error"},
		{"negative stat", "+CEREG: 2,-1", true, DomainEPS, "error"},
		{"text stat", `+CEREG: 2,"x"`, true, DomainEPS, "error"},
		{"query form too short", "+CEREG: 2", true, DomainEPS, "error"},
		{"empty", "+CEREG:", false, DomainEPS, "error"},
		{"not registration", "+CSQ: 20,99", false, "", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, r, err := ParseRegistration(tt.line, tt.query)
			if tt.want == "error" {
				if err == nil {
					t.Fatalf("ParseRegistration(%q) = %s, want an error", tt.line, regString(r))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRegistration(%q): %v", tt.line, err)
			}
			if d != tt.dom {
				t.Errorf("domain = %q, want %q", d, tt.dom)
			}
			if got := regString(r); got != tt.want {
				t.Errorf("ParseRegistration(%q)\n got %s\nwant %s", tt.line, got, tt.want)
			}
		})
	}
}

func TestRegisteredStates(t *testing.T) {
	for stat := 0; stat <= 11; stat++ {
		r := &Registration{Stat: stat}
		want := stat == 1 || stat == 5 || stat == 6 || stat == 7 || stat == 9 || stat == 10
		if r.Registered() != want {
			t.Errorf("stat %d: Registered() = %v", stat, !want)
		}
		if StatWord(stat) == "" {
			t.Errorf("stat %d has no word", stat)
		}
	}
	var nilReg *Registration
	if nilReg.Registered() {
		t.Error("nil registration counts as registered")
	}
	for _, d := range Domains {
		if got, ok := DomainOf(d.Command() + ": 0,1"); !ok || got != d {
			t.Errorf("DomainOf(%s) = %q, %v", d.Command(), got, ok)
		}
	}
}

func TestIsRegQueryReply(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"+CEREG: 2,1", true},
		{"+CEREG: 0,0", true},
		{`+CEREG: 2,1,"1A2B","01A2D101",7`, true},
		{`+CEREG: 4,1,"1A2B","01A2D101",9,,,"00100010","00011110"`, true},
		{`+C5GREG: 2,1,"00A1B2","A1B2C3D4E",11,1,"01"`, true},
		{"+CREG: 2,1,6699,27447553,7", true},
		{"+CREG:002,001,\"18d8\",\"ffff\"", true}, // Iridium pads with zeros
		{"+CREG: 1,0001,0010,0", false},           // URC, LAC lost its quotes
		{"+CEREG:2,5", true},
		// URCs: <stat> first
		{"+CEREG: 1", false},
		{"+CEREG: 5", false},
		{`+CEREG: 1,"1A2B","01A2D101",7`, false},
		{`+CEREG: 5,"1A2B","01A2D101",7,0,15`, false},
		{`+CGREG: 1,"1A2B","01A2D101",2,"01"`, false},
		// A URC with an unquoted LAC is not a query reply.
		{"+CREG: 1,6699,27447553,7", false},
		{"+CREG: 1,1A2B,1A2D101,7", false},
		{`+CEREG: 1,,,7`, false},
		{"+CEREG", false},
		{"", false},
		{"+CEREG: 9,1", false},
		{"+CEREG: 2,12", false},
	}
	for _, tt := range tests {
		if got := IsRegQueryReply(tt.line); got != tt.want {
			t.Errorf("IsRegQueryReply(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

func TestParseCOPS(t *testing.T) {
	tests := []struct {
		line string
		want string // "mcc/mnc/name" or "error"
	}{
		{`+COPS: 0,2,"00101",7`, "001/01/-"},
		{`+COPS: 0,2,"001010",7`, "001/010/-"},
		{`+COPS: 1,2,"00101"`, "001/01/-"},
		{`+COPS: 0,2,00101,7`, "001/01/-"},
		{`+COPS: 0,2,"001 01",2`, "001/01/-"},
		{`+COPS: 0,0,"Test Network",7`, "-/-/Test Network"},
		{`+COPS: 0,1,"TestNet",0`, "-/-/TestNet"},
		{`+COPS: 0,0,"Test, Network",7`, "-/-/Test, Network"},
		{`+COPS: 0,0,"Test Network",13`, "-/-/Test Network"},
		{"+COPS: 0", "-/-/-"},
		{"+COPS: 2", "-/-/-"},
		{`+COPS: 0,2,"",7`, "-/-/-"},
		{`+COPS: 0,2,"TestNet",7`, "error"},
		{`+COPS: 0,2,"0010",7`, "error"},
		{"+COPS: ", "error"},
		{"+COPS: x", "error"},
		{"+CSQ: 1,2", "error"},
	}
	for _, tt := range tests {
		op, err := ParseCOPS(tt.line)
		got := "error"
		if err == nil {
			got = opt(op.MCC) + "/" + opt(op.MNC) + "/" + opt(op.Name)
		}
		if got != tt.want {
			t.Errorf("ParseCOPS(%q) = %s, want %s (err %v)", tt.line, got, tt.want, err)
		}
	}
}

func TestSplitPLMN(t *testing.T) {
	tests := []struct{ in, mcc, mnc string }{
		{"00101", "001", "01"},
		{"001010", "001", "010"},
		{"001-01", "001", "01"},
		{"001-010", "001", "010"},
		{"001 01", "001", "01"},
		{" 00101 ", "001", "01"},
		{"0010", "", ""},
		{"0010100", "", ""},
		{"001O1", "", ""},
		{"", "", ""},
		{"abcde", "", ""},
	}
	for _, tt := range tests {
		mcc, mnc, err := SplitPLMN(tt.in)
		if (err != nil) != (tt.mcc == "") || mcc != tt.mcc || mnc != tt.mnc {
			t.Errorf("SplitPLMN(%q) = %q, %q, %v; want %q, %q", tt.in, mcc, mnc, err, tt.mcc, tt.mnc)
		}
	}
}

func sigString(s Signal) string {
	return fmt.Sprintf("rssi=%s ber=%s rsrp=%s rsrq=%s", opt(s.RSSIdBm), opt(s.BER), opt(s.RSRPdBm), opt(s.RSRQdB))
}

func TestParseCSQ(t *testing.T) {
	tests := []struct{ line, want string }{
		{"+CSQ: 0,0", "rssi=-113 ber=0 rsrp=- rsrq=-"},
		{"+CSQ: 1,99", "rssi=-111 ber=- rsrp=- rsrq=-"},
		{"+CSQ: 20,99", "rssi=-73 ber=- rsrp=- rsrq=-"},
		{"+CSQ: 31,7", "rssi=-51 ber=7 rsrp=- rsrq=-"},
		{"+CSQ: 99,99", "rssi=- ber=- rsrp=- rsrq=-"},
		{"+CSQ:18,99", "rssi=-77 ber=- rsrp=- rsrq=-"},
		{"+CSQ: 18", "rssi=-77 ber=- rsrp=- rsrq=-"},
		// TD-SCDMA extension (Quectel EC2x manual, 27.007): 100..191, 199
		{"+CSQ: 100,99", "rssi=-116 ber=- rsrp=- rsrq=-"},
		{"+CSQ: 150,99", "rssi=-66 ber=- rsrp=- rsrq=-"},
		{"+CSQ: 191,99", "rssi=-25 ber=- rsrp=- rsrq=-"},
		{"+CSQ: 199,99", "rssi=- ber=- rsrp=- rsrq=-"},
		{"+CSQ: 20,8", "rssi=-73 ber=- rsrp=- rsrq=-"},
		{"+CSQ: 32,99", "error"},
		{"+CSQ: 98,99", "error"},
		{"+CSQ: 192,99", "error"},
		{"+CSQ: -1,99", "error"},
		{"+CSQ: ,99", "error"},
		{"+CSQ: ", "error"},
		{"+CESQ: 1,2,3,4,5,6", "error"},
	}
	for _, tt := range tests {
		s, err := ParseCSQ(tt.line)
		got := "error"
		if err == nil {
			got = sigString(s)
		}
		if got != tt.want {
			t.Errorf("ParseCSQ(%q) = %s, want %s", tt.line, got, tt.want)
		}
	}
}

func TestParseCESQ(t *testing.T) {
	tests := []struct{ line, want string }{
		// LTE: GERAN and UTRA fields unknown
		{"+CESQ: 99,99,255,255,22,46", "rssi=- ber=- rsrp=-95 rsrq=-9"},
		{"+CESQ: 99,99,255,255,0,0", "rssi=- ber=- rsrp=-141 rsrq=-20"},
		{"+CESQ: 99,99,255,255,1,1", "rssi=- ber=- rsrp=-140 rsrq=-19.5"},
		{"+CESQ: 99,99,255,255,34,97", "rssi=- ber=- rsrp=-44 rsrq=-3"},
		{"+CESQ: 99,99,255,255,255,255", "rssi=- ber=- rsrp=- rsrq=-"},
		// GSM (Telit ME910 "2G networks" form)
		{"+CESQ: 40,0,255,255,255,255", "rssi=-71 ber=0 rsrp=- rsrq=-"},
		{"+CESQ: 0,7,255,255,255,255", "rssi=-111 ber=7 rsrp=- rsrq=-"},
		{"+CESQ: 63,99,255,255,255,255", "rssi=-48 ber=- rsrp=- rsrq=-"},
		// UTRA
		{"+CESQ: 99,99,40,30,255,255", "rssi=- ber=- rsrp=- rsrq=-"},
		// 5G modems append SS-RSRQ, SS-RSRP, SS-SINR
		{"+CESQ: 99,99,255,255,20,50,60,70,80", "rssi=- ber=- rsrp=-91 rsrq=-10"},
		{"+CESQ:99,99,255,255,22,46", "rssi=- ber=- rsrp=-95 rsrq=-9"},
		{"+CESQ: 99,99,255,255,35,98", "rssi=- ber=- rsrp=- rsrq=-"},
		{"+CESQ: 99,99,255,255,22", "error"},
		{"+CESQ: ", "error"},
		{"+CSQ: 20,99", "error"},
	}
	for _, tt := range tests {
		s, err := ParseCESQ(tt.line)
		got := "error"
		if err == nil {
			got = sigString(s)
		}
		if got != tt.want {
			t.Errorf("ParseCESQ(%q) = %s, want %s", tt.line, got, tt.want)
		}
	}
}

func TestParseCPIN(t *testing.T) {
	tests := []struct{ line, want string }{
		{"+CPIN: READY", SIMReady},
		{"+CPIN:READY", SIMReady},
		{`+CPIN: "READY"`, SIMReady},
		{"+CPIN: ready", SIMReady},
		{"+CPIN: SIM PIN", SIMPIN},
		{"+CPIN: SIM PUK", SIMPUK},
		// Only READY is ready: PIN2 and the personalisation locks have
		// their own words.
		{"+CPIN: SIM PIN2", SIMPIN2},
		{"+CPIN: SIM PUK2", SIMPUK2},
		{"+CPIN: PH-SIM PIN", SIMPhSIMPIN},
		{"+CPIN: PH-NET PIN", SIMPhNetPIN},
		{"+CPIN: PH-NETSUB PUK", SIMPhNetSubPUK},
		{"+CPIN: PH-XYZ PIN", "error"},     // not a 27.007 code: unknown
		{"+CPIN: NOT INSERTED", SIMAbsent}, // Quectel URC
		{"+CPIN: SIM REMOVED", SIMAbsent},  // SIMCom URC
		{"+CPIN: NO SIM", SIMAbsent},
		{"+CPIN: NOT READY", SIMNotReady}, // 27.007 URC while the SIM goes
		{"+CPIN: R\x00ADY", "error"},      // garbled: not taken as a lock
		{"+CPIN: READY READY", "error"},
		{"+CPIN: ", "error"},
		{"+CPIN:", "error"},
		{"+CSQ: 1,2", "error"},
	}
	for _, tt := range tests {
		got, err := ParseCPIN(tt.line)
		if err != nil {
			got = "error"
		}
		if got != tt.want {
			t.Errorf("ParseCPIN(%q) = %s, want %s", tt.line, got, tt.want)
		}
	}
}

func TestParseSerial(t *testing.T) {
	const imei = "350000000000001"
	tests := []struct {
		lines []string
		want  string
	}{
		{[]string{imei}, imei},                                 // Quectel, SIMCom AT+CGSN
		{[]string{"+CGSN: " + imei}, imei},                     // 27.007 AT+CGSN=1 without quotes
		{[]string{`+CGSN: "` + imei + `"`}, imei},              // 27.007 AT+CGSN=1
		{[]string{"+GSN: " + imei}, imei},                      // AT+GSN on some firmware
		{[]string{"IMEI: " + imei}, imei},                      // ATI-style
		{[]string{"3500000000000012"}, "3500000000000012"},     // IMEISV
		{[]string{"35000000000000"}, "35000000000000"},         // 14 digits, no check digit
		{[]string{"+QUSIM: 1", imei, "+QIND: SMS DONE"}, imei}, // stray lines
		{[]string{"SIM1.0", imei}, imei},
		{[]string{"3500000000"}, ""},
		{[]string{"35000000000000012345"}, ""},
		{[]string{"35000000000000A"}, ""},
		{nil, ""},
	}
	for i, tt := range tests {
		id, err := ParseSerial(tt.lines)
		if id.Reveal() != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("case %d: ParseSerial gave a wrong IMEI (err %v)", i, err)
		}
	}
}

func TestParseCIMI(t *testing.T) {
	const imsi = "001010000000001"
	tests := []struct {
		lines []string
		want  string
	}{
		{[]string{imsi}, imsi},
		{[]string{"+CIMI: " + imsi}, imsi},
		{[]string{`+CIMI: "` + imsi + `"`}, imsi},
		{[]string{" " + imsi + " "}, imsi},
		{[]string{"+QIND: SMS DONE", imsi}, imsi},
		{[]string{"00101000000000"}, "00101000000000"}, // 14-digit IMSI
		{[]string{"0010100000000012"}, ""},
		{[]string{"00101"}, ""},
		{[]string{"+CME ERROR: 10"}, ""},
		{nil, ""},
	}
	for i, tt := range tests {
		id, err := ParseCIMI(tt.lines)
		if id.Reveal() != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("case %d: ParseCIMI gave a wrong IMSI (err %v)", i, err)
		}
	}
}

// swapBCD renders an ICCID as EF_ICCID holds it: F-padded to 20 digits,
// the two digits of each byte swapped.
func swapBCD(iccid string) string {
	for len(iccid) < 20 {
		iccid += "F"
	}
	return unswapBCD(iccid)
}

func TestParseICCIDLines(t *testing.T) {
	const iccid19 = "8900100000000000001"
	const iccid20 = "89001000000000000018"
	tests := []struct {
		lines []string
		want  string
	}{
		{[]string{"+CCID: " + iccid19}, iccid19},               // 27.007-style
		{[]string{`+CCID: "` + iccid20 + `"`}, iccid20},        // u-blox quotes it
		{[]string{"+QCCID: " + iccid20}, iccid20},              // Quectel
		{[]string{"+QCCID: " + iccid19 + "F"}, iccid19},        // Quectel pads with F
		{[]string{"+ICCID: " + iccid19}, iccid19},              // SIMCom AT+CICCID
		{[]string{"#CCID: " + iccid20}, iccid20},               // Telit
		{[]string{"ICCID: " + iccid20}, iccid20},               // Sierra AT!ICCID?
		{[]string{iccid19}, iccid19},                           // SIM800 AT+CCID: bare
		{[]string{"+CCID: " + swapBCD(iccid19)}, iccid19},      // raw EF_ICCID
		{[]string{swapBCD(iccid20)}, iccid20},                  // raw, bare
		{[]string{"+QUSIM: 1", "+QCCID: " + iccid20}, iccid20}, // URC first
		{[]string{"+CCID: 1234"}, ""},
		{[]string{"+CCID: "}, ""},
		{[]string{"ERROR"}, ""},
		{nil, ""},
	}
	for i, tt := range tests {
		id, err := ParseICCIDLines(tt.lines)
		if id.Reveal() != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("case %d: ParseICCIDLines gave a wrong ICCID (err %v)", i, err)
		}
	}
}

func TestParseCRSMICCID(t *testing.T) {
	const iccid19 = "8900100000000000001"
	const iccid20 = "89001000000000000018"
	tests := []struct {
		line string
		want string
	}{
		{`+CRSM: 144,0,"` + swapBCD(iccid19) + `"`, iccid19},
		{`+CRSM: 144,0,"` + swapBCD(iccid20) + `"`, iccid20},
		{`+CRSM: 144,0,"` + strings.ToLower(swapBCD(iccid19)) + `"`, iccid19},
		{`+CRSM: 144,0,` + swapBCD(iccid19), iccid19},
		{`+CRSM:144,0,"` + swapBCD(iccid19) + `"`, iccid19},
		{`+CRSM: 145,16,"` + swapBCD(iccid19) + `"`, iccid19}, // 91xx: proactive command pending
		{`+CRSM: 106,130,""`, ""},                             // 6A82: file not found
		{`+CRSM: 148,4`, ""},                                  // 9404
		{`+CRSM: 144,0,""`, ""},
		{`+CRSM: 144,0,"98001"`, ""},    // odd length
		{`+CRSM: 144,0,"ZZ001000"`, ""}, // not hex
		{`+CRSM: 144,0,"98001000"`, ""}, // too short for an ICCID
		{`+CSQ: 144,0,"98001000"`, ""},  // wrong command
		{`+CRSM: 144,0`, ""},
	}
	for i, tt := range tests {
		id, err := ParseCRSMICCID(tt.line)
		if id.Reveal() != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("case %d: ParseCRSMICCID gave a wrong ICCID (err %v)", i, err)
		}
	}
}

func TestParseInfo(t *testing.T) {
	tests := []struct {
		lines  []string
		prefix string
		want   string
	}{
		{[]string{"Quectel"}, "+CGMI:", "Quectel"},
		{[]string{"EC25"}, "+CGMM:", "EC25"},
		{[]string{"EC25EFAR06A06M4G"}, "+CGMR:", "EC25EFAR06A06M4G"},
		{[]string{"+CGMR: LE20B04SIM7600M22"}, "+CGMR:", "LE20B04SIM7600M22"}, // SIMCom
		{[]string{"SIMCOM INCORPORATED"}, "+CGMI:", "SIMCOM INCORPORATED"},
		{[]string{`+CGMI: "u-blox"`}, "+CGMI:", "u-blox"},
		{[]string{"", "  ", "Telit"}, "+CGMI:", "Telit"},
		{[]string{"+CGMM:"}, "+CGMM:", ""},
		// URCs in the reply when no handler claims them
		{[]string{"+QUSIM: 1", "Quectel"}, "+CGMI:", "Quectel"},
		{[]string{"RDY", "+CPIN: READY", "EC25", "+QIND: SMS DONE"}, "+CGMM:", "EC25"},
		{[]string{"PB DONE", "SMS DONE", "+CGMR: LE20B04SIM7600G22"}, "+CGMR:", "LE20B04SIM7600G22"},
		{[]string{"+CEREG: 1", "+QUSIM: 1"}, "+CGMI:", ""},
		{nil, "+CGMI:", ""},
	}
	for _, tt := range tests {
		got, err := ParseInfo(tt.lines, tt.prefix)
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("ParseInfo(%q) = %q, %v; want %q", tt.lines, got, err, tt.want)
		}
	}
}

func cellString(c *ServingCell) string {
	if c == nil {
		return "nil"
	}
	return fmt.Sprintf("%s/%s plmn=%s-%s lac=%s tac=%s ci=%s pci=%s arfcn=%s band=%s rsrp=%s rsrq=%s sinr=%s rssi=%s",
		c.RAT, c.State, opt(c.MCC), opt(c.MNC), optHex(c.LAC), optHex(c.TAC), optHex(c.CellID), opt(c.PCI),
		opt(c.EARFCN), opt(c.Band), opt(c.RSRPdBm), opt(c.RSRQdB), opt(c.SINRdB), opt(c.RSSIdBm))
}

func TestParseQENG(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"lte idle (EC25)", []string{`+QENG: "servingcell","NOCONN","LTE","FDD",001,01,1A2D101,123,1300,3,5,5,1A2B,-95,-9,-71,15,0,-,62`},
			"lte/idle plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=1300 band=3 rsrp=-95 rsrq=-9 sinr=15 rssi=-71"},
		{"lte short form (EP06 firmware: ends after CQI)", []string{`+QENG: "servingcell","NOCONN","LTE","FDD",001,01,1A2D101,28,1500,3,3,3,1A2B,-84,-9,-56,21,35`},
			"lte/idle plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=28 arfcn=1500 band=3 rsrp=-84 rsrq=-9 sinr=21 rssi=-56"},
		{"lte connected tdd", []string{`+QENG: "servingcell","CONNECT","LTE","TDD",001,01,A1B2C3,7,38950,41,5,5,FFFE,-101,-12,-70,3,10,12,40`},
			"lte/connected plmn=001-01 lac=- tac=FFFE ci=A1B2C3 pci=7 arfcn=38950 band=41 rsrp=-101 rsrq=-12 sinr=3 rssi=-70"},
		{"lte limited service", []string{`+QENG: "servingcell","LIMSRV","LTE","FDD",001,01,1A2D101,123,1300,3,5,5,1A2B,-120,-18,-90,-5,0,-,2`},
			"lte/limited plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=1300 band=3 rsrp=-120 rsrq=-18 sinr=-5 rssi=-90"},
		{"all-digit hex cell id", []string{`+QENG: "servingcell","NOCONN","LTE","FDD",001,01,1234567,123,1300,3,5,5,2345,-95,-9,-71,15,0,-,62`},
			"lte/idle plmn=001-01 lac=- tac=2345 ci=1234567 pci=123 arfcn=1300 band=3 rsrp=-95 rsrq=-9 sinr=15 rssi=-71"},
		{"cat-m (BG96)", []string{`+QENG: "servingcell","NOCONN","CAT-M","FDD",001,01,1A2D101,123,6300,20,3,3,1A2B,-110,-14,-80,4,-`},
			"cat-m/idle plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=6300 band=20 rsrp=-110 rsrq=-14 sinr=4 rssi=-80"},
		{"emtc (BG95)", []string{`+QENG: "servingcell","NOCONN","eMTC","FDD",001,01,1A2D101,123,6300,20,3,3,1A2B,-110,-14,-80,4,-`},
			"cat-m/idle plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=6300 band=20 rsrp=-110 rsrq=-14 sinr=4 rssi=-80"},
		{"nb-iot (BG95)", []string{`+QENG: "servingcell","NOCONN","NBIoT","FDD",001,01,1A2D101,123,6300,20,0,0,1A2B,-115,-11,-85,2,-`},
			"nb-iot/idle plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=6300 band=20 rsrp=-115 rsrq=-11 sinr=2 rssi=-85"},
		{"gsm", []string{`+QENG: "servingcell","NOCONN","GSM",001,01,1A2B,A1B2,37,62,-,40,255,255,0,35,36,1,-,-,-,-,-,-,-,-,-,"-"`},
			"gsm/idle plmn=001-01 lac=1A2B tac=- ci=A1B2 pci=- arfcn=62 band=- rsrp=- rsrq=- sinr=- rssi=-71"},
		{"wcdma", []string{`+QENG: "servingcell","CONNECT","WCDMA",001,01,1A2B,1A2D101,10737,123,1,-80,-5,-,-,-,-,-`},
			"wcdma/connected plmn=001-01 lac=1A2B tac=- ci=1A2D101 pci=123 arfcn=10737 band=- rsrp=- rsrq=- sinr=- rssi=-"},
		{"nr5g-sa (RM500Q)", []string{`+QENG: "servingcell","NOCONN","NR5G-SA","TDD",001,01,A1B2C3D4E,501,01A2B3,627264,78,12,-85,-11,20,1,-`},
			"nr5g-sa/idle plmn=001-01 lac=- tac=1A2B3 ci=A1B2C3D4E pci=501 arfcn=627264 band=78 rsrp=-85 rsrq=-11 sinr=20 rssi=-"},
		{"en-dc", []string{
			`+QENG: "servingcell","NOCONN"`,
			`+QENG: "LTE","FDD",001,01,1A2D101,123,1300,3,5,5,1A2B,-95,-9,-71,15,0,-,62`,
			`+QENG: "NR5G-NSA",001,01,501,-85,20,-11,627264,78,12,1`,
		}, "lte/idle plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=1300 band=3 rsrp=-95 rsrq=-9 sinr=15 rssi=-71"},
		{"en-dc nr line first", []string{
			`+QENG: "servingcell","CONNECT"`,
			`+QENG: "NR5G-NSA",001,01,501,-85,20,-11,627264,78,12,1`,
			`+QENG: "LTE","FDD",001,01,1A2D101,123,1300,3,5,5,1A2B,-95,-9,-71,15,0,-,62`,
		}, "lte/connected plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=1300 band=3 rsrp=-95 rsrq=-9 sinr=15 rssi=-71"},
		{"en-dc nr only", []string{
			`+QENG: "servingcell","NOCONN"`,
			`+QENG: "NR5G-NSA",001,01,501,-85,20,-11,627264,78,12,1`,
		}, "nr5g-nsa/idle plmn=001-01 lac=- tac=- ci=- pci=501 arfcn=- band=- rsrp=-85 rsrq=-11 sinr=20 rssi=-"},
		{"search", []string{`+QENG: "servingcell","SEARCH"`}, "/searching plmn=--- lac=- tac=- ci=- pci=- arfcn=- band=- rsrp=- rsrq=- sinr=- rssi=-"},
		{"limited without rat", []string{`+QENG: "servingcell","LIMSRV"`}, "/limited plmn=--- lac=- tac=- ci=- pci=- arfcn=- band=- rsrp=- rsrq=- sinr=- rssi=-"},
		{"unquoted servingcell", []string{`+QENG: servingcell,NOCONN,LTE,FDD,001,01,1A2D101,123,1300,3,5,5,1A2B,-95,-9,-71,15,0,-,62`},
			"lte/idle plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=1300 band=3 rsrp=-95 rsrq=-9 sinr=15 rssi=-71"},
		{"truncated lte", []string{`+QENG: "servingcell","NOCONN","LTE","FDD",001,01`},
			"lte/idle plmn=001-01 lac=- tac=- ci=- pci=- arfcn=- band=- rsrp=- rsrq=- sinr=- rssi=-"},
		{"urc among lines", []string{`+QIND: "csq",20,99`, `+QENG: "servingcell","NOCONN","LTE","FDD",001,01,1A2D101,123,1300,3,5,5,1A2B,-95,-9,-71,15,0,-,62`},
			"lte/idle plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=1300 band=3 rsrp=-95 rsrq=-9 sinr=15 rssi=-71"},
		{"unknown rat", []string{`+QENG: "servingcell","NOCONN","CDMA",1,2`}, "/idle plmn=--- lac=- tac=- ci=- pci=- arfcn=- band=- rsrp=- rsrq=- sinr=- rssi=-"},
		{"neighbour cells only", []string{`+QENG: "neighbourcell intra","LTE",1300,123,-9,-95,-71,15,20,10,4,6,2`}, "error"},
		{"empty", nil, "error"},
		{"other lines", []string{"OK", "+CSQ: 20,99"}, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseQENG(tt.lines)
			got := "error"
			if err == nil {
				got = cellString(c)
			}
			if got != tt.want {
				t.Errorf("ParseQENG\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestParseCPSI(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{"lte (SIM7600 manual form)", "+CPSI: LTE,Online,001-01,0x1A2B,27447553,123,EUTRAN-BAND3,1300,5,5,-94,-850,-600,15",
			"lte/idle plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=1300 band=3 rsrp=-85 rsrq=-9.4 sinr=15 rssi=-60"},
		{"lte band 40 tdd", "+CPSI: LTE,Online,001-010,0x21F9,322642,453,EUTRAN-BAND40,39275,4,4,-168,-1126,-773,7",
			"lte/idle plmn=001-010 lac=- tac=21F9 ci=4EC52 pci=453 arfcn=39275 band=40 rsrp=-112.6 rsrq=-16.8 sinr=7 rssi=-77.3"},
		{"lte offline", "+CPSI: LTE,Offline,001-01,0x1A2B,27447553,123,EUTRAN-BAND3,1300,5,5,-94,-850,-600,15",
			"lte/unknown plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=1300 band=3 rsrp=-85 rsrq=-9.4 sinr=15 rssi=-60"},
		{"gsm", "+CPSI: GSM,Online,001-01,0x1a2b,12401,27 EGSM 900,-64,2110,42-42",
			"gsm/idle plmn=001-01 lac=1A2B tac=- ci=3071 pci=- arfcn=- band=- rsrp=- rsrq=- sinr=- rssi=-64"},
		{"wcdma", "+CPSI: WCDMA,Online,001-01,0x1A2B,27447553,WCDMA IMT 2000,123,10737,0,-5,-80,-20,-60,23",
			"wcdma/idle plmn=001-01 lac=1A2B tac=- ci=1A2D101 pci=- arfcn=- band=- rsrp=- rsrq=- sinr=- rssi=-"},
		{"cat-m1 (SIM7000)", "+CPSI: LTE CAT-M1,Online,001-01,0x1A2B,27447553,123,EUTRAN-BAND20,6300,3,3,-110,-950,-650,12",
			"cat-m/idle plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=6300 band=20 rsrp=-95 rsrq=-11 sinr=12 rssi=-65"},
		{"cat-m1 in plain dB (SIM7000 firmware)", "+CPSI: LTE CAT-M1,Online,001-01,0x1A2B,27447553,123,EUTRAN-BAND3,1650,5,5,-10,-78,-48,17",
			"cat-m/idle plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=1650 band=3 rsrp=-78 rsrq=-10 sinr=17 rssi=-48"},
		{"lte weak signal in tenths", "+CPSI: LTE,Online,001-01,0x1A2B,27447553,123,EUTRAN-BAND20,6300,5,5,-195,-1400,-1050,-5",
			"lte/idle plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=6300 band=20 rsrp=-140 rsrq=-19.5 sinr=-5 rssi=-105"},
		{"nb-iot (SIM7080)", "+CPSI: LTE NB-IOT,Online,001-01,0x1A2B,27447553,123,EUTRAN-BAND8,3740,0,0,-120,-1050,-800,3",
			"nb-iot/idle plmn=001-01 lac=- tac=1A2B ci=1A2D101 pci=123 arfcn=3740 band=8 rsrp=-105 rsrq=-12 sinr=3 rssi=-80"},
		{"nr5g sa (SIM8200)", "+CPSI: NR5G_SA,Online,001-01,0x1A2B3C,12345678901,501,NR5G_BAND78,627264,-800,-110,230",
			"nr5g-sa/idle plmn=001-01 lac=- tac=1A2B3C ci=2DFDC1C35 pci=501 arfcn=627264 band=78 rsrp=-80 rsrq=-11 sinr=23 rssi=-"},
		{"no service", "+CPSI: NO SERVICE,Online", "/searching plmn=--- lac=- tac=- ci=- pci=- arfcn=- band=- rsrp=- rsrq=- sinr=- rssi=-"},
		{"no service low power", "+CPSI: NO SERVICE,Low Power Mode", "/searching plmn=--- lac=- tac=- ci=- pci=- arfcn=- band=- rsrp=- rsrq=- sinr=- rssi=-"},
		{"lte truncated", "+CPSI: LTE,Online", "lte/idle plmn=--- lac=- tac=- ci=- pci=- arfcn=- band=- rsrp=- rsrq=- sinr=- rssi=-"},
		{"lte bad plmn", "+CPSI: LTE,Online,XYZ,0x1A2B,27447553", "lte/idle plmn=--- lac=- tac=1A2B ci=1A2D101 pci=- arfcn=- band=- rsrp=- rsrq=- sinr=- rssi=-"},
		{"cdma", "+CPSI: CDMA,Online,001-01,1,2", "error"},
		{"empty", "+CPSI: ", "error"},
		{"not cpsi", "+CSQ: 20,99", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCPSI(tt.line)
			got := "error"
			if err == nil {
				got = cellString(c)
			}
			if got != tt.want {
				t.Errorf("ParseCPSI(%q)\n got %s\nwant %s", tt.line, got, tt.want)
			}
		})
	}
}

func TestSIMComParseCell(t *testing.T) {
	c, err := SIMCom.ParseCell([]string{"+CPSI: LTE,Online,001-01,0x1A2B,27447553,123,EUTRAN-BAND3,1300,5,5,-94,-850,-600,15"})
	if err != nil || c.RAT != "lte" {
		t.Fatalf("SIMCom.ParseCell: %s, %v", cellString(c), err)
	}
	if _, err := SIMCom.ParseCell([]string{"+CSQ: 20,99"}); err == nil {
		t.Fatal("SIMCom.ParseCell accepted a reply without +CPSI")
	}
}

func TestDialectFor(t *testing.T) {
	tests := []struct{ manufacturer, model, want string }{
		{"Quectel", "EC25", "quectel"},
		{"Quectel", "EG25", "quectel"},
		{"Quectel_Ltd", "Quectel_EC21", "quectel"},
		{"QUECTEL", "BG96", "quectel"},
		{"Quectel", "RM500Q-GL", "quectel"},
		{"SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", "simcom"},
		{"SIMCOM_Ltd", "SIMCOM_SIM7000E", "simcom"},
		{"QUALCOMM INCORPORATED", "SIM7600G-H", "simcom"},
		{"", "SIM7080G", "simcom"},
		{"Telit", "LE910C4-EU", "telit"},
		{"Telit", "ME910C1-WW", "telit"},
		{"Sierra Wireless, Incorporated", "MC7455", "sierra"},
		{"Sierra Wireless, Incorporated", "EM7565", "sierra"},
		{"u-blox", "SARA-R410M-02B", "ublox"},
		{"u-blox", "LARA-R6001D", "ublox"},
		{"Nordic Semiconductor ASA", "nRF9160-SICA", "nordic"},
		{"", "nRF9151-LACA", "nordic"},
		{"Fibocom", "FM150-AE", "fibocom"},
		{"FIBOCOM", "L850-GL", "fibocom"},
		{"Huawei Technologies Co., Ltd.", "ME909s-120", "huawei"},
		{"", "ME909u-521", "huawei"},
		{"", "", "generic"},
		{"Generic", "LTE Modem", "generic"},
	}
	for _, tt := range tests {
		if got := DialectFor(tt.manufacturer, tt.model).Name; got != tt.want {
			t.Errorf("DialectFor(%q, %q) = %s, want %s", tt.manufacturer, tt.model, got, tt.want)
		}
	}
	for name, d := range Dialects {
		if d.Name != name {
			t.Errorf("Dialects[%q].Name = %q", name, d.Name)
		}
		if d.Family == "" {
			t.Errorf("dialect %s has no family", name)
		}
		if (d.SignalCommand == nil) != (d.ParseSignal == nil) {
			t.Errorf("dialect %s: signal command and parser must come together", name)
		}
		if (d.CellCommand == nil) != (d.ParseCell == nil) {
			t.Errorf("dialect %s: cell command and parser must come together", name)
		}
	}
}

func TestSplitFields(t *testing.T) {
	tests := []struct {
		in   string
		want string // s:quoted:empty per field
	}{
		{`2,1,"1A2B","01A2D101",7`, "2|1|1A2B:q|01A2D101:q|7"},
		{`1,,,7`, "1|:e|:e|7"},
		{`"a,b",c`, "a,b:q|c"},
		{`""`, ":q"},
		{` 2 , 1 `, "2|1"},
		{`"unterminated,x`, "unterminated,x:q"},
		{`" sp "`, " sp :q"},
		{``, ":e"},
	}
	for _, tt := range tests {
		var parts []string
		for _, f := range splitFields(tt.in) {
			p := f.s
			if f.quoted {
				p += ":q"
			}
			if f.empty {
				p += ":e"
			}
			parts = append(parts, p)
		}
		if got := strings.Join(parts, "|"); got != tt.want {
			t.Errorf("splitFields(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
