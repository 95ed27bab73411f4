package wire

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// The measurement log upload is pulled by the server in pages, each small
// enough for one datagram, and confirmed afterwards:
//
//	GET  /mdt[?after=SEG.IDX]   -> MDTPage: the records after that position
//	POST /mdt/ack  MDTAck       -> MDTAckResult: the device may now delete
//	                               what the server stored (delete_after_upload)
//
// Positions are the log's own (segment, index); they only grow, so a
// server keeps the last one it stored as its cursor.
const PathMDTAck = "/mdt/ack"

// MDTPageBytes bounds the records of one page, so that a page and its
// framing fit one DTLS record without blockwise transfer.
const MDTPageBytes = 900

// MDTPos is a record's position in the device's measurement log.
type MDTPos struct {
	_       struct{} `cbor:",toarray"`
	Segment uint64
	Index   uint64
}

func (p MDTPos) String() string { return fmt.Sprintf("%d.%d", p.Segment, p.Index) }

// ParseMDTPos parses the "SEG.IDX" form of an after= query.
func ParseMDTPos(s string) (MDTPos, error) {
	a, b, ok := strings.Cut(s, ".")
	seg, err1 := strconv.ParseUint(a, 10, 64)
	idx, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return MDTPos{}, fmt.Errorf("mdt position %q: want SEGMENT.INDEX", s)
	}
	return MDTPos{Segment: seg, Index: idx}, nil
}

// MDTPage is the answer to GET /mdt: records in log order, each the CBOR
// encoding of one measurement record, the position of the last one, and
// whether more follow.
type MDTPage struct {
	Records []cbor.RawMessage `cbor:"1,keyasint"`
	Last    *MDTPos           `cbor:"2,keyasint,omitempty"`
	More    bool              `cbor:"3,keyasint,omitempty"`
}

// MDTAck confirms that the server stored every record up to Upto.
type MDTAck struct {
	Upto MDTPos `cbor:"1,keyasint"`
}

// MDTAckResult says what the device deleted after an ack.
type MDTAckResult struct {
	Segments int `cbor:"1,keyasint"`
	Records  int `cbor:"2,keyasint"`
}

// DecodeMDTPage decodes and checks a page: every record must be valid
// CBOR (CheckItem: the record type skips keys it does not know, and what
// they hold) and a measurement record, since the server stores records as
// they came.
func DecodeMDTPage(b []byte) (MDTPage, error) {
	var p MDTPage
	if err := cbor.Unmarshal(b, &p); err != nil {
		return MDTPage{}, fmt.Errorf("mdt page: %w", err)
	}
	if len(p.Records) > 0 && p.Last == nil {
		return MDTPage{}, fmt.Errorf("mdt page: %d records without the position of the last", len(p.Records))
	}
	for i, raw := range p.Records {
		if err := checkRecord(raw); err != nil {
			return MDTPage{}, fmt.Errorf("mdt page: record %d of %d: %w", i+1, len(p.Records), err)
		}
	}
	return p, nil
}

// checkRecord reports whether raw is one valid measurement record.
func checkRecord(raw []byte) error {
	if err := CheckItem(raw); err != nil {
		return fmt.Errorf("decode mdt record: %w", err)
	}
	var r MDTRecord
	return r.UnmarshalCBOR(raw)
}
