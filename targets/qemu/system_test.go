//go:build linux

package qemu

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
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
)

// guest is one emulated machine.
type guest struct {
	debArch  string   // Debian architecture of the kernel package
	qemu     string   // emulator binary
	machine  []string // machine arguments
	console  string   // kernel console device
	modem    string   // guest device of the second serial port
	goEnv    []string // cross-build environment
	goFlags  []string // extra go build flags for mtcagent
	goarch   string   // what the guest's init reports
	needsDTB bool
}

var guests = []guest{
	{
		debArch: "armhf", qemu: "qemu-system-arm", machine: []string{"-M", "vexpress-a9", "-m", "256"},
		console: "ttyAMA0", modem: "/dev/ttyAMA1", goEnv: []string{"GOARCH=arm", "GOARM=7"}, goarch: "arm", needsDTB: true,
	},
	{
		debArch: "mipsel", qemu: "qemu-system-mipsel", machine: []string{"-M", "malta", "-m", "256"},
		console: "ttyS0", modem: "/dev/ttyS1", goEnv: []string{"GOARCH=mipsle", "GOMIPS=softfloat"}, goarch: "mipsle",
		// The router build make cross calls linux-mipsle-small (Makefile
		// SMALL_TAGS, MIPS_GCFLAGS): what it drops must not be needed here.
		goFlags: []string{"-tags", "mtc_omit_sim,mtc_omit_coap", "-gcflags=all=-l", "-gcflags=crypto/...=", "-gcflags=golang.org/x/crypto/...="},
	},
}

const repoRoot = "../.."

