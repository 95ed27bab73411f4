package attest

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// TestFormatsBothVerify (issue 16): a verifier reads tokens of both claims
// formats, with the same claims; the compact one is smaller, and says it
// is compact.
func TestFormatsBothVerify(t *testing.T) {
	d := testDeriver(t, 1)
	details := map[any]any{1: []any{3}}
	type signed struct{ hb, ev, bind, named []byte }
	var out [3]signed
	for _, f := range []Format{FormatLabels, FormatCompact} {
		is, pub := testIssuer(t, true)
		is.SetFormat(f)
		if is.Format() != f {
			t.Fatalf("format %v, want %v", is.Format(), f)
		}
		var s signed
		var err error
		if s.hb, err = is.SignHeartbeat(); err != nil {
			t.Fatal(err)
		}
		if s.ev, err = is.Sign(KindEvent, EventClaim("cell_changed"), Claim{-65560, details}); err != nil {
			t.Fatal(err)
		}
		if s.bind, err = is.SignBinding(d, testBinding(t)); err != nil {
			t.Fatal(err)
		}
		if s.named, err = is.Sign(KindEvent, EventClaim("not_in_the_table")); err != nil {
			t.Fatal(err)
		}
		out[f] = s
		v := &Verifier{Key: pub, SkipFreshness: true, Now: func() time.Time { return testNow }}
		for i, tok := range [][]byte{s.hb, s.ev, s.bind, s.named} {
			res, err := v.Verify(tok)
			if err != nil {
				t.Fatalf("format %v token %d: %v", f, i, err)
			}
			if res.Token.Format != f || res.Token.Seq != uint64(i+1) || !res.Token.ClockSynced || res.Token.BootCount != 3 {
				t.Fatalf("format %v token %d: %+v", f, i, res.Token)
			}
		}
		ev, _ := v.Verify(s.ev)
		if ev.Token.Event != "cell_changed" || len(ev.Token.Unknown) != 1 || ev.Token.Unknown[0] != -65560 {
			t.Fatalf("format %v event: %+v", f, ev.Token)
		}
		var got map[int]any
		if err := cbor.Unmarshal(ev.Token.Extra[-65560], &got); err != nil || len(got) != 1 {
			t.Fatalf("format %v: details %v %v", f, got, err)
		}
		named, _ := v.Verify(s.named)
		if named.Token.Event != "not_in_the_table" {
			t.Fatalf("format %v: event %q", f, named.Token.Event)
		}
		b, _ := v.Verify(s.bind)
		if len(b.Token.Pseudonyms.IMSI) != PseudonymSize || !bytes.Equal(b.Token.Nonce, testNonce) {
			t.Fatalf("format %v binding: %+v", f, b.Token)
		}
	}
	l, c := out[FormatLabels], out[FormatCompact]
	t.Logf("bytes, labels -> compact: heartbeat %d -> %d, cell event %d -> %d, binding %d -> %d",
		len(l.hb), len(c.hb), len(l.ev), len(c.ev), len(l.bind), len(c.bind))
	if len(c.hb) >= len(l.hb) || len(c.ev) >= len(l.ev)-20 || len(c.bind) >= len(l.bind) {
		t.Fatal("the compact format is not smaller")
	}
	if len(c.ev) > 110 {
		t.Fatalf("compact cell event token %d bytes, want <= 110", len(c.ev))
	}
}

// TestCompactMalformed: what a compact token may not hold is refused,
// fail closed.
func TestCompactMalformed(t *testing.T) {
	k := testKey(t)
	pub := k.Public().(ed25519.PublicKey)
	priv := func(kv ...any) map[uint64]any {
		m := map[uint64]any{1: 3, 2: 9, 3: false}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, uint64(kv[i].(int)))
			} else {
				m[uint64(kv[i].(int))] = kv[i+1]
			}
		}
		return m
	}
	for _, c := range []struct {
		name   string
		claims map[int64]any
	}{
		{"private label beside the map", map[int64]any{LabelPrivate: priv(), LabelSeq: 10}},
		{"private claims not a map", map[int64]any{LabelPrivate: []any{3, 9, false}}},
		{"key 0", map[int64]any{LabelPrivate: priv(0, 1)}},
		{"the map's own key", map[int64]any{LabelPrivate: priv(10, map[uint64]any{})}},
		{"no seq", map[int64]any{LabelPrivate: priv(2, nil)}},
		{"unknown event code", map[int64]any{LabelPrivate: priv(1, 2, 7, 99)}},
		{"event bytes", map[int64]any{LabelPrivate: priv(1, 2, 7, []byte("x"))}},
		{"seq text", map[int64]any{LabelPrivate: priv(2, "9")}},
		{"nested too deep", map[int64]any{LabelPrivate: priv(24, []any{[]any{[]any{[]any{[]any{[]any{1}}}}}})}},
	} {
		claimsCBOR, err := claimEnc.Marshal(c.claims)
		if err != nil {
			t.Fatal(err)
		}
		tbs, _ := cbor.Marshal([]any{"Signature1", protectedEdDSA, []byte{}, claimsCBOR})
		tok, _ := cbor.Marshal(cbor.Tag{Number: 18, Content: []any{protectedEdDSA, map[any]any{}, claimsCBOR, ed25519.Sign(k, tbs)}})
		if _, err := (&Verifier{Key: pub, SkipFreshness: true}).Verify(tok); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", c.name, err)
		}
	}
	// And the same layout, well formed, is accepted.
	claimsCBOR, _ := claimEnc.Marshal(map[int64]any{LabelPrivate: priv(7, 6)})
	tbs, _ := cbor.Marshal([]any{"Signature1", protectedEdDSA, []byte{}, claimsCBOR})
	tok, _ := cbor.Marshal(cbor.Tag{Number: 18, Content: []any{protectedEdDSA, map[any]any{}, claimsCBOR, ed25519.Sign(k, tbs)}})
	res, err := (&Verifier{Key: pub, SkipFreshness: true}).Verify(tok)
	if err != nil || res.Token.Event != "cell_changed" || res.Token.Kind != KindHeartbeat {
		t.Fatalf("well-formed compact token: %v %+v", err, res)
	}
}
