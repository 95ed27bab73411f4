package atmodem

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/mtcagent/mtcagent/atmodem/at"
	"github.com/mtcagent/mtcagent/privacy/ident"
)

// Status is one full reading of the modem. Unknown values are nil or zero,
// with their Reading set in Failed (registration, operator), SIM.Failed or
// Modem.Failed: see Reading.
type Status struct {
	Modem        ModemInfo
	SIM          SIMInfo
	Registration map[Domain]*Registration // nil entry: not answered
	Operator     Operator
	Signal       Signal
	Cell         *ServingCell // where the dialect gives it
	Location     *Position    // GNSS fix, when enabled (Modem.GNSS) and fixed
	Dialect      string
	Family       string // the dialect's vendor and series (modem.family)
	Time         time.Time
	Failed       Reading // the registration and operator reads that failed
}

// ModemInfo identifies the modem.
type ModemInfo struct {
	Manufacturer string
	Model        string
	Revision     string
	IMEI         ident.IMEI
	Failed       Reading // the reads that failed (ReadManufacturer ... ReadIMEI)
}

// SIMInfo is the SIM's state and identity.
type SIMInfo struct {
	State string // SIMReady, SIMAbsent, ...; "" unknown
	IMSI  ident.IMSI
	ICCID ident.ICCID
	// EID is the eUICC's identifier where the card gives it (read once per
	// ICCID); zero for a plain SIM or a modem without logical channels.
	// It drives no event and no comparison.
	EID    ident.EID
	Failed Reading // the reads that failed (ReadSIMState, ReadIMSI, ReadICCID)
}

// EPS returns the best registration to judge the serving area: EPS, then
// 5GS, then PS, then CS.
func (s *Status) Serving() (Domain, *Registration) {
	for _, d := range []Domain{DomainEPS, Domain5GS, DomainPS, DomainCS} {
		if r := s.Registration[d]; r != nil && r.Registered() {
			return d, r
		}
	}
	return "", nil
}

// Registered reports whether any domain is registered.
func (s *Status) Registered() bool { d, _ := s.Serving(); return d != "" }

// Modem reads a modem through an at.Engine, in its dialect.
type Modem struct {
	E       *at.Engine
	Dialect *Dialect
	log     *slog.Logger
	// urcMode records per domain whether =2 (1) or =1 (0) took, or -1.
	urcMode map[Domain]int
	info    *ModemInfo // cached identity; cleared by Forget
	// urcsLost is set when a query shows registration URCs switched off
	// behind our back: the modem was reset without saying so.
	urcsLost bool
	// GNSS, when set before Init, turns the dialect's receiver on and
	// makes Status read its fix. Off by default: it costs power, and a
	// position is the most sensitive thing the agent can read.
	GNSS        bool
	gnssStarted bool // the last Init turned the receiver on
	// eid is the EID read for the ICCID eidFor: read once per card
	// profile, not at every poll.
	eid    ident.EID
	eidFor ident.ICCID
	eidSet bool
}

// URCsLost reports (and clears) whether a registration query showed the
// URC setting lost since Init: the sign of a silent reset.
func (m *Modem) URCsLost() bool {
	l := m.urcsLost
	m.urcsLost = false
	return l
}

// NewModem wraps an engine; call Init before reading.
func NewModem(e *at.Engine, log *slog.Logger) *Modem {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Modem{E: e, Dialect: Generic, log: log, urcMode: map[Domain]int{}}
}

// Init puts the modem into a known state without resetting it (no ATZ,
// which would drop what others configured): echo off, numeric +CME errors,
// registration URCs with location (=2, falling back to =1), the dialect's
// extras. It identifies the dialect from +CGMI/+CGMM.
func (m *Modem) Init(ctx context.Context) error {
	// The first command after a reset may meet a half-awake modem.
	var err error
	for i := 0; i < 3; i++ {
		if _, err = m.E.Command(ctx, "ATE0"); err == nil || errors.Is(err, at.ErrClosed) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return err
	}
	m.E.Command(ctx, "AT+CMEE=1")
	info, err := m.identity(ctx)
	if err != nil {
		return err
	}
	m.Dialect = DialectFor(info.Manufacturer, info.Model)
	for _, d := range Domains {
		m.urcMode[d] = -1
		if _, err := m.E.Command(ctx, "AT"+d.Command()+"=2"); err == nil {
			m.urcMode[d] = 1
		} else if _, err := m.E.Command(ctx, "AT"+d.Command()+"=1"); err == nil {
			m.urcMode[d] = 0
		} else if errors.Is(err, at.ErrClosed) {
			return err
		}
	}
	for _, c := range m.Dialect.InitCommands {
		if _, err := m.E.Command(ctx, c); errors.Is(err, at.ErrClosed) {
			return err
		}
	}
	m.gnssStarted = false
	if g := m.Dialect.GNSS; m.GNSS && g != nil {
		_, err := m.E.Command(ctx, g.Start)
		if errors.Is(err, at.ErrClosed) {
			return err
		}
		m.gnssStarted = err == nil
	}
	m.log.Debug("modem initialised", "dialect", m.Dialect.Name)
	return nil
}

