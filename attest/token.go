package attest

import (
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/mtcagent/mtcagent/internal/clock"
	"github.com/mtcagent/mtcagent/privacy/ident"
	"github.com/veraison/go-cose"
)

// Claim labels. Public ones are from CWT (RFC 8392) and EAT (RFC 9711);
// private ones are below -65536 as RFC 9711 §4.3 reserves for private use.
const (
	LabelIAT       int64 = 6   // issued at: seconds since 1970 (uint); see ClockSynced
	LabelNonce     int64 = 10  // nonce: bstr, 8..64 bytes
	LabelUEID      int64 = 256 // ueid: bstr, 0x01 RAND (per recipient) or 0x03 IMEI
	LabelHWModel   int64 = 259 // hwmodel: bstr 1..32 (the modem's model string)
	LabelBootCount int64 = 267 // bootcount: uint, agent starts
	LabelSWVersion int64 = 271 // swversion: [tstr] (the modem's firmware revision)

	LabelKind              int64 = -65537 // token kind: uint (Kind)
	LabelSeq               int64 = -65538 // sequence number: uint, never repeats
	LabelClockSynced       int64 = -65539 // bool: iat comes from a synchronised clock
	LabelIMSIPseudonym     int64 = -65540 // bstr 16: per-recipient pseudonym of the IMSI
	LabelICCIDPseudonym    int64 = -65541 // bstr 16: per-recipient pseudonym of the ICCID
	LabelSUCI              int64 = -65542 // tstr: SUCI (TS 33.501) for the operator
	LabelEvent             int64 = -65543 // tstr: event type (events only)
	LabelOldIMSIPseudonym  int64 = -65544 // bstr 16: IMSI pseudonym before the change
	LabelOldICCIDPseudonym int64 = -65545 // bstr 16: ICCID pseudonym before the change
)

// Kind says what a token is.
type Kind uint8

// Token kinds.
const (
	KindBinding   Kind = 1 // UICC–device binding attestation, usually per nonce
	KindEvent     Kind = 2 // a signed event (SIM change, loss of connectivity, ...)
	KindHeartbeat Kind = 3 // a periodic liveness record; gaps in Seq show suppression
)

