package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/wire"
)

// dialSCS connects the test SCS "alpha" to the collector's SCS listener.
func dialSCS(t *testing.T, addr string) *udpClient.Conn {
	t.Helper()
	dc := &piondtls.Config{PSK: func([]byte) ([]byte, error) { return []byte(scsAPSK), nil },
		PSKIdentityHint: []byte("alpha"), CipherSuites: []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8}}
	cc, err := coapdtls.Dial(addr, dc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// scsAnswer is a JSON answer to an SCS, with its code and Max-Age.
type scsAnswer struct {
	code   codes.Code
	maxAge uint32
	body   map[string]any
	raw    string
}

func scsDo(t *testing.T, cc *udpClient.Conn, method, path string, payload []byte) scsAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := cc.NewGetRequest(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if method == "POST" {
		req.SetCode(codes.POST)
		req.SetContentFormat(message.AppCBOR)
		req.SetBody(bytes.NewReader(payload))
	}
	req.SetAccept(message.AppJSON)
	resp, err := cc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	a := scsAnswer{code: resp.Code()}
	a.maxAge, _ = resp.Options().GetUint32(message.MaxAge)
	b, _ := resp.ReadBody()
	a.raw = string(b)
	if resp.Code() < codes.BadRequest && len(b) > 0 {
		if err := json.Unmarshal(b, &a.body); err != nil {
			t.Fatalf("%s %s: %v %q: %v", method, path, resp.Code(), b, err)
		}
	}
	return a
}

// startQueueMode runs a collector with a short NAT window and connects the
// device with the agent's defaults (no keepalive); it returns once the
// device is no longer reachable (nothing received from it for the window).
func startQueueMode(t *testing.T, dev *testDevice, window time.Duration, tune func(*Config)) (*Server, *uplink.Client, *udpClient.Conn, *syncBuf) {
	t.Helper()
	cfg := parseTestConfig(t, testConfigText(dev))
	cfg.NATWindow = window
	if tune != nil {
		tune(cfg)
	}
	s, addr, scsAddr, log := startServer(t, cfg, t.TempDir())
	ucfg := dev.uplinkConfig(addr)
	c, err := uplink.Dial(context.Background(), ucfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	waitFor(t, 10*time.Second, "nonce attestation", func() bool { return strings.Contains(log.String(), "binding attestation verified (nonce") })
	waitFor(t, 10*time.Second, "the NAT window to pass", func() bool { _, ok := s.reachable(dev.id); return !ok })
	return s, c, dialSCS(t, scsAddr), log
}

// TestQueuedStatusRead: an SCS reading the status of a device that is not
// reachable now (nothing from it within the NAT window) is answered at
// once with what is known and that the read is queued, with when the
// device is next expected; the device is not asked. The read goes to the
// device in the window after its next message, and the SCS's next read
// has that status.
func TestQueuedStatusRead(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	s, c, scs, log := startQueueMode(t, dev, 300*time.Millisecond, nil)

	a := scsDo(t, scs, "GET", "/devices/dev1/status", nil)
	if a.code != codes.Content || a.body["queued"] != true || a.body["online"] != false || a.body["next_expected"] == nil || a.body["status"] != nil {
		t.Fatalf("status of an unreachable device: %v %s, want 2.05 queued, offline, next_expected, no status yet", a.code, a.raw)
	}
	if a.maxAge == 0 {
		t.Errorf("queued answer without Max-Age (seconds until the device is next expected)")
	}
	// A second SCS read, observing, joins the queued one.
	notes := make(chan map[string]any, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs, err := scs.Observe(ctx, "/devices/dev1/status", func(m *pool.Message) {
		b, _ := m.ReadBody()
		var v map[string]any
		json.Unmarshal(b, &v)
		notes <- v
	}, message.Option{ID: message.Accept, Value: []byte{byte(message.AppJSON)}})
	if err != nil {
		t.Fatal(err)
	}
	_ = obs // ended by closing the SCS connection: go-coap v3.6.0's Observation.Cancel races its own receive loop (a -race report in CI)
	if first := <-notes; first["queued"] != true {
		t.Fatalf("observe registration: %v, want the queued answer", first)
	}
	if n := s.Queued("dev1"); n != 1 {
		t.Fatalf("%d requests queued, want 1 (reads coalesce)", n)
	}
	dev.mu.Lock()
	reads := dev.reads
	dev.mu.Unlock()
	if reads != 0 {
		t.Fatalf("the collector asked an unreachable device %d time(s)", reads)
	}

	hb, _ := dev.iss.SignHeartbeat()
	if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
		t.Fatalf("heartbeat: %v %v", code, err)
	}
	waitFor(t, 5*time.Second, "the queued read delivered after the heartbeat", func() bool {
		dev.mu.Lock()
		defer dev.mu.Unlock()
		return dev.reads == 1
	})
	waitFor(t, 5*time.Second, "the delivery logged", func() bool { return strings.Contains(log.String(), "device dev1: queued status read answered") })
	if n := s.Queued("dev1"); n != 0 {
		t.Errorf("%d requests still queued", n)
	}
	// The observer has its answer: the status the device gave.
	select {
	case v := <-notes:
		st, _ := v["status"].(map[string]any)
		if v["queued"] != nil || st == nil || st["read"] != float64(1) || v["online"] != true {
			t.Errorf("notification after the queued read: %v, want the fresh status, online", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notification to the observer after the queued read was answered")
	}

	// The window closed again: the SCS gets the status the device gave
	// after its heartbeat (queued once more for the next window).
	waitFor(t, 5*time.Second, "the NAT window to pass", func() bool { _, ok := s.reachable("dev1"); return !ok })
	a = scsDo(t, scs, "GET", "/devices/dev1/status", nil)
	st, _ := a.body["status"].(map[string]any)
	if a.code != codes.Content || st == nil || st["read"] != float64(1) || a.body["status_at"] == nil {
		t.Fatalf("status after the device's next message: %v %s, want the status it answered the queued read with", a.code, a.raw)
	}
}

// TestQueuedTrigger: a trigger for a device that is not reachable now is
// answered 2.01 queued (not 5.03 as before queue mode), delivered after
// the device's next message with a fresh counter and issue time, and
// audited; the queue is bounded per device.
func TestQueuedTrigger(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	s, c, scs, log := startQueueMode(t, dev, 300*time.Millisecond, func(c *Config) { c.QueuePerDevice = 2 })
	trigger := func(seq int) scsAnswer {
		b, _ := cbor.Marshal(map[int]any{1: seq, 2: "ping"})
		return scsDo(t, scs, "POST", "/devices/dev1/trigger", b)
	}
	if a := trigger(1); a.code != codes.Created || a.body["queued"] != true || a.body["next_expected"] == nil {
		t.Fatalf("trigger to an unreachable device: %v %s, want 2.01 queued with next_expected", a.code, a.raw)
	}
	if a := trigger(1); a.code != codes.Code(0x89) {
		t.Fatalf("replayed queued trigger: %v %s, want 4.09", a.code, a.raw)
	}
	if a := trigger(2); a.code != codes.Created {
		t.Fatalf("second trigger: %v %s, want 2.01", a.code, a.raw)
	}
	if a := trigger(3); a.code != codes.ServiceUnavailable || a.maxAge == 0 {
		t.Fatalf("trigger beyond queue_per_device: %v (Max-Age %d) %s, want 5.03 with Max-Age", a.code, a.maxAge, a.raw)
	}
	dev.mu.Lock()
	n := len(dev.triggers)
	dev.mu.Unlock()
	if n != 0 {
		t.Fatalf("an unreachable device got %d triggers", n)
	}
	var m strings.Builder
	s.WriteMetrics(&m)
	if !strings.Contains(m.String(), "\nmtccollector_queued_requests 2\n") {
		t.Errorf("metrics do not show the 2 queued triggers:\n%s", m.String())
	}

	ev, _ := dev.iss.SignHeartbeat()
	if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, ev); err != nil || code != uplink.Changed {
		t.Fatalf("heartbeat: %v %v", code, err)
	}
	waitFor(t, 5*time.Second, "the queued triggers delivered", func() bool {
		dev.mu.Lock()
		defer dev.mu.Unlock()
		return len(dev.triggers) == 2
	})
	dev.mu.Lock()
	tr := append([]wire.Trigger(nil), dev.triggers...)
	dev.mu.Unlock()
	if tr[0].Counter != 1 || tr[1].Counter != 2 || tr[0].From != "alpha" || time.Since(tr[1].Time) > 5*time.Second {
		t.Errorf("delivered triggers %+v, want counters 1 and 2 from alpha, issued at delivery", tr)
	}
	waitFor(t, 5*time.Second, "the delivery audited", func() bool {
		recs, _ := s.st.Audit(context.Background(), "alpha")
		k := 0
		for _, r := range recs {
			if r.Method == "DELIVER" && r.Code == "2.04" {
				k++
			}
		}
		return k == 2
	})
	waitFor(t, 5*time.Second, "the delivery logged", func() bool { return strings.Contains(log.String(), "queued trigger (ping) from alpha delivered") })
}

// TestOverdueWithSuppressedHeartbeats (seed 001, 1.2.3): with the new
// defaults (no keepalive, sessions kept between heartbeats) an overdue
// alarm still fires when a device's heartbeats are suppressed, and the
// heartbeat after the suppression shows the gap.
func TestOverdueWithSuppressedHeartbeats(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	cfg := parseTestConfig(t, testConfigText(dev))
	if cfg.SessionIdle < MinSessionIdle || cfg.NATWindow != DefaultNATWindow {
		t.Fatalf("defaults: session_idle %s, nat_window %s", cfg.SessionIdle, cfg.NATWindow)
	}
	cfg.Devices["dev1"].HeartbeatTimeout = time.Second
	s, addr, _, log := startServer(t, cfg, t.TempDir())
	c, err := uplink.Dial(context.Background(), dev.uplinkConfig(addr)) // keepalive: the default (off)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	post := func() {
		t.Helper()
		hb, _ := dev.iss.SignHeartbeat()
		if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
			t.Fatalf("heartbeat: %v %v", code, err)
		}
	}
	post()
	post()
	// A man in the middle drops the next two heartbeats.
	dev.iss.SignHeartbeat()
	dev.iss.SignHeartbeat()
	waitFor(t, 15*time.Second, "overdue alarm", func() bool { return strings.Contains(log.String(), "ALARM device dev1 heartbeat-overdue") })
	if s.session("dev1") == nil {
		t.Fatal("the collector dropped the silent device's session")
	}
	post() // the same session
	waitFor(t, 5*time.Second, "recovery", func() bool { return strings.Contains(log.String(), "device dev1: heard from again") })
	if !strings.Contains(log.String(), "ALARM device dev1 sequence-gap: 2 message(s) missing") {
		t.Errorf("the suppressed heartbeats are not visible:\n%s", log)
	}
	if n := strings.Count(log.String(), "session up"); n != 1 {
		t.Errorf("%d sessions, want 1", n)
	}
}

// countConn counts the datagrams a device sends.
type countConn struct {
	net.Conn
	sent atomic.Int64
}

func (c *countConn) Write(b []byte) (int, error) { c.sent.Add(1); return c.Conn.Write(b) }

// TestSessionKeptAcrossHeartbeats: with the agent's default (no
// keepalive) the device sends nothing between two heartbeats 65 s apart,
// and the collector's default session_idle keeps the session: the second
// heartbeat goes over the same session, with no second handshake. (Before
// queue mode the agent pinged every 15 s and the collector dropped a
// session idle for 60 s.)
func TestSessionKeptAcrossHeartbeats(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 65 s")
	}
	t.Parallel()
	dev := newTestDevice(t, "dev1")
	cfg := parseTestConfig(t, testConfigText(dev))
	cfg.Devices["dev1"].HeartbeatTimeout = 5 * time.Minute
	_, addr, _, log := startServer(t, cfg, t.TempDir())
	ucfg := dev.uplinkConfig(addr)
	cc := &countConn{}
	ucfg.WrapConn = func(c net.Conn) net.Conn { cc.Conn = c; return cc }
	c, err := uplink.Dial(context.Background(), ucfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hb, _ := dev.iss.SignHeartbeat()
	if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
		t.Fatalf("first heartbeat: %v %v", code, err)
	}
	time.Sleep(2 * time.Second) // the collector's attestation request and its answer
	before := cc.sent.Load()
	time.Sleep(65 * time.Second)
	if n := cc.sent.Load() - before; n != 0 {
		t.Errorf("the device sent %d datagram(s) while idle, want none (no keepalive)", n)
	}
	hb, _ = dev.iss.SignHeartbeat()
	if code, _, err := c.Post(context.Background(), wire.PathHeartbeat, hb); err != nil || code != uplink.Changed {
		t.Fatalf("heartbeat after 65 s idle: %v %v\n%s", code, err, log)
	}
	if n := strings.Count(log.String(), "session up"); n != 1 || strings.Contains(log.String(), "session closed") {
		t.Fatalf("%d sessions (want 1, none closed):\n%s", n, log)
	}
}
