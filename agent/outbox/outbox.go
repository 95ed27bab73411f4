package outbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// Defaults for zero Options fields.
const (
	DefaultMaxMessages  = 10000
	DefaultMaxBytes     = 4 << 20
	DefaultSegmentBytes = 256 << 10
)

// Options bound an outbox. Zero fields take the defaults.
type Options struct {
	// MaxMessages bounds the number of messages waiting (appended, not
	// acknowledged). Append refuses with ErrFull beyond it.
	MaxMessages int
	// MaxBytes bounds the sum of the sizes of the waiting messages (their
	// own bytes; on disk add FrameOverhead each, plus acknowledged
	// messages in segments not yet compacted, at most one segment's worth
	// beyond the bound). Append refuses with ErrFull beyond it.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment file is started.
	SegmentBytes int64
}

// Message is a waiting message.
type Message struct {
	ID   uint64
	Data []byte
}

// Report says what Open found on disk and what was dropped since.
type Report struct {
	Segments  int    // segment files in use
	Acked     uint64 // highest acknowledged id
	NextID    uint64 // id the next Append gets
	TornBytes int64  // bytes of torn tails dropped at Open (a crash mid-append)
	// Corrupt lists damaged stretches (never returned as messages): found
	// at Open, or when Pending re-read a record that no longer checks.
	Corrupt []*RecordError
}

// segment is one segment file.
type segment struct {
	name   string
	first  uint64
	last   uint64 // last valid id in it (first-1 when empty)
	size   int64  // bytes in use (the next frame goes here in the active one)
	f      segFile
	broken bool // had damage: never appended to
	rw     bool // opened for writing
}

// entry locates a waiting message.
type entry struct {
	id  uint64
	seg *segment
	off int64
	n   uint32
}

// Outbox is an on-disk, ordered, bounded queue of messages waiting for
// delivery. It is safe for use from several goroutines; one process at a
// time may open a directory.
type Outbox struct {
	dir  string
	opts Options

	mu       sync.Mutex
	lock     *os.File
	segs     []*segment // in id order; the last one is the active one
	pending  []entry    // waiting messages in id order
	bytes    int64      // sum of the waiting messages' sizes
	acked    uint64
	next     uint64
	rollNow  bool     // the next Append starts a new segment
	tornTail bool     // Open dropped a tail from the last segment
	dirty    *segment // a write or sync to it failed: re-validate before appending
	closed   bool
	report   Report
	buf      []byte
	hooks    *hooks // fault injection (tests only)
}

// Open opens (creating if needed) the outbox in dir, taking its lock, and
// scans its segments: a torn tail (a crash mid-append) is dropped, damaged
// records are skipped and listed in Report, never returned.
func Open(dir string, opts Options) (*Outbox, error) {
	if opts.MaxMessages <= 0 {
		opts.MaxMessages = DefaultMaxMessages
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &FileError{Op: "create", Name: dir, Err: err}
	}
	// Nobody else may replace a segment or the ack file.
	if err := fsutil.CheckPrivateDir(dir); err != nil {
		return nil, err
	}
	lock, err := fsutil.Lock(filepath.Join(dir, lockName))
	if errors.Is(err, fsutil.ErrLocked) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, &FileError{Op: "lock", Name: lockName, Err: err}
	}
	o := &Outbox{dir: dir, opts: opts, lock: lock}
	if err := o.load(); err != nil {
		o.closeFiles()
		return nil, err
	}
	return o, nil
}

func (o *Outbox) path(name string) string { return filepath.Join(o.dir, name) }

// load reads the ack file and scans the segments.
func (o *Outbox) load() error {
	b, err := os.ReadFile(o.path(ackName))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return &FileError{Op: "read", Name: ackName, Err: err}
	default:
		if o.acked, err = decodeAck(b); err != nil {
			return &FileError{Op: "read", Name: ackName, Err: err}
		}
	}
	des, err := os.ReadDir(o.dir)
	if err != nil {
		return &FileError{Op: "read", Name: o.dir, Err: err}
	}
	var firsts []uint64
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp") {
			os.Remove(o.path(name)) // leftover of an interrupted atomic write
			continue
		}
		if first, ok := parseSegName(name); ok && de.Type().IsRegular() {
			firsts = append(firsts, first)
		}
	}
	slices.Sort(firsts)
	var last uint64 // highest valid id seen
	for i, first := range firsts {
		isLast := i == len(firsts)-1
		if err := o.loadSegment(first, &last, isLast); err != nil {
			return err
		}
	}
	o.next = max(last, o.acked) + 1
	if o.tornTail {
		// Skip the id the dropped tail may have held: if it was a damaged
		// record rather than a torn one, its id must not name another.
		o.next++
		o.rollNow = true
	}
	if n := len(o.segs); n > 0 {
		if a := o.segs[n-1]; a.broken || !a.rw || a.last+1 != o.next {
			o.rollNow = true
		}
	}
	// Remove segments left over from a compaction interrupted by a crash.
	o.compact()
	return nil
}

