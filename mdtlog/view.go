package mdtlog

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// The views below are what `mtcagent mdt` prints: the JSON of --json (a
// contract for scripts: keys in this order, absent times as null) and the
// text for people.

// jsonTime is t in RFC 3339 UTC, or nil (JSON null) for the zero time.
func jsonTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

// textTime is t as the text views print it.
func textTime(t time.Time) string { return t.UTC().Format(time.DateTime + " MST") }

// StatusJSON is the JSON of `mdt status --json`; the keys are in
// alphabetical order, as scripts have always seen them.
type StatusJSON struct {
	Bytes           int64   `json:"bytes"`
	BytesUsed       int64   `json:"bytes_used"`
	Consent         string  `json:"consent"`
	ConsentDamaged  bool    `json:"consent_damaged"`
	ConsentTime     *string `json:"consent_time"`
	Dir             string  `json:"dir"`
	DurationMinutes float64 `json:"duration_minutes"`
	Failed          int     `json:"failed"`
	IntervalSeconds float64 `json:"interval_seconds"`
	Logging         bool    `json:"logging"`
	MaxBytes        int64   `json:"max_bytes"`
	Newest          *string `json:"newest"`
	Oldest          *string `json:"oldest"`
	Records         int     `json:"records"`
	RetentionHours  float64 `json:"retention_hours"`
	Segments        int     `json:"segments"`
	WhatIsLogged    string  `json:"what_is_logged"`
}

// JSON is st with the settings cfg and the log directory of stateDir, as
// `mdt status --json` prints it.
func (st Status) JSON(cfg Config, stateDir string) StatusJSON {
	return StatusJSON{
		Bytes: st.Bytes, BytesUsed: st.Used,
		Consent: st.Consent.String(), ConsentDamaged: st.ConsentDamaged, ConsentTime: jsonTime(st.ConsentTime),
		Dir: Dir(stateDir), DurationMinutes: cfg.Duration.Minutes(), Failed: st.Failed,
		IntervalSeconds: cfg.Interval.Seconds(), Logging: st.Logging, MaxBytes: cfg.MaxBytes,
		Newest: jsonTime(st.Newest), Oldest: jsonTime(st.Oldest), Records: st.Records,
		RetentionHours: cfg.Retention.Hours(), Segments: st.Segments, WhatIsLogged: WhatIsLogged,
	}
}

// WriteText writes st for people, as `mdt status` prints it.
func (st Status) WriteText(w io.Writer, cfg Config, stateDir string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	consent := st.Consent.String()
	if !st.ConsentTime.IsZero() {
		consent += " since " + textTime(st.ConsentTime)
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
		fmt.Fprintf(tw, "oldest:\t%s\n", textTime(st.Oldest))
		fmt.Fprintf(tw, "newest:\t%s\n", textTime(st.Newest))
	}
	if st.Failed > 0 {
		fmt.Fprintf(tw, "unreadable:\t%d records failed authentication and are skipped\n", st.Failed)
	}
	fmt.Fprintf(tw, "settings:\t%s\n", cfg.Summary())
	fmt.Fprintf(tw, "stored in:\t%s (encrypted)\n", Dir(stateDir))
	fmt.Fprintf(tw, "logged:\t%s\n", WhatIsLogged)
	return tw.Flush()
}

// ConsentJSON is the JSON of `mdt consent --json`.
type ConsentJSON struct {
	Consent string  `json:"consent"`
	Time    *string `json:"time"`
}

// JSON is c as `mdt consent --json` prints it.
func (c Consent) JSON() ConsentJSON { return ConsentJSON{c.State.String(), jsonTime(c.Time)} }

// WriteText writes the confirmation of a consent just given.
func (c Consent) WriteText(w io.Writer) {
	fmt.Fprintf(w, "Consent recorded at %s. MDT logging is on.\n", textTime(c.Time))
	fmt.Fprintln(w, "Change your mind at any time: 'mtcagent mdt clear' or 'mtcagent mdt optout'.")
}

// DestroyedJSON is the JSON of `mdt clear --json` and `mdt optout --json`
// (consent only for optout).
type DestroyedJSON struct {
	Bytes             int64  `json:"bytes"`
	Consent           string `json:"consent,omitempty"`
	KeyDestroyed      bool   `json:"key_destroyed"`
	Records           int    `json:"records"`
	Segments          int    `json:"segments"`
	UncountedSegments int    `json:"uncounted_segments"`
}

// JSON is d as `mdt clear --json` (optOut false) or `mdt optout --json`
// prints it.
func (d Destroyed) JSON(optOut bool) DestroyedJSON {
	j := DestroyedJSON{Bytes: d.Bytes, KeyDestroyed: d.KeyDestroyed, Records: d.Records, Segments: d.Segments, UncountedSegments: d.Uncounted}
	if optOut {
		j.Consent = OptedOut.String()
	}
	return j
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

// Table prints entries as the table of `mdt show`: NewTable writes the
// header, Add one line per entry, Flush aligns and writes them.
type Table struct{ tw *tabwriter.Writer }

// NewTable starts a table on w.
func NewTable(w io.Writer) *Table {
	t := &Table{tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	fmt.Fprintln(t.tw, "TIME (UTC)\tSYNC\tSERVING CELL\tRSRP\tRSRQ\tSINR\tRSSI\tNEIGHBOURS\tLOCATION")
	return t
}

// Add adds e's line.
func (t *Table) Add(e Entry) error {
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
	_, err := fmt.Fprintf(t.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Time.UTC().Format(time.DateTime), sync,
		CellText(s), optNum(s.RSRP), optNum(s.RSRQ), optNum(s.SINR), optNum(s.RSSI), len(r.Neighbours), loc)
	return err
}

// Flush writes the table.
func (t *Table) Flush() error { return t.tw.Flush() }

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
