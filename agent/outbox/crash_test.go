package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// fixture writes n messages into a fresh outbox (one segment) and returns
// the directory, the messages by id and the segment file's bytes.
// small makes the messages 20-40 bytes instead of 60-400.
func fixture(t *testing.T, n int, small bool) (dir string, want map[uint64][]byte, seg string, data []byte) {
	t.Helper()
	dir = t.TempDir()
	o := openT(t, dir, Options{})
	want = map[uint64][]byte{}
	for i := range n {
		m := msgFor(fmt.Sprint("fixture", i))
		if small {
			m = m[:20+i*5]
		}
		want[appendT(t, o, m)] = m
	}
	o.Close()
	seg = filepath.Join(dir, segName(1))
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	return dir, want, seg, data
}

// copyDir copies the outbox files of src into dst (a fresh directory if
// empty), removing what else dst holds.
func copyDir(t *testing.T, src, dst string) string {
	t.Helper()
	if dst == "" {
		dst = t.TempDir()
	}
	old, _ := os.ReadDir(dst)
	for _, de := range old {
		os.Remove(filepath.Join(dst, de.Name()))
	}
	des, _ := os.ReadDir(src)
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, de.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestTornTail cuts the last record at every byte offset: the earlier
// records all come back intact, the torn one never does, and the outbox
// keeps working with ids above every id used before.
func TestTornTail(t *testing.T) {
	const n = 3
	dir, want, seg, data := fixture(t, n, false)
	scratch := t.TempDir()
	lastStart := len(data) - (FrameOverhead + len(want[n]))
	for cut := lastStart; cut < len(data); cut++ {
		d := copyDir(t, dir, scratch)
		if err := os.WriteFile(filepath.Join(d, filepath.Base(seg)), data[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		o, err := Open(d, Options{})
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		ms := pendingT(t, o)
		if len(ms) != n-1 {
			t.Fatalf("cut %d: %d messages pending, want %d", cut, len(ms), n-1)
		}
		for i, m := range ms {
			if m.ID != uint64(i+1) || !bytes.Equal(m.Data, want[m.ID]) {
				t.Fatalf("cut %d: message %d altered or out of place", cut, m.ID)
			}
		}
		r := o.Report()
		if r.TornBytes != int64(cut-lastStart) || len(r.Corrupt) != 0 {
			t.Fatalf("cut %d: report %+v, want %d torn bytes and nothing corrupt", cut, r, cut-lastStart)
		}
		id := appendT(t, o, []byte("after the crash"))
		if id < n {
			t.Fatalf("cut %d: new id %d reuses an id", cut, id)
		}
		o.Close()
		o = openT(t, d, Options{})
		ms = pendingT(t, o)
		if len(ms) != n || ms[n-1].ID != id || string(ms[n-1].Data) != "after the crash" {
			t.Fatalf("cut %d: after append and reopen: %v", cut, ids(ms))
		}
		if r := o.Report(); r.TornBytes != 0 || len(r.Corrupt) != 0 {
			t.Fatalf("cut %d: second open reports %+v", cut, r)
		}
		o.Close()
	}
}

// TestFlipEveryByte flips each byte of a segment in turn: the damage is
// always reported (as corrupt, or as a torn tail for the last record), at
// most the one record holding the byte is lost, and no message ever comes
// back altered.
func TestFlipEveryByte(t *testing.T) {
	const n = 5
	dir, want, seg, data := fixture(t, n, true)
	scratch := t.TempDir()
	masks := []byte{0x01, 0xff}
	if testing.Short() {
		masks = masks[1:]
	}
	for off := range data {
		for _, mask := range masks {
			d := copyDir(t, dir, scratch)
			c := bytes.Clone(data)
			c[off] ^= mask
			if err := os.WriteFile(filepath.Join(d, filepath.Base(seg)), c, 0o600); err != nil {
				t.Fatal(err)
			}
			o, err := Open(d, Options{})
			if err != nil {
				t.Fatalf("flip %d: %v", off, err)
			}
			ms := pendingT(t, o)
			for i, m := range ms {
				if !bytes.Equal(m.Data, want[m.ID]) {
					t.Fatalf("flip %d^%#x: message %d returned altered", off, mask, m.ID)
				}
				if i > 0 && m.ID <= ms[i-1].ID {
					t.Fatalf("flip %d^%#x: out of order %v", off, mask, ids(ms))
				}
			}
			if len(ms) < n-1 {
				t.Fatalf("flip %d^%#x: %d of %d messages left; only the damaged one may go", off, mask, len(ms), n)
			}
			r := o.Report()
			if len(r.Corrupt) == 0 && r.TornBytes == 0 {
				t.Fatalf("flip %d^%#x: damage not reported", off, mask)
			}
			if len(ms) == n-1 && r.TornBytes == 0 {
				// A lost middle record names its id.
				e := r.Corrupt[len(r.Corrupt)-1]
				if e.FirstID == 0 || e.FirstID != e.LastID || want[e.FirstID] == nil {
					t.Fatalf("flip %d^%#x: lost record not named: %v", off, mask, e)
				}
			}
			if off%8 == 0 { // (each append costs three fsyncs here)
				if _, err := o.Append([]byte("still works")); err != nil {
					t.Fatalf("flip %d^%#x: append: %v", off, mask, err)
				}
			}
			o.Close()
		}
	}
}

// TestDamageAfterOpen damages a record on disk while the outbox is open:
// Pending skips and reports it, never returns it altered.
func TestDamageAfterOpen(t *testing.T) {
	dir, want, seg, data := fixture(t, 4, false)
	o := openT(t, dir, Options{})
	off := headerSize + FrameOverhead + len(want[1]) + FrameOverhead + 7 // payload of record 2
	c := bytes.Clone(data)
	c[off] ^= 0x20
	if err := os.WriteFile(seg, c, 0o600); err != nil {
		t.Fatal(err)
	}
	ms := pendingT(t, o)
	if got := ids(ms); len(got) != 3 || got[0] != 1 || got[1] != 3 || got[2] != 4 {
		t.Fatalf("pending after damage = %v, want [1 3 4]", got)
	}
	for _, m := range ms {
		if !bytes.Equal(m.Data, want[m.ID]) {
			t.Fatalf("message %d altered", m.ID)
		}
	}
	r := o.Report()
	if len(r.Corrupt) != 1 || r.Corrupt[0].FirstID != 2 || !errors.Is(r.Corrupt[0], ErrChecksum) {
		t.Fatalf("report = %+v", r.Corrupt)
	}
	if n, b := o.Len(); n != 3 || b != int64(len(want[1])+len(want[3])+len(want[4])) {
		t.Fatalf("Len = %d, %d", n, b)
	}
	id := appendT(t, o, []byte("new"))
	if err := o.Ack(id); err != nil {
		t.Fatal(err)
	}
}

// FuzzScanSegment feeds arbitrary bytes to the segment reader: it never
// panics, every frame it accepts checks and lies inside the data in id
// order, and re-encoding an accepted frame gives back the same bytes.
func FuzzScanSegment(f *testing.F) {
	var seed []byte
	seed = append(seed, segHeader(1)...)
	for i := range 4 {
		seed = appendFrame(seed, uint64(i+1), msgFor(fmt.Sprint(i)))
	}
	f.Add(seed, uint64(1), uint64(0))
	f.Add(seed[:len(seed)-5], uint64(1), uint64(0))
	c := bytes.Clone(seed)
	c[headerSize+2] ^= 0xff
	f.Add(c, uint64(1), uint64(0))
	f.Add(seed, uint64(3), uint64(2))
	f.Add([]byte{}, uint64(1), uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, first, after uint64) {
		if len(data) > 1<<20 {
			return
		}
		r := scanSegment(data, first, after)
		last := after
		for _, fr := range r.frames {
			if fr.off < headerSize || fr.end() > int64(len(data)) {
				t.Fatalf("frame %+v outside the data (%d bytes)", fr, len(data))
			}
			if fr.id <= last {
				t.Fatalf("frame id %d after %d", fr.id, last)
			}
			last = fr.id
			b := data[fr.off:fr.end()]
			id, payload, err := checkFrame(b)
			if err != nil || id != fr.id {
				t.Fatalf("accepted frame does not check: %v", err)
			}
			if !bytes.Equal(appendFrame(nil, id, payload), b) {
				t.Fatal("accepted frame does not re-encode to the same bytes")
			}
		}
		if r.goodEnd > int64(len(data)) && len(data) >= headerSize {
			t.Fatalf("goodEnd %d beyond %d", r.goodEnd, len(data))
		}
		for _, b := range r.bad {
			if b.off < 0 || b.end < b.off || b.end > int64(len(data)) {
				t.Fatalf("bad region %+v outside the data", b)
			}
		}
	})
}
