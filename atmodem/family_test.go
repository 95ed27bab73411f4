package atmodem_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
)

// familyCell lists, per vendor dialect, the serving-cell fields its
// command gives (docs/atmodem.md, table of families).
var familyCell = map[string][]string{
	"ublox":   {"rat", "pci", "earfcn", "rsrp_dbm", "rsrq_db"},
	"telit":   {"rat", "state", "mcc", "mnc", "tac", "cell_id", "earfcn", "band", "rsrp_dbm", "rsrq_db", "sinr_db", "rssi_dbm"},
	"sierra":  {"rat", "state", "tac", "cell_id", "earfcn", "band", "rsrp_dbm", "rsrq_db", "sinr_db", "rssi_dbm"},
	"nordic":  {"rat", "mcc", "mnc", "tac", "cell_id", "pci", "earfcn", "band", "rsrp_dbm", "sinr_db"},
	"fibocom": {"rat", "mcc", "mnc", "tac", "cell_id", "pci", "earfcn", "band", "rsrp_dbm", "rsrq_db"},
	"huawei":  {"rat", "mcc", "mnc", "tac", "cell_id", "pci", "earfcn", "rsrp_dbm", "rsrq_db", "rssi_dbm"},
}

// For each family, status --json from its simulator fills every field the
// family offers: identity, SIM, EPS registration, operator, signal, and
// the serving-cell fields of its vendor command.
func TestFamilyStatusFilled(t *testing.T) {
	for dialect, cellFields := range familyCell {
		t.Run(dialect, func(t *testing.T) {
			_, path := startSim(t, `{"dialect": "`+dialect+`"}`)
			e := openEngine(t, path, nil)
			m := atmodem.NewModem(e, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := m.Init(ctx); err != nil {
				t.Fatal(err)
			}
			st, err := m.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Dialect != dialect {
				t.Fatalf("dialect %q, want %q", st.Dialect, dialect)
			}
			b, _ := json.Marshal(st.Revealed())
			var j map[string]map[string]any
			var raw map[string]any
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			j = map[string]map[string]any{}
			for k, v := range raw {
				if o, ok := v.(map[string]any); ok {
					j[k] = o
				}
			}
			want := map[string][]string{
				"modem":    {"manufacturer", "model", "revision", "imei", "family"},
				"sim":      {"state", "imsi", "iccid"},
				"operator": {"mcc", "mnc", "name"},
				"signal":   {"rssi_dbm", "rsrp_dbm", "rsrq_db"},
			}
			for obj, keys := range want {
				for _, k := range keys {
					if j[obj][k] == nil {
						t.Errorf("%s.%s is null", obj, k)
					}
				}
			}
			if eps, _ := j["registration"]["eps"].(map[string]any); eps == nil || eps["tac"] == nil || eps["cell_id"] == nil {
				t.Errorf("registration.eps = %v", j["registration"]["eps"])
			}
			cell := j["serving_cell"]
			for _, k := range cellFields {
				if cell == nil || cell[k] == nil || cell[k] == "" || cell[k] == "unknown" {
					t.Errorf("serving_cell.%s = %v", k, cell[k])
				}
			}
			if tac, ok := cell["tac"].(float64); ok && tac != 0x1a2b {
				t.Errorf("serving_cell.tac = %v, want 0x1A2B", tac)
			}
			if ci, ok := cell["cell_id"].(float64); ok && ci != 0x01a2d101 {
				t.Errorf("serving_cell.cell_id = %v, want 0x1A2D101", ci)
			}
			if r, ok := cell["rsrp_dbm"].(float64); ok && r != -95 {
				t.Errorf("serving_cell.rsrp_dbm = %v, want -95", r)
			}
		})
	}
}

// On every family's simulator the monitor sees SIM removal, SIM change and
// a modem reset (by the family's URC, or by the URC settings found lost).
func TestFamilyEvents(t *testing.T) {
	for dialect := range familyCell {
		t.Run(dialect, func(t *testing.T) {
			s, path := startSim(t, `{"dialect": "`+dialect+`"}`)
			h := runMonitor(t, path)
			s.RemoveSIM()
			h.expect(t, slow(3*time.Second), atmodem.EventSIMRemoved)
			s.InsertSIM(modemsim.SIMState{IMSI: "001010000000002", ICCID: "8900100000000000002"})
			h.expect(t, slow(3*time.Second), atmodem.EventSIMInserted, atmodem.EventSIMChanged)
			s.Fault("reboot", 200*time.Millisecond)
			h.expect(t, slow(5*time.Second), atmodem.EventModemReset)
		})
	}
}

// The vendor SIM URCs reach the monitor as SIM events at once, without
// waiting for a poll.
func TestFamilySIMURCsAreKnown(t *testing.T) {
	known := map[string]bool{}
	for _, p := range atmodem.URCPrefixes() {
		known[p] = true
	}
	for _, p := range []string{"+UUSIMSTAT:", "#QSS:", "%XSIM:", "^SIMST:", "^SYSSTART", "Ready"} {
		if !known[p] {
			t.Errorf("URC %s not registered", p)
		}
	}
	if d := atmodem.Dialects["huawei"]; d.URCs["^SYSSTART"] != atmodem.URCReset || d.URCs["^SIMST:"] != atmodem.URCSIMChanged {
		t.Error("huawei URC kinds")
	}
	if !strings.HasPrefix(atmodem.Dialects["nordic"].ICCIDCommands[0].Line, "AT%XICCID") {
		t.Error("nordic ICCID command")
	}
}

// Every lock of +CPIN is its own sim.state word end to end: the simulated
// SIM answers the code, Status reports the word, and only ready reads the
// identity.
func TestSIMLockStatesEndToEnd(t *testing.T) {
	for _, w := range []string{"pin_required", "puk_required", "pin2_required", "puk2_required", "ph_sim_pin_required",
		"ph_fsim_pin_required", "ph_fsim_puk_required", "ph_net_pin_required", "ph_net_puk_required", "ph_netsub_pin_required",
		"ph_netsub_puk_required", "ph_sp_pin_required", "ph_sp_puk_required", "ph_corp_pin_required", "ph_corp_puk_required"} {
		t.Run(w, func(t *testing.T) {
			_, path := startSim(t, `{"dialect": "telit", "sim": {"state": "`+w+`"}}`)
			e := openEngine(t, path, nil)
			m := atmodem.NewModem(e, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := m.Init(ctx); err != nil {
				t.Fatal(err)
			}
			st, err := m.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.SIM.State != w || !st.SIM.IMSI.IsZero() || !atmodem.SIMLocked(w) {
				t.Fatalf("sim.state %q (imsi read: %v), want %q", st.SIM.State, !st.SIM.IMSI.IsZero(), w)
			}
		})
	}
	if _, err := modemsim.Parse([]byte(`{"sim": {"state": "ph_xyz_pin_required"}}`)); err == nil {
		t.Fatal("scenario took an unknown lock word")
	}
}

// An eUICC's EID reaches status --json as sim.eid; a plain SIM gives null.
// A profile switch changes ICCID and IMSI, the EID stays.
func TestEIDInStatus(t *testing.T) {
	const eid = "89001012012341234012345678901030"
	for _, tc := range []struct{ scenario, want string }{
		{`{"dialect": "quectel", "sim": {"eid": "` + eid + `"}}`, eid},
		{`{"dialect": "nordic", "sim": {"eid": "` + eid + `"}}`, eid},
		{`{"dialect": "generic"}`, ""},
	} {
		s, path := startSim(t, tc.scenario)
		e := openEngine(t, path, nil)
		m := atmodem.NewModem(e, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := m.Init(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := m.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		j := st.Revealed()
		if got := optStr(j.SIM.EID); tc.want != "" && got != tc.want || tc.want == "" && j.SIM.EID != nil {
			t.Errorf("%s: sim.eid of %d characters", tc.scenario, len(got))
		}
		if tc.want != "" {
			s.ReplaceSIM(modemsim.SIMState{IMSI: "001010000000002", ICCID: "8900100000000000002", EID: eid})
			st2, err := m.Status(ctx)
			if err != nil || st2.SIM.ICCID.Equal(st.SIM.ICCID) || !st2.SIM.EID.Equal(st.SIM.EID) {
				t.Errorf("after a profile switch: ICCID changed %v, EID kept %v (%v)", !st2.SIM.ICCID.Equal(st.SIM.ICCID), st2.SIM.EID.Equal(st.SIM.EID), err)
			}
			if b, _ := json.Marshal(st); strings.Contains(string(b), eid) {
				t.Error("Status.MarshalJSON leaks the EID")
			}
		}
		cancel()
	}
}
