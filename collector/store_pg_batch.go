package collector

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Group commit. The RecordDevice calls waiting at one moment share one
// transaction: the rows of all their devices locked in one statement (in
// the order of their ids, so two batches, here or on another instance,
// never wait on each other in a cycle), each fn run in turn on its
// device's state, then every update and history record and COMMIT in one
// pipeline. Under load a transaction's own cost (BEGIN, COMMIT and its
// WAL flush, two round trips) is paid once for many messages instead of
// once for each; alone, a call runs at once in a batch of one. Each
// caller still returns only when its change is committed, or with the
// error that kept it out.
//
// A fn's error concerns its call alone: its changes are dropped and the
// next call for the same device sees the state before it. A failure of
// the database fails every call of the batch (nothing of it is stored),
// as it would have failed each alone.

// pgMaxBatch bounds the calls in one transaction, and pgBatchers the
// transactions in flight at once (each holds a pooled connection; the
// rest of the pool serves lookups, the overdue check and the SCS side).
const (
	pgMaxBatch = 64
	pgBatchers = 3
)

// recordCall is one RecordDevice call waiting for its batch.
type recordCall struct {
	id   string
	fn   func(*DeviceState, *HistoryBatch) error
	done chan error // buffered: the batch never waits on its caller

	told  bool               // done has the outcome (fn failed)
	ok    bool               // fn succeeded: its state and history go in
	queue []*pgx.QueuedQuery // its history statements
}

// call runs fn; a panic fails this call alone (it runs on the batch's
// goroutine, not its caller's).
func (c *recordCall) call(ds *DeviceState, h *HistoryBatch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("collector: store: update device %s: panic: %v", c.id, r)
		}
	}()
	return c.fn(ds, h)
}

// tell gives the caller its outcome, once.
func (c *recordCall) tell(err error) {
	if !c.told {
		c.told = true
		c.done <- err
	}
}

// pgBatcher queues the calls and runs the batches.
type pgBatcher struct {
	run func([]*recordCall) // the store's batch

	mu      sync.Mutex
	waiting []*recordCall
	running int
}

// do queues one call and waits for its outcome.
func (b *pgBatcher) do(id string, fn func(*DeviceState, *HistoryBatch) error) error {
	c := &recordCall{id: id, fn: fn, done: make(chan error, 1)}
	b.mu.Lock()
	b.waiting = append(b.waiting, c)
	start := b.running < pgBatchers
	if start {
		b.running++
	}
	b.mu.Unlock()
	if start {
		go b.drain()
	}
	return <-c.done
}

// drain runs batches of what is waiting until nothing is.
func (b *pgBatcher) drain() {
	for {
		b.mu.Lock()
		n := min(len(b.waiting), pgMaxBatch)
		if n == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		calls := slices.Clone(b.waiting[:n])
		b.waiting = slices.Delete(b.waiting, 0, n)
		if len(b.waiting) == 0 {
			b.waiting = nil // let a burst's backing array go
		}
		b.mu.Unlock()
		b.run(calls)
	}
}

// recordBatch runs one batch in one transaction and tells each caller.
func (s *pgStore) recordBatch(calls []*recordCall) {
	err := s.recordBatchTx(calls)
	for _, c := range calls { // those whose fn failed were told at once
		if err != nil {
			c.tell(fmt.Errorf("collector: store: update device %s: %w", c.id, err))
		} else {
			c.tell(nil)
		}
	}
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
	open := false // a transaction to roll back (a failure left it open)
	defer func() {
		if open {
			rctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			_, _ = conn.Exec(rctx, `ROLLBACK`)
			cancel()
		}
		conn.Release() // one the rollback could not reach is closed by the pool
	}()

	// First round trip: BEGIN, the rows locked in id order, the
	// registry's generation.
	sel := `SELECT id, ` + deviceCols + ` FROM devices WHERE id = ANY($1) ORDER BY id FOR UPDATE`
	states := make(map[string]DeviceState, len(ids))
	var gen int64
	var b pgx.Batch
	b.Queue(`BEGIN`)
	b.Queue(sel, ids)
	b.Queue(`SELECT n FROM registry_gen`)
	open = true
	br := conn.SendBatch(ctx, &b)
	_, err = br.Exec()
	if err == nil {
		err = scanStates(br, states)
	}
	if err == nil {
		err = br.QueryRow().Scan(&gen)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if len(states) < len(ids) {
		// First messages of devices: create their rows (in id order, as
		// the locks), then lock them (a concurrent first message waits
		// on the insert, then on the lock).
		var missing []string
		for _, id := range ids {
			if _, ok := states[id]; !ok {
				missing = append(missing, id)
			}
		}
		if _, err := conn.Exec(ctx, `INSERT INTO devices (id) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT (id) DO NOTHING`, missing); err != nil {
			return err
		}
		rows, err := conn.Query(ctx, sel, missing)
		if err != nil {
			return err
		}
		if err := scanRows(rows, states); err != nil {
			return err
		}
		if len(states) < len(ids) {
			return errors.New("a device row vanished under its lock")
		}
	}

	// Each fn in turn, in the order the calls came.
	read := make(map[string]DeviceState, len(states))
	for id, ds := range states {
		read[id] = ds.clone()
	}
	args := make(map[string][]any, len(ids)) // each device's row as its last successful fn left it
	for _, c := range calls {
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
		c.ok, c.queue = true, hq.QueuedQueries
	}

	// Second round trip: the updates and the history in id order, COMMIT.
	b = pgx.Batch{}
	for _, id := range ids {
		if a, ok := args[id]; ok && !reflect.DeepEqual(read[id], states[id].clone()) {
			b.Queue(updateDevice, a...)
		}
	}
	byID := slices.Clone(calls)
	slices.SortStableFunc(byID, func(a, b *recordCall) int { return strings.Compare(a.id, b.id) })
	for _, c := range byID {
		if c.ok {
			b.QueuedQueries = append(b.QueuedQueries, c.queue...)
		}
	}
	b.Queue(`COMMIT`)
	if err := conn.SendBatch(ctx, &b).Close(); err != nil {
		return err
	}
	open = conn.Conn().PgConn().TxStatus() != 'I'
	return nil
}

// scanStates reads the batch's next result: rows of id and deviceCols.
func scanStates(br pgx.BatchResults, into map[string]DeviceState) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	return scanRows(rows, into)
}

func scanRows(rows pgx.Rows, into map[string]DeviceState) error {
	defer rows.Close()
	for rows.Next() {
		var id string
		ds, err := scanDevice(idRow{rows, &id})
		if err != nil {
			return err
		}
		into[id] = ds
	}
	return rows.Err()
}

// idRow scans a row's first column into id and the rest as the row.
type idRow struct {
	pgx.Row
	id *string
}

func (r idRow) Scan(dest ...any) error { return r.Row.Scan(append([]any{r.id}, dest...)...) }
