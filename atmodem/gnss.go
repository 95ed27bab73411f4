package atmodem

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/mtcagent/mtcagent/atmodem/at"
)

// Position is a GNSS fix as the modem reports it.
type Position struct {
	Lat       float64   `json:"lat"`                  // degrees, WGS 84; south negative
	Lon       float64   `json:"lon"`                  // degrees; west negative
	HDOP      float64   `json:"hdop,omitempty"`       // horizontal dilution of precision; 0 when not given
	AccuracyM float64   `json:"accuracy_m,omitempty"` // rough horizontal accuracy: HDOP × 5 m; 0 when unknown
	Time      time.Time `json:"time,omitzero"`        // UTC time of the fix; zero when not given
	Sats      int       `json:"sats,omitempty"`       // satellites used; 0 when not given
}

// ErrNoFix is returned when the receiver has no position (yet).
var ErrNoFix = errors.New("atmodem: no GNSS fix")

// ErrBadPosition wraps a position reply that cannot be parsed.
var ErrBadPosition = errors.New("atmodem: bad GNSS position")

// uereM is the user equivalent range error HDOP is multiplied by for a
// rough horizontal accuracy (a common rule of thumb for consumer GNSS).
const uereM = 5

// GNSS is how a dialect starts its receiver and reads a fix.
type GNSS struct {
	// Start turns the receiver on; an error (e.g. "session is ongoing")
	// is ignored.
	Start string
	// Stop turns it off again; sent at shutdown, and only when Start
	// turned it on (not when someone else had it on already).
	Stop  string
	Read  at.Cmd
	Parse func(line string) (*Position, error) // ErrNoFix when there is none
	// NoFixCME is the +CME ERROR code that means "no fix yet" (0: none).
	NoFixCME int
}

var quectelGNSS = &GNSS{
	Start:    "AT+QGPS=1",
	Stop:     "AT+QGPSEND",
	Read:     at.Cmd{Line: "AT+QGPSLOC=2", Prefix: "+QGPSLOC:"},
	Parse:    ParseQGPSLOC,
	NoFixCME: 516,
}

var simcomGNSS = &GNSS{
	Start: "AT+CGPS=1",
	Stop:  "AT+CGPS=0",
	Read:  at.Cmd{Line: "AT+CGPSINFO", Prefix: "+CGPSINFO:"},
	Parse: ParseCGPSINFO,
}

// GNSSStarted reports whether the last Init turned the receiver on (it
// was off and Start took).
func (m *Modem) GNSSStarted() bool { return m.gnssStarted }

// StopGNSS turns the receiver off. The monitor calls it at shutdown when
// it was the one that turned it on, to save the receiver's power.
func (m *Modem) StopGNSS(ctx context.Context) error {
	g := m.Dialect.GNSS
	if g == nil || g.Stop == "" {
		return nil
	}
	_, err := m.E.Command(ctx, g.Stop)
	return err
}

// ReadPosition reads a fix through the dialect's GNSS commands.
func (m *Modem) ReadPosition(ctx context.Context) (*Position, error) {
	g := m.Dialect.GNSS
	if g == nil {
		return nil, fmt.Errorf("%w: the %s dialect has no GNSS commands", ErrNoFix, m.Dialect.Name)
	}
	lines, err := m.E.Run(ctx, g.Read)
	var cme *at.CMEError
	if errors.As(err, &cme) && g.NoFixCME != 0 && cme.Code == g.NoFixCME {
		return nil, ErrNoFix
	}
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		if strings.HasPrefix(l, g.Read.Prefix) {
			return g.Parse(l)
		}
	}
	return nil, fmt.Errorf("%w: no %s line", ErrBadPosition, g.Read.Prefix)
}

