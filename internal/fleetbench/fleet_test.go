package fleetbench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// Knobs (environment), for a longer or a smaller run than make bench's.
const (
	envSessions = "MTC_FLEET_SESSIONS" // concurrent device sessions (default 2000)
	envDevices  = "MTC_FLEET_DEVICES"  // registered devices, a comma-separated list (default 10000,100000)
	envWindow   = "MTC_FLEET_WINDOW"   // each measured window (default 8s)
	envInflight = "MTC_FLEET_INFLIGHT" // heartbeats in flight in the sustained window (default 64)
	envProfiles = "MTC_FLEET_PROFILES" // a directory: save each collector's heap and goroutine profiles with its idle sessions, and the first one's CPU profile over the sustained window, there
	envCompare  = "MTC_FLEET_COMPARE"  // a commit: also run bolt and pg1 with the collector built from it ("bolt@COMMIT")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envSizes() []int {
	v := os.Getenv(envDevices)
	if v == "" {
		return []int{10000, 100000}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

func sizeName(n int) string {
	if n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// Fictional credentials: one PSK and one key pair for every device (PSK
// identities differ); verification costs the same whoever signed.
const devPSK = "0f0e0d0c0b0a09080706050403020100"

var devKey = ed25519.NewKeyFromSeed([]byte("fleetbench-fictional-device-seed"))

// Pacing and bounds.
const (
	pacedRate     = 1000 // heartbeats/s for the round-trip figure
	dialParallel  = 8    // handshakes at once: under the collector's 16 per source address
	postTimeout   = 30 * time.Second
	settle        = 3 * time.Second
	baseInflight  = 4 // the baseline serialises every message behind one file rewrite
	challengeWait = 2 * time.Minute
	// This tree's collectors park sessions idle for benchParkAfter.
	benchNATWindow = time.Second
	benchParkAfter = 5 * time.Second // over the paced window's 2 s between two heartbeats of a session
	parkWait       = time.Minute
	// collectorReleaseWait: for the collector's release of the parked
	// sessions' memory (the wave's quiet time, a tick of its loop, the
	// release itself).
	collectorReleaseWait = 5 * time.Second
)

type backend struct {
	name      string
	store     string // "pg", "bolt", "file"
	instances int
	commit    string // build the collector from this commit (else this tree)
}

var backends = []backend{
	{"pg1", "pg", 1, ""},
	{"pg2", "pg", 2, ""},
	{"bolt", "bolt", 1, ""},
	{"filestore-baseline", "file", 1, baselineCommit},
}

// BenchmarkFleet: for each store and fleet size, devices provisioned in
// bulk, then (with the clock running) as many concurrent device sessions
// as MTC_FLEET_SESSIONS over loopback DTLS, idle; a sustained window of
// heartbeats at the highest rate the collector acknowledges; a window
// paced at 1,000 heartbeats/s. Each sub-benchmark runs once whatever
// b.N; -count repeats it. docs/collector.md, "Fleet benchmark", says what
// each figure is.
func BenchmarkFleet(b *testing.B) {
	sessions := envInt(envSessions, 2000)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(sessions)+512 {
		lim.Cur = min(lim.Max, uint64(sessions)+512)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < uint64(sessions)+512 {
			b.Fatalf("%d sessions need %d open files; RLIMIT_NOFILE allows %d (raise it with ulimit -n, or lower %s)", sessions, sessions+512, lim.Cur, envSessions)
		}
	}
	all := backends
	if c := os.Getenv(envCompare); c != "" {
		all = append([]backend{{"bolt@" + c, "bolt", 1, c}, {"pg1@" + c, "pg", 1, c}}, all...)
	}
	for _, be := range all {
		b.Run(be.name, func(b *testing.B) {
			for _, n := range envSizes() {
				b.Run(sizeName(n), func(b *testing.B) {
					runFleet(b, be, n, min(sessions, n))
				})
			}
		})
	}
}

// instance is one collector process and its share of the devices.
type instance struct {
	p           *serveProc
	base        int64 // RssAnon KiB before any session
	heap, stack int64 // live heap and stacks (bytes) before any session, with --pprof
	goroutines  int
	pprof       bool
}

func runFleet(b *testing.B, be backend, registered, sessions int) {
	window := envDuration(envWindow, 8*time.Second)
	inflight := envInt(envInflight, 64)
	dir := b.TempDir()
	bin := ""
	if be.commit != "" {
		var why string
		if bin, why = binAt(be.commit); bin == "" {
			b.Logf("%s skipped: %s", be.name, why)
			b.SkipNow()
		}
	} else {
		bin = collectorBin(b)
	}
	if be.store == "file" {
		inflight = baseInflight
	}
	ids := make([]string, registered)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev%06d", i)
	}
	pub := devKey.Public().(ed25519.PublicKey)

	// Provisioning, in bulk.
	t0 := time.Now()
	var storeArgs []string
	var pgURL, pgData string
	switch be.store {
	case "pg":
		pgURL = pgtest.URL(b)
		pgData = durablePG(b, pgURL)
		storeArgs = []string{"--store", pgURL}
		provision(b, bin, dir, ids, pub, storeArgs)
	case "bolt":
		provision(b, bin, dir, ids, pub, []string{"--state", filepath.Join(dir, "s0")})
	case "file":
		baselineConfig(b, dir, ids, pub)
	}
	b.Logf("%s: %d devices provisioned in %s; load average %s (2 cores, shared)", be.name, registered, time.Since(t0).Round(time.Millisecond), loadavg())
	defer func() { b.Logf("%s: load average at the end %s", be.name, loadavg()) }()

	// The collector processes.
	conf := filepath.Join(dir, "collector.conf")
	parks := be.store != "file" && (be.commit == "" || parksSessions(bin))
	if be.store != "file" {
		text := "[collector]\nheartbeat_timeout = 15m\nmdt_pull = off\n"
		if parks {
			// Idle sessions parked soon, so the benchmark sees them (the
			// default is 2 x nat_window, 60 s).
			text += fmt.Sprintf("nat_window = %s\npark_after = %s\n", benchNATWindow, benchParkAfter)
		}
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	var insts []*instance
	for i := 0; i < be.instances; i++ {
		state := filepath.Join(dir, fmt.Sprintf("s%d", i))
		if err := os.MkdirAll(state, 0o700); err != nil {
			b.Fatal(err)
		}
		args := []string{"serve", "--config", conf, "--state", state, "--listen", "udp:127.0.0.1:0", "--scs-listen", "udp:127.0.0.1:0"}
		metrics := be.store != "file"
		if metrics {
			args = append(args, "--metrics", "127.0.0.1:0")
			if hasPprof(bin) { // older collectors lack it
				args = append(args, "--pprof")
			}
			args = append(args, storeArgs...)
		}
		p := startServe(b, bin, metrics, args...)
		insts = append(insts, &instance{p: p})
	}
	time.Sleep(settle)
	// The base: what the process holds live before any session. Its
	// start may have left free heap not yet returned to the system (on
	// 100k devices, the registry's first reads): return it first where
	// the collector can, or the sessions would reuse it unseen.
	freed := true
	for _, in := range insts {
		in.heap, in.stack, in.goroutines, in.pprof = in.p.heapStats()
		freed = in.p.freeOSMemory() && freed
		in.base = procStatusKiB(in.p.pid, "RssAnon")
	}
	if !freed {
		b.Logf("%s: this collector cannot be asked to return free memory (no serve --pprof): its RSS base is as it found it", be.name)
	}

	// Sessions: spread over the registry, split between the instances.
	var asked atomic.Int64
	answer := be.store != "file"
	f := &fleet{}
	psk, _ := hex.DecodeString(devPSK)
	t0 = time.Now()
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		dialErrs int
		firstErr error
	)
	work := make(chan int)
	for w := 0; w < dialParallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				id := ids[i*(registered/sessions)]
				d := newDevice(id, devKey, answer, &asked)
				in := insts[i%len(insts)]
				c, err := uplink.Dial(context.Background(), uplink.Config{Addr: in.p.devAddr, Name: "collector",
					PSKIdentity: id, PSK: psk, Handler: d, Timeout: postTimeout})
				mu.Lock()
				if err != nil {
					dialErrs++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					d.c = c
					f.devs = append(f.devs, d)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < sessions; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	b.Cleanup(func() {
		for _, d := range f.devs {
			d.c.Close()
		}
	})
	dialTook := time.Since(t0)
	if dialErrs > 0 {
		b.Logf("%d of %d sessions failed to open; first: %v", dialErrs, sessions, firstErr)
	}
	if len(f.devs) < sessions/2 {
		b.Fatalf("only %d of %d sessions opened\n%s", len(f.devs), sessions, insts[0].p.out)
	}
	if answer {
		deadline := time.Now().Add(challengeWait)
		for asked.Load() < int64(len(f.devs)) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	b.Logf("%s: %d sessions open in %s; %d attestation challenges answered after %s",
		be.name, len(f.devs), dialTook.Round(time.Millisecond), asked.Load(), time.Since(t0).Round(time.Millisecond))
	time.Sleep(settle)

	// Idle sessions: the collectors' anonymous memory (heap, stacks)
	// beyond what they held before the first session. RssAnon rather than
	// VmRSS: the embedded store's file is mapped, and its pages read in
	// would count as session memory. First live (the sessions as they
	// are after their last message), then, where the collector parks
	// idle sessions (this tree), parked.
	n := float64(len(f.devs))
	measure := func(phase string) (mibPer1000, perHeapStack float64, live bool) {
		var delta, rssSum int64
		for _, in := range insts {
			a := procStatusKiB(in.p.pid, "RssAnon")
			delta += a - in.base
			rssSum += procStatusKiB(in.p.pid, "VmRSS")
		}
		mibPer1000 = float64(delta) / 1024 / n * 1000
		b.Logf("%s: RssAnon +%d KiB for %d %s sessions (%.1f KiB each); VmRSS now %d KiB in all",
			be.name, delta, len(f.devs), phase, float64(delta)/n, rssSum)
		// What the sessions hold, from the runtime (after a collection).
		var dHeap, dStack int64
		var dG int
		live = len(insts) > 0
		for i, in := range insts {
			h, st, g, ok := in.p.heapStats()
			if !ok || !in.pprof {
				live = false
				break
			}
			dHeap, dStack, dG = dHeap+h-in.heap, dStack+st-in.stack, dG+g-in.goroutines
			if dir := os.Getenv(envProfiles); dir != "" {
				path := filepath.Join(dir, fmt.Sprintf("%s-%s-%d-%s", be.name, sizeName(registered), i, phase))
				for which, ext := range map[string]string{"heap": ".heap", "goroutine?debug=1": ".goroutines.txt"} {
					if err := in.p.saveProfile(which, path+ext); err != nil {
						b.Logf("profile %s: %v", which, err)
					}
				}
			}
		}
		if live {
			b.Logf("%s: per %s session: live heap %.2f KiB, stacks %.2f KiB, %.2f goroutines (runtime figures after a collection)",
				be.name, phase, float64(dHeap)/1024/n, float64(dStack)/1024/n, float64(dG)/n)
		}
		return mibPer1000, float64(dHeap+dStack) / 1024 / n, live
	}
	liveMiB, liveKiB, live := measure("idle")
	mibPer1000, parkedKiB, parkedLive, parked := liveMiB, 0.0, false, false
	if parks {
		// Until every session is parked, then the collector's own release
		// of their memory (releaseAfterParking: once the wave is quiet).
		deadline := time.Now().Add(parkWait)
		for {
			sum := 0.0
			for _, in := range insts {
				sum += in.p.metric("mtccollector_parked_sessions")
			}
			if int(sum) >= len(f.devs) {
				parked = true
				break
			}
			if time.Now().After(deadline) {
				b.Logf("%s: %d of %d sessions parked after %s", be.name, int(sum), len(f.devs), parkWait)
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if parked {
			time.Sleep(collectorReleaseWait)
			mibPer1000, parkedKiB, parkedLive = measure("parked")

		}
	}

	// Heartbeats signed ahead: enough for 6,000/s through the sustained
	// window and the paced one; beyond that the load signs as it goes.
	per := (6000*int(window/time.Second)+pacedRate*int(window/time.Second))/len(f.devs) + 2
	if be.store == "file" {
		per = 4
	}
	t0 = time.Now()
	presignAll(b, f.devs, per)
	b.Logf("signed %d heartbeats ahead in %s", per*len(f.devs), time.Since(t0).Round(time.Millisecond))

	// Sustained. Bytes written: with PostgreSQL, what its processes wrote
	// (the collector writes nothing to disk then: its writes are its
	// queries on the socket and its log on the pipe); otherwise what the
	// collectors wrote, less the log lines they printed.
	pids := func() []int {
		var ps []int
		if pgData == "" {
			for _, in := range insts {
				ps = append(ps, in.p.pid)
			}
		} else if pm := postmasterPID(pgData); pm > 0 {
			ps = append(ps, pm)
			ps = append(ps, children(pm)...)
		}
		return ps
	}
	printed := func() int64 {
		var n int64
		for _, in := range insts {
			n += in.p.out.printed.Load()
		}
		return n
	}
	if pgURL != "" {
		pgExec(b, pgURL, "CHECKPOINT")
	}
	hbBefore := sumMetric(insts, `mtccollector_messages_total{kind="heartbeat"}`)
	dupBefore := sumMetric(insts, "mtccollector_duplicates_total")
	walBefore := pgWAL(b, pgURL)
	wBefore, pBefore := snapshotWritten(pids()), printed()
	var collPIDs, pgPIDs []int
	for _, in := range insts {
		collPIDs = append(collPIDs, in.p.pid)
	}
	if pgData != "" {
		pgPIDs = pids()
	}
	cBefore, gBefore, sBefore := cpuOf(collPIDs), cpuOf(pgPIDs), selfCPU()
	ticksBefore, ticksOK := machineTicks()
	failsBefore := f.failures.Load()
	var cpuProf sync.WaitGroup
	if dir := os.Getenv(envProfiles); dir != "" && insts[0].pprof && window >= 2*time.Second {
		cpuProf.Add(1)
		go func() { // the first collector's CPU profile over the window
			defer cpuProf.Done()
			path := filepath.Join(dir, fmt.Sprintf("%s-%s-0-sustained.cpu", be.name, sizeName(registered)))
			q := fmt.Sprintf("profile?seconds=%d", int((window - time.Second).Seconds()))
			if err := insts[0].p.saveProfile(q, path); err != nil {
				b.Logf("cpu profile: %v", err)
			}
		}()
	}
	acked, took := f.sustained(inflight, window)
	cpuProf.Wait()
	steal, stealOK := stealPct(ticksBefore, ticksOK)
	cColl, cPG, cSelf := cpuSince(cBefore, collPIDs), time.Duration(0), selfCPU()-sBefore
	if pgData != "" {
		cPG = cpuSince(gBefore, pids()) // with any backend started since
	}
	written := writtenSince(wBefore, pids())
	b.Logf("written by process: %s", writtenByProcess(wBefore, pids()))
	if pgData == "" {
		written -= printed() - pBefore
	}
	walBytes := pgWAL(b, pgURL) - walBefore
	hb := sumMetric(insts, `mtccollector_messages_total{kind="heartbeat"}`) - hbBefore
	dups := sumMetric(insts, "mtccollector_duplicates_total") - dupBefore
	rate := float64(acked) / window.Seconds()
	counted := "no metrics endpoint"
	if hbBefore >= 0 {
		counted = fmt.Sprintf("the collector counted %.0f verified (the window's and those answered after it), %.0f duplicates", hb, dups)
	}
	b.Logf("%s: sustained, %d in flight: %d heartbeats acknowledged in %s (%.0f/s; the phase took %s with the last answers); %s; %d failed (first: %v); %d signed during the load",
		be.name, inflight, acked, window, rate, took.Round(time.Millisecond), counted, f.failures.Load()-failsBefore, f.firstErr.Load(), f.signedLate.Load())
	if acked == 0 {
		b.Fatalf("no heartbeat acknowledged\n%s", insts[0].p.out)
	}
	bpm := float64(written) / float64(acked)
	perMsg := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(acked) }
	b.Logf("%s: CPU per acknowledged heartbeat: collector %.0f µs, PostgreSQL %.0f µs, the load generator %.0f µs (the sustained phase, /proc/PID/stat)",
		be.name, perMsg(cColl), perMsg(cPG), perMsg(cSelf))
	if stealOK {
		b.Logf("%s: %.1f%% of the machine's CPU time was stolen by the hypervisor over the sustained window (/proc/stat)", be.name, steal)
	} else {
		b.Logf("%s: no steal figure: /proc/stat could not be read whole before and after the sustained window", be.name)
	}
	who := "the collector, less its log"
	if pgData != "" {
		who = fmt.Sprintf("PostgreSQL; WAL %d bytes, %.0f per message", walBytes, float64(walBytes)/float64(acked))
	}
	b.Logf("%s: %d bytes written (wchar of /proc/PID/io: %s), %.0f per message", be.name, written, who, bpm)

	// Paced at 1,000/s, when the collector keeps up with it.
	var p99, p99send time.Duration
	paced := rate >= 1.1*pacedRate
	if paced {
		pr := f.paced(pacedRate, window, postTimeout)
		p99, p99send = pct(pr.fromDue, 0.99), pct(pr.fromSend, 0.99)
		b.Logf("%s: paced %d/s: %d sent, %d failed; round trip p50 %s, p99 %s, max %s from the scheduled time (p99 %s from the send)",
			be.name, pacedRate, pr.sent, pr.failed, pct(pr.fromDue, 0.5).Round(10*time.Microsecond), p99.Round(10*time.Microsecond),
			pct(pr.fromDue, 1).Round(10*time.Microsecond), p99send.Round(10*time.Microsecond))
	} else {
		b.Logf("%s: the sustained rate (%.0f/s) is under %d/s: no round trip at %d/s (the load would only queue)", be.name, rate, pacedRate, pacedRate)
	}
	for _, in := range insts {
		if in.p.out.errors > 0 {
			b.Logf("collector %d printed ERROR lines:\n%s", in.p.pid, in.p.out)
		}
	}

	b.ReportMetric(rate, "msg/s")
	if paced {
		b.ReportMetric(float64(p99)/float64(time.Millisecond), "ms/p99-heartbeat-rt@1000")
	}
	b.ReportMetric(bpm, "B-written/msg")
	b.ReportMetric(perMsg(cColl+cPG), "us-cpu/msg")
	if stealOK {
		b.ReportMetric(steal, "steal-%")
	}
	if pgURL != "" && walBytes >= 0 {
		b.ReportMetric(float64(walBytes)/float64(acked), "B-wal/msg")
	}
	b.ReportMetric(mibPer1000, "MiB/1000-idle-sessions")
	b.ReportMetric(liveMiB, "MiB/1000-live-idle-sessions")
	if live {
		b.ReportMetric(liveKiB, "KiB-heap+stack/idle-session")
	}
	if parkedLive {
		b.ReportMetric(parkedKiB, "KiB-heap+stack/parked-session")
	}
	b.ReportMetric(float64(len(f.devs)), "sessions")
}

// presignAll signs per heartbeats for every device, on all CPUs.
func presignAll(b *testing.B, devs []*device, per int) {
	var wg sync.WaitGroup
	var failed atomic.Value
	ch := make(chan *device)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range ch {
				if err := d.presign(per); err != nil {
					failed.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	for _, d := range devs {
		ch <- d
	}
	close(ch)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

func sumMetric(insts []*instance, name string) float64 {
	var s float64
	for _, in := range insts {
		v := in.p.metric(name)
		if v < 0 {
			return -1
		}
		s += v
	}
	return s
}

// provision writes the fleet as a CSV file and adds it with `device add
// --from` (one transaction).
func provision(b *testing.B, bin, dir string, ids []string, pub ed25519.PublicKey, storeArgs []string) {
	b.Helper()
	p := filepath.Join(dir, "fleet.csv")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("id,psk_identity,psk,public_key\n")
	ph := hex.EncodeToString(pub)
	for _, id := range ids {
		fmt.Fprintf(w, "%s,%s,%s,%s\n", id, id, devPSK, ph)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	out, err := exec.Command(bin, append([]string{"device", "add", "--from", p}, storeArgs...)...).CombinedOutput()
	if err != nil {
		b.Fatalf("device add --from: %v\n%s", err, out)
	}
}

// baselineConfig writes what the baseline reads: a configuration file
// with a [device] section per device, and a state.json in which every
// device has been heard from (a running fleet's), since the file it
// rewrites on every change holds every device it has seen.
func baselineConfig(b *testing.B, dir string, ids []string, pub ed25519.PublicKey) {
	b.Helper()
	pemb, err := attest.MarshalPublicKeyPEM(pub)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dev.pem"), pemb, 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "collector.conf"))
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("[collector]\nheartbeat_timeout = 15m\nmdt_pull = off\n\n")
	for _, id := range ids {
		fmt.Fprintf(w, "[device %q]\npsk_identity = %s\npsk = %s\npublic_key = dev.pem\n\n", id, id, devPSK)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	// The old DeviceState's JSON (collector/state.go at the baseline).
	type oldState struct {
		LastSeq       uint64    `json:"last_seq"`
		BootCount     uint64    `json:"boot_count"`
		LastSeen      time.Time `json:"last_seen"`
		LastHeartbeat time.Time `json:"last_heartbeat"`
		Overdue       bool      `json:"overdue"`
		StatusAt      time.Time `json:"status_at"`
		TriggerSeq    uint64    `json:"trigger_seq"`
		Accepted      uint64    `json:"accepted"`
		Duplicates    uint64    `json:"duplicates"`
		MDTPulledAt   time.Time `json:"mdt_pulled_at"`
	}
	seen := time.Now().Add(-time.Minute).UTC()
	devs := make(map[string]oldState, len(ids))
	for _, id := range ids {
		devs[id] = oldState{BootCount: 1, LastSeen: seen, LastHeartbeat: seen, Accepted: 96}
	}
	st, err := json.MarshalIndent(map[string]any{"devices": devs}, "", " ")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "s0"), 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "s0", "state.json"), st, 0o600); err != nil {
		b.Fatal(err)
	}
	b.Logf("baseline: state.json of %d bytes (%d devices), rewritten whole on every change", len(st), len(ids))
}

// The PostgreSQL side.

var durableOnce sync.Once

// durablePG makes the shared throwaway cluster durable, as a production
// one is (pgtest turns fsync, full_page_writes and synchronous_commit off
// for speed): an acknowledged message must be on disk here as with the
// embedded store. It returns the cluster's data directory.
func durablePG(b *testing.B, dbURL string) string {
	b.Helper()
	durableOnce.Do(func() {
		for _, s := range []string{"ALTER SYSTEM SET fsync = on", "ALTER SYSTEM SET full_page_writes = on",
			"ALTER SYSTEM SET synchronous_commit = on", "SELECT pg_reload_conf()"} {
			pgExec(b, dbURL, s)
		}
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	return filepath.Join(u.Query().Get("host"), "data")
}

func pgExec(b *testing.B, dbURL, sql string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
}

// pgWAL is the cluster's WAL position in bytes (-1 without PostgreSQL).
func pgWAL(b *testing.B, dbURL string) int64 {
	if dbURL == "" {
		return -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	var n int64
	if err := c.QueryRow(ctx, "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

func postmasterPID(data string) int {
	bs, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(bs), "\n", 2)[0]))
	return n
}

// parksSessions says whether a collector binary knows park_after (from
// 0634ed6 on), so that a comparison with an older tree parks as this one
// does: its sessions then resume in the sustained window too.
func parksSessions(bin string) bool {
	bs, err := os.ReadFile(bin)
	return err == nil && bytes.Contains(bs, []byte("park_after"))
}

// hasPprof says whether a collector binary has serve --pprof.
func hasPprof(bin string) bool {
	out, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
	return strings.Contains(string(out), "-pprof")
}
