package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mtcagent/mtcagent/internal/cli"
	"github.com/mtcagent/mtcagent/mdtlog"
)

// mdtMarker is a fictional value that must not survive a clear.
const mdtMarker = "nr-cli-marker-93b1"

func mdtCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	env := &cli.Env{Stdout: &o, Stderr: &e, Stdin: strings.NewReader(stdin), Getenv: func(string) string { return "" }}
	code = runMain(env, args)
	return o.String(), e.String(), code
}

// mdtFixture is a state dir and a config file with an [mdt] section.
func mdtFixture(t *testing.T) (dir, conf string) {
	t.Helper()
	dir = t.TempDir()
	conf = filepath.Join(dir, "mtcagent.conf")
	if err := os.WriteFile(conf, []byte("[mdt]\ninterval = 5.12s\nduration = 60m\nretention = 3d\nmax_bytes = 1M\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, conf
}

func u32p(v uint32) *uint32 { return &v }
func u64p(v uint64) *uint64 { return &v }
func f64p(v float64) *float64 {
	return &v
}

// appendMDT plays the daemon: it appends n fictional records.
func appendMDT(t *testing.T, dir string, n int) {
	t.Helper()
	s, err := mdtlog.Open(dir, mdtlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range n {
		r := mdtlog.Record{
			Time:        time.Date(2026, 11, 23, 9, 0, i, 0, time.UTC),
			ClockSynced: true,
			Serving:     mdtlog.Cell{RAT: "lte", MCC: "001", MNC: "01", TAC: u32p(4660), CellID: u64p(27447553), RSRP: f64p(-97), RSRQ: f64p(-12.5)},
			Neighbours:  []mdtlog.Cell{{RAT: mdtMarker, RSRP: f64p(-110)}},
		}
		if err := s.Append(r); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMDTCommands(t *testing.T) {
	dir, conf := mdtFixture(t)
	run := func(stdin string, args ...string) (string, string, int) {
		return mdtCLI(t, stdin, append(append([]string{"mdt"}, args...), "--state-dir", dir, "--config", conf)...)
	}

	out, errOut, code := run("", "status")
	if code != 0 || !strings.Contains(out, "unset") || !strings.Contains(out, "logging:    off") {
		t.Fatalf("status before consent: %d %q %q", code, out, errOut)
	}
	// Declining (or no answer) changes nothing.
	out, errOut, code = run("no\n", "consent")
	if code != 1 || !strings.Contains(out, "What is logged") || !strings.Contains(errOut, "not given") {
		t.Fatalf("declined consent: %d %q", code, errOut)
	}
	out, errOut, code = run("yes\n", "consent")
	for _, want := range []string{"Every 5.12 seconds", "for 1 hour", "3 days", "1 MiB", "Who may receive it", "mtcagent mdt optout", "Consent recorded"} {
		if !strings.Contains(out, want) {
			t.Errorf("consent output lacks %q", want)
		}
	}
	if code != 0 {
		t.Fatalf("consent: %d %s", code, errOut)
	}

	appendMDT(t, dir, 5)

	out, _, code = run("", "status", "--json")
	var st struct {
		Consent     string  `json:"consent"`
		ConsentTime *string `json:"consent_time"`
		Logging     bool    `json:"logging"`
		Records     int     `json:"records"`
		Bytes       int64   `json:"bytes"`
		Oldest      string  `json:"oldest"`
		Newest      string  `json:"newest"`
		Interval    float64 `json:"interval_seconds"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status --json: %d %s", code, out)
	}
	if st.Consent != "consented" || st.ConsentTime == nil || !st.Logging || st.Records != 5 || st.Bytes == 0 ||
		st.Oldest != "2026-11-23T09:00:00Z" || st.Newest != "2026-11-23T09:00:04Z" || st.Interval != 5.12 {
		t.Fatalf("status --json: %+v", st)
	}

	out, _, code = run("", "show")
	if code != 0 || !strings.Contains(out, "lte 001-01 tac 4660 cell 27447553") || !strings.Contains(out, "-12.5") || !strings.Contains(out, "5 records") {
		t.Fatalf("show: %d\n%s", code, out)
	}
	out, _, code = run("", "show", "--json")
	if code != 0 || strings.Count(out, "\n") != 5 || !strings.Contains(out, `"rsrq_db":-12.5`) {
		t.Fatalf("show --json: %d\n%s", code, out)
	}

	jl := filepath.Join(dir, "out.jsonl")
	if out, errOut, code = run("", "export", "--out", jl); code != 0 || !strings.Contains(out, "Exported 5 records") {
		t.Fatalf("export: %d %q %q", code, out, errOut)
	}
	b, _ := os.ReadFile(jl)
	fi, _ := os.Stat(jl)
	if strings.Count(string(b), "\n") != 5 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %d lines, mode %v", strings.Count(string(b), "\n"), fi.Mode().Perm())
	}
	cb := filepath.Join(dir, "out.cbor")
	if _, errOut, code = run("", "export", "--format", "cbor", "--out", cb); code != 0 {
		t.Fatalf("export cbor: %d %s", code, errOut)
	}
	b, _ = os.ReadFile(cb)
	dec := cbor.NewDecoder(bytes.NewReader(b))
	n := 0
	for {
		var r mdtlog.Record
		if err := dec.Decode(&r); err != nil {
			break
		}
		if r.Serving.RSRP == nil || *r.Serving.RSRP != -97 {
			t.Fatalf("cbor export record %d: %+v", n, r)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("cbor export: %d records", n)
	}
	os.Remove(jl)
	os.Remove(cb)

	out, errOut, code = run("", "clear", "--yes")
	if code != 0 || !strings.Contains(out, "Destroyed: encryption key destroyed, 1 segment files, 5 records") {
		t.Fatalf("clear: %d %q %q", code, out, errOut)
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(mdtMarker)) {
				t.Errorf("%s still holds a logged value after clear", filepath.Base(p))
			}
		}
		return nil
	})
	out, _, _ = run("", "status")
	if !strings.Contains(out, "consented since") || !strings.Contains(out, "records:    0") {
		t.Fatalf("status after clear:\n%s", out)
	}

	appendMDT(t, dir, 2)
	if _, _, code = run("", "optout"); code != 1 {
		t.Fatalf("optout without confirmation: %d", code)
	}
	out, errOut, code = run("", "optout", "--yes", "--json")
	var d struct {
		Consent  string `json:"consent"`
		Records  int    `json:"records"`
		Segments int    `json:"segments"`
		Key      bool   `json:"key_destroyed"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil || d.Consent != "opted_out" || d.Records != 2 || d.Segments != 1 || !d.Key {
		t.Fatalf("optout: %d %q %q", code, out, errOut)
	}
	// The opt-out survives reopening; a remote consent is refused and
	// logging stays off.
	s, err := mdtlog.Open(dir, mdtlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Consent(mdtlog.ConsentRequest{Remote: true}); !errors.Is(err, mdtlog.ErrOptedOut) {
		t.Fatalf("remote consent after optout: %v", err)
	}
	if err := s.Append(mdtlog.Record{}); !errors.Is(err, mdtlog.ErrOptedOut) {
		t.Fatalf("append after optout: %v", err)
	}
	// While another process holds the log, commands say who and exit 1.
	_, errOut, code = run("", "status")
	if code != 1 || !strings.Contains(errOut, "in use by another process") || !strings.Contains(errOut, "hint: the daemon") {
		t.Fatalf("locked: %d %q", code, errOut)
	}
	s.Close()
	out, _, _ = run("", "status")
	if !strings.Contains(out, "opted_out since") {
		t.Fatalf("status after optout:\n%s", out)
	}
	// Only a local consent reverses it.
	if _, _, code = run("", "consent", "--yes"); code != 0 {
		t.Fatalf("local consent after optout: %d", code)
	}
}

func TestMDTUsage(t *testing.T) {
	dir, conf := mdtFixture(t)
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("[mdt]\n\ninterval = 100s\n"), 0o600)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"mdt"}, 2, "mdt: want a subcommand (consent, optout, clear, status, show, export)"},
		{[]string{"mdt", "erase"}, 2, `unknown subcommand "erase"`},
		{[]string{"mdt", "export", "--state-dir", dir, "--config", conf}, 2, "--out is required"},
		{[]string{"mdt", "export", "--out", "x", "--format", "xml", "--state-dir", dir, "--config", conf}, 2, `--format "xml"`},
		{[]string{"mdt", "status", "--yes", "--state-dir", dir, "--config", conf}, 2, "flag provided but not defined"},
		{[]string{"mdt", "status", "--state-dir", dir, "--config", bad}, 2, "bad.conf:3: interval"},
		{[]string{"mdt", "status", "--state-dir", dir, "--config", filepath.Join(dir, "none.conf")}, 1, "hint: pass --config"},
	}
	for _, tc := range tests {
		_, errOut, code := mdtCLI(t, "", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d %q, want %d %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
