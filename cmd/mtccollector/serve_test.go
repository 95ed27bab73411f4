package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/internal/testexec"
	"github.com/mtcagent/mtcagent/wire"
)

// Fictional credentials.
const (
	tDevPSK = "0f0e0d0c0b0a09080706050403020100"
	tAlpha  = "alpha-secret-key-0001"
	tBeta   = "beta-secret-key-00002"
)

// buildCollector builds this command into a temporary directory (for the
// target GOARCH, so under qemu-user it runs emulated via testexec).
func buildCollector(t testing.TB) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go tool not found in PATH; needed to build the collector")
	}
	bin := filepath.Join(t.TempDir(), "mtccollector")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) add(s string) { l.mu.Lock(); l.b.WriteString(s + "\n"); l.mu.Unlock() }
func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type proc struct {
	cmd  *exec.Cmd
	out  *lockedBuf
	done chan struct{}
}

var addrRE = regexp.MustCompile(`devices on udp:(\S+), scs on udp:(\S+),`)

// startServe runs "mtccollector serve" and returns the process and its
// device and SCS addresses.
func startServe(t testing.TB, bin, conf, state, listen string, extra ...string) (*proc, string, string) {
	t.Helper()
	cmd := testexec.Command(bin, append([]string{"serve", "--config", conf, "--state", state, "--listen", "udp:" + listen, "--scs-listen", "udp:127.0.0.1:0"}, extra...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: &lockedBuf{}, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.out.add(sc.Text())
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
			cmd.Wait()
		}
	})
	var m []string
	waitUntil(t, 60*time.Second, "collector start", func() bool {
		m = addrRE.FindStringSubmatch(p.out.String())
		return m != nil
	})
	return p, m[1], m[2]
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("collector exit: %v\n%s", err, p.out)
	}
}

func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// testDev is the device side: signs tokens, answers the collector.
type testDev struct {
	key   ed25519.PrivateKey
	iss   *attest.Issuer
	guard *uplink.TriggerGuard
	mu    sync.Mutex
	trig  []wire.Trigger
}

func (d *testDev) ServeUplink(_ context.Context, r *uplink.Request) (uplink.Code, []byte) {
	switch r.Path {
	case wire.PathAttest:
		var req struct {
			Nonce []byte `cbor:"1,keyasint"`
		}
		if cbor.Unmarshal(r.Payload, &req) != nil {
			return uplink.BadRequest, nil
		}
		tok, err := d.iss.Sign(attest.KindBinding, attest.NonceClaim(req.Nonce))
		if err != nil {
			return uplink.ServerError, nil
		}
		return uplink.Content, tok
	case wire.PathStatus:
		b, _ := cbor.Marshal(map[string]any{"registration": "home", "sim": "ready"})
		return uplink.Content, b
	case wire.PathTrigger:
		tr, err := wire.DecodeTrigger(r.Payload)
		if err != nil {
			return uplink.BadRequest, nil
		}
		if d.guard.Accept(tr, time.Now(), false) != nil {
			return uplink.Forbidden, nil
		}
		d.mu.Lock()
		d.trig = append(d.trig, tr)
		d.mu.Unlock()
		return uplink.Changed, nil
	}
	return uplink.NotFound, nil
}

