package modemsim

import (
	"fmt"
	"strings"
)

// Dialects the simulator speaks.
var Dialects = []string{"generic", "quectel", "simcom", "ublox", "telit", "sierra", "nordic", "fibocom", "huawei"}

// defaultIdentity is each dialect's +CGMI and +CGMM.
var defaultIdentity = map[string][2]string{
	"generic": {"Generic", "LTE Modem"},
	"quectel": {"Quectel", "EC25"},
	"simcom":  {"SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H"},
	"ublox":   {"u-blox", "SARA-R510S"},
	"telit":   {"Telit", "LE910C1-EUX"},
	"sierra":  {"Sierra Wireless, Incorporated", "EM7565"},
	"nordic":  {"Nordic Semiconductor ASA", "nRF9160-SICA"},
	"fibocom": {"Fibocom", "FM150-AE"},
	"huawei":  {"Huawei Technologies Co., Ltd.", "ME909s-120"},
}

// vendorRespond answers the commands of the six vendor dialects added for
// issue 13, in their manuals' forms; ok is false when cmd is not one.
// Called with s.mu held.
func (s *Sim) vendorRespond(u string) (lines []string, final string, ok bool) {
	simReady := s.sim.State == "ready"
	iccid := func(format string) ([]string, string, bool) {
		if !simReady {
			return nil, errCME10, true
		}
		return []string{fmt.Sprintf(format, s.sim.ICCID)}, "OK", true
	}
	switch s.sc.Dialect {
	case "ublox":
		switch u {
		case "AT+UCGED=5", "AT+USIMSTAT=1":
			if u == "AT+USIMSTAT=1" {
				s.vendorURCs = true
			}
			return nil, "OK", true
		case "AT+UCGED?":
			if !s.registered() {
				return []string{"+UCGED: 5", "+RSRP: 0,0,\"-000.00\",", "+RSRQ: 0,0,\"-00.00\","}, "OK", true
			}
			n := s.net
			return []string{"+UCGED: 5",
				fmt.Sprintf("+RSRP: %d,%d,\"%07.2f\",", *n.PCI, *n.EARFCN, float64(*n.RSRPdBm)),
				fmt.Sprintf("+RSRQ: %d,%d,\"%06.2f\",", *n.PCI, *n.EARFCN, float64(*n.RSRQdB))}, "OK", true
		}
	case "telit":
		switch u {
		case "AT#QSS=1":
			s.vendorURCs = true
			return nil, "OK", true
		case "AT#CCID":
			return iccid("#CCID: %s")
		case "AT+ICCID":
			return iccid("+ICCID: %s")
		case "AT#RFSTS":
			return []string{s.rfsts()}, "OK", true
		}
	case "sierra":
		switch u {
		case "AT!ICCID?":
			return iccid("ICCID: %s")
		case "AT!GSTATUS?":
			return s.gstatus(), "OK", true
		}
	case "nordic":
		switch u {
		case "AT%XSIM=1":
			s.vendorURCs = true
			return nil, "OK", true
		case "AT%XICCID":
			id := s.sim.ICCID
			if len(id)%2 == 1 {
				id += "F"
			}
			if !simReady {
				return nil, errCME10, true
			}
			return []string{"%XICCID: " + id}, "OK", true
		case "AT%XMONITOR":
			return []string{s.xmonitor()}, "OK", true
		}
	case "fibocom":
		switch u {
		case "AT+ICCID":
			return iccid("+ICCID: %s")
		case "AT+GTCCINFO?":
			return s.gtccinfo(), "OK", true
		}
	case "huawei":
		switch u {
		case "AT^ICCID?":
			return iccid("^ICCID: %s")
		case "AT^MONSC":
			return []string{s.monsc()}, "OK", true
		case "AT^HCSQ?":
			return []string{s.hcsq()}, "OK", true
		}
	}
	return nil, "", false
}