// TestSystem boots each guest and checks what mtcagent printed inside it.
// It runs only with MTC_SYSTEM_TEST=1 (make test-system).
func TestSystem(t *testing.T) {
	if os.Getenv("MTC_SYSTEM_TEST") != "1" {
		t.Skip("whole-system QEMU test: set MTC_SYSTEM_TEST=1 (make test-system)")
	}
	cache := cacheDir(t)
	tmp := t.TempDir()
	host := goBuild(t, tmp, "mtcagent-host", "./cmd/mtcagent", nil)
	cmds := commandsOf(t, host)
	t.Logf("commands in this build: %s", strings.Join(sortedKeys(cmds), " "))

	// The device key is made on the host and copied into the guest's state
	// directory, so the host knows the public key before the guest signs.
	state := filepath.Join(tmp, "state")
	var pubKey string
	attest := cmds["attest"] && cmds["key"] && cmds["verify"]
	if attest {
		if err := os.Mkdir(state, 0o700); err != nil {
			t.Fatal(err)
		}
		out := runHost(t, host, "key", "public", "--state-dir", state)
		pubKey = filepath.Join(tmp, "device.pem")
		if err := os.WriteFile(pubKey, out, 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Logf("this build lacks attest/key/verify: the guest runs version%s only",
			map[bool]string{true: " and status", false: ""}[cmds["status"]])
	}

	for _, g := range guests {
		t.Run(g.debArch, func(t *testing.T) {
			if _, err := exec.LookPath(g.qemu); err != nil {
				t.Fatalf("%s not installed (make test-system installs it with apt-get)", g.qemu)
			}
			kernel, dtb, _ := fetchKernel(t, g.debArch, cache)
			dir := t.TempDir()
			agent := goBuild(t, dir, "mtcagent", "./cmd/mtcagent", g.goEnv, g.goFlags...)
			initBin := goBuild(t, dir, "init", "./targets/qemu/init", g.goEnv)

			nonce := make([]byte, 16)
			rand.Read(nonce)
			spec := map[string]any{
				"modem":   g.modem,
				"probe":   true,
				"timeout": "150s",
				"env":     []string{"MTCAGENT_STATE_DIR=/state", "MTCAGENT_MODEM=" + g.modem},
				"steps":   guestSteps(cmds, attest, hex.EncodeToString(nonce)),
			}
			initrd := filepath.Join(dir, "initrd.cpio")
			writeInitramfs(t, initrd, initBin, agent, spec, state)

			sock := filepath.Join(dir, "modem.sock")
			ln, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			stopModem := serveModem(t, ln, host, cmds["sim"])

			args := append([]string{}, g.machine...)
			args = append(args, "-kernel", kernel, "-initrd", initrd,
				"-append", "console="+g.console+" panic=-1 quiet loglevel=3 rdinit=/init",
				"-display", "none", "-vga", "none", "-monitor", "none", "-nic", "none", "-no-reboot",
				"-serial", "stdio", "-serial", "unix:"+sock)
			if g.needsDTB {
				args = append(args, "-dtb", dtb)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			start := time.Now()
			qemu := exec.CommandContext(ctx, g.qemu, args...)
			qemu.Env = append(os.Environ(), "QEMU_AUDIO_DRV=none")
			var console bytes.Buffer
			qemu.Stdout, qemu.Stderr = &console, &console
			err = qemu.Run()
			t.Logf("%s ran %v", g.qemu, time.Since(start).Round(time.Millisecond))
			stopModem()
			if log := os.Getenv("MTC_SYSTEM_LOG"); log != "" {
				os.WriteFile(filepath.Join(log, "console-"+g.debArch+".log"), console.Bytes(), 0o644)
			}
			if err != nil || ctx.Err() != nil {
				t.Fatalf("%s: %v (timeout %v)\nconsole:\n%s", g.qemu, err, ctx.Err() != nil, tail(console.String(), 3000))
			}
			res := parseConsole(console.String())
			checkGuest(t, g, res, console.String(), host, pubKey, hex.EncodeToString(nonce))
		})
	}
}

// cacheDir is where fetch-kernel.sh keeps the kernels.
func cacheDir(t *testing.T) string {
	if c := os.Getenv("MTC_QEMU_CACHE"); c != "" {
		return c
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "mtcagent-qemu")
}

func sortedKeys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func guestSteps(cmds map[string]bool, attest bool, nonce string) []map[string]any {
	steps := []map[string]any{{"name": "version", "args": []string{"/mtcagent", "version"}}}
	if cmds["status"] {
		steps = append(steps, map[string]any{"name": "status", "args": []string{"/mtcagent", "status", "--json"}})
	}
	if attest {
		steps = append(steps, map[string]any{"name": "attest", "args": []string{"/mtcagent", "attest", "--nonce", nonce}})
	}
	return steps
}

// goBuild cross-builds pkg (static, as make cross does) into dir.
func goBuild(t *testing.T, dir, name, pkg string, env []string, flags ...string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	args := append([]string{"build", "-trimpath", "-ldflags", "-s -w -X main.version=system-test", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = repoRoot
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s %v: %v\n%s", pkg, env, err, b)
	}
	return out
}

func runHost(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mtcagent %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

var usageLine = regexp.MustCompile(`^\s+mtcagent ([a-z][a-z0-9-]*)\b`)

// commandsOf lists the subcommands the binary's help names.
func commandsOf(t *testing.T, bin string) map[string]bool {
	out := runHost(t, bin, "help")
	m := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if s := usageLine.FindStringSubmatch(line); s != nil {
			m[s[1]] = true
		}
	}
	if !m["version"] {
		t.Fatalf("help lists no commands:\n%s", out)
	}
	return m
}

// fetchKernel returns the kernel, the dtb (ARM) and the modules the
// power-cut test loads (ARM), in load order.
func fetchKernel(t *testing.T, arch, cache string) (kernel, dtb string, modules []string) {
	t.Helper()
	cmd := exec.Command("bash", "targets/qemu/fetch-kernel.sh", arch, cache)
	cmd.Dir = repoRoot
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fetch-kernel.sh %s: %v\n%s", arch, err, stderr.String())
	}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "KERNEL":
			kernel = v
		case "DTB":
			dtb = v
		case "MODULES":
			modules = strings.Split(v, ":")
		case "PACKAGE":
			t.Logf("kernel: %s", v)
		}
	}
	if kernel == "" {
		t.Fatalf("fetch-kernel.sh printed no kernel:\n%s", out)
	}
	return kernel, dtb, modules
}

