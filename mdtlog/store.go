package mdtlog

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// Defaults for Options.
const (
	DefaultMaxBytes  = 4 << 20
	DefaultRetention = 7 * 24 * time.Hour
)

// Options tune a Store; the zero value gives the defaults.
type Options struct {
	// MaxBytes caps the total size of the segments; the oldest segments go
	// first. 0 means DefaultMaxBytes.
	MaxBytes int64
	// Retention deletes segments last written longer ago than this.
	// 0 means DefaultRetention; negative keeps segments regardless of age.
	Retention time.Duration
	// SegmentBytes is the size of a segment file (preallocated). 0 means
	// MaxBytes/8, at least 4 KiB and at most 8 MiB, so that a log holds
	// about eight segments whatever its cap, and Clear removes about eight
	// files whatever the log size.
	SegmentBytes int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Rand is the randomness for keys and segment ids (default crypto/rand).
	Rand io.Reader
}

func (o *Options) fill() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = min(max(o.MaxBytes/8, 4<<10), 8<<20)
	}
	o.SegmentBytes = max(o.SegmentBytes, 4<<10)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
}

// Store is the MDT log in one state directory. Its methods are safe for
// concurrent use; the daemon and the CLI both call them.
type Store struct {
	dir  string
	opts Options

	mu      sync.Mutex
	lock    *os.File
	closed  bool
	consent Consent
	master  []byte
	w       *writer
	counts  map[uint64]int // records per segment, where known
	// abandoned segments had a failed write: never append to them again,
	// so that no record index is used twice under one key.
	abandoned map[uint64]bool
}

// writer appends to the newest segment.
type writer struct {
	f    *os.File
	name string
	seq  uint64
	keys *segKeys
	idx  uint64 // index of the next record
	size int64  // offset of the next frame (the file is preallocated beyond)
	buf  []byte
}

// Dir returns the mdt directory inside a state directory.
func Dir(stateDir string) string { return filepath.Join(stateDir, "mdt") }

// Open opens (creating if needed) the MDT log under stateDir/mdt and takes
// its lock; it fails with ErrLocked when another process holds it.
func Open(stateDir string, opts Options) (*Store, error) {
	opts.fill()
	dir := Dir(stateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open mdt log: %w", err)
	}
	// Nobody else may replace the key, the consent or the segments.
	for _, d := range []string{stateDir, dir} {
		if err := fsutil.CheckPrivateDir(d); err != nil {
			return nil, err
		}
	}
	lk, err := fsutil.Lock(filepath.Join(dir, "lock"))
	if errors.Is(err, fsutil.ErrLocked) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, fmt.Errorf("lock mdt log: %w", err)
	}
	s := &Store{dir: dir, opts: opts, lock: lk, counts: map[uint64]int{}, abandoned: map[uint64]bool{}}
	s.removeTemps() // what a kill left of a segment being created (under the lock: no writer now)
	s.consent = readConsent(s.path("consent"))
	s.master, err = readMasterKey(s.path("key"))
	if err != nil {
		lk.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) path(name string) string { return filepath.Join(s.dir, name) }

// Close closes the current segment and releases the lock.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.closeWriter()
	clear(s.master)
	if cerr := s.lock.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Store) closeWriter() error {
	if s.w == nil {
		return nil
	}
	err := s.w.f.Close()
	s.w = nil
	return err
}

// Consent returns the current consent state.
func (s *Store) ConsentState() Consent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.consent
}

// Logging reports whether records may be appended now.
func (s *Store) Logging() bool { return s.ConsentState().State == Consented }

// Consent records the user's consent. A remote request is always refused
// (ErrRemoteConsent, wrapping ErrOptedOut after an opt-out) and changes
// nothing; a local request turns logging on, also after an opt-out.
func (s *Store) Consent(req ConsentRequest) (Consent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Consent{}, ErrClosed
	}
	if req.Remote {
		if s.consent.State == OptedOut {
			return s.consent, fmt.Errorf("%w: %w", ErrRemoteConsent, ErrOptedOut)
		}
		return s.consent, ErrRemoteConsent
	}
	c := Consent{State: Consented, Time: s.opts.Now().UTC(), ClockSynced: req.ClockSynced}
	if err := writeConsent(s.path("consent"), c); err != nil {
		return s.consent, err
	}
	s.consent = c
	return c, nil
}

