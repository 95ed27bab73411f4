//go:build !mtc_omit_coap

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/internal/config"
	"github.com/mtcagent/mtcagent/internal/testexec"
)

// collectorLog records the collector's timeline.
type collectorLog struct {
	mu    sync.Mutex
	lines []string
}

func (c *collectorLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		c.lines = append(c.lines, l)
	}
	return len(p), nil
}

func (c *collectorLog) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

var verifiedRE = regexp.MustCompile(`device meter-1: (?:event (\S+)|heartbeat|binding attestation) verified \((?:nonce, )?seq (\d+)\)`)

// verified returns the sequence numbers of accepted event and heartbeat
// tokens in order, and the event names.
func (c *collectorLog) verified() (seqs []uint64, events []string) {
	for _, l := range c.all() {
		m := verifiedRE.FindStringSubmatch(l)
		if m == nil || strings.Contains(l, "binding attestation") {
			continue
		}
		n, _ := strconv.ParseUint(m[2], 10, 64)
		seqs = append(seqs, n)
		if m[1] != "" {
			events = append(events, m[1])
		}
	}
	return
}

func (c *collectorLog) alarms(kind string) []string {
	var out []string
	for _, l := range c.all() {
		if strings.Contains(l, "ALARM") && strings.Contains(l, kind) {
			out = append(out, l)
		}
	}
	return out
}

type e2e struct {
	t        testing.TB
	state    string
	colState string
	cfg      *collector.Config
	log      *collectorLog
	addr     string
	srv      *collector.Server
	cancel   context.CancelFunc
	conf     string
}

func newE2E(t testing.TB) *e2e {
	e := &e2e{t: t, state: t.TempDir(), colState: t.TempDir(), log: &collectorLog{}}
	code, pub, errs := run(t, "key", "public", "--state-dir", e.state)
	if code != 0 {
		t.Fatalf("key public: %s", errs)
	}
	pubPath := filepath.Join(t.TempDir(), "dev.pub")
	os.WriteFile(pubPath, []byte(pub), 0o600)
	f, err := config.Parse("collector.conf", fmt.Sprintf(`
[collector]
heartbeat_timeout = 10m
[device "meter-1"]
psk_identity = meter-1
psk = 000102030405060708090a0b0c0d0e0f
public_key = %s
`, pubPath))
	if err != nil {
		t.Fatal(err)
	}
	if e.cfg, err = collector.ParseConfig(f); err != nil {
		t.Fatal(err)
	}
	e.startCollector("127.0.0.1:0")
	e.conf = filepath.Join(t.TempDir(), "agent.conf")
	os.WriteFile(e.conf, []byte(`[agent]
heartbeat = 1s
poll = 1s
[uplink]
addr = `+e.addr+`
name = operator
psk_identity = meter-1
psk = 000102030405060708090a0b0c0d0e0f
`), 0o600)
	t.Cleanup(e.stopCollector)
	return e
}

func (e *e2e) startCollector(addr string) {
	srv, err := collector.New(e.cfg, collector.Options{StateDir: e.colState, Log: e.log})
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := srv.ListenDevices(addr)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Run(ctx)
	e.srv, e.cancel, e.addr = srv, cancel, a.String()
}

func (e *e2e) stopCollector() {
	if e.srv != nil {
		e.cancel()
		e.srv.Close()
		e.srv = nil
	}
}

func (e *e2e) waitEvent(name string, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if _, evs := e.log.verified(); strings.Contains(" "+strings.Join(evs, " ")+" ", " "+name+" ") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("collector never verified %s; log:\n%s", name, strings.Join(e.log.all(), "\n"))
}

// checkOrder: strictly increasing sequence numbers, no duplicates, no gap
// alarm.
func (e *e2e) checkOrder() {
	e.t.Helper()
	seqs, _ := e.log.verified()
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			e.t.Fatalf("out of order or duplicate: seq %d after %d", seqs[i], seqs[i-1])
		}
	}
	if a := e.log.alarms("sequence-gap"); len(a) > 0 {
		e.t.Fatalf("messages lost: %v; collector log:\n%s", a, strings.Join(e.log.all(), "\n"))
	}
}

