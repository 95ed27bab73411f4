package atmodem

import (
	"sort"
	"strings"

	"github.com/mtcagent/mtcagent/atmodem/at"
)

// Dialect is what differs between modem families: how to read the ICCID and
// the serving cell, and which vendor URCs mean what. Chosen from +CGMI and
// +CGMM by DialectFor.
type Dialect struct {
	Name string
	// Family is the vendor and series, as status --json reports it
	// (modem.family).
	Family string
	// ICCIDCommands are tried in order; AT+CRSM (EF_ICCID) is the last
	// resort for every dialect.
	ICCIDCommands []at.Cmd
	// CellCommand reads the serving cell; ParseCell parses its reply.
	CellCommand *at.Cmd
	ParseCell   func(lines []string) (*ServingCell, error)
	// SignalCommand, when set, reads the signal where +CSQ/+CESQ leave
	// values unknown; ParseSignal parses it. 27.007 values win.
	SignalCommand *at.Cmd
	ParseSignal   func(lines []string) (Signal, error)
	// InitCommands are sent after the common initialisation; failures
	// are ignored (older firmware lacks some).
	InitCommands []string
	// URCs maps vendor URC prefixes to what they mean.
	URCs map[string]URCKind
	// GNSS reads a position fix where the modem has a receiver.
	GNSS *GNSS
}

// URCKind is what a vendor URC tells about the modem.
type URCKind int

const (
	URCNone       URCKind = iota
	URCReset              // the modem restarted (Quectel RDY)
	URCSIMChanged         // SIM inserted, removed or re-read: read the SIM again
	URCSIMRemoved         // the SIM is gone
)

// crsmICCID reads EF_ICCID (file 2FE2 = 12258), as ModemManager does.
var crsmICCID = at.Cmd{Line: "AT+CRSM=176,12258,0,0,10", Prefix: "+CRSM:"}

// Generic is plain TS 27.007.
var Generic = &Dialect{
	Name:          "generic",
	ICCIDCommands: []at.Cmd{{Line: "AT+CCID"}, {Line: "AT+ICCID"}},
	URCs: map[string]URCKind{
		"+CPIN:": URCSIMChanged,
	},
}

// Quectel covers EC2x, EG2x, BG9x and RG50x.
var Quectel = &Dialect{
	Name:          "quectel",
	ICCIDCommands: []at.Cmd{{Line: "AT+QCCID", Prefix: "+QCCID:"}, {Line: "AT+CCID"}},
	CellCommand:   &at.Cmd{Line: `AT+QENG="servingcell"`, Prefix: "+QENG:"},
	ParseCell:     ParseQENG,
	InitCommands:  []string{"AT+QSIMSTAT=1"},
	GNSS:          quectelGNSS,
	URCs: map[string]URCKind{
		"RDY":          URCReset,
		"+QUSIM:":      URCSIMChanged,
		"+QSIMSTAT:":   URCSIMChanged,
		"+CPIN:":       URCSIMChanged,
		"+QIND:":       URCNone,
		"+CFUN:":       URCNone,
		"POWERED DOWN": URCReset,
	},
}

// SIMCom covers SIM7500/SIM7600 and relatives.
var SIMCom = &Dialect{
	Name:          "simcom",
	ICCIDCommands: []at.Cmd{{Line: "AT+CICCID", Prefix: "+ICCID:"}, {Line: "AT+CCID"}},
	CellCommand:   &at.Cmd{Line: "AT+CPSI?", Prefix: "+CPSI:"},
	ParseCell: func(lines []string) (*ServingCell, error) {
		for _, l := range lines {
			if strings.HasPrefix(l, "+CPSI:") {
				return ParseCPSI(l)
			}
		}
		return nil, ErrNoReading
	},
	GNSS: simcomGNSS,
	URCs: map[string]URCKind{
		"+SIMCARD:": URCSIMRemoved,
		"+CPIN:":    URCSIMChanged,
		"PB DONE":   URCNone,
		"SMS DONE":  URCNone,
		"+CGEV:":    URCNone,
		"START":     URCReset,
		"RDY":       URCReset, // SIM7500/SIM7600 after start-up
	},
}

// UBlox covers SARA-R4/R5 and LARA-R6 (u-blox AT commands manuals).
var UBlox = &Dialect{
	Name:          "ublox",
	Family:        "u-blox SARA-R4/R5, LARA-R6",
	ICCIDCommands: []at.Cmd{{Line: "AT+CCID", Prefix: "+CCID:"}},
	CellCommand:   &at.Cmd{Line: "AT+UCGED?"},
	ParseCell:     ParseUCGED,
	// +UCGED=5: RSRP/RSRQ reporting; +USIMSTAT=1: +UUSIMSTAT on SIM
	// insertion and removal.
	InitCommands: []string{"AT+UCGED=5", "AT+USIMSTAT=1"},
	URCs: map[string]URCKind{
		"+UUSIMSTAT:": URCSIMChanged,
		"+CPIN:":      URCSIMChanged,
		"+UUPSMR:":    URCNone,
		"+CGEV:":      URCNone,
	},
}

// Telit covers LE910Cx and ME910C1 (Telit AT commands reference guides).
var Telit = &Dialect{
	Name:          "telit",
	Family:        "Telit LE910/ME910",
	ICCIDCommands: []at.Cmd{{Line: "AT#CCID", Prefix: "#CCID:"}, {Line: "AT+ICCID"}},
	CellCommand:   &at.Cmd{Line: "AT#RFSTS", Prefix: "#RFSTS:"},
	ParseCell:     ParseRFSTS,
	// #QSS=1: "#QSS: 0|1" when the SIM is removed or inserted.
	InitCommands: []string{"AT#QSS=1"},
	URCs: map[string]URCKind{
		"#QSS:":  URCSIMChanged,
		"+CPIN:": URCSIMChanged,
		"+CGEV:": URCNone,
	},
}

