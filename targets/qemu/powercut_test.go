//go:build linux

package qemu

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/targets/qemu/internal/pcmsg"
)

// TestPowerCut cuts the power of an ARM guest that is appending to the
// agent's outbox and MDT log on an ext4 SD card, again and again on the same
// card image, and checks after every boot that each message and record the
// guest had reported durable is there, intact, once (docs/power-cut.md).
//
// Environment: MTC_SYSTEM_TEST=1 (else it skips); MTC_POWERCUT_CYCLES (20;
// make soak sets 200); MTC_POWERCUT_BREAK=nosync builds the guest with
// fsync disabled (the mtc_test_nosync tag) and then passes only if it finds
// loss, the proof that the test can fail.
func TestPowerCut(t *testing.T) {
	if os.Getenv("MTC_SYSTEM_TEST") != "1" {
		t.Skip("whole-system QEMU power-cut test: set MTC_SYSTEM_TEST=1 (make test-system)")
	}
	cycles := 20
	if v := os.Getenv("MTC_POWERCUT_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("MTC_POWERCUT_CYCLES=%q", v)
		}
		cycles = n
	}
	broken := os.Getenv("MTC_POWERCUT_BREAK")
	if broken != "" && broken != "nosync" {
		t.Fatalf("MTC_POWERCUT_BREAK=%q: only nosync", broken)
	}
	g := guests[0] // armhf: vexpress-a9, whose SD card (mmci) Debian's armmp kernel drives
	if _, err := exec.LookPath(g.qemu); err != nil {
		t.Fatalf("%s not installed (make test-system installs it with apt-get)", g.qemu)
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		mkfs = "/usr/sbin/mkfs.ext4" // not on a user's PATH on Debian
		if _, err := os.Stat(mkfs); err != nil {
			t.Fatal("mkfs.ext4 not installed (make test-system installs e2fsprogs with apt-get)")
		}
	}
	kernel, dtb, modules := fetchKernel(t, g.debArch, cacheDir(t))
	if len(modules) == 0 {
		t.Fatal("fetch-kernel.sh named no modules for the SD card and ext4")
	}
	dir := t.TempDir()
	var flags []string
	if broken == "nosync" {
		flags = []string{"-tags", "mtc_test_nosync"}
	}
	initBin := goBuild(t, dir, "init", "./targets/qemu/init", g.goEnv)
	pcBin := goBuild(t, dir, "powercut", "./targets/qemu/powercut", g.goEnv, flags...)

	// QEMU's SD card wants a power-of-two size; a sparse file, formatted
	// on the host as any ext4 a device would ship with.
	img := filepath.Join(dir, "sd.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-F", "-q", "-L", "mtcstate", "-E", "lazy_itable_init=0,lazy_journal_init=0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}

	// The guest kernel replays the ext4 journal when it mounts the card,
	// as a device does after a power cut. A cut in the middle of the SD
	// card's multi-block write can leave a torn metadata block that ext4
	// then refuses to mount ("structure needs cleaning": seen once in 42
	// cycles). A device whose mount fails runs fsck and mounts again
	// (systemd-fsck, OpenWrt's block mount): so does this test, with
	// e2fsck -p on the host and the same boot once more. The durability
	// claims are judged after the repair, as a device sees them.
	fsck := filepath.Join(filepath.Dir(mkfs), "e2fsck")
	if _, err := os.Stat(fsck); err != nil {
		if fsck, err = exec.LookPath("e2fsck"); err != nil {
			t.Fatal("e2fsck not installed (make test-system installs e2fsprogs with apt-get)")
		}
	}
	repairs, hangs := 0, 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	var logDir = os.Getenv("MTC_SYSTEM_LOG")
	st := newCutState()
	start := time.Now()
	for boot := uint64(1); boot <= uint64(cycles)+1; boot++ {
		last := boot == uint64(cycles)+1
		initrd := filepath.Join(dir, "initrd.cpio")
		writePowerCutInitramfs(t, initrd, initBin, pcBin, modules, boot, last)
		// Cut after a random number of durable lines (both stores) and a
		// random delay, so the cut lands anywhere in an append, a sync, a
		// segment rotation or a prune.
		cutAfter, delay := 1+rng.IntN(40), time.Duration(rng.IntN(400))*time.Millisecond
		if last {
			cutAfter = -1
		}
		t0 := time.Now()
		console, lines, marks, err := bootAndCut(g, kernel, dtb, img, initrd, cutAfter, delay)
		if errors.Is(err, errHung) {
			hangs++
			t.Logf("boot %d: hung before mounting the card; killed after %v, as a watchdog would, and booted again:\n%s", boot, preMountWatchdog, tail(string(console), 600))
			console, lines, marks, err = bootAndCut(g, kernel, dtb, img, initrd, cutAfter, delay)
		}
		if strings.Contains(string(console), "MTC-MOUNT fail") { // also the last boot, which ends without a cut
			out, ferr := exec.Command(fsck, "-p", "-f", img).CombinedOutput()
			var ee *exec.ExitError
			if ferr != nil && !(errors.As(ferr, &ee) && ee.ExitCode() < 4) { // 1, 2: errors corrected
				t.Fatalf("boot %d: the card did not mount, and e2fsck -p could not repair it: %v\n%s\nconsole:\n%s", boot, ferr, out, tail(string(console), 2000))
			}
			repairs++
			t.Logf("boot %d: the card did not mount (%s); e2fsck -p:\n%s", boot, mountError(console), tail(string(out), 1500))
			console, lines, marks, err = bootAndCut(g, kernel, dtb, img, initrd, cutAfter, delay)
		}
		if logDir != "" {
			os.WriteFile(filepath.Join(logDir, fmt.Sprintf("powercut-%03d.log", boot)), console, 0o644)
		}
		if err != nil {
			t.Fatalf("boot %d: %v\nconsole:\n%s", boot, err, tail(string(console), 3000))
		}
		problems := st.boot(boot, lines)
		for _, p := range problems {
			if broken == "" {
				t.Errorf("boot %d: %s", boot, p)
			} else {
				t.Logf("boot %d (expected with %s): %s", boot, broken, p)
			}
		}
		if broken == "" && len(problems) > 0 && testing.Verbose() {
			t.Logf("boot %d console:\n%s", boot, tail(string(console), 4000))
		}
		t.Logf("boot %d: %v (%s), cut after %d durable lines + %v; durable so far ob=%d mdt=%d",
			boot, time.Since(t0).Round(10*time.Millisecond), strings.Join(marks, " "), cutAfter, delay, st.durable["ob"], st.durable["mdt"])
	}
	el := time.Since(start)
	t.Logf("RESULT cycles=%d durable_ob=%d durable_mdt=%d lost=%d duplicated=%d damaged=%d acked_back=%d unreported_intact=%d fsck_repairs=%d hung_boots=%d in %v (%v per cycle)",
		cycles, st.durable["ob"], st.durable["mdt"], st.lost, st.dup, st.damaged, st.ackedBack, st.extra, repairs, hangs,
		el.Round(time.Second), (el / time.Duration(cycles+1)).Round(10*time.Millisecond))
	if st.durable["ob"] == 0 || st.durable["mdt"] == 0 {
		t.Error("the guest never reported a durable append")
	}
	if broken != "" {
		if st.lost+st.damaged == 0 {
			t.Errorf("MTC_POWERCUT_BREAK=%s: the test found no loss with fsync disabled; it cannot tell a broken store from a good one", broken)
		} else {
			t.Logf("MTC_POWERCUT_BREAK=%s: loss detected as it must be (%d lost, %d damaged)", broken, st.lost, st.damaged)
		}
	}
}

