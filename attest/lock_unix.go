//go:build unix

package attest

import (
	"os"
	"syscall"
)

// lockDir takes an exclusive advisory lock on the state directory's lock
// file, so that two processes (the daemon and a one-shot command) never
// reserve the same counter range. The returned function releases it.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(dir+"/"+lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
