package agent

import (
	"context"
	"crypto/ed25519"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem/at"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
	"github.com/mtcagent/mtcagent/atmodem/serialport"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/clock"
)

func slow(d time.Duration) time.Duration {
	if testing.Short() {
		return 4 * d
	}
	return d
}

type harness struct {
	a      *Agent
	sim    *modemsim.Sim
	out    *MemOutbox
	cancel context.CancelFunc
	done   chan error
	dir    string
}

func start(t *testing.T, scenario string, cfg Config) *harness {
	t.Helper()
	return startClock(t, scenario, cfg, nil)
}

// startClock is start with the agent on clk (the system clock when nil).
func startClock(t *testing.T, scenario string, cfg Config, clk clock.Clock) *harness {
	t.Helper()
	sc, err := modemsim.Parse([]byte(scenario))
	if err != nil {
		t.Fatal(err)
	}
	s := modemsim.New(sc)
	p, err := modemsim.ServePTY(s, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if cfg.StateDir == "" || cfg.StateDir == DefaultConfig().StateDir {
		cfg.StateDir = filepath.Join(t.TempDir(), "state") // never the real one
	}
	out := &MemOutbox{}
	a, err := New(cfg, Deps{
		Open:          func(context.Context) (io.ReadWriteCloser, error) { return serialport.OpenDevice(p.Path()) },
		Outbox:        out,
		Clock:         clk,
		EngineOptions: []at.Option{at.WithTimeout(slow(300 * time.Millisecond))},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{a: a, sim: s, out: out, cancel: cancel, done: make(chan error, 1), dir: cfg.StateDir}
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	<-h.done
	h.done <- nil
}

func (h *harness) waitFor(t *testing.T, typ string) EventRecord {
	t.Helper()
	bound := time.NewTimer(slow(20 * time.Second))
	defer bound.Stop()
	for {
		recent, next := h.a.recentWait()
		for _, e := range recent {
			if e.Type == typ {
				return e
			}
		}
		select {
		case <-next:
			continue
		case <-bound.C:
		}
		break
	}
	var seen []string
	for _, e := range h.a.Recent() {
		seen = append(seen, e.Type)
	}
	t.Fatalf("no %s event; saw %v", typ, seen)
	return EventRecord{}
}

func TestMonitoringEventsSignedAndSequenced(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Poll = slow(300 * time.Millisecond)
	cfg.Heartbeat = 0
	clk := clock.NewFake(time.Now(), true) // the outage's length is exact
	h := startClock(t, `{"dialect": "quectel"}`, cfg, clk)
	h.waitFor(t, "sim_bound")
	cell := uint64(0x0a0b0c0d)
	h.sim.SetNetwork(modemsim.Network{CellID: &cell})
	h.waitFor(t, "cell_changed")
	stat := 2
	h.sim.SetNetwork(modemsim.Network{Stat: &stat})
	h.waitFor(t, "connectivity_lost")
	clk.Advance(200 * time.Millisecond)
	stat = 1
	h.sim.SetNetwork(modemsim.Network{Stat: &stat})
	ev := h.waitFor(t, "connectivity_restored")
	if ms, ok := ev.Details["outage_ms"].(int64); !ok || ms != 200 {
		t.Fatalf("outage duration %v", ev.Details["outage_ms"])
	}
	h.sim.RemoveSIM()
	h.waitFor(t, "sim_removed")
	h.sim.InsertSIM(modemsim.SIMState{IMSI: "001010000000009", ICCID: "8900100000000000009"})
	h.waitFor(t, "sim_changed")

	// Every queued message verifies with the device key, with strictly
	// increasing sequence numbers.
	key, _, err := attest.LoadOrCreateDeviceKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	v := &attest.Verifier{Key: key.Public().(ed25519.PublicKey), SkipFreshness: true}
	var events []string
	for _, msg := range h.out.Messages() {
		res, err := v.Verify(msg[1:])
		if err != nil {
			t.Fatalf("queued message does not verify: %v", err)
		}
		v.LastSeq = res.Token.Seq
		events = append(events, res.Token.Event)
	}
	got := strings.Join(events, " ")
	for _, want := range []string{"agent_started", "sim_bound", "cell_changed", "connectivity_lost", "connectivity_restored", "sim_removed", "sim_changed"} {
		if !strings.Contains(got, want) {
			t.Errorf("signed events %q lack %s", got, want)
		}
	}
}

// TestHeartbeats: the heartbeat ticker runs on the agent's clock; each
// interval the fake clock advances gives one small signed heartbeat (the
// modem is the simulator on a pty; no real interval is waited for).
func TestHeartbeats(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Heartbeat = 10 * time.Second
	sc, _ := modemsim.Parse([]byte(`{}`))
	s := modemsim.New(sc)
	p, err := modemsim.ServePTY(s, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg.StateDir = t.TempDir()
	out := newSignalOutbox()
	clk := clock.NewFake(time.Now(), true)
	a, err := New(cfg, Deps{
		Open:   func(context.Context) (io.ReadWriteCloser, error) { return serialport.OpenDevice(p.Path()) },
		Outbox: out,
		Clock:  clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	if !clk.WaitArmed(2, 30*time.Second) { // the heartbeat and storage-retry tickers
		t.Fatal("the agent never armed its tickers")
	}
	heartbeats := func() int {
		n := 0
		for _, m := range out.Messages() {
			if m[0] == KindHeartbeatMsg {
				n++
			}
		}
		return n
	}
	for i := 1; i <= 3; i++ {
		clk.Advance(cfg.Heartbeat)
		out.waitUntil(t, func() bool { return heartbeats() >= i })
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	key, _, _ := attest.LoadOrCreateDeviceKey(cfg.StateDir)
	n := 0
	for _, m := range out.Messages() {
		res, err := (&attest.Verifier{Key: key.Public().(ed25519.PublicKey), SkipFreshness: true}).Verify(m[1:])
		if err != nil {
			t.Fatal(err)
		}
		if res.Token.Kind == attest.KindHeartbeat {
			n++
			if len(m)-1 > 120 {
				t.Errorf("heartbeat of %d bytes", len(m)-1)
			}
		}
	}
	if n != 3 {
		t.Fatalf("%d heartbeats, want 3 (one per interval)", n)
	}
}

// signalOutbox is a MemOutbox that tells a waiting test about each Append.
type signalOutbox struct {
	*MemOutbox
	appended chan struct{}
}

func newSignalOutbox() *signalOutbox {
	return &signalOutbox{MemOutbox: &MemOutbox{}, appended: make(chan struct{}, 1)}
}

func (o *signalOutbox) Append(msg []byte) (uint64, error) {
	n, err := o.MemOutbox.Append(msg)
	select {
	case o.appended <- struct{}{}:
	default:
	}
	return n, err
}

// waitUntil waits, an Append at a time, until cond holds; it fails the
// test after a bound (generous: a loaded machine is slow, not wrong).
func (o *signalOutbox) waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	bound := time.NewTimer(slow(30 * time.Second))
	defer bound.Stop()
	for !cond() {
		select {
		case <-o.appended:
		case <-bound.C:
			t.Fatal("condition not reached")
		}
	}
}

func TestConfigAndFirmwareChange(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "a.conf")
	os.WriteFile(conf, []byte("[agent]\nheartbeat = off\naccess_windows = 00:00-00:01\n"), 0o600)
	cfg, err := LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateDir = filepath.Join(dir, "state")
	h := start(t, `{"modem": {"revision": "R1"}}`, cfg)
	h.waitFor(t, "sim_bound")
	h.stop()
	os.WriteFile(conf, []byte("[agent]\nheartbeat = off\n"), 0o600)
	cfg2, err := LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	cfg2.StateDir = cfg.StateDir
	h2 := start(t, `{"modem": {"revision": "R2"}}`, cfg2)
	h2.waitFor(t, "config_changed")
	h2.waitFor(t, "firmware_changed")
}

func TestMisalignedAccess(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Heartbeat = 0
	now := time.Now().UTC()
	// A window that ended an hour ago: being online now is misaligned.
	from := (now.Hour()+22)%24*60 + now.Minute()
	cfg.AccessWindows = []Window{{from, (from + 60) % 1440}}
	h := start(t, `{}`, cfg)
	h.waitFor(t, "misaligned_access")
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{"[agent]\npoll = fast\n", ":2: poll: want a duration"},
		{"[agent]\nmodme = auto\n", `:2: unknown key "modme"`},
		{"[agent]\naccess_windows = 25:00-01:00\n", ":2: access_windows"},
		{"[agent]\nbinding_action = explode\n", ":2: binding_action"},
	} {
		p := filepath.Join(dir, "c.conf")
		os.WriteFile(p, []byte(tc.body), 0o600)
		_, err := LoadConfig(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.body, err, tc.want)
		}
	}
}

func mustDeriver(t *testing.T, dir string) *attest.Deriver {
	t.Helper()
	d, err := attest.LoadOrCreateDeriver(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
