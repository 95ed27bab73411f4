package privacy

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/internal/testexec"
	"github.com/mtcagent/mtcagent/privacy/ident"
)

// distM is the distance in meters between two nearby points.
func distM(lat1, lon1, lat2, lon2 float64) float64 {
	dy := (lat1 - lat2) * metersPerDegree
	dx := (lon1 - lon2) * metersPerDegree * math.Cos((lat1+lat2)/2*math.Pi/180)
	return math.Hypot(dx, dy)
}

// averaging simulates devices stationary devices, each with its own secret
// and position, sending reports reports (one per every) to a
// recipient with a 2 km grid through Policy.View. It returns the share of
// devices whose mean reported position stays at least 250 m from the truth,
// and the mean distance of the averaged position.
func averaging(tb testing.TB, devices, reports int, every time.Duration) (kept, meanErr float64) {
	rng := rand.New(rand.NewPCG(2026, 11))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var nKept int
	var sumErr float64
	for d := 0; d < devices; d++ {
		secret := make([]byte, SecretSize)
		for i := range secret {
			secret[i] = byte(rng.Uint32())
		}
		p := mustPolicy(tb, "[recipient \"scs\"]\nidentity = psk:scs\nlocation = region:2km\n")
		if err := p.SetSecret(ident.NewKey(secret)); err != nil {
			tb.Fatal(err)
		}
		loc := Location{Lat: 35 + 25*rng.Float64(), Lon: -10 + 40*rng.Float64(), AccuracyM: 10}
		t0 := start.Add(time.Duration(rng.IntN(365*24)) * time.Hour)
		var sLat, sLon float64
		for i := 0; i < reports; i++ {
			r, err := p.View("scs", Snapshot{Time: t0.Add(time.Duration(i) * every), Location: &loc})
			if err != nil {
				tb.Fatal(err)
			}
			sLat += *r.b.Lat
			sLon += *r.b.Lon
		}
		e := distM(sLat/float64(reports), sLon/float64(reports), loc.Lat, loc.Lon)
		sumErr += e
		if e >= 250 {
			nKept++
		}
	}
	return float64(nKept) / float64(devices), sumErr / float64(devices)
}

// TestAveragingDoesNotRecoverPosition is the acceptance test: 1000 reports
// of a stationary device to a 2 km grid; for at least 80 % of 200 devices
// the mean of the reports stays at least 250 m from the true position.
func TestAveragingDoesNotRecoverPosition(t *testing.T) {
	devices := 200
	if testing.Short() || testexec.Emulated() {
		devices = 40
	}
	// One report per 15-minute slot (ten days, a few drift periods), and
	// one every 9 hours (a year: the drift averages out, the fixed part
	// of the offset stays).
	for i, every := range []time.Duration{15 * time.Minute, 9 * time.Hour} {
		n := devices
		if i > 0 {
			n /= 2 // the second case is extra; keep the suite fast
		}
		kept, meanErr := averaging(t, n, 1000, every)
		if kept < 0.80 {
			t.Errorf("every %v: only %.1f %% of devices keep the mean >= 250 m away (mean error %.0f m)", every, 100*kept, meanErr)
		}
	}
}

// BenchmarkLocationAveraging records the averaging result for
// docs/benchmarks.md: pct-kept (share of 200 devices whose mean of 1000
// reports stays >= 250 m from the truth) and m-mean-err.
func BenchmarkLocationAveraging(b *testing.B) {
	var kept, meanErr float64
	for i := 0; i < b.N; i++ {
		kept, meanErr = averaging(b, 200, 1000, 15*time.Minute)
	}
	b.ReportMetric(100*kept, "pct-kept")
	b.ReportMetric(meanErr, "m-mean-err")
}

