package collector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// ErrStoreLocked is returned by OpenBolt when another process has the
// file open (bbolt takes an exclusive lock).
var ErrStoreLocked = errors.New("store file in use by another process")

var (
	bucketDevices = []byte("devices")
	// bucketDue indexes devices by NextDue: key the time (unix
	// nanoseconds, big-endian) then the id, no value. The overdue check
	// reads it from the start up to now.
	bucketDue = []byte("due")
)

func dueKey(t time.Time, id string) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(id)), uint64(t.UnixNano()))
	return append(k, id...)
}

// boltStore is the embedded store: device state in one bbolt file (a
// B+tree with copy-on-write pages; each UpdateDevice is one write
// transaction, fsynced at commit, that rewrites only the pages on that
// device's path), and the alarm and audit logs as JSON lines appended to
// alarms.log and audit.log next to it, as before.
//
// bbolt allows one writer at a time, so an update of a device is atomic
// against every other update; one process holds the file (a second one
// fails with ErrStoreLocked): for several instances use PostgreSQL.
type boltStore struct {
	db    *bolt.DB
	dir   string
	mu    sync.Mutex  // orders appends to the logs
	gen   registryGen // the registry's changes (this process is the file's one writer)
	batch groupCommit // RecordDevice's
}

// OpenBolt opens (creating) the embedded store at path; its alarm and
// audit logs go to the same directory.
func OpenBolt(path string) (Store, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("collector: store dir: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("collector: open store %s: %w", path, ErrStoreLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("collector: open store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range append([][]byte{bucketDevices, bucketHistory, bucketHistoryExpiry}, registryBuckets...) {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketDue) == nil {
			return boltIndexDue(tx)
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("collector: open store %s: %w", path, err)
	}
	s := &boltStore{db: db, dir: dir}
	s.batch = groupCommit{run: s.recordBatch, maxBatch: boltMaxBatch, maxRunning: 1}
	return s, nil
}

// boltIndexDue makes the due index of a store from before it existed,
// once: a device heard from and not overdue is due after its registered
// timeout, or DefaultHeartbeatTimeout, until its next message sets the
// collector's own (as PostgreSQL's migration 0004 does).
func boltIndexDue(tx *bolt.Tx) error {
	due, err := tx.CreateBucket(bucketDue)
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketDevices)
	type fix struct {
		id string
		v  []byte
	}
	var fixes []fix
	err = b.ForEach(func(k, v []byte) error {
		ds, err := getDevice(b, string(k))
		if err != nil {
			return err
		}
		if ds.LastSeen.IsZero() || ds.Overdue {
			return nil
		}
		if ds.NextDue.IsZero() {
			timeout := DefaultHeartbeatTimeout
			if d, err := boltDevice(tx, string(k)); err == nil && d != nil && d.HeartbeatTimeout > 0 {
				timeout = d.HeartbeatTimeout
			}
			last := ds.LastHeartbeat
			if last.IsZero() {
				last = ds.LastSeen
			}
			ds.NextDue = last.Add(timeout)
			nv, err := json.Marshal(&ds)
			if err != nil {
				return err
			}
			fixes = append(fixes, fix{string(k), nv})
		}
		return due.Put(dueKey(ds.NextDue, string(k)), nil)
	})
	if err != nil {
		return err
	}
	for _, f := range fixes {
		if err := b.Put([]byte(f.id), f.v); err != nil {
			return err
		}
	}
	return nil
}

func getDevice(b *bolt.Bucket, id string) (DeviceState, error) {
	var ds DeviceState
	if v := b.Get([]byte(id)); v != nil {
		if err := json.Unmarshal(v, &ds); err != nil {
			return ds, fmt.Errorf("collector: store: device %s: corrupt record: %w", id, err)
		}
		ds.normalize()
	}
	return ds, nil
}

func (s *boltStore) Device(_ context.Context, id string) (DeviceState, error) {
	var ds DeviceState
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		ds, err = getDevice(tx.Bucket(bucketDevices), id)
		return err
	})
	return ds, err
}

func (s *boltStore) UpdateDevice(ctx context.Context, id string, fn func(*DeviceState) error) error {
	return s.RecordDevice(ctx, id, func(ds *DeviceState, _ *HistoryBatch) error { return fn(ds) })
}

// RecordDevice runs in one bbolt transaction with the calls waiting at
// the same moment (groupcommit.go): one fsync and one rewrite of the
// pages they share for all of them. bbolt has one writer, so one batch
// runs at a time.
func (s *boltStore) RecordDevice(_ context.Context, id string, fn func(*DeviceState, *HistoryBatch) error) error {
	return s.batch.do(id, fn)
}

// boltMaxBatch bounds the calls in one transaction.
const boltMaxBatch = 64

func (s *boltStore) recordBatch(calls []*recordCall) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		gen := s.gen.load()
		for _, c := range calls {
			ds, err := getDevice(b, c.id) // with what an earlier call of this batch wrote
			if err != nil {
				c.tell(err) // this device's record alone is unreadable
				continue
			}
			ds.registryGen = gen
			var h HistoryBatch
			oldDue := ds.NextDue
			if err := c.call(&ds, &h); err != nil {
				c.tell(err)
				continue
			}
			v, err := json.Marshal(&ds)
			if err != nil {
				c.tell(err)
				continue
			}
			// A failure from here is the file's: the batch fails whole.
			if err := moveDue(tx, c.id, oldDue, ds.NextDue); err != nil {
				return err
			}
			if err := b.Put([]byte(c.id), v); err != nil {
				return err
			}
			if err := appendHistoryBolt(tx, c.id, &h); err != nil {
				return err
			}
		}
		return nil
	})
	tellAll(calls, err) // those whose fn failed were told at once
}

