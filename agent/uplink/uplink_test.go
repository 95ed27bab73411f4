package uplink_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/internal/coapx"
	"github.com/mtcagent/mtcagent/internal/config"
	"github.com/mtcagent/mtcagent/wire"
)

const pskHex = "00112233445566778899aabbccddeeff" // fictional

type device struct {
	key ed25519.PrivateKey
	iss *attest.Issuer
	pem string
}

func newDevice(t testing.TB) *device {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	iss, err := attest.NewIssuer(priv, &attest.MemSequence{}, attest.ClockFunc(func() (time.Time, bool) { return time.Now(), false }), 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := attest.MarshalPublicKeyPEM(pub)
	p := filepath.Join(t.TempDir(), "dev.pem")
	os.WriteFile(p, b, 0o644)
	return &device{key: priv, iss: iss, pem: p}
}

func startCollector(t testing.TB, dev *device, dir string, listen func(*collector.Server) (net.Addr, error)) (string, func()) {
	t.Helper()
	return startCollectorWith(t, dev, dir, "", io.Discard, listen)
}

func startCollectorWith(t testing.TB, dev *device, dir, extra string, log io.Writer, listen func(*collector.Server) (net.Addr, error)) (string, func()) {
	t.Helper()
	text := extra + fmt.Sprintf("[device \"d1\"]\npsk_identity = d1\npsk = %s\npublic_key = %s\n", pskHex, dev.pem)
	f, err := config.Parse("t.conf", text)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := collector.ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	s, err := collector.New(cfg, collector.Options{StateDir: dir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if listen == nil {
		listen = func(s *collector.Server) (net.Addr, error) { return s.ListenDevices("127.0.0.1:0") }
	}
	a, err := listen(s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return a.String(), stop
}

func pskConfig(addr string) uplink.Config {
	k, _ := hex.DecodeString(pskHex)
	return uplink.Config{Addr: addr, Name: "collector", PSKIdentity: "d1", PSK: k, Timeout: 3 * time.Second}
}

func TestPSKPost(t *testing.T) {
	dev := newDevice(t)
	addr, _ := startCollector(t, dev, t.TempDir(), nil)
	c, err := uplink.Dial(context.Background(), pskConfig(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hb, _ := dev.iss.SignHeartbeat()
	code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb)
	if err != nil || code != uplink.Changed {
		t.Fatalf("post: %v %v", code, err)
	}
}

func TestUnknownPSKIdentityRefused(t *testing.T) {
	dev := newDevice(t)
	addr, _ := startCollector(t, dev, t.TempDir(), nil)
	for _, tc := range []struct {
		name string
		mod  func(*uplink.Config)
	}{
		{"unknown identity", func(c *uplink.Config) { c.PSKIdentity = "nobody" }},
		{"wrong key", func(c *uplink.Config) { c.PSK = []byte("0123456789abcdef") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := pskConfig(addr)
			tc.mod(&cfg)
			c, err := uplink.Dial(context.Background(), cfg)
			if err == nil {
				c.Close()
				t.Fatal("handshake accepted")
			}
			var de *uplink.DialError
			if !errors.As(err, &de) || !errors.Is(err, uplink.ErrPSKRejected) {
				t.Fatalf("error %v, want a DialError wrapping ErrPSKRejected", err)
			}
			if strings.Contains(err.Error(), pskHex) {
				t.Fatal("error shows the key")
			}
		})
	}
}

func certListener(cert *collectorCert) func(*collector.Server) (net.Addr, error) {
	return func(s *collector.Server) (net.Addr, error) { return s.ListenDevicesCert("127.0.0.1:0", *cert.tls) }
}

func TestServerKeyPinning(t *testing.T) {
	dev := newDevice(t)
	srv := newCollectorCert(t)
	addr, _ := startCollector(t, dev, t.TempDir(), certListener(srv))
	devCert, err := coapx.SelfSigned(dev.key, "d1")
	if err != nil {
		t.Fatal(err)
	}
	// Right pin: the session comes up and tokens go through.
	c, err := uplink.Dial(context.Background(), uplink.Config{Addr: addr, Certificate: devCert, ServerPin: srv.pin, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatalf("pinned key: %v", err)
	}
	hb, _ := dev.iss.SignHeartbeat()
	if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
		t.Fatalf("post: %v %v", code, err)
	}
	c.Close()
	// Another pin: refused at Dial with a clear error.
	wrong := newCollectorCert(t)
	_, err = uplink.Dial(context.Background(), uplink.Config{Addr: addr, Certificate: devCert, ServerPin: wrong.pin, Timeout: 3 * time.Second})
	if !errors.Is(err, uplink.ErrServerKey) || !strings.Contains(err.Error(), "server key does not match the pinned key") {
		t.Fatalf("wrong pin: %v", err)
	}
	// A device key the collector does not know: refused.
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	sc, _ := coapx.SelfSigned(stranger, "x")
	if c, err := uplink.Dial(context.Background(), uplink.Config{Addr: addr, Certificate: sc, ServerPin: srv.pin, Timeout: 3 * time.Second}); err == nil {
		c.Close()
		t.Fatal("unknown device key accepted")
	}
}

// TestReconnect: the collector goes away; the client notices (Post fails,
// Done closes) and a new Dial succeeds once the collector is back on the
// same address with the same state (a duplicate is still recognised).
func TestReconnect(t *testing.T) {
	dev := newDevice(t)
	dir := t.TempDir()
	addr, stop := startCollector(t, dev, dir, nil)
	cfg := pskConfig(addr)
	cfg.Keepalive = 200 * time.Millisecond
	cfg.Timeout = time.Second
	c, err := uplink.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := dev.iss.SignHeartbeat()
	if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
		t.Fatalf("post: %v %v", code, err)
	}
	stop()
	ev, _ := dev.iss.Sign(attest.KindEvent, attest.EventClaim("connectivity-lost"))
	if _, _, err := c.Post(context.Background(), wire.PathEvent, ev); err == nil {
		t.Fatal("post to a stopped collector succeeded")
	}
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("session not closed after the collector went away")
	}
	c.Close()
	if _, err := uplink.Dial(context.Background(), cfg); err == nil {
		t.Fatal("dial succeeded with the collector down")
	}
	startCollector(t, dev, dir, func(s *collector.Server) (net.Addr, error) { return s.ListenDevices(addr) })
	var c2 *uplink.Client
	for i := 0; i < 10 && c2 == nil; i++ {
		c2, err = uplink.Dial(context.Background(), cfg)
	}
	if err != nil {
		t.Fatalf("redial: %v", err)
	}
	defer c2.Close()
	for _, tok := range [][]byte{hb, ev} { // hb is a duplicate, ev is new
		if code, _, err := c2.Post(context.Background(), pathOf(tok, hb), tok); err != nil || code != uplink.Changed {
			t.Fatalf("post after reconnect: %v %v", code, err)
		}
	}
}

func TestTriggerGuard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trigger.last")
	g, err := uplink.OpenTriggerGuard(path, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	tr := wire.Trigger{Counter: 5, Time: now, Action: "report", From: "alpha"}
	b, err := wire.EncodeTrigger(tr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := wire.DecodeTrigger(b)
	if err != nil || got != tr {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if err := g.Accept(got, now, true); err != nil {
		t.Fatal(err)
	}
	// The same bytes again: a replay.
	again, _ := wire.DecodeTrigger(b)
	if err := g.Accept(again, now, true); !errors.Is(err, uplink.ErrTriggerReplay) {
		t.Fatalf("replay: %v", err)
	}
	// After a restart too.
	g2, _ := uplink.OpenTriggerGuard(path, time.Minute)
	if err := g2.Accept(again, now, true); !errors.Is(err, uplink.ErrTriggerReplay) {
		t.Fatalf("replay after reopen: %v", err)
	}
	// Newer counter but outside the window on a synchronised clock.
	old := wire.Trigger{Counter: 6, Time: now.Add(-time.Hour), Action: "report"}
	if err := g2.Accept(old, now, true); !errors.Is(err, uplink.ErrTriggerStale) {
		t.Fatalf("stale: %v", err)
	}
	// Unsynchronised clock: only the counter counts.
	if err := g2.Accept(old, now, false); err != nil || g2.Last() != 6 {
		t.Fatalf("unsynced: %v last %d", err, g2.Last())
	}
	for _, bad := range [][]byte{nil, {0xa0}, {0xff}, append([]byte{0x59, 0x02, 0x00}, make([]byte, 512)...)} {
		if _, err := wire.DecodeTrigger(bad); !errors.Is(err, wire.ErrTrigger) {
			t.Errorf("decode %x: %v", bad, err)
		}
	}
}

func TestConfigChecks(t *testing.T) {
	for _, c := range []uplink.Config{
		{},
		{Addr: "127.0.0.1:1"},
		{Addr: "127.0.0.1:1", PSKIdentity: "x", PSK: []byte("short")},
		{Addr: "127.0.0.1:1", PSKIdentity: "x", PSK: make([]byte, 16), ServerPin: make([]byte, 32)},
		{Addr: "127.0.0.1:1", ServerPin: make([]byte, 32)},
	} {
		if _, err := uplink.Dial(context.Background(), c); !errors.Is(err, uplink.ErrConfig) {
			t.Errorf("%v: %v", c, err)
		}
	}
	if s := fmt.Sprint(uplink.Config{Addr: "a", PSKIdentity: "x", PSK: []byte("secret-secret-secret")}); strings.Contains(s, "secret") {
		t.Errorf("Config prints its key: %s", s)
	}
}

func pathOf(tok, hb []byte) string {
	if string(tok) == string(hb) {
		return wire.PathHeartbeat
	}
	return wire.PathEvent
}

// TestKeepalive: the collector drops a session idle for session_idle (as a
// stock go-coap server does after 16 s); the client's pings keep it up. A
// request on a session the server dropped fails and ends it on our side.
func TestKeepalive(t *testing.T) {
	dev := newDevice(t)
	// Two devices: the collector keeps one session per device.
	extra := fmt.Sprintf("[collector]\nsession_idle = 2s\n[device \"d2\"]\npsk_identity = d2\npsk = %s\npublic_key = %s\n", pskHex, dev.pem)
	log := &syncLog{}
	addr, _ := startCollectorWith(t, dev, t.TempDir(), extra, log, nil)
	cfg := pskConfig(addr)
	cfg.Keepalive = 150 * time.Millisecond
	kept, err := uplink.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	cfg.Keepalive = -1
	cfg.PSKIdentity = "d2"
	cfg.Timeout = time.Second
	idle, err := uplink.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(log.String(), "device d2: session closed") {
		if time.Now().After(deadline) {
			t.Fatal("collector did not drop the idle session")
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-kept.Done():
		t.Fatal("session with keep-alive dropped")
	default:
	}
	hb, _ := dev.iss.SignHeartbeat()
	if code, _, err := kept.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
		t.Fatalf("post on the kept session: %v %v", code, err)
	}
	// The server may or may not have told the idle client (close_notify
	// is best effort): either way the request fails and the session ends.
	if _, _, err := idle.Post(context.Background(), wire.PathHeartbeat, hb); !errors.Is(err, uplink.ErrClosed) && !errors.Is(err, uplink.ErrNoAnswer) {
		t.Fatalf("post on the dropped session: %v, want ErrClosed or ErrNoAnswer", err)
	}
	select {
	case <-idle.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("unanswered request did not end the session")
	}
}

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// stampConn notes when each datagram is sent.
type stampConn struct {
	net.Conn
	mu sync.Mutex
	at []time.Time
}

func (c *stampConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.at = append(c.at, time.Now())
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// TestKeepaliveAtIdleDeadline: an idle session pings once per Keepalive,
// at the idle deadline (the old ticker of Keepalive/2 pinged every 1.5
// Keepalive); with no Keepalive (the default) an idle session sends
// nothing at all.
func TestKeepaliveAtIdleDeadline(t *testing.T) {
	dev := newDevice(t)
	addr, _ := startCollector(t, dev, t.TempDir(), nil)
	const k = 400 * time.Millisecond
	for _, ka := range []time.Duration{k, 0} {
		cfg := pskConfig(addr)
		cfg.Keepalive = ka
		sc := &stampConn{}
		cfg.WrapConn = func(c net.Conn) net.Conn { sc.Conn = c; return sc }
		c, err := uplink.Dial(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // the collector's attestation request (answered 4.04)
		sc.mu.Lock()
		from := len(sc.at)
		sc.mu.Unlock()
		time.Sleep(8 * k)
		closing := time.Now()
		c.Close()
		sc.mu.Lock()
		var pings []time.Time
		for _, at := range sc.at[from:] {
			if at.Before(closing) { // what Close writes (close_notify, under QEMU sometimes more) is not a ping
				pings = append(pings, at)
			}
		}
		sc.mu.Unlock()
		if ka == 0 {
			if len(pings) != 0 {
				t.Errorf("no keepalive: %d datagrams sent while idle, want none", len(pings))
			}
			continue
		}
		if len(pings) < 5 {
			t.Fatalf("keepalive %s: %d pings in %s idle, want about 8", ka, len(pings), 8*k)
		}
		// Never early; on time by the median (one late wake-up on a loaded
		// or emulated machine is not the old ticker's 1.5 Keepalive).
		gaps := make([]time.Duration, 0, len(pings)-1)
		for i := 1; i < len(pings); i++ {
			gap := pings[i].Sub(pings[i-1])
			if gap < k-20*time.Millisecond {
				t.Errorf("keepalive %s: ping %d came %s after the one before, want no less than %s", ka, i, gap, k)
			}
			gaps = append(gaps, gap)
		}
		slices.Sort(gaps)
		if med := gaps[len(gaps)/2]; med > k+100*time.Millisecond {
			t.Errorf("keepalive %s: median gap between pings %s, want just over %s (gaps %v)", ka, med, k, gaps)
		}
	}
}
