package mdtlog

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// devCounters is what the kernel counted for one block device: write
// requests carrying data, bytes written and cache flushes
// (/sys/block/*/stat, fields 5, 7 and 16). The kernel counts each flush
// among the write requests too (an empty write); writes excludes them.
type devCounters struct{ writes, bytes, flushes int64 }

// blockDevStat returns a reader of the counters of the block device that
// holds dir, or an error when there is none to read (tmpfs, overlayfs, a
// kernel without flush accounting).
func blockDevStat(dir string) (func() (devCounters, error), error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, err
	}
	path := fmt.Sprintf("/sys/dev/block/%d:%d/stat", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)))
	read := func() (devCounters, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return devCounters{}, err
		}
		f := strings.Fields(string(b))
		if len(f) < 17 {
			return devCounters{}, fmt.Errorf("%s: %d fields, want 17 (no flush accounting)", path, len(f))
		}
		var v [3]int64
		for i, k := range []int{4, 6, 15} {
			if v[i], err = strconv.ParseInt(f[k], 10, 64); err != nil {
				return devCounters{}, fmt.Errorf("%s: %w", path, err)
			}
		}
		return devCounters{writes: v[0] - v[2], bytes: v[1] * 512, flushes: v[2]}, nil
	}
	if _, err := read(); err != nil {
		return nil, err
	}
	return read, nil
}

// ramDir returns a maker of temporary directories on /dev/shm, removed
// when the benchmark ends, or an error when /dev/shm is not tmpfs.
func ramDir(b *testing.B) (func() string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil {
		return nil, err
	}
	if st.Type != unix.TMPFS_MAGIC {
		return nil, fmt.Errorf("/dev/shm is not tmpfs (type %#x)", st.Type)
	}
	return func() string {
		d, err := os.MkdirTemp("/dev/shm", "mdtlog-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		return d
	}, nil
}
