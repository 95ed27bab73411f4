package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/privacy"
)

// updateGolden rewrites testdata/golden from the current output:
// go test ./cmd/mtcagent -run Golden -update-golden
var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden")

// checkGolden compares got byte for byte with testdata/golden/name.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-golden to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s: output changed\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

// goldenRun runs mtcagent and returns stdout, stderr and the exit code in
// one text, with the state directory replaced by $DIR and each of the
// given times (printed as RFC 3339 or as the tables print them) by $TIME.
func goldenRun(t *testing.T, dir string, times []time.Time, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := mdtCLI(t, stdin, args...)
	s := "--- stdout\n" + out + "--- stderr\n" + errOut + "--- exit " + string(rune('0'+code)) + "\n"
	s = strings.ReplaceAll(s, dir, "$DIR")
	for _, tm := range times {
		s = strings.ReplaceAll(s, tm.UTC().Format(time.RFC3339), "$TIME")
		s = strings.ReplaceAll(s, tm.UTC().Format(time.DateTime+" MST"), "$TIME")
	}
	return s
}

// TestGoldenMDT pins every byte the mdt commands print, text and JSON.
func TestGoldenMDT(t *testing.T) {
	dir, conf := mdtFixture(t)
	var times []time.Time
	run := func(name, stdin string, args ...string) {
		t.Helper()
		checkGolden(t, "mdt-"+name, goldenRun(t, dir, times, stdin, append(append([]string{"mdt"}, args...), "--state-dir", dir, "--config", conf)...))
	}
	run("status-unset.txt", "", "status")
	run("status-unset.json", "", "status", "--json")
	run("consent-declined.txt", "no\n", "consent")
	out, errOut, code := mdtCLI(t, "", "mdt", "consent", "--yes", "--json", "--state-dir", dir, "--config", conf)
	var c struct {
		Time time.Time `json:"time"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &c) != nil {
		t.Fatalf("consent: %d %s %s", code, out, errOut)
	}
	times = append(times, c.Time)
	checkGolden(t, "mdt-consent.json", strings.ReplaceAll(out, c.Time.UTC().Format(time.RFC3339), "$TIME"))
	run("status-empty.txt", "", "status")
	appendMDT(t, dir, 3)
	run("status.txt", "", "status")
	run("status.json", "", "status", "--json")
	run("show.txt", "", "show")
	run("show.json", "", "show", "--json")
	run("export.json", "", "export", "--out", filepath.Join(dir, "x.jsonl"), "--json")
	run("export.txt", "", "export", "--out", filepath.Join(dir, "x.cbor"), "--format", "cbor")
	run("clear-declined.txt", "\n", "clear")
	run("clear.json", "", "clear", "--yes", "--json")
	appendMDT(t, dir, 2)
	run("clear.txt", "yes\n", "clear")
	run("optout.json", "", "optout", "--yes", "--json")
	// Opting out is a consent change of its own, with its own time (the
	// same second as the consent only on a fast machine).
	out, errOut, code = mdtCLI(t, "", "mdt", "status", "--json", "--state-dir", dir, "--config", conf)
	var st struct {
		Time time.Time `json:"consent_time"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: %d %s %s", code, out, errOut)
	}
	times = append(times, st.Time)
	run("status-optedout.json", "", "status", "--json")
	run("optout.txt", "", "optout", "--yes")
}

