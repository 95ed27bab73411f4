package attest

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDeviceKeyCreateReloadAndPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	k1, created, err := LoadOrCreateDeviceKey(dir)
	if err != nil || !created {
		t.Fatalf("create: %v created=%v", err, created)
	}
	st, err := os.Stat(filepath.Join(dir, DeviceKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %o, want 600", st.Mode().Perm())
	}
	if dst, _ := os.Stat(dir); dst.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %o, want 700", dst.Mode().Perm())
	}
	k2, created, err := LoadOrCreateDeviceKey(dir)
	if err != nil || created {
		t.Fatalf("reload: %v created=%v", err, created)
	}
	if !k1.Public().(ed25519.PublicKey).Equal(k2.Public()) {
		t.Fatal("reloaded key differs")
	}
	pemPub, err := MarshalPublicKeyPEM(k1.Public())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pemPub, []byte("-----BEGIN PUBLIC KEY-----\n")) {
		t.Fatal("public key PEM header")
	}
	back, err := ParsePublicKeyPEM(pemPub)
	if err != nil || !back.Equal(k1.Public()) {
		t.Fatalf("public PEM round trip: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(filepath.Join(dir, DeviceKeyFile), mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateDeviceKey(dir)
		var pe *PermissionError
		if !errors.Is(err, ErrKeyPermissions) || !errors.As(err, &pe) || !strings.Contains(err.Error(), "too open") {
			t.Fatalf("mode %o: got %v, want a PermissionError", mode, err)
		}
	}
}

func TestDeviceKeyBadFiles(t *testing.T) {
	for _, c := range []struct{ name, content string }{
		{"empty", ""},
		{"not pem", "hello"},
		{"public block", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
		{"bad der", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, DeviceKeyFile), []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, _, err := LoadOrCreateDeviceKey(dir); !errors.Is(err, ErrBadKey) {
				t.Fatalf("got %v, want ErrBadKey", err)
			}
		})
	}
	if _, err := ParsePublicKeyPEM([]byte("nope")); !errors.Is(err, ErrBadKey) {
		t.Fatal("bad public PEM accepted")
	}
}

func TestDeviceSecretPermissions(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateDeriver(dir); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, DeviceSecretFile), 0o644)
	if _, err := LoadOrCreateDeriver(dir); !errors.Is(err, ErrKeyPermissions) {
		t.Fatalf("lax secret accepted: %v", err)
	}
}
