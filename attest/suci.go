package attest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"

	"github.com/mtcagent/mtcagent/privacy/ident"
)

// Scheme is a SUCI protection scheme of TS 33.501 Annex C.
type Scheme int

// Protection scheme identifiers (TS 33.501 Annex C, TS 23.003 §2.2B).
const (
	SchemeNull     Scheme = 0 // no concealment: the MSIN travels in BCD
	SchemeProfileA Scheme = 1 // ECIES with X25519
	SchemeProfileB Scheme = 2 // ECIES with P-256, compressed points
)

// String returns "null", "A" or "B" (the names used in key files and flags).
func (s Scheme) String() string {
	switch s {
	case SchemeNull:
		return "null"
	case SchemeProfileA:
		return "A"
	case SchemeProfileB:
		return "B"
	}
	return "scheme(" + strconv.Itoa(int(s)) + ")"
}

// ParseScheme accepts "null", "A", "B" (any case) or the numbers 0, 1, 2.
func ParseScheme(s string) (Scheme, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "null", "0":
		return SchemeNull, nil
	case "a", "1":
		return SchemeProfileA, nil
	case "b", "2":
		return SchemeProfileB, nil
	}
	return 0, fmt.Errorf("%w: unknown protection scheme %q (want null, A or B)", ErrSUCI, s)
}

// Sizes fixed by Annex C.3.4 for both profiles.
const (
	suciEncKeyLen = 16 // AES-128
	suciICBLen    = 16
	suciMacKeyLen = 32 // HMAC-SHA-256
	suciMacLen    = 8
)

// ErrSUCI is wrapped by every SUCI error: bad keys, bad strings, bad MACs.
var ErrSUCI = errors.New("suci")

// ErrSUCIMAC is returned when a SUCI's MAC does not match: the scheme output
// was altered or concealed for a different home-network key.
var ErrSUCIMAC = errors.New("suci: mac mismatch")

// HNPublicKey is the operator's home-network public key as provisioned on
// the device (or the USIM), with the parameters needed to build a SUCI.
type HNPublicKey struct {
	Scheme           Scheme
	KeyID            int    // home network public key identifier, 0..255
	Key              []byte // X25519: 32 bytes; P-256: compressed (33) or uncompressed (65)
	RoutingIndicator string // 1-4 digits; "0" when unused
	MNCDigits        int    // 2 or 3: how many IMSI digits after the MCC form the MNC
}

// HNPrivateKey is the home network's private key, for de-concealment (the
// SIDF role, in the collector). Its String never shows the key.
type HNPrivateKey struct {
	HNPublicKey
	priv *ecdh.PrivateKey
}

// String redacts the private key.
func (k *HNPrivateKey) String() string {
	return fmt.Sprintf("hn-private-key(profile %s, id %d)", k.Scheme, k.KeyID)
}

// NewHNPrivateKey builds a private key of the given scheme from its raw
// scalar (32 bytes for either profile).
func NewHNPrivateKey(scheme Scheme, keyID int, raw []byte) (*HNPrivateKey, error) {
	c, err := schemeCurve(scheme)
	if err != nil {
		return nil, err
	}
	priv, err := c.NewPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid private key for profile %s", ErrSUCI, scheme)
	}
	pub := priv.PublicKey().Bytes()
	if scheme == SchemeProfileB {
		pub = compressP256(pub)
	}
	return &HNPrivateKey{
		HNPublicKey: HNPublicKey{Scheme: scheme, KeyID: keyID, Key: pub, RoutingIndicator: "0", MNCDigits: 2},
		priv:        priv,
	}, nil
}

// GenerateHNKey makes a new home-network key pair for profile A or B.
func GenerateHNKey(scheme Scheme, keyID int, rnd io.Reader) (*HNPrivateKey, error) {
	priv, err := ephemeralKey(scheme, rnd)
	if err != nil {
		return nil, err
	}
	return NewHNPrivateKey(scheme, keyID, priv.Bytes())
}

