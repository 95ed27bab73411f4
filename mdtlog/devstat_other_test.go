//go:build !linux

package mdtlog

import (
	"errors"
	"testing"
)

type devCounters struct{ writes, bytes, flushes int64 }

func blockDevStat(string) (func() (devCounters, error), error) {
	return nil, errors.New("block device counters are read on Linux only")
}

func ramDir(*testing.B) (func() string, error) {
	return nil, errors.New("tmpfs is looked for on Linux only")
}