// writePowerCutInitramfs packs init, the powercut program, the modules and
// a spec that mounts the SD card on /state and runs powercut for boot.
func writePowerCutInitramfs(t *testing.T, path, initBin, pcBin string, modules []string, boot uint64, check bool) {
	t.Helper()
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	es := []CPIOEntry{
		{Name: "init", Mode: 0o755, Data: read(initBin)},
		{Name: "powercut", Mode: 0o755, Data: read(pcBin)},
		{Name: "etc", Mode: fs.ModeDir | 0o755},
		{Name: "dev", Mode: fs.ModeDir | 0o755},
		{Name: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Major: 5, Minor: 1},
		{Name: "proc", Mode: fs.ModeDir | 0o755},
		{Name: "sys", Mode: fs.ModeDir | 0o755},
		{Name: "tmp", Mode: fs.ModeDir | 0o777},
		{Name: "lib", Mode: fs.ModeDir | 0o755},
	}
	var mods []string
	for i, m := range modules {
		name := fmt.Sprintf("lib/%02d-%s", i, filepath.Base(m))
		es = append(es, CPIOEntry{Name: name, Mode: 0o644, Data: read(m)})
		mods = append(mods, "/"+name)
	}
	args := []string{"/powercut", "-state", "/state", "-boot", strconv.FormatUint(boot, 10)}
	if check {
		args = append(args, "-check")
	}
	spec := map[string]any{
		"timeout": "150s",
		"modules": mods,
		"mount":   map[string]string{"dev": "/dev/mmcblk0", "dir": "/state", "type": "ext4"},
		"steps":   []map[string]any{{"name": "powercut", "args": args, "console": true}},
	}
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, 64)
	crand.Read(seed)
	es = append(es, CPIOEntry{Name: "etc/mtc-test.json", Mode: 0o644, Data: js},
		CPIOEntry{Name: "etc/random-seed", Mode: 0o600, Data: seed})
	var buf bytes.Buffer
	if err := WriteCPIO(&buf, es); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// preMountWatchdog bounds a boot up to the card's mount (a few seconds
