package attest

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/mtcagent/mtcagent/privacy/ident"
)

var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func fixedClock(t time.Time, synced bool) Clock {
	return ClockFunc(func() (time.Time, bool) { return t, synced })
}

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, 32))
}

func testIssuer(t testing.TB, synced bool) (*Issuer, ed25519.PublicKey) {
	t.Helper()
	k := testKey(t)
	is, err := NewIssuer(k, &MemSequence{}, fixedClock(testNow, synced), 3)
	if err != nil {
		t.Fatal(err)
	}
	return is, k.Public().(ed25519.PublicKey)
}

var testNonce = bytes.Repeat([]byte{0xA5}, 32)

// testBinding is a realistic binding: 32-byte nonce, typical model and
// revision strings, fictional SIM identifiers.
func testBinding(t testing.TB) Binding {
	imsi, iccid := testSIM(t, "001010123456789", "8900100000000000001")
	imei, err := ident.ParseIMEI("490154203237518")
	if err != nil {
		t.Fatal(err)
	}
	return Binding{
		Recipient: "operator", Nonce: testNonce, IMEI: imei, IMSI: imsi, ICCID: iccid,
		Model: "EG25-G", Revision: "EG25GGBR07A08M2G",
	}
}

func TestBindingRoundTrip(t *testing.T) {
	is, pub := testIssuer(t, true)
	d := testDeriver(t, 1)
	b := testBinding(t)
	tok, err := is.SignBinding(d, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) > 300 {
		t.Errorf("binding token is %d bytes, goal <= 300", len(tok))
	}
	v := &Verifier{Key: pub, Nonce: testNonce, Now: func() time.Time { return testNow.Add(10 * time.Second) }}
	res, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	got := res.Token
	want := d.Pseudonyms("operator", b.IMSI, b.ICCID)
	switch {
	case got.Kind != KindBinding:
		t.Errorf("kind %v", got.Kind)
	case got.Seq != 1:
		t.Errorf("seq %d", got.Seq)
	case !got.ClockSynced || !got.IssuedAt.Equal(testNow):
		t.Errorf("iat %v synced %v", got.IssuedAt, got.ClockSynced)
	case got.BootCount != 3:
		t.Errorf("bootcount %d", got.BootCount)
	case !bytes.Equal(got.Nonce, testNonce):
		t.Error("nonce")
	case !bytes.Equal(got.UEID, d.UEID("operator")):
		t.Error("ueid")
	case got.HWModel != "EG25-G" || got.SWVersion != "EG25GGBR07A08M2G":
		t.Errorf("hwmodel %q swversion %q", got.HWModel, got.SWVersion)
	case !got.Pseudonyms.Equal(want):
		t.Error("pseudonyms")
	case len(got.Unknown) != 0 || got.SUCI != "" || got.Event != "":
		t.Errorf("extra claims %v", got.Unknown)
	}
	// The IMSI, ICCID and IMEI digits never appear in the token.
	for _, secret := range []string{"001010123456789", "8900100000000000001", "490154203237518"} {
		if bytes.Contains(tok, []byte(secret)) {
			t.Error("identifier in clear in the token")
		}
	}
	// IMEI-type UEID where policy allows.
	b.AllowIMEI = true
	tok2, err := is.SignBinding(d, b)
	if err != nil {
		t.Fatal(err)
	}
	v.LastSeq = 1
	res, err = v.Verify(tok2)
	if err != nil {
		t.Fatal(err)
	}
	if res.Token.UEID[0] != UEIDTypeIMEI || res.Token.Seq != 2 {
		t.Errorf("imei ueid type %#x seq %d", res.Token.UEID[0], res.Token.Seq)
	}
}

