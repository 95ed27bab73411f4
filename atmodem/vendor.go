package atmodem

import (
	"fmt"
	"strconv"
	"strings"
)

// Serving-cell and signal parsers of the u-blox, Telit, Sierra Wireless,
// Nordic, Fibocom and Huawei dialects. Each takes the reply lines of one
// command and returns what it understood; a field it cannot read is nil
// (unknown), never a default.

// firstWith returns the value of the first line carrying prefix.
func firstWith(lines []string, prefix string) (string, bool) {
	for _, l := range lines {
		if v, ok := value(l, prefix); ok {
			return v, true
		}
	}
	return "", false
}

// ratOfAcT names the radio of a 27.007 <AcT>; "" where it is ambiguous
// (8 is EC-GSM-IoT in 27.007, but some LTE-M firmware uses it for LTE-M).
func ratOfAcT(act int) string {
	switch act {
	case 0, 1, 3:
		return "gsm"
	case 2, 4, 5, 6:
		return "wcdma"
	case 7:
		return "lte" // E-UTRAN, LTE-M included: 27.007 does not tell them apart
	case 9:
		return "nb-iot"
	case 11, 12:
		return "nr5g-sa"
	case 13:
		return "nr5g-nsa"
	}
	return ""
}

// idx converts a 27.007-style index (<rsrp> 0..97, <rsrq> 0..34) with a
// known "not known" value into dB(m): nil outside lo..hi.
func idx(f []field, i, lo, hi int, conv func(int) float64) *float64 {
	n := inum(f, i)
	if n == nil || *n < lo || *n > hi {
		return nil
	}
	return ptr(conv(*n))
}

func rsrpIdx(n int) float64 { return float64(n - 141) }
func rsrqIdx(n int) float64 { return -20 + float64(n)/2 }

// ParseUCGED parses u-blox's AT+UCGED? answer in its RSRP/RSRQ reporting
// mode (SARA-R4/R5, LARA-R6 AT commands manual, +UCGED):
//
//	+UCGED: 5
//	+RSRP: <pci>,<earfcn>,"<rsrp dBm>",
//	+RSRQ: <pci>,<earfcn>,"<rsrq dB>",
//
// The radio is not named (Modem.Status takes it from +CEREG's <AcT>).
func ParseUCGED(lines []string) (*ServingCell, error) {
	c := &ServingCell{State: "unknown"}
	got := false
	if v, ok := firstWith(lines, "+RSRP:"); ok {
		f := splitFields(v)
		c.PCI, c.EARFCN = inum(f, 0), inum(f, 1)
		if p := num(f, 2); p != nil && *p >= -160 && *p <= -30 {
			c.RSRPdBm = p
		}
		got = true
	}
	if v, ok := firstWith(lines, "+RSRQ:"); ok {
		f := splitFields(v)
		if c.PCI == nil {
			c.PCI, c.EARFCN = inum(f, 0), inum(f, 1)
		}
		if p := num(f, 2); p != nil && *p >= -40 && *p <= 0 {
			c.RSRQdB = p
		}
		got = true
	}
	if !got {
		return nil, fmt.Errorf("ucged: %w", ErrNoReading)
	}
	return c, nil
}

// ParseRFSTS parses Telit's AT#RFSTS answer (LE910Cx, ME910C1 AT commands
// reference guide, #RFSTS). LTE (16 or 17 fields):
//
//	#RFSTS: <PLMN>,<EARFCN>,<RSRP>,<RSSI>,<RSRQ>,<TAC>,<RAC>,[<TXPWR>],<DRX>,<MM>,<RRC>,<CID>,<IMSI>,[<NetNameAsc>],<SD>,<ABND>[,<SINR>]
//
// GSM (14 fields):
//
//	#RFSTS: <PLMN>,<ARFCN>,<RSSI>,<LAC>,<RAC>,<TXPWR>,<MM>,<RR>,<NOM>,<CID>,<IMSI>,<NetNameAsc>,<SD>,<ABND>
//
// TAC, LAC and CID are hex. The reply carries the IMSI: it is skipped, the
// SIM reading has its own command. Other forms (WCDMA) are not read.
func ParseRFSTS(lines []string) (*ServingCell, error) {
	v, ok := firstWith(lines, "#RFSTS:")
	if !ok {
		return nil, fmt.Errorf("rfsts: %w", ErrNoReading)
	}
	f := splitFields(v)
	c := &ServingCell{State: "unknown"}
	if mcc, mnc, err := SplitPLMN(f[0].s); err == nil {
		c.MCC, c.MNC = &mcc, &mnc
	}
	switch len(f) {
	case 16, 17:
		c.RAT = "lte"
		c.EARFCN = inum(f, 1)
		c.RSRPdBm, c.RSSIdBm, c.RSRQdB = num(f, 2), num(f, 3), num(f, 4)
		c.TAC = u32(hexField(f, 5))
		switch n := inum(f, 10); {
		case n != nil && *n == 0:
			c.State = "idle"
		case n != nil && *n == 1:
			c.State = "connected"
		}
		c.CellID = hexField(f, 11)
		c.Band = inum(f, 15)
		if len(f) == 17 {
			c.SINRdB = num(f, 16)
		}
	case 14:
		c.RAT = "gsm"
		c.EARFCN = inum(f, 1)
		c.RSSIdBm = num(f, 2)
		c.LAC = u32(hexField(f, 3))
		c.CellID = hexField(f, 9)
		c.Band = nil
	default:
		return nil, fmt.Errorf("rfsts: %d fields, want 14, 16 or 17", len(f))
	}
	return c, nil
}

