//go:build !mtc_omit_coap

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"

	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/internal/config"
)

// baselineAgentCommit is the agent as issue 16 found it: a 15 s
// keepalive checked on a 7.5 s ticker, three events per cell change (one
// per registration domain), claims format 1. BenchmarkBytesBaseline
// measures it beside BenchmarkBytes, in the same `make bench`.
const baselineAgentCommit = "13a44289c3fc3e78bd8595e542b687de21fbe6ac"

// baselineKeepalive is that agent's keepalive (its [uplink] default).
const baselineKeepalive = 15 * time.Second

// BenchmarkBytesBaseline measures what the agent of baselineAgentCommit
// puts on the wire, with the figures and the arithmetic of BenchmarkBytes
// (metric names with the suffix -baseline), so the bench table shows the
// issue's starting point and today's side by side from one run.
//
// The old agent is built from the repository's history (git archive; the
// benchmark is skipped in a clone without that commit) and runs as a real
// process on the simulator of its own tree (`mtcagent run --modem
// sim:FILE`, the scenario's timeline playing the cell changes and the
// outage), against today's collector in process (it reads claims format 1
// and the old paths, /e /h /b; docs/collector.md), through a UDP relay on
// loopback that counts each datagram both ways: IP bytes are its UDP
// payload plus 28. Two old agents run at once, each through its own
// relay: meter-1 with a 4 s heartbeat for the session start, heartbeat,
// cell change, outage and SCS read (a heartbeat every 4 s keeps its
// session from ever being idle the 15 s that sends a ping), and meter-2
// with an hourly heartbeat, idle for 70 s, for the keepalive pings and
// their interval. The idle hour and the reference month are computed from
// those parts as BenchmarkBytes does, at the old agent's 15 s keepalive.
func BenchmarkBytesBaseline(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchBytesBaselineOnce(b)
	}
}

// buildBaselineAgent builds the agent of baselineAgentCommit into dir.
// skip says why the clone cannot (no git, the commit not in its history):
// the caller skips then; any other failure is an error.
func buildBaselineAgent(dir string) (bin, skip string, err error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return "", "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", "", fmt.Errorf("module root not found beside the package: %w", err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		return "", "git not found in PATH", nil
	}
	if err := exec.Command("git", "-C", root, "cat-file", "-e", baselineAgentCommit+"^{commit}").Run(); err != nil {
		return "", "commit " + baselineAgentCommit + " is not in this repository's history (a shallow clone?); fetch it with `git fetch --unshallow` to measure the baseline", nil
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", "", fmt.Errorf("go tool not found in PATH: %w", err)
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", "", err
	}
	archive := exec.Command("git", "-C", root, "archive", baselineAgentCommit)
	tar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", "", err
	}
	tar.Stdin = pipe
	var aerr, terr bytes.Buffer
	archive.Stderr, tar.Stderr = &aerr, &terr
	if err := tar.Start(); err != nil {
		return "", "", fmt.Errorf("tar: %w", err)
	}
	if err := archive.Run(); err != nil {
		tar.Wait()
		return "", "", fmt.Errorf("git archive: %w %s", err, aerr.String())
	}
	if err := tar.Wait(); err != nil {
		return "", "", fmt.Errorf("tar: %w %s", err, terr.String())
	}
	bin = filepath.Join(dir, "mtcagent-"+baselineAgentCommit[:7])
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", bin, "./cmd/mtcagent")
	cmd.Dir = src
	// GOTOOLCHAIN=auto: that tree's go.mod names its own toolchain.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=auto", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build of the agent at %s: %w\n%s", baselineAgentCommit[:7], err, out)
	}
	return bin, "", nil
}

