package qemu

import (
	"bytes"
	"errors"
	"io/fs"
	"reflect"
	"strconv"
	"testing"
)

// readCPIO is a strict newc reader for the test.
func readCPIO(t *testing.T, b []byte) []CPIOEntry {
	t.Helper()
	var out []CPIOEntry
	off := 0
	field := func(i int) uint64 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("header field %d at %d: %v", i, off, err)
		}
		return v
	}
	for {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad magic at %d", off)
		}
		mode, size, rmaj, rmin, nsize := field(1), field(6), field(9), field(10), field(11)
		name := string(b[off+110 : off+110+int(nsize)-1])
		if b[off+110+int(nsize)-1] != 0 {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		off += 110 + int(nsize)
		off += (4 - off%4) % 4
		data := b[off : off+int(size)]
		off += int(size)
		off += (4 - off%4) % 4
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		e := CPIOEntry{Name: name, Mode: fs.FileMode(mode & 0o777), Major: uint32(rmaj), Minor: uint32(rmin)}
		switch mode & 0o170000 {
		case 0o040000:
			e.Mode |= fs.ModeDir
		case 0o020000:
			e.Mode |= fs.ModeDevice | fs.ModeCharDevice
		case 0o100000:
			if len(data) > 0 {
				e.Data = append([]byte{}, data...)
			}
		default:
			t.Fatalf("%s: mode %o", name, mode)
		}
		out = append(out, e)
	}
}

func TestWriteCPIO(t *testing.T) {
	in := []CPIOEntry{
		{Name: "init", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
		{Name: "dev", Mode: fs.ModeDir | 0o755},
		{Name: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Major: 5, Minor: 1},
		{Name: "state", Mode: fs.ModeDir | 0o700},
		{Name: "state/k", Mode: 0o600, Data: []byte("abc")},
		{Name: "e", Mode: 0o644},
	}
	var b bytes.Buffer
	if err := WriteCPIO(&b, in); err != nil {
		t.Fatal(err)
	}
	if b.Len()%4 != 0 {
		t.Errorf("archive length %d not a multiple of 4", b.Len())
	}
	got := readCPIO(t, b.Bytes())
	want := []CPIOEntry{in[1], in[2], in[5], in[0], in[3], in[4]}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back:\n got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"", "/abs", "a\x00b", "TRAILER!!!"} {
		if err := WriteCPIO(&bytes.Buffer{}, []CPIOEntry{{Name: bad, Mode: 0o644}}); !errors.Is(err, ErrCPIOName) {
			t.Errorf("name %q: err %v", bad, err)
		}
	}
	if err := WriteCPIO(&bytes.Buffer{}, []CPIOEntry{{Name: "l", Mode: fs.ModeSymlink}}); err == nil {
		t.Error("symlink accepted")
	}
}
