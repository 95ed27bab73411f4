package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/internal/cli"
	"github.com/mtcagent/mtcagent/privacy"
)

// Fictional identifiers only.
const (
	previewTestIMSI  = "274012001002086"
	previewTestICCID = "8949010000123456789"
	previewTestIMEI  = "490154203237518"
)

const previewTestConf = `
[privacy]
padding = on
schedule = 15m

[recipient "operator"]
identity = psk:operator-1
status = full
location = precise
cell = full
radio = full

[recipient "scs-home"]
identity = psk:scs-home
status = reachable
location = region:2km
`

func previewSnapshotJSON(status string) string {
	return `{"time":"2026-11-23T16:07:30Z","status":"` + status + `",
 "location":{"lat":48.137154,"lon":11.576124,"accuracy_m":12},
 "cell":{"mcc":"262","mnc":"01","tac":4660,"cell_id":27447553},
 "radio":{"rsrp_dbm":-95,"rsrq_db":-10.5,"rssi_dbm":-71},
 "imsi":"` + previewTestIMSI + `","iccid":"` + previewTestICCID + `","imei":"` + previewTestIMEI + `"}`
}

// privacyCLI runs mtcagent with args in a fresh environment.
func privacyCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	env := &cli.Env{Stdout: &o, Stderr: &e, Stdin: strings.NewReader(""), Getenv: func(string) string { return "" }}
	code = runMain(env, args)
	return o.String(), e.String(), code
}

func previewFixture(t *testing.T, status string) (dir, conf, snap string) {
	t.Helper()
	dir = t.TempDir()
	conf = filepath.Join(dir, "mtcagent.conf")
	snap = filepath.Join(dir, "snap.json")
	if err := os.WriteFile(conf, []byte(previewTestConf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(snap, []byte(previewSnapshotJSON(status)), 0o600); err != nil {
		t.Fatal(err)
	}
	return
}

func TestReportPreviewText(t *testing.T) {
	dir, conf, snap := previewFixture(t, "connected")
	out, errOut, code := privacyCLI(t, "report", "preview", "--recipient", "scs-home", "--count", "3",
		"--config", conf, "--state-dir", dir, "--snapshot", snap)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		`Recipient "scs-home"`, "granted:      status=reachable location=region:2km", "every 15m",
		"Report 3 of 3, slot 2026-11-23T16:30:00Z", "reachable  true", "centre of a 2km grid cell",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "connected") || strings.Contains(out, "4660") || strings.Contains(out, "48.137154") {
		t.Errorf("preview shows what scs-home may not receive:\n%s", out)
	}
	if hits := privacy.ScanForIdentifiers([]byte(out+errOut), previewTestIMSI, previewTestICCID, previewTestIMEI); len(hits) != 0 {
		t.Errorf("%d identifier hits in preview output", len(hits))
	}
	if st, err := os.Stat(filepath.Join(dir, privacy.SecretFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("device secret not created 0600: %v", err)
	}
}

func TestReportPreviewJSON(t *testing.T) {
	dir, conf, snap := previewFixture(t, "idle")
	run := func(recipient string) map[string]any {
		out, errOut, code := privacyCLI(t, "report", "preview", "--recipient", recipient, "--count", "2", "--json",
			"--config", conf, "--state-dir", dir, "--snapshot", snap)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		return m
	}
	m := run("operator")
	reps := m["reports"].([]any)
	if len(reps) != 2 || m["known"] != true || m["padding"] != true {
		t.Fatalf("preview JSON: %v", m)
	}
	r0 := reps[0].(map[string]any)
	rep := r0["report"].(map[string]any)
	if rep["state"] != "idle" || rep["lat"] != 48.137154 || rep["cell_id"] != float64(27447553) {
		t.Errorf("operator report: %v", rep)
	}
	// The CBOR shown is the bytes sent: it decodes to the same fields.
	wire, err := hex.DecodeString(r0["cbor"].(string))
	if err != nil || len(wire) != int(r0["size"].(float64)) {
		t.Fatalf("cbor hex: %v", err)
	}
	var dm map[string]any
	if err := cbor.Unmarshal(wire, &dm); err != nil || dm["state"] != "idle" {
		t.Errorf("cbor: %v %v", dm, err)
	}
	if s, _ := time.Parse(time.RFC3339, r0["slot"].(string)); !s.Equal(time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)) {
		t.Errorf("slot %v", r0["slot"])
	}
	m = run("scs-home")
	rep = m["reports"].([]any)[0].(map[string]any)["report"].(map[string]any)
	for _, k := range []string{"state", "plmn", "tac", "cell_id", "acc_m", "rsrp_dbm"} {
		if _, ok := rep[k]; ok {
			t.Errorf("scs-home receives %s", k)
		}
	}
	if rep["reachable"] != true || rep["grid_m"] != float64(2000) {
		t.Errorf("scs-home report: %v", rep)
	}
}

func TestReportPreviewReachableIdentical(t *testing.T) {
	var wires []string
	for _, st := range []string{"idle", "connected"} {
		dir, conf, snap := previewFixture(t, st)
		// Same device secret for both runs.
		os.WriteFile(filepath.Join(dir, privacy.SecretFile), bytes.Repeat([]byte{9}, privacy.SecretSize), 0o600)
		out, errOut, code := privacyCLI(t, "report", "preview", "--recipient", "scs-home", "--json",
			"--config", conf, "--state-dir", dir, "--snapshot", snap)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var m struct {
			Reports []struct{ CBOR string }
		}
		json.Unmarshal([]byte(out), &m)
		wires = append(wires, m.Reports[0].CBOR)
	}
	if wires[0] != wires[1] || wires[0] == "" {
		t.Error("reachable recipient sees idle and connected differently")
	}
}

func TestReportPreviewErrors(t *testing.T) {
	dir, conf, snap := previewFixture(t, "idle")
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("[recipient \"a\"]\nidentity = psk:a\nstatus = always\n"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"report", "preview", "--config", conf}, 2, "--recipient is required"},
		{[]string{"report", "preview", "--recipient", "x", "--count", "0", "--config", conf}, 2, "outside 1..96"},
		{[]string{"report", "show"}, 2, "unknown subcommand"},
		{[]string{"report", "preview", "--recipient", "a", "--config", bad, "--snapshot", snap}, 2, "bad.conf:3: recipient \"a\": status \"always\""},
		{[]string{"report", "preview", "--recipient", "a", "--config", filepath.Join(dir, "none.conf")}, 1, "hint: pass --config"},
		{[]string{"report", "preview", "--recipient", "operator", "--config", conf, "--state-dir", dir, "--snapshot", filepath.Join(dir, "none.json")}, 1, "read snapshot"},
	} {
		_, errOut, code := privacyCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
	// Unknown recipient: nothing, said plainly, for people and scripts.
	out, _, code := privacyCLI(t, "report", "preview", "--recipient", "stranger", "--config", conf, "--snapshot", snap)
	if code != 0 || !strings.Contains(out, "receives nothing") || !strings.Contains(out, "operator, scs-home") {
		t.Errorf("unknown recipient: %d %q", code, out)
	}
	out, _, _ = privacyCLI(t, "report", "preview", "--recipient", "stranger", "--json", "--config", conf, "--snapshot", snap)
	var m map[string]any
	if json.Unmarshal([]byte(out), &m) != nil || m["known"] != false || len(m["reports"].([]any)) != 0 {
		t.Errorf("unknown recipient JSON: %s", out)
	}
}

