package collector

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mtcagent/mtcagent/attest"
)

const regDeviceCols = `id, psk_identity, psk, key_pin, public_key, binding_imsi, binding_iccid, heartbeat_timeout_ms`

// pgDuplicate turns a unique violation into a *DuplicateError naming the
// key (never the PSK: no unique index covers one).
func pgDuplicate(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		return err
	}
	what := map[string]string{
		"registry_devices_pkey":             "device id",
		"registry_devices_psk_identity_key": "device psk identity",
		"registry_scs_pkey":                 "scs name",
		"registry_scs_psk_identity_key":     "scs psk identity",
	}[pe.ConstraintName]
	if what == "" {
		return err
	}
	// Detail: Key (psk_identity)=(x) already exists.
	v := pe.Detail
	if _, after, ok := strings.Cut(v, ")=("); ok {
		v, _, _ = strings.Cut(after, ") already exists")
	}
	return &DuplicateError{What: what, Value: v}
}

// scanRegDevice reads regDeviceCols, then the rest of the row into extra.
func scanRegDevice(row pgx.Row, extra ...any) (*Device, error) {
	var (
		d           Device
		psk         *string
		pub         []byte
		imsi, iccid []byte
		hbMS        int64
	)
	if err := row.Scan(append([]any{&d.ID, &psk, &d.PSK, &d.KeyPin, &pub, &imsi, &iccid, &hbMS}, extra...)...); err != nil {
		return nil, err
	}
	if psk != nil {
		d.PSKIdentity = *psk
	}
	d.PublicKey = ed25519.PublicKey(pub)
	if imsi != nil || iccid != nil {
		d.Binding = &attest.Pseudonyms{IMSI: imsi, ICCID: iccid}
	}
	d.HeartbeatTimeout = time.Duration(hbMS) * time.Millisecond
	return &d, nil
}

func regDeviceRow(d *Device) []any {
	var psk any
	if d.PSKIdentity != "" {
		psk = d.PSKIdentity
	}
	var imsi, iccid, pin, key any
	if d.Binding != nil {
		imsi, iccid = []byte(d.Binding.IMSI), []byte(d.Binding.ICCID)
	}
	if len(d.KeyPin) > 0 {
		pin = d.KeyPin
	}
	if len(d.PSK) > 0 {
		key = d.PSK
	}
	return []any{d.ID, psk, key, pin, []byte(d.PublicKey), imsi, iccid, d.HeartbeatTimeout.Milliseconds()}
}

