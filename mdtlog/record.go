package mdtlog

import (
	"time"

	"github.com/mtcagent/mtcagent/wire"
)

// Record, Cell and Location are the measurement record of the contract
// (wire.MDTRecord): the log stores it in its CBOR form, and the collector
// reads the same form from an upload.
type (
	Record   = wire.MDTRecord
	Cell     = wire.MDTCell
	Location = wire.MDTLocation
)

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
