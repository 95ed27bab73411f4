//go:build !linux

package mdtlog

import "os"

func datasync(f *os.File) error { return f.Sync() }
