package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// appendHistoryPG stores a batch in the device's history within tx (see
// migrations/0003_history.sql): the head row's update numbers the
// records and holds its lock until tx ends.
func appendHistoryPG(ctx context.Context, tx pgx.Tx, device string, h *HistoryBatch) error {
	var b pgx.Batch
	if err := queueHistoryPG(&b, device, h); err != nil {
		return err
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// queueHistoryPG queues appendHistoryPG's statement (none for an empty
// batch) onto b, to be sent within a transaction.
func queueHistoryPG(q *pgx.Batch, device string, h *HistoryBatch) error {
	if h.empty() {
		return nil
	}
	opt := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t
	}
	b := h.beats
	first, last, err := beatSeqs(b)
	if err != nil {
		return err
	}
	// One statement: the head's update numbers the records (last_n -
	// len + i for the i-th) and the rows go in with it.
	kinds := make([]string, len(h.records))
	seqs := make([]int64, len(h.records))
	signed := make([]*time.Time, len(h.records))
	ats := make([]time.Time, len(h.records))
	details := make([]string, len(h.records))
	for i, r := range h.records {
		if seqs[i], err = fitInt64("seq", r.Seq); err != nil {
			return err
		}
		kinds[i], ats[i], details[i] = r.Kind, r.At, string(r.Detail)
		if !r.SignedAt.IsZero() {
			signed[i] = &h.records[i].SignedAt
		}
	}
	q.Queue(`WITH head AS (
		INSERT INTO history_heads AS h
			(device, last_n, hb_count, hb_first_seq, hb_first_at, hb_last_seq, hb_last_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (device) DO UPDATE SET
			last_n       = h.last_n + EXCLUDED.last_n,
			hb_count     = h.hb_count + EXCLUDED.hb_count,
			hb_first_seq = CASE WHEN h.hb_count = 0 THEN EXCLUDED.hb_first_seq ELSE h.hb_first_seq END,
			hb_first_at  = CASE WHEN h.hb_count = 0 THEN EXCLUDED.hb_first_at ELSE h.hb_first_at END,
			hb_last_seq  = CASE WHEN EXCLUDED.hb_count > 0 THEN EXCLUDED.hb_last_seq ELSE h.hb_last_seq END,
			hb_last_at   = CASE WHEN EXCLUDED.hb_count > 0 THEN EXCLUDED.hb_last_at ELSE h.hb_last_at END
		RETURNING last_n)
	INSERT INTO history (device, n, kind, seq, signed_at, at, detail)
	SELECT $1, head.last_n - $2 + r.i, r.kind, r.seq, r.signed_at, r.at, r.detail::jsonb
	FROM head, unnest($8::text[], $9::bigint[], $10::timestamptz[], $11::timestamptz[], $12::text[])
		WITH ORDINALITY AS r(kind, seq, signed_at, at, detail, i)`,
		device, int64(len(h.records)), int64(b.Count), first, opt(b.FirstAt), last, opt(b.LastAt),
		kinds, seqs, signed, ats, details)
	return nil
}

// beatSeqs is a summary's first and last sequence numbers as the
// database keeps them.
func beatSeqs(b HeartbeatSummary) (first, last int64, err error) {
	if first, err = fitInt64("heartbeat seq", b.FirstSeq); err == nil {
		last, err = fitInt64("heartbeat seq", b.LastSeq)
	}
	return first, last, err
}

// queueHeartbeatHeads queues one statement that adds the merged
// heartbeats of the devices that have beats and no records in this
// batch (ids in order) to their history heads: what queueHistoryPG's
// statement does for each call, without a record to number, for all of
// them at once.
func queueHeartbeatHeads(q *pgx.Batch, ids []string, beats map[string]HeartbeatSummary, records map[string]bool) error {
	var (
		devs                  []string
		counts, firsts, lasts []int64
		firstAt, lastAt       []*time.Time
	)
	for _, id := range ids {
		b, ok := beats[id]
		if !ok || records[id] || b.Count == 0 {
			continue
		}
		count, err := fitInt64("heartbeat count", b.Count)
		if err != nil {
			return err
		}
		first, last, err := beatSeqs(b)
		if err != nil {
			return err
		}
		opt := func(t time.Time) *time.Time {
			if t.IsZero() {
				return nil
			}
			return &t
		}
		devs, counts, firsts, lasts = append(devs, id), append(counts, count), append(firsts, first), append(lasts, last)
		firstAt, lastAt = append(firstAt, opt(b.FirstAt)), append(lastAt, opt(b.LastAt))
	}
	if len(devs) == 0 {
		return nil
	}
	q.Queue(`INSERT INTO history_heads AS h
			(device, last_n, hb_count, hb_first_seq, hb_first_at, hb_last_seq, hb_last_at)
		SELECT v.device, 0, v.hb_count, v.hb_first_seq, v.hb_first_at, v.hb_last_seq, v.hb_last_at
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::bigint[], $6::timestamptz[])
			AS v(device, hb_count, hb_first_seq, hb_first_at, hb_last_seq, hb_last_at)
		ON CONFLICT (device) DO UPDATE SET
			hb_count     = h.hb_count + EXCLUDED.hb_count,
			hb_first_seq = CASE WHEN h.hb_count = 0 THEN EXCLUDED.hb_first_seq ELSE h.hb_first_seq END,
			hb_first_at  = CASE WHEN h.hb_count = 0 THEN EXCLUDED.hb_first_at ELSE h.hb_first_at END,
			hb_last_seq  = EXCLUDED.hb_last_seq,
			hb_last_at   = EXCLUDED.hb_last_at`,
		devs, counts, firsts, firstAt, lasts, lastAt)
	return nil
}

func (s *pgStore) History(ctx context.Context, device string, q HistoryQuery) (HistoryPage, error) {
	if err := q.prepare(); err != nil {
		return HistoryPage{}, err
	}
	fail := func(err error) (HistoryPage, error) {
		return HistoryPage{}, fmt.Errorf("collector: store: history of %s: %w", device, err)
	}
	scan := newHistoryScan(&q)
	var (
		lastN, count, firstSeq, lastSeq int64
		firstAt, lastAt                 *time.Time
	)
	err := s.pool.QueryRow(ctx, `SELECT last_n, hb_count, hb_first_seq, hb_first_at, hb_last_seq, hb_last_at
		FROM history_heads WHERE device = $1`, device).Scan(&lastN, &count, &firstSeq, &firstAt, &lastSeq, &lastAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return scan.page, nil
	case err != nil:
		return fail(err)
	}
	utc := func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return t.UTC()
	}
	scan.page.Heartbeats = HeartbeatSummary{Count: uint64(count), FirstSeq: uint64(firstSeq), FirstAt: utc(firstAt), LastSeq: uint64(lastSeq), LastAt: utc(lastAt)}
	after, _ := q.after()
	lo, hi := int64(min(after, math.MaxInt64)), int64(math.MaxInt64)
	bound := func(sql string, t time.Time, dst *int64) (bool, error) {
		var n int64
		err := s.pool.QueryRow(ctx, sql, device, t).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		*dst = n
		return err == nil, err
	}
	if !q.Since.IsZero() {
		var n0 int64
		ok, err := bound(`SELECT n FROM history WHERE device = $1 AND at >= $2 ORDER BY at, n LIMIT 1`, q.Since, &n0)
		if err != nil {
			return fail(err)
		}
		if !ok {
			return scan.page, nil
		}
		lo = max(lo, n0-1)
	}
	if !q.Until.IsZero() {
		ok, err := bound(`SELECT n FROM history WHERE device = $1 AND at < $2 ORDER BY at DESC, n DESC LIMIT 1`, q.Until, &hi)
		if err != nil {
			return fail(err)
		}
		if !ok {
			return scan.page, nil
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT n, kind, seq, signed_at, at, detail FROM history
		WHERE device = $1 AND n > $2 AND n <= $3 ORDER BY n LIMIT $4`, device, lo, hi, historyScanMax)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r        HistoryRecord
			n, seq   int64
			signedAt *time.Time
			detail   []byte
		)
		if err := rows.Scan(&n, &r.Kind, &seq, &signedAt, &r.At, &detail); err != nil {
			return fail(err)
		}
		r.N, r.Device, r.Seq, r.SignedAt, r.At, r.Detail = uint64(n), device, uint64(seq), utc(signedAt), r.At.UTC(), compactJSON(detail)
		if !scan.offer(r) {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return scan.page, nil
}

// compactJSON gives a jsonb object back in the form json.Marshal writes
// (keys sorted, no spaces), as the embedded store keeps it.
func compactJSON(b []byte) json.RawMessage {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v map[string]any
	if d.Decode(&v) != nil {
		return b
	}
	out, err := json.Marshal(v)
	if err != nil {
		return b
	}
	return out
}

func (s *pgStore) PruneHistory(ctx context.Context, kind string, before time.Time, max int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM history WHERE (device, n) IN
		(SELECT device, n FROM history WHERE kind = $1 AND at < $2 ORDER BY at LIMIT $3)`, kind, before, max)
	if err != nil {
		return 0, fmt.Errorf("collector: store: prune %s history: %w", kind, err)
	}
	return int(tag.RowsAffected()), nil
}