func coapClient(t *testing.T, user, key, method, uri string, extra ...string) string {
	t.Helper()
	args := append([]string{"-m", method, "-u", user, "-k", key, "-B", "10"}, extra...)
	out, _ := exec.Command("coap-client-openssl", append(args, uri)...).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// TestServeEndToEnd runs the collector as a process with a device on the
// uplink and coap-client-openssl as an authorized and an unauthorized SCS.
func TestServeEndToEnd(t *testing.T) {
	bin := buildCollector(t)
	dir := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	pemb, _ := attest.MarshalPublicKeyPEM(pub)
	os.WriteFile(filepath.Join(dir, "d1.pem"), pemb, 0o644)
	os.WriteFile(filepath.Join(dir, "d2.pem"), pemb, 0o644)
	conf := filepath.Join(dir, "collector.conf")
	text := fmt.Sprintf(`[collector]
heartbeat_timeout = 60s

[device "d1"]
psk_identity = d1
psk = %s
public_key = d1.pem

[device "d2"]
psk_identity = d2
psk = %s
public_key = d2.pem

[scs "alpha"]
psk_identity = alpha
psk = %x
devices = d1
classes = status events trigger history

[scs "beta"]
psk_identity = beta
psk = %x
devices = d2
classes = status
`, tDevPSK, tDevPSK, tAlpha, tBeta)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	p, devAddr, scsAddr := startServe(t, bin, conf, state, "127.0.0.1:0")

	iss, _ := attest.NewIssuer(priv, &attest.MemSequence{}, attest.ClockFunc(func() (time.Time, bool) { return time.Now(), false }), 1)
	guard, _ := uplink.OpenTriggerGuard(filepath.Join(dir, "trigger.last"), 0)
	dev := &testDev{key: priv, iss: iss, guard: guard}
	psk, _ := hex.DecodeString(tDevPSK)
	ucfg := uplink.Config{Addr: devAddr, Name: "collector", PSKIdentity: "d1", PSK: psk, Handler: dev, Timeout: 10 * time.Second}
	c, err := uplink.Dial(context.Background(), ucfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitUntil(t, 30*time.Second, "nonce attestation", func() bool {
		return strings.Contains(p.out.String(), "device d1: binding attestation verified (nonce")
	})
	post := func(path string, tok []byte) {
		t.Helper()
		code, _, err := c.Post(context.Background(), path, tok)
		if err != nil || code != uplink.Changed {
			t.Fatalf("post %s: %v %v", path, code, err)
		}
	}
	hb, _ := iss.SignHeartbeat()
	post(wire.PathHeartbeat, hb)
	ev, _ := iss.Sign(attest.KindEvent, attest.EventClaim(attest.SIMChanged.String()))
	post(wire.PathEvent, ev)
	// The log line comes through the process's stdout pipe, which the
	// test reads on its own goroutine: wait for it rather than race it.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.out.String(), "ALARM device d1 binding-changed") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.out.String(), "ALARM device d1 binding-changed") {
		t.Errorf("no binding alarm:\n%s", p.out)
	}

	t.Run("scs", func(t *testing.T) {
		if _, err := exec.LookPath("coap-client-openssl"); err != nil {
			t.Skip("coap-client-openssl not installed (Debian libcoap3-bin; scripts/deps.sh installs it)")
		}
		base := "coaps://" + scsAddr
		got := coapClient(t, "alpha", tAlpha, "get", base+"/devices/d1/status", "-A", "50")
		var st struct {
			Device string
			Online bool
			Status map[string]any
		}
		if err := json.Unmarshal([]byte(got), &st); err != nil || st.Device != "d1" || !st.Online || st.Status["sim"] != "ready" {
			t.Fatalf("authorized status: %q (%v)", got, err)
		}
		notGranted := coapClient(t, "beta", tBeta, "get", base+"/devices/d1/status", "-A", "50")
		unknown := coapClient(t, "beta", tBeta, "get", base+"/devices/ghost/status", "-A", "50")
		if notGranted != unknown || !strings.Contains(unknown, "4.04") {
			t.Fatalf("unauthorized %q vs unknown %q: want the same 4.04", notGranted, unknown)
		}
		// Not granted the class: same answer again.
		if got := coapClient(t, "beta", tBeta, "get", base+"/devices/d2/events", "-A", "50"); got != unknown {
			t.Fatalf("class not granted: %q", got)
		}
		// The device's history, one page, as JSON: the event is in it.
		hist := coapClient(t, "alpha", tAlpha, "get", base+"/devices/d1/history?kind=event&limit=5", "-A", "50")
		var h struct {
			Device  string
			Records []struct {
				Kind   string
				Seq    uint64
				Detail map[string]any
			}
		}
		if err := json.Unmarshal([]byte(hist), &h); err != nil || h.Device != "d1" || len(h.Records) != 1 || h.Records[0].Detail["event"] != attest.SIMChanged.String() {
			t.Fatalf("history: %q (%v)", hist, err)
		}
		if got := coapClient(t, "beta", tBeta, "get", base+"/devices/d1/history", "-A", "50"); got != unknown {
			t.Fatalf("history not granted: %q", got)
		}
		// Observe the device's events: a notification arrives (one block).
		secs := "3"
		if testexec.Emulated() {
			secs = "8"
		}
		obs := exec.Command("coap-client-openssl", "-m", "get", "-u", "alpha", "-k", tAlpha, "-s", secs, "-A", "50", base+"/devices/d1/events")
		var obsOut strings.Builder
		obs.Stdout, obs.Stderr = &obsOut, &obsOut
		if err := obs.Start(); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 5*time.Second, "observe registration", func() bool {
			return strings.Contains(p.out.String(), "scs alpha: GET /devices/d1/events -> 2.05")
		})
		ev2, _ := iss.Sign(attest.KindEvent, attest.EventClaim("cell_changed"))
		post(wire.PathEvent, ev2)
		obs.Wait()
		if !strings.Contains(obsOut.String(), `"event":"cell_changed"`) {
			t.Fatalf("observer got %q", obsOut.String())
		}
		// A trigger, then the same request replayed.
		trig, _ := cbor.Marshal(map[int]any{1: 1, 2: "report"})
		tf := filepath.Join(dir, "trigger.cbor")
		os.WriteFile(tf, trig, 0o600)
		if got := coapClient(t, "alpha", tAlpha, "post", base+"/devices/d1/trigger", "-t", "60", "-f", tf); strings.Contains(got, "4.") || strings.Contains(got, "5.") {
			t.Fatalf("trigger: %q", got)
		}
		if got := coapClient(t, "alpha", tAlpha, "post", base+"/devices/d1/trigger", "-t", "60", "-f", tf); !strings.Contains(got, "4.09") {
			t.Fatalf("replayed trigger: %q", got)
		}
		dev.mu.Lock()
		n := len(dev.trig)
		dev.mu.Unlock()
		if n != 1 {
			t.Fatalf("device got %d triggers, want 1", n)
		}
		// Unknown SCS identity: no session at all.
		if got := coapClient(t, "mallory", tBeta, "get", base+"/devices/d1/status"); strings.Contains(got, "2.05") || strings.Contains(got, "d1") {
			t.Fatalf("unknown SCS got %q", got)
		}
		audit, _ := os.ReadFile(filepath.Join(state, collector.AuditLog))
		if n := strings.Count(string(audit), "\n"); n < 6 {
			t.Fatalf("audit has %d lines:\n%s", n, audit)
		}
	})

	// Restart: state survives; the old event is a duplicate, a new one is
	// in sequence (no gap alarm).
	c.Close()
	p.stop(t)
	p2, devAddr2, _ := startServe(t, bin, conf, state, devAddr)
	ucfg.Addr = devAddr2
	c2, err := uplink.Dial(context.Background(), ucfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	code, _, err := c2.Post(context.Background(), wire.PathEvent, ev)
	if err != nil || code != uplink.Changed {
		t.Fatalf("duplicate after restart: %v %v", code, err)
	}
	if strings.Contains(p2.out.String(), "sequence-gap") {
		t.Fatalf("unexpected gap after restart:\n%s", p2.out)
	}
	p2.stop(t)
	// The embedded store (the default) holds the state; the alarm log is
	// JSON lines beside it.
	st, err := collector.OpenBolt(filepath.Join(state, collector.BoltFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if d, err := st.Device(context.Background(), "d1"); err != nil || d.Duplicates != 1 || d.LastSeq < 3 {
		t.Fatalf("state after restart: %+v %v", d, err)
	}
	alarms, _ := os.ReadFile(filepath.Join(state, collector.AlarmLog))
	if !strings.Contains(string(alarms), `"kind":"binding-changed"`) {
		t.Fatalf("alarm log: %s", alarms)
	}
	// The history survived the restart too, the alarm in it.
	st.Close()
	code2, out, errs := run(t, "history", "d1", "--state", state, "--kind", "alarm")
	if code2 != 0 || !strings.Contains(out, `"type":"binding-changed"`) {
		t.Fatalf("history after restart: exit %d\n%s%s", code2, out, errs)
	}
}
