package collector

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Group commit on PostgreSQL (groupcommit.go): the rows of all the
// batch's devices locked in one statement, in the order of their ids (so
// two batches, on one instance or two, never wait on each other in a
// cycle), each fn in turn on its device's state, then every update and
// history record and COMMIT in one pipeline: two round trips for the
// batch. Its transaction's own cost (BEGIN, COMMIT and its WAL flush,
// the round trips) is paid once for many messages instead of once for
// each.

// pgMaxBatch bounds the calls in one transaction, and pgBatchers the
// transactions in flight at once (each holds a pooled connection; the
// rest of the pool serves lookups, the overdue check and the SCS side).
// One: the calls that come in while a batch commits wait for the next,
// which is then the larger. Measured in the fleet benchmark (10k devices,
// 64 heartbeats in flight, 2026-12-03, interleaved rounds): PostgreSQL
// spent 88-113 µs of CPU per message with one, 147-162 with two and
// 222-295 with three, for more messages a second and no worse a round
// trip at 1,000/s. Several smaller transactions at once cost the database
// more per message than their overlap gives back on two cores.
const (
	pgMaxBatch = 64
	pgBatchers = 1
)

// recordBatch runs one batch in one transaction and tells each caller.
func (s *pgStore) recordBatch(calls []*recordCall) {
	if err := s.recordBatchTx(calls); err != nil {
		for _, c := range calls { // those whose fn failed were told at once
			c.tell(fmt.Errorf("collector: store: update device %s: %w", c.id, err))
		}
	}
	tellAll(calls, nil)
}

func (s *pgStore) recordBatchTx(calls []*recordCall) error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	ids := make([]string, 0, len(calls))
	for _, c := range calls {
		ids = append(ids, c.id)
	}
	sort.Strings(ids)
	ids = slices.Compact(ids)

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	open := false // a transaction to roll back (a failure may have left it open)
	defer func() {
		if open {
			rctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			_, _ = conn.Exec(rctx, `ROLLBACK`)
			cancel()
		}
		conn.Release() // one the rollback could not reach is closed by the pool
	}()

	states, bad, gen, err := lockRows(ctx, conn, ids)
	open = true
	if err != nil {
		return err
	}

	// Each fn in turn, in the order the calls came.
	read := make(map[string]DeviceState, len(states))
	for id, ds := range states {
		read[id] = ds.clone()
	}
	args := make(map[string][]any, len(ids))         // each device's row as its last successful fn left it
	queues := make([][]*pgx.QueuedQuery, len(calls)) // each successful call's history statements
	beats := make(map[string]HeartbeatSummary)       // heartbeat-only devices: their calls' beats, merged
	records := make(map[string]bool)                 // devices with a call that adds history records
	for i, c := range calls {
		if err := bad[c.id]; err != nil {
			c.tell(fmt.Errorf("collector: store: update device %s: %w", c.id, err))
			continue
		}
		ds := states[c.id].clone()
		ds.registryGen = uint64(gen)
		var h HistoryBatch
		if err := c.call(&ds, &h); err != nil {
			c.tell(err)
			continue
		}
		ds.registryGen = 0
		var hq pgx.Batch
		a, err := deviceArgs(c.id, &ds)
		if err == nil {
			err = queueHistoryPG(&hq, c.id, &h)
		}
		if err != nil {
			c.tell(fmt.Errorf("collector: store: update device %s: %w", c.id, err))
			continue
		}
		states[c.id], args[c.id] = ds, a
		queues[i] = hq.QueuedQueries
		if len(h.records) > 0 {
			records[c.id] = true
		} else if h.beats.Count > 0 {
			m := beats[c.id]
			m.merge(h.beats)
			beats[c.id] = m
		}
	}

	// Second round trip: the changed rows in one statement, the history
	// of heartbeat-only devices in one, that of the others call by call
	// (a record's number comes from its device's head), then COMMIT.
	var b pgx.Batch
	var rows [][]any
	for _, id := range ids {
		if a, ok := args[id]; ok && !reflect.DeepEqual(read[id], states[id].clone()) {
			rows = append(rows, a)
		}
	}
	if len(rows) > 0 {
		cols, err := updateDevicesArgs(rows)
		if err != nil {
			return fmt.Errorf("update devices: %w", err)
		}
		b.Queue(updateDevices, cols...)
	}
	if err := queueHeartbeatHeads(&b, ids, beats, records); err != nil {
		return err
	}
	order := make([]int, len(calls))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return strings.Compare(calls[i].id, calls[j].id) })
	for _, i := range order {
		if records[calls[i].id] {
			b.QueuedQueries = append(b.QueuedQueries, queues[i]...) // none for a call whose fn failed
		}
	}
	b.Queue(`COMMIT`)
	if err := conn.SendBatch(ctx, &b).Close(); err != nil {
		return err
	}
	open = conn.Conn().PgConn().TxStatus() != 'I'
	return nil
}

