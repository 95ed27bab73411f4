package attest

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
)

// ErrBadKey is wrapped when a key file does not hold what it should.
var ErrBadKey = errors.New("bad key")

// The DER of Ed25519 keys (RFC 8410, OID 1.3.101.112) is fixed but for the
// 32 key bytes at its end: a PKCS#8 v1 PrivateKeyInfo holding the seed as
// an OCTET STRING in an OCTET STRING, and a SubjectPublicKeyInfo holding
// the public key as a BIT STRING. These are the forms crypto/x509 and
// OpenSSL write; reading and writing them here keeps crypto/x509 (and with
// it RSA, ECDSA and every NIST curve) out of the small router build.
var (
	pkcs8Ed25519 = []byte{0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20}
	spkiEd25519  = []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}
)

func marshalPKCS8(k ed25519.PrivateKey) []byte {
	return append(append([]byte(nil), pkcs8Ed25519...), k.Seed()...)
}

// LoadOrCreateDeviceKey returns the device's Ed25519 key from
// <stateDir>/device.key, generating it (0600, directory 0700) on first use.
// It refuses a key file that group or others can access (ErrKeyPermissions).
// created reports whether the key was just generated.
func LoadOrCreateDeviceKey(stateDir string) (key crypto.Signer, created bool, err error) {
	b, created, err := loadOrCreate(stateDir, DeviceKeyFile, func() ([]byte, error) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: marshalPKCS8(priv)}), nil
	})
	if err != nil {
		return nil, false, err
	}
	k, err := ParseDeviceKeyPEM(b)
	if err != nil {
		return nil, false, fmt.Errorf("attest: %s: %w", filepath.Join(stateDir, DeviceKeyFile), err)
	}
	return k, created, nil
}

// ParseDeviceKeyPEM parses a PEM PKCS#8 Ed25519 private key.
func ParseDeviceKeyPEM(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: want a PEM \"PRIVATE KEY\" block", ErrBadKey)
	}
	seed, ok := bytes.CutPrefix(blk.Bytes, pkcs8Ed25519)
	if !ok || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: not an Ed25519 PKCS#8 key (RFC 8410)", ErrBadKey)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// MarshalPublicKeyPEM encodes an Ed25519 public key as a PEM
// SubjectPublicKeyInfo ("PUBLIC KEY").
func MarshalPublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	if _, ok := pub.(ed25519.PublicKey); !ok {
		return nil, fmt.Errorf("%w: device keys are Ed25519", ErrBadKey)
	}
	der := append(append([]byte(nil), spkiEd25519...), pub.(ed25519.PublicKey)...)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKeyPEM parses a PEM SubjectPublicKeyInfo holding an Ed25519
// key (what `mtcagent key public` prints).
func ParsePublicKeyPEM(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: want a PEM \"PUBLIC KEY\" block", ErrBadKey)
	}
	k, ok := bytes.CutPrefix(blk.Bytes, spkiEd25519)
	if !ok || len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: not an Ed25519 SubjectPublicKeyInfo (RFC 8410)", ErrBadKey)
	}
	return ed25519.PublicKey(bytes.Clone(k)), nil
}