// Destroyed is what Clear or OptOut destroyed.
type Destroyed struct {
	KeyDestroyed bool
	Segments     int
	Bytes        int64 // segment bytes removed
	Records      int   // records in the removed segments, where counted
	// Uncounted is the number of removed segments whose records were never
	// counted by this Store (Status counts them; Clear does not read them,
	// so that it takes the same time whatever the log size).
	Uncounted int
}

// OptOut records a permanent opt-out, stops logging and clears the log.
// The opt-out is written durably before anything is deleted.
func (s *Store) OptOut(clockSynced bool) (Destroyed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Destroyed{}, ErrClosed
	}
	c := Consent{State: OptedOut, Time: s.opts.Now().UTC(), ClockSynced: clockSynced}
	if err := writeConsent(s.path("consent"), c); err != nil {
		return Destroyed{}, err
	}
	s.consent = c
	return s.clearLocked()
}

// Clear crypto-erases the log: it overwrites and removes the master key,
// removes every segment, and creates a fresh key. It does not read or
// rewrite the segments, so it takes the same time whatever their size.
// Consent is unchanged.
func (s *Store) Clear() (Destroyed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Destroyed{}, ErrClosed
	}
	return s.clearLocked()
}

func (s *Store) clearLocked() (Destroyed, error) {
	var d Destroyed
	werr := s.closeWriter()
	// The key goes first: after this, whatever remains is unreadable,
	// even if we crash before the files are removed.
	clear(s.master)
	s.master = nil
	kd, err := destroyMasterKey(s.path("key"))
	d.KeyDestroyed = kd
	if err != nil {
		return d, err
	}
	segs, err := s.listSegments()
	if err != nil {
		return d, err
	}
	for _, sg := range segs {
		if err := os.Remove(s.path(sg.name)); err != nil && !os.IsNotExist(err) {
			return d, fmt.Errorf("clear mdt log: %w", err)
		}
		d.Segments++
		d.Bytes += sg.size
		if n, ok := s.counts[sg.seq]; ok {
			d.Records += n
		} else {
			d.Uncounted++
		}
	}
	clear(s.counts)
	s.removeTemps()
	if err := fsutil.SyncDir(s.dir); err != nil {
		return d, fmt.Errorf("clear mdt log: %w", err)
	}
	s.master, err = createMasterKey(s.path("key"), s.opts.Rand)
	if err != nil {
		return d, err
	}
	if werr != nil {
		return d, fmt.Errorf("clear mdt log: close segment: %w", werr)
	}
	return d, nil
}

// segTempPrefix names a segment being created (createSegment).
const segTempPrefix = ".seg.tmp."

// removeTemps removes leftovers of interrupted atomic writes of the key
// and of segments.
func (s *Store) removeTemps() {
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".key.tmp") || strings.HasPrefix(e.Name(), segTempPrefix) {
			os.Remove(s.path(e.Name()))
		}
	}
}

type segInfo struct {
	name  string
	seq   uint64
	size  int64
	mtime time.Time
}

func segName(seq uint64) string { return fmt.Sprintf("%016x.seg", seq) }

// listSegments returns the segment files in sequence order.
func (s *Store) listSegments() ([]segInfo, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list mdt segments: %w", err)
	}
	var out []segInfo
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, ".seg") || len(n) != 20 {
			continue
		}
		seq, err := strconv.ParseUint(n[:16], 16, 64)
		if err != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, segInfo{name: n, seq: seq, size: fi.Size(), mtime: fi.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out, nil
}

// Append adds one record and returns once it is durable (written and
// fdatasync'ed). It fails with ErrNoConsent or ErrOptedOut when logging is
// off.
func (s *Store) Append(r Record) error {
	return s.AppendBatch([]Record{r})
}

// AppendBatch adds records with one sync for the batch (group commit): the
// records are durable when it returns nil; after an error, none of them
// should be assumed durable.
func (s *Store) AppendBatch(rs []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	switch s.consent.State {
	case Consented:
	case OptedOut:
		return ErrOptedOut
	default:
		return ErrNoConsent
	}
	if len(rs) == 0 {
		return nil
	}
	plains := make([][]byte, len(rs))
	for i, r := range rs {
		p, err := r.MarshalCBOR()
		if err != nil {
			return fmt.Errorf("append mdt record: %w", err)
		}
		if len(p) > MaxRecordSize {
			return fmt.Errorf("append mdt record: %w", ErrTooLarge)
		}
		plains[i] = p
	}
	if err := s.ensureWriter(); err != nil {
		return err
	}
	rotated := false
	for _, p := range plains {
		w := s.w
		if w.size+int64(len(w.buf))+int64(len(p)+FrameOverhead) > s.opts.SegmentBytes && (w.idx > 0 || len(w.buf) > 0) {
			if err := s.flush(); err != nil {
				return err
			}
			if err := s.rotate(); err != nil {
				return err
			}
			rotated = true
			w = s.w
		}
		w.buf = w.keys.appendFrame(w.buf, w.idx, p)
		w.idx++
	}
	if err := s.flush(); err != nil {
		return err
	}
	if rotated {
		s.pruneLocked()
	}
	return nil
}

