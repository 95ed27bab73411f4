//go:build !unix

package attest

// lockDir is a no-op where flock is missing: only one process may use the
// state directory at a time there.
func lockDir(dir string) (func(), error) { return func() {}, nil }
