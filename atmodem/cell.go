package atmodem

import (
	"fmt"
	"strconv"
	"strings"
)

// ServingCell is what a dialect reports about the serving cell beyond
// 27.007 (Quectel AT+QENG="servingcell", SIMCom AT+CPSI?). Unknown values
// are nil.
type ServingCell struct {
	RAT     string   `json:"rat"`   // gsm, wcdma, lte, nr5g-sa, nr5g-nsa, cat-m, nb-iot
	State   string   `json:"state"` // idle, connected, limited, searching, unknown
	MCC     *string  `json:"mcc"`
	MNC     *string  `json:"mnc"`
	LAC     *uint32  `json:"lac"`
	TAC     *uint32  `json:"tac"`
	CellID  *uint64  `json:"cell_id"`
	PCI     *int     `json:"pci"`
	EARFCN  *int     `json:"earfcn"`
	Band    *int     `json:"band"`
	RSRPdBm *float64 `json:"rsrp_dbm"`
	RSRQdB  *float64 `json:"rsrq_db"`
	SINRdB  *float64 `json:"sinr_db"`
	RSSIdBm *float64 `json:"rssi_dbm"`
}

func quectelState(s string) string {
	switch strings.ToUpper(s) {
	case "NOCONN":
		return "idle"
	case "CONNECT":
		return "connected"
	case "LIMSRV":
		return "limited"
	case "SEARCH":
		return "searching"
	}
	return "unknown"
}

func num(f []field, i int) *float64 {
	if i >= len(f) || f[i].empty || f[i].s == "-" {
		return nil
	}
	v, err := strconv.ParseFloat(f[i].s, 64)
	if err != nil {
		return nil
	}
	return &v
}

func inum(f []field, i int) *int {
	if i >= len(f) {
		return nil
	}
	if v, ok := f[i].int(); ok {
		return &v
	}
	return nil
}

func str(f []field, i int) *string {
	if i >= len(f) || f[i].empty || f[i].s == "-" {
		return nil
	}
	s := f[i].s
	return &s
}

// hexField reads a Quectel cell id or area code, which Quectel prints as
// unquoted hex ("1A2D101") — even when it happens to be all digits.
func hexField(f []field, i int) *uint64 {
	if i >= len(f) || f[i].empty || f[i].s == "-" {
		return nil
	}
	s := strings.TrimPrefix(strings.ToLower(f[i].s), "0x")
	if len(s) > 16 {
		return nil
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return nil
	}
	return &v
}

func u32(p *uint64) *uint32 {
	if p == nil || *p > 0xffffffff {
		return nil
	}
	return ptr(uint32(*p))
}

// ParseQENG parses the reply to AT+QENG="servingcell" (Quectel EC2x, EG2x,
// BG9x, RG50x). Forms:
//
//	+QENG: "servingcell",<state>,"LTE",<is_tdd>,<mcc>,<mnc>,<cellid>,<pcid>,<earfcn>,<band>,<ul_bw>,<dl_bw>,<tac>,<rsrp>,<rsrq>,<rssi>,<sinr>[,...]
//	+QENG: "servingcell",<state>,"GSM",<mcc>,<mnc>,<lac>,<cellid>,<bsic>,<arfcn>,<band>,<rxlev>,...
//	+QENG: "servingcell",<state>,"WCDMA",<mcc>,<mnc>,<lac>,<cellid>,<uarfcn>,<psc>,<rac>,<rscp>,<ecio>,...
//	+QENG: "servingcell",<state>,"NR5G-SA",<duplex>,<mcc>,<mnc>,<cellid>,<pcid>,<tac>,<arfcn>,<band>,<dl_bw>,<rsrp>,<rsrq>,<sinr>,...
//	+QENG: "servingcell","SEARCH"
//
// and in EN-DC mode a state line followed by "+QENG: "LTE",..." and
// "+QENG: "NR5G-NSA",..." lines, where the LTE line lacks the first two
// fields. The LTE (anchor) cell wins when several are given.
func ParseQENG(lines []string) (*ServingCell, error) {
	var cell *ServingCell
	state := "unknown"
	for _, l := range lines {
		v, ok := value(l, "+QENG:")
		if !ok {
			continue
		}
		f := splitFields(v)
		if len(f) == 0 {
			continue
		}
		if strings.EqualFold(f[0].s, "servingcell") {
			if len(f) < 2 {
				continue
			}
			state = quectelState(f[1].s)
			if len(f) < 3 {
				continue
			}
			f = f[2:]
		}
		c := parseQENGRAT(f)
		if c == nil {
			continue
		}
		if cell == nil || (c.RAT == "lte" && cell.RAT == "nr5g-nsa") {
			cell = c
		}
	}
	if cell == nil {
		if state != "unknown" {
			return &ServingCell{State: state}, nil
		}
		return nil, fmt.Errorf("qeng: %w", ErrNoReading)
	}
	cell.State = state
	return cell, nil
}

