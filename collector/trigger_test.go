package collector

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// An SCS whose trigger the device refuses learns it (5.02) and why (the
// device's reason), never that it was accepted.
func TestSCSTriggerRefusalCarriesReason(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	s, _, log := startWithDevice(t, dev, t.TempDir())
	waitFor(t, 10*time.Second, "device session", func() bool { return s.session("dev1") != nil })
	scs := s.cfg.SCS["alpha"]
	trigger := func(seq int, action string) (codes.Code, string) {
		b, _ := cbor.Marshal(map[int]any{1: seq, 2: action})
		code, body, _ := s.scsTrigger(context.Background(), scs, "dev1", b, false, false)
		return code, string(body)
	}
	if code, body := trigger(1, "mdt_consent"); code != codes.BadGateway || !strings.Contains(body, `unknown trigger action "mdt_consent"`) {
		t.Fatalf("refused trigger: %v %q, want 5.02 with the device's reason", code, body)
	}
	if code, body := trigger(2, "ping"); code != codes.Changed {
		t.Fatalf("ping: %v %q\n%s", code, body, log)
	}
	dev.mu.Lock()
	n := len(dev.triggers)
	dev.mu.Unlock()
	if n != 1 {
		t.Fatalf("device acted on %d triggers, want 1", n)
	}
}
