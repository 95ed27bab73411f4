package attest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// File names inside the state directory.
const (
	DeviceKeyFile    = "device.key"    // Ed25519 private key, PEM PKCS#8, 0600
	DeviceSecretFile = "device.secret" // 32 random bytes for UEIDs and pseudonyms, 0600
	SeqFile          = "seq.bound"     // reserved upper bound of the sequence counter
	BootCountFile    = "bootcount"     // agent starts so far
	BindingFile      = "binding.cbor"  // the remembered UICC–device binding
	lockFile         = "attest.lock"   // flock for read-modify-write of the counters
)

// ErrKeyPermissions is wrapped when a secret file is readable or writable by
// group or others; like ssh, we refuse to use it.
var ErrKeyPermissions = errors.New("unprotected private file")

// PermissionError names the file and its mode.
type PermissionError struct {
	Path string
	Mode fs.FileMode
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("%s: permissions %04o are too open: it must not be accessible by group or others", e.Path, e.Mode.Perm())
}

func (e *PermissionError) Unwrap() error { return ErrKeyPermissions }

// ensureStateDir creates dir with mode 0700 if missing.
func ensureStateDir(dir string) error {
	if dir == "" {
		return errors.New("attest: empty state directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("attest: create state directory: %w", err)
	}
	return nil
}

// readPrivateFile reads a file that must be 0600 (or stricter).
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, &PermissionError{Path: path, Mode: st.Mode()}
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("attest: %s is not a regular file", path)
	}
	if st.Size() > 1<<16 {
		return nil, fmt.Errorf("attest: %s is too large", path)
	}
	buf := make([]byte, st.Size())
	if _, err := readFull(f, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

func readFull(f *os.File, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// createFileExclusive writes a new file that must not exist yet: two
// processes racing to create a key end up with one key, not two.
func createFileExclusive(path string, data []byte, perm fs.FileMode) error {
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
	return fsutil.SyncDir(dir)
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
	return fsutil.SyncDir(filepath.Dir(path))
}

// loadOrCreate returns the content of a private file, creating it with gen
// on first use.
func loadOrCreate(dir, name string, gen func() ([]byte, error)) ([]byte, bool, error) {
	if err := ensureStateDir(dir); err != nil {
		return nil, false, err
	}
	path := filepath.Join(dir, name)
	b, err := readPrivateFile(path)
	if err == nil {
		return b, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	data, err := gen()
	if err != nil {
		return nil, false, err
	}
	if err := createFileExclusive(path, data, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			b, err := readPrivateFile(path)
			return b, false, err
		}
		return nil, false, fmt.Errorf("attest: create %s: %w", path, err)
	}
	return data, true, nil
}
