package collector

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
)

func startServer(t *testing.T, cfg *Config, dir string) (*Server, string, string, *syncBuf) {
	t.Helper()
	log := &syncBuf{}
	s, err := New(cfg, Options{StateDir: dir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	da, err := s.ListenDevices("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sa, err := s.ListenSCS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, da.String(), sa.String(), log
}

func TestDeviceTokens(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	cfg := parseTestConfig(t, testConfigText(dev))
	s, addr, _, log := startServer(t, cfg, t.TempDir())
	ctx := context.Background()
	c, err := uplink.Dial(ctx, dev.uplinkConfig(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, 10*time.Second, "nonce attestation", func() bool { return strings.Contains(log.String(), "binding attestation verified (nonce") })

	post := func(path string, tok []byte) uplink.Code {
		t.Helper()
		code, _, err := c.Post(ctx, path, tok)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	hb, _ := dev.iss.SignHeartbeat()
	if code := post(uplink.PathHeartbeat, hb); code != uplink.Changed {
		t.Fatalf("heartbeat: %v", code)
	}
	ev, _ := dev.iss.Sign(attest.KindEvent, attest.EventClaim("cell-changed"))
	if code := post(uplink.PathEvent, ev); code != uplink.Changed {
		t.Fatalf("event: %v", code)
	}
	// The same event again: acknowledged, not processed twice.
	if code := post(uplink.PathEvent, ev); code != uplink.Changed {
		t.Fatalf("duplicate: %v", code)
	}
	// A heartbeat on the event path: wrong kind, refused.
	hb2, _ := dev.iss.SignHeartbeat()
	if code := post(uplink.PathEvent, hb2); code != uplink.Forbidden {
		t.Fatalf("wrong kind: %v", code)
	}
	// Skip two sequence numbers: a gap alarm.
	dev.iss.SignHeartbeat()
	dev.iss.SignHeartbeat()
	hb3, _ := dev.iss.SignHeartbeat()
	post(uplink.PathHeartbeat, hb3)
	s.mu.Lock()
	ds := *s.st.Devices["dev1"]
	s.mu.Unlock()
	if ds.Duplicates != 1 || ds.Accepted != 3 {
		t.Errorf("accepted %d duplicates %d, want 3 and 1", ds.Accepted, ds.Duplicates)
	}
	if !strings.Contains(log.String(), "ALARM device dev1 sequence-gap") {
		t.Errorf("no gap alarm in:\n%s", log)
	}
	// A signature by another key on the session: refused and alarmed.
	other := newTestDevice(t, "x")
	forged, _ := other.iss.Sign(attest.KindEvent, attest.EventClaim("sim-bound"))
	if code := post(uplink.PathEvent, forged); code != uplink.Forbidden {
		t.Fatalf("forged: %v", code)
	}
}
