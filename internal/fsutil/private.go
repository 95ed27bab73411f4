package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrUnprotected is wrapped when a private file or directory (the state
// directory, a key, a PSK file) could be read or replaced by someone other
// than the agent's user: it belongs to another user, or its mode lets
// group or others in. Like ssh, the agent refuses to use it.
var ErrUnprotected = errors.New("unprotected private file")

// ErrTooLarge is wrapped when ReadPrivateFile finds more than max bytes.
var ErrTooLarge = errors.New("larger than expected")

// PermissionError names a private path that fails CheckPrivateDir or
// ReadPrivateFile, in the shape of fs.PathError.
type PermissionError struct {
	Path  string
	Mode  fs.FileMode
	Owner int  // uid of the owner (-1 where the platform has none)
	Want  int  // the agent's uid (root is accepted too)
	Dir   bool // a directory, not a file
}

// otherOwner reports whether the owner is neither the agent's user nor root.
func (e *PermissionError) otherOwner() bool {
	return e.Owner >= 0 && e.Owner != e.Want && e.Owner != 0
}

func (e *PermissionError) Error() string {
	switch {
	case e.otherOwner():
		return fmt.Sprintf("%s: owned by uid %d, not by the agent's user (uid %d) or root", e.Path, e.Owner, e.Want)
	case e.Dir:
		return fmt.Sprintf("%s: permissions %04o are too open: the directory must not be writable by group or others", e.Path, e.Mode.Perm())
	}
	return fmt.Sprintf("%s: permissions %04o are too open: it must not be accessible by group or others", e.Path, e.Mode.Perm())
}

func (e *PermissionError) Unwrap() error { return ErrUnprotected }

// Hint is the operator's fix, for a "hint:" line.
func (e *PermissionError) Hint() string {
	switch {
	case e.otherOwner() && e.Dir:
		return fmt.Sprintf("chown %d %s (and check what is in it: another user could have replaced its files)", e.Want, e.Path)
	case e.otherOwner():
		return fmt.Sprintf("chown %d %s, if it is the file you put there; if not, another user replaced it: remove it and re-provision", e.Want, e.Path)
	case e.Dir:
		return fmt.Sprintf("chmod 700 %s (and check what is in it: group or others could have replaced its files)", e.Path)
	}
	return fmt.Sprintf("chmod 600 %s (if anyone else could have read it, treat it as compromised: remove it and re-provision)", e.Path)
}

// CheckPrivateDir checks that dir is a directory that belongs to the
// agent's user (or root) and that group and others cannot write: nobody
// else can replace what the agent keeps in it. Reading is not checked
// (the secrets in it are 0600 themselves). A missing dir is
// fs.ErrNotExist.
func CheckPrivateDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return &fs.PathError{Op: "check", Path: dir, Err: errors.New("not a directory")}
	}
	return checkPrivate(dir, st, 0o022, true)
}

// ReadPrivateFile reads a secret file (a key, a PSK file) that must be a
// regular file of at most max bytes, belong to the agent's user (or
// root), and be neither readable nor writable by group or others. The
// checks are made on the opened file, so a file swapped in between cannot
// slip through.
func ReadPrivateFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkPrivate(path, st, 0o077, false); err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errors.New("not a regular file")}
	}
	if st.Size() > max {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (%d bytes at most)", ErrTooLarge, max)}
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (%d bytes at most)", ErrTooLarge, max)}
	}
	return b, nil
}

func checkPrivate(path string, st fs.FileInfo, deny fs.FileMode, dir bool) error {
	owner, want := fileOwner(st), os.Geteuid()
	e := &PermissionError{Path: path, Mode: st.Mode(), Owner: owner, Want: want, Dir: dir}
	if e.otherOwner() || st.Mode().Perm()&deny != 0 {
		return e
	}
	return nil
}
