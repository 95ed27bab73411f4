package agent

import (
	"strings"
	"testing"

	"github.com/mtcagent/mtcagent/privacy"
)

func TestParseSnapshot(t *testing.T) {
	s, err := ParseSnapshot([]byte(`{"time": "2025-01-02T03:04:05Z", "status": "idle",
		"location": {"lat": 48.1, "lon": 11.5, "accuracy_m": 9}, "cell": {"mcc": "262", "mnc": "01", "tac": 7},
		"radio": {"rsrp_dbm": -90}, "imsi": "262011234567890"}`))
	if err != nil || s.Status != privacy.StatusIdle || s.Location.Lat != 48.1 || *s.Cell.TAC != 7 || *s.Radio.RSRPdBm != -90 || s.IMSI.IsZero() {
		t.Fatalf("%+v, %v", s, err)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"status": "always"}`, `status "always"`},
		{`{"colour": "red"}`, "unknown field"},
		{`{"imsi": "26201x"}`, "imsi"},
		{`[`, "unexpected eof"},
	} {
		_, err := ParseSnapshot([]byte(tc.in))
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), tc.want) {
			t.Errorf("%s: %v, want %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "26201x") {
			t.Errorf("%s: the error repeats the identifier: %v", tc.in, err)
		}
	}
}

func FuzzParseSnapshot(f *testing.F) {
	f.Add([]byte(`{"status": "online", "imei": "490154203237518"}`))
	f.Fuzz(func(t *testing.T, b []byte) { ParseSnapshot(b) })
}