// flush writes the buffered frames and syncs them. On failure the segment
// is cut back to its last durable size and abandoned: the next append
// starts a new segment, so no nonce is ever used twice.
func (s *Store) flush() error {
	w := s.w
	if len(w.buf) == 0 {
		return nil
	}
	n := int64(len(w.buf))
	_, err := w.f.WriteAt(w.buf, w.size)
	if err == nil {
		err = fsutil.Datasync(w.f)
	}
	w.buf = w.buf[:0]
	if err != nil {
		// Put the zeros back (best effort) and abandon the segment.
		_, _ = w.f.WriteAt(make([]byte, n), w.size)
		_ = fsutil.Datasync(w.f)
		s.abandoned[w.seq] = true
		s.closeWriter()
		return fmt.Errorf("append mdt record: %w", err)
	}
	w.size += n
	s.counts[w.seq] = int(w.idx)
	return nil
}

// ensureWriter makes sure there is a segment to append to: it loads or
// creates the master key and repairs the last segment's tail; it continues
// that segment only when it ends cleanly (every record authentic, then the
// preallocated zeros), so that a record index is never used twice under one
// key, and starts a new segment otherwise.
func (s *Store) ensureWriter() error {
	if s.w != nil {
		return nil
	}
	segs, err := s.listSegments()
	if err != nil {
		return err
	}
	if s.master == nil {
		// Segments without a key are leftovers of an interrupted clear:
		// unreadable, so finish removing them.
		for _, sg := range segs {
			os.Remove(s.path(sg.name))
		}
		segs = nil
		s.master, err = createMasterKey(s.path("key"), s.opts.Rand)
		if err != nil {
			return err
		}
	}
	var next uint64 = 1
	if len(segs) > 0 {
		last := segs[len(segs)-1]
		next = last.seq + 1
		w, err := s.repairTail(last)
		if err != nil {
			return err
		}
		if w != nil {
			s.w = w
			s.pruneLocked()
			return nil
		}
	}
	s.pruneLocked()
	return s.createSegment(next)
}

// repairTail zeroes a torn or unauthenticated tail of a segment: everything
// after the last record that authenticates. Records reported durable were
// synced and authenticate, so they are kept. It returns a writer that
// continues the segment when the segment ended cleanly and has room.
func (s *Store) repairTail(sg segInfo) (*writer, error) {
	data, err := os.ReadFile(s.path(sg.name))
	if err != nil {
		return nil, &SegmentError{Op: "read", Name: sg.name, Err: err}
	}
	h, err := parseHeader(data)
	if err != nil {
		// A header torn by a crash right after creation: nothing in it was
		// ever reported durable.
		if len(data) < headerSize || allZero(data) {
			return nil, s.removeSegment(sg.name)
		}
		return nil, nil // not ours to repair; readers report it
	}
	keys, err := deriveKeys(s.master, h)
	if err != nil {
		return nil, err
	}
	goodEnd := int64(headerSize)
	n, bad := 0, false
	keys.scanFrames(data[headerSize:], func(f frameResult) bool {
		if f.err == nil {
			goodEnd = f.end
			n = int(f.idx) + 1
		} else {
			bad = true
		}
		return true
	})
	s.counts[sg.seq] = n
	f, err := os.OpenFile(s.path(sg.name), os.O_RDWR, 0)
	if err != nil {
		return nil, &SegmentError{Op: "repair", Name: sg.name, Err: err}
	}
	if !allZero(data[goodEnd:]) {
		_, err = f.WriteAt(make([]byte, int64(len(data))-goodEnd), goodEnd)
		if err == nil {
			err = fsutil.Datasync(f)
		}
		if err != nil {
			f.Close()
			return nil, &SegmentError{Op: "repair", Name: sg.name, Err: err}
		}
	}
	if bad || s.abandoned[sg.seq] || int64(len(data))-goodEnd < 512 {
		f.Close()
		return nil, nil
	}
	return &writer{f: f, name: sg.name, seq: sg.seq, keys: keys, idx: uint64(n), size: goodEnd}, nil
}

