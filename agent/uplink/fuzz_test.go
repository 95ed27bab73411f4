package uplink_test

import (
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
)

// FuzzDecodeTrigger: any input either fails with ErrTrigger or decodes to a
// trigger that re-encodes and decodes to the same value.
func FuzzDecodeTrigger(f *testing.F) {
	b, _ := uplink.EncodeTrigger(uplink.Trigger{Counter: 3, Time: time.Unix(1_800_000_000, 0), Action: "report", From: "alpha"})
	f.Add(b)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa2, 0x01, 0x07, 0x03, 0x61, 0x78})
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := uplink.DecodeTrigger(in)
		if err != nil {
			return
		}
		out, err := uplink.EncodeTrigger(tr)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		tr2, err := uplink.DecodeTrigger(out)
		if err != nil || tr2 != tr {
			t.Fatalf("round trip: %+v vs %+v (%v)", tr, tr2, err)
		}
	})
}
