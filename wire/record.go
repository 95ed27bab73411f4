package wire

import (
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// MDTRecord is one logged measurement, in the spirit of a TS 37.320 logged MDT
// entry: when, whether the clock was synchronised, the serving cell with its
// measurements, neighbour cells where the modem reports them, and a location
// only as precise as the policy grants the MDT recipient (the caller masks
// it before Append; this package stores what it is given).
type MDTRecord struct {
	Time        time.Time // measurement time (UTC, millisecond precision)
	ClockSynced bool      // false when the clock may be wrong (e.g. 1970 at boot)
	Serving     MDTCell
	Neighbours  []MDTCell    // optional
	Location    *MDTLocation // optional, already masked by the caller
}

// MDTCell is a cell and what was measured of it. Pointer fields are nil when
// not known; signal values are in dBm or dB.
type MDTCell struct {
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

// MDTLocation is a position already masked to the precision granted to the MDT
// recipient.
type MDTLocation struct {
	Lat       float64 `cbor:"1,keyasint" json:"lat"`
	Lon       float64 `cbor:"2,keyasint" json:"lon"`
	AccuracyM float64 `cbor:"3,keyasint,omitempty" json:"accuracy_m,omitempty"` // radius of the masking
}

// wireRecord is the CBOR form of an MDTRecord (integer keys keep it small).
type wireRecord struct {
	TimeMs      int64        `cbor:"1,keyasint"`
	ClockSynced bool         `cbor:"2,keyasint,omitempty"`
	Serving     MDTCell      `cbor:"3,keyasint"`
	Neighbours  []MDTCell    `cbor:"4,keyasint,omitempty"`
	Location    *MDTLocation `cbor:"5,keyasint,omitempty"`
}

var (
	recordEnc cbor.EncMode
	recordDec cbor.DecMode
)

func init() {
	var err error
	recordEnc, err = cbor.EncOptions{ShortestFloat: cbor.ShortestFloat16, Sort: cbor.SortCoreDeterministic}.EncMode()
	if err != nil {
		panic(err)
	}
	recordDec, err = cbor.DecOptions{
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
func (r MDTRecord) MarshalCBOR() ([]byte, error) {
	return recordEnc.Marshal(wireRecord{
		TimeMs:      r.Time.UnixMilli(),
		ClockSynced: r.ClockSynced,
		Serving:     r.Serving,
		Neighbours:  r.Neighbours,
		Location:    r.Location,
	})
}

// UnmarshalCBOR decodes the log's CBOR form.
func (r *MDTRecord) UnmarshalCBOR(b []byte) error {
	var w wireRecord
	if err := recordDec.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode mdt record: %w", err)
	}
	*r = MDTRecord{
		Time:        time.UnixMilli(w.TimeMs).UTC(),
		ClockSynced: w.ClockSynced,
		Serving:     w.Serving,
		Neighbours:  w.Neighbours,
		Location:    w.Location,
	}
	return nil
}
