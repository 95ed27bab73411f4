package fleetbench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The binaries, built once per test binary into buildDir (removed by
// TestMain).
var (
	buildDir string

	curOnce sync.Once
	curBin  string
	curErr  error

	atMu   sync.Mutex
	atBins = map[string]*atBuild{} // by commit
)

type atBuild struct {
	once     sync.Once
	bin, why string
}

// baselineCommit is the last collector that kept all device state in one
// state.json rewritten on every change (issue 14): the baseline.
const baselineCommit = "13a44289c3fc3e78bd8595e542b687de21fbe6ac"

func moduleRoot() (string, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root not found beside the package: %w", err)
	}
	return root, nil
}

func goBuild(dir, out string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go tool not found in PATH: %w", err)
	}
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", out, "./cmd/mtccollector")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s: %w\n%s", dir, err, b)
	}
	return nil
}

func ensureBuildDir() error {
	if buildDir != "" {
		return nil
	}
	d, err := os.MkdirTemp("", "fleetbench-bin-")
	buildDir = d
	return err
}

// collectorBin is this tree's mtccollector.
func collectorBin(b *testing.B) string {
	b.Helper()
	curOnce.Do(func() {
		var root string
		if root, curErr = moduleRoot(); curErr != nil {
			return
		}
		if curErr = ensureBuildDir(); curErr != nil {
			return
		}
		curBin = filepath.Join(buildDir, "mtccollector")
		curErr = goBuild(root, curBin)
	})
	if curErr != nil {
		b.Fatal(curErr)
	}
	return curBin
}

// binAt builds the collector of a commit from the repository's history,
// or says why it cannot (a shallow clone, no git): the caller skips
// then.
func binAt(commit string) (string, string) {
	atMu.Lock()
	a := atBins[commit]
	if a == nil {
		a = &atBuild{}
		atBins[commit] = a
	}
	atMu.Unlock()
	a.once.Do(func() { a.bin, a.why = buildAt(commit) })
	return a.bin, a.why
}

func buildAt(commit string) (string, string) {
	root, err := moduleRoot()
	if err != nil {
		return "", err.Error()
	}
	if _, err := exec.LookPath("git"); err != nil {
		return "", "git not found in PATH"
	}
	if err := exec.Command("git", "-C", root, "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		return "", "commit " + commit + " is not in this repository's history (a shallow clone?); fetch it with `git fetch --unshallow`"
	}
	if err := ensureBuildDir(); err != nil {
		return "", err.Error()
	}
	src := filepath.Join(buildDir, "src-"+commit)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err.Error()
	}
	archive := exec.Command("git", "-C", root, "archive", commit)
	tar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err.Error()
	}
	tar.Stdin = pipe
	var aerr, terr bytes.Buffer
	archive.Stderr, tar.Stderr = &aerr, &terr
	if err := tar.Start(); err != nil {
		return "", "tar: " + err.Error()
	}
	if err := archive.Run(); err != nil {
		tar.Wait()
		return "", fmt.Sprintf("git archive: %v %s", err, aerr.String())
	}
	if err := tar.Wait(); err != nil {
		return "", fmt.Sprintf("tar: %v %s", err, terr.String())
	}
	out := filepath.Join(buildDir, "mtccollector-"+commit)
	if err := goBuild(src, out); err != nil {
		return "", err.Error()
	}
	return out, ""
}

// serveProc is one running collector process.
type serveProc struct {
	cmd        *exec.Cmd
	pid        int
	devAddr    string
	metricsURL string // empty for the baseline (no --metrics)
	out        *outTail
	done       chan struct{}
}

// outTail keeps what a process printed that is worth showing: its first
// lines, the last ones, and a count of errors, without holding a line per
// message.
type outTail struct {
	mu     sync.Mutex
	head   []string
	ring   []string
	next   int
	errors int
	alarms int
	found  map[*regexp.Regexp][]string

	printed atomic.Int64 // bytes read from the process's output
}