func (o *Outbox) loadSegment(first uint64, last *uint64, isLast bool) error {
	name := segName(first)
	flag := os.O_RDONLY
	if isLast {
		flag = os.O_RDWR
	}
	f, err := o.openSeg(name, flag)
	if err != nil {
		return &FileError{Op: "open", Name: name, Err: err}
	}
	data, err := readAll(f)
	if err != nil {
		f.Close()
		return &FileError{Op: "read", Name: name, Err: err}
	}
	r := scanSegment(data, first, *last)
	s := &segment{name: name, first: first, last: max(first-1, *last), size: r.goodEnd, f: f, rw: isLast}
	prev := s.last
	for _, fr := range r.frames {
		s.last = fr.id
		if fr.id > o.acked {
			o.pending = append(o.pending, entry{id: fr.id, seg: s, off: fr.off, n: fr.n})
			o.bytes += int64(fr.n)
		}
	}
	// Report bad stretches, with the ids they must have held when known.
	fi := 0
	for _, b := range r.bad {
		for fi < len(r.frames) && r.frames[fi].off < b.off {
			prev = r.frames[fi].id
			fi++
		}
		re := &RecordError{Segment: name, Offset: b.off, Length: b.end - b.off, Err: b.err}
		if b.tail && isLast && b.err != ErrBadHeader {
			// A crash mid-append: that record was never reported
			// appended. (A damaged last record looks the same; its
			// id is not reused, see load.)
			o.report.TornBytes += re.Length
			o.tornTail = true
			continue
		}
		if !b.tail && fi < len(r.frames) && r.frames[fi].id > prev+1 {
			re.FirstID, re.LastID = prev+1, r.frames[fi].id-1
		}
		o.report.Corrupt = append(o.report.Corrupt, re)
	}
	s.broken = len(r.bad) > 0 || !r.headerOK
	if isLast && int64(len(data)) > r.goodEnd && r.goodEnd >= headerSize {
		// Drop the bad tail so the file ends at the last valid frame.
		if err := f.Truncate(r.goodEnd); err != nil {
			f.Close()
			return &FileError{Op: "truncate", Name: name, Err: err}
		}
		if err := f.Datasync(); err != nil {
			f.Close()
			return &FileError{Op: "sync", Name: name, Err: err}
		}
	}
	*last = s.last
	if isLast && len(r.frames) == 0 {
		// Nothing valid in it (created just before a crash, or damaged
		// beyond use): remove it so a fresh segment can take its place.
		f.Close()
		if err := os.Remove(o.path(name)); err != nil {
			return &FileError{Op: "remove", Name: name, Err: err}
		}
		return nil
	}
	o.segs = append(o.segs, s)
	return nil
}

