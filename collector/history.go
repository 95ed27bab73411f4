package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kinds of history record.
const (
	HistoryEvent   = "event"   // a verified event token
	HistoryBinding = "binding" // a verified binding attestation (posted, or answering a nonce)
	HistoryAlarm   = "alarm"   // an alarm raised for the device
	HistoryGap     = "gap"     // sequence numbers that never arrived, or a period overdue
)

// HistoryKinds lists the kinds of history record, in the order retention
// runs through them.
var HistoryKinds = []string{HistoryEvent, HistoryBinding, HistoryAlarm, HistoryGap}

// Page sizes of History.
const (
	HistoryDefaultLimit = 100
	HistoryMaxLimit     = 500 // the hard maximum: a larger Limit is cut to it
	// historyScanMax bounds the records one History call looks at, so a
	// page filtered to a rare kind costs a bounded read; a short page then
	// comes with a cursor to go on from.
	historyScanMax = 4 * HistoryMaxLimit
)

// HistoryRecord is one entry of a device's history. Heartbeats are not
// recorded one by one: see HeartbeatSummary.
type HistoryRecord struct {
	// N numbers the device's records in the order they were stored (1,
	// 2, ...; retention leaves holes). Assigned by the store.
	N      uint64 `json:"n"`
	Device string `json:"device"`
	Kind   string `json:"kind"`
	// Seq is the token's sequence number (0: none, as for an alarm).
	Seq uint64 `json:"seq,omitempty"`
	// SignedAt is the time the device signed (its iat; zero: none). It
	// is the device's clock: see clock_synced in Detail.
	SignedAt time.Time `json:"signed_at,omitzero"`
	// At is when the collector received or raised it (its clock, UTC,
	// microseconds).
	At time.Time `json:"at"`
	// Detail is a JSON object: for an event {event, boot_count,
	// clock_synced}; a binding {result: ok|changed, by: nonce|post, ...};
	// an alarm {type, text}; a gap {type: seq, after_seq, before_seq,
	// missing, restart, unanswered_challenges} or {type: overdue, from,
	// until} (unix seconds).
	Detail json.RawMessage `json:"detail,omitempty"`
}

// HeartbeatSummary is a device's heartbeats: how many were verified, the
// first and the last (sequence number and time received). Gaps between
// them are history records of kind gap.
type HeartbeatSummary struct {
	Count    uint64    `json:"count"`
	FirstSeq uint64    `json:"first_seq,omitempty"`
	FirstAt  time.Time `json:"first_at,omitzero"`
	LastSeq  uint64    `json:"last_seq,omitempty"`
	LastAt   time.Time `json:"last_at,omitzero"`
}

func (h *HeartbeatSummary) merge(b HeartbeatSummary) {
	if b.Count == 0 {
		return
	}
	if h.Count == 0 {
		h.FirstSeq, h.FirstAt = b.FirstSeq, b.FirstAt
	}
	h.Count += b.Count
	h.LastSeq, h.LastAt = b.LastSeq, b.LastAt
}

// HistoryBatch is what one device transaction adds to the history (see
// Store.RecordDevice): records, and heartbeats for the summary.
type HistoryBatch struct {
	records []HistoryRecord
	beats   HeartbeatSummary
}

// histTime is a time as every store keeps it: UTC, microseconds.
func histTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// Add appends a record; detail is encoded as a JSON object (nil: {}).
func (b *HistoryBatch) Add(kind string, seq uint64, signedAt, at time.Time, detail map[string]any) {
	d := []byte("{}")
	if len(detail) > 0 {
		if j, err := json.Marshal(detail); err == nil {
			d = j
		}
	}
	b.records = append(b.records, HistoryRecord{Kind: kind, Seq: seq, SignedAt: histTime(signedAt), At: histTime(at), Detail: d})
}

// Heartbeat counts a verified heartbeat into the summary.
func (b *HistoryBatch) Heartbeat(seq uint64, at time.Time) {
	b.beats.merge(HeartbeatSummary{Count: 1, FirstSeq: seq, FirstAt: histTime(at), LastSeq: seq, LastAt: histTime(at)})
}

func (b *HistoryBatch) empty() bool { return b == nil || (len(b.records) == 0 && b.beats.Count == 0) }

// alarmRecord is the history record of an alarm.
func alarmRecord(a Alarm) *HistoryBatch {
	b := &HistoryBatch{}
	if a.Device == "" {
		return b // not a device's: no history to put it in
	}
	b.Add(HistoryAlarm, 0, time.Time{}, a.Time, map[string]any{"type": a.Kind, "text": a.Detail})
	return b
}

// HistoryQuery selects a page of a device's history.
type HistoryQuery struct {
	Kinds []string // only these kinds (none: all)
	// Since (inclusive) and Until (exclusive) bound the time received;
	// zero: open.
	Since, Until time.Time
	// After is the Next of the previous page: this page starts after it.
	// Give the same Kinds, Since and Until again.
	After string
	Limit int // records at most: 0 is HistoryDefaultLimit; cut to HistoryMaxLimit
}

