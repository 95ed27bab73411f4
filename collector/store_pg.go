package collector

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mtcagent/mtcagent/wire"
)

// migrations are the PostgreSQL schema, one file per version
// (NNNN_what.sql), applied in order.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key that orders instances migrating
// one database at once ("mtcmigr").
const migrationLock = 0x6d74636d69677200

// pgStore keeps the state in PostgreSQL: a row per device, updated in a
// transaction holding that row's lock (SELECT ... FOR UPDATE), so any
// number of collector instances may share the database.
type pgStore struct {
	pool  *pgxpool.Pool
	batch groupCommit // RecordDevice's (store_pg_batch.go)
}

// OpenPostgres connects to the database at url (postgres://...), applies
// the schema migrations it lacks, and returns the store.
func OpenPostgres(ctx context.Context, url string) (Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("collector: store URL: %w", redactURL(err, url))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("collector: connect to %s: %w", safeURL(url), redactURL(err, url))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("collector: connect to %s: %w", safeURL(url), redactURL(err, url))
	}
	if _, err := Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	s := &pgStore{pool: pool}
	s.batch = groupCommit{run: s.recordBatch, maxBatch: pgMaxBatch, maxRunning: pgBatchers}
	return s, nil
}

// safeURL is url without its password, for messages.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the database"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// redactURL keeps a password in the URL out of an error's text.
func redactURL(err error, raw string) error {
	u, perr := url.Parse(raw)
	if perr != nil {
		return errors.New("malformed URL")
	}
	if p, ok := u.User.Password(); ok && p != "" && strings.Contains(err.Error(), p) {
		return errors.New(strings.ReplaceAll(err.Error(), p, "xxxxx"))
	}
	return err
}

// Migration is one schema version.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded schema migrations in order of version.
// Versions need not be consecutive (branches add theirs in parallel, so
// a build may lack a number another has), but each appears once.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("collector: migration %s: want NNNN_name.sql", base)
		}
		b, err := migrations.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(base, ".sql"), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("collector: migrations: version %d given twice (%s, %s)", out[i].Version, out[i-1].Name, out[i].Name)
		}
	}
	return out, nil
}

// Migrate brings the database's schema up to this collector's in one
// transaction (under an advisory lock, so instances starting together
// take turns) and returns the versions it applied. The schema_version
// table records each with its time. Every migration the table lacks is
// applied, in order, so versions need not be contiguous (branches that
// each added one merge in any order). A database holding a version this
// collector does not know is refused: it is newer.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	return migrate(ctx, pool, ms)
}

func migrate(ctx context.Context, pool *pgxpool.Pool, ms []Migration) ([]int, error) {
	fail := func(err error) ([]int, error) { return nil, fmt.Errorf("collector: migrate the database: %w", err) }
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
		return fail(err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fail(err)
	}
	rows, err := tx.Query(ctx, `SELECT version FROM schema_version`)
	if err != nil {
		return fail(err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fail(err)
	}
	known := map[int]bool{}
	for _, m := range ms {
		known[m.Version] = true
	}
	done := map[int]bool{}
	for _, v := range have {
		if !known[int(v)] {
			newest := 0
			if len(ms) > 0 {
				newest = ms[len(ms)-1].Version
			}
			if int(v) > newest {
				return fail(fmt.Errorf("schema version %d is newer than this collector's %d: upgrade the collector", v, newest))
			}
			return fail(fmt.Errorf("schema version %d is unknown to this collector (newest known %d): upgrade the collector", v, newest))
		}
		done[int(v)] = true
	}
	var applied []int
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fail(fmt.Errorf("%s: %w", m.Name, err))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return fail(err)
		}
		applied = append(applied, m.Version)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return applied, nil
}

const deviceCols = `last_seq, consumed, boot_count, binding_imsi, binding_iccid, last_seen, last_heartbeat,
	overdue, status, status_at, last_event, trigger_seq, scs_seq, accepted, duplicates,
	mdt_cursor, mdt_records, mdt_pulled_at, next_due, unanswered`