// Bytes returns the raw private scalar; write it only to a 0600 file.
func (k *HNPrivateKey) Bytes() []byte { return k.priv.Bytes() }

func schemeCurve(s Scheme) (ecdh.Curve, error) {
	switch s {
	case SchemeProfileA:
		return ecdh.X25519(), nil
	case SchemeProfileB:
		return ecdh.P256(), nil
	}
	return nil, fmt.Errorf("%w: profile %s has no key", ErrSUCI, s)
}

// publicKey parses k.Key for its curve.
func (k *HNPublicKey) publicKey() (*ecdh.PublicKey, error) {
	c, err := schemeCurve(k.Scheme)
	if err != nil {
		return nil, err
	}
	raw := k.Key
	if k.Scheme == SchemeProfileB && len(raw) == 33 {
		raw, err = decompressP256(raw)
		if err != nil {
			return nil, err
		}
	}
	pub, err := c.NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid home network public key for profile %s", ErrSUCI, k.Scheme)
	}
	return pub, nil
}

func (k *HNPublicKey) check() error {
	if k.KeyID < 0 || k.KeyID > 255 {
		return fmt.Errorf("%w: key id %d out of range 0..255", ErrSUCI, k.KeyID)
	}
	if k.Scheme == SchemeNull && k.KeyID != 0 {
		return fmt.Errorf("%w: the null scheme takes key id 0", ErrSUCI)
	}
	ri := k.RoutingIndicator
	if ri == "" {
		ri = "0"
	}
	if len(ri) > 4 || !allDigits(ri) {
		return fmt.Errorf("%w: routing indicator must be 1 to 4 digits", ErrSUCI)
	}
	if k.MNCDigits != 2 && k.MNCDigits != 3 {
		return fmt.Errorf("%w: mnc digits must be 2 or 3", ErrSUCI)
	}
	return nil
}

// SUCI is a parsed SUCI string of the IMSI type:
// suci-0-<mcc>-<mnc>-<routing indicator>-<scheme>-<hn key id>-<scheme output hex>.
type SUCI struct {
	MCC, MNC         string
	RoutingIndicator string
	Scheme           Scheme
	KeyID            int
	Output           []byte // scheme output: eph. public key || ciphertext || MAC, or BCD MSIN for null
}

// String formats the SUCI with the scheme output in lower-case hex.
func (s SUCI) String() string {
	return fmt.Sprintf("suci-0-%s-%s-%s-%d-%d-%s", s.MCC, s.MNC, s.RoutingIndicator, int(s.Scheme), s.KeyID, hex.EncodeToString(s.Output))
}

// ParseSUCI parses the string form. It checks the structure only; Decode
// recovers the SUPI.
func ParseSUCI(str string) (SUCI, error) {
	bad := func(what string) (SUCI, error) {
		return SUCI{}, fmt.Errorf("%w: malformed suci string: %s", ErrSUCI, what)
	}
	f := strings.Split(strings.TrimSpace(str), "-")
	if len(f) != 8 || f[0] != "suci" {
		return bad("want suci-0-MCC-MNC-RI-SCHEME-KEYID-OUTPUT")
	}
	if f[1] != "0" {
		return bad("only SUPI type 0 (IMSI) is supported")
	}
	if len(f[2]) != 3 || !allDigits(f[2]) {
		return bad("mcc must be 3 digits")
	}
	if len(f[3]) < 2 || len(f[3]) > 3 || !allDigits(f[3]) {
		return bad("mnc must be 2 or 3 digits")
	}
	if len(f[4]) < 1 || len(f[4]) > 4 || !allDigits(f[4]) {
		return bad("routing indicator must be 1 to 4 digits")
	}
	scheme, err := strconv.Atoi(f[5])
	if err != nil || len(f[5]) > 2 || scheme < 0 || scheme > 15 {
		return bad("protection scheme id must be 0 to 15")
	}
	keyID, err := strconv.Atoi(f[6])
	if err != nil || len(f[6]) > 3 || keyID < 0 || keyID > 255 {
		return bad("home network key id must be 0 to 255")
	}
	out, err := hex.DecodeString(f[7])
	if err != nil || len(out) == 0 {
		return bad("scheme output must be hex")
	}
	return SUCI{MCC: f[2], MNC: f[3], RoutingIndicator: f[4], Scheme: Scheme(scheme), KeyID: keyID, Output: out}, nil
}

