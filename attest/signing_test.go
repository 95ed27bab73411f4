package attest

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenSigning(t *testing.T) {
	dir := t.TempDir()
	open := func(o SigningOptions) Signing {
		t.Helper()
		s, err := OpenSigning(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Counter.Close() })
		return s
	}
	s := open(SigningOptions{CountBoot: true})
	if !s.KeyCreated || s.Boot != 1 || s.Deriver == nil || s.Issuer == nil {
		t.Fatalf("first open: created %v, boot %d", s.KeyCreated, s.Boot)
	}
	s.Counter.Close()
	// A command (CountBoot false) signs with the daemon's count, and the
	// same key.
	s2 := open(SigningOptions{})
	if s2.KeyCreated || s2.Boot != 1 || !s2.Key.Public().(ed25519.PublicKey).Equal(s.Key.Public()) {
		t.Fatalf("second open: created %v, boot %d", s2.KeyCreated, s2.Boot)
	}
	s2.Counter.Close()
	// A given signer replaces the key file.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	if s3 := open(SigningOptions{Signer: priv, CountBoot: true}); s3.Boot != 2 || !pub.Equal(s3.Key.Public()) {
		t.Fatalf("given signer: boot %d", s3.Boot)
	} else {
		s3.Counter.Close()
	}
	// A damaged counter file is a *CounterError, never a restart at 1.
	os.WriteFile(filepath.Join(dir, SeqFile), []byte("garbage\n"), 0o600)
	var ce *CounterError
	if _, err := OpenSigning(dir, SigningOptions{}); !errors.As(err, &ce) || !errors.Is(err, ErrCounterCorrupt) {
		t.Fatalf("damaged counter: %v", err)
	}
	os.Remove(filepath.Join(dir, SeqFile))
	os.WriteFile(filepath.Join(dir, BootCountFile), []byte("garbage\n"), 0o600)
	if _, err := OpenSigning(dir, SigningOptions{CountBoot: true}); !errors.As(err, &ce) {
		t.Fatalf("damaged boot count: %v", err)
	}
}
