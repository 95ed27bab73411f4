package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// Reasons a token is refused. Every verification error wraps exactly one of
// these in a *VerifyError.
var (
	ErrMalformed = errors.New("malformed token")         // not a well-formed token of ours
	ErrAlgorithm = errors.New("algorithm not allowed")   // anything but EdDSA
	ErrSignature = errors.New("signature invalid")       // wrong key or altered bytes
	ErrNonce     = errors.New("nonce mismatch")          // not an answer to our challenge
	ErrReplay    = errors.New("sequence number not new") // seq <= last seen
	ErrStale     = errors.New("token not fresh")         // iat outside the window, or no way to judge
	ErrKind      = errors.New("unexpected token kind")
)

// VerifyError is why a token was refused.
type VerifyError struct {
	Reason error  // one of the Err* sentinels above
	Detail string // what exactly; never contains claim values that identify anyone
}

func (e *VerifyError) Error() string {
	if e.Detail == "" {
		return "verify: " + e.Reason.Error()
	}
	return "verify: " + e.Reason.Error() + ": " + e.Detail
}

func (e *VerifyError) Unwrap() error { return e.Reason }

func verr(reason error, format string, a ...any) error {
	return &VerifyError{Reason: reason, Detail: fmt.Sprintf(format, a...)}
}

// MaxTokenSize bounds what the verifier will parse.
const MaxTokenSize = 4096

// Token is a verified token's claims.
type Token struct {
	Kind        Kind
	Seq         uint64
	ClockSynced bool
	IssuedAt    time.Time // zero when absent
	BootCount   uint64    // 0 when absent
	Nonce       []byte
	UEID        []byte
	HWModel     string
	SWVersion   string
	SUCI        string
	Event       string
	Pseudonyms  Pseudonyms // current SIM; empty when none
	Old         Pseudonyms // events: the SIM before the change
	Unknown     []int64    // labels present but not understood
	// Extra holds the CBOR of each claim in Unknown, by label (private
	// ones under their label in either format), for a reader that knows
	// them (the agent's event details).
	Extra  map[int64][]byte
	Format Format // how the claims were laid out
}

// Verifier checks tokens from one device. The zero value is not usable: set
// Key. Nonce and LastSeq are per check.
type Verifier struct {
	Key     ed25519.PublicKey
	Nonce   []byte        // when set, the token must carry exactly this nonce
	LastSeq uint64        // the token's sequence number must be greater
	Kind    Kind          // when set, the token must be of this kind
	MaxAge  time.Duration // freshness window for synchronised clocks (default 5 min)
	MaxSkew time.Duration // tolerated future iat (default 1 min)
	Now     func() time.Time
	// SkipFreshness accepts a token whose freshness cannot be judged (no
	// nonce, no last sequence number, unsynchronised clock). Result.Freshness
	// says so.
	SkipFreshness bool
}

// Result is an accepted token and how its freshness was established.
type Result struct {
	Token     *Token
	Freshness string // human-readable: by iat, by nonce, by sequence, or not checked
}

// Verify parses and checks one token. It fails closed: anything it does not
// fully understand in the envelope is refused.
func (v *Verifier) Verify(token []byte) (*Result, error) {
	tok, err := v.VerifySignature(token)
	if err != nil {
		return nil, err
	}
	return v.Judge(tok)
}

// VerifySignature is Verify's first half: the envelope, the signature
// under Key and the claims, none of which depend on the other fields.
// Judge is the second. A collector verifies the signature before it
// locks the device's state, and judges the token under the lock.
func (v *Verifier) VerifySignature(token []byte) (*Token, error) {
	if len(v.Key) != ed25519.PublicKeySize {
		return nil, verr(ErrSignature, "no Ed25519 verification key")
	}
	return v.check(token)
}