// errCorruptRow: a device's stored row does not decode (a hand edit, a
// damaged database); that device's updates fail, no other's.
var errCorruptRow = errors.New("stored row does not decode")

func scanDevice(row pgx.Row) (DeviceState, error) {
	var (
		ds                                               DeviceState
		consumed                                         []int64
		imsi, iccid, status                              []byte
		seen, heartbeat, statusAt, pulledAt, nextDue     *time.Time
		lastEvent, scsSeq, cursor                        []byte
		lastSeq, boot, trigger, accepted, dups, mdtCount int64
		unanswered                                       int64
	)
	err := row.Scan(&lastSeq, &consumed, &boot, &imsi, &iccid, &seen, &heartbeat,
		&ds.Overdue, &status, &statusAt, &lastEvent, &trigger, &scsSeq, &accepted, &dups,
		&cursor, &mdtCount, &pulledAt, &nextDue, &unanswered)
	if err != nil {
		return ds, err
	}
	ds.LastSeq, ds.BootCount, ds.TriggerSeq = uint64(lastSeq), uint64(boot), uint64(trigger)
	ds.Accepted, ds.Duplicates, ds.MDTRecords = uint64(accepted), uint64(dups), uint64(mdtCount)
	ds.Unanswered = uint64(unanswered)
	for _, c := range consumed {
		ds.Consumed = append(ds.Consumed, uint64(c))
	}
	if imsi != nil || iccid != nil {
		ds.Binding = &[2][]byte{imsi, iccid}
	}
	if len(status) > 0 {
		ds.Status = status
	}
	t := func(p *time.Time) time.Time {
		if p == nil {
			return time.Time{}
		}
		return *p
	}
	ds.LastSeen, ds.LastHeartbeat, ds.StatusAt, ds.MDTPulledAt = t(seen), t(heartbeat), t(statusAt), t(pulledAt)
	ds.NextDue = t(nextDue)
	if lastEvent != nil {
		ds.LastEvent = &EventSummary{}
		if err := json.Unmarshal(lastEvent, ds.LastEvent); err != nil {
			return ds, fmt.Errorf("%w: last_event: %v", errCorruptRow, err)
		}
	}
	if len(scsSeq) > 0 && string(scsSeq) != "{}" {
		if err := json.Unmarshal(scsSeq, &ds.SCSSeq); err != nil {
			return ds, fmt.Errorf("%w: scs_seq: %v", errCorruptRow, err)
		}
	}
	if cursor != nil {
		ds.MDTCursor = &wire.MDTPos{}
		if err := json.Unmarshal(cursor, ds.MDTCursor); err != nil {
			return ds, fmt.Errorf("%w: mdt_cursor: %v", errCorruptRow, err)
		}
	}
	ds.normalize()
	return ds, nil
}

// fitInt64 stores a counter in a bigint; counters beyond 2^63 are refused.
func fitInt64(name string, v uint64) (int64, error) {
	if v > 1<<63-1 {
		return 0, fmt.Errorf("%s %d does not fit the database", name, v)
	}
	return int64(v), nil
}