func clampIdx(v, lo, hi int) int { return max(lo, min(hi, v)) }

// rfsts is Telit's #RFSTS: the LTE form, or the GSM one.
func (s *Sim) rfsts() string {
	n := s.net
	if !s.registered() {
		return `#RFSTS: "",0,-140,-110,-20,0000,00,,0,19,0,00000000,"",,0,0`
	}
	plmn := *n.MCC + " " + *n.MNC
	imsi := s.sim.IMSI
	if s.rat() == "gsm" {
		return fmt.Sprintf(`#RFSTS: "%s",%d,%d,%04X,FF,0,19,0,1,%X,"%s","%s",3,%d`,
			plmn, *n.EARFCN, *n.RSSIdBm, *n.LAC, *n.CellID, imsi, *n.Operator, *n.Band)
	}
	rrc := 0
	if *n.Connected {
		rrc = 1
	}
	return fmt.Sprintf(`#RFSTS: "%s",%d,%d,%d,%d,%04X,FF,0,128,19,%d,%X,"%s","%s",3,%d,%d`,
		plmn, *n.EARFCN, *n.RSRPdBm, *n.RSSIdBm, *n.RSRQdB, *n.TAC, rrc, *n.CellID, imsi, *n.Operator, *n.Band, *n.SINRdB)
}

// gstatus is Sierra's !GSTATUS?: label/value pairs, tab separated.
func (s *Sim) gstatus() []string {
	n := s.net
	if !s.registered() {
		return []string{"!GSTATUS: ", "Current Time:  1234\t\tTemperature: 38", "Mode:        ONLINE         System mode:   NO SERVICE",
			"EMM state:     Deregistered   \tNo Service"}
	}
	rrc := "RRC Idle"
	if *n.Connected {
		rrc = "RRC Connected"
	}
	return []string{
		"!GSTATUS: ",
		"Current Time:  1234\t\tTemperature: 38",
		"Reset Counter: 1\t\tMode:        ONLINE         ",
		"System mode:   LTE        \tPS state:    Attached     ",
		fmt.Sprintf("LTE band:      B%d     \t\tLTE bw:      20 MHz  ", *n.Band),
		fmt.Sprintf("LTE Rx chan:   %d\t\tLTE Tx chan: %d", *n.EARFCN, *n.EARFCN+18000),
		"LTE CA state:  NOT ASSIGNED",
		"EMM state:     Registered     \tNormal Service ",
		"RRC state:     " + rrc + "       ",
		"IMS reg state: No Srv  \t\t",
		fmt.Sprintf("PCC RxM RSSI:  %d\t\tRSRP (dBm):  %d", *n.RSSIdBm, *n.RSRPdBm),
		fmt.Sprintf("PCC RxD RSSI:  %d\t\tRSRP (dBm):  %d", *n.RSSIdBm-2, *n.RSRPdBm-2),
		fmt.Sprintf("Tx Power:      0\t\tTAC:         %04X (%d)", *n.TAC, *n.TAC),
		fmt.Sprintf("RSRQ (dB):     %d.0\t\tCell ID:     %08X (%d)", *n.RSRQdB, *n.CellID, *n.CellID),
		fmt.Sprintf("SINR (dB):     %d.0", *n.SINRdB),
	}
}

// xmonitor is Nordic's %XMONITOR.
func (s *Sim) xmonitor() string {
	n := s.net
	if !s.registered() {
		return fmt.Sprintf("%%XMONITOR: %d", s.stat())
	}
	return fmt.Sprintf(`%%XMONITOR: %d,"%s","%s","%s%s","%04X",%d,%d,"%08X",%d,%d,%d,%d,"","11100000","00111000","01001001"`,
		s.stat(), *n.Operator, *n.Operator, *n.MCC, *n.MNC, *n.TAC, *n.Act, *n.Band, *n.CellID, *n.PCI, *n.EARFCN,
		clampIdx(*n.RSRPdBm+141, 0, 97), clampIdx(*n.SINRdB+25, 1, 49))
}

