package collector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Many instances on one PostgreSQL database (migration 0004). Each
// instance has a random id, a row in instances with a lease it renews,
// and a notification channel named after its id that it LISTENs on over
// a connection of its own. It records the device sessions it holds in
// sessions. An SCS request for a device whose session another live
// instance holds is relayed: the asker inserts a relay row and notifies
// the holder's channel with "q<id>"; the holder performs the request
// over the device's session (as if the SCS had asked it), writes the
// answer into the row and notifies the asker's channel with "a<id>";
// the asker reads and deletes the row and answers the SCS. An instance
// whose lease runs out (a SIGKILL, a partition) is deleted by the next
// instance renewing its own, and its sessions with it (ON DELETE
// CASCADE); until then a request relayed to it goes unanswered, and the
// asker, after relayWait, answers as for a device not reachable.

// DefaultInstanceLease is how long an instance's lease lasts unless
// instance_lease says otherwise; it is renewed every third of that.
const DefaultInstanceLease = 15 * time.Second

// relayWait bounds how long an instance waits for another to perform a
// relayed request: under the SCS request's own 5 s, above the 3 s and
// 4 s the holder gives the device to answer a status read or a trigger.
const relayWait = 4500 * time.Millisecond

// relayRequest is an SCS request relayed to the instance holding the
// device's session.
type relayRequest struct {
	device, scs, class string
	payload            []byte // a trigger's body
	payloadJSON        bool   // the body is JSON
	wantJSON           bool   // answer in JSON
}

// relayAnswer is the holder's answer, which the asker gives the SCS.
type relayAnswer struct {
	code   int
	body   []byte
	maxAge uint32
	queued bool
}

const (
	relayPayloadJSON = 1
	relayWantJSON    = 2
)

// pgCluster is an instance's membership of the database's instances.
type pgCluster struct {
	pool    *pgxpool.Pool
	id      string
	lease   time.Duration
	perform func(context.Context, relayRequest) relayAnswer // runs a relayed request here
	logf    func(format string, a ...any)
	spawn   func(func()) bool                       // runs fn in the background unless closing
	held    func() []string                         // the devices whose sessions this instance holds
	moved   func(device, holder string)             // a device's session came up on another instance
	remote  func(class, device string, body []byte) // another instance's notification for observers here

	mu      sync.Mutex
	waiters map[int64]chan struct{} // relayed requests awaiting an answer, by row id
	cancel  context.CancelFunc
	done    sync.WaitGroup
}

func channelOf(instance string) string { return "mtc_" + instance }

// sessionsChannel carries "INSTANCE DEVICE" to every instance when a
// device's session comes up on INSTANCE, so another one with requests
// queued for that device hands them over.
const sessionsChannel = "mtc_sessions"

// classDeliverTrigger relays a trigger queued on another instance: its
// SCS sequence number was spent when it was queued, so the holder only
// sends it (payload: the action).
const classDeliverTrigger = "deliver-trigger"

