package wire_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/wire"
)

func TestDecodeMDTPage(t *testing.T) {
	rec, err := wire.MDTRecord{Time: time.UnixMilli(1_800_000_000_000).UTC(), Serving: wire.MDTCell{}}.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	last := wire.MDTPos{Segment: 4, Index: 7}
	// page builds the bytes by hand: the encoder would refuse a record
	// that is not valid CBOR, and a device's bytes need not be.
	page := func(recs ...[]byte) []byte {
		b := []byte{0xa2, 0x01, 0x80 | byte(len(recs))}
		for _, r := range recs {
			b = append(b, r...)
		}
		return append(b, 0x02, 0x82, byte(last.Segment), byte(last.Index))
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string // "" when the page is accepted
	}{
		{"two records", page(rec, rec), ""},
		{"empty", []byte{0xa1, 0x01, 0x80}, ""},
		{"records without a position", []byte{0xa1, 0x01, 0x81, 0xa1, 0x01, 0x00}, "without the position"},
		// Found by FuzzDecodeMDTPage in CI: tag 0 (a date-time string)
		// around a negative integer is well-formed CBOR, so it passed
		// as a raw record and failed whoever read it afterwards.
		{"tag 0 around an integer", page(rec, []byte{0xa1, 0x01, 0xc0, 0x20}), "record 2 of 2"},
		{"the same under a key records do not have", page([]byte{0xa2, 0x01, 0x00, 0x09, 0xc0, 0x20}, rec), "record 1 of 2"},
		{"a record with a key records do not have", page([]byte{0xa2, 0x01, 0x00, 0x09, 0x00}), ""},
		{"an integer, not a record", page([]byte{0x00}), "record 1 of 1"},
		// {1: 0, "s3cr": 0, "s3cr": 0}: the error says where, not the key.
		{"a key twice", page(rec, []byte{0xa3, 0x01, 0x00, 0x64, 's', '3', 'c', 'r', 0x00, 0x64, 's', '3', 'c', 'r', 0x00}), "record 2 of 2: decode mdt record: cbor: duplicate map key at map element index 2"},
		{"not CBOR", []byte{0xff}, "mdt page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := wire.DecodeMDTPage(tc.in)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if len(p.Records) > 0 && *p.Last != last {
					t.Fatalf("last = %v, want %v", *p.Last, last)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr") {
				t.Fatalf("the error quotes the record: %v", err)
			}
			if len(p.Records) != 0 || p.Last != nil {
				t.Fatalf("a rejected page returned %d records and position %v", len(p.Records), p.Last)
			}
		})
	}
}