// gstatusValue finds "label" in one of the lines and returns the word
// after it; ok is false when the label is not there.
func gstatusValue(lines []string, label string) (string, bool) {
	for _, l := range lines {
		i := strings.Index(l, label)
		if i < 0 {
			continue
		}
		w := strings.Fields(l[i+len(label):])
		if len(w) == 0 {
			return "", false
		}
		return w[0], true
	}
	return "", false
}

// gstatusHex reads a "1A2B (6699)" value: hex, with the decimal in
// parentheses after it; when both are given they must agree.
func gstatusHex(lines []string, label string) *uint64 {
	for _, l := range lines {
		i := strings.Index(l, label)
		if i < 0 {
			continue
		}
		w := strings.Fields(l[i+len(label):])
		if len(w) == 0 {
			return nil
		}
		h, err := strconv.ParseUint(w[0], 16, 64)
		if err != nil || len(w[0]) > 10 {
			return nil
		}
		if len(w) > 1 && strings.HasPrefix(w[1], "(") && strings.HasSuffix(w[1], ")") {
			d, err := strconv.ParseUint(strings.Trim(w[1], "()"), 10, 64)
			if err != nil || d != h {
				return nil // the two disagree: garbled
			}
		}
		return &h
	}
	return nil
}

func gstatusNum(lines []string, label string) *float64 {
	s, ok := gstatusValue(lines, label)
	if !ok {
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil
	}
	return &v
}

// ParseGSTATUS parses Sierra Wireless's AT!GSTATUS? answer (EM/MC74xx,
// EM75xx AT command reference): label/value pairs, two to a line,
// separated by tabs or runs of spaces:
//
//	!GSTATUS:
//	Current Time:  2345		Temperature: 38
//	Mode:        ONLINE         System mode:   LTE
//	LTE band:      B3     		LTE bw:      20 MHz
//	LTE Rx chan:   1300		LTE Tx chan: 19300
//	EMM state:     Registered     	Normal Service
//	RRC state:     RRC Idle
//	PCC RxM RSSI:  -71		RSRP (dBm):  -95
//	TAC:         1A2B (6699)	RSRQ (dB):   -9.0
//	Cell ID:     01A2D101 (27447553)	SINR (dB):   15.0
//
// Only the LTE form is read into a cell; in other modes the state alone.
func ParseGSTATUS(lines []string) (*ServingCell, error) {
	if _, ok := firstWith(lines, "!GSTATUS:"); !ok {
		return nil, fmt.Errorf("gstatus: %w", ErrNoReading)
	}
	c := &ServingCell{State: "unknown"}
	for _, l := range lines {
		if i := strings.Index(l, "RRC state:"); i >= 0 {
			w := strings.Fields(strings.ToLower(l[i+len("RRC state:"):]))
			switch {
			case len(w) >= 2 && w[0] == "rrc" && w[1] == "idle":
				c.State = "idle"
			case len(w) >= 2 && w[0] == "rrc" && w[1] == "connected":
				c.State = "connected"
			}
		}
	}
	mode, _ := gstatusValue(lines, "System mode:")
	switch strings.ToUpper(mode) {
	case "LTE":
		c.RAT = "lte"
	case "NO", "":
		c.State = "searching"
		return c, nil
	default:
		return c, nil
	}
	if b, ok := gstatusValue(lines, "LTE band:"); ok && strings.HasPrefix(strings.ToUpper(b), "B") {
		if n, err := strconv.Atoi(b[1:]); err == nil {
			c.Band = &n
		}
	}
	if s, ok := gstatusValue(lines, "LTE Rx chan:"); ok {
		if n, err := strconv.Atoi(s); err == nil {
			c.EARFCN = &n
		}
	}
	c.TAC = u32(gstatusHex(lines, "TAC:"))
	c.CellID = gstatusHex(lines, "Cell ID:")
	c.RSRPdBm = gstatusNum(lines, "RSRP (dBm):")
	c.RSRQdB = gstatusNum(lines, "RSRQ (dB):")
	c.SINRdB = gstatusNum(lines, "SINR (dB):")
	c.RSSIdBm = gstatusNum(lines, "PCC RxM RSSI:")
	return c, nil
}

