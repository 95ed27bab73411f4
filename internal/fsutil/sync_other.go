//go:build !linux && !mtc_test_nosync

package fsutil

import "os"

// Datasync flushes f to the device (fsync where there is no fdatasync).
func Datasync(f *os.File) error { return f.Sync() }