func (t *outTail) add(line string) {
	t.printed.Add(int64(len(line)) + 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.head) < 20 {
		t.head = append(t.head, line)
	}
	if len(t.ring) < 30 {
		t.ring = append(t.ring, line)
	} else {
		t.ring[t.next] = line
		t.next = (t.next + 1) % len(t.ring)
	}
	if strings.Contains(line, "ERROR") {
		t.errors++
	}
	if strings.Contains(line, "ALARM") {
		t.alarms++
	}
	for re, m := range t.found {
		if m == nil {
			if m = re.FindStringSubmatch(line); m != nil {
				t.found[re] = m
			}
		}
	}
}

func (t *outTail) match(re *regexp.Regexp) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.found[re]
}

func (t *outTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	last := append(append([]string(nil), t.ring[t.next:]...), t.ring[:t.next]...)
	return fmt.Sprintf("first lines:\n  %s\nlast lines:\n  %s\n(%d ERROR lines, %d ALARM lines)",
		strings.Join(t.head, "\n  "), strings.Join(last, "\n  "), t.errors, t.alarms)
}

var (
	addrRE    = regexp.MustCompile(`devices on udp:(\S+), scs on udp:`)
	metricsRE = regexp.MustCompile(`metrics on (http://\S+/metrics)`)
)

