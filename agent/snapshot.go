package agent

import (
	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/privacy"
)

// SnapshotFromStatus turns one modem reading into the policy's input. The
// location is the GNSS fix when [agent] gnss is on and the receiver has
// one; the policy masks it per recipient. The connection state
// comes from the dialect's serving-cell report (idle/connected) where
// there is one; registered without it is "online".
func SnapshotFromStatus(st *atmodem.Status) privacy.Snapshot {
	s := privacy.Snapshot{
		Time:  st.Time,
		IMSI:  st.SIM.IMSI,
		ICCID: st.SIM.ICCID,
		IMEI:  st.Modem.IMEI,
	}
	if p := st.Location; p != nil {
		s.Location = &privacy.Location{Lat: p.Lat, Lon: p.Lon, AccuracyM: p.AccuracyM}
	}
	_, reg := st.Serving()
	switch {
	case reg == nil:
		s.Status = privacy.StatusOffline
	case st.Cell != nil && st.Cell.State == "connected":
		s.Status = privacy.StatusConnected
	case st.Cell != nil && st.Cell.State == "idle":
		s.Status = privacy.StatusIdle
	default:
		s.Status = privacy.StatusOnline
	}
	mcc, mnc := deref(st.Operator.MCC), deref(st.Operator.MNC)
	if st.Cell != nil && (mcc == "" || mnc == "") {
		mcc, mnc = deref(st.Cell.MCC), deref(st.Cell.MNC)
	}
	if reg != nil && mcc != "" && mnc != "" {
		c := &privacy.Cell{MCC: mcc, MNC: mnc, TAC: reg.TAC, LAC: reg.LAC, CellID: reg.CellID}
		if sc := st.Cell; sc != nil {
			if c.TAC == nil && c.LAC == nil {
				c.TAC, c.LAC = sc.TAC, sc.LAC
			}
			if c.CellID == nil {
				c.CellID = sc.CellID
			}
		}
		s.Cell = c
	}
	r := &privacy.Radio{RSRPdBm: intToFloat(st.Signal.RSRPdBm), RSRQdB: st.Signal.RSRQdB, RSSIdBm: intToFloat(st.Signal.RSSIdBm)}
	if sc := st.Cell; sc != nil {
		r.SINRdB = sc.SINRdB
		if r.RSRPdBm == nil {
			r.RSRPdBm = sc.RSRPdBm
		}
		if r.RSRQdB == nil {
			r.RSRQdB = sc.RSRQdB
		}
		if r.RSSIdBm == nil {
			r.RSSIdBm = sc.RSSIdBm
		}
	}
	if r.RSRPdBm != nil || r.RSRQdB != nil || r.SINRdB != nil || r.RSSIdBm != nil {
		s.Radio = r
	}
	return s
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func intToFloat(p *int) *float64 {
	if p == nil {
		return nil
	}
	f := float64(*p)
	return &f
}
