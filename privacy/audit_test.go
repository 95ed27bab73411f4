package privacy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAuditRecordRotateRead(t *testing.T) {
	dir := t.TempDir()
	p := policyWith(t, "", "status = reachable\nlocation = region:2km\nidentity_disclosure = pseudonym")
	r, err := p.View("r", fullSnapshot(t))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	a := OpenAudit(dir, 4096)
	n := 100 // ~110-byte lines: two rotations at 4096 bytes
	for i := 0; i < n; i++ {
		if err := a.Record(testTime.Add(time.Duration(i)*time.Minute), r, len(enc)); err != nil {
			t.Fatal(err)
		}
	}
	cur, err1 := os.Stat(a.Path())
	old, err2 := os.Stat(a.Path() + ".1")
	if err1 != nil || err2 != nil {
		t.Fatalf("no rotation: %v %v", err1, err2)
	}
	if cur.Size() > 4096 || old.Size() > 4096 || cur.Mode().Perm() != 0o600 {
		t.Fatalf("audit files %d and %d bytes (cap 4096), mode %v", cur.Size(), old.Size(), cur.Mode())
	}
	entries, skipped, err := ReadAudit(dir)
	if err != nil || skipped != 0 {
		t.Fatalf("read: %v, skipped %d", err, skipped)
	}
	if len(entries) == 0 || len(entries) >= n {
		t.Fatalf("%d entries after rotation of %d", len(entries), n)
	}
	last := entries[len(entries)-1]
	if !last.Time.Equal(testTime.Add(time.Duration(n-1)*time.Minute)) || last.Recipient != "r" || last.Size != len(enc) ||
		last.Carries["location"] != "region:2km" || last.Carries["status"] != "reachable" || last.Carries["identity"] != "pseudonym" {
		t.Fatalf("last entry %+v", last)
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].Time.Before(entries[i-1].Time) {
			t.Fatal("entries out of order")
		}
	}
	// Metadata only: no values of the report in the log.
	b1, _ := os.ReadFile(a.Path())
	b2, _ := os.ReadFile(a.Path() + ".1")
	all := string(b1) + string(b2)
	for _, v := range []string{"ps-r", "48.", "11.", `"reachable":true`, "4660"} {
		if strings.Contains(all, v) {
			t.Errorf("audit log contains a report value (%q)", v)
		}
	}
	// A torn last line is skipped, not fatal.
	f, _ := os.OpenFile(a.Path(), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"time":"2026-`)
	f.Close()
	_, skipped, err = ReadAudit(dir)
	if err != nil || skipped != 1 {
		t.Fatalf("torn line: skipped %d, %v", skipped, err)
	}
	// No log yet: empty, no error.
	e, s, err := ReadAudit(filepath.Join(dir, "none"))
	if err != nil || len(e) != 0 || s != 0 {
		t.Fatalf("missing log: %v %d %v", e, s, err)
	}
}

func TestAuditConcurrent(t *testing.T) {
	a := OpenAudit(t.TempDir(), 0)
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			var err error
			for i := 0; i < 25 && err == nil; i++ {
				err = a.Append(AuditEntry{Time: testTime, Recipient: "r", Size: i})
			}
			done <- err
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	entries, skipped, err := ReadAudit(filepath.Dir(a.Path()))
	if err != nil || skipped != 0 || len(entries) != 100 {
		t.Fatalf("%d entries, %d skipped, %v", len(entries), skipped, err)
	}
}

func TestDiscloseFailsClosed(t *testing.T) {
	dir := t.TempDir()
	p := policyWith(t, "", "status = full")
	r, err := p.View("r", fullSnapshot(t))
	if err != nil {
		t.Fatal(err)
	}
	a := OpenAudit(dir, 0)
	b, err := a.Disclose(r, testTime)
	if err != nil || len(b) == 0 {
		t.Fatalf("disclose: %v", err)
	}
	e, _, _ := ReadAudit(dir)
	if len(e) != 1 || e[0].Size != len(b) || e[0].Carries["status"] != "full" {
		t.Fatalf("audit after disclose: %+v", e)
	}
	// An audit that cannot be written: nothing to send.
	bad := OpenAudit(filepath.Join(dir, "missing", "dir"), 0)
	if b, err := bad.Disclose(r, testTime); err == nil || b != nil {
		t.Fatal("report released without an audit record")
	}
	// An empty report is neither sent nor recorded.
	if b, err := a.Disclose(Report{}, testTime); err == nil || b != nil {
		t.Fatal("empty report disclosed")
	}
	if e, _, _ := ReadAudit(dir); len(e) != 1 {
		t.Fatal("failed disclosure recorded")
	}
}

// After a power cut left part of an entry at the end of the log, the next
// entry is still read: the torn one is skipped alone.
func TestAuditAfterTornEntry(t *testing.T) {
	dir := t.TempDir()
	a := OpenAudit(dir, 0)
	if err := a.Append(AuditEntry{Time: testTime, Recipient: "first"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(a.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2026-11-23T10:00:00Z","recip`)
	f.Close()
	if err := a.Append(AuditEntry{Time: testTime.Add(time.Second), Recipient: "after"}); err != nil {
		t.Fatal(err)
	}
	e, skipped, err := ReadAudit(dir)
	if err != nil || skipped != 1 || len(e) != 2 || e[0].Recipient != "first" || e[1].Recipient != "after" {
		t.Fatalf("entries %+v, skipped %d, %v; want first and after, 1 skipped", e, skipped, err)
	}
}