// ParseXMONITOR parses Nordic's AT%XMONITOR answer (nRF91 AT commands
// reference, %XMONITOR):
//
//	%XMONITOR: <reg_status>[,<full_name>,<short_name>,<plmn>,<tac>,<AcT>,<band>,<cell_id>,<phys_cell_id>,<EARFCN>,<rsrp>,<snr>,<NW-provided_eDRX_value>,<Active-Time>,<Periodic-TAU-ext>,<Periodic-TAU>]
//
// <rsrp> is the 27.007 index (0..97: RSRP = index − 141 dBm; 255 not
// known), <snr> an index too (1..49: SNR = index − 25 dB; 127 not known);
// <tac> and <cell_id> quoted hex; <AcT> 7 is LTE-M, 9 NB-IoT. Unregistered:
// "%XMONITOR: 2".
func ParseXMONITOR(lines []string) (*ServingCell, error) {
	v, ok := firstWith(lines, "%XMONITOR:")
	if !ok {
		return nil, fmt.Errorf("xmonitor: %w", ErrNoReading)
	}
	f := splitFields(v)
	stat, ok := f[0].int()
	if !ok || stat < 0 || stat > 11 {
		return nil, fmt.Errorf("xmonitor: bad <reg_status>")
	}
	if len(f) < 12 {
		if stat == 2 || stat == 0 {
			return &ServingCell{State: "searching"}, nil
		}
		return &ServingCell{State: "unknown"}, nil
	}
	c := &ServingCell{State: "unknown"}
	if mcc, mnc, err := SplitPLMN(f[3].s); err == nil {
		c.MCC, c.MNC = &mcc, &mnc
	}
	c.TAC = u32(hexField(f, 4))
	// The nRF91 has only LTE-M and NB-IoT: its <AcT> 7 is LTE-M.
	switch act := inum(f, 5); {
	case act != nil && *act == 7:
		c.RAT = "cat-m"
	case act != nil && *act == 9:
		c.RAT = "nb-iot"
	}
	c.Band = inum(f, 6)
	c.CellID = hexField(f, 7)
	c.PCI, c.EARFCN = inum(f, 8), inum(f, 9)
	c.RSRPdBm = idx(f, 10, 0, 97, rsrpIdx)
	c.SINRdB = idx(f, 11, 1, 49, func(n int) float64 { return float64(n - 25) })
	return c, nil
}

// ParseGTCCINFO parses Fibocom's AT+GTCCINFO? answer (FM150, L610 and
// FG-series AT manuals, +GTCCINFO): a header per radio, then one line per
// cell, the serving one first with <IsServiceCell> 1:
//
//	+GTCCINFO:
//	LTE service cell:
//	1,4,<mcc>,<mnc>,<tac>,<cellid>,<earfcn>,<pci>,<band>,<bandwidth>,<sinr>,<rxlev>,<rsrp>,<rsrq>
//
// <tac> and <cellid> are hex; <rsrp> and <rsrq> 27.007 indices. <sinr> is
// not read: its scale differs between firmware families.
func ParseGTCCINFO(lines []string) (*ServingCell, error) {
	if _, ok := firstWith(lines, "+GTCCINFO:"); !ok {
		return nil, fmt.Errorf("gtccinfo: %w", ErrNoReading)
	}
	for _, l := range lines {
		f := splitFields(strings.TrimSpace(l))
		if len(f) < 14 || f[0].s != "1" {
			continue
		}
		c := &ServingCell{State: "unknown"}
		switch f[1].s {
		case "4":
			c.RAT = "lte"
		case "9":
			c.RAT = "nr5g-sa"
		default:
			return nil, fmt.Errorf("gtccinfo: unknown radio")
		}
		c.MCC, c.MNC = str(f, 2), str(f, 3)
		c.TAC = u32(hexField(f, 4))
		c.CellID = hexField(f, 5)
		c.EARFCN, c.PCI, c.Band = inum(f, 6), inum(f, 7), inum(f, 8)
		c.RSRPdBm = idx(f, 12, 0, 97, rsrpIdx)
		c.RSRQdB = idx(f, 13, 0, 34, rsrqIdx)
		return c, nil
	}
	return &ServingCell{State: "searching"}, nil
}

