package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	bolt "go.etcd.io/bbolt"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/pgtest"
	"github.com/mtcagent/mtcagent/wire"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// A backend opens a store; opening it again (same t, same dir) reaches
// the same data, as a restarted collector or a second instance would.
type backend struct {
	name string
	open func(t *testing.T, dir string) Store
}

var pgURLs sync.Map // *testing.T -> the test's database

func pgURL(t *testing.T) string {
	if u, ok := pgURLs.Load(t); ok {
		return u.(string)
	}
	u := pgtest.URL(t)
	pgURLs.Store(t, u)
	t.Cleanup(func() { pgURLs.Delete(t) })
	return u
}

var backends = []backend{
	{"bolt", func(t *testing.T, dir string) Store {
		st, err := OpenBolt(filepath.Join(dir, BoltFile))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
	{"postgres", func(t *testing.T, _ string) Store {
		st, err := OpenPostgres(context.Background(), pgURL(t))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
}

func backendNamed(name string) backend {
	for _, b := range backends {
		if b.name == name {
			return b
		}
	}
	panic("no backend " + name)
}

// testBackends says which backend startServer gives a test: set by
// TestServerOnPostgres for its subtests; otherwise MTC_TEST_STORE
// (bolt, the default, or postgres), so the whole package can run on
// either.
var testBackends sync.Map // *testing.T -> backend

func testStore(t *testing.T, dir string) Store {
	if b, ok := testBackends.Load(t); ok {
		return b.(backend).open(t, dir)
	}
	name := os.Getenv("MTC_TEST_STORE")
	if name == "" {
		name = "bolt"
	}
	return backendNamed(name).open(t, dir)
}

func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

// twoStores opens b twice as two instances would: on PostgreSQL two
// connection pools to one database; the embedded store once, returned
// twice (its file has one writer). Both close at the test's end.
func twoStores(t *testing.T, b backend) (Store, Store) {
	dir := t.TempDir()
	st1 := b.open(t, dir)
	t.Cleanup(func() { st1.Close() })
	if b.name != "postgres" {
		return st1, st1
	}
	st2 := b.open(t, dir)
	t.Cleanup(func() { st2.Close() })
	return st1, st2
}

func fullState(now time.Time) DeviceState {
	return DeviceState{
		LastSeq: 41, Consumed: []uint64{43, 45}, Unanswered: 2, BootCount: 3,
		Binding:  &[2][]byte{{1, 2, 3}, {4, 5}},
		LastSeen: now, LastHeartbeat: now.Add(-time.Second), Overdue: true,
		Status: []byte{0xa1, 0x01, 0x02}, StatusAt: now.Add(-2 * time.Second),
		LastEvent:  &EventSummary{Device: "d", Seq: 40, Kind: "event", Event: "cell_changed", At: now.UTC(), AtUnix: now.Unix()},
		TriggerSeq: 7, SCSSeq: map[string]uint64{"alpha": 9, "beta": 1},
		Accepted: 100, Duplicates: 4,
		MDTCursor: &wire.MDTPos{Segment: 7, Index: 4}, MDTRecords: 12, MDTPulledAt: now.Add(-time.Hour),
	}
}

// sameState compares states with times at the database's resolution.
func sameState(a, b DeviceState) bool {
	norm := func(d DeviceState) DeviceState {
		d = d.clone()
		for _, p := range []*time.Time{&d.LastSeen, &d.LastHeartbeat, &d.StatusAt, &d.MDTPulledAt} {
			*p = p.Truncate(time.Microsecond).UTC()
		}
		if d.LastEvent != nil {
			d.LastEvent.At = d.LastEvent.At.Truncate(time.Microsecond).UTC()
		}
		return d
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// TestStore: what the server relies on, on both backends.
func TestStore(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		dir := t.TempDir()
		st := b.open(t, dir)
		now := time.Now()

		if ds, err := st.Device(ctx, "nobody"); err != nil || !sameState(ds, DeviceState{}) {
			t.Fatalf("unknown device: %+v %v", ds, err)
		}
		want := fullState(now)
		if err := st.UpdateDevice(ctx, "d", func(ds *DeviceState) error { *ds = want.clone(); return nil }); err != nil {
			t.Fatal(err)
		}
		if got, err := st.Device(ctx, "d"); err != nil || !sameState(got, want) {
			t.Fatalf("read back:\n got %+v\nwant %+v (%v)", got, want, err)
		}
		// An error from fn stores nothing and comes back as is.
		boom := fmt.Errorf("boom")
		if err := st.UpdateDevice(ctx, "d", func(ds *DeviceState) error { ds.LastSeq = 999; return boom }); err != boom {
			t.Fatalf("fn error: %v", err)
		}
		if err := st.UpdateDevice(ctx, "e", func(ds *DeviceState) error { ds.LastSeq = 1; return boom }); err != boom {
			t.Fatalf("fn error: %v", err)
		}
		if got, _ := st.Device(ctx, "d"); got.LastSeq != 41 {
			t.Fatalf("failed update stored: last seq %d", got.LastSeq)
		}
		// Overdue bookkeeping: "heard" is due, "silent" due only counted
		// from its last message (not from since), "later" not yet.
		for id, ds := range map[string]DeviceState{
			"heard":  {LastSeen: now, LastHeartbeat: now.Add(-time.Minute), NextDue: now.Add(-time.Second)},
			"silent": {LastSeen: now.Add(-time.Hour), NextDue: now.Add(-50 * time.Minute)},
			"later":  {LastSeen: now, NextDue: now.Add(time.Hour)},
			"never":  {BootCount: 1},
		} {
			if err := st.UpdateDevice(ctx, id, func(p *DeviceState) error { *p = ds; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		// Only registered devices are watched ("unregistered" is heard
		// from and due but not in the registry).
		if err := st.UpdateDevice(ctx, "unregistered", func(p *DeviceState) error {
			p.LastSeen, p.NextDue = now.Add(-time.Hour), now.Add(-time.Minute)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := st.AddDevices(ctx, []*Device{regDevice(t, "heard", ""), regDevice(t, "silent", ""), regDevice(t, "later", ""), regDevice(t, "never", "")}, false); err != nil {
			t.Fatal(err)
		}
		mk := func(id string, quiet time.Duration) Alarm {
			return Alarm{Time: now.UTC(), Device: id, Kind: "heartbeat-overdue", Detail: quiet.Round(time.Minute).String()}
		}
		// "heard" has been quiet 1 min, over its 59 s; "silent" 60 min,
		// over its 10, but counted from since (a collector that started
		// 20 minutes ago) 20 min.
		as, err := st.ClaimOverdue(ctx, now, now.Add(-20*time.Minute), 10, mk)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, a := range as {
			got[a.Device] = a.Detail
		}
		if len(as) != 2 || got["heard"] != "1m0s" || got["silent"] != "20m0s" {
			t.Fatalf("claimed %+v, want heard (1m) and silent (20m since the start)", as)
		}
		if as, err := st.ClaimOverdue(ctx, now, now.Add(-20*time.Minute), 10, mk); err != nil || len(as) != 0 {
			t.Fatalf("second claim: %+v %v, want none", as, err)
		}
		if ds, _ := st.Device(ctx, "heard"); !ds.Overdue || !ds.NextDue.IsZero() {
			t.Fatalf("claimed device: %+v", ds)
		}
		if ds, _ := st.Device(ctx, "unregistered"); ds.Overdue || !ds.NextDue.IsZero() {
			t.Fatalf("unregistered device: %+v, want not flagged, not due", ds)
		}
		if n, err := st.CountOverdue(ctx); err != nil || n != 3 {
			t.Fatalf("overdue %d %v, want 3 (d, heard, silent)", n, err)
		}
		if as, _ := st.Alarms(ctx, "heard"); len(as) != 1 || as[0].Kind != "heartbeat-overdue" {
			t.Fatalf("alarms of heard: %+v", as)
		}
		// Logs, in order, filtered.
		for i, dev := range []string{"d", "e", "d"} {
			if err := st.AppendAlarm(ctx, Alarm{Time: now.Add(time.Duration(i) * time.Second).UTC(), Device: dev, Kind: "sequence-gap", Detail: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
			if err := st.AppendAudit(ctx, AuditRecord{Time: now.UTC(), SCS: "scs-" + dev, Method: "GET", Path: "/devices/" + dev + "/status", Device: dev, Class: "status", Decision: "granted", Code: "2.05"}); err != nil {
				t.Fatal(err)
			}
		}
		as, err = st.Alarms(ctx, "d")
		if err != nil || len(as) != 2 || as[0].Detail != "0" || as[1].Detail != "2" || as[0].Kind != "sequence-gap" {
			t.Fatalf("alarms of d: %+v %v", as, err)
		}
		if all, _ := st.Alarms(ctx, ""); len(all) != 5 {
			t.Fatalf("all alarms: %+v", all)
		}
		if au, err := st.Audit(ctx, "scs-e"); err != nil || len(au) != 1 || au[0].Path != "/devices/e/status" || au[0].Code != "2.05" {
			t.Fatalf("audit of scs-e: %+v %v", au, err)
		}
		// Durable across a reopen (a restart).
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		st = b.open(t, dir)
		defer st.Close()
		if got, err := st.Device(ctx, "d"); err != nil || !sameState(got, want) {
			t.Fatalf("after reopen:\n got %+v\nwant %+v (%v)", got, want, err)
		}
		if as, _ := st.Alarms(ctx, ""); len(as) != 5 {
			t.Fatalf("alarms after reopen: %+v", as)
		}
	})
}

// TestStoreConcurrentUpdates: updates of one device from two goroutines
// (on PostgreSQL, through two stores, as two instances) never lose one.
func TestStoreConcurrentUpdates(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		st1, st2 := twoStores(t, b)
		const n = 200
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, st := range []Store{st1, st2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n {
					if err := st.UpdateDevice(ctx, "d", func(ds *DeviceState) error {
						ds.LastSeq++
						ds.Accepted++
						return nil
					}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if ds, _ := st1.Device(ctx, "d"); ds.LastSeq != 2*n || ds.Accepted != 2*n {
			t.Fatalf("last seq %d accepted %d, want %d: updates lost", ds.LastSeq, ds.Accepted, 2*n)
		}
	})
}

// TestStoreSharedTransactions: many concurrent RecordDevice calls over a
// few devices (on PostgreSQL from two stores, as two instances), which
// each store groups into shared transactions: a call whose fn
// fails leaves nothing, not even to the next call of the same device in
// its batch, a panicking fn fails its call alone, and every other call's
// state and history are in, exactly once.
func TestStoreSharedTransactions(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		st1, st2 := twoStores(t, b)
		const (
			devices = 5
			calls   = 120 // per worker
			workers = 16
		)
		errRefuse := errors.New("refused")
		var (
			mu   sync.Mutex
			good = map[string]int{}
			wg   sync.WaitGroup
		)
		fail := make(chan error, workers)
		for w := range workers {
			st := []Store{st1, st2}[w%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range calls {
					id := fmt.Sprintf("d%d", (w+i)%devices)
					refuse, boom := i%7 == 3, i%29 == 5
					err := st.RecordDevice(ctx, id, func(ds *DeviceState, h *HistoryBatch) error {
						ds.Accepted++
						ds.LastSeq += 1000 // a failing call's changes must not reach the next one
						h.Add(HistoryEvent, ds.Accepted, time.Time{}, time.Unix(1e9, 0), map[string]any{"n": ds.Accepted})
						if boom {
							panic("fn panics")
						}
						if refuse {
							return errRefuse
						}
						ds.LastSeq -= 1000
						return nil
					})
					switch {
					case refuse && !errors.Is(err, errRefuse):
						fail <- fmt.Errorf("a refused call returned %v", err)
						return
					case boom && (err == nil || !strings.Contains(err.Error(), "panic")):
						fail <- fmt.Errorf("a panicking call returned %v", err)
						return
					case !refuse && !boom && err != nil:
						fail <- err
						return
					case err == nil:
						mu.Lock()
						good[id]++
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		close(fail)
		for err := range fail {
			t.Fatal(err)
		}
		for id, n := range good {
			ds, err := st1.Device(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if ds.Accepted != uint64(n) || ds.LastSeq != 0 {
				t.Errorf("%s: accepted %d, last seq %d; want %d and 0 (a failed call's changes leaked, or a call was lost or applied twice)", id, ds.Accepted, ds.LastSeq, n)
			}
			var recs []HistoryRecord
			for q := (HistoryQuery{Limit: HistoryMaxLimit}); ; {
				p, err := st1.History(ctx, id, q)
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, p.Records...)
				if p.Next == "" {
					break
				}
				q.After = p.Next
			}
			if len(recs) != n {
				t.Errorf("%s: %d history records, want %d", id, len(recs), n)
			}
			for i, r := range recs {
				if r.Seq != uint64(i+1) {
					t.Errorf("%s: record %d has seq %d: out of order or repeated", id, i, r.Seq)
					break
				}
			}
		}
	})
}

// TestStoreFirstMessageLockOrder: a batch with a device's first message
// beside a known device's takes the rows' locks in id order only. Here,
// while the batch holds d3's lock and has found d0 missing, another
// transaction creates d0, locks it and waits on d3: the batch creating
// and locking d0 now would be a deadlock (PostgreSQL fails one side);
// it must let go of d3 instead, and both commit.
func TestStoreFirstMessageLockOrder(t *testing.T) {
	ctx := context.Background()
	st := backendNamed("postgres").open(t, t.TempDir())
	defer st.Close()
	if err := st.UpdateDevice(ctx, "d3", func(ds *DeviceState) error { ds.LastSeq = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, pgURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	other := make(chan error, 1)
	var once sync.Once
	testHookMissingRows = func(missing []string) {
		once.Do(func() {
			if !reflect.DeepEqual(missing, []string{"d0"}) {
				t.Errorf("missing rows %q, want [d0]", missing)
			}
			if _, err := pool.Exec(ctx, `INSERT INTO devices (id) VALUES ('d0')`); err != nil {
				t.Error(err)
			}
			go func() {
				other <- pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					for _, id := range []string{"d0", "d3"} {
						if _, err := tx.Exec(ctx, `UPDATE devices SET accepted = accepted + 100 WHERE id = $1`, id); err != nil {
							return err
						}
					}
					return nil
				})
			}()
			// Until the other transaction waits on d3.
			for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
				var n int
				if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
					t.Error(err)
					return
				}
				if n > 0 {
					return
				}
				if time.Since(start) > 10*time.Second {
					t.Error("the other transaction never waited on d3")
					return
				}
			}
		})
	}
	t.Cleanup(func() { testHookMissingRows = nil })

	calls := []*recordCall{
		{id: "d0", fn: func(ds *DeviceState, _ *HistoryBatch) error { ds.Accepted++; return nil }, done: make(chan error, 1)},
		{id: "d3", fn: func(ds *DeviceState, _ *HistoryBatch) error { ds.Accepted++; return nil }, done: make(chan error, 1)},
	}
	st.(*pgStore).recordBatch(calls)
	for _, c := range calls {
		if err := <-c.done; err != nil {
			t.Errorf("batch: %s: %v", c.id, err)
		}
	}
	if err := <-other; err != nil {
		t.Errorf("the other transaction: %v", err)
	}
	for _, id := range []string{"d0", "d3"} {
		if ds, err := st.Device(ctx, id); err != nil || ds.Accepted != 101 {
			t.Errorf("%s: accepted %d (%v), want 101 (both changes)", id, ds.Accepted, err)
		}
	}
}

// TestStoreCorruptRowAlone: on PostgreSQL, a device whose stored row no
// longer decodes (here a last_event that is not an object, as a hand edit
// could leave) fails its own updates with a clear error, while the
// updates of other devices that share its transactions go in.
func TestStoreCorruptRowAlone(t *testing.T) {
	ctx := context.Background()
	st := backendNamed("postgres").open(t, t.TempDir())
	defer st.Close()
	for _, id := range []string{"bad", "g0", "g1", "g2", "g3"} {
		if err := st.UpdateDevice(ctx, id, func(ds *DeviceState) error { ds.LastSeq = 1; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	pool, err := pgxpool.New(ctx, pgURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `UPDATE devices SET last_event = '"not an object"' WHERE id = 'bad'`); err != nil {
		t.Fatal(err)
	}
	const rounds = 30
	var wg sync.WaitGroup
	errs := make(chan error, 5*rounds)
	for r := range rounds {
		for _, id := range []string{"bad", "g0", "g1", "g2", "g3"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := st.UpdateDevice(ctx, id, func(ds *DeviceState) error { ds.Accepted++; return nil })
				switch {
				case id == "bad" && !errors.Is(err, errCorruptRow):
					errs <- fmt.Errorf("round %d: the corrupt row's update returned %v, want errCorruptRow", r, err)
				case id != "bad" && err != nil:
					errs <- fmt.Errorf("round %d: %s failed beside the corrupt row: %v", r, id, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, id := range []string{"g0", "g1", "g2", "g3"} {
		if ds, err := st.Device(ctx, id); err != nil || ds.Accepted != rounds {
			t.Fatalf("%s: accepted %d (%v), want %d", id, ds.Accepted, err, rounds)
		}
	}
}

// TestClaimOverdueOnce: two claimers (on PostgreSQL two stores, as two
// instances) take the due devices in small batches at once: each device
// is flagged and alarmed exactly once, none is missed.
func TestClaimOverdueOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		st1, st2 := twoStores(t, b)
		const n = 300
		now := time.Now()
		var regs []*Device
		for i := range n {
			id := fmt.Sprintf("dev%03d", i)
			regs = append(regs, regDevice(t, id, ""))
			if err := st1.UpdateDevice(ctx, id, func(ds *DeviceState) error {
				ds.LastSeen, ds.NextDue = now.Add(-time.Hour), now.Add(-time.Duration(i+1)*time.Second)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := st1.AddDevices(ctx, regs, false); err != nil {
			t.Fatal(err)
		}
		var (
			mu    sync.Mutex
			count = map[string]int{}
			wg    sync.WaitGroup
		)
		for _, st := range []Store{st1, st2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 2 * n {
					as, err := st.ClaimOverdue(ctx, now, now.Add(-2*time.Hour), 7, func(id string, _ time.Duration) Alarm {
						return Alarm{Time: now, Device: id, Kind: "heartbeat-overdue"}
					})
					if err != nil {
						t.Error(err)
						return
					}
					if len(as) == 0 {
						return
					}
					mu.Lock()
					for _, a := range as {
						count[a.Device]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(count) != n {
			t.Fatalf("%d devices claimed, want %d", len(count), n)
		}
		for id, c := range count {
			if c != 1 {
				t.Fatalf("%s claimed %d times", id, c)
			}
		}
		as, err := st1.Alarms(ctx, "")
		if err != nil || len(as) != n {
			t.Fatalf("%d alarms stored (%v), want %d", len(as), err, n)
		}
		if c, _ := st1.CountOverdue(ctx); c != n {
			t.Fatalf("%d flagged, want %d", c, n)
		}
	})
}

// TestConcurrentAccept: two sessions of one device post the same tokens,
// in order, at once (on PostgreSQL, to two collector instances). Each
// sequence number is accepted exactly once, by one of them; the other
// gets a duplicate; no increment is lost and no gap is seen.
func TestConcurrentAccept(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		dev := newTestDevice(t, "dev1")
		cfg := parseTestConfig(t, testConfigText(dev))
		log := &syncBuf{}
		dir := t.TempDir()
		s1, err := New(cfg, Options{StateDir: dir, Store: b.open(t, dir), Log: log})
		if err != nil {
			t.Fatal(err)
		}
		defer s1.Close()
		s2 := s1
		if b.name == "postgres" {
			if s2, err = New(cfg, Options{StateDir: t.TempDir(), Store: b.open(t, dir), Log: log}); err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
		}
		const n = 100
		toks := make([][]byte, n)
		for i := range toks {
			if toks[i], err = dev.iss.SignHeartbeat(); err != nil {
				t.Fatal(err)
			}
		}
		d := cfg.Devices["dev1"]
		var wg sync.WaitGroup
		for _, s := range []*Server{s1, s2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, tok := range toks {
					if code := s.accept(d, attest.KindHeartbeat, tok); code != 0x44 { // 2.04
						t.Errorf("accept: %v", code)
					}
				}
			}()
		}
		wg.Wait()
		ds := s1.device("dev1")
		if ds.Accepted != n || ds.Duplicates != n || ds.LastSeq != uint64(n) {
			t.Fatalf("accepted %d, duplicates %d, last seq %d; want %d, %d, %d", ds.Accepted, ds.Duplicates, ds.LastSeq, n, n, n)
		}
		out := log.String()
		for seq := 1; seq <= n; seq++ {
			if c := strings.Count(out, fmt.Sprintf("heartbeat verified (seq %d)\n", seq)); c != 1 {
				t.Fatalf("seq %d accepted %d times", seq, c)
			}
		}
		if strings.Contains(out, "sequence-gap") {
			t.Fatalf("gap alarm:\n%s", out)
		}
	})
}

// TestImportStateJSON: a state directory of an older collector upgrades:
// its state.json is read once into the store and renamed.
func TestImportStateJSON(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		dir := t.TempDir()
		old := `{"devices": {"dev1": {"last_seq": 17, "consumed": [19], "boot_count": 2, "accepted": 5, "duplicates": 1,
			"last_event": {"device": "dev1", "seq": 16, "kind": "event", "event": "sim_removed", "at": "2026-11-30T10:00:00Z"},
			"scs_seq": {"alpha": 3}, "trigger_seq": 4, "last_seen": "2026-11-30T10:00:00Z"}}}`
		if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(old), 0o600); err != nil {
			t.Fatal(err)
		}
		dev := newTestDevice(t, "dev1")
		log := &syncBuf{}
		s, err := New(parseTestConfig(t, testConfigText(dev)), Options{StateDir: dir, Store: b.open(t, dir), Log: log})
		if err != nil {
			t.Fatal(err)
		}
		ds := s.device("dev1")
		s.Close()
		if ds.LastSeq != 17 || len(ds.Consumed) != 1 || ds.BootCount != 2 || ds.Accepted != 5 || ds.SCSSeq["alpha"] != 3 || ds.TriggerSeq != 4 ||
			ds.LastEvent == nil || ds.LastEvent.Event != "sim_removed" || ds.LastEvent.AtUnix != 1796032800 {
			t.Fatalf("imported %+v (event %+v)", ds, ds.LastEvent)
		}
		if _, err := os.Stat(filepath.Join(dir, StateFile)); !os.IsNotExist(err) {
			t.Fatalf("state.json still there: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, StateFile+".imported")); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(log.String(), "imported the state of 1 device(s)") {
			t.Fatalf("log:\n%s", log)
		}
	})
}

// TestServerOnPostgres runs the collector's server tests on PostgreSQL
// (the rest of the package runs them on the embedded default; set
// MTC_TEST_STORE=postgres to run all of it there).
func TestServerOnPostgres(t *testing.T) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"DeviceTokens", TestDeviceTokens},
		{"HeartbeatOverdue", TestHeartbeatOverdue},
		{"ScheduledReport", TestScheduledReport},
		{"EventWithControlCharacter", TestEventWithControlCharacter},
		{"SCSTriggerRefusalCarriesReason", TestSCSTriggerRefusalCarriesReason},
		{"MDTPull", TestMDTPull},
		{"GapDuringChallenge", TestGapDuringChallenge},
		{"GapAfterUnansweredChallenge", TestGapAfterUnansweredChallenge},
		{"CIDPrefix", TestCIDPrefix},
	} {
		t.Run(c.name, func(t *testing.T) {
			testBackends.Store(t, backendNamed("postgres"))
			t.Cleanup(func() { testBackends.Delete(t) })
			c.fn(t)
		})
	}
}

// A second process (or open) of one embedded store is refused, not
// blocked: bbolt locks the file.
func TestBoltLocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), BoltFile)
	st, err := OpenBolt(p)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := OpenBolt(p); !errors.Is(err, ErrStoreLocked) {
		t.Fatalf("second open: %v, want ErrStoreLocked", err)
	}
}

// TestMigrateOutOfOrder: a migration numbered below the newest applied
// one (a parallel branch's, merged later) is applied when it arrives;
// a database with a version this build does not know is refused.
func TestMigrateOutOfOrder(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var without []Migration
	for _, m := range ms {
		if m.Version != 3 {
			without = append(without, m)
		}
	}
	if _, err := migrate(ctx, pool, without); err != nil {
		t.Fatal(err)
	}
	late := Migration{Version: 3, Name: "0003_late", SQL: `CREATE TABLE late_one (x int)`}
	with := append([]Migration{late}, without...)
	sort.Slice(with, func(i, j int) bool { return with[i].Version < with[j].Version })
	applied, err := migrate(ctx, pool, with)
	if err != nil || !reflect.DeepEqual(applied, []int{3}) {
		t.Fatalf("applied %v (%v), want [3]", applied, err)
	}
	if applied, err := migrate(ctx, pool, with); err != nil || len(applied) != 0 {
		t.Fatalf("again: applied %v (%v), want none", applied, err)
	}
	if _, err := migrate(ctx, pool, without); err == nil || !strings.Contains(err.Error(), "schema version 3 is unknown") {
		t.Fatalf("older build on a newer database: %v", err)
	}
}

// TestDueBackfill: a store from before the due index (a bbolt file
// without its bucket, a database at schema version 2) gets one on
// upgrade: a device heard from and not overdue is due after its
// registered timeout, or DefaultHeartbeatTimeout.
func TestDueBackfill(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	old := now.Add(-time.Hour)
	mk := func(id string, _ time.Duration) Alarm { return Alarm{Time: now, Device: id, Kind: "heartbeat-overdue"} }
	// quiet: heard an hour ago, over the default 35 min: due; fresh:
	// heard now: due in 35 min.
	states := map[string]time.Time{"quiet": old, "fresh": now}
	check := func(t *testing.T, st Store) {
		t.Helper()
		as, err := st.ClaimOverdue(ctx, now, now.Add(-2*time.Hour), 10, mk)
		if err != nil || len(as) != 1 || as[0].Device != "quiet" {
			t.Fatalf("claimed %+v %v, want quiet only", as, err)
		}
		if ds, _ := st.Device(ctx, "fresh"); !ds.NextDue.Round(time.Second).Equal(now.Add(DefaultHeartbeatTimeout).Round(time.Second)) {
			t.Fatalf("fresh due %v, want %v", ds.NextDue, now.Add(DefaultHeartbeatTimeout))
		}
	}
	t.Run("bolt", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), BoltFile)
		st, err := OpenBolt(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AddDevices(ctx, []*Device{regDevice(t, "quiet", ""), regDevice(t, "fresh", "")}, false); err != nil {
			t.Fatal(err)
		}
		for id, seen := range states {
			if err := st.UpdateDevice(ctx, id, func(ds *DeviceState) error { ds.LastSeen = seen; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		// As an older file: no due bucket.
		if err := st.(*boltStore).db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketDue) }); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if st, err = OpenBolt(p); err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		check(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgURL(t)
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		ms, _ := Migrations()
		if _, err := migrate(ctx, pool, ms[:2]); err != nil {
			t.Fatal(err)
		}
		for id, seen := range states {
			if _, err := pool.Exec(ctx, `INSERT INTO registry_devices (id, public_key) VALUES ($1, '\x00')`, id); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, `INSERT INTO devices (id, last_seen) VALUES ($1, $2)`, id, seen); err != nil {
				t.Fatal(err)
			}
		}
		st, err := OpenPostgres(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		check(t, st)
	})
}
