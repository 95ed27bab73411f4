package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mtcagent/mtcagent/agent/control"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/internal/clock"
	"github.com/mtcagent/mtcagent/mdtlog"
	"github.com/mtcagent/mtcagent/privacy"
)

// MDT is the measurement log as the daemon drives it: it logs while the
// user's consent stands, for the configured duration after consent or
// start, every interval.
type MDT struct {
	Store  *mdtlog.Store
	Config mdtlog.Config
	// Locate masks a GNSS fix to the precision the MDT recipient is
	// granted before it is logged; nil result or nil Locate: no location
	// in the log.
	Locate func(loc privacy.Location, t time.Time) *mdtlog.Location
}

// mdtLoop appends one record per interval while logging is allowed.
func (a *Agent) mdtLoop(ctx context.Context) {
	m := a.deps.MDT
	tick := a.deps.Clock.NewTicker(m.Config.Interval)
	defer tick.Stop()
	started := a.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
		}
		a.queueMu.Lock()
		if len(a.hold.mdt) > 0 {
			a.flushMDTLocked() // records held while the log could not be written
		}
		a.queueMu.Unlock()
		if !m.Store.Logging() {
			continue // off until consent; opt-out is permanent
		}
		c := m.Store.ConsentState()
		from := started
		if c.Time.After(from) {
			from = c.Time
		}
		if m.Config.Duration > 0 && a.now().Sub(from) > m.Config.Duration {
			continue // the logging duration has run out
		}
		st := a.mon.Status()
		if st == nil {
			continue
		}
		rec, ok := MDTRecord(st, a.deps.Clock)
		if !ok {
			continue
		}
		if p := st.Location; p != nil && m.Locate != nil {
			rec.Location = m.Locate(privacy.Location{Lat: p.Lat, Lon: p.Lon, AccuracyM: p.AccuracyM}, rec.Time)
		}
		a.appendMDT(rec)
	}
}

// MDTRecord turns a modem reading into a measurement record; false when
// there is no serving cell to log.
func MDTRecord(st *atmodem.Status, wall clock.Wall) (mdtlog.Record, bool) {
	now, synced := wall.Now()
	d, reg := st.Serving()
	if reg == nil {
		return mdtlog.Record{}, false
	}
	c := mdtlog.Cell{TAC: reg.TAC, LAC: reg.LAC, CellID: reg.CellID}
	switch d {
	case atmodem.DomainEPS:
		c.RAT = "lte"
	case atmodem.Domain5GS:
		c.RAT = "nr"
	default:
		c.RAT = "gsm"
		if reg.AcT != nil && *reg.AcT >= 2 && *reg.AcT <= 6 {
			c.RAT = "umts"
		}
	}
	if st.Operator.MCC != nil && st.Operator.MNC != nil {
		c.MCC, c.MNC = *st.Operator.MCC, *st.Operator.MNC
	}
	f := func(p *int) *float64 {
		if p == nil {
			return nil
		}
		v := float64(*p)
		return &v
	}
	c.RSRP, c.RSRQ, c.RSSI = f(st.Signal.RSRPdBm), st.Signal.RSRQdB, f(st.Signal.RSSIdBm)
	if sc := st.Cell; sc != nil {
		c.SINR = sc.SINRdB
		if sc.EARFCN != nil && *sc.EARFCN >= 0 {
			e := uint32(*sc.EARFCN)
			c.EARFCN = &e
		}
		if sc.PCI != nil && *sc.PCI >= 0 && *sc.PCI < 1<<16 {
			p := uint16(*sc.PCI)
			c.PCI = &p
		}
		if c.RSRP == nil {
			c.RSRP = sc.RSRPdBm
		}
	}
	return mdtlog.Record{Time: now.UTC(), ClockSynced: synced, Serving: c}, true
}