// lockRows begins the batch's transaction and locks the rows of ids, in
// their order, in one round trip; it returns their states (and those
// that do not decode in bad) and the registry's generation. Rows are
// locked only in that order: a device's first message finds no row, and
// creating it while this transaction held the others' locks would take
// a lock out of order (a batch that locked it meanwhile, then waits on
// one held here, is a deadlock). So the transaction is rolled back, the
// missing rows are created on their own, each committed at once, and the
// locking starts over; it fails only if a row is missing again (device
// rows are never deleted). A transaction may be open on return, also on
// error: the caller rolls it back.
func lockRows(ctx context.Context, conn *pgxpool.Conn, ids []string) (map[string]DeviceState, map[string]error, int64, error) {
	const sel = `SELECT id, ` + deviceCols + ` FROM devices WHERE id = ANY($1) ORDER BY id FOR UPDATE`
	for attempt := 0; ; attempt++ {
		states := make(map[string]DeviceState, len(ids))
		bad := map[string]error{} // rows that do not decode: their calls fail, the batch goes on
		var gen int64
		var b pgx.Batch
		b.Queue(`BEGIN`)
		b.Queue(sel, ids)
		b.Queue(`SELECT n FROM registry_gen`)
		br := conn.SendBatch(ctx, &b)
		_, err := br.Exec()
		if err == nil {
			err = scanStates(br, states, bad)
		}
		if err == nil {
			err = br.QueryRow().Scan(&gen)
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil || len(states)+len(bad) == len(ids) {
			return states, bad, gen, err
		}
		if attempt > 0 {
			return nil, nil, 0, errors.New("a device row vanished as it was created")
		}
		var missing []string
		for _, id := range ids {
			if _, ok := states[id]; !ok && bad[id] == nil {
				missing = append(missing, id)
			}
		}
		if testHookMissingRows != nil {
			testHookMissingRows(missing)
		}
		if _, err := conn.Exec(ctx, `ROLLBACK`); err != nil {
			return nil, nil, 0, err
		}
		// A transaction of its own that holds no other lock, and takes
		// the new rows' in id order as every other one does.
		if _, err := conn.Exec(ctx, `INSERT INTO devices (id) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT (id) DO NOTHING`, missing); err != nil {
			return nil, nil, 0, err
		}
	}
}

// testHookMissingRows, when a test sets it, runs while lockRows holds
// the locks of the rows it found and has found others missing.
var testHookMissingRows func(missing []string)

// scanStates reads the batch's next result: rows of id and deviceCols.
func scanStates(br pgx.BatchResults, into map[string]DeviceState, bad map[string]error) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	return scanRows(rows, into, bad)
}

// scanRows reads rows of id and deviceCols into into, and a row that
// does not decode into bad.
func scanRows(rows pgx.Rows, into map[string]DeviceState, bad map[string]error) error {
	defer rows.Close()
	for rows.Next() {
		var id string
		ds, err := scanDevice(idRow{rows, &id})
		switch {
		case errors.Is(err, errCorruptRow):
			bad[id] = err
		case err != nil:
			return err
		default:
			into[id] = ds
		}
	}
	return rows.Err()
}

// idRow scans a row's first column into id and the rest as the row.
type idRow struct {
	pgx.Row
	id *string
}

func (r idRow) Scan(dest ...any) error { return r.Row.Scan(append([]any{r.id}, dest...)...) }
