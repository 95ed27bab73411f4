package atmodem

import (
	"encoding/hex"
	"fmt"
	"sort"
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
	return isRegQueryValue(strings.TrimSpace(rest))
}

// isRegQueryValue is IsRegQueryReply for the text after the prefix.
func isRegQueryValue(v string) bool {
	f := splitFields(v)
	if len(f) < 2 || f[0].quoted || f[1].quoted || f[1].empty || len(f[1].s) > 3 {
		return false
	}
	// <n> is 0..5 and <stat> 0..11, one or two digits (three with the
	// zero padding of "+CREG:002,001", as Iridium prints). A URC whose
	// area code lost its quotes ("+CREG: 1,0001,0010,0") has a number
	// there too, but a four-digit one: it is a LAC, not a <stat>.
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
	r, err := ParseRegistrationAs(d, line, query)
	return d, r, err
}

// ParseRegistrationAs parses one domain's registration line, with its
// prefix or without it (some firmware answers "AT+CEREG?" with a bare
// "2,1,..."). Fields (27.007 §7.2, §10.1.20, §10.1.22, §10.1.x):
//
//	[<n>,]<stat>[,[<lac|tac>],[<ci>],[<AcT>][,<rac>|<cause_type>,<reject_cause>|<NSSAI>...|<Active-Time>,<Periodic-TAU>...]]
//
// Everything after <AcT> (RAC, reject cause, PSM timers, NSSAI, vendor
// extras) is skipped. <lac>, <tac> and <ci> are hex strings, quoted or not
// (firmware that drops the quotes keeps the base, as ModemManager reads
// them too); a 0x prefix is allowed. The one known insertion before
// <ci> — +CEREG's <rac> of 27.007 v8.6 ("+CEREG: 2,1,1F00,20,79D903,7") —
// is recognised by its shape. A location field that is there but is no
// hex number of the right width makes the whole line an error: the reading
// is unknown, never a location with a hole in it.
func ParseRegistrationAs(d Domain, line string, query bool) (*Registration, error) {
	v, ok := valueOf(line, d.Command()+":")
	if !ok {
		return nil, fmt.Errorf("registration: not a %s line", d.Command())
	}
	f := splitFields(v)
	if query {
		if len(f) < 2 {
			return nil, fmt.Errorf("registration: %s reply with %d fields", d.Command(), len(f))
		}
		if n, ok := f[0].int(); !ok || n < 0 || n > 5 {
			return nil, fmt.Errorf("registration: bad <n>")
		}
		f = f[1:]
	}
	stat, ok := f[0].int()
	if !ok || stat < 0 || stat > 11 || len(f[0].s) > 3 || f[0].quoted {
		return nil, fmt.Errorf("registration: bad <stat>")
	}
	r := &Registration{Stat: stat, State: StatWord(stat)}
	if d == DomainEPS && len(f) == 5 && isRAC(f[2]) && !isAcT(f[3]) && isAcT(f[4]) {
		// <stat>,<tac>,<rac>,<ci>,<AcT>: drop the <rac>.
		f = append(f[:2:2], f[3:]...)
	}
	if len(f) > 1 && !f[1].blank() {
		n, ok := f[1].hex()
		if !ok || n > 0xffffff {
			return nil, fmt.Errorf("registration: bad area code of %d characters", len(f[1].s))
		}
		if d == DomainEPS || d == Domain5GS {
			r.TAC = ptr(uint32(n))
		} else {
			r.LAC = ptr(uint32(n))
		}
	}
	if len(f) > 2 && !f[2].blank() {
		n, ok := f[2].hex()
		if !ok || n >= 1<<40 {
			return nil, fmt.Errorf("registration: bad cell id of %d characters", len(f[2].s))
		}
		r.CellID = ptr(n)
	}
	if len(f) > 3 && isAcT(f[3]) {
		n, _ := f[3].int()
		r.AcT = ptr(n)
	}
	return r, nil
}

// isAcT reports whether f is a 27.007 <AcT> (0..13, unquoted; 14..20 are
// reserved for future radios and taken too).
func isAcT(f field) bool {
	n, ok := f.int()
	return ok && !f.quoted && len(f.s) <= 2 && n >= 0 && n <= 20
}

// isRAC reports whether f can be a routing area code: one byte in hex.
func isRAC(f field) bool {
	s := strings.TrimSpace(f.s)
	if s == "" || len(s) > 2 {
		return false
	}
	_, err := strconv.ParseUint(s, 16, 8)
	return err == nil
}

// Operator is the network the modem is on (+COPS).
type Operator struct {
	MCC  *string `json:"mcc"`
	MNC  *string `json:"mnc"`
	Name *string `json:"name"`
}

