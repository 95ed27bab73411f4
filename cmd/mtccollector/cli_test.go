package main

import (
	"strings"
	"testing"

	"github.com/mtcagent/mtcagent/internal/cli"
)

// TestCLIConvention: every command and subcommand prints --help to stdout
// with exit 0 and nothing on stderr; a bad flag is exit 2, the error once
// and a hint, no usage dump.
func TestCLIConvention(t *testing.T) {
	app.Walk(func(path string, c *cli.Command) {
		args := strings.Fields(path)
		code, out, errs := run(t, append(args, "--help")...)
		if code != 0 || errs != "" || !strings.Contains(out, "mtccollector "+path) {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", path, code, out, errs)
		}
		if len(c.Subs) > 0 {
			return
		}
		code, out, errs = run(t, append(args, "--no-such-flag")...)
		want := "mtccollector: error: flag provided but not defined: -no-such-flag\n" +
			"mtccollector: hint: run 'mtccollector " + path + " --help' for its flags\n"
		if code != 2 || out != "" || errs != want {
			t.Errorf("%s --no-such-flag: exit %d, stdout %q, stderr %q; want 2, \"\", %q", path, code, out, errs, want)
		}
	})
}