// Forget drops cached identity (after a reset the firmware, or the card,
// may differ).
func (m *Modem) Forget() { m.info, m.eidSet = nil, false }

func (m *Modem) identity(ctx context.Context) (ModemInfo, error) {
	if m.info != nil {
		return *m.info, nil
	}
	var info ModemInfo
	var err error
	// A failed, timed-out or garbled answer leaves the reading unknown
	// (Failed), never an empty or odd string taken as the value.
	read := func(cmd, prefix string, r Reading) string {
		lines, e := m.E.Command(ctx, cmd)
		if e != nil {
			if errors.Is(e, at.ErrClosed) || ctx.Err() != nil {
				err = e
			}
			info.Failed |= r
			return ""
		}
		s, e := ParseInfo(lines, prefix)
		if e != nil || !validInfo(s) {
			info.Failed |= r
			return ""
		}
		return s
	}
	info.Manufacturer = read("AT+CGMI", "+CGMI:", ReadManufacturer)
	info.Model = read("AT+CGMM", "+CGMM:", ReadModel)
	info.Revision = read("AT+CGMR", "+CGMR:", ReadRevision)
	if err != nil {
		return info, err
	}
	if lines, e := m.E.Command(ctx, "AT+CGSN"); e == nil {
		info.IMEI, _ = ParseSerial(lines)
	}
	if info.IMEI.IsZero() {
		if lines, e := m.E.Command(ctx, "AT+GSN"); e == nil {
			info.IMEI, _ = ParseSerial(lines)
		}
	}
	if info.IMEI.IsZero() {
		info.Failed |= ReadIMEI
	}
	if info.Failed == 0 {
		m.info = &info // an incomplete identity is read again next time
	}
	return info, nil
}

// cpinErrors maps the +CME ERROR codes (27.007 §9.2.1) a modem may give
// to AT+CPIN? instead of a <code> to the same state words.
var cpinErrors = map[int]string{
	5: SIMPhSIMPIN, 6: SIMPhFSIMPIN, 7: SIMPhFSIMPUK,
	at.CMESIMNotInserted: SIMAbsent, at.CMESIMPINRequired: SIMPIN, at.CMESIMPUKRequired: SIMPUK,
	at.CMESIMFailure: SIMError, at.CMESIMBusy: SIMNotReady, at.CMESIMWrong: SIMError,
	17: SIMPIN2, 18: SIMPUK2,
	40: SIMPhNetPIN, 41: SIMPhNetPUK, 42: SIMPhNetSubPIN, 43: SIMPhNetSubPUK,
	44: SIMPhSPPIN, 45: SIMPhSPPUK, 46: SIMPhCorpPIN, 47: SIMPhCorpPUK,
}

// query runs a command whose reply lines carry prefix. Some firmware
// answers without the prefix ("20,99"); the engine then takes the bare
// line for a URC and the reply comes back empty. Only then the command is
// sent once more without a prefix, and the lines that carry no other
// command's prefix are the reply. Only for commands without URCs of the
// same name (+CSQ, +CESQ, +COPS): without a prefix the engine would hand
// "+CEREG: 2,1,..." or "+CPIN: READY" to the URC handlers.
func (m *Modem) query(ctx context.Context, c at.Cmd) ([]string, error) {
	lines, err := m.E.Run(ctx, c)
	if err != nil || len(lines) > 0 || c.Prefix == "" {
		return lines, err
	}
	bare, err := m.E.Run(ctx, at.Cmd{Line: c.Line, Timeout: c.Timeout})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range bare {
		if _, ok := valueOf(l, c.Prefix); ok {
			out = append(out, l)
		}
	}
	return out, nil
}

