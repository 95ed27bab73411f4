package mdtlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// marker is a fictional plaintext value the clear test hunts for.
const marker = "nr-marker-5f1c2e9a"

func u32(v uint32) *uint32   { return &v }
func u64(v uint64) *uint64   { return &v }
func f64(v float64) *float64 { return &v }
func u16p(v uint16) *uint16  { return &v }

// testRecord is a fictional measurement numbered i.
func testRecord(i int) Record {
	return Record{
		Time:        time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
		ClockSynced: i%3 != 0,
		Serving: Cell{
			RAT: "lte", MCC: "001", MNC: "01",
			TAC: u32(0x1a2b), CellID: u64(uint64(27447553 + i)),
			RSRP: f64(-95.5), RSRQ: f64(-11), SINR: f64(float64(i % 30)),
		},
		Neighbours: []Cell{{RAT: marker, PCI: u16p(uint16(i % 504)), EARFCN: u32(6300), RSRP: f64(-104)}},
		Location:   &Location{Lat: 52.5, Lon: 13.375, AccuracyM: 2000},
	}
}

func openTest(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func consent(t testing.TB, s *Store) {
	t.Helper()
	if _, err := s.Consent(ConsentRequest{}); err != nil {
		t.Fatalf("Consent: %v", err)
	}
}

func readAll(t testing.TB, s *Store) ([]Entry, ScanReport) {
	t.Helper()
	var out []Entry
	rep, err := s.Records(func(e Entry) error { out = append(out, e); return nil })
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	return out, rep
}

func TestRecordCBORRoundTrip(t *testing.T) {
	for i := range 5 {
		r := testRecord(i)
		b, err := r.MarshalCBOR()
		if err != nil {
			t.Fatal(err)
		}
		var got Record
		if err := got.UnmarshalCBOR(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip %d differs:\n got %+v\nwant %+v", i, got, r)
		}
	}
}

func TestAppendReadBack(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{SegmentBytes: 4 << 10})
	if err := s.Append(testRecord(0)); !errors.Is(err, ErrNoConsent) {
		t.Fatalf("Append before consent = %v, want ErrNoConsent", err)
	}
	consent(t, s)
	const n = 100
	for i := range n / 2 {
		if err := s.Append(testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	batch := make([]Record, 0, n/2)
	for i := n / 2; i < n; i++ {
		batch = append(batch, testRecord(i))
	}
	if err := s.AppendBatch(batch); err != nil {
		t.Fatal(err)
	}
	got, rep := readAll(t, s)
	if rep.Records != n || rep.Failed != 0 || len(got) != n {
		t.Fatalf("read %d records (report %+v), want %d", len(got), rep, n)
	}
	if rep.Segments < 2 {
		t.Fatalf("segments = %d, want rotation at 4 KiB", rep.Segments)
	}
	for i, e := range got {
		if !reflect.DeepEqual(e.Record, testRecord(i)) {
			t.Fatalf("record %d differs", i)
		}
	}
	if !rep.Oldest.Equal(testRecord(0).Time) || !rep.Newest.Equal(testRecord(n-1).Time) {
		t.Fatalf("oldest/newest = %v/%v", rep.Oldest, rep.Newest)
	}
	// Reopen: the records survive, and appends go to a new segment.
	s.Close()
	s2 := openTest(t, dir, Options{SegmentBytes: 4 << 10})
	if err := s2.Append(testRecord(n)); err != nil {
		t.Fatal(err)
	}
	got, rep = readAll(t, s2)
	if len(got) != n+1 || rep.Failed != 0 {
		t.Fatalf("after reopen read %d records, failed %d", len(got), rep.Failed)
	}
	// A second Open while the first holds the lock fails with ErrLocked.
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}

func TestFilesRevealOnlySize(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	consent(t, s)
	for i := range 10 {
		if err := s.Append(testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(filepath.Join(Dir(dir), "key"))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	// No run of plainWindow bytes of any record's plaintext appears in a
	// segment. The window is long enough that ciphertext cannot hold one by
	// chance: a 3-byte needle such as "lte" turns up in 1.5 KB of random
	// bytes about once in 10,000 runs, and CI's mips run found it once.
	const plainWindow = 12
	segs, _ := filepath.Glob(filepath.Join(Dir(dir), "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segment written")
	}
	for _, p := range segs {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(marker)) {
			t.Fatalf("segment %s holds the marker", filepath.Base(p))
		}
		for i := range 10 {
			plain, err := testRecord(i).MarshalCBOR()
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off+plainWindow <= len(plain); off++ {
				if bytes.Contains(b, plain[off:off+plainWindow]) {
					t.Fatalf("segment %s holds record %d's plaintext at its byte %d", filepath.Base(p), i, off)
				}
			}
		}
	}
}

// segmentLayout appends n records to a fresh store and returns the segment
// bytes (with 64 bytes of its preallocated zeros), the master key, and the
// end offset of each frame.
func segmentLayout(t testing.TB, n int) (seg, master []byte, ends []int) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{SegmentBytes: 4 << 10})
	consent(t, s)
	off := headerSize
	for i := range n {
		r := testRecord(i)
		if err := s.Append(r); err != nil {
			t.Fatal(err)
		}
		p, _ := r.MarshalCBOR()
		off += len(p) + FrameOverhead
		ends = append(ends, off)
	}
	segs, _ := filepath.Glob(filepath.Join(Dir(dir), "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("want one segment, have %d", len(segs))
	}
	seg, _ = os.ReadFile(segs[0])
	if len(seg) != 4<<10 || !allZero(seg[off:]) {
		t.Fatalf("segment is %d bytes, want 4 KiB with zeros after %d", len(seg), off)
	}
	return seg[:off+64], append([]byte(nil), s.master...), ends
}

func TestTamperEveryByte(t *testing.T) {
	const n = 6
	seg, master, ends := segmentLayout(t, n)
	for pos := range seg {
		for _, flip := range []byte{0x01, 0x80} {
			data := append([]byte(nil), seg...)
			data[pos] ^= flip
			hit := -1 // record holding pos (-1: header, n: the zeros after)
			if pos >= ends[n-1] {
				hit = n
			}
			for i, e := range ends {
				if pos >= headerSize && pos < e {
					hit = i
					break
				}
			}
			var got []Entry
			_, bad, err := ScanSegment(data, master, func(e Entry) { got = append(got, e) })
			if hit < 0 {
				if err == nil && (len(got) != 0 || len(bad) == 0) {
					t.Fatalf("header byte %d flipped: %d records accepted", pos, len(got))
				}
				continue
			}
			if err != nil {
				t.Fatalf("byte %d: %v", pos, err)
			}
			if len(bad) == 0 || bad[0].Index != uint64(hit) {
				t.Fatalf("byte %d in record %d flipped: not reported (%v)", pos, hit, bad)
			}
			if len(got) < hit {
				t.Fatalf("byte %d in record %d flipped: only %d earlier records kept", pos, hit, len(got))
			}
			for _, e := range got {
				if e.Pos.Index == uint64(hit) {
					t.Fatalf("byte %d: tampered record %d accepted", pos, hit)
				}
				if !reflect.DeepEqual(e.Record, testRecord(int(e.Pos.Index))) {
					t.Fatalf("byte %d: record %d altered", pos, e.Pos.Index)
				}
			}
		}
	}
}

func TestTamperThroughStore(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	consent(t, s)
	for i := range 5 {
		if err := s.Append(testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(Dir(dir), "*.seg"))
	b, _ := os.ReadFile(segs[0])
	p, _ := testRecord(0).MarshalCBOR()
	pos := headerSize + FrameOverhead + len(p) + lenSize + 3 // inside record 1's ciphertext
	b[pos] ^= 0x20
	os.WriteFile(segs[0], b, 0o600)
	s2 := openTest(t, dir, Options{})
	got, rep := readAll(t, s2)
	if rep.Failed != 1 || len(got) != 4 || got[0].Pos.Index != 0 || got[1].Pos.Index != 2 {
		t.Fatalf("read %d records, report %+v", len(got), rep)
	}
	var re *RecordError
	if len(rep.Errors) != 1 || !errors.As(rep.Errors[0], &re) || !errors.Is(re, ErrAuth) || re.Index != 1 {
		t.Fatalf("errors = %v, want ErrAuth at record 1", rep.Errors)
	}
	// Splicing: a frame moved to another position fails too.
	seg, master, ends := segmentLayout(t, 3)
	swapped := append(append(append([]byte(nil), seg[:headerSize]...), seg[ends[0]:ends[1]]...), seg[headerSize:ends[0]]...)
	if good, _, _ := ScanSegment(swapped, master, nil); good != 0 {
		t.Fatalf("reordered frames: %d accepted", good)
	}
}

func TestTornTailRepaired(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	consent(t, s)
	for i := range 4 {
		if err := s.Append(testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(Dir(dir), "*.seg"))
	// A torn write: part of a frame, then zeros as a crashed filesystem leaves.
	f, _ := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0})
	f.Close()
	s2 := openTest(t, dir, Options{})
	got, rep := readAll(t, s2)
	if len(got) != 4 || rep.Failed+rep.Torn != 1 {
		t.Fatalf("torn tail: %d records, report %+v", len(got), rep)
	}
	if err := s2.Append(testRecord(4)); err != nil {
		t.Fatal(err)
	}
	got, rep = readAll(t, s2)
	if len(got) != 5 || rep.Failed != 0 || rep.Torn != 0 {
		t.Fatalf("after repair: %d records, report %+v", len(got), rep)
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s := openTest(t, dir, Options{MaxBytes: 16 << 10, SegmentBytes: 4 << 10, Retention: time.Hour, Now: func() time.Time { return now }})
	consent(t, s)
	for i := range 400 {
		if err := s.Append(testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	got, rep := readAll(t, s)
	if rep.Bytes > 16<<10 || len(got) == 0 || got[len(got)-1].Pos.Index == 0 && len(got) == 1 {
		t.Fatalf("size cap: %d bytes, %d records", rep.Bytes, len(got))
	}
	if !reflect.DeepEqual(got[len(got)-1].Record, testRecord(399)) || reflect.DeepEqual(got[0].Record, testRecord(0)) {
		t.Fatal("size cap did not drop the oldest records")
	}
	// Age: make every segment old; all but the one being written go.
	segs, _ := filepath.Glob(filepath.Join(Dir(dir), "*.seg"))
	old := now.Add(-2 * time.Hour)
	for _, p := range segs {
		os.Chtimes(p, old, old)
	}
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	_, rep = readAll(t, s)
	if rep.Segments != 1 {
		t.Fatalf("after retention prune %d segments, want 1 (the open one)", rep.Segments)
	}
}

func TestConsentAndOptOut(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if c := s.ConsentState(); c.State != Unset {
		t.Fatalf("default consent %v", c.State)
	}
	if _, err := s.Consent(ConsentRequest{Remote: true}); !errors.Is(err, ErrRemoteConsent) {
		t.Fatalf("remote consent = %v", err)
	}
	if s.Logging() {
		t.Fatal("remote consent turned logging on")
	}
	consent(t, s)
	for i := range 3 {
		if err := s.Append(testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := s.OptOut(true)
	if err != nil || d.Segments != 1 || d.Records != 3 || !d.KeyDestroyed {
		t.Fatalf("OptOut = %+v, %v", d, err)
	}
	if err := s.Append(testRecord(9)); !errors.Is(err, ErrOptedOut) {
		t.Fatalf("Append after opt-out = %v", err)
	}
	s.Close()
	// Survives reopen; remote consent is refused.
	s2 := openTest(t, dir, Options{})
	if c := s2.ConsentState(); c.State != OptedOut || c.Time.IsZero() {
		t.Fatalf("after reopen consent %+v", c)
	}
	if _, err := s2.Consent(ConsentRequest{Remote: true}); !errors.Is(err, ErrOptedOut) || !errors.Is(err, ErrRemoteConsent) {
		t.Fatalf("remote consent after opt-out = %v", err)
	}
	if s2.Logging() {
		t.Fatal("logging on after remote consent")
	}
	got, _ := readAll(t, s2)
	if len(got) != 0 {
		t.Fatalf("%d records after opt-out", len(got))
	}
	// Only a local consent reverses it.
	consent(t, s2)
	if err := s2.Append(testRecord(1)); err != nil {
		t.Fatal(err)
	}
	// A damaged consent file fails closed.
	s2.Close()
	os.WriteFile(filepath.Join(Dir(dir), "consent"), []byte("{garbage"), 0o600)
	s3 := openTest(t, dir, Options{})
	if c := s3.ConsentState(); c.State != OptedOut || !c.Damaged {
		t.Fatalf("damaged consent = %+v", c)
	}
}

func TestClearCryptoErase(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{SegmentBytes: 4 << 10})
	consent(t, s)
	for i := range 60 {
		if err := s.Append(testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Status()
	if err != nil || st.Records != 60 {
		t.Fatalf("Status: %+v %v", st, err)
	}
	// Keep copies of the old segments.
	paths, _ := filepath.Glob(filepath.Join(Dir(dir), "*.seg"))
	var old [][]byte
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		old = append(old, b)
	}
	oldKey := append([]byte(nil), s.master...)
	if good, _, _ := ScanSegment(old[0], oldKey, nil); good == 0 {
		t.Fatal("old key does not open old segment (test setup)")
	}
	d, err := s.Clear()
	if err != nil {
		t.Fatal(err)
	}
	if d.Segments != len(paths) || d.Records != 60 || d.Uncounted != 0 || !d.KeyDestroyed || d.Bytes != st.Bytes {
		t.Fatalf("Clear = %+v (status had %d segments, %d bytes)", d, st.Segments, st.Bytes)
	}
	if c := s.ConsentState(); c.State != Consented {
		t.Fatalf("clear changed consent to %v", c.State)
	}
	s.Append(testRecord(1000)) // a fresh log works under the new key
	s.Close()
	// Scan the whole state dir: no plaintext, no key that opens old segments.
	plain, _ := testRecord(5).MarshalCBOR()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, plain) {
			t.Errorf("%s holds known plaintext", filepath.Base(p))
		}
		for i := 0; i+masterKeySize <= len(b); i++ {
			for _, seg := range old {
				if good, _, _ := ScanSegment(seg, b[i:i+masterKeySize], nil); good != 0 {
					t.Fatalf("%s at %d opens an old segment", filepath.Base(p), i)
				}
			}
		}
		return nil
	})
	ents, _ := os.ReadDir(Dir(dir))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

func TestInterruptedClearLeavesNothingReadable(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	consent(t, s)
	s.Append(testRecord(0))
	s.Close()
	// Simulate a crash after the key was destroyed but before segments went.
	os.Remove(filepath.Join(Dir(dir), "key"))
	s2 := openTest(t, dir, Options{})
	_, rep := readAll(t, s2)
	if rep.Records != 0 || len(rep.Errors) == 0 || !errors.Is(rep.Errors[0], ErrNoKey) {
		t.Fatalf("keyless segments: %+v", rep)
	}
	if err := s2.Append(testRecord(1)); err != nil {
		t.Fatal(err)
	}
	got, rep := readAll(t, s2)
	if len(got) != 1 || rep.Segments != 1 {
		t.Fatalf("after append: %d records in %d segments", len(got), rep.Segments)
	}
}

func TestExport(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	consent(t, s)
	for i := range 3 {
		s.Append(testRecord(i))
	}
	var jb, cb bytes.Buffer
	if _, err := s.Export(&jb, FormatJSONL); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(jb.String(), "\n"); n != 3 || !strings.Contains(jb.String(), `"rsrp_dbm":-95.5`) {
		t.Fatalf("jsonl export:\n%s", jb.String())
	}
	if _, err := s.Export(&cb, FormatCBOR); err != nil {
		t.Fatal(err)
	}
	dec := cbor.NewDecoder(&cb)
	for i := range 3 {
		var r Record
		if err := dec.Decode(&r); err != nil || !reflect.DeepEqual(r, testRecord(i)) {
			t.Fatalf("cbor export record %d: %v", i, err)
		}
	}
	if _, err := s.Export(&cb, "xml"); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func FuzzScanSegment(f *testing.F) {
	seg, master, _ := segmentLayout(f, 3)
	f.Add(seg)
	f.Add(seg[:headerSize])
	f.Add(seg[:len(seg)-5])
	f.Add([]byte("MDTL"))
	f.Fuzz(func(t *testing.T, data []byte) {
		good, bad, err := ScanSegment(data, master, func(e Entry) {
			if _, err := e.Record.MarshalCBOR(); err != nil {
				t.Fatalf("accepted record does not re-encode: %v", err)
			}
		})
		if err != nil && (good != 0 || bad != nil) {
			t.Fatal("error with results")
		}
	})
}

func TestDeleteUploaded(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{SegmentBytes: 4 << 10})
	consent(t, s)
	for i := range 100 {
		if err := s.Append(testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	got, rep := readAll(t, s)
	if rep.Segments < 3 {
		t.Fatalf("want at least 3 segments, have %d", rep.Segments)
	}
	// Uploaded up to the middle of the second segment: only the first goes.
	var mid Position
	for _, e := range got {
		if e.Pos.Segment == got[0].Pos.Segment+1 {
			mid = e.Pos
			break
		}
	}
	d, err := s.DeleteUploaded(mid)
	if err != nil || d.Segments != 1 {
		t.Fatalf("DeleteUploaded(%v) = %+v, %v", mid, d, err)
	}
	after, _ := readAll(t, s)
	if len(after) != len(got)-d.Records || after[0].Pos.Segment != mid.Segment {
		t.Fatalf("after delete: %d records from %v", len(after), after[0].Pos)
	}
	// Everything uploaded: all but the segment being written go.
	d, err = s.DeleteUploaded(after[len(after)-1].Pos)
	if err != nil {
		t.Fatal(err)
	}
	_, rep = readAll(t, s)
	if rep.Segments != 1 {
		t.Fatalf("after full upload %d segments remain (%+v)", rep.Segments, d)
	}
}

func TestDamagedKeyStillClears(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	consent(t, s)
	s.Append(testRecord(0))
	s.Close()
	os.WriteFile(filepath.Join(Dir(dir), "key"), []byte("short"), 0o600)
	s2 := openTest(t, dir, Options{})
	_, rep := readAll(t, s2)
	if rep.Records != 0 || rep.Failed == 0 {
		t.Fatalf("damaged key: %+v", rep)
	}
	d, err := s2.Clear()
	if err != nil || !d.KeyDestroyed || d.Segments != 1 {
		t.Fatalf("Clear with damaged key = %+v, %v", d, err)
	}
	if err := s2.Append(testRecord(1)); err != nil {
		t.Fatal(err)
	}
}

// RecordsFrom starts at a segment and reads nothing before it.
func TestRecordsFrom(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{SegmentBytes: 4 << 10, MaxBytes: 1 << 20, Retention: -1})
	consent(t, s)
	for i := range 120 {
		if err := s.Append(testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := readAll(t, s)
	second := all[len(all)-1].Pos.Segment
	var from []Entry
	rep, err := s.RecordsFrom(second, func(e Entry) error { from = append(from, e); return nil })
	if err != nil || len(from) == 0 || from[0].Pos.Segment != second || rep.Segments != 1 {
		t.Fatalf("from segment %d: %d records, first %+v, report %+v, %v", second, len(from), from[0].Pos, rep, err)
	}
	if tail := all[len(all)-len(from):]; tail[0].Pos != from[0].Pos || len(all) <= len(from) {
		t.Fatalf("RecordsFrom is not the tail of Records: %+v vs %+v", tail[0].Pos, from[0].Pos)
	}
}

// TestWholeLengthTornTail: a power cut can leave the last frame whole in
// length but not in content (the file grew; its data blocks were not
// written yet). That is a torn append, like a short one; the same damage
// before the last frame is a record failing authentication.
func TestWholeLengthTornTail(t *testing.T) {
	seg, master, ends := segmentLayout(t, 3)
	for _, tc := range []struct {
		name  string
		frame int // 0-based
		want  error
	}{
		{"last frame", 2, ErrTorn},
		{"middle frame", 1, ErrAuth},
	} {
		b := bytes.Clone(seg)
		start := headerSize
		if tc.frame > 0 {
			start = ends[tc.frame-1]
		}
		for i := start + lenSize; i < ends[tc.frame]; i++ {
			b[i] = 0 // the content as delayed allocation leaves it
		}
		good, bad, err := ScanSegment(b, master, nil)
		if err != nil || len(bad) != 1 || !errors.Is(bad[0], tc.want) {
			t.Fatalf("%s: good %d, bad %v, err %v; want one %v", tc.name, good, bad, err, tc.want)
		}
	}
}
