package main

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/internal/cli"
	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/mdtlog"
)

// stateHint gives a failure to use the state directory the hint that fits
// its cause: a refused private file or directory (owner, mode), a lock
// held by another process, a read-only or full file system, no write
// permission. A read-only directory is not "another mtcagent running".
func stateHint(err error, stateDir string) error {
	var pe *fsutil.PermissionError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		if !pe.Dir {
			err = fmt.Errorf("UNPROTECTED PRIVATE FILE: %w", err)
		}
		return cli.WithHint(err, pe.Hint())
	case errors.Is(err, outbox.ErrLocked):
		return cli.WithHint(err, "is another mtcagent running with this --state-dir? stop it first")
	case errors.Is(err, mdtlog.ErrLocked):
		return cli.WithHint(err, "is another mtcagent running, or an 'mtcagent mdt' command? stop it first")
	case errors.Is(err, syscall.EROFS):
		return cli.WithHint(err, fmt.Sprintf("the file system holding %s is mounted read-only: remount it read-write, or choose another --state-dir", stateDir))
	case errors.Is(err, syscall.ENOSPC):
		return cli.WithHint(err, fmt.Sprintf("the file system holding %s is full: free some space", stateDir))
	case errors.Is(err, fs.ErrPermission):
		return cli.WithHint(err, fmt.Sprintf("the agent's user may not write in %s: check its owner and mode (ls -ld %s), or choose another --state-dir", stateDir, stateDir))
	case errors.Is(err, syscall.ENOTDIR):
		return cli.WithHint(err, fmt.Sprintf("%s, or a directory above it, is not a directory: choose another --state-dir", stateDir))
	}
	return cli.WithHint(err, fmt.Sprintf("check --state-dir %s: it must belong to the agent's user, be writable by it and not by group or others", stateDir))
}
