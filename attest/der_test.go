package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"

	"github.com/veraison/go-cose"
)

// The hand-written RFC 8410 encodings are byte for byte what crypto/x509
// writes, read what it writes, and refuse every other key.
func TestEd25519DERMatchesX509(t *testing.T) {
	for i := 0; i < 20; i++ {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		want, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		if got := marshalPKCS8(priv); !bytes.Equal(got, want) {
			t.Fatalf("PKCS#8:\n got %x\nwant %x", got, want)
		}
		k, err := ParseDeviceKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: want}))
		if err != nil || !k.(ed25519.PrivateKey).Equal(priv) {
			t.Fatalf("x509's PKCS#8 not read back: %v", err)
		}
		wantPub, _ := x509.MarshalPKIXPublicKey(pub)
		pemPub, err := MarshalPublicKeyPEM(pub)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(pemPub)
		if !bytes.Equal(blk.Bytes, wantPub) {
			t.Fatalf("SPKI:\n got %x\nwant %x", blk.Bytes, wantPub)
		}
		back, err := ParsePublicKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: wantPub}))
		if err != nil || !back.Equal(pub) {
			t.Fatalf("x509's SPKI not read back: %v", err)
		}
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPriv, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPub, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	pub := priv.Public().(ed25519.PublicKey)
	good := marshalPKCS8(priv)
	goodPub := append(append([]byte(nil), spkiEd25519...), pub...)
	for name, der := range map[string][]byte{
		"ECDSA": ecPriv, "truncated": good[:len(good)-1], "trailing byte": append(bytes.Clone(good), 0), "empty": nil,
	} {
		if _, err := ParseDeviceKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); !errors.Is(err, ErrBadKey) {
			t.Errorf("private key %s: want ErrBadKey, got %v", name, err)
		}
	}
	for name, der := range map[string][]byte{
		"ECDSA": ecPub, "truncated": goodPub[:len(goodPub)-1], "trailing byte": append(bytes.Clone(goodPub), 0),
	} {
		if _, err := ParsePublicKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); !errors.Is(err, ErrBadKey) {
			t.Errorf("public key %s: want ErrBadKey, got %v", name, err)
		}
	}
}

// Our EdDSA signer and verifier agree with go-cose's own: the same
// signatures (Ed25519 is deterministic), each verifying the other's.
func TestEdDSAMatchesGoCOSE(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	theirs, _ := cose.NewSigner(cose.AlgorithmEdDSA, priv)
	ours, err := newEdDSASigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("Sig_structure bytes")
	a, _ := theirs.Sign(rand.Reader, msg)
	b, _ := ours.Sign(rand.Reader, msg)
	if !bytes.Equal(a, b) {
		t.Fatal("signatures differ")
	}
	theirV, _ := cose.NewVerifier(cose.AlgorithmEdDSA, pub)
	ourV, err := newEdDSAVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	if theirV.Verify(msg, b) != nil || ourV.Verify(msg, a) != nil {
		t.Fatal("a good signature refused")
	}
	a[0] ^= 1
	if err := ourV.Verify(msg, a); !errors.Is(err, cose.ErrVerification) {
		t.Fatalf("a bad signature: %v", err)
	}
	if _, err := newEdDSAVerifier(pub[:31]); err == nil {
		t.Fatal("a short key accepted")
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := newEdDSASigner(ec); !errors.Is(err, ErrBadKey) {
		t.Fatalf("an ECDSA signer: %v", err)
	}
}
