// Package fsutil holds the few file operations whose crash behaviour the
// agent's durable state depends on: replacing a file atomically, making a
// directory's entries durable, appending a line to a log, flushing a
// file's data, creating a file exclusively (one winner of a race), and
// locking a directory against a second process; and the
// one check of private files and directories (CheckPrivateDir,
// ReadPrivateFile: owner and mode) that every secret of the agent is read
// through.
package fsutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrLocked is returned by Lock when another process (or another open file
// in this one) holds the lock.
var ErrLocked = errors.New("fsutil: locked by another holder")

// WriteFileAtomic replaces path with data via a temporary file in the same
// directory (named "."+base+".tmp*"): write, fsync, rename, fsync the
// directory. After a power cut the file holds the old or the new content,
// never a mix; on error the temporary file is removed.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	return WriteAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteAtomic is WriteFileAtomic for content streamed by write: the file
// has mode perm before the first byte is written, and appears at path, in
// full, only if write succeeds.
func WriteAtomic(path string, perm fs.FileMode, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if err := write(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so that creations, renames and removals in it
// are durable. File systems that cannot sync a directory (EINVAL) are
// accepted.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, fs.ErrInvalid) {
		return nil
	}
	return err
}

// AppendLine appends line and a newline to the file at path (created with
// perm), and fsyncs it before returning nil. If the file ends in part of a
// line (a write cut short by a power loss), a newline is written first:
// the torn line stays one bad line that readers skip, instead of swallowing
// this one. line must not contain a newline.
func AppendLine(path string, line []byte, perm fs.FileMode) error {
	if bytes.IndexByte(line, '\n') >= 0 {
		return fmt.Errorf("append to %s: the line contains a newline", filepath.Base(path))
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, perm)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(line)+2)
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], st.Size()-1); err == nil && last[0] != '\n' {
			buf = append(buf, '\n')
		}
	}
	buf = append(append(buf, line...), '\n')
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
