package atmodem

import "strings"

// Dialect is what differs between modem families: how to read the ICCID and
// the serving cell, and which vendor URCs mean what. Chosen from +CGMI and
// +CGMM by DialectFor.
type Dialect struct {
	Name string
	// ICCIDCommands are tried in order; AT+CRSM (EF_ICCID) is the last
	// resort for every dialect.
	ICCIDCommands []Cmd
	// CellCommand reads the serving cell; ParseCell parses its reply.
	CellCommand *Cmd
	ParseCell   func(lines []string) (*ServingCell, error)
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
var crsmICCID = Cmd{Line: "AT+CRSM=176,12258,0,0,10", Prefix: "+CRSM:"}

// Generic is plain TS 27.007.
var Generic = &Dialect{
	Name:          "generic",
	ICCIDCommands: []Cmd{{Line: "AT+CCID"}, {Line: "AT+ICCID"}},
	URCs: map[string]URCKind{
		"+CPIN:": URCSIMChanged,
	},
}

// Quectel covers EC2x, EG2x, BG9x and RG50x.
var Quectel = &Dialect{
	Name:          "quectel",
	ICCIDCommands: []Cmd{{Line: "AT+QCCID", Prefix: "+QCCID:"}, {Line: "AT+CCID"}},
	CellCommand:   &Cmd{Line: `AT+QENG="servingcell"`, Prefix: "+QENG:"},
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
	ICCIDCommands: []Cmd{{Line: "AT+CICCID", Prefix: "+ICCID:"}, {Line: "AT+CCID"}},
	CellCommand:   &Cmd{Line: "AT+CPSI?", Prefix: "+CPSI:"},
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
	},
}

// Dialects lists the known dialects by name.
var Dialects = map[string]*Dialect{"generic": Generic, "quectel": Quectel, "simcom": SIMCom}

// DialectFor picks the dialect from the +CGMI manufacturer and +CGMM model.
func DialectFor(manufacturer, model string) *Dialect {
	m := strings.ToUpper(manufacturer + " " + model)
	switch {
	case strings.Contains(m, "QUECTEL"):
		return Quectel
	case strings.Contains(m, "SIMCOM") || strings.HasPrefix(strings.ToUpper(model), "SIM7"):
		return SIMCom
	}
	return Generic
}