// normally; 13 s seen on a loaded machine).
const preMountWatchdog = 60 * time.Second

// errHung: the boot hung before mounting the card and was killed.
var errHung = errors.New("the boot hung before mounting the card")

// bootAndCut boots the guest with img as its SD card and SIGKILLs QEMU
// delay after the cutAfter-th MTC-DURABLE line (cutAfter < 0: let it
// finish). It returns the whole console and its MTC- lines.
//
// The drive is cache=writethrough: QEMU completes a guest write only once
// it is on the host file and flushed there, so the image holds exactly what
// the guest's block layer had written when QEMU dies, as an SD card holds
// what reached it when the power goes; what was only in the guest's page
// cache is gone with the process, which is the point.
func bootAndCut(g guest, kernel, dtb, img, initrd string, cutAfter int, delay time.Duration) (console []byte, lines, marks []string, err error) {
	args := append([]string{}, g.machine...)
	args = append(args, "-kernel", kernel, "-dtb", dtb, "-initrd", initrd,
		"-append", "console="+g.console+" panic=-1 quiet loglevel=3 rdinit=/init",
		"-display", "none", "-vga", "none", "-monitor", "none", "-nic", "none", "-no-reboot",
		"-serial", "stdio",
		"-drive", "if=sd,format=raw,cache=writethrough,file="+img)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	qemu := exec.CommandContext(ctx, g.qemu, args...)
	qemu.Env = append(os.Environ(), "QEMU_AUDIO_DRV=none")
	pr, pw := io.Pipe()
	qemu.Stdout, qemu.Stderr = pw, pw
	t0 := time.Now()
	killedAt := make(chan time.Duration, 1)
	if err := qemu.Start(); err != nil {
		return nil, nil, nil, err
	}
	waited := make(chan error, 1)
	go func() { err := qemu.Wait(); pw.Close(); waited <- err }()

	// A boot that hangs before it mounts the card (seen once in 150
	// cycles on a loaded machine: the guest stopped after MTC-INIT) is
	// what a device's watchdog reboots: kill it, and say so.
	var mounted atomic.Bool
	watchdog := time.AfterFunc(preMountWatchdog, func() {
		if !mounted.Load() {
			qemu.Process.Kill()
		}
	})
	defer watchdog.Stop()

	var all bytes.Buffer
	sc := bufio.NewScanner(io.TeeReader(pr, &all))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	durable, cut := 0, false
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		i := strings.Index(line, "MTC-")
		if i < 0 {
			continue
		}
		lines = append(lines, line[i:])
		if strings.HasPrefix(line[i:], "MTC-MOUNT") {
			mounted.Store(true)
		}
		for _, m := range []string{"MTC-INIT start", "MTC-MOUNT", "MTC-CHECKED"} {
			if strings.HasPrefix(line[i:], m) {
				marks = append(marks, fmt.Sprintf("%s@%v", strings.Fields(m)[0], time.Since(t0).Round(10*time.Millisecond)))
			}
		}
		if strings.HasPrefix(line[i:], "MTC-DURABLE ") {
			durable++
			if durable == 1 {
				marks = append(marks, fmt.Sprintf("first-durable@%v", time.Since(t0).Round(10*time.Millisecond)))
			}
			if durable == cutAfter && !cut {
				cut = true
				time.AfterFunc(delay, func() {
					qemu.Process.Kill()
					killedAt <- time.Since(t0)
				})
			}
		}
	}
	io.Copy(io.Discard, pr)
	werr := <-waited
	select {
	case k := <-killedAt:
		marks = append(marks, fmt.Sprintf("SIGKILL@%v", k.Round(10*time.Millisecond)))
	default:
	}
	marks = append(marks, fmt.Sprintf("exited@%v", time.Since(t0).Round(10*time.Millisecond)))
	switch {
	case !mounted.Load() && ctx.Err() == nil && werr != nil && time.Since(t0) >= preMountWatchdog:
		return all.Bytes(), lines, marks, errHung
	case ctx.Err() != nil:
		return all.Bytes(), lines, marks, fmt.Errorf("timed out")
	case cutAfter < 0 && werr != nil:
		return all.Bytes(), lines, marks, fmt.Errorf("%s: %v", g.qemu, werr)
	case cutAfter >= 0 && !cut:
		return all.Bytes(), lines, marks, fmt.Errorf("%s ended after %d durable lines, before the cut at %d: %v", g.qemu, durable, cutAfter, werr)
	}
	return all.Bytes(), lines, marks, nil
}

