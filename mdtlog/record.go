package mdtlog

import (
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Record is one logged measurement, in the spirit of a TS 37.320 logged MDT
// entry: when, whether the clock was synchronised, the serving cell with its
// measurements, neighbour cells where the modem reports them, and a location
// only as precise as the policy grants the MDT recipient (the caller masks
// it before Append; this package stores what it is given).
type Record struct {
	Time        time.Time // measurement time (UTC, millisecond precision)
	ClockSynced bool      // false when the clock may be wrong (e.g. 1970 at boot)
	Serving     Cell
	Neighbours  []Cell    // optional
	Location    *Location // optional, already masked by the caller
}

// Cell is a cell and what was measured of it. Pointer fields are nil when
// not known; signal values are in dBm or dB.
type Cell struct {
	RAT    string  `cbor:"1,keyasint,omitempty" json:"rat,omitempty"` // "gsm", "umts", "lte", "nr"
	MCC    string  `cbor:"2,keyasint,omitempty" json:"mcc,omitempty"`
	MNC    string  `cbor:"3,keyasint,omitempty" json:"mnc,omitempty"`
	TAC    *uint32 `cbor:"4,keyasint,omitempty" json:"tac,omitempty"` // LTE/NR tracking area code
	LAC    *uint32 `cbor:"5,keyasint,omitempty" json:"lac,omitempty"` // GSM/UMTS location area code
	CellID *uint64 `cbor:"6,keyasint,omitempty" json:"cell_id,omitempty"`
	PCI    *uint16 `cbor:"7,keyasint,omitempty" json:"pci,omitempty"` // physical cell id (neighbours)
	EARFCN *uint32 `cbor:"8,keyasint,omitempty" json:"earfcn,omitempty"`

	RSRP *float64 `cbor:"10,keyasint,omitempty" json:"rsrp_dbm,omitempty"`
	RSRQ *float64 `cbor:"11,keyasint,omitempty" json:"rsrq_db,omitempty"`
	SINR *float64 `cbor:"12,keyasint,omitempty" json:"sinr_db,omitempty"`
	RSSI *float64 `cbor:"13,keyasint,omitempty" json:"rssi_dbm,omitempty"`
}

// Location is a position already masked to the precision granted to the MDT
// recipient.
type Location struct {
	Lat       float64 `cbor:"1,keyasint" json:"lat"`
	Lon       float64 `cbor:"2,keyasint" json:"lon"`
	AccuracyM float64 `cbor:"3,keyasint,omitempty" json:"accuracy_m,omitempty"` // radius of the masking
}

// wireRecord is the CBOR form of a Record (integer keys keep it small).
type wireRecord struct {
	TimeMs      int64     `cbor:"1,keyasint"`
	ClockSynced bool      `cbor:"2,keyasint,omitempty"`
	Serving     Cell      `cbor:"3,keyasint"`
	Neighbours  []Cell    `cbor:"4,keyasint,omitempty"`
	Location    *Location `cbor:"5,keyasint,omitempty"`
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.EncOptions{ShortestFloat: cbor.ShortestFloat16, Sort: cbor.SortCoreDeterministic}.EncMode()
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxArrayElements: 4096,
		MaxMapPairs:      64,
		MaxNestedLevels:  8,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// MarshalCBOR encodes r in the log's CBOR form.
func (r Record) MarshalCBOR() ([]byte, error) {
	return encMode.Marshal(wireRecord{
		TimeMs:      r.Time.UnixMilli(),
		ClockSynced: r.ClockSynced,
		Serving:     r.Serving,
		Neighbours:  r.Neighbours,
		Location:    r.Location,
	})
}

// UnmarshalCBOR decodes the log's CBOR form.
func (r *Record) UnmarshalCBOR(b []byte) error {
	var w wireRecord
	if err := decMode.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode mdt record: %w", err)
	}
	*r = Record{
		Time:        time.UnixMilli(w.TimeMs).UTC(),
		ClockSynced: w.ClockSynced,
		Serving:     w.Serving,
		Neighbours:  w.Neighbours,
		Location:    w.Location,
	}
	return nil
}

// jsonRecord is the JSON form used by show and export.
type jsonRecord struct {
	Segment     uint64    `json:"segment"`
	Index       uint64    `json:"index"`
	Time        string    `json:"time"`
	ClockSynced bool      `json:"clock_synced"`
	Serving     Cell      `json:"serving"`
	Neighbours  []Cell    `json:"neighbours,omitempty"`
	Location    *Location `json:"location,omitempty"`
}

// Entry is a record read back from the log with its position.
type Entry struct {
	Pos    Position
	Record Record
}

// Position is where a record sits in the log.
type Position struct {
	Segment uint64 // segment sequence number
	Index   uint64 // index within the segment
}

// JSON returns the value show and export print for e (snake_case keys).
func (e Entry) JSON() any {
	return jsonRecord{
		Segment:     e.Pos.Segment,
		Index:       e.Pos.Index,
		Time:        e.Record.Time.UTC().Format(time.RFC3339Nano),
		ClockSynced: e.Record.ClockSynced,
		Serving:     e.Record.Serving,
		Neighbours:  e.Record.Neighbours,
		Location:    e.Record.Location,
	}
}
