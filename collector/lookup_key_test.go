package collector

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
)

// TestLookupUnstorableKey, on both backends: a lookup by a key no store
// can hold (a NUL, bytes that are not UTF-8) finds nothing and is no
// store error, and a handshake with such a PSK identity is refused as an
// unknown one. On PostgreSQL it was "invalid byte sequence", logged as a
// store ERROR at an unauthenticated peer's will.
func TestLookupUnstorableKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		testBackends.Store(t, b)
		t.Cleanup(func() { testBackends.Delete(t) })
		dev := newTestDevice(t, "dev1")
		s, addr, _, log := startServer(t, parseTestConfig(t, testConfigText(dev)), t.TempDir())
		ctx := context.Background()
		for _, k := range []string{"dev1\x00", "\xff\xfe", "a\x00b"} {
			if d, err := s.st.DeviceByID(ctx, k); d != nil || err != nil {
				t.Errorf("DeviceByID(%q): %v %v", k, d, err)
			}
			if d, err := s.st.DeviceByPSK(ctx, k); d != nil || err != nil {
				t.Errorf("DeviceByPSK(%q): %v %v", k, d, err)
			}
			if x, err := s.st.SCSByPSK(ctx, k); x != nil || err != nil {
				t.Errorf("SCSByPSK(%q): %v %v", k, x, err)
			}
			if x, err := s.st.SCSByName(ctx, k); x != nil || err != nil {
				t.Errorf("SCSByName(%q): %v %v", k, x, err)
			}
			if ok, err := s.st.Granted(ctx, "alpha", k, ClassStatus); ok || err != nil {
				t.Errorf("Granted(alpha, %q): %v %v", k, ok, err)
			}
			cfg := dev.uplinkConfig(addr)
			cfg.PSKIdentity, cfg.Timeout = k, 2*time.Second
			if c, err := uplink.Dial(ctx, cfg); err == nil {
				c.Close()
				t.Errorf("a handshake with PSK identity %q was taken", k)
			}
		}
		waitFor(t, 5*time.Second, "the refusal logged", func() bool { return strings.Contains(log.String(), "unknown PSK identity") })
		if out := log.String(); strings.Contains(out, "ERROR") {
			t.Errorf("a store error was logged:\n%s", out)
		}
		// The device itself still connects.
		c, err := uplink.Dial(ctx, dev.uplinkConfig(addr))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
}
