package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/mdtlog"
)

// TestDaemonLogsOpenReports: what the outbox and the measurement log find
// at start (a torn tail from a crash mid-append, damaged records) is
// logged by the daemon, as docs/outbox.md and docs/mdt.md say.
func TestDaemonLogsOpenReports(t *testing.T) {
	state := t.TempDir()
	sc := writeScenario(t, `{"dialect": "generic"}`)
	conf := filepath.Join(t.TempDir(), "a.conf")
	os.WriteFile(conf, []byte("[agent]\nheartbeat = off\npoll = 1s\n"), 0o600)
	d := startDaemon(t, state, sc, conf)
	d.stop(t) // its events stay in the outbox: no uplink

	// A crash mid-append in the outbox: the last record cut short.
	segs, _ := filepath.Glob(filepath.Join(state, "outbox", "seg-*.log"))
	if len(segs) == 0 {
		t.Fatal("no outbox segment after a run")
	}
	last := segs[len(segs)-1]
	fi, err := os.Stat(last)
	if err != nil || fi.Size() < 8 {
		t.Fatalf("outbox segment %s: %v", last, err)
	}
	if err := os.Truncate(last, fi.Size()-3); err != nil {
		t.Fatal(err)
	}
	// A measurement log with records, then bytes after them that do not
	// authenticate (a torn write or tampering).
	store, err := mdtlog.Open(state, mdtlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Consent(mdtlog.ConsentRequest{}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := store.Append(mdtlog.Record{Time: time.Unix(1_800_000_000+int64(i), 0), Serving: mdtlog.Cell{RAT: "lte", MCC: "001", MNC: "01"}}); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()
	msegs, _ := filepath.Glob(filepath.Join(mdtlog.Dir(state), "*.seg"))
	if len(msegs) != 1 {
		t.Fatalf("mdt segments: %v", msegs)
	}
	f, err := os.OpenFile(msegs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0})
	f.Close()

	d = startDaemon(t, state, sc, conf)
	d.stop(t)
	logged := d.stderr.String()
	for _, want := range []string{
		"outbox: torn tail dropped at start",
		"torn_bytes=",
		"measurement log opened",
	} {
		if !strings.Contains(logged, want) {
			t.Errorf("the daemon did not log %q at start; log:\n%s", want, logged)
		}
	}
	if !strings.Contains(logged, "measurement log: torn tail found at start") && !strings.Contains(logged, "measurement log: records that do not authenticate") {
		t.Errorf("the daemon did not log the measurement log's damage at start; log:\n%s", logged)
	}
}
