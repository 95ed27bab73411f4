package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/mdtlog"
)

func TestMDTShow(t *testing.T) {
	state := t.TempDir()
	var file []byte
	for i := range 2 {
		tac, rsrp := uint32(0x1a2b), -95.5
		b, _ := mdtlog.Record{Time: time.Date(2026, 11, 23, 10, 0, i, 0, time.UTC), ClockSynced: true,
			Serving: mdtlog.Cell{RAT: "lte", MCC: "001", MNC: "01", TAC: &tac, RSRP: &rsrp}}.MarshalCBOR()
		file = append(file, b...)
	}
	torn := append(append([]byte{}, file...), file[:7]...) // a power cut in the third append
	p := collector.MDTFile(state, "meter 1")
	os.MkdirAll(filepath.Dir(p), 0o700)
	os.WriteFile(p, torn, 0o600)

	code, out, errs := run(t, "mdt", "show", "--state", state, "meter 1")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, "2026-11-23 10:00:01  lte  001-01  tac 1A2B  rsrp -95.5") ||
		!strings.Contains(errs, "incomplete record") {
		t.Fatalf("show: %d\n%s\n%s", code, out, errs)
	}
	os.WriteFile(p, file, 0o600)
	code, out, errs = run(t, "mdt", "show", "--json", "--state", state, "meter 1")
	var first map[string]any
	if code != 0 || strings.Count(out, "\n") != 2 || json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &first) != nil ||
		first["time"] != "2026-11-23T10:00:00Z" || errs != "" {
		t.Fatalf("show --json: %d\n%s\n%s", code, out, errs)
	}
	// A damaged record is not shown as valid, nor anything after it.
	bad := append(append([]byte{}, file...), 0xa1, 0x01, 0x61, 0x78)
	bad = append(bad, file...)
	os.WriteFile(p, bad, 0o600)
	code, out, errs = run(t, "mdt", "show", "--state", state, "meter 1")
	if code != 1 || strings.Count(out, "\n") != 2 || !strings.Contains(errs, "2 records before it shown") {
		t.Fatalf("damaged: %d\n%s\n%s", code, out, errs)
	}
	// --file reads any MDT file, e.g. one the collector set aside.
	aside := p + ".damaged-20261123T100000Z"
	os.WriteFile(aside, bad, 0o600)
	code, out, errs = run(t, "mdt", "show", "--json", "--file", aside)
	if code != 1 || strings.Count(out, "\n") != 2 || !strings.Contains(errs, "2 records before it shown") {
		t.Fatalf("--file: %d\n%s\n%s", code, out, errs)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"mdt", "show", "--state", state, "nobody"}, 1, "hint: the collector pulls"},
		{[]string{"mdt", "show", "--file", filepath.Join(state, "none.cbor")}, 1, "no measurement records from " + filepath.Join(state, "none.cbor")},
		{[]string{"mdt", "show", "--file", aside, "meter 1"}, 2, "--file PATH takes no --state and no DEVICE"},
		{[]string{"mdt", "show", "meter 1"}, 2, "want --state DIR and one DEVICE"},
		{[]string{"mdt"}, 2, "want a subcommand (show)"},
	} {
		if code, _, errs := run(t, tc.args...); code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%q: %d %q; want %d and %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
}
