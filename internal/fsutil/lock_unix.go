//go:build unix

package fsutil

import (
	"errors"
	"os"
	"syscall"
)

// Lock takes an exclusive, non-blocking flock on path (created if needed)
// and returns the open file that holds it; closing the file releases it,
// and so does the death of the process, however it dies. It returns
// ErrLocked when another holder has it.
func Lock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return f, nil
}
