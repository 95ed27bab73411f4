package mdtlog

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// readMasterKey returns the master key, or nil if there is none. A key
// another user owns, or that group or others can access, is refused
// (fsutil.ErrUnprotected): the log is only as private as its key.
func readMasterKey(path string) ([]byte, error) {
	b, err := fsutil.ReadPrivateFile(path, 1<<10)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if errors.Is(err, fsutil.ErrUnprotected) {
		return nil, err
	}
	if errors.Is(err, fsutil.ErrTooLarge) {
		return nil, nil // damaged: like a wrong length below
	}
	if err != nil {
		return nil, fmt.Errorf("read mdt key: %w", err)
	}
	if len(b) != masterKeySize {
		// A damaged key opens nothing: treat it as missing, so that the
		// log can still be cleared (Clear destroys the file) and restarted.
		return nil, nil
	}
	return b, nil
}

// createMasterKey writes a fresh random master key to path.
func createMasterKey(path string, rnd io.Reader) ([]byte, error) {
	k := make([]byte, masterKeySize)
	if _, err := io.ReadFull(rnd, k); err != nil {
		return nil, fmt.Errorf("create mdt key: %w", err)
	}
	if err := fsutil.WriteFileAtomic(path, k, 0o600); err != nil {
		return nil, fmt.Errorf("create mdt key: %w", err)
	}
	return k, nil
}

// destroyMasterKey overwrites the key file in place with random bytes,
// syncs, and removes it (the caller syncs the directory). If a crash comes
// before the removal is durable, the file holds random bytes, which open
// nothing. On flash with wear levelling the old bytes may
// survive in spare blocks; see docs/mdt.md for what that means.
func destroyMasterKey(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("destroy mdt key: %w", err)
	}
	junk := make([]byte, masterKeySize)
	_, _ = io.ReadFull(rand.Reader, junk)
	_, werr := f.WriteAt(junk, 0)
	serr := f.Sync()
	f.Close()
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("destroy mdt key: %w", err)
	}
	if werr != nil {
		return true, fmt.Errorf("destroy mdt key: overwrite: %w", werr)
	}
	if serr != nil {
		return true, fmt.Errorf("destroy mdt key: sync: %w", serr)
	}
	return true, nil
}