func (s *Store) removeSegment(name string) error {
	if err := os.Remove(s.path(name)); err != nil && !os.IsNotExist(err) {
		return &SegmentError{Op: "remove", Name: name, Err: err}
	}
	return fsutil.SyncDir(s.dir)
}

func (s *Store) rotate() error {
	seq := s.w.seq + 1
	if err := s.closeWriter(); err != nil {
		return fmt.Errorf("close mdt segment: %w", err)
	}
	return s.createSegment(seq)
}

func (s *Store) createSegment(seq uint64) error {
	var salt [8]byte
	if _, err := io.ReadFull(s.opts.Rand, salt[:]); err != nil {
		return fmt.Errorf("create mdt segment: %w", err)
	}
	h := newHeader(seq, salt)
	keys, err := deriveKeys(s.master, h)
	if err != nil {
		return err
	}
	name := segName(seq)
	if _, err := os.Lstat(s.path(name)); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return &SegmentError{Op: "create", Name: name, Err: cmp.Or(err, fs.ErrExist)}
	}
	// Written under a temporary name and renamed when whole: a kill
	// during the writing leaves a temporary file (removed at the next
	// open), never a segment without its header.
	tmp := segTempPrefix + name
	f, err := os.OpenFile(s.path(tmp), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return &SegmentError{Op: "create", Name: name, Err: err}
	}
	// Preallocate the whole segment with zeros (written, not fallocated),
	// so that an append overwrites blocks in place and its fdatasync need
	// not commit a size change: one device write per append. It also means
	// a segment's size says nothing about how many records it holds.
	_, err = f.Write(h[:])
	zeros := make([]byte, 64<<10)
	for left := s.opts.SegmentBytes - headerSize; err == nil && left > 0; {
		k := min(left, int64(len(zeros)))
		_, err = f.Write(zeros[:k])
		left -= k
	}
	if err == nil {
		err = fsutil.Datasync(f)
	}
	if err == nil {
		err = os.Rename(s.path(tmp), s.path(name))
	}
	if err == nil {
		err = fsutil.SyncDir(s.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(s.path(tmp))
		return &SegmentError{Op: "create", Name: name, Err: err}
	}
	s.w = &writer{f: f, name: name, seq: seq, keys: keys, size: headerSize}
	s.counts[seq] = 0
	return nil
}

// Prune applies the size cap and the retention age now.
func (s *Store) Prune() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.pruneLocked()
}

// pruneLocked deletes the oldest segments while the total exceeds MaxBytes,
// and segments last written before the retention age. The segment being
// written is never deleted.
func (s *Store) pruneLocked() error {
	segs, err := s.listSegments()
	if err != nil {
		return err
	}
	var total int64
	for _, sg := range segs {
		total += sg.size
	}
	cut := time.Time{}
	if s.opts.Retention > 0 {
		cut = s.opts.Now().Add(-s.opts.Retention)
	}
	removed := false
	for _, sg := range segs {
		if s.w != nil && sg.seq == s.w.seq {
			break
		}
		if total <= s.opts.MaxBytes && (cut.IsZero() || !sg.mtime.Before(cut)) {
			break // oldest first: stop at the first one to keep
		}
		if err := os.Remove(s.path(sg.name)); err != nil && !os.IsNotExist(err) {
			return &SegmentError{Op: "prune", Name: sg.name, Err: err}
		}
		delete(s.counts, sg.seq)
		total -= sg.size
		removed = true
	}
	if removed {
		return fsutil.SyncDir(s.dir)
	}
	return nil
}

// ScanReport summarises a read of the whole log.
type ScanReport struct {
	Segments int
	Bytes    int64 // bytes of all segment files (preallocated space included)
	Used     int64 // bytes up to the end of each segment's last record
	Records  int   // records that authenticated and decoded
	Failed   int   // records that did not (tampered, corrupt, undecodable)
	Torn     int   // segments ending in an incomplete record
	// Errors holds the first few problems (*RecordError, *SegmentError).
	Errors []error
	Oldest time.Time // earliest record time (zero if none)
	Newest time.Time // latest record time
}

const maxReportErrors = 16

func (r *ScanReport) addErr(err error) {
	if len(r.Errors) < maxReportErrors {
		r.Errors = append(r.Errors, err)
	}
}

