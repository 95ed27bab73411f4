package atmodem

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/mtcagent/mtcagent/privacy/ident"
)

// Domain is a registration domain of TS 27.007.
type Domain string

// The four registration domains and the command that reports each.
const (
	DomainCS  Domain = "cs"  // +CREG
	DomainPS  Domain = "ps"  // +CGREG
	DomainEPS Domain = "eps" // +CEREG
	Domain5GS Domain = "5gs" // +C5GREG
)

// Domains lists the domains in query order.
var Domains = []Domain{DomainCS, DomainPS, DomainEPS, Domain5GS}

// Command returns "+CREG", "+CGREG", "+CEREG" or "+C5GREG".
func (d Domain) Command() string {
	switch d {
	case DomainCS:
		return "+CREG"
	case DomainPS:
		return "+CGREG"
	case DomainEPS:
		return "+CEREG"
	case Domain5GS:
		return "+C5GREG"
	}
	return ""
}

// DomainOf maps "+CEREG: ..." to DomainEPS, and so on.
func DomainOf(line string) (Domain, bool) {
	for _, d := range Domains {
		if strings.HasPrefix(line, d.Command()+":") {
			return d, true
		}
	}
	return "", false
}

// Registration is one domain's registration state (+CxREG).
type Registration struct {
	Stat   int     `json:"stat"`
	State  string  `json:"state"`
	LAC    *uint32 `json:"lac"`
	TAC    *uint32 `json:"tac"`
	CellID *uint64 `json:"cell_id"`
	AcT    *int    `json:"act"`
}

// Registered reports whether the state is home or roaming (any flavour).
func (r *Registration) Registered() bool {
	if r == nil {
		return false
	}
	switch r.Stat {
	case 1, 5, 6, 7, 9, 10:
		return true
	}
	return false
}

// StatWord names a 27.007 <stat> value.
func StatWord(stat int) string {
	switch stat {
	case 0:
		return "idle"
	case 1:
		return "home"
	case 2:
		return "searching"
	case 3:
		return "denied"
	case 4:
		return "unknown"
	case 5:
		return "roaming"
	case 6:
		return "home_sms_only"
	case 7:
		return "roaming_sms_only"
	case 8:
		return "emergency"
	case 9:
		return "home_csfb_not_preferred"
	case 10:
		return "roaming_csfb_not_preferred"
	case 11:
		return "emergency"
	}
	return "unknown"
}

// IsRegQueryReply tells the reply to AT+CxREG? ("+CEREG: 2,1,...": <n>
// first, then an unquoted <stat>) from the unsolicited form ("+CEREG:
// 1,"1A2B",...": <stat> first, then a quoted area code or nothing).
func IsRegQueryReply(line string) bool {
	_, rest, ok := strings.Cut(line, ":")
	if !ok {
		return false
	}
	f := splitFields(strings.TrimSpace(rest))
	if len(f) < 2 || f[0].quoted || f[1].quoted || f[1].empty {
		return false
	}
	// <n> is 0..5 and <stat> 0..11; a URC from a modem that prints its
	// area code unquoted and in decimal ("+CREG: 1,6699,...") has a
	// number there too, but one beyond the <stat> range.
	n, ok := f[0].int()
	if !ok || n < 0 || n > 5 {
		return false
	}
	stat, ok := f[1].int()
	return ok && stat >= 0 && stat <= 11
}