// ParseQGPSLOC parses Quectel's AT+QGPSLOC=2 answer:
//
//	+QGPSLOC: <UTC hhmmss.sss>,<lat>,<lon>,<HDOP>,<altitude>,<fix>,<COG>,<spkm>,<spkn>,<date ddmmyy>,<nsat>
//
// with latitude and longitude in signed decimal degrees (mode 2).
func ParseQGPSLOC(line string) (*Position, error) {
	f, err := gnssFields(line, "+QGPSLOC")
	if err != nil {
		return nil, err
	}
	p := &Position{}
	if p.Lat, err = degrees(f[1], 90); err != nil {
		return nil, err
	}
	if p.Lon, err = degrees(f[2], 180); err != nil {
		return nil, err
	}
	p.HDOP = hdop(f[3])
	p.AccuracyM = p.HDOP * uereM
	if len(f) >= 10 {
		p.Time = fixTime(f[9], f[0])
	}
	if len(f) >= 11 {
		p.Sats, _ = strconv.Atoi(f[10])
	}
	return p, nil
}

// ParseCGPSINFO parses SIMCom's AT+CGPSINFO answer:
//
//	+CGPSINFO: <lat ddmm.mmmmmm>,<N/S>,<lon dddmm.mmmmmm>,<E/W>,<date ddmmyy>,<UTC hhmmss.s>,<alt>,<speed>,<course>
//
// Empty fields mean no fix.
func ParseCGPSINFO(line string) (*Position, error) {
	f, err := gnssFields(line, "+CGPSINFO")
	if err != nil {
		return nil, err
	}
	if f[0] == "" || f[2] == "" {
		return nil, ErrNoFix
	}
	lat, err := degMin(f[0], f[1], "N", "S", 90)
	if err != nil {
		return nil, err
	}
	lon, err := degMin(f[2], f[3], "E", "W", 180)
	if err != nil {
		return nil, err
	}
	p := &Position{Lat: lat, Lon: lon}
	if len(f) >= 6 {
		p.Time = fixTime(f[4], f[5])
	}
	return p, nil
}

// gnssFields splits a position answer after its prefix (e.g. "+QGPSLOC")
// into its fields, trimmed, at least the four that carry the position.
func gnssFields(line, prefix string) ([]string, error) {
	rest, ok := strings.CutPrefix(line, prefix+":")
	if !ok {
		return nil, fmt.Errorf("%w: %q is not %s", ErrBadPosition, line, prefix)
	}
	fs := splitFields(rest)
	if len(fs) < 4 {
		return nil, fmt.Errorf("%w: %d fields in %s, want at least 4", ErrBadPosition, len(fs), prefix)
	}
	f := make([]string, len(fs))
	for i, x := range fs {
		f[i] = x.s
	}
	return f, nil
}

// degrees parses signed decimal degrees within ±limit.
func degrees(s string, limit float64) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.Abs(v) > limit {
		return 0, fmt.Errorf("%w: %q is not a coordinate within ±%g°", ErrBadPosition, s, limit)
	}
	return v, nil
}

// degMin parses NMEA-style (d)ddmm.mmmm with a hemisphere letter.
func degMin(s, hemi, pos, neg string, limit float64) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w: %q is not ddmm.mmmm", ErrBadPosition, s)
	}
	deg := math.Floor(v / 100)
	min := v - 100*deg
	if min >= 60 {
		return 0, fmt.Errorf("%w: %q has %g minutes", ErrBadPosition, s, min)
	}
	d := deg + min/60
	switch strings.ToUpper(hemi) {
	case pos:
	case neg:
		d = -d
	default:
		return 0, fmt.Errorf("%w: hemisphere %q, want %s or %s", ErrBadPosition, hemi, pos, neg)
	}
	if math.Abs(d) > limit {
		return 0, fmt.Errorf("%w: %q is beyond ±%g°", ErrBadPosition, s, limit)
	}
	return d, nil
}

func hdop(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v > 100 || math.IsNaN(v) {
		return 0
	}
	return v
}

// fixTime combines ddmmyy and hhmmss(.s) into a UTC time; zero when either
// does not parse.
func fixTime(date, clock string) time.Time {
	if i := strings.IndexByte(clock, '.'); i >= 0 {
		clock = clock[:i]
	}
	t, err := time.Parse("020106150405", date+clock)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}