// cutKey names one message or record: the boot that wrote it and its
// number in that boot.
type cutKey struct{ boot, seq uint64 }

// cutState is what the host knows across boots.
type cutState struct {
	reported map[string]map[cutKey]bool // durable lines of the previous boot, per store: this boot's check must list them
	maxSeq   map[string]int64           // highest reported seq of the previous boot (-1: none)
	acked    map[cutKey]bool            // outbox messages whose Ack returned: never listed again
	durable  map[string]int             // durable lines seen, per store

	// Totals over all boots.
	lost, dup, damaged, ackedBack, extra int
}

func newCutState() *cutState {
	return &cutState{
		reported: map[string]map[cutKey]bool{"ob": {}, "mdt": {}},
		maxSeq:   map[string]int64{"ob": -1, "mdt": -1},
		acked:    map[cutKey]bool{},
		durable:  map[string]int{},
	}
}

// field returns the value of key=value in the fields of a line.
func field(fs []string, key string) (string, bool) {
	for _, f := range fs {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

func fieldU(fs []string, key string) (uint64, bool) {
	v, ok := field(fs, key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

// expectedSum is what an intact message or record of store hashes to.
func expectedSum(store string, k cutKey) string {
	if store == "ob" {
		return pcmsg.Sum(pcmsg.Message(k.boot, k.seq))
	}
	return pcmsg.RecordSum(pcmsg.Record(k.boot, k.seq))
}

// boot checks one boot's console lines against what earlier boots
// reported, records what this one reports, and returns the problems.
func (s *cutState) boot(boot uint64, lines []string) (problems []string) {
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	listed := map[string]map[cutKey]bool{"ob": {}, "mdt": {}}
	obIDs := map[uint64]cutKey{}
	checked := false
	newReported := map[string]map[cutKey]bool{"ob": {}, "mdt": {}}
	newMax := map[string]int64{"ob": -1, "mdt": -1}
	for _, line := range lines {
		fs := append(strings.Fields(line), "", "", "") // no index checks below
		switch fs[0] {
		case "MTC-MOUNT":
			if fs[1] != "ok" {
				bad("%s", line)
			}
		case "MTC-PC":
			if fs[1] == "error:" {
				bad("%s", line)
			}
			if fs[1] == "open" && fs[2] == "ob" {
				if v, _ := field(fs, "corrupt"); v != "0" {
					bad("outbox reports damage: %s", line)
					s.damaged++
				}
			}
			if fs[1] == "open" && fs[2] == "mdt" {
				if v, _ := field(fs, "failed"); v != "0" {
					bad("MDT log reports records that fail authentication: %s", line)
					s.damaged++
				}
			}
		case "MTC-HAVE":
			store := fs[1]
			if _, ok := listed[store]; !ok {
				continue
			}
			sum, _ := field(fs, "sha")
			b, ok1 := fieldU(fs, "boot")
			q, ok2 := fieldU(fs, "seq")
			if !ok1 || !ok2 {
				bad("damaged: %s", line)
				s.damaged++
				continue
			}
			k := cutKey{b, q}
			if sum != expectedSum(store, k) {
				bad("damaged: %s (want sha=%s)", line, expectedSum(store, k))
				s.damaged++
			}
			if listed[store][k] {
				bad("listed twice in one boot: %s", line)
				s.dup++
			}
			listed[store][k] = true
			if store == "ob" {
				if s.acked[k] {
					bad("acknowledged message came back: %s", line)
					s.ackedBack++
				}
				if id, ok := fieldU(fs, "id"); ok {
					obIDs[id] = k
				}
			}
			if b == boot-1 && !s.reported[store][k] {
				// Appended but not reported (the cut came between Append
				// returning and the line reaching the host): it must be
				// newer than everything reported.
				if int64(q) <= s.maxSeq[store] {
					bad("unreported message older than reported ones: %s", line)
				}
				s.extra++
			} else if b >= boot {
				bad("message from the future: %s", line)
			}
		case "MTC-ACKED":
			if id, ok := fieldU(fs, "id"); ok && fs[1] == "ob" {
				for i, k := range obIDs {
					if i <= id {
						s.acked[k] = true
					}
				}
			}
		case "MTC-CHECKED":
			checked = true
		case "MTC-DURABLE":
			store := fs[1]
			if _, ok := newReported[store]; !ok {
				continue
			}
			b, ok1 := fieldU(fs, "boot")
			q, ok2 := fieldU(fs, "seq")
			sum, _ := field(fs, "sha")
			if !ok1 || !ok2 || b != boot {
				continue // a line cut off by the power cut
			}
			k := cutKey{b, q}
			if sum != expectedSum(store, k) {
				continue // likewise
			}
			newReported[store][k] = true
			newMax[store] = max(newMax[store], int64(q))
			s.durable[store]++
		}
	}
	if !checked {
		bad("the guest did not finish its check")
		return problems
	}
	for _, store := range []string{"ob", "mdt"} {
		for k := range s.reported[store] {
			if !listed[store][k] {
				bad("lost: %s boot=%d seq=%d was reported durable", store, k.boot, k.seq)
				s.lost++
			}
		}
	}
	s.reported, s.maxSeq = newReported, newMax
	return problems
}

// mountError is the guest's reason for a failed mount of the card.
func mountError(console []byte) string {
	for _, l := range strings.Split(string(console), "\n") {
		if i := strings.Index(l, "MTC-MOUNT fail"); i >= 0 {
			return strings.TrimSpace(l[i:])
		}
	}
	return "?"
}
