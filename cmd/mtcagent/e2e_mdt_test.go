//go:build !mtc_omit_coap

package main

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/mdtlog"
)

// TestMDTUploadToCollector: the user consents, the daemon logs, and the
// collector, granted radio measurements and the tracking area only, pulls
// the log over the DTLS session: every record arrives masked, the pull is
// in the agent's disclosure audit, and the agent never resends what was
// confirmed.
func TestMDTUploadToCollector(t *testing.T) {
	t.Parallel() // real time, mostly waiting on the scenario's timeline: beside the others
	e := newE2E(t)
	addr := e.addr
	e.stopCollector()
	e.cfg.MDTPull = time.Second // every heartbeat (1 s) at most
	e.startCollector(addr)
	conf, err := os.ReadFile(e.conf)
	if err != nil {
		t.Fatal(err)
	}
	conf = []byte(strings.Replace(string(conf), "[agent]\n", "[agent]\ngnss = on\n", 1))
	conf = append(conf, []byte(`
[mdt]
interval = 1.28s
[recipient "operator"]
identity = psk:meter-1
radio = full
cell = tracking_area
location = region:2km
`)...)
	if err := os.WriteFile(e.conf, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	sc := writeScenario(t, `{"dialect": "quectel", "gnss": {"lat": 52.52, "lon": 13.405}}`)
	d := startDaemon(t, e.state, sc, e.conf)
	if code, out, errs := run(t, "mdt", "consent", "--yes", "--state-dir", e.state); code != 0 {
		t.Fatalf("consent: %d %s %s", code, out, errs)
	}
	deadline := time.Now().Add(scaled(20 * time.Second))
	var recs []mdtlog.Record
	for len(recs) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("collector has %d MDT records; collector log:\n%s\nagent log:\n%s", len(recs), strings.Join(e.log.all(), "\n"), d.stderr)
		}
		time.Sleep(200 * time.Millisecond)
		recs = readMDTFile(t, e.colState, "meter-1")
	}
	d.stop(t)
	for i, r := range recs {
		if r.Serving.CellID != nil || r.Serving.TAC == nil && r.Serving.LAC == nil || r.Serving.MCC == "" {
			t.Fatalf("record %d not masked to the tracking area: %+v", i, r.Serving)
		}
		// The GNSS fix is logged only as the collector's 2 km region.
		if l := r.Location; l == nil || l.AccuracyM != 2000 || l.Lat == 52.52 && l.Lon == 13.405 ||
			math.Abs(l.Lat-52.52) > 0.05 || math.Abs(l.Lon-13.405) > 0.08 {
			t.Fatalf("record %d location %+v: want the fix masked to a 2 km grid", i, r.Location)
		}
		if i > 0 && !r.Time.After(recs[i-1].Time) {
			t.Fatalf("record %d (%v) not after record %d (%v): duplicate or out of order", i, r.Time, i-1, recs[i-1].Time)
		}
	}
	code, out, errs := run(t, "privacy", "audit", "--json", "--recipient", "operator", "--state-dir", e.state)
	if code != 0 || !strings.Contains(out, `"radio": "full"`) {
		t.Fatalf("privacy audit: %d %s %s", code, out, errs)
	}
}

// readMDTFile returns the records the collector stored, if any yet.
func readMDTFile(t *testing.T, state, device string) []mdtlog.Record {
	t.Helper()
	var out []mdtlog.Record
	_, err := collector.ReadMDT(state, device, func(r mdtlog.Record) error { out = append(out, r); return nil })
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("collector's MDT file: %v", err)
	}
	return out
}

// TestScheduledReportsToCollector: with [privacy] schedule, the daemon
// sends the collector its masked status at each slot start, audited, and
// events leave only at slot starts too.
func TestScheduledReportsToCollector(t *testing.T) {
	t.Parallel() // real time, mostly waiting on the scenario's timeline: beside the others
	e := newE2E(t)
	conf, err := os.ReadFile(e.conf)
	if err != nil {
		t.Fatal(err)
	}
	conf = append(conf, []byte(`
[privacy]
schedule = 2s
[recipient "operator"]
identity = psk:meter-1
status = reachable
`)...)
	if err := os.WriteFile(e.conf, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	sc := writeScenario(t, `{"dialect": "generic"}`)
	d := startDaemon(t, e.state, sc, e.conf)
	deadline := time.Now().Add(scaled(20 * time.Second))
	for strings.Count(strings.Join(e.log.all(), "\n"), "scheduled status report") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled reports; collector log:\n%s\nagent log:\n%s", strings.Join(e.log.all(), "\n"), d.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.stop(t)
	// Every report and event arrived in the first part of a 2 s slot
	// (the collector's timeline has millisecond times of day).
	for _, l := range e.log.all() {
		if !strings.Contains(l, "scheduled status report") && !strings.Contains(l, "event ") {
			continue
		}
		ts, err := time.Parse("15:04:05.000", strings.Fields(l)[0])
		if err != nil {
			t.Fatalf("timeline line %q: %v", l, err)
		}
		if off := ts.Sub(ts.Truncate(2 * time.Second)); off > scaled(500*time.Millisecond) {
			t.Errorf("%q arrived %v into its slot; want at the slot start", l, off)
		}
	}
	code, out, errs := run(t, "privacy", "audit", "--json", "--recipient", "operator", "--state-dir", e.state)
	if code != 0 || !strings.Contains(out, `"status": "reachable"`) {
		t.Fatalf("privacy audit: %d %s %s", code, out, errs)
	}
}
