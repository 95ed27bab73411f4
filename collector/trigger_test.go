package collector

import (
	"context"
	"encoding/json"
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
	// An action that is not plain text is refused before it is logged,
	// queued or sent; a device's reason that is not is left out.
	for _, bad := range []string{"ping\nALARM device dev1 binding-changed: forged", "pi\x00ng", "\u0085"} {
		if code, body := trigger(2, bad); code != codes.BadRequest || body != "want {1: seq, 2: action}" {
			t.Fatalf("action %q: %v %q, want 4.00", bad, code, body)
		}
		b, _ := json.Marshal(map[string]any{"seq": 2, "action": bad})
		if code, body, _ := s.scsTrigger(context.Background(), scs, "dev1", b, true, false); code != codes.BadRequest {
			t.Fatalf("action %q in JSON: %v %q, want 4.00", bad, code, body)
		}
	}
	if code, body := trigger(2, "say-nul"); code != codes.BadGateway || body != "device refused the trigger (BadRequest)" {
		t.Fatalf("a device's reason with a NUL and a line break: %v %q", code, body)
	}
	if strings.Contains(log.String(), "forged") {
		t.Fatalf("a forged line reached the log:\n%s", log)
	}
	if code, body := trigger(3, "ping"); code != codes.Changed {
		t.Fatalf("ping: %v %q\n%s", code, body, log)
	}
	dev.mu.Lock()
	n := len(dev.triggers)
	dev.mu.Unlock()
	if n != 1 {
		t.Fatalf("device acted on %d triggers, want 1", n)
	}
}
