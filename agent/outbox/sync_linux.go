package outbox

import (
	"os"
	"syscall"
)

// datasync flushes f's data and size (fdatasync includes the size).
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