// Sierra covers the EM/MC74xx and EM75xx series (Sierra Wireless AT
// command references).
var Sierra = &Dialect{
	Name:          "sierra",
	Family:        "Sierra Wireless EM/MC",
	ICCIDCommands: []at.Cmd{{Line: "AT!ICCID?"}, {Line: "AT+CCID"}},
	CellCommand:   &at.Cmd{Line: "AT!GSTATUS?"},
	ParseCell:     ParseGSTATUS,
	URCs: map[string]URCKind{
		"+CPIN:": URCSIMChanged,
		"+CGEV:": URCNone,
	},
}

// Nordic covers nRF9160/nRF9151 running the serial modem application
// (nRF91 AT commands reference).
var Nordic = &Dialect{
	Name:          "nordic",
	Family:        "Nordic nRF91",
	ICCIDCommands: []at.Cmd{{Line: "AT%XICCID", Prefix: "%XICCID:"}},
	CellCommand:   &at.Cmd{Line: "AT%XMONITOR", Prefix: "%XMONITOR:"},
	ParseCell:     ParseXMONITOR,
	// %XSIM=1: "%XSIM: <state>" when the UICC state changes.
	InitCommands: []string{"AT%XSIM=1"},
	URCs: map[string]URCKind{
		"%XSIM:":  URCSIMChanged,
		"+CPIN:":  URCSIMChanged,
		"Ready":   URCReset, // the serial modem application has started
		"%CESQ:":  URCNone,
		"%XTIME:": URCNone,
		"+CSCON:": URCNone,
	},
}

// Fibocom covers FM150, NL668, L610 and L850-GL (Fibocom AT manuals).
var Fibocom = &Dialect{
	Name:          "fibocom",
	Family:        "Fibocom",
	ICCIDCommands: []at.Cmd{{Line: "AT+CCID"}, {Line: "AT+ICCID"}},
	CellCommand:   &at.Cmd{Line: "AT+GTCCINFO?"},
	ParseCell:     ParseGTCCINFO,
	URCs: map[string]URCKind{
		"+CPIN:": URCSIMChanged,
		"+CGEV:": URCNone,
	},
}

// Huawei covers the ME909s/ME909u class (Huawei ME909s AT command
// interface specification).
var Huawei = &Dialect{
	Name:          "huawei",
	Family:        "Huawei ME909",
	ICCIDCommands: []at.Cmd{{Line: "AT^ICCID?", Prefix: "^ICCID:"}, {Line: "AT+CCID"}},
	CellCommand:   &at.Cmd{Line: "AT^MONSC", Prefix: "^MONSC:"},
	ParseCell:     ParseMONSC,
	SignalCommand: &at.Cmd{Line: "AT^HCSQ?", Prefix: "^HCSQ:"},
	ParseSignal:   ParseHCSQ,
	URCs: map[string]URCKind{
		"^SIMST:":     URCSIMChanged,
		"^SYSSTART":   URCReset,
		"+CPIN:":      URCSIMChanged,
		"^RSSI:":      URCNone,
		"^HCSQ:":      URCNone,
		"^MODE:":      URCNone,
		"^SRVST:":     URCNone,
		"^SYSINFOEX:": URCNone,
		"^NWTIME:":    URCNone,
	},
}

func init() {
	Generic.Family = "3GPP TS 27.007"
	Quectel.Family = "Quectel"
	SIMCom.Family = "SIMCom"
}

// Dialects lists the known dialects by name.
var Dialects = map[string]*Dialect{
	"generic": Generic, "quectel": Quectel, "simcom": SIMCom,
	"ublox": UBlox, "telit": Telit, "sierra": Sierra, "nordic": Nordic, "fibocom": Fibocom, "huawei": Huawei,
}

// URCPrefixes lists the unsolicited result code prefixes of every dialect
// and the registration URCs, sorted: a reader should register them all, so
// none is ever taken for a reply line.
func URCPrefixes() []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range Domains {
		seen[d.Command()+":"] = true
		out = append(out, d.Command()+":")
	}
	var rest []string
	for _, di := range Dialects {
		for p := range di.URCs {
			if !seen[p] {
				seen[p] = true
				rest = append(rest, p)
			}
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// DialectFor picks the dialect from the +CGMI manufacturer and +CGMM model.
func DialectFor(manufacturer, model string) *Dialect {
	m := strings.ToUpper(manufacturer + " " + model)
	mod := strings.ToUpper(strings.TrimSpace(model))
	has := func(prefixes ...string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(mod, p) {
				return true
			}
		}
		return false
	}
	switch {
	case strings.Contains(m, "QUECTEL"):
		return Quectel
	case strings.Contains(m, "SIMCOM") || strings.HasPrefix(mod, "SIM7"):
		return SIMCom
	case strings.Contains(m, "U-BLOX") || strings.Contains(m, "UBLOX") || has("SARA-", "LARA-", "TOBY-", "LISA-"):
		return UBlox
	case strings.Contains(m, "TELIT") || has("LE910", "ME910", "LE922", "LN9"):
		return Telit
	case strings.Contains(m, "SIERRA") || has("EM74", "EM75", "EM76", "MC73", "MC74", "MC77"):
		return Sierra
	case strings.Contains(m, "NORDIC") || has("NRF91"):
		return Nordic
	case strings.Contains(m, "FIBOCOM") || has("FM150", "FM160", "NL668", "L610", "L850", "FG150", "FG621"):
		return Fibocom
	case strings.Contains(m, "HUAWEI") || has("ME909", "ME906", "MU709", "MU609"):
		return Huawei
	}
	return Generic
}