// joinCluster registers a new instance (a fresh id each start) and starts
// its lease renewal and its listener.
func joinCluster(ctx context.Context, pool *pgxpool.Pool, lease time.Duration, perform func(context.Context, relayRequest) relayAnswer,
	logf func(string, ...any), spawn func(func()) bool, held func() []string, moved func(device, holder string),
	remote func(class, device string, body []byte)) (*pgCluster, error) {
	if lease <= 0 {
		lease = DefaultInstanceLease
	}
	lease = max(lease, time.Second)
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	c := &pgCluster{pool: pool, id: hex.EncodeToString(b), lease: lease, perform: perform, logf: logf, spawn: spawn, held: held, moved: moved, remote: remote, waiters: map[int64]chan struct{}{}}
	if _, err := pool.Exec(ctx, `INSERT INTO instances (id, lease_until) VALUES ($1, now() + $2 * interval '1 millisecond')`, c.id, lease.Milliseconds()); err != nil {
		return nil, fmt.Errorf("collector: register this instance in the database: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	ready := make(chan error, 1)
	c.done.Add(2)
	go func() { defer c.done.Done(); c.listen(lctx, ready) }()
	go func() { defer c.done.Done(); c.renew(lctx) }()
	select {
	case err := <-ready:
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("collector: listen for relayed requests: %w", err)
		}
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
	return c, nil
}

// renew extends the lease every third of it, and deletes instances whose
// lease ran out (with their sessions) and relayed requests nobody
// collected.
func (c *pgCluster) renew(ctx context.Context) {
	t := time.NewTicker(c.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, c.lease/3)
		tag, err := c.pool.Exec(rctx, `UPDATE instances SET lease_until = now() + $2 * interval '1 millisecond' WHERE id = $1`, c.id, c.lease.Milliseconds())
		switch {
		case err != nil:
			c.logf("ERROR renewing this instance's lease in the database: %v", err)
		case tag.RowsAffected() == 0:
			// Deleted by another instance (our lease ran out while we
			// could not reach the database): come back, sessions and all.
			c.logf("this instance's lease had run out; registering again, with its sessions")
			if _, err := c.pool.Exec(rctx, `INSERT INTO instances (id, lease_until) VALUES ($1, now() + $2 * interval '1 millisecond') ON CONFLICT (id) DO UPDATE SET lease_until = EXCLUDED.lease_until`, c.id, c.lease.Milliseconds()); err != nil {
				c.logf("ERROR registering this instance again: %v", err)
			} else if _, err := c.pool.Exec(rctx, `INSERT INTO sessions (device, instance) SELECT unnest($1::text[]), $2
				ON CONFLICT (device) DO NOTHING`, c.held(), c.id); err != nil {
				c.logf("ERROR recording this instance's sessions again: %v", err)
			}
		}
		if err == nil {
			if tag, err := c.pool.Exec(rctx, `DELETE FROM instances WHERE lease_until < now()`); err == nil && tag.RowsAffected() > 0 {
				c.logf("%d instance(s) whose lease ran out removed, with their sessions", tag.RowsAffected())
			}
			_, _ = c.pool.Exec(rctx, `DELETE FROM relay WHERE created_at < now() - interval '1 minute'`)
		}
		cancel()
	}
}

// listen holds a connection of its own (LISTEN needs one connection for
// good) and dispatches notifications; it connects again after a failure.
func (c *pgCluster) listen(ctx context.Context, ready chan<- error) {
	for first := true; ; first = false {
		err := c.listenOnce(ctx, ready, first)
		if ctx.Err() != nil {
			return
		}
		if first && err != nil {
			return // joinCluster reports it
		}
		c.logf("ERROR listening for relayed requests: %v (connecting again)", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (c *pgCluster) listenOnce(ctx context.Context, ready chan<- error, first bool) error {
	conn, err := pgx.ConnectConfig(ctx, c.pool.Config().ConnConfig.Copy())
	if err == nil {
		_, err = conn.Exec(ctx, `LISTEN "`+channelOf(c.id)+`"`)
	}
	if err == nil {
		_, err = conn.Exec(ctx, `LISTEN `+sessionsChannel)
	}
	if first {
		ready <- err
	}
	if err != nil {
		if conn != nil {
			conn.Close(context.Background())
		}
		return err
	}
	defer conn.Close(context.Background())
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Channel == sessionsChannel {
			if holder, device, ok := strings.Cut(n.Payload, " "); ok && holder != c.id && device != "" {
				c.spawn(func() { c.moved(device, holder) })
			}
			continue
		}
		if strings.HasPrefix(n.Payload, "o") {
			// "o" CLASS US DEVICE US BODY (US: 0x1f): for the observers here.
			if parts := strings.SplitN(n.Payload[1:], "\x1f", 3); len(parts) == 3 {
				c.remote(parts[0], parts[1], []byte(parts[2]))
			}
			continue
		}
		id, perr := strconv.ParseInt(n.Payload[min(1, len(n.Payload)):], 10, 64)
		if perr != nil || len(n.Payload) < 2 {
			continue
		}
		switch n.Payload[0] {
		case 'a':
			c.mu.Lock()
			ch := c.waiters[id]
			delete(c.waiters, id)
			c.mu.Unlock()
			if ch != nil {
				close(ch)
			}
		case 'q':
			c.spawn(func() { c.serve(id) })
		}
	}
}

// serve performs a request relayed to this instance and notifies the
// asker. A row already answered (a notification seen twice) is skipped.
func (c *pgCluster) serve(id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), relayWait)
	defer cancel()
	var (
		r     relayRequest
		asker string
		flags int
	)
	err := c.pool.QueryRow(ctx, `SELECT asker, device, scs, class, payload, flags FROM relay
		WHERE id = $1 AND holder = $2 AND NOT answered`, id, c.id).Scan(&asker, &r.device, &r.scs, &r.class, &r.payload, &flags)
	if errors.Is(err, pgx.ErrNoRows) {
		return
	}
	if err != nil {
		c.logf("ERROR reading a relayed request: %v", err)
		return
	}
	r.payloadJSON, r.wantJSON = flags&relayPayloadJSON != 0, flags&relayWantJSON != 0
	a := c.perform(ctx, r)
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	tx, err := c.pool.Begin(wctx)
	if err == nil {
		defer tx.Rollback(wctx)
		_, err = tx.Exec(wctx, `UPDATE relay SET answered = true, code = $2, body = $3, max_age = $4, queued = $5 WHERE id = $1`,
			id, a.code, a.body, int64(a.maxAge), a.queued)
	}
	if err == nil {
		_, err = tx.Exec(wctx, `SELECT pg_notify($1, $2)`, channelOf(asker), "a"+strconv.FormatInt(id, 10))
	}
	if err == nil {
		err = tx.Commit(wctx)
	}
	if err != nil {
		c.logf("ERROR answering a relayed request: %v", err)
	}
}

// SessionUp records that this instance holds the device's session (the
// newest session wins: a device reconnecting elsewhere moves the row).
func (c *pgCluster) SessionUp(ctx context.Context, device string) error {
	_, err := c.pool.Exec(ctx, `INSERT INTO sessions (device, instance) VALUES ($1, $2)
		ON CONFLICT (device) DO UPDATE SET instance = EXCLUDED.instance, since = now()`, device, c.id)
	if err == nil {
		_, err = c.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, sessionsChannel, c.id+" "+device)
	}
	if err != nil {
		return fmt.Errorf("collector: store: record the session of device %s: %w", device, err)
	}
	return nil
}