func TestHeartbeatSizeAndEvent(t *testing.T) {
	is, pub := testIssuer(t, false)
	hb, err := is.SignHeartbeat()
	if err != nil {
		t.Fatal(err)
	}
	if len(hb) > 120 {
		t.Errorf("heartbeat is %d bytes, goal <= 120", len(hb))
	}
	d := testDeriver(t, 1)
	imsi, iccid := testSIM(t, "001010123456789", "8900100000000000001")
	old := d.Pseudonyms("operator", imsi, iccid)
	claims := append([]Claim{EventClaim("sim_removed")}, OldPseudonymClaims(old)...)
	ev, err := is.Sign(KindEvent, claims...)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Key: pub, LastSeq: 1}
	res, err := v.Verify(ev)
	if err != nil {
		t.Fatal(err)
	}
	if res.Token.Kind != KindEvent || res.Token.Event != "sim_removed" || !res.Token.Old.Equal(old) || len(res.Token.Pseudonyms.IMSI) != 0 {
		t.Errorf("event token %+v", res.Token.Kind)
	}
	if !bytes.Contains([]byte(res.Freshness), []byte("not synchronised")) {
		t.Errorf("freshness %q does not mention the unsynchronised clock", res.Freshness)
	}
	// The issuer's labels cannot be overridden, nor labels repeated.
	for _, bad := range [][]Claim{
		{{LabelSeq, uint64(99)}},
		{{LabelIAT, uint64(1)}},
		{EventClaim("a"), EventClaim("b")},
		{NonceClaim([]byte("short"))},
		{{LabelIMSIPseudonym, []byte{1, 2}}},
	} {
		if _, err := is.Sign(KindEvent, bad...); !errors.Is(err, ErrClaim) {
			t.Errorf("bad claims accepted: %v", err)
		}
	}
	if _, err := is.Sign(Kind(9)); !errors.Is(err, ErrClaim) {
		t.Error("unknown kind accepted")
	}
}

