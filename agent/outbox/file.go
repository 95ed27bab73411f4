package outbox

import (
	"io"
	"os"

	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// segFile is what the outbox needs of an open segment file. It is an
// *os.File (osFile); tests wrap it to inject write and sync failures
// (ENOSPC, EIO) without a full disk.
type segFile interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Datasync() error
	Close() error
}

type osFile struct{ *os.File }

func (f osFile) Datasync() error { return fsutil.Datasync(f.File) }

// openSeg opens a segment file by name, through o.wrap when a test set it.
func (o *Outbox) openSeg(name string, flag int) (segFile, error) {
	f, err := os.OpenFile(o.path(name), flag, 0)
	if err != nil {
		return nil, err
	}
	return o.wrapFile(name, osFile{f}), nil
}

func (o *Outbox) wrapFile(name string, f segFile) segFile {
	if o.hooks != nil && o.hooks.wrap != nil {
		return o.hooks.wrap(name, f)
	}
	return f
}

// hooks are the fault-injection seam for tests; nil in production.
type hooks struct {
	wrap   func(name string, f segFile) segFile // every segment file opened
	create func(name string) error              // before a segment or the ack file is written
}

func (o *Outbox) hookCreate(name string) error {
	if o.hooks != nil && o.hooks.create != nil {
		return o.hooks.create(name)
	}
	return nil
}

// readAll reads f from offset 0 to its end.
func readAll(f io.ReaderAt) ([]byte, error) {
	var out []byte
	buf := make([]byte, 64<<10)
	for off := int64(0); ; {
		n, err := f.ReadAt(buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