// startServe runs bin with args and waits for its listening line (and
// its metrics line when withMetrics).
func startServe(b *testing.B, bin string, withMetrics bool, args ...string) *serveProc {
	b.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	p := &serveProc{cmd: cmd, out: &outTail{found: map[*regexp.Regexp][]string{addrRE: nil, metricsRE: nil}}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p.pid = cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			p.out.add(sc.Text())
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(p.done)
	}()
	b.Cleanup(func() { p.stop(b) })
	deadline := time.Now().Add(3 * time.Minute)
	for {
		m := p.out.match(addrRE)
		mm := p.out.match(metricsRE)
		if m != nil && (!withMetrics || mm != nil) {
			p.devAddr = m[1]
			if mm != nil {
				p.metricsURL = mm[1]
			}
			return p
		}
		select {
		case <-p.done:
			b.Fatalf("collector exited before listening: %v\n%s", cmd.ProcessState, p.out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("collector not listening after 3 min\n%s", p.out)
		}
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 20 s.
func (p *serveProc) stop(b *testing.B) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		b.Logf("collector %d did not stop within 20 s of SIGTERM: killed", p.pid)
		p.cmd.Process.Kill()
		<-p.done
	}
}

// metric reads one sample (a metric name with its labels, as printed)
// from the process's /metrics: 0 when absent (a counter of a label not
// yet seen), -1 when there is no endpoint or it does not answer.
func (p *serveProc) metric(name string) float64 {
	if p.metricsURL == "" {
		return -1
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(p.metricsURL)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	if sc.Err() != nil || resp.StatusCode != http.StatusOK {
		return -1
	}
	return 0
}

// procStatusKiB reads a field of /proc/PID/status given in kB ("VmRSS",
// "RssAnon"); -1 when it cannot.
func procStatusKiB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// procWritten is what the process (all its threads) handed to write(2)
// and its kin: wchar of /proc/PID/io. Not write_bytes: that counts the
// page-cache folios dirtied, and with the large folios of recent kernels
// (6.18 here) a 100-byte overwrite in a cached file counts 2 MiB. wchar
// also counts writes to pipes and to sockets written with write(2); the
// callers leave those out (see writtenSince).
func procWritten(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; split after ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 {
			if pp, _ := strconv.Atoi(f[1]); pp == pid {
				out = append(out, n)
			}
		}
	}
	return out
}

// writtenSnapshot is bytes written per process at one moment.
type writtenSnapshot map[int]int64

func snapshotWritten(pids []int) writtenSnapshot {
	s := writtenSnapshot{}
	for _, p := range pids {
		s[p] = procWritten(p)
	}
	return s
}

// writtenSince sums what the processes wrote since before (a process
// new since then counts from zero; one gone is lost, and pgx pools keep
// their connections, so backends seldom go).
func writtenSince(before writtenSnapshot, pids []int) int64 {
	var sum int64
	for _, p := range pids {
		sum += procWritten(p) - before[p]
	}
	return sum
}

// writtenByProcess says who wrote what since before ("comm pid: bytes").
func writtenByProcess(before writtenSnapshot, pids []int) string {
	var parts []string
	for _, p := range pids {
		if n := procWritten(p) - before[p]; n != 0 {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
			name := strings.SplitN(string(comm), "\x00", 2)[0]
			parts = append(parts, fmt.Sprintf("%s %d: %d", filepath.Base(name), p, n))
		}
	}
	return strings.Join(parts, ", ")
}

// heapStats asks a collector started with --pprof to collect garbage and
// reports its live heap (HeapAlloc, bytes), the stacks in use (bytes) and
// its goroutines; ok false without the endpoint.
func (p *serveProc) heapStats() (heap, stack int64, goroutines int, ok bool) {
	if p.metricsURL == "" {
		return 0, 0, 0, false
	}
	base := strings.TrimSuffix(p.metricsURL, "/metrics")
	c := http.Client{Timeout: 30 * time.Second}
	get := func(path string) string {
		resp, err := c.Get(base + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return ""
		}
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	h := get("/debug/pprof/heap?gc=1&debug=1")
	g := get("/debug/pprof/goroutine?debug=1")
	if h == "" || g == "" {
		return 0, 0, 0, false
	}
	for _, line := range strings.Split(h, "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			heap, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "# Stack = "); ok {
			stack, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	if v, ok := strings.CutPrefix(strings.SplitN(g, "\n", 2)[0], "goroutine profile: total "); ok {
		goroutines, _ = strconv.Atoi(strings.TrimSpace(v))
	}
	return heap, stack, goroutines, true
}

// saveProfile writes one of the collector's profiles (heap in pprof
// format; goroutine?debug=1 as text) to path.
func (p *serveProc) saveProfile(which, path string) error {
	base := strings.TrimSuffix(p.metricsURL, "/metrics")
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(base + "/debug/pprof/" + which)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

// freeOSMemory asks a collector started with --pprof to return its free
// memory to the system; false without the endpoint.
func (p *serveProc) freeOSMemory() bool {
	if p.metricsURL == "" {
		return false
	}
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Post(strings.TrimSuffix(p.metricsURL, "/metrics")+"/debug/free-os-memory", "text/plain", nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// loadavg is /proc/loadavg's first three fields (the machine is shared:
// the figures mean little under a load well above the cores).
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// machineTicks is the machine's CPU time so far, all of it and the part
// stolen by the hypervisor (the aggregate "cpu" line of /proc/stat, in
// clock ticks: user nice system idle iowait irq softirq steal; guest time
// after them is already in user). On a shared virtual machine the steal
// over a window says how much of the two cores the benchmark did not get.
// ok is false when the line cannot be read whole.
func machineTicks() (t ticks, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return ticks{}, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseCPULine(line)
}

// parseCPULine reads machineTicks' figures from /proc/stat's "cpu" line.
func parseCPULine(line string) (t ticks, ok bool) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return ticks{}, false
	}
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return ticks{}, false
		}
		t.total += n
		if i == 7 {
			t.steal = n
		}
	}
	return t, true
}

// ticks is one machineTicks reading.
type ticks struct{ total, steal int64 }

// stealPct is the share of the machine's CPU time stolen since the reading
// before, in percent; ok is false when either reading failed or no time
// passed, and then there is no figure.
func stealPct(before ticks, beforeOK bool) (pct float64, ok bool) {
	now, nowOK := machineTicks()
	if !beforeOK || !nowOK || now.total <= before.total {
		return 0, false
	}
	return 100 * float64(now.steal-before.steal) / float64(now.total-before.total), true
}

// cpuTime is the CPU time (user and system) a process has used so far,
// from /proc/PID/stat (in clock ticks of 10 ms).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

func cpuOf(pids []int) map[int]time.Duration {
	m := map[int]time.Duration{}
	for _, p := range pids {
		m[p] = cpuTime(p)
	}
	return m
}

func cpuSince(before map[int]time.Duration, pids []int) time.Duration {
	var d time.Duration
	for _, p := range pids {
		d += cpuTime(p) - before[p]
	}
	return d
}

// selfCPU is the CPU time this process (the load generator) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
