package mdtlog

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// The benchmarks compare the log with go.etcd.io/bbolt storing the same
// records with the same durability: bbolt with NoSync=false and one
// transaction per record, so each Put is on disk when Update returns, just
// as each Append is. bbolt is imported only here, never by the device
// binary.

var boltBucket = []byte("mdt")

type boltLog struct{ db *bolt.DB }

func openBolt(tb testing.TB, dir string) *boltLog {
	db, err := bolt.Open(filepath.Join(dir, "mdt.bolt"), 0o600, &bolt.Options{NoSync: false, Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(boltBucket); return err }); err != nil {
		tb.Fatal(err)
	}
	return &boltLog{db: db}
}

func (l *boltLog) append(seq uint64, plain []byte) error {
	return l.db.Update(func(tx *bolt.Tx) error {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		return tx.Bucket(boltBucket).Put(k[:], plain)
	})
}

func benchStore(b *testing.B, dir string) *Store {
	s := openTest(b, dir, Options{MaxBytes: 1 << 30, Retention: -1})
	consent(b, s)
	return s
}

// BenchmarkAppend measures durable appends per second of each store.
func BenchmarkAppend(b *testing.B) {
	b.Run("mdtlog", func(b *testing.B) {
		s := benchStore(b, b.TempDir())
		rec := testRecord(1)
		// Warm up: the first append creates (preallocates) the segment,
		// a cost shared by the thousands of records it will hold.
		if err := s.Append(rec); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if err := s.Append(rec); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
	})
	b.Run("bbolt", func(b *testing.B) {
		l := openBolt(b, b.TempDir())
		plain, _ := testRecord(1).MarshalCBOR()
		if err := l.append(0, plain); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if err := l.append(uint64(i+1), plain); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
	})
}

// BenchmarkAppendRatio runs both stores side by side in the same run
// (alternating batches of durable appends, so that disk conditions are the
// same for both) and reports how many times faster the log appends. A third
// runner gives the floor of this disk: the same number of bytes written in
// place into a preallocated file, one fdatasync each, no encryption and no
// framing. No store that reports each append durable can beat it; bbolt
// pays two fdatasyncs per transaction (pages, then meta page).
func BenchmarkAppendRatio(b *testing.B) { appendRatio(b, b.TempDir) }

// BenchmarkAppendRatioRAM runs the same on tmpfs (/dev/shm), where a flush
// costs nothing and nothing is durable: what is left is what each store
// costs the CPU and the kernel per append (the log encrypts, bbolt copies
// pages). It brackets the medium from the other side: the disk above is
// bound by its flushes, this by the CPU; flash without a volatile cache is
// in between. Skipped where /dev/shm is not tmpfs.
func BenchmarkAppendRatioRAM(b *testing.B) {
	dir, err := ramDir(b)
	if err != nil {
		b.Skipf("no tmpfs: %v", err)
	}
	appendRatio(b, dir)
}

