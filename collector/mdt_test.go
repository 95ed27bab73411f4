package collector

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/mdtlog"
	"github.com/mtcagent/mtcagent/wire"
)

// mdtDevice serves n records, two per page, in segment 7, and records the
// acks it gets; bad makes the record at that index undecodable.
type mdtDevice struct {
	mu   sync.Mutex
	n    int
	bad  int
	gets []string
	acks []wire.MDTPos
}

func (m *mdtDevice) serve(_ context.Context, r *uplink.Request) (uplink.Code, []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Method == "POST" && r.Path == wire.PathMDTAck {
		var a wire.MDTAck
		if cbor.Unmarshal(r.Payload, &a) != nil {
			return uplink.BadRequest, nil
		}
		m.acks = append(m.acks, a.Upto)
		b, _ := cbor.Marshal(wire.MDTAckResult{Segments: 1, Records: int(a.Upto.Index) + 1})
		return uplink.Changed, b
	}
	from := 0
	q := strings.Join(r.Query, "&")
	m.gets = append(m.gets, q)
	if v, ok := strings.CutPrefix(q, "after="); ok {
		p, err := wire.ParseMDTPos(v)
		if err != nil {
			return uplink.BadRequest, nil
		}
		from = int(p.Index) + 1
	}
	var page wire.MDTPage
	for i := from; i < m.n && len(page.Records) < 2; i++ {
		var raw []byte
		if i == m.bad {
			raw = []byte{0xa1, 0x01, 0x61, 0x78} // a map, but not a record
		} else {
			raw, _ = mdtlog.Record{Time: time.Unix(1_800_000_000+int64(i), 0)}.MarshalCBOR()
		}
		page.Records = append(page.Records, raw)
		page.Last = &wire.MDTPos{Segment: 7, Index: uint64(i)}
	}
	page.More = page.Last != nil && int(page.Last.Index)+1 < m.n
	b, _ := cbor.Marshal(page)
	return uplink.Content, b
}

func startMDTDevice(t *testing.T, dir string, m *mdtDevice) (*Server, *syncBuf) {
	t.Helper()
	dev := newTestDevice(t, "dev1")
	dev.mdt = m.serve
	s, _, log := startWithDevice(t, dev, dir)
	return s, log
}

// The collector pulls every page, stores the records in order, saves its
// cursor, and acks once, at the last record; after a restart it asks only
// for what follows the cursor.
func TestMDTPull(t *testing.T) {
	dir := t.TempDir()
	m := &mdtDevice{n: 5, bad: -1}
	s, log := startMDTDevice(t, dir, m)
	waitFor(t, 10*time.Second, "MDT records stored", func() bool { return strings.Contains(log.String(), "5 MDT records stored (up to 7.4)") })
	b, err := os.ReadFile(s.MDTPath("dev1"))
	if err != nil {
		t.Fatal(err)
	}
	dec := cbor.NewDecoder(strings.NewReader(string(b)))
	for i := 0; i < 5; i++ {
		var r mdtlog.Record
		var raw cbor.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if err := r.UnmarshalCBOR(raw); err != nil || r.Time.Unix() != 1_800_000_000+int64(i) {
			t.Fatalf("record %d: %v %v", i, r.Time, err)
		}
	}
	m.mu.Lock()
	gets, acks := m.gets, m.acks
	m.mu.Unlock()
	if strings.Join(gets, " ") != " after=7.1 after=7.3" || len(acks) != 1 || acks[0] != (wire.MDTPos{Segment: 7, Index: 4}) {
		t.Fatalf("pages asked %q, acks %v", gets, acks)
	}
	cur := *s.device("dev1").MDTCursor
	if cur != (wire.MDTPos{Segment: 7, Index: 4}) {
		t.Fatalf("cursor %v", cur)
	}

	// Restarted, with two more records on the device: only those are asked
	// for and stored.
	s.Close()
	m.mu.Lock()
	m.n, m.gets = 7, nil
	m.mu.Unlock()
	s, log = startMDTDevice(t, dir, m)
	waitFor(t, 10*time.Second, "the new records", func() bool { return strings.Contains(log.String(), "2 MDT records stored (up to 7.6)") })
	m.mu.Lock()
	gets = m.gets
	m.mu.Unlock()
	if len(gets) == 0 || gets[0] != "after=7.4" {
		t.Fatalf("after a restart the collector asked %q, want after=7.4 first", gets)
	}
	if n := countRecords(t, s.MDTPath("dev1")); n != 7 {
		t.Fatalf("%d records stored in all, want 7", n)
	}
}