// ParseRegistration parses a +CREG/+CGREG/+CEREG/+C5GREG line, either the
// reply to the query (with <n> first) or a URC (query == false).
func ParseRegistration(line string, query bool) (Domain, *Registration, error) {
	d, ok := DomainOf(line)
	if !ok {
		return "", nil, fmt.Errorf("registration: not a +CxREG line")
	}
	v, _ := value(line, d.Command()+":")
	f := splitFields(v)
	if query {
		if len(f) < 2 {
			return d, nil, fmt.Errorf("registration: %s reply with %d fields", d.Command(), len(f))
		}
		f = f[1:]
	}
	stat, ok := f[0].int()
	if !ok || stat < 0 || stat > 11 {
		return d, nil, fmt.Errorf("registration: bad <stat>")
	}
	r := &Registration{Stat: stat, State: StatWord(stat)}
	// A location field that is there but is no area code or cell id
	// (wrong characters, too wide) makes the line garbled: an error, so
	// the reading is unknown rather than a location with a hole in it.
	if len(f) > 1 && !f[1].blank() {
		n, ok := f[1].hexOrDec()
		if !ok || n > 0xffffff {
			return d, nil, fmt.Errorf("registration: bad area code of %d characters", len(f[1].s))
		}
		if d == DomainEPS || d == Domain5GS {
			r.TAC = ptr(uint32(n))
		} else {
			r.LAC = ptr(uint32(n))
		}
	}
	if len(f) > 2 && !f[2].blank() {
		n, ok := f[2].hexOrDec()
		if !ok || n >= 1<<40 {
			return d, nil, fmt.Errorf("registration: bad cell id of %d characters", len(f[2].s))
		}
		r.CellID = ptr(n)
	}
	if len(f) > 3 {
		if n, ok := f[3].int(); ok && n >= 0 && n <= 20 {
			r.AcT = ptr(n)
		}
	}
	return d, r, nil
}

// Operator is the network the modem is on (+COPS).
type Operator struct {
	MCC  *string `json:"mcc"`
	MNC  *string `json:"mnc"`
	Name *string `json:"name"`
}

// ParseCOPS parses "+COPS: <mode>[,<format>,<oper>[,<AcT>]]". A numeric
// operator fills MCC/MNC, an alphanumeric one fills Name. mode alone (no
// operator) is valid: the modem is not registered.
func ParseCOPS(line string) (Operator, error) {
	v, ok := value(line, "+COPS:")
	if !ok {
		return Operator{}, fmt.Errorf("cops: not a +COPS line")
	}
	f := splitFields(v)
	if _, ok := f[0].int(); !ok {
		return Operator{}, fmt.Errorf("cops: bad <mode>")
	}
	var op Operator
	if len(f) < 3 || f[2].s == "" {
		return op, nil
	}
	format, _ := f[1].int()
	oper := f[2].s
	if format == 2 {
		mcc, mnc, err := SplitPLMN(oper)
		if err != nil {
			return Operator{}, fmt.Errorf("cops: %w", err)
		}
		op.MCC, op.MNC = &mcc, &mnc
	} else {
		op.Name = &oper
	}
	return op, nil
}

// SplitPLMN splits "26201" or "310410" (or "262-01", "262 01") into MCC
// and MNC.
func SplitPLMN(s string) (mcc, mnc string, err error) {
	s = strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(s))
	if (len(s) != 5 && len(s) != 6) || strings.Trim(s, "0123456789") != "" {
		return "", "", fmt.Errorf("bad PLMN of %d characters", len(s))
	}
	return s[:3], s[3:], nil
}

// Signal is the received signal. Unknown values are nil.
type Signal struct {
	RSSIdBm *int     `json:"rssi_dbm"`
	BER     *int     `json:"ber"`
	RSRPdBm *int     `json:"rsrp_dbm"`
	RSRQdB  *float64 `json:"rsrq_db"`
}

// ParseCSQ parses "+CSQ: <rssi>,<ber>": rssi 0..31 is -113..-51 dBm, 99
// unknown; 100..191 is -116..-25 dBm (TD-SCDMA RSCP, as Quectel and
// 27.007 extend it), 199 unknown; ber 0..7, 99 unknown.
func ParseCSQ(line string) (Signal, error) {
	v, ok := value(line, "+CSQ:")
	if !ok {
		return Signal{}, fmt.Errorf("csq: not a +CSQ line")
	}
	f := splitFields(v)
	rssi, ok := f[0].int()
	valid := rssi >= 0 && rssi <= 31 || rssi == 99 || rssi >= 100 && rssi <= 191 || rssi == 199
	if !ok || !valid {
		return Signal{}, fmt.Errorf("csq: bad <rssi>")
	}
	var s Signal
	switch {
	case rssi <= 31:
		s.RSSIdBm = ptr(-113 + 2*rssi)
	case rssi >= 100 && rssi <= 191:
		s.RSSIdBm = ptr(-216 + rssi)
	}
	if len(f) > 1 {
		if ber, ok := f[1].int(); ok && ber >= 0 && ber <= 7 {
			s.BER = ptr(ber)
		}
	}
	return s, nil
}

