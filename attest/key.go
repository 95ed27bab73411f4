package attest

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
)

// ErrBadKey is wrapped when a key file does not hold what it should.
var ErrBadKey = errors.New("bad key")

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
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
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
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: not PKCS#8", ErrBadKey)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: not an Ed25519 key", ErrBadKey)
	}
	return ek, nil
}

// MarshalPublicKeyPEM encodes an Ed25519 public key as a PEM
// SubjectPublicKeyInfo ("PUBLIC KEY").
func MarshalPublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	if _, ok := pub.(ed25519.PublicKey); !ok {
		return nil, fmt.Errorf("%w: device keys are Ed25519", ErrBadKey)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKeyPEM parses a PEM SubjectPublicKeyInfo holding an Ed25519
// key (what `mtcagent key public` prints).
func ParsePublicKeyPEM(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: want a PEM \"PUBLIC KEY\" block", ErrBadKey)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: not a SubjectPublicKeyInfo", ErrBadKey)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: not an Ed25519 public key", ErrBadKey)
	}
	return ek, nil
}