// parseQENGRAT parses the fields from the RAT name on.
func parseQENGRAT(f []field) *ServingCell {
	rat := strings.ToUpper(f[0].s)
	c := &ServingCell{}
	switch rat {
	case "LTE", "CAT-M", "EMTC", "CAT-NB", "NBIOT":
		c.RAT = map[string]string{"LTE": "lte", "CAT-M": "cat-m", "EMTC": "cat-m", "CAT-NB": "nb-iot", "NBIOT": "nb-iot"}[rat]
		// "LTE",<is_tdd>,<mcc>,<mnc>,<cellid>,<pcid>,<earfcn>,<band>,<ul_bw>,<dl_bw>,<tac>,<rsrp>,<rsrq>,<rssi>,<sinr>
		c.MCC, c.MNC = str(f, 2), str(f, 3)
		c.CellID = hexField(f, 4)
		c.PCI, c.EARFCN, c.Band = inum(f, 5), inum(f, 6), inum(f, 7)
		c.TAC = u32(hexField(f, 10))
		c.RSRPdBm, c.RSRQdB, c.RSSIdBm, c.SINRdB = num(f, 11), num(f, 12), num(f, 13), num(f, 14)
	case "GSM":
		c.RAT = "gsm"
		c.MCC, c.MNC = str(f, 1), str(f, 2)
		c.LAC = u32(hexField(f, 3))
		c.CellID = hexField(f, 4)
		c.EARFCN, c.Band = inum(f, 6), inum(f, 7)
		if rx := num(f, 8); rx != nil {
			c.RSSIdBm = ptr(*rx - 111)
		}
	case "WCDMA":
		c.RAT = "wcdma"
		c.MCC, c.MNC = str(f, 1), str(f, 2)
		c.LAC = u32(hexField(f, 3))
		c.CellID = hexField(f, 4)
		c.EARFCN, c.PCI = inum(f, 5), inum(f, 6)
	case "NR5G-SA":
		c.RAT = "nr5g-sa"
		// "NR5G-SA",<duplex>,<mcc>,<mnc>,<cellid>,<pcid>,<tac>,<arfcn>,<band>,<dl_bw>,<rsrp>,<rsrq>,<sinr>
		c.MCC, c.MNC = str(f, 2), str(f, 3)
		c.CellID = hexField(f, 4)
		c.PCI = inum(f, 5)
		c.TAC = u32(hexField(f, 6))
		c.EARFCN, c.Band = inum(f, 7), inum(f, 8)
		c.RSRPdBm, c.RSRQdB, c.SINRdB = num(f, 10), num(f, 11), num(f, 12)
	case "NR5G-NSA":
		c.RAT = "nr5g-nsa"
		// "NR5G-NSA",<mcc>,<mnc>,<pcid>,<rsrp>,<sinr>,<rsrq>,<arfcn>,<band>
		c.MCC, c.MNC = str(f, 1), str(f, 2)
		c.PCI = inum(f, 3)
		c.RSRPdBm, c.SINRdB, c.RSRQdB = num(f, 4), num(f, 5), num(f, 6)
	default:
		return nil
	}
	return c
}

