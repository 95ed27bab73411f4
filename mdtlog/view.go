package mdtlog

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// The views below are what `mtcagent mdt` prints: the JSON of --json (a
// contract for scripts; maps, so that encoding/json writes the keys in
// sorted order, and absent times are null) and the text for people.

// jsonTime is t in RFC 3339 UTC, or nil (JSON null) for the zero time.
func jsonTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

// JSON is st with the settings cfg and the log directory of stateDir, as
// `mdt status --json` prints it.
func (st Status) JSON(cfg Config, stateDir string) map[string]any {
	return map[string]any{
		"consent":          st.Consent.String(),
		"consent_time":     jsonTime(st.ConsentTime),
		"consent_damaged":  st.ConsentDamaged,
		"logging":          st.Logging,
		"records":          st.Records,
		"failed":           st.Failed,
		"segments":         st.Segments,
		"bytes":            st.Bytes,
		"bytes_used":       st.Used,
		"oldest":           jsonTime(st.Oldest),
		"newest":           jsonTime(st.Newest),
		"dir":              Dir(stateDir),
		"what_is_logged":   WhatIsLogged,
		"interval_seconds": cfg.Interval.Seconds(),
		"duration_minutes": cfg.Duration.Minutes(),
		"max_bytes":        cfg.MaxBytes,
		"retention_hours":  cfg.Retention.Hours(),
	}
}

// WriteText writes st for people, as `mdt status` prints it.
func (st Status) WriteText(w io.Writer, cfg Config, stateDir string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	consent := st.Consent.String()
	if !st.ConsentTime.IsZero() {
		consent += " since " + st.ConsentTime.UTC().Format(time.DateTime+" MST")
	}
	if st.ConsentDamaged {
		consent += " (consent file unreadable: treated as opted out; run 'mtcagent mdt consent' or 'optout')"
	}
	logging := "off"
	if st.Logging {
		logging = "on"
	}
	fmt.Fprintf(tw, "consent:\t%s\n", consent)
	fmt.Fprintf(tw, "logging:\t%s\n", logging)
	fmt.Fprintf(tw, "records:\t%d in %d segment files, %d bytes used of %d on disk\n", st.Records, st.Segments, st.Used, st.Bytes)
	if st.Records > 0 {
		fmt.Fprintf(tw, "oldest:\t%s\n", st.Oldest.UTC().Format(time.DateTime+" MST"))
		fmt.Fprintf(tw, "newest:\t%s\n", st.Newest.UTC().Format(time.DateTime+" MST"))
	}
	if st.Failed > 0 {
		fmt.Fprintf(tw, "unreadable:\t%d records failed authentication and are skipped\n", st.Failed)
	}
	fmt.Fprintf(tw, "settings:\t%s\n", cfg.Summary())
	fmt.Fprintf(tw, "stored in:\t%s (encrypted)\n", Dir(stateDir))
	fmt.Fprintf(tw, "logged:\t%s\n", WhatIsLogged)
	return tw.Flush()
}

// JSON is c as `mdt consent --json` prints it.
func (c Consent) JSON() map[string]any {
	return map[string]any{"consent": c.State.String(), "time": jsonTime(c.Time)}
}

// JSON is d as `mdt clear --json` (optOut false) or `mdt optout --json`
// prints it.
func (d Destroyed) JSON(optOut bool) map[string]any {
	v := map[string]any{
		"key_destroyed": d.KeyDestroyed, "segments": d.Segments, "records": d.Records,
		"bytes": d.Bytes, "uncounted_segments": d.Uncounted,
	}
	if optOut {
		v["consent"] = OptedOut.String()
	}
	return v
}

// WriteText writes what a clear (optOut false) or an opt-out destroyed.
func (d Destroyed) WriteText(w io.Writer, optOut bool) {
	if optOut {
		fmt.Fprintln(w, "Opted out. MDT logging is off for good; only 'mtcagent mdt consent' on this device turns it back on.")
	} else {
		fmt.Fprintln(w, "Measurement log cleared.")
	}
	key := "no key existed"
	if d.KeyDestroyed {
		key = "encryption key destroyed"
	}
	recs := fmt.Sprintf("%d records", d.Records)
	if d.Uncounted > 0 {
		recs += fmt.Sprintf(" (+ %d segments not counted)", d.Uncounted)
	}
	fmt.Fprintf(w, "Destroyed: %s, %d segment files, %s, %d bytes.\n", key, d.Segments, recs, d.Bytes)
}

// WriteTable writes the entries that records yields (Store.Records) as
// the table of `mdt show`, aligned, and returns records' report.
func WriteTable(w io.Writer, records func(func(Entry) error) (ScanReport, error)) (ScanReport, error) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME (UTC)\tSYNC\tSERVING CELL\tRSRP\tRSRQ\tSINR\tRSSI\tNEIGHBOURS\tLOCATION")
	rep, err := records(func(e Entry) error {
		r := e.Record
		sync := "yes"
		if !r.ClockSynced {
			sync = "no"
		}
		loc := "-"
		if r.Location != nil {
			loc = fmt.Sprintf("%.5f,%.5f ±%gm", r.Location.Lat, r.Location.Lon, r.Location.AccuracyM)
		}
		s := r.Serving
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Time.UTC().Format(time.DateTime), sync,
			CellText(s), optNum(s.RSRP), optNum(s.RSRQ), optNum(s.SINR), optNum(s.RSSI), len(r.Neighbours), loc)
		return err
	})
	if err != nil {
		return rep, err
	}
	return rep, tw.Flush()
}

func optNum(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%g", *p)
}

// CellText is c in one line for people: "lte 001-01 tac 4660 cell 27447553".
func CellText(c Cell) string {
	var b strings.Builder
	b.WriteString(c.RAT)
	if c.MCC != "" {
		fmt.Fprintf(&b, " %s-%s", c.MCC, c.MNC)
	}
	if c.TAC != nil {
		fmt.Fprintf(&b, " tac %d", *c.TAC)
	}
	if c.LAC != nil {
		fmt.Fprintf(&b, " lac %d", *c.LAC)
	}
	if c.CellID != nil {
		fmt.Fprintf(&b, " cell %d", *c.CellID)
	}
	if c.PCI != nil {
		fmt.Fprintf(&b, " pci %d", *c.PCI)
	}
	return strings.TrimSpace(b.String())
}
