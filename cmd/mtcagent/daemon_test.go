package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/agent/control"
	"github.com/mtcagent/mtcagent/internal/testexec"
	"github.com/mtcagent/mtcagent/mdtlog"
)

func scaled(d time.Duration) time.Duration {
	if testing.Short() || testexec.Emulated() {
		return 5 * d
	}
	return d
}

type daemon struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	state  string
}

// syncBuffer is the daemon's stderr: written by the process's copier,
// read by the test while the daemon runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// alive reports whether the daemon answers on its control socket.
func (d *daemon) alive() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var st map[string]any
	return control.Call(ctx, d.state, "status", nil, &st) == nil
}

// startDaemon runs `mtcagent run` as a real process on the simulator.
func startDaemon(t testing.TB, state, scenario, conf string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"run", "--modem", "sim:" + scenario, "--state-dir", state}, extra...)
	if conf != "" {
		args = append(args, "--config", conf)
	}
	cmd, err := testexec.Self(args...)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "MTCAGENT_TEST_MAIN=1")
	return startDaemonCmd(t, cmd, state)
}

// startDaemonCmd starts cmd, an mtcagent run command (the test binary or
// a built mtcagent), and waits for its control socket in state.
func startDaemonCmd(t testing.TB, cmd *exec.Cmd, state string) *daemon {
	t.Helper()
	d := &daemon{cmd: cmd, stderr: &syncBuffer{}, state: state}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(t) })
	deadline := time.Now().Add(scaled(10 * time.Second))
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var st map[string]any
		err := control.Call(ctx, state, "status", nil, &st)
		cancel()
		if err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready: %v\n%s", err, d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and expects a clean exit 0.
func (d *daemon) stop(t testing.TB) {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("daemon exit after SIGTERM: %v\n%s", err, d.stderr)
		}
	case <-time.After(scaled(10 * time.Second)):
		d.cmd.Process.Kill()
		<-done
		t.Errorf("daemon did not stop on SIGTERM")
	}
}

func TestMDTAgainstDaemon(t *testing.T) {
	t.Parallel() // real time, mostly waiting on the scenario's timeline: beside the others
	state := t.TempDir()
	sc := writeScenario(t, `{"dialect": "quectel"}`)
	conf := filepath.Join(t.TempDir(), "a.conf")
	os.WriteFile(conf, []byte("[agent]\nheartbeat = off\npoll = 1s\n[mdt]\ninterval = 1.28s\n"), 0o600)
	d := startDaemon(t, state, sc, conf)

	// Off until consent.
	code, out, errs := run(t, "mdt", "status", "--state-dir", state, "--json")
	if code != 0 || !strings.Contains(out, `"unset"`) && !strings.Contains(out, "unset") {
		t.Fatalf("status before consent: %d %s %s", code, out, errs)
	}
	code, out, errs = run(t, "mdt", "consent", "--yes", "--state-dir", state)
	if code != 0 || !strings.Contains(out, "What is logged") && !strings.Contains(strings.ToLower(out), "logged") {
		t.Fatalf("consent: %d %s %s", code, out, errs)
	}
	// The daemon logs while consent stands.
	deadline := time.Now().Add(scaled(8 * time.Second))
	for {
		code, out, _ = run(t, "mdt", "status", "--state-dir", state, "--json")
		var st map[string]any
		json.Unmarshal([]byte(out), &st)
		if n, _ := st["records"].(float64); code == 0 && n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not log after consent: %s\n%s", out, d.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	code, out, errs = run(t, "mdt", "show", "--state-dir", state)
	if code != 0 || !strings.Contains(out, "00101") && !strings.Contains(out, "001") {
		t.Fatalf("show: %d %s %s", code, out, errs)
	}
	exp := filepath.Join(t.TempDir(), "mdt.jsonl")
	code, _, errs = run(t, "mdt", "export", "--format", "jsonl", "--out", exp, "--state-dir", state)
	if b, _ := os.ReadFile(exp); code != 0 || bytes.Count(b, []byte("\n")) < 2 {
		t.Fatalf("export: %d %s (%d bytes)", code, errs, len(b))
	}
	code, out, errs = run(t, "mdt", "clear", "--yes", "--state-dir", state)
	if code != 0 {
		t.Fatalf("clear while running: %d %s %s", code, out, errs)
	}
	code, _, errs = run(t, "mdt", "optout", "--yes", "--state-dir", state)
	if code != 0 {
		t.Fatalf("optout: %d %s", code, errs)
	}
	d.stop(t)

	// Restart: opt-out survives; a remote consent does not resume logging.
	startDaemon(t, state, sc, conf)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var c mdtlog.Consent
	err := control.Call(ctx, state, "mdt.consent", mdtlog.ConsentRequest{Remote: true}, &c)
	if err == nil && c.State == mdtlog.Consented {
		t.Fatal("remote consent turned logging back on after opt-out")
	}
	time.Sleep(3 * time.Second) // two logging intervals: nothing may be logged
	code, out, _ = run(t, "mdt", "status", "--state-dir", state, "--json")
	var st map[string]any
	json.Unmarshal([]byte(out), &st)
	if n, _ := st["records"].(float64); code != 0 || n != 0 || !strings.Contains(out, "opted_out") {
		t.Fatalf("after opt-out and restart: %s", out)
	}
}

// startedAndDrained reports whether this run has queued its agent_started
// event and the outbox holds nothing unconfirmed.
func (d *daemon) startedAndDrained(t testing.TB) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var evs []agent.EventRecord
	if err := control.Call(ctx, d.state, "events", nil, &evs); err != nil {
		return false
	}
	if !slices.ContainsFunc(evs, func(r agent.EventRecord) bool { return r.Type == "agent_started" }) {
		return false
	}
	var ob control.OutboxState
	if err := control.Call(ctx, d.state, "outbox", nil, &ob); err != nil {
		t.Fatalf("outbox request: %v", err)
	}
	return ob.Pending == 0
}

// TestDaemonJSONLogs: with --log-format json every line the daemon writes
// is one JSON object with time, level and msg.
func TestDaemonJSONLogs(t *testing.T) {
	d := startDaemon(t, t.TempDir(), writeScenario(t, `{"dialect": "generic"}`), "", "--log-format", "json")
	d.stop(t)
	lines := strings.Split(strings.TrimSpace(d.stderr.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("too few lines: %q", d.stderr)
	}
	for _, l := range lines {
		var v struct{ Time, Level, Msg string }
		if err := json.Unmarshal([]byte(l), &v); err != nil || v.Time == "" || v.Level == "" || v.Msg == "" {
			t.Errorf("not a JSON log line: %q (%v)", l, err)
		}
	}
}
