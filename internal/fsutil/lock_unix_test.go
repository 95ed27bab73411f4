//go:build unix

package fsutil

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	a, err := Lock(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(p); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	a.Close()
	b, err := Lock(p)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	b.Close()
	if _, err := Lock(filepath.Join(t.TempDir(), "missing", "lock")); err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("lock in a missing directory: %v", err)
	}
}