// Records reads every record in log order, calling fn for each one that
// authenticates and decodes. Records that do not are counted and reported
// in the ScanReport, never passed to fn; a bad record does not hide those
// before it. fn returning an error stops the scan with that error.
func (s *Store) Records(fn func(Entry) error) (ScanReport, error) {
	return s.RecordsFrom(0, fn)
}

// RecordsFrom is Records starting at segment seq: earlier segments are
// neither read nor counted in the report. An upload resumes with it
// without decrypting what it already sent.
func (s *Store) RecordsFrom(seq uint64, fn func(Entry) error) (ScanReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rep ScanReport
	if s.closed {
		return rep, ErrClosed
	}
	segs, err := s.listSegments()
	if err != nil {
		return rep, err
	}
	var ferr error
	for _, sg := range segs {
		if sg.seq < seq {
			continue
		}
		rep.Segments++
		rep.Bytes += sg.size
		if ferr != nil {
			continue
		}
		if s.master == nil {
			rep.Failed++
			rep.addErr(&SegmentError{Op: "read", Name: sg.name, Err: ErrNoKey})
			continue
		}
		data, err := os.ReadFile(s.path(sg.name))
		if err != nil {
			rep.addErr(&SegmentError{Op: "read", Name: sg.name, Err: err})
			continue
		}
		if s.w != nil && sg.seq == s.w.seq {
			data = data[:min(int64(len(data)), s.w.size)]
		}
		good, bad, end, err := scanSegment(data, s.master, func(e Entry) {
			if ferr != nil {
				return
			}
			t := e.Record.Time
			if rep.Oldest.IsZero() || t.Before(rep.Oldest) {
				rep.Oldest = t
			}
			if t.After(rep.Newest) {
				rep.Newest = t
			}
			if fn != nil {
				ferr = fn(e)
			}
		})
		if err != nil {
			// A bad header: its records cannot be counted; at least one
			// is lost, and the segment is reported.
			rep.Failed++
			rep.addErr(&SegmentError{Op: "read", Name: sg.name, Err: err})
			continue
		}
		rep.Records += good
		rep.Used += end
		n := good
		for _, b := range bad {
			if errors.Is(b, ErrTorn) {
				rep.Torn++
				continue
			}
			n++
			rep.Failed++
			rep.addErr(b)
		}
		s.counts[sg.seq] = n
	}
	return rep, ferr
}

// Status is what `mdt status` shows.
type Status struct {
	Consent ConsentState
	// ConsentTime is when the state was set (zero for Unset).
	ConsentTime        time.Time
	ConsentClockSynced bool
	ConsentDamaged     bool
	Logging            bool
	ScanReport
}

// Status reads the log and reports its state.
func (s *Store) Status() (Status, error) {
	rep, err := s.Records(nil)
	c := s.ConsentState()
	return Status{
		Consent:            c.State,
		ConsentTime:        c.Time,
		ConsentClockSynced: c.ClockSynced,
		ConsentDamaged:     c.Damaged,
		Logging:            c.State == Consented,
		ScanReport:         rep,
	}, err
}

// DeleteUploaded deletes what the collector confirmed it received, for
// delete_after_upload: every segment before upTo.Segment, and that segment
// too when upTo is its last record and it is no longer being written. The
// log is append-only, so records of a partly uploaded segment stay until
// the rest of it is uploaded (or pruned). The segments' bytes are removed,
// not rewritten; their records are unreadable only with the key, so this is
// deletion, not crypto-erase (Clear is).
func (s *Store) DeleteUploaded(upTo Position) (Destroyed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d Destroyed
	if s.closed {
		return d, ErrClosed
	}
	segs, err := s.listSegments()
	if err != nil {
		return d, err
	}
	for _, sg := range segs {
		if sg.seq > upTo.Segment {
			break
		}
		if s.w != nil && sg.seq == s.w.seq {
			break
		}
		n, known := s.counts[sg.seq]
		if sg.seq == upTo.Segment && (!known || upTo.Index+1 < uint64(n)) {
			break
		}
		if err := os.Remove(s.path(sg.name)); err != nil && !os.IsNotExist(err) {
			return d, &SegmentError{Op: "delete", Name: sg.name, Err: err}
		}
		d.Segments++
		d.Bytes += sg.size
		if known {
			d.Records += n
		} else {
			d.Uncounted++
		}
		delete(s.counts, sg.seq)
	}
	if d.Segments > 0 {
		if err := fsutil.SyncDir(s.dir); err != nil {
			return d, fmt.Errorf("delete uploaded mdt segments: %w", err)
		}
	}
	return d, nil
}
