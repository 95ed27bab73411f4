package outbox

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// faults decides which writes, syncs and file creations of an outbox fail
// (the seam is hooks: every segment file is wrapped in a faultFile).
type faults struct {
	mu      sync.Mutex
	err     error // what a failing operation returns (ENOSPC, EIO, EROFS)
	down    bool  // every write, sync and create fails until cleared
	writes  int   // fail the next n writes
	syncs   int   // fail the next n syncs
	rng     *rand.Rand
	oneIn   int // with rng: fail one operation in oneIn at random
	partial bool
	failed  int // operations failed so far
}

func (fl *faults) fail(n *int) error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	hit := fl.down
	if n != nil && *n > 0 {
		*n--
		hit = true
	}
	if fl.rng != nil && fl.oneIn > 0 && fl.rng.IntN(fl.oneIn) == 0 {
		hit = true
	}
	if !hit {
		return nil
	}
	fl.failed++
	return fl.err
}

func (fl *faults) set(f func(*faults)) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	f(fl)
}

type faultFile struct {
	segFile
	fl *faults
}

func (f faultFile) WriteAt(b []byte, off int64) (int, error) {
	if err := f.fl.fail(&f.fl.writes); err != nil {
		// A failing disk often takes part of a write.
		n, _ := f.segFile.WriteAt(b[:len(b)/2], off)
		return n, &fsPathError{"write", err}
	}
	return f.segFile.WriteAt(b, off)
}

func (f faultFile) Datasync() error {
	if err := f.fl.fail(&f.fl.syncs); err != nil {
		return &fsPathError{"sync", err}
	}
	return f.segFile.Datasync()
}

// fsPathError wraps an errno the way the os package does.
type fsPathError struct {
	op  string
	err error
}

func (e *fsPathError) Error() string { return e.op + ": " + e.err.Error() }
func (e *fsPathError) Unwrap() error { return e.err }

// injectFaults routes o's file operations through fl, also for the files
// already open.
func injectFaults(o *Outbox, fl *faults) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hooks = &hooks{
		wrap:   func(_ string, f segFile) segFile { return faultFile{f, fl} },
		create: func(string) error { return fl.fail(nil) },
	}
	for _, s := range o.segs {
		s.f = faultFile{s.f, fl}
	}
}

// TestDiskFullThenSpaceReturns fills the disk (every write, sync and file
// creation fails with ENOSPC) under an open outbox: appends fail with an
// error naming the cause, nothing is stored, acknowledged messages stay
// acknowledged, and once space returns appends succeed again without a
// reopen, in order, with nothing appended before lost. (On the unchanged
// outbox every later append failed with ErrBroken until a reopen.)
func TestDiskFullThenSpaceReturns(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO, syscall.EROFS} {
		t.Run(errno.Error(), func(t *testing.T) {
			dir := t.TempDir()
			o := openT(t, dir, Options{SegmentBytes: 1024})
			fl := &faults{err: errno}
			injectFaults(o, fl)
			want := map[uint64][]byte{}
			for i := range 5 {
				m := msgFor(fmt.Sprint("before", i))
				want[appendT(t, o, m)] = m
			}
			if err := o.Ack(2); err != nil {
				t.Fatal(err)
			}
			delete(want, 1)
			delete(want, 2)
			fl.set(func(fl *faults) { fl.down = true })
			for i := range 20 {
				_, err := o.Append(msgFor(fmt.Sprint("lost", i)))
				if err == nil || !errors.Is(err, errno) {
					t.Fatalf("append %d on a failing disk = %v, want %v", i, err, errno)
				}
				if fsutil.FaultOf(err) == "" {
					t.Fatalf("append error %v not classified as a storage fault", err)
				}
			}
			if err := o.Ack(3); err == nil {
				t.Fatal("ack on a failing disk succeeded")
			}
			if n, _ := o.Len(); n != 3 {
				t.Fatalf("Len on a failing disk = %d, want 3", n)
			}
			fl.set(func(fl *faults) { fl.down = false })
			var after []uint64
			for i := range 10 {
				m := msgFor(fmt.Sprint("after", i))
				id, err := o.Append(m)
				if err != nil {
					t.Fatalf("append %d after space returned: %v", i, err)
				}
				want[id] = m
				after = append(after, id)
			}
			if err := o.Ack(3); err != nil {
				t.Fatalf("ack after space returned: %v", err)
			}
			delete(want, 3)
			check := func(o *Outbox, when string) {
				t.Helper()
				ms := pendingT(t, o)
				if len(ms) != len(want) {
					t.Fatalf("%s: %d pending %v, want %d", when, len(ms), ids(ms), len(want))
				}
				for i, m := range ms {
					if string(m.Data) != string(want[m.ID]) {
						t.Fatalf("%s: message %d altered or unknown", when, m.ID)
					}
					if i > 0 && m.ID <= ms[i-1].ID {
						t.Fatalf("%s: out of order %v", when, ids(ms))
					}
				}
				if r := o.Report(); len(r.Corrupt) != 0 || r.TornBytes != 0 {
					t.Fatalf("%s: report %+v", when, r)
				}
			}
			check(o, "before reopen")
			o.Close()
			check(openT(t, dir, Options{SegmentBytes: 1024}), "after reopen")
		})
	}
}