// countingRelay forwards UDP datagrams between one device (whoever sent
// to its listening side last) and the collector, counting both ways.
type countingRelay struct {
	dev, col *net.UDPConn

	mu         sync.Mutex
	peer       *net.UDPAddr
	upBytes    int64 // UDP payload, device to collector
	upPkts     int64
	downBytes  int64
	downPkts   int64
	upTimes    []time.Time // when each datagram from the device arrived
	stopped    bool
	relayError error
}

func startRelay(tb testing.TB, collectorAddr string) *countingRelay {
	tb.Helper()
	dev, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := net.ResolveUDPAddr("udp", collectorAddr)
	if err != nil {
		tb.Fatal(err)
	}
	col, err := net.DialUDP("udp", nil, ca)
	if err != nil {
		dev.Close()
		tb.Fatal(err)
	}
	r := &countingRelay{dev: dev, col: col}
	go r.pump(true)
	go r.pump(false)
	tb.Cleanup(r.close)
	return r
}

func (r *countingRelay) pump(up bool) {
	buf := make([]byte, 65535)
	for {
		var n int
		var from *net.UDPAddr
		var err error
		if up {
			n, from, err = r.dev.ReadFromUDP(buf)
		} else {
			n, err = r.col.Read(buf)
		}
		if err != nil {
			r.mu.Lock()
			if !r.stopped && r.relayError == nil {
				r.relayError = err
			}
			r.mu.Unlock()
			return
		}
		r.mu.Lock()
		var to *net.UDPAddr
		if up {
			r.peer = from
			r.upBytes += int64(n)
			r.upPkts++
			r.upTimes = append(r.upTimes, time.Now())
		} else {
			to = r.peer
			r.downBytes += int64(n)
			r.downPkts++
		}
		r.mu.Unlock()
		if up {
			r.col.Write(buf[:n])
		} else if to != nil {
			r.dev.WriteToUDP(buf[:n], to)
		}
	}
}

func (r *countingRelay) close() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.dev.Close()
	r.col.Close()
}

// wire is the IP bytes so far, both ways, and the datagrams.
func (r *countingRelay) wire() (ip, pkts int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pkts = r.upPkts + r.downPkts
	return r.upBytes + r.downBytes + ipUDPHeader*pkts, pkts
}

// upSince is the times of the datagrams from the device after t.
func (r *countingRelay) upSince(t time.Time) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Time
	for _, u := range r.upTimes {
		if u.After(t) {
			out = append(out, u)
		}
	}
	return out
}

// baselineProc is one old agent running.
type baselineProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
}

func startBaselineAgent(b *testing.B, bin, state, scenario, conf string) *baselineProc {
	b.Helper()
	cmd := exec.Command(bin, "run", "--modem", "sim:"+scenario, "--state-dir", state, "--config", conf)
	p := &baselineProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	b.Cleanup(p.stop)
	return p
}