// TestCollectorDownThenBack: the collector is down while the device has a
// SIM swap and a cell change; afterwards every event arrives, in order,
// without duplicates.
func TestCollectorDownThenBack(t *testing.T) {
	// Not parallel: the collector's port is let go and taken again, and
	// another test's UDP socket could take it in between.
	e := newE2E(t)
	down := 30 * time.Second
	if testing.Short() || testexec.Emulated() {
		down = 5 * time.Second
	}
	sc := writeScenario(t, fmt.Sprintf(`{"dialect": "quectel", "timeline": [
	  {"at": "%s", "sim": "remove"},
	  {"at": "%s", "sim": {"imsi": "001010000000002", "iccid": "8900100000000000002"}},
	  {"at": "%s", "network": {"cell_id": 4242}}]}`,
		scaled(2*time.Second), scaled(2*time.Second)+time.Second, scaled(2*time.Second)+2*time.Second))
	startDaemon(t, e.state, sc, e.conf)
	e.waitEvent("sim_bound", scaled(10*time.Second))
	addr := e.addr
	e.stopCollector()
	time.Sleep(down)
	e.startCollector(addr)
	e.waitEvent("sim_changed", scaled(30*time.Second))
	e.waitEvent("cell_changed", scaled(10*time.Second))
	_, evs := e.log.verified()
	got := strings.Join(evs, " ")
	if !regexp.MustCompile(`sim_bound.*sim_removed.*sim_changed.*cell_changed`).MatchString(got) {
		t.Fatalf("events out of order: %s", got)
	}
	e.checkOrder()
}

// TestDaemonKilledRepeatedly: SIGKILL mid-run, again and again; the outbox
// stays intact and nothing is lost (the collector sees no gap that a
// restart does not explain).
func TestDaemonKilledRepeatedly(t *testing.T) {
	e := newE2E(t)
	kills := 50
	if testing.Short() || testexec.Emulated() {
		kills = 5
	}
	sc := writeScenario(t, `{"dialect": "generic"}`)
	// queued counts the events the killed runs logged as queued: the log
	// line follows the outbox's durable append, so each of them must reach
	// the collector. A kill early in start-up may leave a run with none.
	queued := 0
	for i := 0; i < kills; i++ {
		d := startDaemon(t, e.state, sc, e.conf)
		time.Sleep(time.Duration(50+rand.IntN(300)) * time.Millisecond)
		d.cmd.Process.Signal(syscall.SIGKILL)
		d.cmd.Wait()
		queued += strings.Count(d.stderr.String(), " msg=event ")
	}
	if queued < kills/2 {
		t.Fatalf("only %d events queued over %d runs: the kills came too early to test anything", queued, kills)
	}
	// The outbox opens cleanly: no damaged record.
	ob, err := outbox.Open(filepath.Join(e.state, "outbox"), outbox.Options{})
	if err != nil {
		t.Fatalf("outbox after %d kills: %v", kills, err)
	}
	rep := ob.Report()
	ob.Close()
	if len(rep.Corrupt) > 0 {
		t.Fatalf("outbox damaged after kills: %+v", rep)
	}
	// A last, clean run delivers whatever was left: once its own
	// agent_started is queued and the outbox is empty, everything the
	// killed runs queued has been confirmed by the collector.
	d := startDaemon(t, e.state, sc, e.conf)
	deadline := time.Now().Add(scaled(30 * time.Second))
	for !d.startedAndDrained(t) {
		if time.Now().After(deadline) {
			t.Fatalf("the outbox never drained; log:\n%s", strings.Join(e.log.all(), "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.stop(t)
	e.checkOrder()
	// Heartbeats are verified too, so at least every queued event.
	seqs, _ := e.log.verified()
	t.Logf("%d kills; %d events queued by the killed runs; %d messages verified", kills, queued, len(seqs))
	if len(seqs) < queued {
		t.Fatalf("%d messages verified, but the killed runs queued %d events; collector log:\n%s", len(seqs), queued, strings.Join(e.log.all(), "\n"))
	}
}

// TestModemFaultsDuringRun: the modem reboots and is unplugged while the
// daemon runs; it recovers, and a cell change afterwards still arrives.
func TestModemFaultsDuringRun(t *testing.T) {
	t.Parallel() // real time, mostly waiting on the scenario's timeline: beside the others
	e := newE2E(t)
	u := scaled(time.Second)
	sc := writeScenario(t, fmt.Sprintf(`{"dialect": "quectel", "timeline": [
	  {"at": "%s", "fault": "reboot", "for": "500ms"},
	  {"at": "%s", "fault": "unplug", "for": "%s"},
	  {"at": "%s", "network": {"cell_id": 4343}}]}`, 2*u, 4*u, 2*u, 9*u))
	startDaemon(t, e.state, sc, e.conf)
	e.waitEvent("modem_reset", 10*u)
	e.waitEvent("port_lost", 10*u)
	e.waitEvent("port_regained", 10*u)
	e.waitEvent("cell_changed", 15*u)
	e.checkOrder()
}

// countVerified counts the collector's verified events called name.
func (e *e2e) countVerified(name string) int {
	_, evs := e.log.verified()
	n := 0
	for _, ev := range evs {
		if ev == name {
			n++
		}
	}
	return n
}