// TestReportPreviewFromModem reads the simulated modem over a pty and shows
// what each recipient would receive; the simulated identifiers never
// appear in the output.
func TestReportPreviewFromModem(t *testing.T) {
	dir, conf, _ := previewFixture(t, "idle")
	sc := filepath.Join(dir, "scenario.json")
	os.WriteFile(sc, []byte(`{"dialect": "quectel",
 "modem": {"imei": "`+previewTestIMEI+`"},
 "sim": {"state": "ready", "imsi": "`+previewTestIMSI+`", "iccid": "`+previewTestICCID+`"},
 "network": {"stat": 1, "act": 7, "tac": 4660, "cell_id": 27447553, "mcc": "262", "mnc": "01", "rssi_dbm": -71}}`), 0o600)
	out, errOut, code := privacyCLI(t, "report", "preview", "--recipient", "operator", "--json",
		"--config", conf, "--state-dir", dir, "--modem", "sim:"+sc)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var m struct {
		Reports []struct {
			Report map[string]any
		}
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil || len(m.Reports) != 1 {
		t.Fatalf("preview JSON: %v", err)
	}
	rep := m.Reports[0].Report
	if rep["plmn"] != "26201" || rep["tac"] != float64(4660) || rep["cell_id"] != float64(27447553) || rep["reachable"] != true {
		t.Errorf("operator report from the modem: %v", rep)
	}
	if _, ok := rep["lat"]; ok {
		t.Error("a modem reading has no position, yet the report has one")
	}
	out2, errOut2, code := privacyCLI(t, "report", "preview", "--recipient", "scs-home",
		"--config", conf, "--state-dir", dir, "--modem", "sim:"+sc)
	if code != 0 || !strings.Contains(out2, "reachable  true") {
		t.Fatalf("scs-home: exit %d: %s %s", code, out2, errOut2)
	}
	all := []byte(out + errOut + out2 + errOut2)
	if hits := privacy.ScanForIdentifiers(all, previewTestIMSI, previewTestICCID, previewTestIMEI); len(hits) != 0 {
		t.Errorf("%d identifier hits in preview output", len(hits))
	}
}

func TestSnapshotFromStatus(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	str := func(s string) *string { return &s }
	i := func(v int) *int { return &v }
	st := &atmodem.Status{
		Registration: map[atmodem.Domain]*atmodem.Registration{
			atmodem.DomainEPS: {Stat: 5, State: "roaming", TAC: u(0x1A2B)},
		},
		Operator: atmodem.Operator{MCC: str("262"), MNC: str("01")},
		Signal:   atmodem.Signal{RSSIdBm: i(-71), RSRPdBm: i(-95)},
		Cell:     &atmodem.ServingCell{State: "connected", SINRdB: previewF64(13)},
	}
	s := agent.SnapshotFromStatus(st)
	if s.Status != privacy.StatusConnected || s.Cell == nil || *s.Cell.TAC != 0x1A2B || s.Cell.MCC != "262" ||
		s.Radio == nil || *s.Radio.RSRPdBm != -95 || *s.Radio.SINRdB != 13 || s.Location != nil {
		t.Fatalf("snapshot %+v", s)
	}
	st.Cell.State = "idle"
	if agent.SnapshotFromStatus(st).Status != privacy.StatusIdle {
		t.Error("idle not seen")
	}
	st.Cell = nil
	if agent.SnapshotFromStatus(st).Status != privacy.StatusOnline {
		t.Error("registered without RRC state is not online")
	}
	st.Registration[atmodem.DomainEPS].Stat = 2
	if s := agent.SnapshotFromStatus(st); s.Status != privacy.StatusOffline || s.Cell != nil {
		t.Error("unregistered is not offline")
	}
}

func previewF64(v float64) *float64 { return &v }
