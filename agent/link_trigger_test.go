//go:build !mtc_omit_coap

package agent

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/wire"
)

// An unknown trigger action is refused with 4.00 and the reason, never
// acknowledged and never queued as trigger_accepted; only an implemented
// action (ping) is.
func TestTriggerUnknownActionRefused(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StateDir = t.TempDir()
	a, err := New(cfg, Deps{
		Open:   func(context.Context) (io.ReadWriteCloser, error) { return nil, errors.New("no modem in this test") },
		Outbox: &MemOutbox{},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	guard, err := uplink.OpenTriggerGuard("", 0)
	if err != nil {
		t.Fatal(err)
	}
	h := &LinkHandler{A: a, Guard: guard}
	post := func(counter uint64, action string) (uplink.Code, string) {
		t.Helper()
		b, err := wire.EncodeTrigger(wire.Trigger{Counter: counter, Time: time.Now(), Action: action, From: "alpha"})
		if err != nil {
			t.Fatal(err)
		}
		code, body := h.ServeUplink(context.Background(), &uplink.Request{Peer: "operator", Method: "POST", Path: wire.PathTrigger, Payload: b})
		return code, string(body)
	}
	for i, action := range []string{"mdt_consent", "report", "reboot"} {
		code, body := post(uint64(i+1), action)
		if code != uplink.BadRequest || !strings.Contains(body, "unknown trigger action") || !strings.Contains(body, action) {
			t.Errorf("trigger %q: %v %q, want 4.00 naming the unknown action", action, code, body)
		}
	}
	for _, r := range a.Recent() {
		if r.Type == "trigger_accepted" {
			t.Fatalf("an unknown action was queued as accepted: %+v", r)
		}
	}
	if code, body := post(10, TriggerPing); code != uplink.Changed {
		t.Fatalf("ping: %v %q, want 2.04", code, body)
	}
	var accepted []EventRecord
	for _, r := range a.Recent() {
		if r.Type == "trigger_accepted" {
			accepted = append(accepted, r)
		}
	}
	if len(accepted) != 1 || accepted[0].Details["action"] != TriggerPing {
		t.Fatalf("accepted events = %+v, want one for ping", accepted)
	}
}