// TestSyncErrorRecovers makes one fdatasync fail (EIO): that append
// reports the error and is not queued (its bytes are cut off again), the
// next append succeeds without a reopen, and a reopen finds exactly the
// appended messages, with nothing torn.
func TestSyncErrorRecovers(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, Options{})
	fl := &faults{err: syscall.EIO}
	injectFaults(o, fl)
	appendT(t, o, []byte("one"))
	fl.set(func(fl *faults) { fl.syncs = 1 })
	if _, err := o.Append([]byte("not durable")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append with a failing sync = %v, want EIO", err)
	}
	id := appendT(t, o, []byte("two"))
	ms := pendingT(t, o)
	if len(ms) != 2 || string(ms[0].Data) != "one" || string(ms[1].Data) != "two" || ms[1].ID != id {
		t.Fatalf("pending after a sync error: %v", ids(ms))
	}
	o.Close()
	o = openT(t, dir, Options{})
	ms = pendingT(t, o)
	if len(ms) != 2 || string(ms[1].Data) != "two" {
		t.Fatalf("after reopen: %v", ids(ms))
	}
	if r := o.Report(); r.TornBytes != 0 || len(r.Corrupt) != 0 {
		t.Fatalf("after reopen: %+v", r)
	}
}

// TestRecoveryRevalidates damages, while the disk is failing, a record
// that had been reported appended: the recovery reads the segment back
// instead of trusting memory, so the damaged record is dropped and
// reported, never returned.
func TestRecoveryRevalidates(t *testing.T) {
	dir, want, seg, data := fixture(t, 3, false)
	o := openT(t, dir, Options{})
	fl := &faults{err: syscall.EIO}
	injectFaults(o, fl)
	fl.set(func(fl *faults) { fl.writes = 1 })
	if _, err := o.Append([]byte("x")); err == nil {
		t.Fatal("append did not fail")
	}
	c := append([]byte(nil), data...)
	c[headerSize+FrameOverhead+len(want[1])+FrameOverhead+3] ^= 0x40 // record 2
	writeFileT(t, seg, c)
	appendT(t, o, []byte("after"))
	ms := pendingT(t, o)
	if got := ids(ms); len(got) != 3 || got[0] != 1 || got[1] != 3 {
		t.Fatalf("pending = %v, want 1, 3 and the new one", got)
	}
	if r := o.Report(); len(r.Corrupt) != 1 || r.Corrupt[0].FirstID != 2 {
		t.Fatalf("report = %+v", r.Corrupt)
	}
}

func writeFileT(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
