package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCreateExclusive(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := CreateExclusive(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CreateExclusive(p, []byte("two"), 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second create: %v", err)
	}
	// The fallback for file systems without hard links.
	q := filepath.Join(dir, "g")
	if err := createInPlace(q, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := createInPlace(q, []byte("two"), 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second in-place create: %v", err)
	}
	for _, f := range []string{p, q} {
		b, _ := os.ReadFile(f)
		st, _ := os.Stat(f)
		if string(b) != "one" || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %q mode %o", f, b, st.Mode().Perm())
		}
	}
	// No temporary files left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("%d entries in dir, want 2", len(ents))
	}
}
