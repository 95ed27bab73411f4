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

// ErrKeyPermissions is wrapped when a secret file belongs to another user
// or is readable or writable by group or others, or the state directory
// belongs to another user or is writable by group or others; like ssh, we
// refuse to use it. It is fsutil.ErrUnprotected: one check for every
// private file of the agent.
var ErrKeyPermissions = fsutil.ErrUnprotected

// PermissionError names the file or directory, its mode and its owner
// (fsutil's, with Hint for the operator).
type PermissionError = fsutil.PermissionError

// ensureStateDir creates dir with mode 0700 if missing, and refuses one
// that another user owns or that group or others can write.
func ensureStateDir(dir string) error {
	if dir == "" {
		return errors.New("attest: empty state directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("attest: create state directory: %w", err)
	}
	return fsutil.CheckPrivateDir(dir)
}

// readPrivateFile reads a secret file (fsutil.ReadPrivateFile: owner,
// mode 0600 or stricter, regular, at most 64 KiB).
func readPrivateFile(path string) ([]byte, error) {
	return fsutil.ReadPrivateFile(path, 1<<16)
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
	if err := fsutil.CreateExclusive(path, data, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			b, err := readPrivateFile(path)
			return b, false, err
		}
		return nil, false, fmt.Errorf("attest: create %s: %w", path, err)
	}
	return data, true, nil
}
