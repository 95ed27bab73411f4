package fsutil

import (
	"errors"
	"sync"
	"syscall"
	"time"
)

// Fault names what kind of storage failure an error is, for a log line an
// operator can act on. It is "" for errors that are not storage faults.
type Fault string

const (
	FaultFull     Fault = "disk full"             // ENOSPC, EDQUOT
	FaultReadOnly Fault = "read-only file system" // EROFS (often a remount after errors)
	FaultIO       Fault = "I/O error"             // EIO: the medium failed
)

// FaultOf classifies err (anywhere in its chain): a full disk, a
// read-only file system or an I/O error; "" when it is none of these.
func FaultOf(err error) Fault {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return FaultFull
	case errors.Is(err, syscall.EROFS):
		return FaultReadOnly
	case errors.Is(err, syscall.EIO):
		return FaultIO
	}
	return ""
}

// Hint is the advice for a fault on the storage holding dir.
func (f Fault) Hint(dir string) string {
	switch f {
	case FaultFull:
		return "disk full: free space in " + dir
	case FaultReadOnly:
		return "read-only file system: " + dir + " was mounted or remounted read-only (check the kernel log)"
	case FaultIO:
		return "I/O error on " + dir + ": the medium may be failing (check the kernel log)"
	}
	return "storage under " + dir + " failed"
}

// FaultLog says once that a store cannot write, not once per write: Fail
// reports true the first time after a success (and again at most every
// Every while the fault lasts, default 10 minutes), Ok reports true once
// when writes work again. It is safe for concurrent use.
type FaultLog struct {
	Every time.Duration
	Now   func() time.Time // default time.Now

	mu     sync.Mutex
	failed bool
	since  time.Time
	last   time.Time
	count  int // failures since the last report
}

// Fail records a failure and says whether to log it now; n is how many
// failures there were since the last one logged (including this one).
func (l *FaultLog) Fail() (log bool, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.count++
	every := l.Every
	if every <= 0 {
		every = 10 * time.Minute
	}
	if !l.failed {
		l.failed, l.since, l.last = true, now, now
		n, l.count = l.count, 0
		return true, n
	}
	if now.Sub(l.last) >= every {
		l.last = now
		n, l.count = l.count, 0
		return true, n
	}
	return false, 0
}

// Ok records a success; it says whether the store had been failing, and
// since when.
func (l *FaultLog) Ok() (recovered bool, since time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failed {
		return false, time.Time{}
	}
	l.failed, l.count = false, 0
	return true, l.since
}

// Failing reports whether the last outcome was a failure.
func (l *FaultLog) Failing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

func (l *FaultLog) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}
