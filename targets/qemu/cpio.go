package qemu

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
)

// CPIOEntry is one file of an initramfs.
type CPIOEntry struct {
	Name  string      // path without leading '/', e.g. "dev/console"
	Mode  fs.FileMode // permission bits plus fs.ModeDir / fs.ModeCharDevice
	Data  []byte      // regular files only
	Major uint32      // device nodes only
	Minor uint32
}

// ErrCPIOName is a name the newc format cannot hold here.
var ErrCPIOName = errors.New("cpio: bad entry name")

// WriteCPIO writes entries as a newc ("070701") archive, the format the
// Linux kernel unpacks as an initramfs. Entries are written in name order,
// so parents come before children; all are owned by root.
func WriteCPIO(w io.Writer, entries []CPIOEntry) error {
	es := append([]CPIOEntry(nil), entries...)
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	for i, e := range es {
		if e.Name == "" || strings.HasPrefix(e.Name, "/") || strings.Contains(e.Name, "\x00") || e.Name == "TRAILER!!!" {
			return fmt.Errorf("%w: %q", ErrCPIOName, e.Name)
		}
		mode := uint32(e.Mode.Perm())
		switch {
		case e.Mode.IsDir():
			mode |= 0o040000
		case e.Mode&fs.ModeCharDevice != 0:
			mode |= 0o020000
		case e.Mode.IsRegular():
			mode |= 0o100000
		default:
			return fmt.Errorf("cpio: %s: unsupported file type %v", e.Name, e.Mode.Type())
		}
		if err := writeCPIOHeader(w, uint32(i+1), mode, e, len(e.Data)); err != nil {
			return err
		}
		if _, err := w.Write(e.Data); err != nil {
			return err
		}
		if err := pad4(w, len(e.Data)); err != nil {
			return err
		}
	}
	return writeCPIOHeader(w, 0, 0, CPIOEntry{Name: "TRAILER!!!"}, 0)
}

func writeCPIOHeader(w io.Writer, ino, mode uint32, e CPIOEntry, size int) error {
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, e.Major, e.Minor, len(e.Name)+1, 0)
	if _, err := io.WriteString(w, hdr+e.Name+"\x00"); err != nil {
		return err
	}
	return pad4(w, len(hdr)+len(e.Name)+1)
}

func pad4(w io.Writer, n int) error {
	if r := n % 4; r != 0 {
		_, err := w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}