// Append stores msg and returns its id once it is on disk (fsync). Ids
// strictly increase, also across restarts. When the outbox is full it
// returns an error wrapping ErrFull and stores nothing.
//
// A failed write or sync (a full disk, an I/O error, a read-only
// remount) returns a *FileError and stores nothing; the outbox stays open.
// The next Append first re-validates the segment that failed, as Open
// would (see recoverLocked), and appends only once that succeeds, so
// appending resumes by itself when the medium works again.
func (o *Outbox) Append(msg []byte) (uint64, error) {
	if len(msg) > MaxMessageSize {
		return 0, fmt.Errorf("outbox append: %d bytes: %w", len(msg), ErrTooLarge)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.usable(); err != nil {
		return 0, fmt.Errorf("outbox append: %w", err)
	}
	if o.dirty != nil {
		if err := o.recoverLocked(); err != nil {
			return 0, fmt.Errorf("outbox append: %w", err)
		}
	}
	if len(o.pending)+1 > o.opts.MaxMessages || o.bytes+int64(len(msg)) > o.opts.MaxBytes {
		return 0, fmt.Errorf("outbox append: %w (%d messages, %d bytes waiting)", ErrFull, len(o.pending), o.bytes)
	}
	id := o.next
	s, err := o.activeFor(id, len(msg))
	if err != nil {
		return 0, fmt.Errorf("outbox append: %w", err)
	}
	o.buf = appendFrame(o.buf[:0], id, msg)
	if _, err := s.f.WriteAt(o.buf, s.size); err != nil {
		return 0, o.fail("write", s, err)
	}
	if err := s.f.Datasync(); err != nil {
		return 0, o.fail("sync", s, err)
	}
	o.pending = append(o.pending, entry{id: id, seg: s, off: s.size, n: uint32(len(msg))})
	o.bytes += int64(len(msg))
	s.size += int64(len(o.buf))
	s.last = id
	o.next++
	return id, nil
}

// fail records a failed write or sync of segment s: the file's state is
// now unknown (part of the frame may be on disk, and after a failed fsync
// the kernel may have dropped the dirty pages while reporting the next
// fsync clean), so nothing in memory is trusted about it until
// recoverLocked has re-read it.
func (o *Outbox) fail(op string, s *segment, err error) error {
	_ = s.f.Truncate(s.size) // best effort; recoverLocked checks
	o.dirty = s
	return fmt.Errorf("outbox append: %w", &FileError{Op: op, Name: s.name, Err: err})
}

// recoverLocked re-validates the segment whose write or sync failed, the
// way Open does: it opens the file again by name (the old descriptor may
// carry the error), cuts it back to the end of the last record reported
// appended, syncs that, reads the file back and scans it. Records that
// were reported appended but no longer check are dropped from the queue
// and listed in Report (damage, as in Pending). The next record then goes
// to a new segment, so a page whose write-back failed is never written
// again. On failure the outbox stays as it was and the next Append tries
// again; the error wraps ErrBroken and the cause.
func (o *Outbox) recoverLocked() error {
	s := o.dirty
	broken := func(op string, err error) error {
		return fmt.Errorf("%w: %w", ErrBroken, &FileError{Op: op, Name: s.name, Err: err})
	}
	f, err := o.openSeg(s.name, os.O_RDWR)
	if err != nil {
		return broken("open", err)
	}
	if err := f.Truncate(s.size); err != nil {
		f.Close()
		return broken("truncate", err)
	}
	if err := f.Datasync(); err != nil {
		f.Close()
		return broken("sync", err)
	}
	data, err := readAll(f)
	if err != nil {
		f.Close()
		return broken("read", err)
	}
	s.f.Close()
	s.f = f
	r := scanSegment(data, s.first, 0)
	found := make(map[uint64]frame, len(r.frames))
	for _, fr := range r.frames {
		found[fr.id] = fr
	}
	damaged := int64(len(data)) != s.size || r.goodEnd != s.size || len(r.bad) > 0
	for i := 0; i < len(o.pending); {
		e := o.pending[i]
		if fr, ok := found[e.id]; e.seg != s || ok && fr.off == e.off && fr.n == e.n {
			i++
			continue
		}
		damaged = true
		why := ErrTorn
		if len(r.bad) > 0 {
			why = r.bad[0].err
		}
		o.report.Corrupt = append(o.report.Corrupt, &RecordError{
			Segment: s.name, Offset: e.off, Length: FrameOverhead + int64(e.n), FirstID: e.id, LastID: e.id, Err: why,
		})
		o.pending = slices.Delete(o.pending, i, i+1)
		o.bytes -= int64(e.n)
	}
	s.broken = s.broken || damaged
	o.dirty = nil
	if s.last >= s.first || s.broken {
		o.rollNow = true
	}
	return nil
}

func (o *Outbox) usable() error {
	if o.closed {
		return ErrClosed
	}
	return nil
}

// activeFor returns the segment the next frame goes to, starting a new
// one when the active one is full, damaged or absent.
func (o *Outbox) activeFor(id uint64, n int) (*segment, error) {
	if k := len(o.segs); k > 0 && !o.rollNow {
		s := o.segs[k-1]
		if s.size+FrameOverhead+int64(n) <= o.opts.SegmentBytes || s.last < s.first {
			return s, nil
		}
	}
	name := segName(id)
	err := o.hookCreate(name)
	if err == nil {
		err = fsutil.WriteFileAtomic(o.path(name), segHeader(id), 0o600)
	}
	if err != nil {
		return nil, &FileError{Op: "create", Name: name, Err: err}
	}
	f, err := o.openSeg(name, os.O_RDWR)
	if err != nil {
		return nil, &FileError{Op: "open", Name: name, Err: err}
	}
	if k := len(o.segs); k > 0 {
		// The previous active segment is only read from now on.
		prev := o.segs[k-1]
		if rf, err := o.openSeg(prev.name, os.O_RDONLY); err == nil {
			prev.f.Close()
			prev.f, prev.rw = rf, false
		}
	}
	s := &segment{name: name, first: id, last: id - 1, size: headerSize, f: f, rw: true}
	o.segs = append(o.segs, s)
	o.rollNow = false
	o.report.Segments = len(o.segs)
	return s, nil
}

// Pending returns up to max waiting messages (all when max <= 0) in id
// order, read back from disk and checked. A record that no longer checks
// (damaged on disk since Open) is dropped from the queue, listed in
// Report, and skipped; it is never returned.
func (o *Outbox) Pending(max int) ([]Message, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, fmt.Errorf("outbox pending: %w", ErrClosed)
	}
	if max <= 0 || max > len(o.pending) {
		max = len(o.pending)
	}
	out := make([]Message, 0, max)
	for i := 0; i < len(o.pending) && len(out) < max; {
		e := o.pending[i]
		b := make([]byte, FrameOverhead+int(e.n))
		_, err := e.seg.f.ReadAt(b, e.off)
		var id uint64
		var data []byte
		if err == nil {
			id, data, err = checkFrame(b)
			if err == nil && id != e.id {
				err = ErrBadID
			}
		}
		if err != nil {
			if !errors.Is(err, ErrTorn) && !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrBadLength) && !errors.Is(err, ErrBadID) {
				return out, fmt.Errorf("outbox pending: %w", &FileError{Op: "read", Name: e.seg.name, Err: err})
			}
			o.report.Corrupt = append(o.report.Corrupt, &RecordError{
				Segment: e.seg.name, Offset: e.off, Length: int64(len(b)), FirstID: e.id, LastID: e.id, Err: err,
			})
			e.seg.broken = true
			o.rollNow = o.rollNow || e.seg == o.segs[len(o.segs)-1]
			o.pending = slices.Delete(o.pending, i, i+1)
			o.bytes -= int64(e.n)
			continue
		}
		out = append(out, Message{ID: id, Data: data})
		i++
	}
	return out, nil
}