// String returns "binding", "event" or "heartbeat".
func (k Kind) String() string {
	switch k {
	case KindBinding:
		return "binding"
	case KindEvent:
		return "event"
	case KindHeartbeat:
		return "heartbeat"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Claim is one label and value of a token's claims map. Values are CBOR-
// encodable: []byte, string, bool, integers, []string.
type Claim struct {
	Label int64
	Value any
}

// Claim constructors for the public and private labels.
func NonceClaim(n []byte) Claim       { return Claim{LabelNonce, n} }
func UEIDClaim(u []byte) Claim        { return Claim{LabelUEID, u} }
func HWModelClaim(model string) Claim { return Claim{LabelHWModel, hwModelBytes(model)} }
func SWVersionClaim(rev string) Claim { return Claim{LabelSWVersion, []string{rev}} }
func SUCIClaim(suci string) Claim     { return Claim{LabelSUCI, suci} }
func EventClaim(event string) Claim   { return Claim{LabelEvent, event} }
func PseudonymClaims(p Pseudonyms) []Claim {
	return pseudonymClaims(p, LabelIMSIPseudonym, LabelICCIDPseudonym)
}
func OldPseudonymClaims(p Pseudonyms) []Claim {
	return pseudonymClaims(p, LabelOldIMSIPseudonym, LabelOldICCIDPseudonym)
}

func pseudonymClaims(p Pseudonyms, li, lc int64) []Claim {
	var out []Claim
	if len(p.IMSI) > 0 {
		out = append(out, Claim{li, []byte(p.IMSI)})
	}
	if len(p.ICCID) > 0 {
		out = append(out, Claim{lc, []byte(p.ICCID)})
	}
	return out
}

func hwModelBytes(model string) []byte {
	b := []byte(model)
	if len(b) > 32 {
		b = b[:32]
	}
	return b
}

// Sequencer hands out sequence numbers; *Counter is the durable one.
type Sequencer interface {
	Next() (uint64, error)
}

// Clock says what time it is and whether that time is trustworthy (set by
// NTP, GNSS or the network), since boards without a battery boot in 1970.
// It is internal/clock's Wall: a clock.Clock (clock.System, clock.Fake) is
// one.
type Clock = clock.Wall

// ClockFunc adapts a function to Clock.
type ClockFunc func() (time.Time, bool)

// Now calls f.
func (f ClockFunc) Now() (time.Time, bool) { return f() }

// SystemClock is the system time; synced comes from the kernel's view
// (adjtimex: an NTP client has disciplined the clock) where available. It
// is clock.System.
var SystemClock Clock = clock.System

// ErrClaim is wrapped when a caller's claims are not acceptable.
var ErrClaim = errors.New("attest: bad claim")

// Issuer signs tokens: it adds kind, sequence number, iat, the clock flag
// and the boot count to the caller's claims, encodes them as a CBOR map and
// wraps them in a COSE_Sign1 with EdDSA. Safe for concurrent use; sequence
// numbers of concurrent tokens are distinct but may be signed out of order.
type Issuer struct {
	signer    cose.Signer
	seq       Sequencer
	clock     Clock
	bootCount uint64
	format    atomic.Uint32 // Format of the tokens Sign makes (default FormatLabels)
}

// SetFormat sets the claims format of the tokens Sign makes from now on:
// FormatCompact once the receiver is known to read it (a collector says
// so in its attestation request), FormatLabels for one that may not.
func (is *Issuer) SetFormat(f Format) {
	if f != FormatCompact {
		f = FormatLabels
	}
	is.format.Store(uint32(f))
}

// Format is the claims format Sign uses now.
func (is *Issuer) Format() Format {
	if f := Format(is.format.Load()); f == FormatCompact {
		return f
	}
	return FormatLabels
}

// NewIssuer returns an Issuer signing with key (an Ed25519 crypto.Signer:
// a file key, or one kept in a secure element or TPM).
func NewIssuer(key crypto.Signer, seq Sequencer, clock Clock, bootCount uint64) (*Issuer, error) {
	s, err := newEdDSASigner(key)
	if err != nil {
		return nil, fmt.Errorf("attest: signer: %w", err)
	}
	if seq == nil {
		return nil, errors.New("attest: issuer needs a sequencer")
	}
	if clock == nil {
		clock = SystemClock
	}
	return &Issuer{signer: s, seq: seq, clock: clock, bootCount: bootCount}, nil
}

var claimEnc = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// protectedEdDSA is the only protected header we produce and accept: {1: -8}.
var protectedEdDSA = []byte{0xa1, 0x01, 0x27}

// protectedEdDSABstr is protectedEdDSA wrapped in a byte string, as it
// appears in the COSE_Sign1 array.
var protectedEdDSABstr = []byte{0x43, 0xa1, 0x01, 0x27}

// Sign makes a token of kind with the caller's claims plus the issuer's
// (kind, sequence number, iat, clock flag, boot count), in the issuer's
// Format. A caller may not set those itself, nor give a label twice.
func (is *Issuer) Sign(kind Kind, claims ...Claim) ([]byte, error) {
	return is.SignFormat(is.Format(), kind, claims...)
}

// SignFormat is Sign in format f, for a caller whose claims' values
// depend on the format (the agent's event details).
func (is *Issuer) SignFormat(f Format, kind Kind, claims ...Claim) ([]byte, error) {
	if kind < KindBinding || kind > KindHeartbeat {
		return nil, fmt.Errorf("%w: unknown token kind %d", ErrClaim, kind)
	}
	m := make(map[int64]any, len(claims)+5)
	for _, c := range claims {
		switch c.Label {
		case LabelKind, LabelSeq, LabelIAT, LabelClockSynced, LabelBootCount, LabelPrivate:
			return nil, fmt.Errorf("%w: label %d is set by the issuer", ErrClaim, c.Label)
		}
		if _, dup := m[c.Label]; dup {
			return nil, fmt.Errorf("%w: label %d given twice", ErrClaim, c.Label)
		}
		if err := checkClaim(c); err != nil {
			return nil, err
		}
		m[c.Label] = c.Value
	}
	now, synced := is.clock.Now()
	seq, err := is.seq.Next()
	if err != nil {
		return nil, fmt.Errorf("attest: sequence number: %w", err)
	}
	m[LabelKind] = uint8(kind)
	m[LabelSeq] = seq
	m[LabelClockSynced] = synced
	if sec := now.Unix(); sec > 0 {
		m[LabelIAT] = uint64(sec)
	}
	if is.bootCount > 0 {
		m[LabelBootCount] = is.bootCount
	}
	payload, err := encodeClaims(f, m)
	if err != nil {
		return nil, fmt.Errorf("attest: encode claims: %w", err)
	}
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(cose.AlgorithmEdDSA)
	msg.Payload = payload
	if err := msg.Sign(rand.Reader, nil, is.signer); err != nil {
		return nil, fmt.Errorf("attest: sign: %w", err)
	}
	return msg.MarshalCBOR()
}

// A nonce claim (the verifier's challenge) is MinNonce to MaxNonce bytes.
const (
	MinNonce = 8
	MaxNonce = 64
)

// ParseNonce reads a verifier's challenge given in hex: nil for "", else
// MinNonce to MaxNonce bytes.
func ParseNonce(h string) ([]byte, error) {
	if h == "" {
		return nil, nil
	}
	n, err := hex.DecodeString(h)
	if err == nil {
		err = checkClaim(NonceClaim(n))
	}
	return n, err
}

func checkClaim(c Claim) error {
	bad := func(what string) error { return fmt.Errorf("%w: label %d: %s", ErrClaim, c.Label, what) }
	switch c.Label {
	case LabelNonce:
		if b, ok := c.Value.([]byte); !ok || len(b) < MinNonce || len(b) > MaxNonce {
			return bad("nonce must be 8 to 64 bytes")
		}
	case LabelUEID:
		if b, ok := c.Value.([]byte); !ok || len(b) < 7 || len(b) > 33 {
			return bad("ueid must be 7 to 33 bytes")
		}
	case LabelHWModel:
		if b, ok := c.Value.([]byte); !ok || len(b) < 1 || len(b) > 32 {
			return bad("hwmodel must be 1 to 32 bytes")
		}
	case LabelEvent:
		if _, ok := c.Value.(string); !ok {
			return bad("event must be text")
		}
	case LabelIMSIPseudonym, LabelICCIDPseudonym, LabelOldIMSIPseudonym, LabelOldICCIDPseudonym:
		if b, ok := c.Value.([]byte); !ok || len(b) != PseudonymSize {
			return bad("pseudonym must be 16 bytes")
		}
	}
	return nil
}

// Binding is what a binding token attests: the SIM seen in this device.
type Binding struct {
	Recipient string     // whose UEID and pseudonyms to use
	Nonce     []byte     // the recipient's challenge (8..64 bytes), or nil
	IMEI      ident.IMEI // used only when AllowIMEI
	IMSI      ident.IMSI
	ICCID     ident.ICCID
	Model     string // modem model, for hwmodel
	Revision  string // modem firmware revision, for swversion
	AllowIMEI bool   // the recipient's policy lets it see the IMEI (UEID type 0x03)
	SUCI      string // optional: the SUCI for the operator
}

// SignBinding makes a binding token for b.Recipient.
func (is *Issuer) SignBinding(d *Deriver, b Binding) ([]byte, error) {
	claims, err := BindingClaims(d, b)
	if err != nil {
		return nil, err
	}
	return is.Sign(KindBinding, claims...)
}

// BindingClaims returns the caller claims of a binding token (without
// the issuer's), e.g. for a preview of what a recipient would receive.
func BindingClaims(d *Deriver, b Binding) ([]Claim, error) {
	var claims []Claim
	if b.Nonce != nil {
		claims = append(claims, NonceClaim(b.Nonce))
	}
	if b.AllowIMEI {
		u, err := IMEIUEID(b.IMEI)
		if err != nil {
			return nil, err
		}
		claims = append(claims, UEIDClaim(u))
	} else {
		claims = append(claims, UEIDClaim(d.UEID(b.Recipient)))
	}
	if b.Model != "" {
		claims = append(claims, HWModelClaim(b.Model))
	}
	if b.Revision != "" {
		claims = append(claims, SWVersionClaim(b.Revision))
	}
	claims = append(claims, PseudonymClaims(d.Pseudonyms(b.Recipient, b.IMSI, b.ICCID))...)
	if b.SUCI != "" {
		claims = append(claims, SUCIClaim(b.SUCI))
	}
	return claims, nil
}

// SignHeartbeat makes a heartbeat token: only the issuer's claims, so it
// stays under 120 bytes.
func (is *Issuer) SignHeartbeat() ([]byte, error) { return is.Sign(KindHeartbeat) }
