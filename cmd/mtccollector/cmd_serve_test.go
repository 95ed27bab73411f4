package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestServeUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("[device \"d\"]\npsk = 00\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "--state is required"},
		{[]string{"serve", "--state", dir, "--config", bad}, "bad.conf:"},
		{[]string{"serve", "--state", dir, "--config", bad, "--listen", "nowhere"}, "bad.conf:"},
		{[]string{"serve", "extra"}, "unexpected argument"},
		{[]string{"pin"}, "--state is required"},
		{[]string{"serve", "--state", dir, "--cid-prefix", "0102030405"}, "--cid-prefix"},
		{[]string{"serve", "--state", dir, "--cid-prefix", "zz"}, "--cid-prefix"},
	} {
		code, _, errs := run(t, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}

func TestPin(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	code, out1, errs := run(t, "pin", "--state", dir)
	if code != 0 || !regexp.MustCompile(`^[0-9a-f]{64}\n$`).MatchString(out1) {
		t.Fatalf("exit %d out %q err %q", code, out1, errs)
	}
	if _, out2, _ := run(t, "pin", "--state", dir); out2 != out1 {
		t.Fatal("pin changed between runs")
	}
	fi, err := os.Stat(filepath.Join(dir, "collector.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	os.Chmod(filepath.Join(dir, "collector.key"), 0o644)
	if code, _, errs := run(t, "pin", "--state", dir); code != 1 || !strings.Contains(errs, "chmod 600") {
		t.Fatalf("readable key: exit %d %q", code, errs)
	}
}
