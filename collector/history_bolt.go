package collector

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The embedded store's history: a bucket per device under "history"
// holding its head (the last n and the heartbeat summary), its records
// by n ("r": 8-byte n -> JSON) and a time index ("t": time, n -> nil);
// "history_expiry" indexes every record by kind and time (kind, 0, time,
// n, device -> nil), so retention finds the oldest of a kind at once.
// Times are microseconds since 1970, the sign bit flipped so that keys
// sort as times do.
var (
	bucketHistory       = []byte("history")
	bucketHistoryExpiry = []byte("history_expiry")
	histHeadKey         = []byte("head")
	histRecords         = []byte("r")
	histTimes           = []byte("t")
)

type boltHistHead struct {
	LastN      uint64           `json:"last_n"`
	Heartbeats HeartbeatSummary `json:"heartbeats"`
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func timeKey(t time.Time) []byte { return u64(uint64(t.UnixMicro()) ^ 1<<63) }

func expiryKey(kind string, at time.Time, n uint64, device string) []byte {
	k := append([]byte(kind), 0)
	k = append(k, timeKey(at)...)
	k = append(k, u64(n)...)
	return append(k, device...)
}

// appendHistoryBolt stores a batch in the device's history within tx.
func appendHistoryBolt(tx *bolt.Tx, device string, h *HistoryBatch) error {
	if h.empty() {
		return nil
	}
	db, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(device))
	if err != nil {
		return err
	}
	var head boltHistHead
	if v := db.Get(histHeadKey); v != nil {
		if err := json.Unmarshal(v, &head); err != nil {
			return fmt.Errorf("history of %s: corrupt head: %w", device, err)
		}
	}
	head.Heartbeats.merge(h.beats)
	if len(h.records) > 0 {
		rb, err := db.CreateBucketIfNotExists(histRecords)
		if err != nil {
			return err
		}
		tb, err := db.CreateBucketIfNotExists(histTimes)
		if err != nil {
			return err
		}
		exp := tx.Bucket(bucketHistoryExpiry)
		for _, r := range h.records {
			head.LastN++
			r.N, r.Device = head.LastN, device
			v, err := json.Marshal(&r)
			if err != nil {
				return err
			}
			if err := rb.Put(u64(r.N), v); err != nil {
				return err
			}
			if err := tb.Put(append(timeKey(r.At), u64(r.N)...), nil); err != nil {
				return err
			}
			if err := exp.Put(expiryKey(r.Kind, r.At, r.N, device), nil); err != nil {
				return err
			}
		}
	}
	v, err := json.Marshal(&head)
	if err != nil {
		return err
	}
	return db.Put(histHeadKey, v)
}

func (s *boltStore) History(_ context.Context, device string, q HistoryQuery) (HistoryPage, error) {
	if err := q.prepare(); err != nil {
		return HistoryPage{}, err
	}
	scan := newHistoryScan(&q)
	err := s.db.View(func(tx *bolt.Tx) error {
		db := tx.Bucket(bucketHistory).Bucket([]byte(device))
		if db == nil {
			return nil
		}
		var head boltHistHead
		if v := db.Get(histHeadKey); v != nil {
			if err := json.Unmarshal(v, &head); err != nil {
				return fmt.Errorf("corrupt head: %w", err)
			}
		}
		scan.page.Heartbeats = head.Heartbeats
		rb, tb := db.Bucket(histRecords), db.Bucket(histTimes)
		if rb == nil || tb == nil {
			return nil
		}
		lo, _ := q.after()
		hi := head.LastN
		if !q.Since.IsZero() {
			k, _ := tb.Cursor().Seek(timeKey(q.Since))
			if k == nil {
				return nil // nothing received since
			}
			lo = max(lo, binary.BigEndian.Uint64(k[8:])-1)
		}
		if !q.Until.IsZero() {
			c := tb.Cursor()
			k, _ := c.Seek(timeKey(q.Until))
			if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
			if k == nil {
				return nil // nothing received before
			}
			hi = min(hi, binary.BigEndian.Uint64(k[8:]))
		}
		c := rb.Cursor()
		for k, v := c.Seek(u64(lo + 1)); k != nil && binary.BigEndian.Uint64(k) <= hi; k, v = c.Next() {
			var r HistoryRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %d: corrupt: %w", binary.BigEndian.Uint64(k), err)
			}
			if !scan.offer(r) {
				break
			}
		}
		return nil
	})
	if err != nil {
		return HistoryPage{}, fmt.Errorf("collector: store: history of %s: %w", device, err)
	}
	return scan.page, nil
}

func (s *boltStore) PruneHistory(_ context.Context, kind string, before time.Time, max int) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		exp, hist := tx.Bucket(bucketHistoryExpiry), tx.Bucket(bucketHistory)
		prefix := append([]byte(kind), 0)
		limit := append(append([]byte(nil), prefix...), timeKey(before)...)
		var old [][]byte
		c := exp.Cursor()
		for k, _ := c.Seek(prefix); k != nil && len(old) < max && bytes.HasPrefix(k, prefix) && bytes.Compare(k, limit) < 0; k, _ = c.Next() {
			old = append(old, append([]byte(nil), k...))
		}
		for _, k := range old {
			rest := k[len(prefix):]
			if len(rest) < 16 {
				return fmt.Errorf("corrupt expiry key %x", k)
			}
			at, num, device := rest[:8], rest[8:16], rest[16:]
			if db := hist.Bucket(device); db != nil {
				if rb := db.Bucket(histRecords); rb != nil {
					if err := rb.Delete(num); err != nil {
						return err
					}
				}
				if tb := db.Bucket(histTimes); tb != nil {
					if err := tb.Delete(append(append([]byte(nil), at...), num...)); err != nil {
						return err
					}
				}
			}
			if err := exp.Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("collector: store: prune %s history: %w", kind, err)
	}
	return n, nil
}
