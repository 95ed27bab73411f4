//go:build !mtc_omit_coap

package agent

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/mtcagent/mtcagent/agent/uplink"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/wire"
)

// TestTokenFormatFromCollector (issue 16): the agent signs format 1 until
// the collector's attestation request says it reads format 2, then the
// compact format, kept across a restart; a collector that says nothing
// (one from before) gets format 1 again. Details read back the same from
// both.
func TestTokenFormatFromCollector(t *testing.T) {
	a, ob, _, dir := newStorageAgent(t)
	key, _, err := attest.LoadOrCreateDeviceKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	v := &attest.Verifier{Key: key.Public().(ed25519.PublicKey), SkipFreshness: true}
	details := map[string]any{"domain": "cs", "domains": []string{"cs", "ps", "eps"}, "plmn_changed": false, "area_changed": true}
	last := func() (*attest.Token, map[string]any, int) {
		t.Helper()
		msgs := ob.Messages()
		m := msgs[len(msgs)-1]
		res, err := v.Verify(m[1:])
		if err != nil {
			t.Fatal(err)
		}
		d, err := DecodeDetails(res.Token.Extra[LabelDetails])
		if err != nil {
			t.Fatal(err)
		}
		return res.Token, d, len(m) - 1
	}
	same := func(d map[string]any) bool {
		return d["domain"] == "cs" && slices.Equal(d["domains"].([]string), []string{"cs", "ps", "eps"}) &&
			d["plmn_changed"] == false && d["area_changed"] == true && len(d) == 4
	}
	attestReq := func(formats []byte) {
		t.Helper()
		m := map[int][]byte{wire.AttestNonce: make([]byte, 16)}
		if formats != nil {
			m[wire.AttestFormats] = formats
		}
		body, _ := cbor.Marshal(m)
		(&LinkHandler{A: a}).ServeUplink(context.Background(), &uplink.Request{Peer: "collector", Method: "POST", Path: wire.PathAttest, Payload: body})
	}

	a.emit("cell_changed", details)
	tok, d, n1 := last()
	if tok.Format != attest.FormatLabels || !same(d) {
		t.Fatalf("before the collector said: format %v, details %v", tok.Format, d)
	}
	attestReq([]byte{wire.FormatLabels, wire.FormatCompact})
	if a.TokenFormat() != attest.FormatCompact {
		t.Fatalf("format %v after the collector said it reads 2", a.TokenFormat())
	}
	a.emit("cell_changed", details)
	tok, d, n2 := last()
	if tok.Format != attest.FormatCompact || tok.Event != "cell_changed" || !same(d) {
		t.Fatalf("compact: format %v, event %q, details %v", tok.Format, tok.Event, d)
	}
	t.Logf("cell_changed token: %d bytes in format 1, %d in format 2", n1, n2)
	if n2 > n1-60 {
		t.Fatalf("compact token %d bytes, format 1 %d: want at least 60 fewer", n2, n1)
	}
	// Nested details (storage_gap's lost map, cause list) and names not
	// in the table come back too.
	a.emit("storage_gap", map[string]any{"lost": map[string]int{"cell_changed": 3}, "cause": []string{"evicted"}, "lost_total": 3, "new_key": "x"})
	if _, d, _ := last(); d["lost_total"] != uint64(3) || d["new_key"] != "x" || d["lost"].(map[any]any)["cell_changed"] != uint64(3) {
		t.Fatalf("storage_gap details %v", d)
	}
	// Kept across a restart.
	b, _ := os.ReadFile(filepath.Join(dir, "agent.json"))
	if !strings.Contains(string(b), `"token_format":2`) {
		t.Fatalf("agent.json %s", b)
	}
	a2, err := New(a.cfg, a.deps)
	if err != nil {
		t.Fatal(err)
	}
	if a2.TokenFormat() != attest.FormatCompact {
		t.Fatalf("after a restart: format %v", a2.TokenFormat())
	}
	// A collector from before issue 16 says nothing: format 1 again.
	attestReq(nil)
	a.emit("cell_changed", details)
	if tok, d, _ := last(); tok.Format != attest.FormatLabels || !same(d) {
		t.Fatalf("back to format 1: %v %v", tok.Format, d)
	}
}

// TestConfirmLaterFromCollector (issue 16): the attestation request's key
// 3 tells the link whether the collector confirms later; a collector
// from before sends no key 3. DeliverySeq reads a queued message's seq
// and says a cell event is of low priority, a SIM event not.
func TestConfirmLaterFromCollector(t *testing.T) {
	a, ob, _, _ := newStorageAgent(t)
	var said []bool
	h := &LinkHandler{A: a, Later: func(ok bool) { said = append(said, ok) }}
	for _, later := range [][]byte{{1}, nil} {
		m := map[int][]byte{wire.AttestNonce: make([]byte, 16)}
		if later != nil {
			m[wire.AttestLater] = later
		}
		body, _ := cbor.Marshal(m)
		h.ServeUplink(context.Background(), &uplink.Request{Peer: "collector", Method: "POST", Path: wire.PathAttest, Payload: body})
	}
	if !slices.Equal(said, []bool{true, false}) {
		t.Fatalf("learned %v, want [true false]", said)
	}
	a.emit("cell_changed", map[string]any{"domain": "cs"})
	a.emit("sim_removed", nil)
	msgs := ob.Messages()
	s1, low1, ok1 := a.DeliverySeq(msgs[len(msgs)-2])
	s2, low2, ok2 := a.DeliverySeq(msgs[len(msgs)-1])
	if !ok1 || !ok2 || !low1 || low2 || s2 != s1+1 {
		t.Fatalf("cell_changed seq %d low %v ok %v; sim_removed seq %d low %v ok %v", s1, low1, ok1, s2, low2, ok2)
	}
	if _, _, ok := a.DeliverySeq([]byte{KindEventMsg, 1, 2}); ok {
		t.Fatal("a damaged message read")
	}
}