// ParseCESQ parses "+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>" into
// RSRQ (0..34: -19.5..-2.5 dB in 0.5 dB steps) and RSRP (0..97:
// -140..-44 dBm), and RSSI from rxlev (0..63: -110..-48 dBm) when given.
func ParseCESQ(line string) (Signal, error) {
	v, ok := value(line, "+CESQ:")
	if !ok {
		return Signal{}, fmt.Errorf("cesq: not a +CESQ line")
	}
	f := splitFields(v)
	if len(f) < 6 {
		return Signal{}, fmt.Errorf("cesq: %d fields, want 6", len(f))
	}
	var s Signal
	if n, ok := f[0].int(); ok && n >= 0 && n <= 63 {
		s.RSSIdBm = ptr(-111 + n)
	}
	if n, ok := f[1].int(); ok && n >= 0 && n <= 7 {
		s.BER = ptr(n)
	}
	if n, ok := f[4].int(); ok && n >= 0 && n <= 34 {
		s.RSRQdB = ptr(-20 + float64(n)/2)
	}
	if n, ok := f[5].int(); ok && n >= 0 && n <= 97 {
		s.RSRPdBm = ptr(-141 + n)
	}
	return s, nil
}

// SIM states reported in Status.SIM.State.
const (
	SIMReady    = "ready"
	SIMPIN      = "pin_required"
	SIMPUK      = "puk_required"
	SIMAbsent   = "absent"
	SIMNotReady = "not_ready"
	SIMLocked   = "locked" // another PIN (PH-SIM, network personalisation)
	SIMError    = "error"
)

// ParseCPIN parses "+CPIN: <code>" into a SIM state word.
func ParseCPIN(line string) (string, error) {
	v, ok := value(line, "+CPIN:")
	if !ok {
		return "", fmt.Errorf("cpin: not a +CPIN line")
	}
	switch strings.ToUpper(strings.Trim(v, `" `)) {
	case "READY":
		return SIMReady, nil
	case "SIM PIN2", "SIM PUK2":
		// PIN2 guards only a few files (FDN); the SIM is otherwise
		// usable, as ModemManager treats it.
		return SIMReady, nil
	case "SIM PIN":
		return SIMPIN, nil
	case "SIM PUK":
		return SIMPUK, nil
	case "NOT INSERTED", "NO SIM", "SIM REMOVED", "NOT AVAILABLE":
		return SIMAbsent, nil
	case "NOT READY":
		return SIMNotReady, nil
	case "":
		return "", fmt.Errorf("cpin: empty code")
	}
	if code := strings.ToUpper(strings.Trim(v, `" `)); strings.HasPrefix(code, "PH-") && len(code) <= 16 {
		// PH-SIM PIN, PH-NET PUK, ...: another PIN locks the SIM.
		return SIMLocked, nil
	}
	// Anything else is garbled, not a state to believe.
	return "", fmt.Errorf("cpin: unknown code of %d characters", len(v))
}

// ParseSerial finds a 14–16 digit IMEI in the reply to AT+CGSN or AT+GSN:
// a bare number, "+CGSN: <sn>" or a quoted one. Other lines are ignored.
func ParseSerial(lines []string) (ident.IMEI, error) {
	for _, l := range lines {
		s := l
		for _, p := range []string{"+CGSN:", "+GSN:", "IMEI:"} {
			if r, ok := strings.CutPrefix(s, p); ok {
				s = r
			}
		}
		s = strings.Trim(strings.TrimSpace(s), `"`)
		if imei, err := ident.ParseIMEI(s); err == nil {
			return imei, nil
		}
	}
	return ident.IMEI{}, fmt.Errorf("imei: %w", ErrNoReading)
}

// ParseCIMI finds the IMSI in the reply to AT+CIMI.
func ParseCIMI(lines []string) (ident.IMSI, error) {
	for _, l := range lines {
		s, _ := strings.CutPrefix(l, "+CIMI:")
		if imsi, err := ident.ParseIMSI(strings.Trim(strings.TrimSpace(s), `"`)); err == nil {
			return imsi, nil
		}
	}
	return ident.IMSI{}, fmt.Errorf("imsi: %w", ErrNoReading)
}

