package atmodem

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestParseQGPSLOC(t *testing.T) {
	for _, tc := range []struct {
		line     string
		lat, lon float64
		acc      float64
		tm       time.Time
		sats     int
		err      error
	}{
		{"+QGPSLOC: 061951.000,52.52001,13.40495,0.8,62.0,3,0.00,0.0,0.0,231126,09", 52.52001, 13.40495, 4, time.Date(2026, 11, 23, 6, 19, 51, 0, time.UTC), 9, nil},
		{"+QGPSLOC: 120000.0,-33.86785,151.20732,1.6,12.3,2,,0.0,0.0,010126,05", -33.86785, 151.20732, 8, time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), 5, nil},
		{"+QGPSLOC: ,52.5,-0.1,", 52.5, -0.1, 0, time.Time{}, 0, nil},                   // minimal
		{"+QGPSLOC: 061951.000,91.0,13.4,0.8", 0, 0, 0, time.Time{}, 0, ErrBadPosition}, // beyond the pole
		{"+QGPSLOC: 061951.000,52.5,NaN,0.8", 0, 0, 0, time.Time{}, 0, ErrBadPosition},
		{"+QGPSLOC: 061951.000,5231.2N,01324.3E,0.8", 0, 0, 0, time.Time{}, 0, ErrBadPosition}, // mode 0, not 2
		{"+QGPSLOC: 1,2", 0, 0, 0, time.Time{}, 0, ErrBadPosition},
		{"+CGPSINFO: 1,2,3,4", 0, 0, 0, time.Time{}, 0, ErrBadPosition},
	} {
		p, err := ParseQGPSLOC(tc.line)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%q: %v, want %v", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil || p.Lat != tc.lat || p.Lon != tc.lon || p.AccuracyM != tc.acc || !p.Time.Equal(tc.tm) || p.Sats != tc.sats {
			t.Errorf("%q: %+v %v", tc.line, p, err)
		}
	}
}

func TestParseCGPSINFO(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
	for _, tc := range []struct {
		line     string
		lat, lon float64
		tm       time.Time
		err      error
	}{
		{"+CGPSINFO: 3113.343286,N,12121.234064,E,250311,072809.3,44.1,0.0,0", 31 + 13.343286/60, 121 + 21.234064/60, time.Date(2011, 3, 25, 7, 28, 9, 0, time.UTC), nil},
		{"+CGPSINFO: 3351.0000,S,00030.0000,W,010126,000000.0,,,", -(33 + 51.0/60), -0.5, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), nil},
		{"+CGPSINFO: ,,,,,,,,", 0, 0, time.Time{}, ErrNoFix},
		{"+CGPSINFO:,,,,,,,,", 0, 0, time.Time{}, ErrNoFix},
		{"+CGPSINFO: 3113.3,X,12121.2,E,,,,,", 0, 0, time.Time{}, ErrBadPosition},
		{"+CGPSINFO: 3175.0,N,12121.2,E,,,,,", 0, 0, time.Time{}, ErrBadPosition}, // 75 minutes
		{"+CGPSINFO: 9130.0,N,12121.2,E,,,,,", 0, 0, time.Time{}, ErrBadPosition}, // 91°
		{"+CGPSINFO: -3113.3,N,12121.2,E,,,,,", 0, 0, time.Time{}, ErrBadPosition},
		{"+CGPSINFO: 3113.3,N", 0, 0, time.Time{}, ErrBadPosition},
	} {
		p, err := ParseCGPSINFO(tc.line)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%q: %v, want %v", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil || !near(p.Lat, tc.lat) || !near(p.Lon, tc.lon) || !p.Time.Equal(tc.tm) {
			t.Errorf("%q: %+v %v", tc.line, p, err)
		}
	}
}

// FuzzParsePosition: no panic, and an accepted position is a place on
// Earth.
func FuzzParsePosition(f *testing.F) {
	f.Add("+QGPSLOC: 061951.000,52.52001,13.40495,0.8,62.0,3,0.00,0.0,0.0,231126,09")
	f.Add("+CGPSINFO: 3113.343286,N,12121.234064,E,250311,072809.3,44.1,0.0,0")
	f.Add("+CGPSINFO: ,,,,,,,,")
	f.Fuzz(func(t *testing.T, line string) {
		for _, parse := range []func(string) (*Position, error){ParseQGPSLOC, ParseCGPSINFO} {
			p, err := parse(line)
			if err != nil {
				continue
			}
			if math.IsNaN(p.Lat) || math.IsNaN(p.Lon) || math.Abs(p.Lat) > 90 || math.Abs(p.Lon) > 180 || p.AccuracyM < 0 {
				t.Fatalf("%q gave %+v", line, p)
			}
		}
	})
}
