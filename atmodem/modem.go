package atmodem

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/mtcagent/mtcagent/privacy/ident"
)

// Status is one full reading of the modem. Unknown values are nil or zero.
type Status struct {
	Modem        ModemInfo
	SIM          SIMInfo
	Registration map[Domain]*Registration // nil entry: not answered
	Operator     Operator
	Signal       Signal
	Cell         *ServingCell // where the dialect gives it
	Location     *Position    // GNSS fix, when enabled (Modem.GNSS) and fixed
	Dialect      string
	Time         time.Time
}

// ModemInfo identifies the modem.
type ModemInfo struct {
	Manufacturer string
	Model        string
	Revision     string
	IMEI         ident.IMEI
}

// SIMInfo is the SIM's state and identity.
type SIMInfo struct {
	State string // SIMReady, SIMAbsent, ...
	IMSI  ident.IMSI
	ICCID ident.ICCID
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

// Modem reads a modem through an Engine, in its dialect.
type Modem struct {
	E       *Engine
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
}

// URCsLost reports (and clears) whether a registration query showed the
// URC setting lost since Init: the sign of a silent reset.
func (m *Modem) URCsLost() bool {
	l := m.urcsLost
	m.urcsLost = false
	return l
}

// NewModem wraps an engine; call Init before reading.
func NewModem(e *Engine, log *slog.Logger) *Modem {
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
		if _, err = m.E.Command(ctx, "ATE0"); err == nil || errors.Is(err, ErrClosed) || ctx.Err() != nil {
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
		} else if errors.Is(err, ErrClosed) {
			return err
		}
	}
	for _, c := range m.Dialect.InitCommands {
		if _, err := m.E.Command(ctx, c); errors.Is(err, ErrClosed) {
			return err
		}
	}
	m.gnssStarted = false
	if g := m.Dialect.GNSS; m.GNSS && g != nil {
		_, err := m.E.Command(ctx, g.Start)
		if errors.Is(err, ErrClosed) {
			return err
		}
		m.gnssStarted = err == nil
	}
	m.log.Debug("modem initialised", "dialect", m.Dialect.Name)
	return nil
}

// Forget drops cached identity (after a reset the firmware may differ).
func (m *Modem) Forget() { m.info = nil }

func (m *Modem) identity(ctx context.Context) (ModemInfo, error) {
	if m.info != nil {
		return *m.info, nil
	}
	var info ModemInfo
	var err error
	read := func(cmd, prefix string) string {
		lines, e := m.E.Command(ctx, cmd)
		if e != nil {
			if errors.Is(e, ErrClosed) || ctx.Err() != nil {
				err = e
			}
			return ""
		}
		s, _ := ParseInfo(lines, prefix)
		return s
	}
	info.Manufacturer = read("AT+CGMI", "+CGMI:")
	info.Model = read("AT+CGMM", "+CGMM:")
	info.Revision = read("AT+CGMR", "+CGMR:")
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
	m.info = &info
	return info, nil
}

// ReadSIM reads the SIM state and, when ready, IMSI and ICCID.
func (m *Modem) ReadSIM(ctx context.Context) (SIMInfo, error) {
	var s SIMInfo
	lines, err := m.E.Run(ctx, Cmd{Line: "AT+CPIN?", Prefix: "+CPIN:"})
	switch {
	case err == nil && len(lines) > 0:
		s.State, _ = ParseCPIN(lines[0])
	case IsCME(err, CMESIMNotInserted):
		s.State = SIMAbsent
		return s, nil
	case IsCME(err, CMESIMBusy):
		s.State = SIMNotReady
		return s, nil
	case IsCME(err, CMESIMFailure), IsCME(err, CMESIMWrong):
		s.State = SIMError
		return s, nil
	case err != nil && (errors.Is(err, ErrClosed) || ctx.Err() != nil):
		return s, err
	default:
		s.State = SIMError
	}
	if s.State != SIMReady {
		return s, nil
	}
	if lines, err := m.E.Command(ctx, "AT+CIMI"); err == nil {
		s.IMSI, _ = ParseCIMI(lines)
	} else if errors.Is(err, ErrClosed) {
		return s, err
	}
	s.ICCID, err = m.readICCID(ctx)
	if errors.Is(err, ErrClosed) {
		return s, err
	}
	return s, nil
}