func TestVerifyRefusals(t *testing.T) {
	synced, pub := testIssuer(t, true)
	unsynced, _ := testIssuer(t, false)
	d := testDeriver(t, 1)
	b := testBinding(t)
	tokSynced, _ := synced.SignBinding(d, b) // seq 1
	tokUnsynced, _ := unsynced.SignBinding(d, b)
	b.Nonce = nil
	tokNoNonce, _ := unsynced.SignBinding(d, b)
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return testNow.Add(d) } }

	for _, c := range []struct {
		name string
		v    Verifier
		tok  []byte
		want error // nil: accepted
	}{
		{"ok synced", Verifier{Key: pub, Nonce: testNonce, Now: at(0)}, tokSynced, nil},
		{"stale nonce", Verifier{Key: pub, Nonce: bytes.Repeat([]byte{1}, 32), Now: at(0)}, tokSynced, ErrNonce},
		{"nonce expected, none in token", Verifier{Key: pub, Nonce: testNonce}, tokNoNonce, ErrNonce},
		{"old sequence", Verifier{Key: pub, Nonce: testNonce, LastSeq: 1, Now: at(0)}, tokSynced, ErrReplay},
		{"much older sequence", Verifier{Key: pub, Nonce: testNonce, LastSeq: 500, Now: at(0)}, tokSynced, ErrReplay},
		{"too old", Verifier{Key: pub, Nonce: testNonce, Now: at(6 * time.Minute)}, tokSynced, ErrStale},
		{"wide window", Verifier{Key: pub, Nonce: testNonce, MaxAge: time.Hour, Now: at(6 * time.Minute)}, tokSynced, nil},
		{"from the future", Verifier{Key: pub, Nonce: testNonce, Now: at(-2 * time.Minute)}, tokSynced, ErrStale},
		{"wrong key", Verifier{Key: other, Nonce: testNonce, Now: at(0)}, tokSynced, ErrSignature},
		{"no key", Verifier{}, tokSynced, ErrSignature},
		{"wrong kind", Verifier{Key: pub, Nonce: testNonce, Kind: KindHeartbeat, Now: at(0)}, tokSynced, ErrKind},
		// An unsynchronised clock: iat is ignored, the nonce decides ...
		{"unsynced by nonce, clock far off", Verifier{Key: pub, Nonce: testNonce, Now: at(1000 * time.Hour)}, tokUnsynced, nil},
		// ... or the sequence number ...
		{"unsynced by sequence", Verifier{Key: pub, LastSeq: 1}, tokNoNonce, nil},
		// ... and without either it cannot be judged.
		{"unsynced, nothing to judge by", Verifier{Key: pub}, tokNoNonce, ErrStale},
		{"unsynced, freshness skipped", Verifier{Key: pub, SkipFreshness: true}, tokNoNonce, nil},
		{"empty", Verifier{Key: pub}, nil, ErrMalformed},
		{"trailing byte", Verifier{Key: pub, Nonce: testNonce, Now: at(0)}, append(bytes.Clone(tokSynced), 0), ErrMalformed},
		{"too big", Verifier{Key: pub}, make([]byte, MaxTokenSize+1), ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.v.Verify(c.tok)
			if c.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ve *VerifyError
			if !errors.Is(err, c.want) || !errors.As(err, &ve) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// TestVerifyEveryByteFlip: changing any single byte of a token, in any of
// several ways, makes verification fail.
func TestVerifyEveryByteFlip(t *testing.T) {
	is, pub := testIssuer(t, true)
	tok, err := is.SignBinding(testDeriver(t, 1), testBinding(t))
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Key: pub, Nonce: testNonce, Now: func() time.Time { return testNow }}
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	for i := range tok {
		for _, mask := range []byte{0x01, 0x80, 0xff, 0x20} {
			bad := bytes.Clone(tok)
			bad[i] ^= mask
			if _, err := v.Verify(bad); err == nil {
				t.Fatalf("byte %d ^ %#x accepted", i, mask)
			}
		}
	}
	// Truncations too.
	for n := 0; n < len(tok); n++ {
		if _, err := v.Verify(tok[:n]); err == nil {
			t.Fatalf("truncation to %d bytes accepted", n)
		}
	}
}

// TestInteropSigStructure checks a token with an implementation that shares
// nothing with the signer's: the COSE_Sign1 is taken apart with plain CBOR,
// the Sig_structure is built by hand and checked with crypto/ed25519.
func TestInteropSigStructure(t *testing.T) {
	is, pub := testIssuer(t, true)
	tok, err := is.SignBinding(testDeriver(t, 1), testBinding(t))
	if err != nil {
		t.Fatal(err)
	}
	var tag cbor.RawTag
	if err := cbor.Unmarshal(tok, &tag); err != nil {
		t.Fatal(err)
	}
	if tag.Number != 18 {
		t.Fatalf("tag %d, want 18 (COSE_Sign1)", tag.Number)
	}
	var parts []cbor.RawMessage
	if err := cbor.Unmarshal(tag.Content, &parts); err != nil || len(parts) != 4 {
		t.Fatalf("COSE_Sign1 array: %v, %d parts", err, len(parts))
	}
	var protected, payload, sig []byte
	var unprotected map[any]any
	for i, dst := range []any{&protected, &unprotected, &payload, &sig} {
		if err := cbor.Unmarshal(parts[i], dst); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
	}
	var hdr map[int]int
	if err := cbor.Unmarshal(protected, &hdr); err != nil || len(hdr) != 1 || hdr[1] != -8 {
		t.Fatalf("protected header %v: want {1: -8}", hdr)
	}
	if len(unprotected) != 0 {
		t.Fatal("unprotected header not empty")
	}
	// Sig_structure = ["Signature1", protected, external_aad = h'', payload]
	tbs, err := cbor.Marshal([]any{"Signature1", protected, []byte{}, payload})
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(pub, tbs, sig) {
		t.Fatal("crypto/ed25519 rejects the Sig_structure")
	}
	var claims map[int64]any
	if err := cbor.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims[LabelNonce] == nil || claims[LabelUEID] == nil || claims[LabelSeq] == nil {
		t.Fatal("claims missing in the payload")
	}
	// And the other way round: a token assembled by hand verifies with ours.
	claimsCBOR, _ := cbor.Marshal(map[int64]any{LabelKind: 3, LabelSeq: 9, LabelClockSynced: false})
	tbs2, _ := cbor.Marshal([]any{"Signature1", []byte{0xa1, 0x01, 0x27}, []byte{}, claimsCBOR})
	sig2 := ed25519.Sign(testKey(t), tbs2)
	hand, err := cbor.Marshal(cbor.Tag{Number: 18, Content: []any{[]byte{0xa1, 0x01, 0x27}, map[any]any{}, claimsCBOR, sig2}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&Verifier{Key: pub, LastSeq: 8}).Verify(hand)
	if err != nil {
		t.Fatalf("hand-made token refused: %v", err)
	}
	if res.Token.Kind != KindHeartbeat || res.Token.Seq != 9 {
		t.Fatal("hand-made token misread")
	}
}

func TestVerifyRefusesOtherAlgorithms(t *testing.T) {
	k := testKey(t)
	pub := k.Public().(ed25519.PublicKey)
	claimsCBOR, _ := cbor.Marshal(map[int64]any{LabelKind: 3, LabelSeq: 9, LabelClockSynced: false})
	for _, c := range []struct {
		name      string
		protected []byte
		want      error
	}{
		{"ES256", []byte{0xa1, 0x01, 0x26}, ErrAlgorithm},
		{"no alg", []byte{0xa0}, ErrAlgorithm},
		{"extra header", []byte{0xa2, 0x01, 0x27, 0x03, 0x00}, ErrMalformed},
	} {
		tbs, _ := cbor.Marshal([]any{"Signature1", c.protected, []byte{}, claimsCBOR})
		tok, _ := cbor.Marshal(cbor.Tag{Number: 18, Content: []any{c.protected, map[any]any{}, claimsCBOR, ed25519.Sign(k, tbs)}})
		if _, err := (&Verifier{Key: pub, SkipFreshness: true}).Verify(tok); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestVerifyMalformedClaims(t *testing.T) {
	k := testKey(t)
	pub := k.Public().(ed25519.PublicKey)
	base := map[int64]any{LabelKind: 3, LabelSeq: 9, LabelClockSynced: false}
	for _, c := range []struct {
		name  string
		label int64
		value any // nil: delete the label
	}{
		{"no kind", LabelKind, nil},
		{"no seq", LabelSeq, nil},
		{"no clock flag", LabelClockSynced, nil},
		{"kind 0", LabelKind, 0},
		{"kind 7", LabelKind, 7},
		{"seq 0", LabelSeq, 0},
		{"seq negative", LabelSeq, -1},
		{"seq text", LabelSeq, "9"},
		{"clock flag int", LabelClockSynced, 1},
		{"nonce text", LabelNonce, "0123456789"},
		{"nonce short", LabelNonce, []byte{1, 2}},
		{"ueid long", LabelUEID, make([]byte, 40)},
		{"pseudonym short", LabelIMSIPseudonym, []byte{1}},
		{"swversion not array", LabelSWVersion, "1.0"},
		{"swversion empty", LabelSWVersion, []string{}},
		{"iat negative", LabelIAT, -5},
		{"suci bytes", LabelSUCI, []byte("suci")},
		{"nested deep", LabelEvent, []any{[]any{[]any{[]any{[]any{1}}}}}},
		{"event with NUL", LabelEvent, "cell\x00changed"},
		{"event with a line break", LabelEvent, "cell_changed\n12:00 device dev2: sim swapped"},
		{"event with a C1 control", LabelEvent, "cell\u0085changed"},
		{"suci with ESC", LabelSUCI, "suci-0-001-01-0000-0-0-\x1b[2J"},
	} {
		m := map[int64]any{}
		for k, v := range base {
			m[k] = v
		}
		if c.value == nil {
			delete(m, c.label)
		} else {
			m[c.label] = c.value
		}
		claimsCBOR, _ := claimEnc.Marshal(m)
		tbs, _ := cbor.Marshal([]any{"Signature1", protectedEdDSA, []byte{}, claimsCBOR})
		tok, _ := cbor.Marshal(cbor.Tag{Number: 18, Content: []any{protectedEdDSA, map[any]any{}, claimsCBOR, ed25519.Sign(k, tbs)}})
		if _, err := (&Verifier{Key: pub, SkipFreshness: true}).Verify(tok); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", c.name, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	is, pub := testIssuer(f, true)
	d := testDeriver(f, 1)
	tok, _ := is.SignBinding(d, testBinding(f))
	hb, _ := is.SignHeartbeat()
	f.Add(tok)
	f.Add(hb)
	is.SetFormat(FormatCompact) // format 2 seeds too (issue 16)
	ctok, _ := is.SignBinding(d, testBinding(f))
	cev, _ := is.Sign(KindEvent, EventClaim("cell_changed"), Claim{-65560, map[any]any{1: []any{1, 2, 3}}})
	f.Add(ctok)
	f.Add(cev)
	f.Add([]byte{0xd2, 0x84, 0x43, 0xa1, 0x01, 0x27, 0xa0, 0x40, 0x40})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		v := &Verifier{Key: pub, Nonce: testNonce, Now: func() time.Time { return testNow }}
		res, err := v.Verify(data)
		if err == nil && (res == nil || res.Token == nil) {
			t.Fatal("accepted without a token")
		}
		if err != nil {
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a *VerifyError", err)
			}
		}
		// Parsing claims alone never panics either.
		_, _ = parseClaims(data)
	})
}

func BenchmarkSignBinding(b *testing.B) {
	is, _ := testIssuer(b, true)
	d := testDeriver(b, 1)
	bind := testBinding(b)
	var n int
	b.ReportAllocs()
	for b.Loop() {
		tok, err := is.SignBinding(d, bind)
		if err != nil {
			b.Fatal(err)
		}
		n = len(tok)
	}
	b.ReportMetric(float64(n), "B/token")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/sign")
}

func BenchmarkSignHeartbeat(b *testing.B) {
	is, _ := testIssuer(b, true)
	var n int
	b.ReportAllocs()
	for b.Loop() {
		tok, err := is.SignHeartbeat()
		if err != nil {
			b.Fatal(err)
		}
		n = len(tok)
	}
	b.ReportMetric(float64(n), "B/token")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/sign")
}

func BenchmarkVerifyBinding(b *testing.B) {
	is, pub := testIssuer(b, true)
	tok, err := is.SignBinding(testDeriver(b, 1), testBinding(b))
	if err != nil {
		b.Fatal(err)
	}
	v := &Verifier{Key: pub, Nonce: testNonce, Now: func() time.Time { return testNow }}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/verify")
}

func TestParseNonce(t *testing.T) {
	if n, err := ParseNonce(""); n != nil || err != nil {
		t.Fatalf("empty: %x %v", n, err)
	}
	if n, err := ParseNonce("0011223344556677"); err != nil || len(n) != MinNonce {
		t.Fatalf("8 bytes: %x %v", n, err)
	}
	for _, bad := range []string{"00112233445566", "zz11223344556677", "001122334455667", string(bytes.Repeat([]byte("00"), MaxNonce+1))} {
		if _, err := ParseNonce(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestReadOwnToken: a device reads back the tokens it queued without
// verifying them again: the same claims as Verify gives, a token whose
// signature no longer holds still read (the collector refuses it), and
// anything not in our one encoding refused as Verify refuses it.
func TestReadOwnToken(t *testing.T) {
	is, pub := testIssuer(t, true)
	tok, err := is.SignBinding(testDeriver(t, 1), testBinding(t))
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&Verifier{Key: pub, Nonce: testNonce, Now: func() time.Time { return testNow }}).Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadOwnToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, res.Token) {
		t.Fatalf("ReadOwnToken %+v, Verify %+v", got, res.Token)
	}
	forged := bytes.Clone(tok)
	forged[len(forged)-1] ^= 1 // the signature's last byte
	if _, err := (&Verifier{Key: pub, Nonce: testNonce, Now: func() time.Time { return testNow }}).Verify(forged); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged: Verify says %v", err)
	}
	if got, err := ReadOwnToken(forged); err != nil || got.Seq != res.Token.Seq {
		t.Fatalf("forged: ReadOwnToken %v, %v", got, err)
	}
	for n := 0; n < len(tok); n++ {
		if _, err := ReadOwnToken(tok[:n]); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrAlgorithm) {
			t.Fatalf("truncated to %d bytes: %v, want a malformed token", n, err)
		}
	}
	if _, err := ReadOwnToken(append(bytes.Clone(tok), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a trailing byte: %v", err)
	}
}