func deviceArgs(id string, ds *DeviceState) ([]any, error) {
	var errs []error
	n := func(name string, v uint64) int64 {
		x, err := fitInt64(name, v)
		if err != nil {
			errs = append(errs, err)
		}
		return x
	}
	consumed := make([]int64, 0, len(ds.Consumed))
	for _, c := range ds.Consumed {
		consumed = append(consumed, n("consumed seq", c))
	}
	var imsi, iccid []byte
	if ds.Binding != nil {
		imsi, iccid = nonNil(ds.Binding[0]), nonNil(ds.Binding[1])
	}
	t := func(v time.Time) any {
		if v.IsZero() {
			return nil
		}
		return v
	}
	js := func(v any, isNil bool) any {
		if isNil {
			return nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			errs = append(errs, err)
		}
		return string(b)
	}
	scsSeq := "{}"
	if len(ds.SCSSeq) > 0 {
		scsSeq = js(ds.SCSSeq, false).(string)
	}
	var status any
	if len(ds.Status) > 0 {
		status = ds.Status
	}
	args := []any{id, n("last_seq", ds.LastSeq), consumed, n("boot_count", ds.BootCount), imsi, iccid,
		t(ds.LastSeen), t(ds.LastHeartbeat), ds.Overdue, status, t(ds.StatusAt),
		js(ds.LastEvent, ds.LastEvent == nil), n("trigger_seq", ds.TriggerSeq), scsSeq,
		n("accepted", ds.Accepted), n("duplicates", ds.Duplicates),
		js(ds.MDTCursor, ds.MDTCursor == nil), n("mdt_records", ds.MDTRecords), t(ds.MDTPulledAt), t(ds.NextDue),
		n("unanswered", ds.Unanswered)}
	return args, errors.Join(errs...)
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (s *pgStore) Device(ctx context.Context, id string) (DeviceState, error) {
	ds, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return DeviceState{}, nil
	}
	if err != nil {
		return DeviceState{}, fmt.Errorf("collector: store: read device %s: %w", id, err)
	}
	return ds, nil
}

func (s *pgStore) UpdateDevice(ctx context.Context, id string, fn func(*DeviceState) error) error {
	return s.RecordDevice(ctx, id, func(ds *DeviceState, _ *HistoryBatch) error { return fn(ds) })
}

// RecordDevice runs in a transaction shared with the calls waiting at the
// same moment (store_pg_batch.go): two round trips to the database for
// all of them. The batch has its own timeout (storeTimeout), so ctx is
// not consulted: a caller's answer always says whether its change is in.
func (s *pgStore) RecordDevice(_ context.Context, id string, fn func(*DeviceState, *HistoryBatch) error) error {
	return s.batch.do(id, fn)
}

// deviceArgCols are deviceArgs' columns in its order, with their types.
var deviceArgCols = [...]struct{ name, typ string }{
	{"id", "text"}, {"last_seq", "bigint"}, {"consumed", "bigint[]"}, {"boot_count", "bigint"},
	{"binding_imsi", "bytea"}, {"binding_iccid", "bytea"}, {"last_seen", "timestamptz"},
	{"last_heartbeat", "timestamptz"}, {"overdue", "boolean"}, {"status", "bytea"},
	{"status_at", "timestamptz"}, {"last_event", "jsonb"}, {"trigger_seq", "bigint"},
	{"scs_seq", "jsonb"}, {"accepted", "bigint"}, {"duplicates", "bigint"}, {"mdt_cursor", "jsonb"},
	{"mdt_records", "bigint"}, {"mdt_pulled_at", "timestamptz"}, {"next_due", "timestamptz"},
	{"unanswered", "bigint"},
}

// updateDevices writes the rows of many devices in one statement, each
// column an array (updateDevicesArgs): one statement instead of one per
// device saves PostgreSQL most of its cost per message (bind, executor
// start, protocol), and one text for every batch size is one prepared
// statement with one cached plan. An array of arrays must be
// rectangular, so consumed travels as the text of each row's array.
var updateDevices = func() string {
	var set, unnest, as []string
	for i, c := range deviceArgCols {
		typ, val := c.typ, "v."+c.name
		switch c.typ {
		case "bigint[]", "jsonb":
			typ, val = "text", val+"::"+c.typ
		}
		unnest = append(unnest, fmt.Sprintf("$%d::%s[]", i+1, typ))
		as = append(as, c.name)
		if i > 0 {
			set = append(set, c.name+" = "+val)
		}
	}
	return "UPDATE devices AS d SET " + strings.Join(set, ", ") +
		" FROM unnest(" + strings.Join(unnest, ", ") + ") AS v(" + strings.Join(as, ", ") + ") WHERE d.id = v.id"
}()

