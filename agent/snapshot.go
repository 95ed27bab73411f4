package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/privacy"
	"github.com/mtcagent/mtcagent/privacy/ident"
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

// snapshotFile is the JSON form of a device state (mtcagent report preview
// --snapshot): what the agent would feed the policy. Identifiers are
// optional and used only to derive pseudonyms; they never appear in a
// report.
type snapshotFile struct {
	Time     *time.Time `json:"time"`
	Status   string     `json:"status"`
	Location *struct {
		Lat       float64 `json:"lat"`
		Lon       float64 `json:"lon"`
		AccuracyM float64 `json:"accuracy_m"`
	} `json:"location"`
	Cell *struct {
		MCC    string  `json:"mcc"`
		MNC    string  `json:"mnc"`
		TAC    *uint32 `json:"tac"`
		LAC    *uint32 `json:"lac"`
		CellID *uint64 `json:"cell_id"`
	} `json:"cell"`
	Radio *struct {
		RSRP *float64 `json:"rsrp_dbm"`
		RSRQ *float64 `json:"rsrq_db"`
		SINR *float64 `json:"sinr_db"`
		RSSI *float64 `json:"rssi_dbm"`
	} `json:"radio"`
	IMSI  string `json:"imsi"`
	ICCID string `json:"iccid"`
	IMEI  string `json:"imei"`
}

// ParseSnapshot reads a device state from its JSON form (docs/privacy.md:
// time, status, location, cell, radio, and optional imsi, iccid, imei).
// Unknown fields are refused; errors never repeat an identifier's value.
func ParseSnapshot(b []byte) (privacy.Snapshot, error) {
	var f snapshotFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return privacy.Snapshot{}, err
	}
	var s privacy.Snapshot
	if f.Time != nil {
		s.Time = *f.Time
	}
	if f.Status == "" {
		f.Status = "unknown"
	}
	st, ok := privacy.ParseStatus(f.Status)
	if !ok {
		return s, fmt.Errorf("status %q: want unknown, offline, online, idle or connected", f.Status)
	}
	s.Status = st
	if l := f.Location; l != nil {
		s.Location = &privacy.Location{Lat: l.Lat, Lon: l.Lon, AccuracyM: l.AccuracyM}
	}
	if c := f.Cell; c != nil {
		s.Cell = &privacy.Cell{MCC: c.MCC, MNC: c.MNC, TAC: c.TAC, LAC: c.LAC, CellID: c.CellID}
	}
	if r := f.Radio; r != nil {
		s.Radio = &privacy.Radio{RSRPdBm: r.RSRP, RSRQdB: r.RSRQ, SINRdB: r.SINR, RSSIdBm: r.RSSI}
	}
	var err error
	if f.IMSI != "" {
		if s.IMSI, err = ident.ParseIMSI(f.IMSI); err != nil {
			return s, err
		}
	}
	if f.ICCID != "" {
		if s.ICCID, err = ident.ParseICCID(f.ICCID); err != nil {
			return s, err
		}
	}
	if f.IMEI != "" {
		if s.IMEI, err = ident.ParseIMEI(f.IMEI); err != nil {
			return s, err
		}
	}
	return s, nil
}

// ErrIdentityUnread refuses a binding from a reading in which the modem did
// not answer every identity read: an unknown value never enters a signed
// claim (an empty IMSI would attest a device without SIM).
var ErrIdentityUnread = errors.New("the modem did not answer every identity read (SIM state, IMSI, ICCID, model, revision)")

// BindingFromStatus is what a binding token to recipient attests of the
// reading st: the SIM's identity, the IMEI (carried only with AllowIMEI),
// model and revision; ErrIdentityUnread unless every one was read.
func BindingFromStatus(st *atmodem.Status, recipient string, nonce []byte) (attest.Binding, error) {
	if st == nil || !st.SIM.Known() || st.Unknown(atmodem.ReadModel|atmodem.ReadRevision) {
		return attest.Binding{}, ErrIdentityUnread
	}
	return attest.Binding{Recipient: recipient, Nonce: nonce, IMEI: st.Modem.IMEI, IMSI: st.SIM.IMSI, ICCID: st.SIM.ICCID,
		Model: st.Modem.Model, Revision: st.Modem.Revision}, nil
}
