//go:build !unix

package fsutil

import "os"

// Lock only creates the lock file where flock is not available.
func Lock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