// ParseICCIDLines finds the ICCID in the reply to AT+CCID, AT+QCCID,
// AT+CICCID or AT+ICCID: "+CCID: 89...", "+QCCID: 89...", "+ICCID: 89...",
// "#CCID: 89..." (Telit), "ICCID: 89..." (Sierra), quoted or bare. An ICCID
// always starts with 89 (ITU-T E.118); one printed as "98..." is the raw
// EF_ICCID with swapped nibbles, as some firmware gives it, and is decoded.
func ParseICCIDLines(lines []string) (ident.ICCID, error) {
	for _, l := range lines {
		s := l
		if i := strings.IndexByte(s, ':'); i >= 0 && isCommandName(s[:i]) {
			s = s[i+1:]
		}
		s = strings.Trim(strings.TrimSpace(s), `"`)
		if strings.HasPrefix(s, "98") && len(s)%2 == 0 {
			s = unswapBCD(s)
		}
		if id, err := ident.ParseICCID(s); err == nil {
			return id, nil
		}
	}
	return ident.ICCID{}, fmt.Errorf("iccid: %w", ErrNoReading)
}

// isCommandName reports whether s looks like "+QCCID", "#CCID" or "ICCID":
// an optional +, # or ! and then letters.
func isCommandName(s string) bool {
	s = strings.TrimLeft(s, "+#!")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// unswapBCD swaps the two characters of each pair: "981000" -> "890100".
func unswapBCD(s string) string {
	b := []byte(s)
	for i := 0; i+1 < len(b); i += 2 {
		b[i], b[i+1] = b[i+1], b[i]
	}
	return string(b)
}

// ParseCRSMICCID decodes the reply to AT+CRSM=176,12258,0,0,10 (READ
// BINARY of EF_ICCID): "+CRSM: 144,0,"98940100002143658709"". The ten
// bytes are BCD with the nibbles of each byte swapped; F pads.
func ParseCRSMICCID(line string) (ident.ICCID, error) {
	v, ok := value(line, "+CRSM:")
	if !ok {
		return ident.ICCID{}, fmt.Errorf("crsm: not a +CRSM line")
	}
	f := splitFields(v)
	if len(f) < 3 {
		return ident.ICCID{}, fmt.Errorf("crsm: %d fields, want 3", len(f))
	}
	sw1, _ := f[0].int()
	sw2, _ := f[1].int()
	if sw1 != 144 && sw1 != 145 { // 0x90 0x00, 0x91 xx: success
		return ident.ICCID{}, fmt.Errorf("crsm: status %02X%02X", sw1, sw2)
	}
	raw, err := hex.DecodeString(f[2].s)
	if err != nil || len(raw) == 0 {
		return ident.ICCID{}, fmt.Errorf("crsm: response is not hex")
	}
	var b strings.Builder
	for _, c := range raw {
		for _, nib := range []byte{c & 0x0f, c >> 4} {
			if nib == 0x0f {
				continue
			}
			b.WriteString(strings.ToUpper(strconv.FormatUint(uint64(nib), 16)))
		}
	}
	id, err := ident.ParseICCID(b.String())
	if err != nil {
		return ident.ICCID{}, fmt.Errorf("crsm: %w", err)
	}
	return id, nil
}

// ParseInfo returns the first information line of a reply to AT+CGMI,
// AT+CGMM or AT+CGMR, with a "+CGMI:"-style prefix removed. Lines that are
// unsolicited result codes are skipped: another command's "+NAME: ..." line
// (+QUSIM: 1, +CPIN: READY) or a bare vendor URC (RDY, PB DONE), which
// reach the reply when no handler claims them.
func ParseInfo(lines []string, prefix string) (string, error) {
	for _, l := range lines {
		s, own := strings.CutPrefix(l, prefix)
		if !own && isURCLine(l) {
			continue
		}
		s = strings.Trim(strings.TrimSpace(s), `"`)
		if s != "" {
			return s, nil
		}
	}
	return "", ErrNoReading
}

// isURCLine reports whether line is a "+NAME: ..." result line or starts
// with a bare URC one of the dialects knows.
func isURCLine(line string) bool {
	if i := strings.IndexByte(line, ':'); i > 0 && strings.HasPrefix(line, "+") && isCommandName(line[:i]) {
		return true
	}
	for _, d := range Dialects {
		for p := range d.URCs {
			if !strings.HasPrefix(p, "+") && strings.HasPrefix(line, p) {
				return true
			}
		}
	}
	return false
}
