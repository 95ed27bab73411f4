package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const otherUID = 12345 // a user that is neither the test's nor root

// chownOther gives path to another user; only root may.
func chownOther(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	if err := os.Lchown(path, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
}

func wantRefused(t *testing.T, err error, path, hint string) {
	t.Helper()
	var pe *PermissionError
	if !errors.Is(err, ErrUnprotected) || !errors.As(err, &pe) {
		t.Fatalf("%s: got %v, want a PermissionError", path, err)
	}
	if pe.Path != path || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if !strings.HasPrefix(pe.Hint(), hint) {
		t.Errorf("hint %q, want it to start with %q", pe.Hint(), hint)
	}
}

func TestCheckPrivateDir(t *testing.T) {
	for _, mode := range []fs.FileMode{0o700, 0o750, 0o755, 0o500} {
		dir := t.TempDir()
		os.Chmod(dir, mode)
		if err := CheckPrivateDir(dir); err != nil {
			t.Errorf("mode %04o refused: %v", mode, err)
		}
	}
	for _, mode := range []fs.FileMode{0o777, 0o770, 0o702, 0o720, 0o1777} {
		dir := t.TempDir()
		os.Chmod(dir, mode)
		wantRefused(t, CheckPrivateDir(dir), dir, "chmod 700 "+dir)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if err := CheckPrivateDir(f); err == nil || errors.Is(err, ErrUnprotected) {
		t.Errorf("a regular file as directory: %v", err)
	}
	if err := CheckPrivateDir(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

func TestCheckPrivateDirOtherOwner(t *testing.T) {
	dir := t.TempDir()
	chownOther(t, dir)
	wantRefused(t, CheckPrivateDir(dir), dir, "chown ")
}

func TestReadPrivateFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	os.WriteFile(p, []byte("secret"), 0o600)
	if b, err := ReadPrivateFile(p, 64); err != nil || string(b) != "secret" {
		t.Fatalf("0600: %q %v", b, err)
	}
	os.Chmod(p, 0o400)
	if _, err := ReadPrivateFile(p, 64); err != nil {
		t.Fatalf("0400: %v", err)
	}
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o620, 0o602, 0o660} {
		os.Chmod(p, mode)
		_, err := ReadPrivateFile(p, 64)
		wantRefused(t, err, p, "chmod 600 "+p)
		if !strings.Contains(err.Error(), "too open") {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	os.Chmod(p, 0o600)
	if _, err := ReadPrivateFile(p, 3); !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnprotected) {
		t.Errorf("over the size bound: %v", err)
	}
	if _, err := ReadPrivateFile(dir, 64); err == nil {
		t.Error("a directory read as a private file")
	}
	if _, err := ReadPrivateFile(filepath.Join(dir, "missing"), 64); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

// A key another user replaced (or owns) is refused, also behind a symlink.
func TestReadPrivateFileOtherOwner(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	os.WriteFile(p, []byte("secret"), 0o600)
	chownOther(t, p)
	_, err := ReadPrivateFile(p, 64)
	wantRefused(t, err, p, "chown ")
	if !strings.Contains(err.Error(), "owned by uid 12345") {
		t.Errorf("error %q does not say who owns it", err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(p, link)
	_, err = ReadPrivateFile(link, 64)
	wantRefused(t, err, link, "chown ")
}
