package attest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/mtcagent/mtcagent/privacy/ident"
)

// UEID type bytes (RFC 9711 §4.2.1).
const (
	UEIDTypeRAND = 0x01
	UEIDTypeIMEI = 0x03
)

// Domain-separation labels: each output of the device secret is an HMAC
// over its own label, so no two uses can collide.
const (
	labelUEID         = "mtcagent/v1/ueid\x00"
	labelRecipientKey = "mtcagent/v1/pseudonym-key\x00"
	labelIMSI         = "mtcagent/v1/imsi\x00"
	labelICCID        = "mtcagent/v1/iccid\x00"
)

// PseudonymSize is the length of an IMSI or ICCID pseudonym in bytes.
const PseudonymSize = 16

// Pseudonym is a per-recipient keyed hash of an identifier: a recipient
// sees that it changed, not what it is, and cannot link it with another
// recipient's. Empty when the identifier is unknown (no SIM).
type Pseudonym []byte

// String is the pseudonym in hex, or "none".
func (p Pseudonym) String() string {
	if len(p) == 0 {
		return "none"
	}
	return hex.EncodeToString(p)
}

// Equal compares in constant time.
func (p Pseudonym) Equal(q Pseudonym) bool { return hmac.Equal(p, q) }

// Pseudonyms of one SIM for one recipient.
type Pseudonyms struct {
	IMSI  Pseudonym
	ICCID Pseudonym
}

// Equal reports whether both pseudonyms match.
func (p Pseudonyms) Equal(q Pseudonyms) bool { return p.IMSI.Equal(q.IMSI) && p.ICCID.Equal(q.ICCID) }

// Deriver derives per-recipient identifiers from the device secret. Its
// String never shows the secret.
type Deriver struct {
	secret [32]byte
}

// String redacts the secret.
func (d *Deriver) String() string { return "attest.Deriver(redacted)" }

// NewDeriver takes the 32-byte device secret.
func NewDeriver(secret []byte) (*Deriver, error) {
	if len(secret) != 32 {
		return nil, fmt.Errorf("%w: device secret must be 32 bytes, got %d", ErrBadKey, len(secret))
	}
	d := &Deriver{}
	copy(d.secret[:], secret)
	return d, nil
}

// LoadOrCreateDeriver reads <stateDir>/device.secret (32 random bytes,
// 0600), creating it on first use.
func LoadOrCreateDeriver(stateDir string) (*Deriver, error) {
	b, _, err := loadOrCreate(stateDir, DeviceSecretFile, func() ([]byte, error) {
		s := make([]byte, 32)
		_, err := rand.Read(s)
		return s, err
	})
	if err != nil {
		return nil, err
	}
	d, err := NewDeriver(b)
	if err != nil {
		return nil, fmt.Errorf("attest: %s: %w", filepath.Join(stateDir, DeviceSecretFile), err)
	}
	return d, nil
}

func (d *Deriver) mac(key []byte, label, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write([]byte(data))
	return m.Sum(nil)
}

// UEID returns the device's RAND-type UEID for recipient:
// 0x01 || HMAC-SHA256(secret, label || recipient)[:16]. Stable per
// recipient, unlinkable across recipients.
func (d *Deriver) UEID(recipient string) []byte {
	sum := d.mac(d.secret[:], labelUEID, recipient)
	return append([]byte{UEIDTypeRAND}, sum[:16]...)
}

// Pseudonyms returns recipient's pseudonyms of the IMSI and the ICCID,
// keyed by a per-recipient key derived from the device secret. An unknown
// identifier (no SIM) gives an empty pseudonym. The privacy package uses this
// to show a recipient what it receives.
func (d *Deriver) Pseudonyms(recipient string, imsi ident.IMSI, iccid ident.ICCID) Pseudonyms {
	rk := d.mac(d.secret[:], labelRecipientKey, recipient)
	var p Pseudonyms
	if !imsi.IsZero() {
		p.IMSI = d.mac(rk, labelIMSI, imsi.Reveal())[:PseudonymSize]
	}
	if !iccid.IsZero() {
		p.ICCID = d.mac(rk, labelICCID, iccid.Reveal())[:PseudonymSize]
	}
	return p
}

// ErrIMEIUEID is returned by IMEIUEID when the IMEI is unknown.
var ErrIMEIUEID = errors.New("attest: no imei for an imei-type ueid")

// IMEIUEID returns the IMEI-type UEID (RFC 9711: type 0x03 followed by the
// 14 digits of TAC and serial number, one byte per digit value, without the
// Luhn check digit or SVN). Use it only where the recipient's policy allows
// the IMEI to be disclosed.
func IMEIUEID(imei ident.IMEI) ([]byte, error) {
	if imei.IsZero() {
		return nil, ErrIMEIUEID
	}
	s := imei.Reveal()
	out := make([]byte, 1, 15)
	out[0] = UEIDTypeIMEI
	for i := 0; i < 14; i++ {
		out = append(out, s[i]-'0')
	}
	return out, nil
}