// Conceal builds the SUCI of imsi for the home-network key. rnd supplies the
// ephemeral key (crypto/rand when nil); tests inject it to reproduce the
// TS 33.501 vectors.
func Conceal(hn *HNPublicKey, imsi ident.IMSI, rnd io.Reader) (SUCI, error) {
	if err := hn.check(); err != nil {
		return SUCI{}, err
	}
	s := imsi.Reveal()
	if len(s) < 3+hn.MNCDigits+1 {
		return SUCI{}, fmt.Errorf("%w: imsi too short", ErrSUCI)
	}
	mcc, mnc, msin := s[:3], s[3:3+hn.MNCDigits], s[3+hn.MNCDigits:]
	ri := hn.RoutingIndicator
	if ri == "" {
		ri = "0"
	}
	out := SUCI{MCC: mcc, MNC: mnc, RoutingIndicator: ri, Scheme: hn.Scheme, KeyID: hn.KeyID}
	plain := packBCD(msin)
	if hn.Scheme == SchemeNull {
		out.Output = plain
		return out, nil
	}
	eph, err := ephemeralKey(hn.Scheme, rnd)
	if err != nil {
		return SUCI{}, err
	}
	out.Output, err = concealWith(hn, eph, plain)
	if err != nil {
		return SUCI{}, err
	}
	return out, nil
}

