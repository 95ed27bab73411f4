package fsutil

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFaultOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Fault
		hint string
	}{
		{&os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, FaultFull, "disk full: free space in /d"},
		{fmt.Errorf("wrapped: %w", syscall.EDQUOT), FaultFull, "disk full"},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.EROFS}, FaultReadOnly, "read-only file system"},
		{syscall.EIO, FaultIO, "I/O error"},
		{os.ErrNotExist, "", ""},
		{nil, "", ""},
	} {
		if got := FaultOf(c.err); got != c.want {
			t.Errorf("FaultOf(%v) = %q, want %q", c.err, got, c.want)
		}
		if c.want != "" && !strings.HasPrefix(c.want.Hint("/d"), c.hint) {
			t.Errorf("hint %q, want it to start %q", c.want.Hint("/d"), c.hint)
		}
	}
}

func TestFaultLogOnce(t *testing.T) {
	now := time.Unix(0, 0)
	l := &FaultLog{Every: time.Minute, Now: func() time.Time { return now }}
	if ok, n := l.Fail(); !ok || n != 1 {
		t.Fatalf("first failure: %v %d", ok, n)
	}
	for range 100 {
		if ok, _ := l.Fail(); ok {
			t.Fatal("logged again within the interval")
		}
	}
	now = now.Add(time.Minute)
	if ok, n := l.Fail(); !ok || n != 101 {
		t.Fatalf("after the interval: %v %d", ok, n)
	}
	if ok, since := l.Ok(); !ok || !since.Equal(time.Unix(0, 0)) {
		t.Fatalf("Ok = %v %v", ok, since)
	}
	if ok, _ := l.Ok(); ok {
		t.Fatal("recovery reported twice")
	}
	if ok, _ := l.Fail(); !ok {
		t.Fatal("a new fault after recovery not logged")
	}
}
