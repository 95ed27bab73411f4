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
	f, err := lock(path, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, ErrLocked
	}
	return f, err
}

// LockWait is Lock that waits for the holder to let go instead of failing:
// for short critical sections shared by processes (a read-modify-write of
// a counter file), not for long-lived ownership.
func LockWait(path string) (*os.File, error) {
	return lock(path, syscall.LOCK_EX)
}

func lock(path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