// updateDevicesArgs turns rows of deviceArgs into updateDevices' column
// arrays.
func updateDevicesArgs(rows [][]any) ([]any, error) {
	cols := make([]any, len(deviceArgCols))
	for i, c := range deviceArgCols {
		var err error
		switch c.typ {
		case "text":
			cols[i], err = column(rows, i, func(v string) string { return v })
		case "bigint":
			cols[i], err = column(rows, i, func(v int64) int64 { return v })
		case "boolean":
			cols[i], err = column(rows, i, func(v bool) bool { return v })
		case "bigint[]":
			cols[i], err = column(rows, i, func(v []int64) string {
				b := []byte{'{'}
				for k, x := range v {
					if k > 0 {
						b = append(b, ',')
					}
					b = strconv.AppendInt(b, x, 10)
				}
				return string(append(b, '}'))
			})
		case "bytea": // nil is NULL
			cols[i], err = nullColumn(rows, i, func(v []byte) []byte { return v })
		case "timestamptz":
			cols[i], err = nullColumn(rows, i, func(v time.Time) *time.Time { return &v })
		case "jsonb":
			cols[i], err = nullColumn(rows, i, func(v string) *string { return &v })
		default:
			err = fmt.Errorf("column %s: no array of %s", c.name, c.typ)
		}
		if err != nil {
			return nil, err
		}
	}
	return cols, nil
}

// column is the i-th value of each row, each a T, as f makes it.
func column[T, E any](rows [][]any, i int, f func(T) E) ([]E, error) {
	out := make([]E, len(rows))
	for r, row := range rows {
		v, ok := row[i].(T)
		if !ok {
			return nil, fmt.Errorf("column %s: a %T, not a %T", deviceArgCols[i].name, row[i], v)
		}
		out[r] = f(v)
	}
	return out, nil
}

// nullColumn is column where a row's value may also be nil: E's zero
// value, NULL (a nil slice of T is f's to map to nil).
func nullColumn[T, E any](rows [][]any, i int, f func(T) E) ([]E, error) {
	out := make([]E, len(rows))
	for r, row := range rows {
		if row[i] == nil {
			continue
		}
		v, ok := row[i].(T)
		if !ok {
			return nil, fmt.Errorf("column %s: a %T, not a %T", deviceArgCols[i].name, row[i], v)
		}
		out[r] = f(v)
	}
	return out, nil
}

