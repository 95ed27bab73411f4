package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// CreateExclusive writes a new file that must not exist yet, in full or
// not at all: two processes racing to create a key end up with one key,
// not two, and the loser gets an error wrapping fs.ErrExist. The data is
// written to a temporary file and hard-linked into place; where the file
// system has no hard links (vfat, some overlays) it is created in place
// with O_EXCL and removed again if writing it fails.
func CreateExclusive(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name)
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(name, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err // another process won the race
		}
		// No hard links here (vfat, some overlays): create in place.
		return createInPlace(path, data, perm)
	}
	return SyncDir(dir)
}

func createInPlace(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}