func countRecords(t *testing.T, path string) int {
	t.Helper()
	n, _ := ReadMDT(filepath.Dir(filepath.Dir(path)), strings.TrimSuffix(filepath.Base(path), ".cbor"), func(mdtlog.Record) error { return nil })
	return n
}

// A page with a record that does not decode is refused whole: nothing of
// it is stored, the cursor stays at the page before, which is acked, and
// the log says why.
func TestMDTPullRefusesBadPage(t *testing.T) {
	dir := t.TempDir()
	m := &mdtDevice{n: 5, bad: 3}
	s, log := startMDTDevice(t, dir, m)
	waitFor(t, 10*time.Second, "MDT pull refused", func() bool {
		return strings.Contains(log.String(), "MDT pull: the page after 7.1: mdt page: record 2 of 2") && strings.Contains(log.String(), "2 MDT records stored (up to 7.1)")
	})
	m.mu.Lock()
	acks := m.acks
	m.mu.Unlock()
	cur := s.device("dev1").MDTCursor
	if n := countRecords(t, s.MDTPath("dev1")); n != 2 || len(acks) != 1 || acks[0] != *cur || *cur != (wire.MDTPos{Segment: 7, Index: 1}) {
		t.Fatalf("stored %d records, acks %v, cursor %v; want the first page only, acked; log:\n%s", n, acks, cur, log)
	}
}

func mdtRec(t *testing.T, at time.Time, synced bool) []byte {
	t.Helper()
	b, err := mdtlog.Record{Time: at, ClockSynced: synced}.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMDTSpan(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	cutoff := now.Add(-30 * 24 * time.Hour)
	old := mdtRec(t, cutoff.Add(-time.Hour), true)
	fresh := mdtRec(t, now, true)
	boot := mdtRec(t, time.Unix(0, 0), false) // a 1970 clock: its age is unknown
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name       string
		file       []byte
		cutoff     time.Time
		start, end int
		expired    int
	}{
		{"empty", nil, cutoff, 0, 0, 0},
		{"nothing expired", join(fresh, fresh), cutoff, 0, 2 * len(fresh), 0},
		{"expired prefix", join(old, old, fresh), cutoff, 2 * len(old), 2*len(old) + len(fresh), 2},
		{"unsynced before an expired record goes with it", join(boot, old, fresh), cutoff, len(boot) + len(old), len(boot) + len(old) + len(fresh), 2},
		{"unsynced after the last expired record stays", join(old, boot, fresh), cutoff, len(old), len(old) + len(boot) + len(fresh), 1},
		{"only unsynced records: none expire", join(boot, boot), cutoff, 0, 2 * len(boot), 0},
		{"keep forever", join(old, fresh), time.Time{}, 0, len(old) + len(fresh), 0},
		{"torn tail", join(fresh, fresh[:len(fresh)-3]), cutoff, 0, len(fresh), 0},
		{"expired and torn", join(old, fresh, fresh[:4]), cutoff, len(old), len(old) + len(fresh), 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sp, err := mdtSpan(c.file, c.cutoff)
			if err != nil {
				t.Fatal(err)
			}
			if sp.start != c.start || sp.end != c.end || sp.expired != c.expired {
				t.Fatalf("span %+v, want start %d end %d expired %d", sp, c.start, c.end, c.expired)
			}
		})
	}
	// A record that is whole but not a record stops it, naming the offset.
	_, err := mdtSpan(join(fresh, []byte{0xa1, 0x01, 0x61, 0x78}, fresh), cutoff)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("record at byte %d", len(fresh))) {
		t.Fatalf("damaged record: %v", err)
	}
}