// AddDevices without replace is one COPY in one transaction (100,000
// devices in a few seconds); with replace, one upsert per device in one
// transaction.
func (s *pgStore) AddDevices(ctx context.Context, ds []*Device, replace bool) error {
	if err := checkUnique(ds); err != nil {
		return err
	}
	fail := func(err error) error {
		if d := pgDuplicate(err); d != err {
			return d
		}
		return fmt.Errorf("collector: store: add devices: %w", err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback(ctx)
	if !replace {
		cols := strings.Split(strings.ReplaceAll(regDeviceCols, " ", ""), ",")
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"registry_devices"}, cols,
			pgx.CopyFromSlice(len(ds), func(i int) ([]any, error) { return regDeviceRow(ds[i]), nil })); err != nil {
			return fail(err)
		}
	} else {
		b := &pgx.Batch{}
		for _, d := range ds {
			b.Queue(`INSERT INTO registry_devices (`+regDeviceCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
				ON CONFLICT (id) DO UPDATE SET psk_identity = $2, psk = $3, key_pin = $4, public_key = $5,
				binding_imsi = $6, binding_iccid = $7, heartbeat_timeout_ms = $8`, regDeviceRow(d)...)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return nil
}

func (s *pgStore) RemoveDevice(ctx context.Context, id string) error {
	fail := func(err error) error { return fmt.Errorf("collector: store: remove device %s: %w", id, err) }
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `DELETE FROM registry_devices WHERE id = $1`, id)
	if err != nil {
		return fail(err)
	}
	if tag.RowsAffected() == 0 {
		return &NotFoundError{"device", id}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM grants WHERE device = $1`, id); err != nil {
		return fail(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return nil
}

// pgText reports whether s can be a value of PostgreSQL's text: UTF-8
// without NUL. A lookup by a key that cannot be stored finds nothing; so
// it does not ask. A peer sends such keys (a PSK identity in a handshake,
// an id in a path): asked, PostgreSQL refused them as a store error, which
// was logged as one, by an unauthenticated peer, under the cause that real
// store errors share.
func pgText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func (s *pgStore) deviceWhere(ctx context.Context, where string, arg any) (*Device, error) {
	if k, ok := arg.(string); ok && !pgText(k) {
		return nil, nil
	}
	// With the registry's generation, in the same statement (one snapshot).
	var gen int64
	d, err := scanRegDevice(s.pool.QueryRow(ctx, `SELECT `+regDeviceCols+`, (SELECT n FROM registry_gen)
		FROM registry_devices WHERE `+where+` ORDER BY id LIMIT 1`, arg), &gen)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("collector: store: look up a device: %w", err)
	}
	d.gen = uint64(gen)
	return d, nil
}

func (s *pgStore) DeviceByID(ctx context.Context, id string) (*Device, error) {
	return s.deviceWhere(ctx, "id = $1", id)
}

func (s *pgStore) DeviceByPSK(ctx context.Context, identity string) (*Device, error) {
	return s.deviceWhere(ctx, "psk_identity = $1", identity)
}

func (s *pgStore) DeviceByPin(ctx context.Context, pin []byte) (*Device, error) {
	if len(pin) == 0 {
		return nil, nil
	}
	return s.deviceWhere(ctx, "key_pin = $1", pin)
}

func (s *pgStore) ListDevices(ctx context.Context) ([]*Device, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+regDeviceCols+` FROM registry_devices ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("collector: store: list devices: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Device, error) { return scanRegDevice(r) })
	if err != nil {
		return nil, fmt.Errorf("collector: store: list devices: %w", err)
	}
	return out, nil
}

func (s *pgStore) CountDevices(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM registry_devices`).Scan(&n); err != nil {
		return 0, fmt.Errorf("collector: store: count devices: %w", err)
	}
	return n, nil
}

func (s *pgStore) AddSCS(ctx context.Context, x *SCS, replace bool) error {
	q := `INSERT INTO registry_scs (name, psk_identity, psk) VALUES ($1, $2, $3)`
	if replace {
		q += ` ON CONFLICT (name) DO UPDATE SET psk_identity = $2, psk = $3`
	}
	if _, err := s.pool.Exec(ctx, q, x.Name, x.PSKIdentity, x.PSK); err != nil {
		if d := pgDuplicate(err); d != err {
			return d
		}
		return fmt.Errorf("collector: store: add scs %s: %w", x.Name, err)
	}
	return nil
}

func (s *pgStore) RemoveSCS(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM registry_scs WHERE name = $1`, name) // grants cascade
	if err != nil {
		return fmt.Errorf("collector: store: remove scs %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return &NotFoundError{"scs", name}
	}
	return nil
}

func (s *pgStore) scsWhere(ctx context.Context, where string, arg any) (*SCS, error) {
	if k, ok := arg.(string); ok && !pgText(k) {
		return nil, nil
	}
	var x SCS
	err := s.pool.QueryRow(ctx, `SELECT name, psk_identity, psk FROM registry_scs WHERE `+where, arg).Scan(&x.Name, &x.PSKIdentity, &x.PSK)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("collector: store: look up an scs: %w", err)
	}
	return &x, nil
}

func (s *pgStore) SCSByName(ctx context.Context, name string) (*SCS, error) {
	return s.scsWhere(ctx, "name = $1", name)
}

func (s *pgStore) SCSByPSK(ctx context.Context, identity string) (*SCS, error) {
	return s.scsWhere(ctx, "psk_identity = $1", identity)
}

func (s *pgStore) ListSCS(ctx context.Context) ([]*SCS, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, psk_identity, psk FROM registry_scs ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("collector: store: list scs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*SCS, error) {
		var x SCS
		return &x, r.Scan(&x.Name, &x.PSKIdentity, &x.PSK)
	})
	if err != nil {
		return nil, fmt.Errorf("collector: store: list scs: %w", err)
	}
	return out, nil
}

func (s *pgStore) Grant(ctx context.Context, scs string, devices, classes []string) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO grants (scs, device, class)
		SELECT name, d, c FROM registry_scs, unnest($2::text[]) d, unnest($3::text[]) c WHERE name = $1
		ON CONFLICT DO NOTHING`, scs, devices, classes)
	if err != nil {
		return fmt.Errorf("collector: store: grant: %w", err)
	}
	if tag.RowsAffected() == 0 {
		if x, err := s.SCSByName(ctx, scs); err != nil {
			return err
		} else if x == nil {
			return &NotFoundError{"scs", scs}
		}
	}
	return nil
}

func (s *pgStore) Revoke(ctx context.Context, scs string, devices, classes []string) error {
	if x, err := s.SCSByName(ctx, scs); err != nil {
		return err
	} else if x == nil {
		return &NotFoundError{"scs", scs}
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM grants WHERE scs = $1 AND device = ANY($2)
		AND (coalesce(cardinality($3::text[]), 0) = 0 OR class = ANY($3))`, scs, devices, classes); err != nil {
		return fmt.Errorf("collector: store: revoke: %w", err)
	}
	return nil
}

func (s *pgStore) Granted(ctx context.Context, scs, device, class string) (bool, error) {
	if !pgText(scs) || !pgText(device) || !pgText(class) {
		return false, nil
	}
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM grants WHERE scs = $1 AND device = $2 AND class = $3)`,
		scs, device, class).Scan(&ok); err != nil {
		return false, fmt.Errorf("collector: store: read a grant: %w", err)
	}
	return ok, nil
}

func (s *pgStore) Grants(ctx context.Context, scs string) ([]Grant, error) {
	rows, err := s.pool.Query(ctx, `SELECT scs, device, array_agg(class ORDER BY class) FROM grants
		WHERE $1 = '' OR scs = $1 GROUP BY scs, device ORDER BY scs, device`, scs)
	if err != nil {
		return nil, fmt.Errorf("collector: store: read grants: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Grant, error) {
		var g Grant
		err := r.Scan(&g.SCS, &g.Device, &g.Classes)
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("collector: store: read grants: %w", err)
	}
	return out, nil
}