// stop ends the agent as its service manager would (SIGTERM: it closes
// its session, a close_notify each way); again, it does nothing.
func (p *baselineProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func benchBytesBaselineOnce(b *testing.B) {
	bin, skip, err := buildBaselineAgent(b.TempDir())
	if err != nil {
		b.Fatalf("baseline agent: %v", err)
	}
	if skip != "" {
		b.Skip("baseline agent: " + skip)
	}
	// Two devices, each with its own key, made by the old agent in its
	// own state directory.
	type device struct{ id, psk, state, pub string }
	devs := []*device{{id: "meter-1", psk: "000102030405060708090a0b0c0d0e0f"}, {id: "meter-2", psk: "101112131415161718191a1b1c1d1e1f"}}
	var devConf strings.Builder
	for _, d := range devs {
		d.state = b.TempDir()
		out, err := exec.Command(bin, "key", "public", "--state-dir", d.state).Output()
		if err != nil {
			b.Fatalf("old agent key public: %v", err)
		}
		d.pub = filepath.Join(b.TempDir(), d.id+".pub")
		if err := os.WriteFile(d.pub, out, 0o600); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&devConf, "[device %q]\npsk_identity = %s\npsk = %s\npublic_key = %s\n", d.id, d.id, d.psk, d.pub)
	}
	f, err := config.Parse("collector.conf", `
[collector]
heartbeat_timeout = 2h
`+devConf.String()+`
[scs "app"]
psk_identity = app
psk = 0f0e0d0c0b0a09080706050403020100
devices = meter-1
classes = status
`)
	if err != nil {
		b.Fatal(err)
	}
	ccfg, err := collector.ParseConfig(f)
	if err != nil {
		b.Fatal(err)
	}
	clog := &collectorLog{}
	srv, err := collector.New(ccfg, collector.Options{StateDir: b.TempDir(), Log: clog})
	if err != nil {
		b.Fatal(err)
	}
	colAddr, err := srv.ListenDevices("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	scsAddr, err := srv.ListenSCS("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Run(ctx)
	b.Cleanup(func() { cancel(); srv.Close() })

	count := func(re *regexp.Regexp) int {
		n := 0
		for _, l := range clog.all() {
			if re.MatchString(l) {
				n++
			}
		}
		return n
	}
	eventRE := func(dev, name string) *regexp.Regexp {
		return regexp.MustCompile(`device ` + regexp.QuoteMeta(dev) + `: event ` + regexp.QuoteMeta(name) + ` verified`)
	}
	hbRE := regexp.MustCompile(`device meter-1: heartbeat verified`)
	attRE := regexp.MustCompile(`device meter-1: binding attestation verified \(nonce`)
	waitFor := func(what string, within time.Duration, ok func() bool) {
		b.Helper()
		for t0 := time.Now(); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Since(t0) > within {
				b.Fatalf("%s not within %v; collector log:\n%s", what, within, strings.Join(clog.all(), "\n"))
			}
		}
	}

	// The old configuration format (docs/agent.md at that commit): the
	// [uplink] keepalive left at its default, 15 s.
	conf := func(d *device, heartbeat string, relay *countingRelay) string {
		p := filepath.Join(b.TempDir(), "agent.conf")
		if err := os.WriteFile(p, []byte(fmt.Sprintf(`[agent]
heartbeat = %s
poll = 1s
[uplink]
addr = %s
name = operator
psk_identity = %s
psk = %s
`, heartbeat, relay.dev.LocalAddr(), d.id, d.psk)), 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	scenario := func(body string) string {
		p := filepath.Join(b.TempDir(), "scenario.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	// The old simulator plays its timeline from its start, which is the
	// agent's: three cell changes, then an outage, well after the session
	// start and the idle window.
	const (
		cellsAt   = 30 * time.Second
		cellEvery = 4 * time.Second
		outageAt  = 46 * time.Second
		outageFor = 2 * time.Second
	)
	var steps []string
	for i := 0; i < 3; i++ {
		steps = append(steps, fmt.Sprintf(`{"at": "%s", "network": {"cell_id": %d}}`, cellsAt+time.Duration(i)*cellEvery, 0x300000+i))
	}
	steps = append(steps, fmt.Sprintf(`{"at": "%s", "network": {"stat": 0}}`, outageAt), fmt.Sprintf(`{"at": "%s", "network": {"stat": 1}}`, outageAt+outageFor))
	scA := scenario(`{"dialect": "quectel", "timeline": [` + strings.Join(steps, ", ") + `]}`)
	scB := scenario(`{"dialect": "quectel"}`)

	relayA, relayB := startRelay(b, colAddr.String()), startRelay(b, colAddr.String())
	b.Logf("relays: meter-1 device side %s, meter-2 %s; collector %s", relayA.dev.LocalAddr(), relayB.dev.LocalAddr(), colAddr)
	t0 := time.Now()
	pa := startBaselineAgent(b, bin, devs[0].state, scA, conf(devs[0], "4s", relayA))
	pb := startBaselineAgent(b, bin, devs[1].state, scB, conf(devs[1], "1h", relayB))

	// meter-2: the keepalive. Its session start, then idle.
	pingDone := make(chan struct{})
	var perPing, pingInterval float64
	var pingErr string
	go func() {
		defer close(pingDone)
		for t := time.Now(); count(eventRE("meter-2", "sim_bound")) == 0; time.Sleep(20 * time.Millisecond) {
			if time.Since(t) > 30*time.Second {
				pingErr = "meter-2 never verified sim_bound"
				return
			}
		}
		time.Sleep(time.Second)
		w0 := time.Now()
		b0, _ := relayB.wire()
		const window = 70 * time.Second
		time.Sleep(window)
		b1, _ := relayB.wire()
		ups := relayB.upSince(w0)
		if len(ups) < 2 {
			pingErr = fmt.Sprintf("%d keepalive pings in %v of idle", len(ups), window)
			return
		}
		// Each ping is one datagram up and its answer one down.
		perPing = float64(b1-b0) / float64(len(ups))
		pingInterval = ups[len(ups)-1].Sub(ups[0]).Seconds() / float64(len(ups)-1)
	}()

	// meter-1: the session start, a heartbeat, cell changes, the outage,
	// an SCS read.
	heartbeats := func() int { return count(hbRE) }
	type phase struct {
		bytes int64
		hbs   int
	}
	measure := func(run func()) phase {
		b0, _ := relayA.wire()
		hb0 := heartbeats()
		run()
		time.Sleep(time.Second) // late answers, acks
		b1, _ := relayA.wire()
		return phase{b1 - b0, heartbeats() - hb0}
	}
	start := measure(func() {
		waitFor("meter-1's sim_bound", 30*time.Second, func() bool { return count(eventRE("meter-1", "sim_bound")) > 0 })
		// Today's collector asks for a binding attestation on the new
		// session (its request names the claims formats it reads); the
		// old agent answers it, in format 1.
		waitFor("meter-1's binding attestation", 10*time.Second, func() bool { return count(attRE) > 0 })
	})
	idle := measure(func() {
		h0 := heartbeats()
		waitFor("three heartbeats of meter-1", 30*time.Second, func() bool { return heartbeats() >= h0+3 })
	})
	if time.Since(t0) > cellsAt-time.Second {
		b.Fatalf("the session start and idle window took %v, past the scenario's first cell change at %v: the machine is too loaded", time.Since(t0), cellsAt)
	}
	perHB := float64(idle.bytes) / float64(idle.hbs)
	less := func(p phase, n int) float64 { return (float64(p.bytes) - float64(p.hbs)*perHB) / float64(n) }

	cellRE := eventRE("meter-1", "cell_changed")
	if n := count(cellRE); n != 0 {
		b.Fatalf("%d cell changes verified before the scenario played any", n)
	}
	cells := measure(func() {
		// Until the last change's events are in and nothing more comes
		// for 1.5 s.
		time.Sleep(time.Until(t0.Add(cellsAt + 2*cellEvery)))
		last, at := count(cellRE), time.Now()
		waitFor("the cell changes' events", 30*time.Second, func() bool {
			if n := count(cellRE); n != last {
				last, at = n, time.Now()
			}
			return last >= 3 && time.Since(at) > 1500*time.Millisecond
		})
	})
	if time.Since(t0) > outageAt-time.Second {
		b.Fatalf("the cell changes took until %v, past the outage at %v: the machine is too loaded", time.Since(t0), outageAt)
	}
	eventsPerCell := float64(count(cellRE)) / 3
	outage := measure(func() {
		waitFor("connectivity_restored", outageAt+outageFor+30*time.Second-time.Since(t0), func() bool {
			return count(eventRE("meter-1", "connectivity_restored")) > 0
		})
	})
	scs := measure(func() {
		dc := &piondtls.Config{PSK: func([]byte) ([]byte, error) { return []byte{15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, nil },
			PSKIdentityHint: []byte("app"), CipherSuites: []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8}}
		cc, err := coapdtls.Dial(scsAddr.String(), dc)
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer rcancel()
		resp, err := cc.Get(rctx, "/devices/meter-1/status")
		if err != nil {
			b.Fatal(err)
		}
		if body, _ := resp.ReadBody(); len(body) == 0 {
			b.Fatalf("SCS status read: %v, no body", resp.Code())
		}
	})
	<-pingDone
	if pingErr != "" {
		b.Fatalf("baseline keepalive: %s; meter-2's log:\n%s", pingErr, pb.stderr.String())
	}
	select {
	case <-pa.done:
		b.Fatalf("the old agent meter-1 exited; its log:\n%s", pa.stderr.String())
	case <-pb.done:
		b.Fatalf("the old agent meter-2 exited; its log:\n%s", pb.stderr.String())
	default:
	}
	// Nothing the old agent sent was refused, nothing failed.
	for _, l := range clog.all() {
		for _, bad := range []string{"ERROR", "refused", "failed", "request answered", "ALARM"} {
			if strings.Contains(l, bad) {
				b.Fatalf("the collector with the old agent: %s", l)
			}
		}
	}
	// The totals of the whole run, the agents' close_notify included, to
	// compare with a capture of the relays' device-side ports (docs/uplink.md).
	pa.stop()
	pb.stop()
	time.Sleep(200 * time.Millisecond)
	for _, r := range []*countingRelay{relayA, relayB} {
		r.mu.Lock()
		err := r.relayError
		b.Logf("relay %s (device side): up %d B in %d datagrams, down %d B in %d; IP bytes both ways %d",
			r.dev.LocalAddr(), r.upBytes, r.upPkts, r.downBytes, r.downPkts, r.upBytes+r.downBytes+ipUDPHeader*(r.upPkts+r.downPkts))
		r.mu.Unlock()
		if err != nil {
			b.Fatalf("relay: %v", err)
		}
	}

	// As BenchmarkBytes, at the old agent's keepalive: it pings whenever
	// the session has been idle that long, so between heartbeats all the
	// time.
	perCell, perOutage, perSCS, perStart := less(cells, 3), less(outage, 1), less(scs, 1), less(start, 1)
	pingRatio := pingInterval / baselineKeepalive.Seconds()
	pingsPer := func(span, ka time.Duration) float64 {
		if ka <= 0 {
			return 0
		}
		return span.Seconds() / (pingRatio * ka.Seconds())
	}
	idleHour := func(hb, ka time.Duration) float64 {
		return 3600/hb.Seconds()*perHB + pingsPer(time.Hour, ka)*perPing
	}
	day := func(ka time.Duration) float64 {
		return 96*perHB + 10*perCell + perOutage + perSCS + perStart + pingsPer(24*time.Hour, ka)*perPing
	}
	b.ReportMetric(perStart, "B/session-start-baseline")
	b.ReportMetric(perHB, "B/heartbeat-baseline")
	b.ReportMetric(perCell, "B/cell-change-baseline")
	b.ReportMetric(eventsPerCell, "events/cell-change-baseline")
	b.ReportMetric(perOutage, "B/outage-baseline")
	b.ReportMetric(perSCS, "B/scs-read-baseline")
	b.ReportMetric(perPing, "B/keepalive-baseline")
	b.ReportMetric(pingRatio, "keepalive-interval/setting-baseline")
	b.ReportMetric(idleHour(5*time.Minute, baselineKeepalive), "B/h-idle-hb5m-baseline")
	b.ReportMetric(idleHour(15*time.Minute, baselineKeepalive), "B/h-idle-hb15m-baseline")
	b.ReportMetric(idleHour(time.Hour, baselineKeepalive), "B/h-idle-hb60m-baseline")
	b.ReportMetric(30*day(baselineKeepalive)/1e6, "MB/reference-month-baseline")
}