// Ack acknowledges every message up to and including id (delivery is in
// order). It returns once the acknowledgement is on disk; acknowledged
// messages never come back, and segment files holding only acknowledged
// messages are removed. Acknowledging an id at or below an earlier Ack is
// a no-op; an id never appended is an error wrapping ErrAckAhead.
func (o *Outbox) Ack(id uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.usable(); err != nil {
		return fmt.Errorf("outbox ack: %w", err)
	}
	if id <= o.acked {
		return nil
	}
	if id >= o.next {
		return fmt.Errorf("outbox ack %d: %w (last is %d)", id, ErrAckAhead, o.next-1)
	}
	err := o.hookCreate(ackName)
	if err == nil {
		err = fsutil.WriteFileAtomic(o.path(ackName), encodeAck(id), 0o600)
	}
	if err != nil {
		return fmt.Errorf("outbox ack %d: %w", id, &FileError{Op: "write", Name: ackName, Err: err})
	}
	o.acked = id
	k := 0
	for k < len(o.pending) && o.pending[k].id <= id {
		o.bytes -= int64(o.pending[k].n)
		k++
	}
	o.pending = slices.Delete(o.pending, 0, k)
	o.compact()
	return nil
}

// compact removes segment files, other than the active one, that hold
// only acknowledged messages. A failed removal is retried on the next Ack
// (the messages stay acknowledged either way).
func (o *Outbox) compact() {
	removed := false
	for len(o.segs) > 1 && o.segs[0].last <= o.acked {
		s := o.segs[0]
		s.f.Close()
		if err := os.Remove(o.path(s.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			// Keep it open-less in the list; retry later.
			if f, oerr := o.openSeg(s.name, os.O_RDONLY); oerr == nil {
				s.f = f
				break
			}
		}
		o.segs = o.segs[1:]
		removed = true
	}
	if removed {
		_ = fsutil.SyncDir(o.dir)
	}
	o.report.Segments = len(o.segs)
}

// Len returns the number of waiting messages and the sum of their sizes.
func (o *Outbox) Len() (n int, bytes int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.pending), o.bytes
}

// Limits returns the bounds in force (Options.MaxMessages and MaxBytes,
// defaults applied): Append refuses with ErrFull beyond them.
func (o *Outbox) Limits() (maxMessages int, maxBytes int64) {
	return o.opts.MaxMessages, o.opts.MaxBytes
}

// Report returns what Open found and what was dropped since.
func (o *Outbox) Report() Report {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.report
	r.Segments = len(o.segs)
	r.Acked = o.acked
	r.NextID = o.next
	r.Corrupt = slices.Clone(r.Corrupt)
	return r
}

// Close releases the files and the directory lock. Further calls return
// errors wrapping ErrClosed; Close itself is idempotent.
func (o *Outbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	return o.closeFiles()
}

func (o *Outbox) closeFiles() error {
	var first error
	for _, s := range o.segs {
		if err := s.f.Close(); err != nil && first == nil {
			first = &FileError{Op: "close", Name: s.name, Err: err}
		}
	}
	o.segs = nil
	o.pending = nil
	if o.lock != nil {
		o.lock.Close()
	}
	return first
}