// ephemeralKey draws a private key for the scheme's curve from rnd.
func ephemeralKey(scheme Scheme, rnd io.Reader) (*ecdh.PrivateKey, error) {
	c, err := schemeCurve(scheme)
	if err != nil {
		return nil, err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	var b [32]byte
	for range 64 { // P-256 rejects scalars >= n: retry (probability 2^-32 each)
		if _, err := io.ReadFull(rnd, b[:]); err != nil {
			return nil, fmt.Errorf("suci: ephemeral key: %w", err)
		}
		if k, err := c.NewPrivateKey(b[:]); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: no valid ephemeral key from randomness source", ErrSUCI)
}

// concealWith is Annex C.3.2 (encryption at the UE) with a given ephemeral key.
func concealWith(hn *HNPublicKey, eph *ecdh.PrivateKey, plain []byte) ([]byte, error) {
	hnPub, err := hn.publicKey()
	if err != nil {
		return nil, err
	}
	shared, err := eph.ECDH(hnPub)
	if err != nil {
		return nil, fmt.Errorf("%w: key agreement: %v", ErrSUCI, err)
	}
	ephPub := eph.PublicKey().Bytes()
	if hn.Scheme == SchemeProfileB {
		ephPub = compressP256(ephPub)
	}
	encKey, icb, macKey := suciKeys(shared, ephPub)
	ct := make([]byte, len(plain))
	ctr(encKey, icb, ct, plain)
	mac := suciMAC(macKey, ct)
	out := make([]byte, 0, len(ephPub)+len(ct)+len(mac))
	out = append(out, ephPub...)
	out = append(out, ct...)
	return append(out, mac...), nil
}

// Decode recovers the SUPI ("imsi-" followed by the digits) from a SUCI
// with the home network's private key (or without one for the null
// scheme: pass nil). It fails closed on a wrong key id or a bad MAC.
func Decode(priv *HNPrivateKey, s SUCI) (ident.IMSI, error) {
	var plain []byte
	switch s.Scheme {
	case SchemeNull:
		if s.KeyID != 0 {
			return ident.IMSI{}, fmt.Errorf("%w: null scheme with key id %d", ErrSUCI, s.KeyID)
		}
		plain = s.Output
	case SchemeProfileA, SchemeProfileB:
		if priv == nil {
			return ident.IMSI{}, fmt.Errorf("%w: profile %s needs the home network private key", ErrSUCI, s.Scheme)
		}
		if priv.Scheme != s.Scheme {
			return ident.IMSI{}, fmt.Errorf("%w: suci uses profile %s, key is for profile %s", ErrSUCI, s.Scheme, priv.Scheme)
		}
		if priv.KeyID != s.KeyID {
			return ident.IMSI{}, fmt.Errorf("%w: suci names home network key id %d, key file has id %d", ErrSUCI, s.KeyID, priv.KeyID)
		}
		var err error
		plain, err = deconceal(priv, s.Output)
		if err != nil {
			return ident.IMSI{}, err
		}
	default:
		return ident.IMSI{}, fmt.Errorf("%w: unsupported protection scheme %d", ErrSUCI, int(s.Scheme))
	}
	msin, err := unpackBCD(plain)
	if err != nil {
		return ident.IMSI{}, err
	}
	imsi, err := ident.ParseIMSI(s.MCC + s.MNC + msin)
	if err != nil {
		return ident.IMSI{}, fmt.Errorf("%w: decoded supi is not an imsi", ErrSUCI)
	}
	return imsi, nil
}

// deconceal is Annex C.3.3 (decryption at the home network).
func deconceal(priv *HNPrivateKey, out []byte) ([]byte, error) {
	pubLen := 32
	if priv.Scheme == SchemeProfileB {
		pubLen = 33
	}
	if len(out) < pubLen+1+suciMacLen {
		return nil, fmt.Errorf("%w: scheme output of %d bytes is too short", ErrSUCI, len(out))
	}
	ephRaw := out[:pubLen]
	ct := out[pubLen : len(out)-suciMacLen]
	mac := out[len(out)-suciMacLen:]
	pubBytes := ephRaw
	if priv.Scheme == SchemeProfileB {
		var err error
		if pubBytes, err = decompressP256(ephRaw); err != nil {
			return nil, err
		}
	}
	c, _ := schemeCurve(priv.Scheme)
	ephPub, err := c.NewPublicKey(pubBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid ephemeral public key", ErrSUCI)
	}
	shared, err := priv.priv.ECDH(ephPub)
	if err != nil {
		return nil, fmt.Errorf("%w: key agreement: %v", ErrSUCI, err)
	}
	encKey, icb, macKey := suciKeys(shared, ephRaw)
	if subtle.ConstantTimeCompare(suciMAC(macKey, ct), mac) != 1 {
		return nil, ErrSUCIMAC
	}
	plain := make([]byte, len(ct))
	ctr(encKey, icb, plain, ct)
	return plain, nil
}

// suciKeys runs the ANSI X9.63 KDF (SHA-256, SharedInfo = the ephemeral
// public key as sent) and splits its output as Annex C.3.4 says.
func suciKeys(shared, ephPub []byte) (encKey, icb, macKey []byte) {
	k := x963KDF(shared, ephPub, suciEncKeyLen+suciICBLen+suciMacKeyLen)
	return k[:suciEncKeyLen], k[suciEncKeyLen : suciEncKeyLen+suciICBLen], k[suciEncKeyLen+suciICBLen:]
}

// x963KDF is ANSI X9.63 §3.6.1: Hash(Z || counter32 || SharedInfo) for
// counter = 1, 2, ... until n bytes are produced.
func x963KDF(z, info []byte, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	var cnt [4]byte
	for i := uint32(1); len(out) < n; i++ {
		binary.BigEndian.PutUint32(cnt[:], i)
		h := sha256.New()
		h.Write(z)
		h.Write(cnt[:])
		h.Write(info)
		out = h.Sum(out)
	}
	return out[:n]
}

func ctr(key, icb, dst, src []byte) {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic("attest: aes key of fixed size rejected: " + err.Error())
	}
	cipher.NewCTR(b, icb).XORKeyStream(dst, src)
}

func suciMAC(key, ct []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(ct)
	return m.Sum(nil)[:suciMacLen]
}

// packBCD packs digits two per byte, first digit in the low nibble, an odd
// count padded with 0xF (TS 24.501 §9.11.3.4, as the Annex C vectors show).
func packBCD(digits string) []byte {
	out := make([]byte, (len(digits)+1)/2)
	for i := 0; i < len(digits); i++ {
		d := digits[i] - '0'
		if i%2 == 0 {
			out[i/2] = d
		} else {
			out[i/2] |= d << 4
		}
	}
	if len(digits)%2 == 1 {
		out[len(out)-1] |= 0xF0
	}
	return out
}

func unpackBCD(b []byte) (string, error) {
	var sb strings.Builder
	for i, c := range b {
		for j, n := range [2]byte{c & 0x0F, c >> 4} {
			if n == 0x0F && i == len(b)-1 && j == 1 {
				break
			}
			if n > 9 {
				return "", fmt.Errorf("%w: msin is not bcd", ErrSUCI)
			}
			sb.WriteByte('0' + n)
		}
	}
	return sb.String(), nil
}

var (
	p256P = mustBig("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff")
	p256B = mustBig("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b")
)

func mustBig(h string) *big.Int {
	n, ok := new(big.Int).SetString(h, 16)
	if !ok {
		panic("attest: bad constant")
	}
	return n
}

// compressP256 turns an uncompressed SEC1 point (04 || X || Y) into 02/03 || X.
func compressP256(u []byte) []byte {
	out := make([]byte, 33)
	out[0] = 2 | u[64]&1
	copy(out[1:], u[1:33])
	return out
}

// decompressP256 recovers Y from a compressed point (y^2 = x^3 - 3x + b;
// p = 3 mod 4, so sqrt is a power). crypto/ecdh then checks the point.
func decompressP256(c []byte) ([]byte, error) {
	if len(c) != 33 || (c[0] != 2 && c[0] != 3) {
		return nil, fmt.Errorf("%w: invalid compressed p-256 point", ErrSUCI)
	}
	x := new(big.Int).SetBytes(c[1:])
	if x.Cmp(p256P) >= 0 {
		return nil, fmt.Errorf("%w: invalid compressed p-256 point", ErrSUCI)
	}
	y2 := new(big.Int).Mul(x, x)
	y2.Mul(y2, x)
	y2.Sub(y2, new(big.Int).Lsh(x, 1))
	y2.Sub(y2, x)
	y2.Add(y2, p256B)
	y2.Mod(y2, p256P)
	e := new(big.Int).Add(p256P, big.NewInt(1))
	e.Rsh(e, 2)
	y := new(big.Int).Exp(y2, e, p256P)
	if new(big.Int).Mod(new(big.Int).Mul(y, y), p256P).Cmp(y2) != 0 {
		return nil, fmt.Errorf("%w: compressed point is not on p-256", ErrSUCI)
	}
	if y.Bit(0) != uint(c[0]&1) {
		y.Sub(p256P, y)
	}
	out := make([]byte, 65)
	out[0] = 4
	x.FillBytes(out[1:33])
	y.FillBytes(out[33:])
	return out, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// JSON is s and its parts, as `mtcagent suci --json` prints them.
func (s SUCI) JSON() map[string]any {
	return map[string]any{
		"suci": s.String(), "supi_type": 0, "mcc": s.MCC, "mnc": s.MNC,
		"routing_indicator": s.RoutingIndicator, "profile": s.Scheme.String(),
		"protection_scheme_id": int(s.Scheme), "hn_key_id": s.KeyID,
	}
}

// ConcealString is the SUCI of imsi as a string (Conceal), or "" without
// a key or without an IMSI: the SUCI claim of a binding token.
func ConcealString(hn *HNPublicKey, imsi ident.IMSI, rnd io.Reader) (string, error) {
	if hn == nil || imsi.IsZero() {
		return "", nil
	}
	s, err := Conceal(hn, imsi, rnd)
	if err != nil {
		return "", err
	}
	return s.String(), nil
}