// SessionDown forgets the device's session, if this instance still holds it.
func (c *pgCluster) SessionDown(ctx context.Context, device string) error {
	_, err := c.pool.Exec(ctx, `DELETE FROM sessions WHERE device = $1 AND instance = $2`, device, c.id)
	return err
}

// Holder returns the other live instance holding the device's session,
// or "" when none does.
func (c *pgCluster) Holder(ctx context.Context, device string) (string, error) {
	var holder string
	err := c.pool.QueryRow(ctx, `SELECT s.instance FROM sessions s JOIN instances i ON i.id = s.instance
		WHERE s.device = $1 AND s.instance <> $2 AND i.lease_until > now()`, device, c.id).Scan(&holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("collector: store: who holds the session of device %s: %w", device, err)
	}
	return holder, nil
}

// Observed records that SCSs observe the device's class here (on, the
// first one) or no longer (off, the last one gone).
func (c *pgCluster) Observed(ctx context.Context, device, class string, on bool) error {
	var err error
	if on {
		_, err = c.pool.Exec(ctx, `INSERT INTO observed (device, class, instance) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, device, class, c.id)
	} else {
		_, err = c.pool.Exec(ctx, `DELETE FROM observed WHERE device = $1 AND class = $2 AND instance = $3`, device, class, c.id)
	}
	return err
}

// maxNotifyBody bounds what goes in one notification (PostgreSQL takes
// payloads under 8,000 bytes).
const maxNotifyBody = 7000

// NotifyObservers sends body to the other live instances observing the
// device's class, for their observers; one indexed read when none does.
func (c *pgCluster) NotifyObservers(ctx context.Context, device, class string, body []byte) error {
	if len(body) > maxNotifyBody || strings.ContainsRune(string(body)+device, 0x1f) || !utf8.Valid(body) {
		return fmt.Errorf("notification of %d bytes for device %s: not sent to other instances", len(body), device)
	}
	_, err := c.pool.Exec(ctx, `SELECT pg_notify('mtc_' || o.instance, $4)
		FROM observed o JOIN instances i ON i.id = o.instance
		WHERE o.device = $1 AND o.class = $2 AND o.instance <> $3 AND i.lease_until > now()`,
		device, class, c.id, "o"+class+"\x1f"+device+"\x1f"+string(body))
	return err
}

// errRelayTimeout: the holder did not answer within relayWait.
var errRelayTimeout = errors.New("the instance holding the session did not answer")

// Relay has the holder perform r and returns its answer, or an error
// after relayWait.
func (c *pgCluster) Relay(ctx context.Context, holder string, r relayRequest) (relayAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, relayWait)
	defer cancel()
	flags := 0
	if r.payloadJSON {
		flags |= relayPayloadJSON
	}
	if r.wantJSON {
		flags |= relayWantJSON
	}
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return relayAnswer{}, err
	}
	defer tx.Rollback(context.Background())
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO relay (asker, holder, device, scs, class, payload, flags)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, c.id, holder, r.device, r.scs, r.class, nonNil(r.payload), flags).Scan(&id); err != nil {
		return relayAnswer{}, err
	}
	// Delivered when the transaction commits, so the holder finds the row.
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channelOf(holder), "q"+strconv.FormatInt(id, 10)); err != nil {
		return relayAnswer{}, err
	}
	ch := make(chan struct{})
	c.mu.Lock()
	c.waiters[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.waiters, id)
		c.mu.Unlock()
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = c.pool.Exec(dctx, `DELETE FROM relay WHERE id = $1`, id)
		dcancel()
	}
	defer forget()
	if err := tx.Commit(ctx); err != nil {
		return relayAnswer{}, err
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return relayAnswer{}, errRelayTimeout
	}
	var a relayAnswer
	var maxAge int64
	if err := c.pool.QueryRow(ctx, `SELECT code, body, max_age, queued FROM relay WHERE id = $1 AND answered`, id).
		Scan(&a.code, &a.body, &maxAge, &a.queued); err != nil {
		return relayAnswer{}, err
	}
	a.maxAge = uint32(min(max(maxAge, 0), 1<<32-1))
	return a, nil
}

// Close stops the listener and the renewal and removes this instance
// (and so its sessions) from the database: nothing is relayed to it any
// more.
func (c *pgCluster) Close() {
	c.cancel()
	c.done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.pool.Exec(ctx, `DELETE FROM instances WHERE id = $1`, c.id); err != nil && !strings.Contains(err.Error(), "closed pool") {
		c.logf("ERROR removing this instance from the database: %v", err)
	}
}