// ParseCPSI parses SIMCom's AT+CPSI? reply (SIM7500/SIM7600):
//
//	+CPSI: LTE,Online,262-01,0x1A2B,27447553,123,EUTRAN-BAND3,1300,5,5,-94,-850,-600,15
//	+CPSI: GSM,Online,262-01,0x1A2B,12401,27 EGSM 900,-64,2110,42-42
//	+CPSI: WCDMA,Online,262-01,0x1A2B,2345678,WCDMA IMT 2000,123,10737,0,-75,-98,-5,24,42,-34,-16,3
//	+CPSI: LTE CAT-M1,Online,262-01,0x1A2B,27447553,123,EUTRAN-BAND20,6300,3,3,-110,-950,-650,12
//	+CPSI: NR5G_SA,Online,262-01,0x1A2B2C,12345678901,123,NR5G_BAND78,627264,-800,-110,230
//	+CPSI: NO SERVICE,Online
//
// The LTE RSRQ, RSRP and RSSI and the NR RSRP, RSRQ and SINR are in tenths
// of a dB (plain dB on some SIM7000/SIM7080 firmware, told apart by the
// size of RSRP); the GSM RxLev is in dBm; the cell id is decimal and the area code
// 0x-prefixed hex. SIM7000 and SIM7080 name their modes "LTE CAT-M1" and
// "LTE NB-IOT".
func ParseCPSI(line string) (*ServingCell, error) {
	v, ok := value(line, "+CPSI:")
	if !ok {
		return nil, fmt.Errorf("cpsi: not a +CPSI line")
	}
	f := splitFields(v)
	c := &ServingCell{State: "unknown"}
	if len(f) > 1 {
		switch strings.ToLower(f[1].s) {
		case "online":
			c.State = "idle"
		case "offline", "low power mode", "factory test mode", "reset":
			c.State = "unknown"
		}
	}
	mode := strings.ToUpper(f[0].s)
	switch mode {
	case "NO SERVICE":
		c.State = "searching"
		return c, nil
	case "LTE":
		c.RAT = "lte"
	case "CAT-M", "CAT-M1", "LTE CAT-M1", "LTE CAT-M":
		c.RAT = "cat-m"
	case "NB-IOT", "LTE NB-IOT":
		c.RAT = "nb-iot"
	case "GSM":
		c.RAT = "gsm"
	case "WCDMA":
		c.RAT = "wcdma"
	case "NR5G_SA", "NR5G-SA":
		c.RAT = "nr5g-sa"
	default:
		return nil, fmt.Errorf("cpsi: unknown system mode")
	}
	if len(f) > 2 {
		if mcc, mnc, err := SplitPLMN(f[2].s); err == nil {
			c.MCC, c.MNC = &mcc, &mnc
		}
	}
	var area *uint32
	if len(f) > 3 {
		if n, ok := f[3].hexOrDec(); ok && n <= 0xffffff {
			area = ptr(uint32(n))
		}
	}
	if len(f) > 4 {
		if n, err := strconv.ParseUint(f[4].s, 10, 64); err == nil {
			c.CellID = &n
		}
	}
	// SIM7600 and SIM8200 give RSRP, RSRQ and RSSI in tenths of a dB;
	// SIM7000/SIM7080 firmware is seen printing plain dB. RSRP tells
	// which: in dBm it lies within -156..-31, in tenths beyond -310.
	scale := 10.0
	tenth := func(i int) *float64 {
		if p := num(f, i); p != nil {
			return ptr(*p / scale)
		}
		return nil
	}
	unitsFrom := func(rsrp int) {
		if p := num(f, rsrp); p != nil && *p > -300 && *p < 0 {
			scale = 1
		}
	}
	switch c.RAT {
	case "gsm":
		c.LAC = area
		c.RSSIdBm = num(f, 6)
	case "wcdma":
		c.LAC = area
	default:
		c.TAC = area
		c.PCI = inum(f, 5)
		if len(f) > 6 {
			b := strings.ToUpper(f[6].s)
			if i := strings.Index(b, "BAND"); i >= 0 {
				if n, err := strconv.Atoi(b[i+4:]); err == nil {
					c.Band = &n
				}
			}
		}
		c.EARFCN = inum(f, 7)
		if c.RAT == "nr5g-sa" {
			unitsFrom(8)
			c.RSRPdBm, c.RSRQdB, c.SINRdB = tenth(8), tenth(9), tenth(10)
		} else {
			unitsFrom(11)
			c.RSRQdB, c.RSRPdBm, c.RSSIdBm = tenth(10), tenth(11), tenth(12)
			c.SINRdB = num(f, 13)
		}
	}
	return c, nil
}
