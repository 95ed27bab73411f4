package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

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

func fullState(now time.Time) DeviceState {
	return DeviceState{
		LastSeq: 41, Consumed: []uint64{43, 45}, BootCount: 3,
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
		// Overdue bookkeeping.
		for id, ds := range map[string]DeviceState{
			"heard":  {LastSeen: now, LastHeartbeat: now.Add(-time.Minute)},
			"silent": {LastSeen: now},
			"never":  {BootCount: 1},
		} {
			if err := st.UpdateDevice(ctx, id, func(p *DeviceState) error { *p = ds; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		// Only registered devices are watched ("unregistered" is heard
		// from but not in the registry).
		if err := st.UpdateDevice(ctx, "unregistered", func(p *DeviceState) error { p.LastSeen = now; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := st.AddDevices(ctx, []*Device{regDevice(t, "heard", ""), regDevice(t, "silent", ""), regDevice(t, "never", "")}, false); err != nil {
			t.Fatal(err)
		}
		w, err := st.Watched(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]Liveness{}
		for _, l := range w {
			ids[l.ID] = l
		}
		if len(ids) != 2 || ids["heard"].LastHeartbeat.IsZero() || !ids["silent"].LastHeartbeat.IsZero() || ids["silent"].LastSeen.IsZero() {
			t.Fatalf("watched %+v, want heard and silent", w)
		}
		if n, err := st.CountOverdue(ctx); err != nil || n != 1 {
			t.Fatalf("overdue %d %v, want 1 (d)", n, err)
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
		as, err := st.Alarms(ctx, "d")
		if err != nil || len(as) != 2 || as[0].Detail != "0" || as[1].Detail != "2" || as[0].Kind != "sequence-gap" {
			t.Fatalf("alarms of d: %+v %v", as, err)
		}
		if all, _ := st.Alarms(ctx, ""); len(all) != 3 {
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
		if as, _ := st.Alarms(ctx, ""); len(as) != 3 {
			t.Fatalf("alarms after reopen: %+v", as)
		}
	})
}

// TestStoreConcurrentUpdates: updates of one device from two goroutines
// (on PostgreSQL, through two stores, as two instances) never lose one.
func TestStoreConcurrentUpdates(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		dir := t.TempDir()
		st1 := b.open(t, dir)
		defer st1.Close()
		st2 := st1
		if b.name == "postgres" {
			st2 = b.open(t, dir)
			defer st2.Close()
		}
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
		{"SCSTriggerRefusalCarriesReason", TestSCSTriggerRefusalCarriesReason},
		{"MDTPull", TestMDTPull},
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