// ReadSIM reads the SIM state and, when ready, IMSI and ICCID. What the
// modem did not answer, refused with a plain ERROR, or answered garbled is
// unknown (SIMInfo.Failed), never an empty identifier.
func (m *Modem) ReadSIM(ctx context.Context) (SIMInfo, error) {
	var s SIMInfo
	lines, err := m.E.Run(ctx, at.Cmd{Line: "AT+CPIN?", Prefix: "+CPIN:"})
	var ce *at.CMEError
	switch {
	case err == nil && len(lines) > 0:
		var perr error
		if s.State, perr = ParseCPIN(lines[0]); perr != nil {
			s.State, s.Failed = "", ReadSIM
			return s, nil
		}
	case errors.As(err, &ce) && cpinErrors[ce.Code] != "":
		s.State = cpinErrors[ce.Code]
		return s, nil
	case err != nil && (errors.Is(err, at.ErrClosed) || ctx.Err() != nil):
		s.Failed = ReadSIM
		return s, err
	default:
		// A timeout, a plain ERROR, an OK without +CPIN: the state is
		// not known (the SIM may well be there).
		s.Failed = ReadSIM
		return s, nil
	}
	if s.State != SIMReady {
		return s, nil
	}
	if lines, err := m.E.Command(ctx, "AT+CIMI"); err == nil {
		if s.IMSI, err = ParseCIMI(lines); err != nil {
			s.Failed |= ReadIMSI
		}
	} else {
		s.Failed |= ReadIMSI
		if errors.Is(err, at.ErrClosed) || ctx.Err() != nil {
			return s, err
		}
	}
	s.ICCID, err = m.readICCID(ctx)
	if err != nil {
		s.Failed |= ReadICCID
		if errors.Is(err, at.ErrClosed) || ctx.Err() != nil {
			return s, err
		}
		return s, nil
	}
	if !m.eidSet || !m.eidFor.Equal(s.ICCID) {
		eid, err := m.readEID(ctx)
		switch {
		case errors.Is(err, at.ErrClosed) || ctx.Err() != nil:
			return s, err
		case errors.Is(err, at.ErrTimeout):
			// Not known: asked again at the next read.
		default:
			m.eid, m.eidFor, m.eidSet = eid, s.ICCID, true
		}
	}
	s.EID = m.eid
	return s, nil
}

func (m *Modem) readICCID(ctx context.Context) (ident.ICCID, error) {
	for _, c := range m.Dialect.ICCIDCommands {
		lines, err := m.E.Run(ctx, c)
		if err == nil {
			if id, err := ParseICCIDLines(lines); err == nil {
				return id, nil
			}
		} else if errors.Is(err, at.ErrClosed) || ctx.Err() != nil {
			return ident.ICCID{}, err
		}
	}
	lines, err := m.E.Run(ctx, crsmICCID)
	if err != nil {
		return ident.ICCID{}, err
	}
	if len(lines) == 0 {
		return ident.ICCID{}, ErrNoReading
	}
	return ParseCRSMICCID(lines[0])
}

// ReadRegistration queries one domain; (nil, nil) when the modem does not
// support it or the reading is unknown (readRegistration tells which).
func (m *Modem) ReadRegistration(ctx context.Context, d Domain) (*Registration, error) {
	r, _, err := m.readRegistration(ctx, d)
	return r, err
}

// readRegistration queries one domain. The reading is unknown when the
// query timed out or the reply was garbled, and when a domain whose URCs
// Init could switch on (so the modem knows it) answered an error; an error
// from a domain Init found unsupported is the modem saying "none".
func (m *Modem) readRegistration(ctx context.Context, d Domain) (r *Registration, unknown bool, err error) {
	lines, err := m.E.Run(ctx, at.Cmd{Line: "AT" + d.Command() + "?", Prefix: d.Command() + ":", Accept: IsRegQueryReply})
	if err != nil {
		if errors.Is(err, at.ErrClosed) || ctx.Err() != nil {
			return nil, true, err
		}
		mode, inited := m.urcMode[d]
		return nil, errors.Is(err, at.ErrTimeout) || inited && mode >= 0, nil
	}
	for _, l := range lines {
		v, _ := valueOf(l, d.Command()+":")
		if !isRegQueryValue(v) {
			continue // a URC that came in without its prefix
		}
		if r, err := ParseRegistrationAs(d, l, true); err == nil {
			if n, ok := splitFields(v)[0].int(); ok && n == 0 && m.urcMode[d] >= 0 {
				m.urcsLost = true
			}
			return r, false, nil
		}
	}
	return nil, true, nil // OK without a reading, or a garbled one
}