// Judge is Verify's second half, for a token VerifySignature returned:
// kind, nonce, sequence number and freshness.
func (v *Verifier) Judge(tok *Token) (*Result, error) {
	res := &Result{Token: tok}
	if v.Kind != 0 && tok.Kind != v.Kind {
		return nil, verr(ErrKind, "got %s, want %s", tok.Kind, v.Kind)
	}
	nonceOK := false
	if v.Nonce != nil {
		if tok.Nonce == nil {
			return nil, verr(ErrNonce, "token carries no nonce")
		}
		if subtle.ConstantTimeCompare(tok.Nonce, v.Nonce) != 1 {
			return nil, verr(ErrNonce, "token answers a different challenge")
		}
		nonceOK = true
	}
	if tok.Seq <= v.LastSeq {
		return nil, verr(ErrReplay, "sequence %d, last seen %d", tok.Seq, v.LastSeq)
	}
	seqOK := v.LastSeq > 0
	switch {
	case tok.ClockSynced:
		if tok.IssuedAt.IsZero() {
			return nil, verr(ErrMalformed, "clock-synchronised token without iat")
		}
		now := time.Now()
		if v.Now != nil {
			now = v.Now()
		}
		maxAge, skew := v.MaxAge, v.MaxSkew
		if maxAge == 0 {
			maxAge = 5 * time.Minute
		}
		if skew == 0 {
			skew = time.Minute
		}
		age := now.Sub(tok.IssuedAt)
		if age > maxAge {
			return nil, verr(ErrStale, "issued %s ago, window %s", age.Round(time.Second), maxAge)
		}
		if -age > skew {
			return nil, verr(ErrStale, "issued %s in the future", (-age).Round(time.Second))
		}
		res.Freshness = fmt.Sprintf("iat within %s (device clock synchronised)", maxAge)
		if nonceOK {
			res.Freshness += "; nonce matches"
		}
	case nonceOK:
		res.Freshness = "device clock not synchronised: iat ignored; fresh by nonce"
	case seqOK:
		res.Freshness = "device clock not synchronised: iat ignored; judged by sequence number only (newer than last seen)"
	case v.SkipFreshness:
		res.Freshness = "device clock not synchronised and no nonce or last sequence given: freshness NOT checked"
	default:
		return nil, verr(ErrStale, "device clock not synchronised, so freshness needs a nonce or the last sequence number seen")
	}
	return res, nil
}

