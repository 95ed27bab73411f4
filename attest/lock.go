package attest

import (
	"path/filepath"

	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// lockDir takes an exclusive advisory lock on the state directory's lock
// file, waiting for its holder, so that two processes (the daemon and a
// one-shot command) never reserve the same counter range. The returned
// function releases it.
func lockDir(dir string) (func(), error) {
	f, err := fsutil.LockWait(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}
