//go:build unix

package fsutil

import (
	"io/fs"
	"syscall"
)

// fileOwner is the uid that owns st's file.
func fileOwner(st fs.FileInfo) int {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid)
	}
	return -1
}
