package agent

import (
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/wire"
)

var _ = [1]struct{}{}[wire.FormatCompact-uint8(attest.FormatCompact)] // the wire's numbers are attest's
var _ = [1]struct{}{}[wire.FormatLabels-uint8(attest.FormatLabels)]

func TestDecodeDetailsRefuses(t *testing.T) {
	for _, v := range []any{
		map[any]any{uint64(99): 1},
		map[any]any{uint64(1): []any{uint64(9)}},
		map[any]any{uint64(1): "eps"},
		map[any]any{-1: 1},
		[]any{1},
	} {
		raw, _ := cbor.Marshal(v)
		if d, err := DecodeDetails(raw); err == nil {
			t.Errorf("%v: accepted as %v", v, d)
		}
	}
}

// FuzzDecodeDetails: details from a signed but hostile token never panic
// the reader, and what it accepts has names for keys.
func FuzzDecodeDetails(f *testing.F) {
	for _, d := range []map[string]any{
		{"domain": "cs", "domains": []string{"cs", "ps", "eps"}, "plmn_changed": false, "area_changed": true},
		{"lost": map[string]int{"cell_changed": 3}, "cause": []string{"evicted"}, "lost_total": 3},
	} {
		for _, fm := range []attest.Format{attest.FormatLabels, attest.FormatCompact} {
			b, _ := cbor.Marshal(detailsValue(fm, d))
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := DecodeDetails(raw)
		if err != nil {
			return
		}
		if doms, ok := d["domains"]; ok {
			if _, ok := doms.([]string); !ok {
				t.Fatalf("domains %T", doms)
			}
		}
	})
}
