package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	for _, content := range []string{"one", "two"} {
		if err := WriteFileAtomic(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != content {
			t.Fatalf("got %q, %v; want %q", b, err, content)
		}
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), nil, 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// A line appended after a torn one (no newline: a write cut short) starts
// on a line of its own.
func TestAppendLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	for _, step := range []struct {
		torn, line, want string
	}{
		{"", `{"a":1}`, "{\"a\":1}\n"},
		{"", `{"b":2}`, "{\"a\":1}\n{\"b\":2}\n"},
		{`{"c":`, `{"d":4}`, "{\"a\":1}\n{\"b\":2}\n{\"c\":\n{\"d\":4}\n"},
	} {
		if step.torn != "" {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(step.torn)
			f.Close()
		}
		if err := AppendLine(p, []byte(step.line), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != step.want {
			t.Fatalf("after %q: %q, want %q", step.line, b, step.want)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", fi.Mode().Perm())
	}
	if err := AppendLine(p, []byte("two\nlines"), 0o600); err == nil {
		t.Fatal("a line with a newline was taken")
	}
}