// Status reads everything. Readings the modem refuses are left unknown; an
// error is returned only when the port is gone or ctx ends.
func (m *Modem) Status(ctx context.Context) (*Status, error) {
	info, err := m.identity(ctx)
	if err != nil {
		return nil, err
	}
	st := &Status{Modem: info, Dialect: m.Dialect.Name, Family: m.Dialect.Family, Registration: map[Domain]*Registration{}, Time: time.Now()}
	if st.SIM, err = m.ReadSIM(ctx); err != nil {
		return nil, err
	}
	for _, d := range Domains {
		r, unknown, err := m.readRegistration(ctx, d)
		if err != nil {
			return nil, err
		}
		st.Registration[d] = r
		if unknown {
			st.Failed |= RegReading(d)
		}
	}
	if err := m.readOperator(ctx, st); err != nil {
		return nil, err
	}
	if lines, err := m.query(ctx, at.Cmd{Line: "AT+CSQ", Prefix: "+CSQ:"}); err == nil && len(lines) > 0 {
		st.Signal, _ = ParseCSQ(lines[0])
	} else if errors.Is(err, at.ErrClosed) {
		return nil, err
	}
	if lines, err := m.query(ctx, at.Cmd{Line: "AT+CESQ", Prefix: "+CESQ:"}); err == nil && len(lines) > 0 {
		if s, err := ParseCESQ(lines[0]); err == nil {
			st.Signal.RSRPdBm, st.Signal.RSRQdB = s.RSRPdBm, s.RSRQdB
			if st.Signal.RSSIdBm == nil {
				st.Signal.RSSIdBm = s.RSSIdBm
			}
		}
	} else if errors.Is(err, at.ErrClosed) {
		return nil, err
	}
	if c := m.Dialect.SignalCommand; c != nil {
		if lines, err := m.E.Run(ctx, *c); err == nil {
			if s, err := m.Dialect.ParseSignal(lines); err == nil {
				fillSignal(&st.Signal, s)
			}
		} else if errors.Is(err, at.ErrClosed) {
			return nil, err
		}
	}
	if c := m.Dialect.CellCommand; c != nil {
		if lines, err := m.E.Run(ctx, *c); err == nil {
			st.Cell, _ = m.Dialect.ParseCell(lines)
		} else if errors.Is(err, at.ErrClosed) {
			return nil, err
		}
	}
	if c := st.Cell; c != nil && c.RAT == "" {
		// A cell reply that does not name its radio (u-blox +UCGED)
		// takes it from the EPS registration, when that is known.
		if r := st.Registration[DomainEPS]; r != nil && r.Registered() && r.AcT != nil {
			c.RAT = ratOfAcT(*r.AcT)
		}
	}
	if m.GNSS && m.Dialect.GNSS != nil {
		p, err := m.ReadPosition(ctx)
		switch {
		case err == nil:
			st.Location = p
		case errors.Is(err, at.ErrClosed):
			return nil, err
		case !errors.Is(err, ErrNoFix):
			m.log.Debug("no position", "err", err)
		}
	}
	return st, nil
}

// fillSignal copies into dst the values of s that dst lacks: the 27.007
// readings win over a vendor command's.
func fillSignal(dst *Signal, s Signal) {
	if dst.RSSIdBm == nil {
		dst.RSSIdBm = s.RSSIdBm
	}
	if dst.BER == nil {
		dst.BER = s.BER
	}
	if dst.RSRPdBm == nil {
		dst.RSRPdBm = s.RSRPdBm
	}
	if dst.RSRQdB == nil {
		dst.RSRQdB = s.RSRQdB
	}
}

// readOperator reads the operator's name and numeric PLMN. The PLMN is
// unknown (ReadOperator) when the numeric read failed or was garbled; a
// +COPS without an operator is a value: none.
func (m *Modem) readOperator(ctx context.Context, st *Status) error {
	// Numeric first (MCC/MNC), then the long name; format 2 is left set,
	// as ModemManager leaves it.
	for _, format := range []string{"0", "2"} {
		failed := func() {
			if format == "2" {
				st.Failed |= ReadOperator
			}
		}
		if _, err := m.E.Command(ctx, "AT+COPS=3,"+format); err != nil {
			if errors.Is(err, at.ErrClosed) {
				return err
			}
			failed()
			continue
		}
		lines, err := m.query(ctx, at.Cmd{Line: "AT+COPS?", Prefix: "+COPS:"})
		if err != nil {
			if errors.Is(err, at.ErrClosed) {
				return err
			}
			failed()
			continue
		}
		if len(lines) == 0 {
			failed()
			continue
		}
		op, err := ParseCOPS(lines[0])
		if err != nil || format == "2" && op.Name != nil {
			failed()
			continue
		}
		if op.Name != nil {
			st.Operator.Name = op.Name
		}
		if op.MCC != nil {
			st.Operator.MCC, st.Operator.MNC = op.MCC, op.MNC
		}
	}
	return nil
}
