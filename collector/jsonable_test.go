package collector

import (
	"encoding/json"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// TestEncodeOutJSONFromAnyItem: whatever valid CBOR a device reported,
// an SCS asking for JSON gets a JSON answer with the rest of it, and the
// status either converted or left out with status_error; never an empty
// body (json.Marshal refused NaN, infinities, a time past year 9999, and
// a tag around any of them), and never one of two keys silently dropped
// (1 and "1" are both "1" in JSON).
func TestEncodeOutJSONFromAnyItem(t *testing.T) {
	for _, tc := range []struct {
		name string
		item []byte
		want string // the status as JSON; "" when it must be left out
	}{
		{"map", []byte{0xa1, 0x61, 0x74, 0x01}, `{"t":1}`},
		{"NaN", []byte{0xa1, 0x61, 0x78, 0xf9, 0x7e, 0x00}, `{"x":null}`},
		{"infinity", []byte{0xa1, 0x61, 0x78, 0xf9, 0x7c, 0x00}, `{"x":null}`},
		{"minus infinity", []byte{0xa1, 0x61, 0x78, 0xf9, 0xfc, 0x00}, `{"x":null}`},
		{"NaN in an array", []byte{0x82, 0x01, 0xf9, 0x7e, 0x00}, `[1,null]`},
		{"NaN in an unknown tag", []byte{0xd9, 0x27, 0x0f, 0xf9, 0x7e, 0x00}, `{"Number":9999,"Content":null}`},
		{"a time past 9999", []byte{0xc1, 0x1b, 0x00, 0x03, 0x8d, 0x7e, 0xa4, 0xc6, 0x80, 0x00}, `1000000000000000`},
		{"a time", []byte{0xc1, 0x1a, 0x6b, 0x14, 0x6a, 0x20}, `1796500000`},
		{"keys alike as text", []byte{0xa2, 0x01, 0x61, 0x61, 0x61, 0x31, 0x61, 0x62}, ""},
		{"bytes", []byte{0x42, 0x01, 0xff}, `"01ff"`},
	} {
		b := encodeOut(map[string]any{"device": "dev1", "status": cbor.RawMessage(tc.item)}, true)
		var got map[string]json.RawMessage
		if err := json.Unmarshal(b, &got); err != nil || string(got["device"]) != `"dev1"` {
			t.Errorf("%s: answer %q (%v)", tc.name, b, err)
			continue
		}
		st, hasStatus := got["status"]
		_, hasErr := got["status_error"]
		switch {
		case tc.want == "" && (hasStatus || !hasErr):
			t.Errorf("%s: %s, want the status left out with status_error", tc.name, b)
		case tc.want != "" && (string(st) != tc.want || hasErr):
			t.Errorf("%s: status %s, want %s (answer %s)", tc.name, st, tc.want, b)
		}
	}
}
