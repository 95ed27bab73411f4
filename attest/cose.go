package attest

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"

	"github.com/veraison/go-cose"
)

// eddsaSigner and eddsaVerifier are go-cose's Signer and Verifier for the
// one algorithm tokens use, EdDSA over Ed25519 (alg -8: the ToBeSigned
// bytes are signed as they are, no pre-hash). go-cose's own constructors
// choose among every algorithm it knows, so calling them links ECDSA, RSA
// and every NIST curve into the device binary; these keep the small
// router build (docs/size.md) to Ed25519.
type eddsaSigner struct{ key crypto.Signer }

func newEdDSASigner(key crypto.Signer) (cose.Signer, error) {
	if key == nil {
		return nil, errors.New("no key")
	}
	if _, ok := key.Public().(ed25519.PublicKey); !ok {
		return nil, fmt.Errorf("%w: device keys are Ed25519", ErrBadKey)
	}
	return eddsaSigner{key}, nil
}

func (eddsaSigner) Algorithm() cose.Algorithm { return cose.AlgorithmEdDSA }

func (s eddsaSigner) Sign(rand io.Reader, content []byte) ([]byte, error) {
	return s.key.Sign(rand, content, crypto.Hash(0))
}

type eddsaVerifier struct{ key ed25519.PublicKey }

func newEdDSAVerifier(key ed25519.PublicKey) (cose.Verifier, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: an Ed25519 public key has %d bytes, not %d", ErrBadKey, ed25519.PublicKeySize, len(key))
	}
	return eddsaVerifier{key}, nil
}

func (eddsaVerifier) Algorithm() cose.Algorithm { return cose.AlgorithmEdDSA }

func (v eddsaVerifier) Verify(content, signature []byte) error {
	if !ed25519.Verify(v.key, content, signature) {
		return cose.ErrVerification
	}
	return nil
}
