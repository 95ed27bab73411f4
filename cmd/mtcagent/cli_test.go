package main

import (
	"strings"
	"testing"

	"github.com/mtcagent/mtcagent/internal/cli"
)

// TestCLIConvention holds every command and subcommand to one convention:
// --help (and -h) prints help to stdout, exit 0, nothing on stderr; a bad
// flag is exit 2 with the error once and one hint, and no usage dump.
func TestCLIConvention(t *testing.T) {
	n := 0
	app.Walk(func(path string, c *cli.Command) {
		n++
		args := strings.Fields(path)
		for _, h := range []string{"--help", "-h"} {
			code, out, errs := run(t, append(args, h)...)
			if code != 0 || errs != "" || !strings.Contains(out, "mtcagent "+path) {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q", path, h, code, out, errs)
			}
			if len(c.Subs) == 0 && !strings.Contains(out, "Flags:") {
				t.Errorf("%s %s: no flags listed:\n%s", path, h, out)
			}
		}
		code, out, errs := run(t, append(args, "--no-such-flag")...)
		want := "mtcagent: error: flag provided but not defined: -no-such-flag\n" +
			"mtcagent: hint: run 'mtcagent " + path + " --help' for its flags\n"
		if len(c.Subs) > 0 {
			want = "mtcagent: error: " + path + ": unknown subcommand \"--no-such-flag\"\n" +
				"mtcagent: hint: run 'mtcagent " + path + " --help' for its subcommands\n"
		}
		if code != 2 || out != "" || errs != want {
			t.Errorf("%s --no-such-flag: exit %d, stdout %q, stderr %q; want 2, \"\", %q", path, code, out, errs, want)
		}
	})
	if n < 15 {
		t.Fatalf("walked %d commands: the table is missing some", n)
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"mdt", "help"}} {
		if code, out, errs := run(t, args...); code != 0 || out == "" || errs != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}
