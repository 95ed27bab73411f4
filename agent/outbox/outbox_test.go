package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func openT(t testing.TB, dir string, opts Options) *Outbox {
	t.Helper()
	o, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// msgFor is a deterministic test message of 60..400 bytes.
func msgFor(key string) []byte {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	n := 60 + int(h%341)
	b := make([]byte, n)
	copy(b, key)
	for i := len(key); i < n; i++ {
		h = h*1664525 + 1013904223
		b[i] = byte(h >> 24)
	}
	return b
}

func appendT(t testing.TB, o *Outbox, msg []byte) uint64 {
	t.Helper()
	id, err := o.Append(msg)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func pendingT(t testing.TB, o *Outbox) []Message {
	t.Helper()
	ms, err := o.Pending(0)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func ids(ms []Message) []uint64 {
	var out []uint64
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestRoundTripAckReopen(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1024}
	o := openT(t, dir, opts)
	want := map[uint64][]byte{}
	var last uint64
	for i := range 30 {
		m := msgFor(fmt.Sprint("m", i))
		id := appendT(t, o, m)
		if id <= last {
			t.Fatalf("id %d after %d: not increasing", id, last)
		}
		last = id
		want[id] = m
	}
	check := func(o *Outbox, from uint64) {
		t.Helper()
		ms := pendingT(t, o)
		var n int
		var b int64
		for i, m := range ms {
			if i > 0 && m.ID <= ms[i-1].ID {
				t.Fatalf("pending out of order: %v", ids(ms))
			}
			if !bytes.Equal(m.Data, want[m.ID]) {
				t.Fatalf("message %d differs", m.ID)
			}
			n++
			b += int64(len(m.Data))
		}
		if len(ms) == 0 || ms[0].ID != from || ms[len(ms)-1].ID != last {
			t.Fatalf("pending %v, want %d..%d", ids(ms), from, last)
		}
		if gn, gb := o.Len(); gn != n || gb != b {
			t.Fatalf("Len = %d, %d; want %d, %d", gn, gb, n, b)
		}
	}
	check(o, 1)
	if ms, _ := o.Pending(5); !slices.Equal(ids(ms), []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("Pending(5) = %v", ids(ms))
	}
	if err := o.Ack(10); err != nil {
		t.Fatal(err)
	}
	check(o, 11)
	if err := o.Ack(4); err != nil { // below the last ack: no-op
		t.Fatal(err)
	}
	check(o, 11)
	if err := o.Ack(last + 1); !errors.Is(err, ErrAckAhead) {
		t.Fatalf("Ack beyond last = %v, want ErrAckAhead", err)
	}
	o.Close()

	o = openT(t, dir, opts)
	check(o, 11)
	if r := o.Report(); r.Acked != 10 || r.NextID != last+1 || len(r.Corrupt) != 0 || r.TornBytes != 0 {
		t.Fatalf("report after reopen: %+v", r)
	}
	if err := o.Ack(last); err != nil {
		t.Fatal(err)
	}
	if n, b := o.Len(); n != 0 || b != 0 {
		t.Fatalf("Len after acking all = %d, %d", n, b)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if len(segs) != 1 {
		t.Fatalf("%d segment files after acking all, want only the active one", len(segs))
	}
	o.Close()

	o = openT(t, dir, opts)
	if ms := pendingT(t, o); len(ms) != 0 {
		t.Fatalf("acked messages came back: %v", ids(ms))
	}
	if id := appendT(t, o, []byte("after")); id <= last {
		t.Fatalf("id %d after reopen not above %d", id, last)
	}
	o.Close()

	// Ids keep increasing even when the ack file is all that is left.
	for _, s := range segs {
		os.Remove(s)
	}
	o = openT(t, dir, opts)
	if id := appendT(t, o, []byte("x")); id <= last {
		t.Fatalf("id %d with only the ack file left, want > %d", id, last)
	}
}

func TestFull(t *testing.T) {
	o := openT(t, t.TempDir(), Options{MaxMessages: 3, MaxBytes: 100})
	for range 3 {
		appendT(t, o, make([]byte, 30))
	}
	if _, err := o.Append([]byte("x")); !errors.Is(err, ErrFull) {
		t.Fatalf("4th append = %v, want ErrFull", err)
	}
	if err := o.Ack(1); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Append(make([]byte, 41)); !errors.Is(err, ErrFull) {
		t.Fatalf("append over MaxBytes = %v, want ErrFull", err)
	}
	id := appendT(t, o, make([]byte, 40))
	if id != 4 {
		t.Fatalf("id after a refused append = %d, want 4 (refusals take no id)", id)
	}
	if _, err := o.Append(make([]byte, MaxMessageSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge append = %v, want ErrTooLarge", err)
	}
}

func TestLockAndClose(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := o.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	if _, err := o.Pending(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Pending after Close = %v", err)
	}
	if err := o.Ack(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close = %v", err)
	}
	o2 := openT(t, dir, Options{})
	o2.Close()
}

func TestBadAckFile(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, Options{})
	appendT(t, o, []byte("a"))
	if err := o.Ack(1); err != nil {
		t.Fatal(err)
	}
	o.Close()
	p := filepath.Join(dir, ackName)
	b, _ := os.ReadFile(p)
	for i := range b {
		c := slices.Clone(b)
		c[i] ^= 0x10
		os.WriteFile(p, c, 0o600)
		_, err := Open(dir, Options{})
		var fe *FileError
		if !errors.As(err, &fe) || fe.Name != ackName {
			t.Fatalf("flip at %d: Open = %v, want a FileError on the ack file", i, err)
		}
	}
}

// TestConcurrent appends from several goroutines while one delivers and
// acknowledges; every message arrives once, in id order.
func TestConcurrent(t *testing.T) {
	o := openT(t, t.TempDir(), Options{SegmentBytes: 4096})
	const writers, each = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := o.Append(msgFor(fmt.Sprintf("%d/%03d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[string]bool{}
	var last uint64
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		ms, err := o.Pending(7)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.ID <= last {
				t.Fatalf("id %d after %d", m.ID, last)
			}
			last = m.ID
			k := string(m.Data[:5])
			if seen[k] || !bytes.Equal(m.Data, msgFor(k)) {
				t.Fatalf("message %d: duplicate or altered", m.ID)
			}
			seen[k] = true
		}
		if len(ms) > 0 {
			if err := o.Ack(ms[len(ms)-1].ID); err != nil {
				t.Fatal(err)
			}
		} else if finished {
			break
		}
	}
	if len(seen) != writers*each {
		t.Fatalf("delivered %d messages, want %d", len(seen), writers*each)
	}
}

// TestWriteFailureRecovers makes a write fail (the segment's descriptor
// is closed underneath): that append reports a write FileError and stores
// nothing; the next append re-validates the segment from disk and
// succeeds without a reopen; acks work throughout; a reopen finds what
// was appended. (The unchanged outbox refused every later append with
// ErrBroken until reopened.)
func TestWriteFailureRecovers(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, Options{})
	appendT(t, o, []byte("one"))
	appendT(t, o, []byte("two"))
	o.segs[len(o.segs)-1].f.Close()
	_, err := o.Append([]byte("three"))
	var fe *FileError
	if !errors.As(err, &fe) || fe.Op != "write" {
		t.Fatalf("append on a failing file = %v, want a write FileError", err)
	}
	if err := o.Ack(1); err != nil {
		t.Fatalf("ack after a failed write: %v", err)
	}
	if id, err := o.Append([]byte("four")); err != nil || id != 3 {
		t.Fatalf("append after a failure = %d, %v; want id 3 without a reopen", id, err)
	}
	if ms := pendingT(t, o); len(ms) != 2 || string(ms[0].Data) != "two" || string(ms[1].Data) != "four" {
		t.Fatalf("pending after recovery: %v", ids(ms))
	}
	o.Close()
	o = openT(t, dir, Options{})
	ms := pendingT(t, o)
	if len(ms) != 2 || ms[0].ID != 2 || string(ms[0].Data) != "two" || string(ms[1].Data) != "four" {
		t.Fatalf("after reopen: %v", ids(ms))
	}
	if r := o.Report(); r.TornBytes != 0 || len(r.Corrupt) != 0 {
		t.Fatalf("after reopen: %+v", r)
	}
	if id := appendT(t, o, []byte("five")); id != 4 {
		t.Fatalf("id after reopen = %d, want 4", id)
	}
}
