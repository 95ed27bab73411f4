package collector

import (
	"bufio"
	"bytes"
	"context"
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

var bucketDevices = []byte("devices")

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
	db  *bolt.DB
	dir string
	mu  sync.Mutex // orders appends to the logs
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
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("collector: open store %s: %w", path, err)
	}
	return &boltStore{db: db, dir: dir}, nil
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

func (s *boltStore) RecordDevice(_ context.Context, id string, fn func(*DeviceState, *HistoryBatch) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		ds, err := getDevice(b, id)
		if err != nil {
			return err
		}
		var h HistoryBatch
		if err := fn(&ds, &h); err != nil {
			return err
		}
		v, err := json.Marshal(&ds)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(id), v); err != nil {
			return err
		}
		return appendHistoryBolt(tx, id, &h)
	})
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

func (s *boltStore) Watched(context.Context) ([]Liveness, error) {
	var out []Liveness
	err := s.db.View(func(tx *bolt.Tx) error {
		reg := tx.Bucket(bucketRegDevices)
		return tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			var ds DeviceState
			if err := json.Unmarshal(v, &ds); err != nil {
				return fmt.Errorf("collector: store: device %s: corrupt record: %w", k, err)
			}
			if ds.LastSeen.IsZero() || ds.Overdue {
				return nil
			}
			rv := reg.Get(k)
			if rv == nil {
				return nil // not registered (any more)
			}
			var r deviceRecord
			if err := json.Unmarshal(rv, &r); err != nil {
				return fmt.Errorf("collector: store: registry: device %s: corrupt record: %w", k, err)
			}
			out = append(out, Liveness{ID: string(k), LastSeen: ds.LastSeen, LastHeartbeat: ds.LastHeartbeat, HeartbeatTimeout: r.HeartbeatTimeout})
			return nil
		})
	})
	return out, err
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