func appendRatio(b *testing.B, dir func() string) {
	s := benchStore(b, dir())
	l := openBolt(b, dir())
	rec := testRecord(1)
	plain, _ := rec.MarshalCBOR()
	floor := openFloor(b, dir(), len(plain)+FrameOverhead)
	const batch = 20
	var tLog, tBolt, tFloor time.Duration
	seq := uint64(0)
	// Warm up all three: the log's first append preallocates its segment.
	if err := s.Append(rec); err != nil {
		b.Fatal(err)
	}
	if err := l.append(seq, plain); err != nil {
		b.Fatal(err)
	}
	if err := floor.append(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for range batch {
			if err := s.Append(rec); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		for range batch {
			seq++
			if err := l.append(seq, plain); err != nil {
				b.Fatal(err)
			}
		}
		t2 := time.Now()
		for range batch {
			if err := floor.append(); err != nil {
				b.Fatal(err)
			}
		}
		tLog += t1.Sub(t0)
		tBolt += t2.Sub(t1)
		tFloor += time.Since(t2)
	}
	n := float64(b.N * batch)
	b.ReportMetric(n/tLog.Seconds(), "mdtlog-appends/s")
	b.ReportMetric(n/tBolt.Seconds(), "bbolt-appends/s")
	b.ReportMetric(n/tFloor.Seconds(), "floor-appends/s")
	b.ReportMetric(tBolt.Seconds()/tLog.Seconds(), "x-bbolt")
	b.ReportMetric(tFloor.Seconds()/tLog.Seconds(), "of-floor")
}

// floorLog writes fixed-size frames in place into a zero-filled file and
// fdatasyncs each: the least work one durable append can cost.
type floorLog struct {
	f     *os.File
	frame []byte
	off   int64
}

func openFloor(b *testing.B, dir string, frame int) *floorLog {
	f, err := os.OpenFile(filepath.Join(dir, "floor"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	if _, err := f.Write(make([]byte, 64<<20)); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	fr := make([]byte, frame)
	rand.Read(fr)
	return &floorLog{f: f, frame: fr}
}

func (l *floorLog) append() error {
	if l.off+int64(len(l.frame)) > 64<<20 {
		l.off = 0
	}
	if _, err := l.f.WriteAt(l.frame, l.off); err != nil {
		return err
	}
	l.off += int64(len(l.frame))
	return fsutil.Datasync(l.f)
}

// BenchmarkDeviceWrites counts what durable appends cost the block device
// under the temporary directory, as the kernel accounts it: write
// requests, bytes written (file data, file system journal and metadata)
// and cache flushes per append, for the log and for bbolt, alternating in
// batches. On this benchmark's VM disk (volatile write cache) the flushes
// set the pace, and BenchmarkAppendRatio shows it; on flash without one
// (SD cards, eMMC, raw NAND) the writes do, and the bytes are what wears
// the flash. Other processes writing to the same device at the same time
// add to both stores alike; the figures are medians over runs. Skipped
// where the directory has no block device to read (tmpfs, overlayfs).
func BenchmarkDeviceWrites(b *testing.B) {
	read, err := blockDevStat(b.TempDir())
	if err != nil {
		b.Skipf("no block device counters: %v", err)
	}
	s := benchStore(b, b.TempDir())
	l := openBolt(b, b.TempDir())
	rec := testRecord(1)
	plain, _ := rec.MarshalCBOR()
	if err := s.Append(rec); err != nil {
		b.Fatal(err)
	}
	if err := l.append(0, plain); err != nil {
		b.Fatal(err)
	}
	const batch = 50
	var logC, boltC devCounters
	add := func(sum *devCounters, from, to devCounters) {
		sum.writes += to.writes - from.writes
		sum.bytes += to.bytes - from.bytes
		sum.flushes += to.flushes - from.flushes
	}
	seq := uint64(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c0, err := read()
		if err != nil {
			b.Fatal(err)
		}
		for range batch {
			if err := s.Append(rec); err != nil {
				b.Fatal(err)
			}
		}
		c1, err := read()
		if err != nil {
			b.Fatal(err)
		}
		for range batch {
			seq++
			if err := l.append(seq, plain); err != nil {
				b.Fatal(err)
			}
		}
		c2, err := read()
		if err != nil {
			b.Fatal(err)
		}
		add(&logC, c0, c1)
		add(&boltC, c1, c2)
	}
	n := float64(b.N * batch)
	b.ReportMetric(float64(logC.bytes)/n, "mdtlog-dev-B/append")
	b.ReportMetric(float64(boltC.bytes)/n, "bbolt-dev-B/append")
	b.ReportMetric(float64(logC.writes)/n, "mdtlog-dev-writes/append")
	b.ReportMetric(float64(boltC.writes)/n, "bbolt-dev-writes/append")
	b.ReportMetric(float64(logC.flushes)/n, "mdtlog-dev-flushes/append")
	b.ReportMetric(float64(boltC.flushes)/n, "bbolt-dev-flushes/append")
	if logC.bytes > 0 && logC.writes > 0 {
		b.ReportMetric(float64(boltC.bytes)/float64(logC.bytes), "x-bbolt-dev-bytes")
		b.ReportMetric(float64(boltC.writes)/float64(logC.writes), "x-bbolt-dev-writes")
	}
}

// BenchmarkDiskPerRecord reports bytes on disk per record beyond the
// record's CBOR encoding (framing, tag, amortised segment header), and the
// total bytes per record of each store.
func BenchmarkDiskPerRecord(b *testing.B) {
	const n = 2000
	var over, logPer, boltPer float64
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		s := openTest(b, dir, Options{MaxBytes: 1 << 30, Retention: -1})
		consent(b, s)
		l := openBolt(b, b.TempDir())
		var plainBytes int64
		batch := make([]Record, 0, 100)
		for j := range n {
			r := testRecord(j)
			p, _ := r.MarshalCBOR()
			plainBytes += int64(len(p))
			batch = append(batch, r)
			if len(batch) == cap(batch) {
				if err := s.AppendBatch(batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		err := l.db.Update(func(tx *bolt.Tx) error {
			for j := range n {
				p, _ := testRecord(j).MarshalCBOR()
				var k [8]byte
				binary.BigEndian.PutUint64(k[:], uint64(j))
				if err := tx.Bucket(boltBucket).Put(k[:], p); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		rep, err := s.Records(nil)
		if err != nil || rep.Records != n {
			b.Fatalf("read back %d: %v", rep.Records, err)
		}
		fi, err := os.Stat(l.db.Path())
		if err != nil {
			b.Fatal(err)
		}
		// Used: the active segment is preallocated with zeros up to
		// SegmentBytes; those bytes are reserved, not per-record cost.
		over = float64(rep.Used-plainBytes) / n
		logPer = float64(rep.Used) / n
		boltPer = float64(fi.Size()) / n
	}
	b.ReportMetric(over, "B/record-overhead")
	b.ReportMetric(logPer, "mdtlog-B/record")
	b.ReportMetric(boltPer, "bbolt-B/record")
}

// BenchmarkClear measures crypto-erase of a log of 1 MB and 64 MB. The
// segments are written directly (their contents do not matter to Clear,
// which never reads them), eight of them of the size the Store uses for
// that cap, and synced, as a log on disk is.
func BenchmarkClear(b *testing.B) {
	for _, mb := range []int{1, 64} {
		b.Run(fmt.Sprintf("%dMB", mb), func(b *testing.B) {
			dir := b.TempDir()
			s := openTest(b, dir, Options{MaxBytes: int64(mb) << 20, Retention: -1})
			consent(b, s)
			chunk := make([]byte, s.opts.SegmentBytes)
			rand.Read(chunk)
			var total time.Duration
			for i := 0; i < b.N; i++ {
				// Setup (not timed by the metric): the segment being
				// written plus seven full ones.
				if err := s.Append(testRecord(i)); err != nil {
					b.Fatal(err)
				}
				for j := range 7 {
					p := filepath.Join(Dir(dir), segName(uint64(1000000+j)))
					f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
					if err != nil {
						b.Fatal(err)
					}
					f.Write(chunk)
					f.Sync()
					f.Close()
				}
				fsutil.SyncDir(Dir(dir))
				t0 := time.Now()
				d, err := s.Clear()
				total += time.Since(t0)
				if err != nil || d.Segments != 8 || d.Bytes < int64(mb)<<20 {
					b.Fatalf("clear: %+v %v", d, err)
				}
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/clear")
		})
	}
}