// ParseCOPS parses "+COPS: <mode>[,<format>,<oper>[,<AcT>]]" (27.007
// §7.3), with or without its prefix. <format> 2 (numeric) fills MCC/MNC;
// 0 (long) and 1 (short alphanumeric) fill Name. <mode> alone, or with an
// empty <oper>, is valid: the modem is not registered. A <format> other
// than 0, 1 or 2, or a numeric operator that is no PLMN, is an error.
func ParseCOPS(line string) (Operator, error) {
	v, ok := valueOf(line, "+COPS:")
	if !ok {
		return Operator{}, fmt.Errorf("cops: not a +COPS line")
	}
	f := splitFields(v)
	if mode, ok := f[0].int(); !ok || mode < 0 || mode > 4 {
		return Operator{}, fmt.Errorf("cops: bad <mode>")
	}
	var op Operator
	if len(f) < 3 || f[2].blank() {
		return op, nil
	}
	format, ok := f[1].int()
	if !ok || format < 0 || format > 2 {
		return Operator{}, fmt.Errorf("cops: bad <format>")
	}
	oper := strings.TrimSpace(f[2].s)
	if format == 2 {
		mcc, mnc, err := SplitPLMN(oper)
		if err != nil {
			return Operator{}, fmt.Errorf("cops: %w", err)
		}
		op.MCC, op.MNC = &mcc, &mnc
	} else {
		if !validInfo(oper) {
			return Operator{}, fmt.Errorf("cops: bad operator name of %d characters", len(oper))
		}
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
	v, ok := valueOf(line, "+CSQ:")
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
	v, ok := valueOf(line, "+CESQ:")
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

// SIM states reported in Status.SIM.State (sim.state in status --json).
// Only SIMReady is ready: every lock of 27.007 §8.3 (+CPIN) has its own
// word, so a script can tell a SIM waiting for its PIN from a device
// locked to one network. docs/atmodem.md lists them.
const (
	SIMReady    = "ready"        // READY
	SIMPIN      = "pin_required" // SIM PIN
	SIMPUK      = "puk_required" // SIM PUK
	SIMPIN2     = "pin2_required"
	SIMPUK2     = "puk2_required"
	SIMAbsent   = "absent"    // NOT INSERTED, +CME ERROR: 10
	SIMNotReady = "not_ready" // NOT READY, +CME ERROR: 14 (busy)
	SIMError    = "error"     // +CME ERROR: 13 (failure), 15 (wrong)
	// Personalisation locks (3GPP TS 22.022): the device, not the SIM,
	// wants a code.
	SIMPhSIMPIN    = "ph_sim_pin_required"  // PH-SIM PIN: locked to this SIM
	SIMPhFSIMPIN   = "ph_fsim_pin_required" // PH-FSIM PIN: locked to the first SIM
	SIMPhFSIMPUK   = "ph_fsim_puk_required"
	SIMPhNetPIN    = "ph_net_pin_required" // network personalisation
	SIMPhNetPUK    = "ph_net_puk_required"
	SIMPhNetSubPIN = "ph_netsub_pin_required" // network subset
	SIMPhNetSubPUK = "ph_netsub_puk_required"
	SIMPhSPPIN     = "ph_sp_pin_required" // service provider
	SIMPhSPPUK     = "ph_sp_puk_required"
	SIMPhCorpPIN   = "ph_corp_pin_required" // corporate
	SIMPhCorpPUK   = "ph_corp_puk_required"
)

// cpinStates maps every <code> of 27.007 §8.3, and the absent-SIM words
// firmware prints in +CPIN URCs, to its state word.
var cpinStates = map[string]string{
	"READY":         SIMReady,
	"SIM PIN":       SIMPIN,
	"SIM PUK":       SIMPUK,
	"SIM PIN2":      SIMPIN2,
	"SIM PUK2":      SIMPUK2,
	"PH-SIM PIN":    SIMPhSIMPIN,
	"PH-FSIM PIN":   SIMPhFSIMPIN,
	"PH-FSIM PUK":   SIMPhFSIMPUK,
	"PH-NET PIN":    SIMPhNetPIN,
	"PH-NET PUK":    SIMPhNetPUK,
	"PH-NETSUB PIN": SIMPhNetSubPIN,
	"PH-NETSUB PUK": SIMPhNetSubPUK,
	"PH-SP PIN":     SIMPhSPPIN,
	"PH-SP PUK":     SIMPhSPPUK,
	"PH-CORP PIN":   SIMPhCorpPIN,
	"PH-CORP PUK":   SIMPhCorpPUK,
	"NOT INSERTED":  SIMAbsent, // Quectel, u-blox, Telit URC
	"NO SIM":        SIMAbsent,
	"SIM REMOVED":   SIMAbsent, // SIMCom URC
	"NOT AVAILABLE": SIMAbsent,
	"NOT READY":     SIMNotReady, // 27.007 URC while the SIM goes or comes
}

// SIMStates lists every state word ParseCPIN and Modem.ReadSIM give.
func SIMStates() []string {
	seen := map[string]bool{SIMError: true}
	out := []string{SIMError}
	for _, w := range cpinStates {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	sort.Strings(out)
	return out
}

// SIMLocked reports whether a state word is a lock: a PIN or PUK of the
// SIM or of the device is wanted.
func SIMLocked(state string) bool {
	return strings.HasSuffix(state, "_pin_required") || strings.HasSuffix(state, "_puk_required") ||
		state == SIMPIN || state == SIMPUK || state == SIMPIN2 || state == SIMPUK2
}

// ParseCPIN parses "+CPIN: <code>" (or a bare "<code>", as some firmware
// answers) into a SIM state word. A code that is not one of 27.007's is
// an error: the state is unknown, not a guessed lock.
func ParseCPIN(line string) (string, error) {
	v, ok := valueOf(line, "+CPIN:")
	if !ok {
		return "", fmt.Errorf("cpin: not a +CPIN line")
	}
	code := strings.ToUpper(strings.Join(strings.Fields(strings.Trim(v, `" `)), " "))
	if code == "" {
		return "", fmt.Errorf("cpin: empty code")
	}
	if st, ok := cpinStates[code]; ok {
		return st, nil
	}
	// Anything else is garbled, not a state to believe.
	return "", fmt.Errorf("cpin: unknown code of %d characters", len(v))
}

// ParseSerial finds a 14–16 digit IMEI in the reply to AT+CGSN or AT+GSN:
// a bare number, "+CGSN: <sn>", "#CGSN: <sn>" (Telit), "IMEI: <sn>"
// (Sierra ATI), quoted or not, and with trailing fields after it (a serial
// number, "IMEI SV"): only the first field counts. Other lines are ignored.
func ParseSerial(lines []string) (ident.IMEI, error) {
	for _, l := range lines {
		s := strings.TrimSpace(l)
		if i := strings.IndexByte(s, ':'); i >= 0 {
			name := strings.ToUpper(strings.TrimSpace(s[:i]))
			switch strings.TrimLeft(name, "+#^%$!") {
			case "CGSN", "GSN", "IMEI":
				s = s[i+1:]
			default:
				if isCommandName(name) {
					continue // "SN: ...", another command's line
				}
			}
		}
		f := splitFields(s)
		first := strings.TrimSpace(f[0].s)
		if i := strings.IndexAny(first, " \t"); i > 0 && !f[0].quoted {
			first = first[:i] // "350000000000001 SN:..."
		}
		if imei, err := ident.ParseIMEI(first); err == nil {
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

// ParseICCIDLines finds the ICCID in the reply to any of the ICCID
// commands: "+CCID: 89...", "+QCCID: 89..." (Quectel), "+ICCID: 89..."
// (SIMCom AT+CICCID, Fibocom), "#CCID: 89..." (Telit), "ICCID: 89..."
// (Sierra AT!ICCID?), "^ICCID: 98..." (Huawei), "%XICCID: 89..." (Nordic),
// quoted or bare, F-padded or not. An ICCID starts with 89 (ITU-T E.118);
// one printed as 20 characters starting "98" is the raw EF_ICCID with
// swapped nibbles, as some firmware gives it, and is decoded. Hex digits
// after the first six are kept (some operators use them, ModemManager
// allows them too).
func ParseICCIDLines(lines []string) (ident.ICCID, error) {
	for _, l := range lines {
		s := l
		if i := strings.IndexByte(s, ':'); i >= 0 && isCommandName(strings.TrimSpace(s[:i])) {
			s = s[i+1:]
		}
		s = strings.ToUpper(strings.TrimSpace(strings.Trim(strings.TrimSpace(s), `"`)))
		if strings.HasPrefix(s, "98") && len(s) == 20 {
			s = unswapBCD(s)
		}
		if !strings.HasPrefix(s, "89") {
			continue
		}
		if id, err := ident.ParseICCID(s); err == nil {
			return id, nil
		}
	}
	return ident.ICCID{}, fmt.Errorf("iccid: %w", ErrNoReading)
}

// isCommandName reports whether s looks like "+QCCID", "#CCID", "^ICCID",
// "%XICCID" or "ICCID": an optional +, #, !, ^, % or $ and then letters.
func isCommandName(s string) bool {
	s = strings.TrimLeft(s, "+#!^%$")
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
	v, ok := valueOf(line, "+CRSM:")
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
			b.WriteString(strings.ToUpper(strconv.FormatUint(uint64(nib), 16)))
		}
	}
	// F pads the end; ident.ParseICCID strips it and refuses it inside.
	if !strings.HasPrefix(b.String(), "89") {
		return ident.ICCID{}, fmt.Errorf("crsm: EF_ICCID does not start with 89")
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
