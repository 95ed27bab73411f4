//go:build !mtc_omit_sim

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/internal/testexec"
)

// Hostile modems (issue 12): whatever the modem sends, `mtcagent status`
// ends, takes no more than 32 MiB, and reports what it could not read as
// null, never a piece of the noise.

// hostileScenarios are simulator scenarios of modems that answer one
// command with an endless or over-long reply.
var hostileScenarios = map[string]string{
	// AT+CGMR answered with lines without end (aborted by the host's
	// next line).
	"endless": `{"dialect": "quectel", "responses": {"AT+CGMR": {"lines": ["EVIL1.0"], "endless": true}}}`,
	// The same, deaf to the abort for 3 s.
	"endless-deaf": `{"dialect": "quectel", "responses": {"AT+CGMR": {"lines": ["EVIL1.0"], "endless": true, "for": "3s"}}}`,
	// A 1 MB line without a line end, then a plausible revision.
	"megabyte-line": `{"dialect": "generic", "responses": {"AT+CGMR": {"long": 1048576, "raw": "EVIL1.0\\r\\n"}}}`,
	// A registration query answered without end, with lines that are
	// also the registration URC.
	"endless-cereg": `{"dialect": "generic", "responses": {"AT+CEREG?": {"lines": ["+CEREG: 2,1,\"FFFF\",\"0BADCE11\",7"], "endless": true}}}`,
}

// statusPeakRSS runs `mtcagent status --json --modem sim:FILE` as its own
// process and returns its output and peak RSS in bytes.
func statusPeakRSS(t testing.TB, scenario string) (map[string]any, int64, string) {
	t.Helper()
	sc := writeScenario(t, scenario)
	cmd, err := testexec.Self("status", "--json", "--modem", "sim:"+sc)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd.Env = append(os.Environ(), "MTCAGENT_TEST_MAIN=1", "GOMAXPROCS=2")
	cmd.Stdout, cmd.Stderr = &out, &errb
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { <-ctx.Done(); cmd.Process.Kill() }()
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("status never returned under a hostile modem\n%s", errb.String())
	}
	if err != nil {
		t.Fatalf("status: %v\n%s", err, errb.String())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Skip("no rusage on this platform")
	}
	var j map[string]any
	if err := json.Unmarshal(out.Bytes(), &j); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out.String())
	}
	return j, int64(ru.Maxrss) * 1024, errb.String() // Linux: Maxrss in KiB
}

func TestStatusHostileModem(t *testing.T) {
	t.Parallel() // real time, mostly waiting on the scenario's timeline: beside the others
	bound := int64(32 << 20)
	if raceEnabled {
		bound *= 4 // the race detector's shadow memory; 32 MiB is checked without -race
	}
	for name, sc := range hostileScenarios {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			j, rss, _ := statusPeakRSS(t, sc)
			t.Logf("%s: peak RSS %.1f MiB, %v", name, float64(rss)/(1<<20), time.Since(start).Round(time.Millisecond))
			// Under qemu-user the child is the emulator, whose own memory
			// is most of the figure: the bound is checked natively.
			if rss > bound && !testexec.Emulated() {
				t.Errorf("peak RSS %.1f MiB, bound %d MiB", float64(rss)/(1<<20), bound>>20)
			}
			modem, _ := j["modem"].(map[string]any)
			if rev, _ := modem["revision"].(string); strings.Contains(rev, "EVIL") || strings.Contains(rev, "AAAA") {
				t.Errorf("the hostile reply became the revision %.40q", rev)
			}
			// A modem deaf to the abort may still be streaming when the IMEI
			// is read: unknown (null) is then the right answer, and what
			// counts is that no line of the stream became a value.
			// Recovery: the other reads work. Not for the modem deaf to the
			// abort: while it streams (3 s, against 5 s command timeouts
			// on a loaded machine) any read may fail, and unknown is then
			// the right answer; what counts there is that no line of the
			// stream became a value.
			if name != "endless-deaf" && (modem["model"] == nil || modem["imei"] == nil) {
				t.Errorf("the reads after the hostile reply failed: %v", modem)
			}
			if imei, _ := modem["imei"].(string); strings.Contains(imei, "EVIL") {
				t.Errorf("the hostile reply became the IMEI %q", imei)
			}
			if reg, _ := j["registration"].(map[string]any); reg != nil {
				if eps, _ := reg["eps"].(map[string]any); eps != nil && eps["cell_id"] != nil {
					if id, _ := eps["cell_id"].(float64); id == 0x0BADCE11 {
						t.Errorf("a line of the endless reply became the EPS cell")
					}
				}
			}
		})
	}
}

// daemonPeakRSS runs the daemon on a hostile modem for d, polling every
// second, and returns its peak RSS in bytes, read from /proc before it is
// stopped, and its log.
func daemonPeakRSS(t testing.TB, scenario string, d time.Duration) (int64, string) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "agent.conf")
	if err := os.WriteFile(conf, []byte("[agent]\npoll = 1s\nheartbeat = 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dm := startDaemon(t, t.TempDir(), writeScenario(t, scenario), conf)
	time.Sleep(d)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", dm.cmd.Process.Pid))
	if err != nil {
		t.Skip("no /proc here")
	}
	var kib int64
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kib, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	if !dm.alive() {
		t.Fatalf("the daemon stopped answering under the hostile modem:\n%s", dm.stderr)
	}
	dm.stop(t)
	return kib << 10, dm.stderr.String()
}

// TestDaemonHostileModem: the daemon polls a modem that answers the
// registration query without end, every second, and stays bounded (32 MiB
// without -race) and responsive.
func TestDaemonHostileModem(t *testing.T) {
	t.Parallel() // real time, mostly waiting on the scenario's timeline: beside the others
	bound := int64(32 << 20)
	if raceEnabled {
		bound *= 4
	}
	rss, log := daemonPeakRSS(t, hostileScenarios["endless-cereg"], scaled(6*time.Second))
	t.Logf("daemon peak RSS %.1f MiB over 6 polls of an endless reply", float64(rss)/(1<<20))
	// Under qemu-user the figure is the emulator's: there the test checks
	// that the daemon stays responsive, and the bound is checked natively.
	if rss > bound && !testexec.Emulated() {
		t.Fatalf("daemon peak RSS %.1f MiB, bound %d MiB\n%s", float64(rss)/(1<<20), bound>>20, log)
	}
}