// HistoryPage is a page of records, oldest first.
type HistoryPage struct {
	Records []HistoryRecord `json:"records"`
	// Next continues after this page; "" when there is nothing more. A
	// page may be short (even empty) and still have a Next: the read
	// looked at as many records as one call may.
	Next       string           `json:"next,omitempty"`
	Heartbeats HeartbeatSummary `json:"heartbeats"`
}

// ErrBadCursor is a HistoryQuery.After that no page gave.
var ErrBadCursor = errors.New("bad history cursor")

// A history bound is a time in years 1 to 9999: what RFC 3339 writes,
// PostgreSQL's timestamptz holds and the embedded store's microsecond
// keys order. Outside it PostgreSQL refused the query as a store error
// and the keys wrapped around.
var (
	historyTimeMin = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	historyTimeMax = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Check refuses a query that makes no sense: an unknown kind, a bad
// cursor, a bound outside years 1 to 9999, Until not after Since, a
// negative limit.
func (q *HistoryQuery) Check() error {
	for _, k := range q.Kinds {
		if !slices.Contains(HistoryKinds, k) {
			return fmt.Errorf("unknown history kind %q (want %s)", k, strings.Join(HistoryKinds, ", "))
		}
	}
	for _, b := range []struct {
		name string
		t    time.Time
	}{{"since", q.Since}, {"until", q.Until}} {
		if !b.t.IsZero() && (b.t.Before(historyTimeMin) || !b.t.Before(historyTimeMax)) {
			return fmt.Errorf("%s must be in years 1 to 9999", b.name)
		}
	}
	if _, err := q.after(); err != nil {
		return err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return errors.New("until must be after since")
	}
	if q.Limit < 0 {
		return errors.New("limit must not be negative")
	}
	return nil
}

// prepare checks the query and puts its times at the stores' resolution.
func (q *HistoryQuery) prepare() error {
	if err := q.Check(); err != nil {
		return err
	}
	q.Since, q.Until = histTime(q.Since), histTime(q.Until)
	return nil
}

// The cursor is "h" and the last n in base 36: opaque to readers, and
// not mistaken for a time or a count.
func historyCursor(n uint64) string { return "h" + strconv.FormatUint(n, 36) }

func (q *HistoryQuery) after() (uint64, error) {
	if q.After == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(q.After, "h"), 36, 63)
	if err != nil || !strings.HasPrefix(q.After, "h") {
		return 0, ErrBadCursor
	}
	return n, nil
}

func (q *HistoryQuery) limit() int {
	switch {
	case q.Limit <= 0:
		return HistoryDefaultLimit
	case q.Limit > HistoryMaxLimit:
		return HistoryMaxLimit
	}
	return q.Limit
}

func (q *HistoryQuery) matches(r *HistoryRecord) bool {
	return (len(q.Kinds) == 0 || slices.Contains(q.Kinds, r.Kind)) &&
		(q.Since.IsZero() || !r.At.Before(q.Since)) &&
		(q.Until.IsZero() || r.At.Before(q.Until))
}

// historyScan builds a page from a device's records offered in order of
// n, both backends alike.
type historyScan struct {
	q       *HistoryQuery
	limit   int
	scanned int
	page    HistoryPage
}

func newHistoryScan(q *HistoryQuery) *historyScan {
	return &historyScan{q: q, limit: q.limit(), page: HistoryPage{Records: []HistoryRecord{}}}
}

// offer takes the next record; it reports whether to offer more. When
// the scan stops early, page.Next says where to go on.
func (p *historyScan) offer(r HistoryRecord) bool {
	p.scanned++
	if p.q.matches(&r) {
		if len(p.page.Records) == p.limit {
			p.page.Next = historyCursor(p.page.Records[p.limit-1].N)
			return false
		}
		p.page.Records = append(p.page.Records, r)
	}
	if p.scanned >= historyScanMax {
		p.page.Next = historyCursor(r.N)
		return false
	}
	return true
}

// Retention: how often serve prunes, and how much one pass removes at
// most (in batches, each its own transaction), so a pass never holds
// the store for long; what is left goes in the next pass.
const (
	historyPruneEvery   = time.Minute
	historyPruneBatch   = 1000
	historyPruneBatches = 20 // per kind and pass
)

// pruneHistory removes the records older than their kind's retention
// (Config.HistoryKeep) as of now, at most historyPruneBatches batches of
// each kind. It returns what it removed, by kind.
func (s *Server) pruneHistory(now time.Time) map[string]int {
	removed := map[string]int{}
	for _, kind := range HistoryKinds {
		keep := s.cfg.HistoryKeep[kind]
		if keep <= 0 {
			continue // forever
		}
		before := now.Add(-keep)
		for range historyPruneBatches {
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			n, err := s.st.PruneHistory(ctx, kind, before, historyPruneBatch)
			cancel()
			if err != nil {
				s.logf("ERROR pruning the %s history: %v", kind, err)
				break
			}
			removed[kind] += n
			if n < historyPruneBatch {
				break
			}
		}
		if removed[kind] > 0 {
			s.logf("history: removed %d %s record(s) received before %s (history_keep %s)", removed[kind], kind, before.UTC().Format(time.RFC3339), keep)
		}
	}
	return removed
}