// writeInitramfs packs init, the agent, the spec and the state directory.
func writeInitramfs(t *testing.T, path, initBin, agent string, spec any, state string) {
	t.Helper()
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	es := []CPIOEntry{
		{Name: "init", Mode: 0o755, Data: read(initBin)},
		{Name: "mtcagent", Mode: 0o755, Data: read(agent)},
		{Name: "etc", Mode: fs.ModeDir | 0o755},
		{Name: "etc/mtc-test.json", Mode: 0o644, Data: js},
		{Name: "dev", Mode: fs.ModeDir | 0o755},
		{Name: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Major: 5, Minor: 1},
		{Name: "proc", Mode: fs.ModeDir | 0o755},
		{Name: "sys", Mode: fs.ModeDir | 0o755},
		{Name: "tmp", Mode: fs.ModeDir | 0o1777&0o777},
		{Name: "state", Mode: fs.ModeDir | 0o700},
	}
	if _, err := os.Stat(state); err == nil {
		filepath.WalkDir(state, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == state {
				return err
			}
			rel, _ := filepath.Rel(state, p)
			fi, err := d.Info()
			if err != nil {
				return err
			}
			e := CPIOEntry{Name: "state/" + filepath.ToSlash(rel), Mode: fi.Mode()}
			if fi.Mode().IsRegular() {
				e.Data = read(p)
			}
			es = append(es, e)
			return nil
		})
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	if err := WriteCPIO(w, es); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// serveModem gives QEMU a modem on the unix socket ln listens on:
// `mtcagent sim --scenario --listen unix:SOCK` when the build has the
// simulator (ln is closed and the simulator listens at the same path),
// else a minimal AT responder in this test. The returned stop ends it; call
// it once QEMU has exited.
func serveModem(t *testing.T, ln net.Listener, host string, haveSim bool) (stop func()) {
	if haveSim {
		sock := ln.Addr().String()
		ln.Close()
		sim := exec.Command(host, "sim", "--scenario", filepath.Join("testdata", "scenario.json"), "--listen", "unix:"+sock)
		stdout, err := sim.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		sim.Stderr = os.Stderr
		if err := sim.Start(); err != nil {
			t.Fatal(err)
		}
		simDone := make(chan struct{})
		go func() { sim.Wait(); close(simDone) }()
		addr, err := readLine(stdout)
		if err != nil {
			sim.Process.Kill()
			<-simDone
			t.Fatalf("mtcagent sim --listen: %v", err)
		}
		go io.Copy(io.Discard, stdout)
		t.Logf("modem: mtcagent sim on %s", addr)
		return func() {
			sim.Process.Signal(syscall.SIGTERM)
			t0 := time.Now()
			select {
			case <-simDone:
				t.Logf("mtcagent sim exited %v after SIGTERM", time.Since(t0).Round(time.Millisecond))
			case <-time.After(10 * time.Second):
				sim.Process.Kill()
				<-simDone
				t.Error("mtcagent sim did not exit within 10s of SIGTERM")
			}
		}
	}
	t.Log("modem: this build has no 'sim' command; using the test's AT responder")
	done := make(chan struct{})
	var mu sync.Mutex
	var conn net.Conn
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		conn = c
		mu.Unlock()
		defer c.Close()
		fakeModem(c)
	}()
	return func() {
		ln.Close()
		mu.Lock()
		if conn != nil {
			conn.Close()
		}
		mu.Unlock()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the AT responder did not stop")
		}
	}
}

// readLine returns the first non-empty line the simulator prints: where it
// serves (DESIGN §4 prints the pty path; --listen the socket).
func readLine(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	deadline := time.AfterFunc(30*time.Second, func() {
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
	})
	defer deadline.Stop()
	for sc.Scan() {
		if p := strings.TrimSpace(sc.Text()); p != "" {
			return p, nil
		}
	}
	return "", fmt.Errorf("printed no address")
}

// fakeModem answers AT commands like a plain 27.007 modem with the
// scenario's fictional identity, until the connection closes.
func fakeModem(rw io.ReadWriter) {
	answers := map[string]string{
		"AT+CGMI": "Quectel", "AT+CGMM": "EC25", "AT+CGMR": "EC25EFAR06A06M4G",
		"AT+CGSN": "490154203237518", "AT+CIMI": "001010123456789",
		"AT+CPIN?": "+CPIN: READY", "AT+CCID": "+CCID: 8900101234567890123",
		"AT+CREG?": "+CREG: 0,1", "AT+CGREG?": "+CGREG: 0,1", "AT+CEREG?": "+CEREG: 0,1",
		"AT+CSQ": "+CSQ: 20,99", "AT+COPS?": "+COPS: 0,2,\"00101\",7",
	}
	r := bufio.NewReader(rw)
	for {
		line, err := r.ReadString('\r')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		if cmd == "" {
			continue
		}
		resp := "\r\nOK\r\n"
		if a, ok := answers[cmd]; ok {
			resp = "\r\n" + a + "\r\n\r\nOK\r\n"
		} else if !strings.HasPrefix(cmd, "AT") {
			resp = "\r\nERROR\r\n"
		}
		if _, err := io.WriteString(rw, resp); err != nil {
			return
		}
	}
}