// TestGoldenReportPreview pins every byte of report preview, text and
// JSON, for a known recipient with each kind of grant and for an unknown
// one. The secrets are fixed so that masking and pseudonyms are.
func TestGoldenReportPreview(t *testing.T) {
	dir, conf, snap := previewFixture(t, "idle")
	conf2 := filepath.Join(dir, "pseudo.conf")
	os.WriteFile(conf2, []byte("[privacy]\ndevice_class = no_location_tracking\n\n[recipient \"operator\"]\nidentity = psk:operator-1\n"+
		"status = full\nlocation = precise\ncell = full\nradio = full\nidentity_disclosure = pseudonym\n"), 0o600)
	conf3 := filepath.Join(dir, "event.conf")
	os.WriteFile(conf3, []byte("[privacy]\n"), 0o600)
	for name, b := range map[string][]byte{privacy.SecretFile: bytes.Repeat([]byte{7}, 32), attest.DeviceSecretFile: bytes.Repeat([]byte{9}, 32)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) {
		t.Helper()
		checkGolden(t, "preview-"+name, goldenRun(t, dir, nil, "", append(append([]string{"report", "preview"}, args...), "--state-dir", dir, "--snapshot", snap)...))
	}
	for _, r := range []string{"operator", "scs-home", "nobody"} {
		run(r+".txt", "--recipient", r, "--count", "2", "--config", conf)
		run(r+".json", "--recipient", r, "--count", "2", "--config", conf, "--json")
	}
	run("pseudonym.txt", "--recipient", "operator", "--config", conf2)
	run("pseudonym.json", "--recipient", "operator", "--config", conf2, "--json")
	run("none.txt", "--recipient", "operator", "--config", conf3)
	run("none.json", "--recipient", "operator", "--config", conf3, "--json")
	conf4 := filepath.Join(dir, "bare.conf")
	os.WriteFile(conf4, []byte("[recipient \"bare\"]\nidentity = psk:bare\n"), 0o600)
	run("bare.txt", "--recipient", "bare", "--config", conf4)
	// A secret group or others may read is refused, with the hint that
	// names it.
	os.Chmod(filepath.Join(dir, privacy.SecretFile), 0o644)
	run("lax-secret.txt", "--recipient", "scs-home", "--config", conf)
	os.Chmod(filepath.Join(dir, privacy.SecretFile), 0o600)
	os.Chmod(filepath.Join(dir, attest.DeviceSecretFile), 0o644)
	run("lax-device-secret.txt", "--recipient", "operator", "--config", conf2)
}

// TestGoldenPrivacyAudit pins every byte of privacy audit, text and JSON,
// empty, whole, filtered and with a line cut by a power loss.
func TestGoldenPrivacyAudit(t *testing.T) {
	dir := t.TempDir()
	run := func(name string, args ...string) {
		t.Helper()
		checkGolden(t, "audit-"+name, goldenRun(t, dir, nil, "", append(append([]string{"privacy", "audit"}, args...), "--state-dir", dir)...))
	}
	run("empty.txt")
	run("empty.json", "--json")
	a := privacy.OpenAudit(dir, 0)
	t0 := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	a.Append(privacy.AuditEntry{Time: t0, Recipient: "scs-home", Carries: map[string]string{"status": "reachable", "location": "region:2km"}, Size: 192})
	a.Append(privacy.AuditEntry{Time: t0.Add(15 * time.Minute), Recipient: "operator", Carries: map[string]string{"status": "full", "cell": "full", "identity": "pseudonym"}, Size: 704})
	a.Append(privacy.AuditEntry{Time: t0.Add(30 * time.Minute), Recipient: "operator", Size: 64})
	run("all.txt")
	run("all.json", "--json")
	run("operator.txt", "--recipient", "operator")
	run("nobody.json", "--recipient", "nobody", "--json")
	f, err := os.OpenFile(filepath.Join(dir, privacy.AuditFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2026-11-23T17:`)
	f.Close()
	run("torn.txt")
	run("torn.json", "--json")
}

// TestGoldenSUCI pins the bytes of suci and suci --json (the null scheme:
// the only one without randomness).
func TestGoldenSUCI(t *testing.T) {
	sc := attScenario(t, `{"state": "ready", "imsi": "`+attIMSI+`", "iccid": "`+attICCID+`"}`)
	dir := filepath.Dir(sc)
	checkGolden(t, "suci-null.txt", goldenRun(t, dir, nil, "", "suci", "--profile", "null", "--mnc-digits", "3", "--modem", "sim:"+sc))
	checkGolden(t, "suci-null.json", goldenRun(t, dir, nil, "", "suci", "--profile", "null", "--json", "--modem", "sim:"+sc))
}