// handleMDT serves the mdt commands of the owner (the control socket is
// local and owner-only: these are local requests).
func (a *Agent) handleMDT(req control.Request) (any, error) {
	m := a.deps.MDT
	if m == nil {
		return nil, errors.New("the measurement log is not enabled in this agent")
	}
	synced := false
	if _, s := a.deps.Clock.Now(); s {
		synced = true
	}
	switch req.Cmd {
	case control.CmdMDTConsent:
		var r mdtlog.ConsentRequest
		if len(req.Args) > 0 {
			if err := json.Unmarshal(req.Args, &r); err != nil {
				return nil, err
			}
		}
		r.ClockSynced = synced
		return m.Store.Consent(r)
	case control.CmdMDTOptOut:
		return m.Store.OptOut(synced)
	case control.CmdMDTClear:
		return m.Store.Clear()
	case control.CmdMDTStatus:
		st, err := m.Store.Status()
		if err != nil {
			return nil, err
		}
		out := control.MDTStatus{Status: st, Scan: control.ToScan(st.ScanReport)}
		out.Status.ScanReport.Errors = nil
		return out, nil
	case control.CmdMDTExport:
		var format string
		if err := json.Unmarshal(req.Args, &format); err != nil {
			return nil, fmt.Errorf("mdt.export: want a format")
		}
		var buf bytes.Buffer
		rep, err := m.Store.Export(&buf, format)
		if err != nil {
			return nil, err
		}
		return control.MDTExport{Data: buf.Bytes(), Scan: control.ToScan(rep)}, nil
	case control.CmdMDTRecords:
		var es []mdtlog.Entry
		rep, err := m.Store.Records(func(e mdtlog.Entry) error { es = append(es, e); return nil })
		if err != nil {
			return nil, err
		}
		return control.MDTRecords{Entries: es, Scan: control.ToScan(rep)}, nil
	}
	return nil, fmt.Errorf("unknown control command %q", req.Cmd)
}

var errPageFull = errors.New("page full")

// Page returns the CBOR encodings of the records after `after` (nil: from
// the oldest) in log order, at most maxBytes of them but at least one, the
// position of the last one returned, and whether more follow. Records that
// fail authentication are skipped here as everywhere (mdtlog reports them).
// mask, when not nil, reduces each record to what its recipient may see.
func (m *MDT) Page(after *mdtlog.Position, maxBytes int, mask func(*mdtlog.Record)) (recs [][]byte, last mdtlog.Position, more bool, err error) {
	size, from := 0, uint64(0)
	if after != nil {
		from = after.Segment
	}
	_, err = m.Store.RecordsFrom(from, func(e mdtlog.Entry) error {
		if after != nil && !positionAfter(e.Pos, *after) {
			return nil
		}
		if mask != nil {
			mask(&e.Record)
		}
		b, err := e.Record.MarshalCBOR()
		if err != nil {
			return err
		}
		if len(recs) > 0 && size+len(b) > maxBytes {
			more = true
			return errPageFull
		}
		recs, last, size = append(recs, b), e.Pos, size+len(b)
		return nil
	})
	if errors.Is(err, errPageFull) {
		err = nil
	}
	return recs, last, more, err
}

// UploadConfirmed is called when the MDT recipient confirmed it stored the
// records up to upTo: with delete_after_upload they are deleted (whole
// segments only; see mdtlog.Store.DeleteUploaded).
func (m *MDT) UploadConfirmed(upTo mdtlog.Position) (mdtlog.Destroyed, error) {
	if !m.Config.DeleteAfterUpload {
		return mdtlog.Destroyed{}, nil
	}
	return m.Store.DeleteUploaded(upTo)
}

func positionAfter(p, q mdtlog.Position) bool {
	return p.Segment > q.Segment || p.Segment == q.Segment && p.Index > q.Index
}

// MaskMDT reduces a measurement record to the grants of its recipient:
// cells to their tracking area or to nothing but the radio technology and
// the measurements, and no location unless location is granted (a logged
// location is already masked to the MDT recipient's precision).
func MaskMDT(r *mdtlog.Record, g privacy.Grants) {
	maskCell := func(c *mdtlog.Cell) {
		if g.Cell < privacy.CellFull {
			c.CellID, c.PCI, c.EARFCN = nil, nil, nil
		}
		if g.Cell < privacy.CellTrackingArea {
			c.MCC, c.MNC, c.TAC, c.LAC = "", "", nil, nil
		}
	}
	maskCell(&r.Serving)
	for i := range r.Neighbours {
		maskCell(&r.Neighbours[i])
	}
	if g.Location == privacy.LevelNone {
		r.Location = nil
	}
}