// ParseMONSC parses Huawei's AT^MONSC answer (ME909s AT command interface
// specification, ^MONSC):
//
//	^MONSC: LTE,<MCC>,<MNC>,<ARFCN>,<Cell_ID>,<PCI>,<TAC>,<RSRP>,<RSRQ>,<RXLEV>
//	^MONSC: WCDMA,<MCC>,<MNC>,<ARFCN>,<PSC>,<Cell_ID>,<LAC>,<RSCP>,<RXLEV>,<EC/N0>,<DRX>,<URA>
//	^MONSC: GSM,<MCC>,<MNC>,<BAND>,<ARFCN>,<BSIC>,<Cell_ID>,<LAC>,<RXLEV>,<RxQuality>,<TA>
//	^MONSC: NONE
//
// Cell_ID, TAC and LAC are hex; RSRP, RSRQ and RXLEV in dBm/dB.
func ParseMONSC(lines []string) (*ServingCell, error) {
	v, ok := firstWith(lines, "^MONSC:")
	if !ok {
		return nil, fmt.Errorf("monsc: %w", ErrNoReading)
	}
	f := splitFields(v)
	c := &ServingCell{State: "unknown"}
	switch strings.ToUpper(f[0].s) {
	case "NONE":
		c.State = "searching"
		return c, nil
	case "LTE":
		c.RAT = "lte"
		c.MCC, c.MNC = str(f, 1), str(f, 2)
		c.EARFCN = inum(f, 3)
		c.CellID = hexField(f, 4)
		c.PCI = inum(f, 5)
		c.TAC = u32(hexField(f, 6))
		c.RSRPdBm, c.RSRQdB, c.RSSIdBm = num(f, 7), num(f, 8), num(f, 9)
	case "WCDMA":
		c.RAT = "wcdma"
		c.MCC, c.MNC = str(f, 1), str(f, 2)
		c.EARFCN, c.PCI = inum(f, 3), inum(f, 4)
		c.CellID = hexField(f, 5)
		c.LAC = u32(hexField(f, 6))
		c.RSSIdBm = num(f, 8)
	case "GSM":
		c.RAT = "gsm"
		c.MCC, c.MNC = str(f, 1), str(f, 2)
		c.EARFCN = inum(f, 4)
		c.CellID = hexField(f, 6)
		c.LAC = u32(hexField(f, 7))
		c.RSSIdBm = num(f, 8)
	default:
		return nil, fmt.Errorf("monsc: unknown radio")
	}
	return c, nil
}

// ParseHCSQ parses Huawei's AT^HCSQ? answer (ME909s AT command interface
// specification, ^HCSQ):
//
//	^HCSQ: "LTE",<rssi>,<rsrp>,<sinr>,<rsrq>
//	^HCSQ: "WCDMA",<rssi>,<rscp>,<ecio>
//	^HCSQ: "GSM",<rssi>
//	^HCSQ: "NOSERVICE"
//
// <rssi> 0..96 is −121+n dBm (0: below −120), <rsrp> 0..97 is n−141 dBm,
// <rsrq> 0..34 is −20+n/2 dB; 255 is not known.
func ParseHCSQ(lines []string) (Signal, error) {
	v, ok := firstWith(lines, "^HCSQ:")
	if !ok {
		return Signal{}, fmt.Errorf("hcsq: %w", ErrNoReading)
	}
	f := splitFields(v)
	var s Signal
	rat := strings.ToUpper(f[0].s)
	switch rat {
	case "NOSERVICE":
		return s, nil
	case "LTE", "WCDMA", "GSM":
	default:
		return Signal{}, fmt.Errorf("hcsq: unknown radio")
	}
	if n := inum(f, 1); n != nil && *n >= 0 && *n <= 96 {
		s.RSSIdBm = ptr(-121 + *n)
	}
	if rat == "LTE" {
		if n := inum(f, 2); n != nil && *n >= 0 && *n <= 97 {
			s.RSRPdBm = ptr(*n - 141)
		}
		if n := inum(f, 4); n != nil && *n >= 0 && *n <= 34 {
			s.RSRQdB = ptr(-20 + float64(*n)/2)
		}
	}
	return s, nil
}