// gtccinfo is Fibocom's +GTCCINFO?.
func (s *Sim) gtccinfo() []string {
	n := s.net
	if !s.registered() {
		return []string{"+GTCCINFO: "}
	}
	return []string{"+GTCCINFO: ", "LTE service cell:",
		fmt.Sprintf("1,4,%s,%s,%X,%X,%d,%d,%d,100,%d,%d,%d,%d", *n.MCC, *n.MNC, *n.TAC, *n.CellID, *n.EARFCN, *n.PCI, *n.Band,
			*n.SINRdB, clampIdx(*n.RSSIdBm+111, 0, 63), clampIdx(*n.RSRPdBm+141, 0, 97), clampIdx((*n.RSRQdB+20)*2, 0, 34))}
}

// monsc is Huawei's ^MONSC for the network's radio.
func (s *Sim) monsc() string {
	n := s.net
	if !s.registered() {
		return "^MONSC: NONE"
	}
	switch s.rat() {
	case "gsm":
		return fmt.Sprintf("^MONSC: GSM,%s,%s,%d,%d,23,%X,%X,%d,0,0", *n.MCC, *n.MNC, *n.Band, *n.EARFCN, *n.CellID, *n.LAC, *n.RSSIdBm)
	case "wcdma":
		return fmt.Sprintf("^MONSC: WCDMA,%s,%s,%d,%d,%X,%X,%d,%d,-5,8,0", *n.MCC, *n.MNC, *n.EARFCN, *n.PCI, *n.CellID, *n.LAC, *n.RSRPdBm, *n.RSSIdBm)
	}
	return fmt.Sprintf("^MONSC: LTE,%s,%s,%d,%X,%d,%X,%d,%d,%d", *n.MCC, *n.MNC, *n.EARFCN, *n.CellID, *n.PCI, *n.TAC, *n.RSRPdBm, *n.RSRQdB, *n.RSSIdBm)
}

// hcsq is Huawei's ^HCSQ?.
func (s *Sim) hcsq() string {
	n := s.net
	if !s.registered() {
		return `^HCSQ: "NOSERVICE"`
	}
	if s.rat() != "lte" {
		return fmt.Sprintf(`^HCSQ: "GSM",%d`, clampIdx(*n.RSSIdBm+121, 0, 96))
	}
	return fmt.Sprintf(`^HCSQ: "LTE",%d,%d,%d,%d`, clampIdx(*n.RSSIdBm+121, 0, 96), clampIdx(*n.RSRPdBm+141, 0, 97),
		clampIdx((*n.SINRdB+20)*5, 0, 251), clampIdx((*n.RSRQdB+20)*2, 0, 34))
}

// simURCs are the vendor URCs for a SIM removal or insertion, when the host
// enabled them (or the dialect sends them unasked).
func (s *Sim) simURCs(inserted bool) []string {
	w := map[bool]string{false: "0", true: "1"}[inserted]
	switch s.sc.Dialect {
	case "ublox":
		if s.vendorURCs {
			return []string{"+UUSIMSTAT: " + w}
		}
	case "telit":
		if s.vendorURCs {
			return []string{"#QSS: " + w}
		}
	case "nordic":
		if s.vendorURCs {
			return []string{"%XSIM: " + w}
		}
	case "huawei":
		return []string{map[bool]string{false: "^SIMST: 255", true: "^SIMST: 1"}[inserted]}
	}
	return nil
}

// resetURC is what the dialect prints when it has restarted, or "".
func resetURC(dialect string) string {
	switch dialect {
	case "quectel", "simcom":
		return "RDY"
	case "nordic":
		return "Ready"
	case "huawei":
		return "^SYSSTART"
	}
	return ""
}

func isVendorDialect(d string) bool {
	return strings.Contains(" ublox telit sierra nordic fibocom huawei ", " "+d+" ")
}
