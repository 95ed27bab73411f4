package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/privacy"
)

func TestPrivacyAudit(t *testing.T) {
	dir := t.TempDir()
	out, _, code := privacyCLI(t, "privacy", "audit", "--state-dir", dir)
	if code != 0 || !strings.Contains(out, "No disclosures recorded") {
		t.Fatalf("empty audit: %d %q", code, out)
	}
	a := privacy.OpenAudit(dir, 0)
	t0 := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	a.Append(privacy.AuditEntry{Time: t0, Recipient: "scs-home", Carries: map[string]string{"status": "reachable", "location": "region:2km"}, Size: 192})
	a.Append(privacy.AuditEntry{Time: t0.Add(15 * time.Minute), Recipient: "operator", Carries: map[string]string{"status": "full", "cell": "full"}, Size: 704})

	out, errOut, code := privacyCLI(t, "privacy", "audit", "--state-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"TIME", "RECIPIENT", "2026-11-23 16:00:00", "scs-home", "status=reachable location=region:2km", "operator", "704", "2 disclosures"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit text lacks %q:\n%s", want, out)
		}
	}
	out, _, code = privacyCLI(t, "privacy", "audit", "--json", "--recipient", "operator", "--state-dir", dir)
	var m struct {
		Log     string
		Entries []privacy.AuditEntry
		Skipped int
	}
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
		t.Fatalf("audit JSON: %d %s", code, out)
	}
	if len(m.Entries) != 1 || m.Entries[0].Recipient != "operator" || m.Entries[0].Carries["cell"] != "full" || m.Entries[0].Size != 704 || !strings.HasSuffix(m.Log, privacy.AuditFile) {
		t.Errorf("audit JSON: %+v", m)
	}
	if _, errOut, code := privacyCLI(t, "privacy", "show"); code != 2 || !strings.Contains(errOut, "unknown subcommand") {
		t.Errorf("bad subcommand: %d %q", code, errOut)
	}
}
