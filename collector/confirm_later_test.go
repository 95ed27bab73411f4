package collector

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/wire"
)

// TestConfirmLaterOverTheWire (issue 16): the collector offers to
// confirm later in its attestation request; it takes a non-confirmable
// event that follows on what it has, without an answer; it leaves one
// after a gap (a lost one) for the resend; a heartbeat asking about a
// missing one is refused with 4.12 and not taken, and once the missing
// ones came again, confirmable, the same question is answered with its
// number. Nothing is alarmed as a gap.
func TestConfirmLaterOverTheWire(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	_, c, log := startWithDevice(t, dev, t.TempDir())
	ctx := context.Background()
	waitFor(t, 10*time.Second, "nonce attestation", func() bool { return strings.Contains(log.String(), "binding attestation verified (nonce") })
	dev.mu.Lock()
	later := dev.later
	dev.mu.Unlock()
	if len(later) != 1 || later[0] != 1 {
		t.Fatalf("the attestation request's confirm-later key is %x, want 01", later)
	}
	sign := func(kind attest.Kind, claims ...attest.Claim) []byte {
		t.Helper()
		tok, err := dev.iss.Sign(kind, claims...)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	ask := func(path string, tok []byte, q string) (uplink.Code, []byte) {
		t.Helper()
		code, body, err := c.PostQuery(ctx, path, tok, q)
		if err != nil {
			t.Fatal(err)
		}
		return code, body
	}
	if code, _, err := c.Post(ctx, wire.PathHeartbeat, sign(attest.KindHeartbeat)); err != nil || code != uplink.Changed {
		t.Fatalf("heartbeat: %v %v", code, err)
	}
	e1 := sign(attest.KindEvent, attest.EventClaim("cell_changed"))
	if err := c.PostNon(ctx, wire.PathEvent, e1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the non-confirmable event taken", func() bool { return strings.Contains(log.String(), "event cell_changed verified") })
	h2 := sign(attest.KindHeartbeat)
	code, body := ask(wire.PathHeartbeat, h2, "c=1")
	var n uint64
	if code != uplink.Changed || cbor.Unmarshal(body, &n) != nil || n != 1 || len(body) != 1 {
		t.Fatalf("asking about the event: %v %x, want 2.04 and the CBOR 1", code, body)
	}

	e3 := sign(attest.KindEvent, attest.EventClaim("cell_changed")) // lost on the way
	e4 := sign(attest.KindEvent, attest.EventClaim("cell_flapping"))
	if err := c.PostNon(ctx, wire.PathEvent, e4); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the one after the gap left", func() bool { return strings.Contains(log.String(), "left for its resend") })
	h5 := sign(attest.KindHeartbeat)
	if code, body := ask(wire.PathHeartbeat, h5, "c=1"); code != wire.CodeNotConfirmed || len(body) != 0 {
		t.Fatalf("asking about a missing one: %v %x, want 4.12", code, body)
	}
	for _, tok := range [][]byte{e3, e4} {
		if code, _, err := c.Post(ctx, wire.PathEvent, tok); err != nil || code != uplink.Changed {
			t.Fatalf("resend: %v %v", code, err)
		}
	}
	for range 2 { // the second time a duplicate: still confirmed
		if code, body := ask(wire.PathHeartbeat, h5, "c=1"); code != uplink.Changed || len(body) != 1 || body[0] != 1 {
			t.Fatalf("asking again: %v %x", code, body)
		}
	}
	if code, _ := ask(wire.PathHeartbeat, sign(attest.KindHeartbeat), "c=x"); code != uplink.BadRequest {
		t.Fatalf("a bad question: %v, want 4.00", code)
	}
	out := log.String()
	if strings.Contains(out, "sequence-gap") || strings.Count(out, "event cell_changed verified") != 2 || strings.Count(out, "event cell_flapping verified") != 1 {
		t.Fatalf("log:\n%s", out)
	}
}

// TestConfirmLaterAccept: the acceptance rules on both stores: a
// non-confirmable token is not taken as a device's first message, nor
// after a gap; a question about a seq not reached refuses the asking
// token without moving anything.
func TestConfirmLaterAccept(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		dev := newTestDevice(t, "dev1")
		cfg := parseTestConfig(t, testConfigText(dev))
		dir := t.TempDir()
		s, err := New(cfg, Options{StateDir: dir, Store: b.open(t, dir), Log: &syncBuf{}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		d := cfg.Devices["dev1"]
		ev := func() []byte { tok, _ := dev.iss.Sign(attest.KindEvent, attest.EventClaim("cell_changed")); return tok }
		hb := func() []byte { tok, _ := dev.iss.SignHeartbeat(); return tok }
		e1 := ev()
		if code := s.acceptAsked(d, attest.KindEvent, e1, true, 0); code != wire.CodeNotConfirmed {
			t.Fatalf("first message non-confirmable: %v", code)
		}
		if code := s.acceptAsked(d, attest.KindEvent, e1, false, 0); code != 0x44 {
			t.Fatalf("first message: %v", code)
		}
		ev() // seq 2 lost
		e3 := ev()
		if code := s.acceptAsked(d, attest.KindEvent, e3, true, 0); code != wire.CodeNotConfirmed {
			t.Fatalf("after a gap: %v", code)
		}
		if code := s.acceptAsked(d, attest.KindHeartbeat, hb(), false, 1); code != wire.CodeNotConfirmed {
			t.Fatalf("asking about seq 3: %v", code)
		}
		if ds := s.device("dev1"); ds.LastSeq != 1 || ds.Accepted != 1 {
			t.Fatalf("last seq %d accepted %d, want 1 and 1", ds.LastSeq, ds.Accepted)
		}
	})
}

func TestConfirmLaterSetting(t *testing.T) {
	dev := newTestDevice(t, "dev1")
	if c := parseTestConfig(t, testConfigText(dev)); c.NoConfirmLater {
		t.Fatal("confirm_later is on by default")
	}
	off := strings.Replace(testConfigText(dev), "[collector]\n", "[collector]\nconfirm_later = off\n", 1)
	if c := parseTestConfig(t, off); !c.NoConfirmLater {
		t.Fatal("confirm_later = off not read")
	}
}
