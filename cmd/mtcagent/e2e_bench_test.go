//go:build !mtc_omit_coap

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
)

// BenchmarkURCToCollector: from the simulated modem printing a +CEREG URC
// (a cell change) to the collector having verified the signed event, over
// CoAP/DTLS on loopback, with the durable outbox in between.
func BenchmarkURCToCollector(b *testing.B) {
	e := newE2E(b)
	// A cell change per iteration: no storm limit.
	ip := startInProcess(b, e, func(c *agent.Config) { c.CellBurst = -1 }, nil, false, nil)
	defer ip.stop()
	sim := ip.sim
	e.waitEvent("sim_bound", 20*time.Second)
	var lat []time.Duration
	cell := uint64(0x200000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before := e.countVerified("cell_changed")
		cell++
		t0 := time.Now()
		sim.SetNetwork(modemsim.Network{CellID: &cell})
		for e.countVerified("cell_changed") <= before {
			if time.Since(t0) > 10*time.Second {
				b.Fatal("event never verified")
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
		time.Sleep(5 * time.Millisecond) // let the other domains' events drain
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q2 := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q2(0.5), "p50-ms")
	b.ReportMetric(q2(0.99), "p99-ms")
}

// BenchmarkDaemonIdle runs the daemon as a real process on the simulator,
// connected to the collector, idle for 60 s (heartbeat 15 min, poll 30 s),
// and reports its CPU share and peak resident memory. The daemon is the
// mtcagent binary as `make build` makes it, not this test binary, which
// also holds the collector, PostgreSQL's driver and the testing package:
// its memory is what a device pays.
func BenchmarkDaemonIdle(b *testing.B) {
	e := newE2E(b)
	os.WriteFile(e.conf, []byte(strings.Replace(strings.Replace(readFile(e.conf), "heartbeat = 1s", "heartbeat = 15m", 1), "poll = 1s", "poll = 30s", 1)), 0o600)
	sc := filepath.Join(b.TempDir(), "idle.json")
	os.WriteFile(sc, []byte(`{"dialect": "quectel"}`), 0o600)
	bin := filepath.Join(b.TempDir(), "mtcagent")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build mtcagent: %v\n%s", err, out)
	}
	d := startDaemonCmd(b, exec.Command(bin, "run", "--modem", "sim:"+sc, "--state-dir", e.state, "--config", e.conf), e.state)
	e.waitEvent("sim_bound", 20*time.Second)
	window := 60 * time.Second
	if testing.Short() {
		window = 5 * time.Second
	}
	for i := 0; i < b.N; i++ {
		c0 := cpuTicks(b, d.cmd.Process.Pid)
		t0 := time.Now()
		time.Sleep(window)
		c1 := cpuTicks(b, d.cmd.Process.Pid)
		secs := float64(c1-c0) / 100 // USER_HZ
		b.ReportMetric(100*secs/time.Since(t0).Seconds(), "cpu-%")
	}
	b.ReportMetric(float64(peakRSS(b, d.cmd.Process.Pid))/1024, "peak-rss-MiB")
}

func readFile(p string) string { b, _ := os.ReadFile(p); return string(b) }

func cpuTicks(b *testing.B, pid int) int64 {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(s[strings.LastIndexByte(string(s), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

func peakRSS(b *testing.B, pid int) int64 {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(s), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n // KiB
		}
	}
	return 0
}
