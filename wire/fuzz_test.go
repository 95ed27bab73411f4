package wire_test

import (
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mtcagent/mtcagent/wire"
)

// FuzzDecodeTrigger: any input either fails with ErrTrigger or decodes to a
// trigger that re-encodes and decodes to the same value.
func FuzzDecodeTrigger(f *testing.F) {
	b, _ := wire.EncodeTrigger(wire.Trigger{Counter: 3, Time: time.Unix(1_800_000_000, 0), Action: "report", From: "alpha"})
	f.Add(b)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa2, 0x01, 0x07, 0x03, 0x61, 0x78})
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := wire.DecodeTrigger(in)
		if err != nil {
			return
		}
		out, err := wire.EncodeTrigger(tr)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		tr2, err := wire.DecodeTrigger(out)
		if err != nil || tr2 != tr {
			t.Fatalf("round trip: %+v vs %+v (%v)", tr, tr2, err)
		}
	})
}

// FuzzDecodeMDTPage: a page from a device is checked, never trusted; a
// page it accepts has the position of its last record, records that
// decode, and re-encodes.
func FuzzDecodeMDTPage(f *testing.F) {
	b, _ := cbor.Marshal(wire.MDTPage{Records: []cbor.RawMessage{{0xa1, 0x01, 0x00}}, Last: &wire.MDTPos{Segment: 1, Index: 2}, More: true})
	f.Add(b)
	f.Add([]byte{0xa1, 0x01, 0x80})
	f.Add([]byte{0xa1, 0x01, 0x81, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := wire.DecodeMDTPage(in)
		if err != nil {
			return
		}
		if len(p.Records) > 0 && p.Last == nil {
			t.Fatal("accepted records without a position")
		}
		for i, raw := range p.Records {
			var r wire.MDTRecord
			if err := r.UnmarshalCBOR(raw); err != nil {
				t.Fatalf("accepted record %d, which does not decode: %v", i, err)
			}
		}
		if _, err := cbor.Marshal(p); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if p.Last != nil {
			if q, err := wire.ParseMDTPos(p.Last.String()); err != nil || q != *p.Last {
				t.Fatalf("position %v does not round-trip: %v %v", *p.Last, q, err)
			}
		}
	})
}