// BenchmarkReportView is the masking cost per report: View (region masking,
// cell, status) and Encode (checked, padded CBOR).
func BenchmarkReportView(b *testing.B) {
	p := policyWith(b, "[privacy]\npadding = on", "status = reachable\nlocation = region:2km\ncell = tracking_area")
	s := fullSnapshot(b)
	b.ReportAllocs()
	var n int
	for i := 0; i < b.N; i++ {
		s.Time = testTime.Add(time.Duration(i) * time.Minute)
		r, err := p.View("r", s)
		if err != nil {
			b.Fatal(err)
		}
		out, err := r.Encode()
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/report")
	b.ReportMetric(float64(n), "B/report")
}

func TestMaskStableWithinWindow(t *testing.T) {
	m, err := NewMasker(testSecret())
	if err != nil {
		t.Fatal(err)
	}
	loc := Location{Lat: 48.137154, Lon: 11.576124}
	w0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Truncate(driftWindow)
	// Reports within one drift window are identical: no fresh noise.
	var lat0, lon0 float64
	for i := 0; i < 50; i++ {
		tm := w0.Add(time.Duration(i) * driftWindow / 50)
		e0, n0 := m.Offset(w0)
		e, n := m.Offset(tm)
		if e != e0 || n != n0 {
			t.Fatalf("offset changed within a window")
		}
		lat, lon := m.Region(loc, 2000, tm)
		if i == 0 {
			lat0, lon0 = lat, lon
		} else if lat != lat0 || lon != lon0 {
			t.Fatal("region changed within a window")
		}
	}
	// The offset moves slowly and stays bounded.
	pe, pn := m.Offset(w0)
	for i := 1; i < 4*int(driftPeriod/driftWindow); i++ {
		e, n := m.Offset(w0.Add(time.Duration(i) * driftWindow))
		if step := math.Hypot(e-pe, n-pn); step > 0.1 {
			t.Fatalf("offset jumped %.3f grid units in one window", step)
		}
		if r := math.Hypot(e, n); r > baseRadius+driftRadius {
			t.Fatalf("offset %.3f grid units, bound %.2f", r, baseRadius+driftRadius)
		}
		pe, pn = e, n
	}
	// Another secret, another offset.
	m2, _ := NewMasker(ident.NewKey([]byte(strings.Repeat("x", SecretSize))))
	e1, n1 := m.Offset(w0)
	e2, n2 := m2.Offset(w0)
	if e1 == e2 && n1 == n2 {
		t.Fatal("offset does not depend on the secret")
	}
}

func TestRegionGrid(t *testing.T) {
	m, _ := NewMasker(testSecret())
	for _, loc := range []Location{
		{Lat: 0, Lon: 0}, {Lat: 89.99, Lon: 179.999}, {Lat: -89.99, Lon: -180}, {Lat: 60, Lon: -179.9999}, {Lat: -33.9, Lon: 151.2},
	} {
		for _, g := range []int{100, 2000, 500000} {
			lat, lon := m.Region(loc, g, testTime)
			if math.IsNaN(lat) || math.IsNaN(lon) || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
				t.Errorf("region of %v at %d m: %v %v", loc, g, lat, lon)
			}
		}
	}
	// Nearby devices with the same offset fall into the same grid of centres.
	lat1, lon1 := m.Region(Location{Lat: 48.1, Lon: 11.5}, 2000, testTime)
	lat2, lon2 := m.Region(Location{Lat: 48.1 + 2000/metersPerDegree, Lon: 11.5}, 2000, testTime)
	if d := (lat2 - lat1) * metersPerDegree; math.Abs(d-2000) > 1 {
		t.Errorf("neighbouring rows %.0f m apart, want 2000", d)
	}
	if d := distM(lat1, lon1, lat2, lon2); d > 2000*1.5 {
		t.Errorf("neighbouring cell centres %.0f m apart", d)
	}
	lat3, lon3 := m.Region(Location{Lat: 48.1, Lon: 11.5 + 2000/(metersPerDegree*math.Cos(48.1*math.Pi/180))}, 2000, testTime)
	if d := distM(lat1, lon1, lat3, lon3); lat3 != lat1 || math.Abs(d-2000) > 20 {
		t.Errorf("neighbouring columns %.0f m apart, want 2000", d)
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, SecretFile))
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != SecretSize {
		t.Fatalf("secret file: %v %v", st, err)
	}
	k2, err := LoadSecret(dir)
	if err != nil || !k1.Equal(k2) || k1.Len() != SecretSize {
		t.Fatal("secret not stable across loads")
	}
	if err := os.Chmod(filepath.Join(dir, SecretFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSecret(dir); !errors.Is(err, fsutil.ErrUnprotected) || !strings.Contains(err.Error(), "too open") {
		t.Fatalf("world-readable secret accepted: %v", err)
	}
	os.WriteFile(filepath.Join(dir, SecretFile), []byte("short"), 0o600)
	os.Chmod(filepath.Join(dir, SecretFile), 0o600)
	if _, err := LoadSecret(dir); err == nil || !strings.Contains(err.Error(), "want 32") {
		t.Fatalf("short secret accepted: %v", err)
	}
	if _, err := LoadSecret(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("secret created in a missing directory")
	}
}

// TestFreshNoiseAveragesAway is the control for the averaging test: the
// same measure applied to fresh independent noise per report (what the
// design forbids) recovers the position, so the measure can fail.
func TestFreshNoiseAveragesAway(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	devices, kept := 40, 0
	for d := 0; d < devices; d++ {
		loc := Location{Lat: 35 + 25*rng.Float64(), Lon: -10 + 40*rng.Float64()}
		var sLat, sLon float64
		for i := 0; i < 1000; i++ {
			r := 2000 * math.Sqrt(rng.Float64())
			th := 2 * math.Pi * rng.Float64()
			lat, lon := snap(loc.Lat+r*math.Sin(th)/metersPerDegree, loc.Lon+r*math.Cos(th)/(metersPerDegree*cosLat(loc.Lat)), 2000)
			sLat += lat
			sLon += lon
		}
		if distM(sLat/1000, sLon/1000, loc.Lat, loc.Lon) >= 250 {
			kept++
		}
	}
	if kept > devices/5 {
		t.Fatalf("fresh noise kept %d of %d devices >= 250 m: the averaging measure is too weak", kept, devices)
	}
}