func (m *Modem) readICCID(ctx context.Context) (ident.ICCID, error) {
	for _, c := range m.Dialect.ICCIDCommands {
		lines, err := m.E.Run(ctx, c)
		if err == nil {
			if id, err := ParseICCIDLines(lines); err == nil {
				return id, nil
			}
		} else if errors.Is(err, ErrClosed) || ctx.Err() != nil {
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
// support it.
func (m *Modem) ReadRegistration(ctx context.Context, d Domain) (*Registration, error) {
	lines, err := m.E.Run(ctx, Cmd{Line: "AT" + d.Command() + "?", Prefix: d.Command() + ":", Accept: IsRegQueryReply})
	if err != nil {
		if errors.Is(err, ErrClosed) || ctx.Err() != nil {
			return nil, err
		}
		return nil, nil
	}
	for _, l := range lines {
		if _, r, err := ParseRegistration(l, true); err == nil {
			_, rest, _ := strings.Cut(l, ":")
			if n, ok := splitFields(strings.TrimSpace(rest))[0].int(); ok && n == 0 && m.urcMode[d] >= 0 {
				m.urcsLost = true
			}
			return r, nil
		}
	}
	return nil, nil
}

// Status reads everything. Readings the modem refuses are left unknown; an
// error is returned only when the port is gone or ctx ends.
func (m *Modem) Status(ctx context.Context) (*Status, error) {
	info, err := m.identity(ctx)
	if err != nil {
		return nil, err
	}
	st := &Status{Modem: info, Dialect: m.Dialect.Name, Registration: map[Domain]*Registration{}, Time: time.Now()}
	if st.SIM, err = m.ReadSIM(ctx); err != nil {
		return nil, err
	}
	for _, d := range Domains {
		r, err := m.ReadRegistration(ctx, d)
		if err != nil {
			return nil, err
		}
		st.Registration[d] = r
	}
	if err := m.readOperator(ctx, st); err != nil {
		return nil, err
	}
	if lines, err := m.E.Run(ctx, Cmd{Line: "AT+CSQ", Prefix: "+CSQ:"}); err == nil && len(lines) > 0 {
		st.Signal, _ = ParseCSQ(lines[0])
	} else if errors.Is(err, ErrClosed) {
		return nil, err
	}
	if lines, err := m.E.Run(ctx, Cmd{Line: "AT+CESQ", Prefix: "+CESQ:"}); err == nil && len(lines) > 0 {
		if s, err := ParseCESQ(lines[0]); err == nil {
			st.Signal.RSRPdBm, st.Signal.RSRQdB = s.RSRPdBm, s.RSRQdB
			if st.Signal.RSSIdBm == nil {
				st.Signal.RSSIdBm = s.RSSIdBm
			}
		}
	} else if errors.Is(err, ErrClosed) {
		return nil, err
	}
	if c := m.Dialect.CellCommand; c != nil {
		if lines, err := m.E.Run(ctx, *c); err == nil {
			st.Cell, _ = m.Dialect.ParseCell(lines)
		} else if errors.Is(err, ErrClosed) {
			return nil, err
		}
	}
	if m.GNSS && m.Dialect.GNSS != nil {
		p, err := m.ReadPosition(ctx)
		switch {
		case err == nil:
			st.Location = p
		case errors.Is(err, ErrClosed):
			return nil, err
		case !errors.Is(err, ErrNoFix):
			m.log.Debug("no position", "err", err)
		}
	}
	return st, nil
}

func (m *Modem) readOperator(ctx context.Context, st *Status) error {
	// Numeric first (MCC/MNC), then the long name; format 2 is left set,
	// as ModemManager leaves it.
	for _, format := range []string{"0", "2"} {
		if _, err := m.E.Command(ctx, "AT+COPS=3,"+format); err != nil {
			if errors.Is(err, ErrClosed) {
				return err
			}
			continue
		}
		lines, err := m.E.Run(ctx, Cmd{Line: "AT+COPS?", Prefix: "+COPS:"})
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return err
			}
			continue
		}
		if len(lines) == 0 {
			continue
		}
		op, err := ParseCOPS(lines[0])
		if err != nil {
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
