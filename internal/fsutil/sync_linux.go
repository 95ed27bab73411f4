//go:build linux && !mtc_test_nosync

package fsutil

import (
	"os"
	"syscall"
)

// Datasync flushes f's data and size to the device (fdatasync: without the
// other metadata, such as the modification time).
func Datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
