//go:build !unix

package fsutil

import "os"

// Lock only creates the lock file where flock is not available.
func Lock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

// LockWait only creates the lock file where flock is not available: only
// one process may use the directory at a time there.
func LockWait(path string) (*os.File, error) { return Lock(path) }