func (s *pgStore) ClaimOverdue(ctx context.Context, now, since time.Time, limit int, alarm func(string, time.Duration) Alarm) ([]Alarm, error) {
	fail := func(err error) ([]Alarm, error) {
		return nil, fmt.Errorf("collector: store: claim overdue devices: %w", err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback(ctx)
	// The index gives the due rows, oldest first; a row locked by another
	// instance's claim or by a message's transaction is skipped (the
	// message moves next_due; the other claim raises the alarm).
	// A device is over its timeout counted from since too (the same test
	// as overdueFor), or no longer registered.
	rows, err := tx.Query(ctx, `SELECT id, last_seen, last_heartbeat, next_due,
			EXISTS (SELECT 1 FROM registry_devices r WHERE r.id = devices.id)
		FROM devices WHERE next_due IS NOT NULL AND next_due < $1 AND NOT overdue
			AND (greatest(coalesce(last_heartbeat, last_seen), $3) + (next_due - coalesce(last_heartbeat, last_seen)) < $1
				OR NOT EXISTS (SELECT 1 FROM registry_devices r WHERE r.id = devices.id))
		ORDER BY next_due LIMIT $2 FOR UPDATE SKIP LOCKED`, now, limit, since)
	if err != nil {
		return fail(err)
	}
	var (
		claimed []string
		out     []Alarm
	)
	for rows.Next() {
		var (
			id         string
			seen, hb   *time.Time
			due        time.Time
			registered bool
		)
		if err := rows.Scan(&id, &seen, &hb, &due, &registered); err != nil {
			rows.Close()
			return fail(err)
		}
		ds := DeviceState{NextDue: due}
		if seen != nil {
			ds.LastSeen = *seen
		}
		if hb != nil {
			ds.LastHeartbeat = *hb
		}
		quiet, over := ds.overdueFor(now, since)
		switch {
		case !registered:
			claimed = append(claimed, id) // cleared, no alarm
		case over:
			claimed = append(claimed, id)
			out = append(out, alarm(id, quiet))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	if len(claimed) == 0 {
		return nil, nil
	}
	flagged := make([]string, len(out))
	for i, a := range out {
		flagged[i] = a.Device
	}
	if _, err := tx.Exec(ctx, `UPDATE devices SET next_due = NULL, overdue = coalesce(id = ANY($2), false) WHERE id = ANY($1)`, claimed, flagged); err != nil {
		return fail(err)
	}
	if err := insertAlarms(ctx, tx, out); err != nil {
		return fail(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return out, nil
}

func (s *pgStore) CountOverdue(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM devices WHERE overdue`).Scan(&n); err != nil {
		return 0, fmt.Errorf("collector: store: count overdue: %w", err)
	}
	return n, nil
}

func (s *pgStore) AppendAlarm(ctx context.Context, a Alarm) error {
	fail := func(err error) error { return fmt.Errorf("collector: store: append alarm: %w", err) }
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback(ctx)
	if err := insertAlarms(ctx, tx, []Alarm{a}); err != nil {
		return fail(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return nil
}

// insertAlarms stores alarms, in order, each also a record of its
// device's history, in the caller's transaction: the one way alarms enter
// the database (AppendAlarm, and ClaimOverdue in its transaction).
func insertAlarms(ctx context.Context, tx pgx.Tx, as []Alarm) error {
	if len(as) == 0 {
		return nil
	}
	at, dev, kind, detail := make([]time.Time, len(as)), make([]string, len(as)), make([]string, len(as)), make([]string, len(as))
	for i, a := range as {
		at[i], dev[i], kind[i], detail[i] = a.Time, a.Device, a.Kind, a.Detail
	}
	if _, err := tx.Exec(ctx, `INSERT INTO alarms (at, device, kind, detail)
		SELECT a.at, a.device, a.kind, a.detail FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS a(at, device, kind, detail, n) ORDER BY n`,
		at, dev, kind, detail); err != nil {
		return err
	}
	for _, a := range as {
		if err := appendHistoryPG(ctx, tx, a.Device, alarmRecord(a)); err != nil {
			return err
		}
	}
	return nil
}

func (s *pgStore) AppendAudit(ctx context.Context, r AuditRecord) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO audit (at, scs, method, path, device, class, decision, code)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.Time, r.SCS, r.Method, r.Path, r.Device, r.Class, r.Decision, r.Code); err != nil {
		return fmt.Errorf("collector: store: append audit record: %w", err)
	}
	return nil
}

func (s *pgStore) Alarms(ctx context.Context, device string) ([]Alarm, error) {
	rows, err := s.pool.Query(ctx, `SELECT at, device, kind, detail FROM alarms
		WHERE $1 = '' OR device = $1 ORDER BY id`, device)
	if err != nil {
		return nil, fmt.Errorf("collector: store: read alarms: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Alarm, error) {
		var a Alarm
		err := r.Scan(&a.Time, &a.Device, &a.Kind, &a.Detail)
		a.Time = a.Time.UTC()
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("collector: store: read alarms: %w", err)
	}
	return out, nil
}

func (s *pgStore) Audit(ctx context.Context, scs string) ([]AuditRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT at, scs, method, path, device, class, decision, code FROM audit
		WHERE $1 = '' OR scs = $1 ORDER BY id`, scs)
	if err != nil {
		return nil, fmt.Errorf("collector: store: read audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditRecord, error) {
		var a AuditRecord
		err := r.Scan(&a.Time, &a.SCS, &a.Method, &a.Path, &a.Device, &a.Class, &a.Decision, &a.Code)
		a.Time = a.Time.UTC()
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("collector: store: read audit: %w", err)
	}
	return out, nil
}

func (s *pgStore) Close() error {
	s.pool.Close()
	return nil
}