// When it starts, before it pulls anything, the collector applies
// mdt_keep to the device's file and removes an incomplete last record, so
// that the new records can be read after it.
func TestMDTPullTidiesFile(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	old := mdtRec(t, now.Add(-31*24*time.Hour), true)
	kept := mdtRec(t, now.Add(-29*24*time.Hour), true)
	file := string(old) + string(old) + string(kept) + string(kept[:5])
	p := MDTFile(dir, "dev1")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mdtDevice{n: 2, bad: -1}
	_, log := startMDTDevice(t, dir, m)
	waitFor(t, 10*time.Second, "MDT records stored", func() bool { return strings.Contains(log.String(), "2 MDT records stored") })
	for _, want := range []string{"device dev1: 2 MDT records older than 720h0m0s removed", "ended in an incomplete record (5 bytes"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	var times []int64
	_, err := ReadMDT(dir, "dev1", func(r mdtlog.Record) error { times = append(times, r.Time.Unix()); return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{now.Add(-29 * 24 * time.Hour).Unix(), 1_800_000_000, 1_800_000_001}
	if fmt.Sprint(times) != fmt.Sprint(want) {
		t.Fatalf("records %v, want %v", times, want)
	}
}

// mdt_keep also applies to devices that do not come back: the collector
// tidies every device's file when it starts and hourly.
func TestMDTKeepWithoutPull(t *testing.T) {
	dir := t.TempDir()
	dev := newTestDevice(t, "dev1")
	now := time.Now()
	p := MDTFile(dir, "dev1")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	file := append(mdtRec(t, now.Add(-50*time.Hour), true), mdtRec(t, now, true)...)
	if err := os.WriteFile(p, file, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, _, log := startServer(t, parseTestConfig(t, "[collector]\nmdt_keep = 48h\n"+testConfigText(dev)), dir)
	waitFor(t, 10*time.Second, "expired record removed", func() bool {
		return strings.Contains(log.String(), "device dev1: 1 MDT records older than 48h0m0s removed")
	})
	if n := countRecords(t, p); n != 1 {
		t.Fatalf("%d records left, want 1", n)
	}
}

// A file with a damaged record is set aside whole, and the records pulled
// next go to a new file that can be read.
func TestMDTDamagedFileSetAside(t *testing.T) {
	dir := t.TempDir()
	fresh := mdtRec(t, time.Now(), true)
	damaged := append(append(append([]byte{}, fresh...), 0xa1, 0x01, 0x61, 0x78), fresh...)
	p := MDTFile(dir, "dev1")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	_, log := startMDTDevice(t, dir, &mdtDevice{n: 2, bad: -1})
	waitFor(t, 10*time.Second, "MDT records stored", func() bool { return strings.Contains(log.String(), "2 MDT records stored") })
	want := fmt.Sprintf("ERROR device dev1: collector: MDT record at byte %d", len(fresh))
	if !strings.Contains(log.String(), want) || !strings.Contains(log.String(), "the file is kept as dev1.cbor.damaged-") {
		t.Fatalf("log lacks %q and the name it was kept under:\n%s", want, log)
	}
	aside, _ := filepath.Glob(p + ".damaged-*")
	if len(aside) != 1 {
		t.Fatalf("files set aside: %v", aside)
	}
	if b, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(b, damaged) {
		t.Fatalf("the damaged file was not kept as it was: %v", err)
	}
	if n := countRecords(t, p); n != 2 {
		t.Fatalf("%d records readable in the new file, want 2", n)
	}
}
