package collector

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mtcagent/mtcagent/internal/config"
)

// readAll pages through a device's history with q (Limit per page) and
// returns every record and the number of pages.
func readAll(t *testing.T, st HistoryReader, device string, q HistoryQuery) ([]HistoryRecord, int) {
	t.Helper()
	var all []HistoryRecord
	pages := 0
	for {
		p, err := st.History(context.Background(), device, q)
		if err != nil {
			t.Fatalf("history of %s (%+v): %v", device, q, err)
		}
		pages++
		all = append(all, p.Records...)
		if p.Next == "" {
			return all, pages
		}
		if p.Next == q.After {
			t.Fatalf("cursor %q does not move", p.Next)
		}
		q.After = p.Next
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
	}
}

func seqsOf(rs []HistoryRecord) []uint64 {
	var out []uint64
	for _, r := range rs {
		out = append(out, r.Seq)
	}
	return out
}

// TestHistoryStore: the history on both backends — records appended in
// the device's transaction (none when it fails), alarms, the heartbeat
// summary, paging without loss or duplication (by kind, by time, past
// the scan bound, the hard page size), bad queries, retention and a
// reopen.
func TestHistoryStore(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		dir := t.TempDir()
		st := b.open(t, dir)
		t0 := time.Date(2026, 11, 1, 12, 0, 0, 123456789, time.UTC)
		at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }

		// 30 messages of d: events at seq 1..30, every third also a
		// heartbeat; two alarms in between; e gets one event.
		for i := 1; i <= 30; i++ {
			if err := st.RecordDevice(ctx, "d", func(ds *DeviceState, h *HistoryBatch) error {
				ds.LastSeq = uint64(i)
				h.Add(HistoryEvent, uint64(i), at(i).Add(-time.Second), at(i), map[string]any{"event": "cell_changed", "boot_count": 2})
				if i%3 == 0 {
					h.Heartbeat(uint64(100+i), at(i))
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if i == 10 || i == 20 {
				if err := st.AppendAlarm(ctx, Alarm{Time: at(i), Device: "d", Kind: "sequence-gap", Detail: fmt.Sprint("gap ", i)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := st.RecordDevice(ctx, "e", func(_ *DeviceState, h *HistoryBatch) error {
			h.Add(HistoryEvent, 7, time.Time{}, at(5), nil)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// A refused message: fn's error, no record and no state.
		boom := errors.New("refused")
		if err := st.RecordDevice(ctx, "d", func(ds *DeviceState, h *HistoryBatch) error {
			ds.LastSeq = 999
			h.Add(HistoryEvent, 999, time.Time{}, at(40), nil)
			h.Heartbeat(999, at(40))
			return boom
		}); err != boom {
			t.Fatalf("fn error: %v", err)
		}

		all, pages := readAll(t, st, "d", HistoryQuery{Limit: 7})
		if len(all) != 32 || pages != 5 {
			t.Fatalf("%d records in %d pages, want 32 in 5", len(all), pages)
		}
		for i, r := range all {
			if r.N != uint64(i+1) || r.Device != "d" {
				t.Fatalf("record %d: n %d device %q, want n %d", i, r.N, r.Device, i+1)
			}
		}
		ev := all[0]
		if ev.Kind != HistoryEvent || ev.Seq != 1 || !ev.At.Equal(histTime(at(1))) || !ev.SignedAt.Equal(histTime(at(1).Add(-time.Second))) ||
			string(ev.Detail) != `{"boot_count":2,"event":"cell_changed"}` {
			t.Fatalf("first record %+v detail %s", ev, ev.Detail)
		}
		if a := all[10]; a.Kind != HistoryAlarm || a.Seq != 0 || !a.SignedAt.IsZero() || string(a.Detail) != `{"text":"gap 10","type":"sequence-gap"}` {
			t.Fatalf("alarm record %+v detail %s", a, a.Detail)
		}
		p, err := st.History(ctx, "d", HistoryQuery{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		want := HeartbeatSummary{Count: 10, FirstSeq: 103, FirstAt: histTime(at(3)), LastSeq: 130, LastAt: histTime(at(30))}
		if !reflect.DeepEqual(p.Heartbeats, want) {
			t.Fatalf("heartbeats %+v, want %+v", p.Heartbeats, want)
		}
		// By kind.
		alarms, _ := readAll(t, st, "d", HistoryQuery{Kinds: []string{HistoryAlarm}, Limit: 1})
		if len(alarms) != 2 || alarms[0].N != 11 || alarms[1].N != 22 {
			t.Fatalf("alarms %+v", alarms)
		}
		// By time: minutes 5 to 14 are events 5..14 and the alarm at 10.
		win, _ := readAll(t, st, "d", HistoryQuery{Since: at(5), Until: at(15), Limit: 4})
		if len(win) != 11 || win[0].Seq != 5 || win[10].Seq != 14 {
			t.Fatalf("window: %v", seqsOf(win))
		}
		if w, _ := readAll(t, st, "d", HistoryQuery{Since: at(31)}); len(w) != 0 {
			t.Fatalf("since after the last: %v", seqsOf(w))
		}
		if w, _ := readAll(t, st, "d", HistoryQuery{Until: at(1)}); len(w) != 0 {
			t.Fatalf("until before the first: %v", seqsOf(w))
		}
		// Devices do not mix; a device never heard of has an empty history.
		if es, _ := readAll(t, st, "e", HistoryQuery{}); len(es) != 1 || es[0].Seq != 7 || es[0].N != 1 || !es[0].SignedAt.IsZero() || string(es[0].Detail) != "{}" {
			t.Fatalf("e: %+v", es)
		}
		if p, err := st.History(ctx, "nobody", HistoryQuery{}); err != nil || len(p.Records) != 0 || p.Next != "" || p.Heartbeats.Count != 0 {
			t.Fatalf("nobody: %+v %v", p, err)
		}
		// Bad queries.
		// A bound outside years 1 to 9999 is the caller's error, not the
		// store's: PostgreSQL refused 318857 AD as "timestamp out of
		// range", and the embedded store's microsecond keys wrap around.
		far := time.Date(318857, 5, 20, 0, 0, 0, 0, time.UTC)
		for _, q := range []HistoryQuery{{After: "xyz"}, {After: "h-1"}, {Kinds: []string{"heartbeat"}}, {Since: at(5), Until: at(5)}, {Limit: -1},
			{Since: far}, {Until: far}, {Until: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, {Since: time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC)}} {
			if _, err := st.History(ctx, "d", q); err == nil || strings.Contains(err.Error(), "store:") {
				t.Errorf("query %+v: %v, want it refused as a bad query", q, err)
			}
		}
		if w, _ := readAll(t, st, "d", HistoryQuery{Until: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)}); len(w) != 32 {
			t.Fatalf("until 9999-12-31: %d records, want 32", len(w))
		}
		if _, err := st.History(ctx, "d", HistoryQuery{After: "bogus"}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("bad cursor: %v", err)
		}

		// The hard page size, and the scan bound: 2,100 gaps, then one
		// binding; a read of bindings only comes in short pages with a
		// cursor, and finds it.
		if err := st.RecordDevice(ctx, "f", func(_ *DeviceState, h *HistoryBatch) error {
			for i := range 2100 {
				h.Add(HistoryGap, 0, time.Time{}, at(i), map[string]any{"type": "seq"})
			}
			h.Add(HistoryBinding, 5000, time.Time{}, at(3000), map[string]any{"result": "ok"})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if p, err := st.History(ctx, "f", HistoryQuery{Limit: 10000}); err != nil || len(p.Records) != HistoryMaxLimit || p.Next == "" {
			t.Fatalf("limit 10000: %d records, next %q, %v; want %d and a cursor", len(p.Records), p.Next, err, HistoryMaxLimit)
		}
		p, err = st.History(ctx, "f", HistoryQuery{Kinds: []string{HistoryBinding}})
		if err != nil || len(p.Records) != 0 || p.Next == "" {
			t.Fatalf("first page of bindings: %+v %v, want empty with a cursor", p, err)
		}
		if bs, pages := readAll(t, st, "f", HistoryQuery{Kinds: []string{HistoryBinding}}); len(bs) != 1 || bs[0].Seq != 5000 || pages != 2 {
			t.Fatalf("bindings: %+v in %d pages", bs, pages)
		}

		// Retention: events received before minute 25 go, at most 10 per
		// call; alarms and the other devices' stay.
		removed := 0
		for {
			n, err := st.PruneHistory(ctx, HistoryEvent, at(25), 10)
			if err != nil {
				t.Fatal(err)
			}
			if n > 10 {
				t.Fatalf("pruned %d, more than the batch of 10", n)
			}
			removed += n
			if n == 0 {
				break
			}
		}
		if removed != 24+1 { // d's events 1..24 and e's one
			t.Fatalf("pruned %d, want 25", removed)
		}
		left, _ := readAll(t, st, "d", HistoryQuery{Limit: 3})
		if len(left) != 8 || left[0].Kind != HistoryAlarm || left[1].Kind != HistoryAlarm || left[2].Seq != 25 {
			t.Fatalf("after pruning: %d records %v", len(left), seqsOf(left))
		}
		if w, _ := readAll(t, st, "d", HistoryQuery{Since: at(1), Until: at(26), Kinds: []string{HistoryEvent}}); len(w) != 1 || w[0].Seq != 25 {
			t.Fatalf("window after pruning: %v", seqsOf(w))
		}
		// Numbers are never reused after pruning.
		if err := st.RecordDevice(ctx, "e", func(_ *DeviceState, h *HistoryBatch) error {
			h.Add(HistoryEvent, 8, time.Time{}, at(50), nil)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if es, _ := readAll(t, st, "e", HistoryQuery{}); len(es) != 1 || es[0].N != 2 {
			t.Fatalf("e after pruning and a new event: %+v", es)
		}

		// Durable across a reopen.
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		st = b.open(t, dir)
		defer st.Close()
		again, _ := readAll(t, st, "d", HistoryQuery{Limit: 100})
		if !reflect.DeepEqual(again, left) {
			t.Fatalf("after reopen:\n%+v\nwant\n%+v", again, left)
		}
	})
}

// TestHistoryConcurrent: two writers of one device's history (on
// PostgreSQL two stores, as two instances) number its records 1..n with
// none lost or repeated, while a reader pages through and never misses
// one that a later page shows before it.
func TestHistoryConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		st1, st2 := twoStores(t, b)
		const n = 100
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for w, st := range []Store{st1, st2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					var err error
					if i%10 == 9 {
						err = st.AppendAlarm(ctx, Alarm{Time: time.Now().UTC(), Device: "d", Kind: "verify-failed", Detail: "x"})
					} else {
						err = st.RecordDevice(ctx, "d", func(ds *DeviceState, h *HistoryBatch) error {
							ds.Accepted++
							h.Add(HistoryEvent, uint64(w*1000+i), time.Time{}, time.Now(), nil)
							return nil
						})
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		// A reader paging meanwhile: what it sees grows by n without holes.
		var seen uint64
		q := HistoryQuery{Limit: 7}
		wgDone := make(chan struct{})
		go func() { wg.Wait(); close(wgDone) }()
		for done := false; !done; {
			select {
			case <-wgDone:
				done = true
			default:
			}
			p, err := st1.History(ctx, "d", q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range p.Records {
				if r.N != seen+1 {
					t.Fatalf("reader saw n %d after %d", r.N, seen)
				}
				seen = r.N
			}
			if p.Next != "" {
				q.After = p.Next
			} else if len(p.Records) > 0 {
				q.After = historyCursor(seen)
			}
		}
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		all, _ := readAll(t, st1, "d", HistoryQuery{Limit: HistoryMaxLimit})
		if len(all) != 2*n {
			t.Fatalf("%d records, want %d", len(all), 2*n)
		}
		for i, r := range all {
			if r.N != uint64(i+1) {
				t.Fatalf("record %d has n %d", i, r.N)
			}
		}
	})
}

func TestHistoryConfig(t *testing.T) {
	c := parseTestConfig(t, "[collector]\nhistory_keep = 48h\nhistory_keep_alarm = forever\nhistory_keep_gap = 1h\n")
	want := map[string]time.Duration{HistoryEvent: 48 * time.Hour, HistoryBinding: 48 * time.Hour, HistoryAlarm: 0, HistoryGap: time.Hour}
	if !reflect.DeepEqual(c.HistoryKeep, want) {
		t.Fatalf("keep %v, want %v", c.HistoryKeep, want)
	}
	c = parseTestConfig(t, "")
	for _, k := range HistoryKinds {
		if c.HistoryKeep[k] != DefaultHistoryKeep {
			t.Fatalf("default keep of %s: %v", k, c.HistoryKeep[k])
		}
	}
	if c := parseTestConfig(t, "[collector]\nhistory_keep = forever\n"); c.HistoryKeep[HistoryEvent] != 0 {
		t.Fatalf("forever: %v", c.HistoryKeep)
	}
	for _, bad := range []string{"history_keep = soon", "history_keep_event = 0s", "history_keep_heartbeat = 1h"} {
		f, err := config.Parse("c.conf", "[collector]\n"+bad+"\n")
		if err == nil {
			_, err = ParseConfig(f)
		}
		if err == nil || !strings.Contains(err.Error(), "c.conf:2") {
			t.Errorf("%q: %v, want an error at c.conf:2", bad, err)
		}
	}
}

// TestMigrateTolerant: the runner applies every migration a database
// lacks, also one below a version applied (branches merged in either
// order), and refuses a database holding a version it does not know.
func TestMigrateTolerant(t *testing.T) {
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
	var all []int
	for _, m := range ms {
		all = append(all, m.Version)
	}
	if got, err := Migrate(ctx, pool); err != nil || !slices.Equal(got, all) {
		t.Fatalf("first migration: %v %v, want %v", got, err, all)
	}
	if got, err := Migrate(ctx, pool); err != nil || len(got) != 0 {
		t.Fatalf("second migration: %v %v, want none", got, err)
	}
	// As if 0003 came after a later one was applied.
	if _, err := pool.Exec(ctx, `DROP TABLE history, history_heads; DELETE FROM schema_version WHERE version = 3`); err != nil {
		t.Fatal(err)
	}
	if got, err := Migrate(ctx, pool); err != nil || !slices.Equal(got, []int{3}) {
		t.Fatalf("missing 3: %v %v, want [3]", got, err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO schema_version (version, name) VALUES (9999, '9999_future')`); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, pool); err == nil || !strings.Contains(err.Error(), "schema version 9999 is newer") {
		t.Fatalf("future version: %v", err)
	}
}

// TestHistoryPrunedByServe: a running server prunes by itself, from its
// first pass: what is older than its kind's retention goes, the rest
// stays.
func TestHistoryPrunedByServe(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		testBackends.Store(t, b)
		t.Cleanup(func() { testBackends.Delete(t) })
		dir := t.TempDir()
		st := testStore(t, dir)
		now := time.Now()
		if err := st.RecordDevice(context.Background(), "dev1", func(_ *DeviceState, h *HistoryBatch) error {
			h.Add(HistoryEvent, 1, time.Time{}, now.Add(-2*time.Hour), nil)
			h.Add(HistoryEvent, 2, time.Time{}, now.Add(-time.Minute), nil)
			h.Add(HistoryAlarm, 0, time.Time{}, now.Add(-2*time.Hour), nil)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		cfg := parseTestConfig(t, "[collector]\nhistory_keep = 1h\nhistory_keep_alarm = forever\n")
		log := &syncBuf{}
		s, err := New(cfg, Options{StateDir: dir, Store: st, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		waitFor(t, 15*time.Second, "the first pruning pass", func() bool { return strings.Contains(log.String(), "history: removed 1 event record(s)") })
		p, err := st.History(context.Background(), "dev1", HistoryQuery{})
		if err != nil || len(p.Records) != 2 || p.Records[0].Kind != HistoryEvent || p.Records[0].Seq != 2 || p.Records[1].Kind != HistoryAlarm {
			t.Fatalf("left: %+v %v", p.Records, err)
		}
	})
}

// TestHistoryBatchedHeartbeats: heartbeats of many devices at once, three
// writers per device, so that one transaction holds several calls of a
// device (PostgreSQL merges a heartbeat-only device's beats into one row
// of one statement), some calls with a record too: each device's summary
// is what its calls, in the order the store applied them, add up to.
func TestHistoryBatchedHeartbeats(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		st := b.open(t, t.TempDir())
		const devices, writers, calls = 12, 3, 40
		var wg sync.WaitGroup
		errs := make(chan error, devices*writers)
		for d := range devices {
			id := fmt.Sprintf("hb%02d", d)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range calls {
						seq := uint64(1 + w*calls + i)
						err := st.RecordDevice(ctx, id, func(ds *DeviceState, h *HistoryBatch) error {
							if ds.Accepted == 0 {
								ds.TriggerSeq = seq // the first beat applied
							}
							ds.Accepted++
							ds.LastSeq = seq // the last one
							h.Heartbeat(seq, time.Now())
							if d%3 == 0 && i%7 == 3 {
								h.Add(HistoryGap, seq, time.Time{}, time.Now(), nil)
							}
							return nil
						})
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for d := range devices {
			id := fmt.Sprintf("hb%02d", d)
			ds, err := st.Device(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			p, err := st.History(ctx, id, HistoryQuery{Limit: HistoryMaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			got := p.Heartbeats
			if got.Count != writers*calls || ds.Accepted != writers*calls || got.FirstSeq != ds.TriggerSeq || got.LastSeq != ds.LastSeq {
				t.Fatalf("%s: summary count %d first %d last %d; the calls applied %d, first %d, last %d",
					id, got.Count, got.FirstSeq, got.LastSeq, ds.Accepted, ds.TriggerSeq, ds.LastSeq)
			}
			if got.FirstAt.IsZero() || got.LastAt.Before(got.FirstAt) {
				t.Fatalf("%s: summary times %v .. %v", id, got.FirstAt, got.LastAt)
			}
			want := 0
			if d%3 == 0 {
				want = writers * 6 // i%7 == 3 for i in 0..39: 3, 10, 17, 24, 31, 38
			}
			if len(p.Records) != want {
				t.Fatalf("%s: %d records, want %d", id, len(p.Records), want)
			}
		}
	})
}