// stepResult is one MTC-STEP line.
type stepResult struct {
	exit           int
	stdout, stderr []byte
}

type consoleResult struct {
	started, done string // MTC-INIT start argument; "done" when seen
	probe         string
	steps         map[string]stepResult
}

func parseConsole(s string) consoleResult {
	r := consoleResult{steps: map[string]stepResult{}}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, "\r")
		i := strings.Index(line, "MTC-")
		if i < 0 {
			continue
		}
		line = line[i:]
		switch {
		case strings.HasPrefix(line, "MTC-INIT start "):
			r.started = strings.TrimPrefix(line, "MTC-INIT start ")
		case line == "MTC-INIT done":
			r.done = "done"
		case strings.HasPrefix(line, "MTC-PROBE "):
			r.probe = strings.TrimPrefix(line, "MTC-PROBE ")
		case strings.HasPrefix(line, "MTC-STEP "):
			var name, out, errs string
			var code int
			if _, err := fmt.Sscanf(line, "MTC-STEP %s exit=%d stdout=%s stderr=%s", &name, &code, &out, &errs); err != nil {
				// Empty base64 fields leave nothing for %s to scan.
				f := strings.Fields(line)
				if len(f) < 3 {
					continue
				}
				name = f[1]
				fmt.Sscanf(f[2], "exit=%d", &code)
				for _, x := range f[3:] {
					if v, ok := strings.CutPrefix(x, "stdout="); ok {
						out = v
					}
					if v, ok := strings.CutPrefix(x, "stderr="); ok {
						errs = v
					}
				}
			}
			o, _ := base64.StdEncoding.DecodeString(out)
			e, _ := base64.StdEncoding.DecodeString(errs)
			r.steps[name] = stepResult{code, o, e}
		}
	}
	return r
}

func checkGuest(t *testing.T, g guest, res consoleResult, console, host, pubKey, nonce string) {
	if res.started != g.goarch {
		t.Fatalf("guest init did not start (MTC-INIT start %q)\nconsole:\n%s", res.started, tail(console, 3000))
	}
	if res.probe != "ok" {
		t.Fatalf("modem probe over %s: %q", g.modem, res.probe)
	}
	if res.done != "done" {
		t.Errorf("guest init did not finish\nconsole:\n%s", tail(console, 3000))
	}
	step := func(name string) stepResult {
		s, ok := res.steps[name]
		if !ok {
			t.Fatalf("no result for step %s\nconsole:\n%s", name, tail(console, 3000))
		}
		if s.exit != 0 {
			t.Fatalf("guest: mtcagent %s exited %d\nstderr: %s", name, s.exit, s.stderr)
		}
		return s
	}
	if v := step("version"); !strings.Contains(string(v.stdout), "mtcagent system-test") {
		t.Errorf("guest version printed %q", v.stdout)
	}
	if _, ok := res.steps["status"]; ok {
		s := step("status")
		var st struct {
			Modem struct {
				Manufacturer *string `json:"manufacturer"`
				Model        *string `json:"model"`
			} `json:"modem"`
		}
		if err := json.Unmarshal(s.stdout, &st); err != nil {
			t.Fatalf("guest status --json: %v", err)
		}
		if st.Modem.Model == nil || *st.Modem.Model != "EC25" {
			t.Errorf("guest status: modem model %v, want EC25 from the simulator", st.Modem.Model)
		}
	}
	if _, ok := res.steps["attest"]; ok {
		a := step("attest")
		tok := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tok, a.stdout, 0o600); err != nil {
			t.Fatal(err)
		}
		out := runHost(t, host, "verify", "--key", pubKey, "--nonce", nonce, "--json", tok)
		if !strings.Contains(strings.ToLower(string(out)), nonce) {
			t.Errorf("verified claims do not carry the host's nonce %s", nonce)
		}
		t.Logf("host verified the guest's attestation with the provisioned key")
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