var (
	claimDec = func() cbor.DecMode {
		m, err := cbor.DecOptions{
			DupMapKey:        cbor.DupMapKeyEnforcedAPF,
			IndefLength:      cbor.IndefLengthForbidden,
			TagsMd:           cbor.TagsForbidden,
			MaxNestedLevels:  6,
			MaxArrayElements: 16,
			MaxMapPairs:      64,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
	unprotectedEmpty = []byte{0xa0}
)

// check does everything that does not depend on the verifier's state.
func (v *Verifier) check(token []byte) (*Token, error) {
	msg, err := decodeSign1(token)
	if err != nil {
		return nil, err
	}
	ver, err := newEdDSAVerifier(v.Key)
	if err != nil {
		return nil, verr(ErrSignature, "bad verification key")
	}
	if err := msg.Verify(nil, ver); err != nil {
		return nil, verr(ErrSignature, "does not verify with this key")
	}
	return parseClaims(msg.Payload)
}

// ReadOwnToken decodes a token this device signed and kept (its outbox),
// as strictly as Verify does, but without checking its signature: for
// what the device needs to know of its own queued messages (sequence
// number, kind, event), where an Ed25519 verification per message would
// only repeat the signing. Never for a token that came from elsewhere:
// that is Verify's.
func ReadOwnToken(token []byte) (*Token, error) {
	msg, err := decodeSign1(token)
	if err != nil {
		return nil, err
	}
	return parseClaims(msg.Payload)
}

// decodeSign1 parses a COSE_Sign1 in the one form we sign: EdDSA alone in
// the protected header, nothing unprotected, canonical encoding.
func decodeSign1(token []byte) (*cose.Sign1Message, error) {
	if len(token) > MaxTokenSize {
		return nil, verr(ErrMalformed, "%d bytes, limit %d", len(token), MaxTokenSize)
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(token); err != nil {
		return nil, verr(ErrMalformed, "not a COSE_Sign1: %v", err)
	}
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil {
		return nil, verr(ErrAlgorithm, "no usable alg in the protected header")
	}
	if alg != cose.AlgorithmEdDSA {
		return nil, verr(ErrAlgorithm, "alg %d (%s), only EdDSA (-8) is accepted", int64(alg), alg)
	}
	if !bytes.Equal(msg.Headers.RawProtected, protectedEdDSABstr) {
		return nil, verr(ErrMalformed, "protected header has parameters besides alg")
	}
	if !bytes.Equal(msg.Headers.RawUnprotected, unprotectedEmpty) {
		return nil, verr(ErrMalformed, "unprotected header is not empty")
	}
	// One encoding only: what we parsed must re-encode to the same bytes.
	again, err := msg.MarshalCBOR()
	if err != nil || !bytes.Equal(again, token) {
		return nil, verr(ErrMalformed, "not in canonical encoding")
	}
	return &msg, nil
}

// parseClaims decodes a signed payload. It is strict about the types of the
// labels it knows and keeps a list of the ones it does not.
func parseClaims(payload []byte) (*Token, error) {
	var m map[int64]cbor.RawMessage
	if err := claimDec.Unmarshal(payload, &m); err != nil {
		return nil, verr(ErrMalformed, "claims: %v", err)
	}
	f, err := expandClaims(m)
	if err != nil {
		return nil, verr(ErrMalformed, "claims: %v", err)
	}
	t := &Token{Format: f}
	var (
		kind uint64
		seen = map[int64]bool{}
	)
	for label, raw := range m {
		seen[label] = true
		var err error
		switch label {
		case LabelKind:
			kind, err = decUint(raw)
		case LabelSeq:
			t.Seq, err = decUint(raw)
		case LabelClockSynced:
			t.ClockSynced, err = decBool(raw)
		case LabelIAT:
			var s uint64
			if s, err = decUint(raw); err == nil {
				if s > 1<<40 {
					err = errors.New("out of range")
				} else {
					t.IssuedAt = time.Unix(int64(s), 0).UTC()
				}
			}
		case LabelBootCount:
			t.BootCount, err = decUint(raw)
		case LabelNonce:
			t.Nonce, err = decBytes(raw, 8, 64)
		case LabelUEID:
			t.UEID, err = decBytes(raw, 7, 33)
		case LabelHWModel:
			var b []byte
			b, err = decBytes(raw, 1, 32)
			t.HWModel = string(b)
		case LabelSWVersion:
			var a []string
			if raw[0]>>5 != 4 {
				err = errors.New("not an array")
			} else if err = claimDec.Unmarshal(raw, &a); err == nil && (len(a) < 1 || len(a) > 2 || !utf8.ValidString(a[0])) {
				err = errors.New("want [version, ?scheme]")
			}
			if err == nil {
				t.SWVersion = a[0]
			}
		case LabelSUCI:
			t.SUCI, err = decText(raw)
		case LabelEvent:
			t.Event, err = decEvent(f, raw)
		case LabelIMSIPseudonym:
			t.Pseudonyms.IMSI, err = decBytes(raw, PseudonymSize, PseudonymSize)
		case LabelICCIDPseudonym:
			t.Pseudonyms.ICCID, err = decBytes(raw, PseudonymSize, PseudonymSize)
		case LabelOldIMSIPseudonym:
			t.Old.IMSI, err = decBytes(raw, PseudonymSize, PseudonymSize)
		case LabelOldICCIDPseudonym:
			t.Old.ICCID, err = decBytes(raw, PseudonymSize, PseudonymSize)
		default:
			t.Unknown = append(t.Unknown, label)
			if t.Extra == nil {
				t.Extra = map[int64][]byte{}
			}
			t.Extra[label] = raw
		}
		if err != nil {
			return nil, verr(ErrMalformed, "claim %d: %v", label, err)
		}
	}
	for _, l := range []int64{LabelKind, LabelSeq, LabelClockSynced} {
		if !seen[l] {
			return nil, verr(ErrMalformed, "required claim %d missing", l)
		}
	}
	if kind < uint64(KindBinding) || kind > uint64(KindHeartbeat) {
		return nil, verr(ErrMalformed, "unknown token kind %d", kind)
	}
	t.Kind = Kind(kind)
	if t.Seq == 0 {
		return nil, verr(ErrMalformed, "sequence number 0")
	}
	slices.Sort(t.Unknown)
	return t, nil
}

func decUint(raw cbor.RawMessage) (uint64, error) {
	if len(raw) == 0 || raw[0]>>5 != 0 {
		return 0, errors.New("not an unsigned integer")
	}
	var n uint64
	err := claimDec.Unmarshal(raw, &n)
	return n, err
}

func decBool(raw cbor.RawMessage) (bool, error) {
	switch {
	case len(raw) == 1 && raw[0] == 0xf5:
		return true, nil
	case len(raw) == 1 && raw[0] == 0xf4:
		return false, nil
	}
	return false, errors.New("not a bool")
}

func decBytes(raw cbor.RawMessage, min, max int) ([]byte, error) {
	if len(raw) == 0 || raw[0]>>5 != 2 {
		return nil, errors.New("not a byte string")
	}
	var b []byte
	if err := claimDec.Unmarshal(raw, &b); err != nil {
		return nil, err
	}
	if len(b) < min || len(b) > max {
		return nil, fmt.Errorf("length %d not in %d..%d", len(b), min, max)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

func decText(raw cbor.RawMessage) (string, error) {
	if len(raw) == 0 || raw[0]>>5 != 3 {
		return "", errors.New("not a text string")
	}
	var s string
	if err := claimDec.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	if len(s) > 256 {
		return "", errors.New("too long")
	}
	// No text claim (an event name, a SUCI) has a control character. One
	// would reach log lines (a line break forges a line) and the stores
	// (PostgreSQL's jsonb refuses U+0000, failing the transaction and with
	// it every other device's message in the same group commit).
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", errors.New("control character in text")
	}
	return s, nil
}
