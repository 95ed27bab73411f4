package collector

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/mdtlog"
)

// mdtDevice serves n records, two per page, in segment 7, and records the
// acks it gets; bad makes the record at that index undecodable.
type mdtDevice struct {
	mu   sync.Mutex
	n    int
	bad  int
	gets []string
	acks []uplink.MDTPos
}

func (m *mdtDevice) serve(_ context.Context, r *uplink.Request) (uplink.Code, []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Method == "POST" && r.Path == uplink.PathMDTAck {
		var a uplink.MDTAck
		if cbor.Unmarshal(r.Payload, &a) != nil {
			return uplink.BadRequest, nil
		}
		m.acks = append(m.acks, a.Upto)
		b, _ := cbor.Marshal(uplink.MDTAckResult{Segments: 1, Records: int(a.Upto.Index) + 1})
		return uplink.Changed, b
	}
	from := 0
	q := strings.Join(r.Query, "&")
	m.gets = append(m.gets, q)
	if v, ok := strings.CutPrefix(q, "after="); ok {
		p, err := uplink.ParseMDTPos(v)
		if err != nil {
			return uplink.BadRequest, nil
		}
		from = int(p.Index) + 1
	}
	var page uplink.MDTPage
	for i := from; i < m.n && len(page.Records) < 2; i++ {
		var raw []byte
		if i == m.bad {
			raw = []byte{0xa1, 0x01, 0x61, 0x78} // a map, but not a record
		} else {
			raw, _ = mdtlog.Record{Time: time.Unix(1_800_000_000+int64(i), 0)}.MarshalCBOR()
		}
		page.Records = append(page.Records, raw)
		page.Last = &uplink.MDTPos{Segment: 7, Index: uint64(i)}
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
	if strings.Join(gets, " ") != " after=7.1 after=7.3" || len(acks) != 1 || acks[0] != (uplink.MDTPos{Segment: 7, Index: 4}) {
		t.Fatalf("pages asked %q, acks %v", gets, acks)
	}
	s.mu.Lock()
	cur := *s.st.device("dev1").MDTCursor
	s.mu.Unlock()
	if cur != (uplink.MDTPos{Segment: 7, Index: 4}) {
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
		return strings.Contains(log.String(), "MDT pull: record 1 of the page after 7.1") && strings.Contains(log.String(), "2 MDT records stored (up to 7.1)")
	})
	m.mu.Lock()
	acks := m.acks
	m.mu.Unlock()
	s.mu.Lock()
	cur := s.st.device("dev1").MDTCursor
	s.mu.Unlock()
	if n := countRecords(t, s.MDTPath("dev1")); n != 2 || len(acks) != 1 || acks[0] != *cur || *cur != (uplink.MDTPos{Segment: 7, Index: 1}) {
		t.Fatalf("stored %d records, acks %v, cursor %v; want the first page only, acked", n, acks, cur)
	}
}