// moveDue keeps the due index in step with a device's NextDue.
func moveDue(tx *bolt.Tx, id string, from, to time.Time) error {
	if from.Equal(to) {
		return nil
	}
	due := tx.Bucket(bucketDue)
	if !from.IsZero() {
		if err := due.Delete(dueKey(from, id)); err != nil {
			return err
		}
	}
	if to.IsZero() {
		return nil
	}
	return due.Put(dueKey(to, id), nil)
}

func (s *boltStore) scan(fn func(id string, ds *DeviceState)) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			var ds DeviceState
			if err := json.Unmarshal(v, &ds); err != nil {
				return fmt.Errorf("collector: store: device %s: corrupt record: %w", k, err)
			}
			fn(string(k), &ds)
			return nil
		})
	})
}

// ClaimOverdue walks the due index from its start to now. The alarms are
// appended to the log before the flags commit, so a crash between the two
// repeats an alarm rather than losing one. One process holds the file,
// so nobody else claims at once.
func (s *boltStore) ClaimOverdue(_ context.Context, now, since time.Time, limit int, alarm func(string, time.Duration) Alarm) ([]Alarm, error) {
	var out []Alarm
	err := s.db.Update(func(tx *bolt.Tx) error {
		out = nil
		b, reg := tx.Bucket(bucketDevices), tx.Bucket(bucketRegDevices)
		end := uint64(now.UnixNano())
		type claim struct {
			id string
			ds DeviceState
		}
		var claims []claim
		var stale [][]byte
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil && len(claims) < limit; k, _ = c.Next() {
			if len(k) < 8 || binary.BigEndian.Uint64(k) >= end {
				break
			}
			id := string(k[8:])
			ds, err := getDevice(b, id)
			if err != nil {
				return err
			}
			if !ds.NextDue.Equal(time.Unix(0, int64(binary.BigEndian.Uint64(k)))) {
				stale = append(stale, append([]byte(nil), k...)) // left by a crash of an older build
				continue
			}
			switch quiet, over := ds.overdueFor(now, since); {
			case reg.Get([]byte(id)) == nil:
				claims = append(claims, claim{id, ds}) // not registered: cleared, no alarm
			case over:
				claims = append(claims, claim{id, ds})
				out = append(out, alarm(id, quiet))
				claims[len(claims)-1].ds.Overdue = true
			}
		}
		for _, k := range stale {
			if err := tx.Bucket(bucketDue).Delete(k); err != nil {
				return err
			}
		}
		for _, a := range out {
			// As AppendAlarm does, but in this transaction: a second
			// Update from inside this one would wait for it for ever.
			if err := appendHistoryBolt(tx, a.Device, alarmRecord(a)); err != nil {
				return err
			}
			if err := s.appendLine(AlarmLog, a); err != nil {
				return err
			}
		}
		for _, cl := range claims {
			if err := moveDue(tx, cl.id, cl.ds.NextDue, time.Time{}); err != nil {
				return err
			}
			cl.ds.NextDue = time.Time{}
			v, err := json.Marshal(&cl.ds)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(cl.id), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("collector: store: claim overdue devices: %w", err)
	}
	return out, nil
}

func (s *boltStore) CountOverdue(context.Context) (int, error) {
	n := 0
	err := s.scan(func(_ string, ds *DeviceState) {
		if ds.Overdue {
			n++
		}
	})
	return n, err
}

func (s *boltStore) appendLine(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return fsutil.AppendLine(filepath.Join(s.dir, name), b, 0o600)
}

func (s *boltStore) AppendAlarm(_ context.Context, a Alarm) error {
	// The history record first: an alarm in the log is then in the
	// history too, unless the store failed (and this says so).
	if err := s.db.Update(func(tx *bolt.Tx) error { return appendHistoryBolt(tx, a.Device, alarmRecord(a)) }); err != nil {
		return fmt.Errorf("collector: store: history of an alarm: %w", err)
	}
	return s.appendLine(AlarmLog, a)
}

func (s *boltStore) AppendAudit(_ context.Context, r AuditRecord) error {
	return s.appendLine(AuditLog, r)
}

// readLines decodes a JSON-lines log, skipping a line a power cut left
// incomplete.
func readLines[T any](path string, keep func(*T) bool) ([]T, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v T
		if json.Unmarshal(sc.Bytes(), &v) != nil {
			continue
		}
		if keep(&v) {
			out = append(out, v)
		}
	}
	return out, sc.Err()
}

func (s *boltStore) Alarms(_ context.Context, device string) ([]Alarm, error) {
	return readLines(filepath.Join(s.dir, AlarmLog), func(a *Alarm) bool { return device == "" || a.Device == device })
}

func (s *boltStore) Audit(_ context.Context, scs string) ([]AuditRecord, error) {
	return readLines(filepath.Join(s.dir, AuditLog), func(r *AuditRecord) bool { return scs == "" || r.SCS == scs })
}

func (s *boltStore) Close() error { return s.db.Close() }
