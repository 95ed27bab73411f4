//go:build !unix

package outbox

import "os"

// lockFile only creates the lock file where flock is not available.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, &FileError{Op: "lock", Name: lockName, Err: err}
	}
	return f, nil
}
