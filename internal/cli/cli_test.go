package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func testApp() *App {
	v := "1.2.3"
	a := &App{Name: "prog", Title: "a test program", Version: &v}
	a.Register(&Command{Name: "ok", Summary: "succeeds", Run: func(env *Env, args []string) error {
		fs := a.NewFlags(env, "ok")
		n := fs.Int("n", 0, "a number")
		if err := ParseFlags(fs, args, 1); err != nil {
			return err
		}
		if *n < 0 {
			return WithHint(Usagef("-n %d is negative", *n), "give a count")
		}
		return nil
	}})
	a.Register(&Command{Name: "fail", Summary: "fails", Run: func(*Env, []string) error {
		return WithHint(errors.New("disk full"), "free some space\nthen retry")
	}})
	a.Register(&Command{Name: "grp", Subs: []*Command{{Name: "sub", Summary: "a sub", Run: func(env *Env, args []string) error {
		pos, err := ParseInterleaved(a.NewFlags(env, "grp sub"), args, 2)
		if err == nil && len(pos) != 2 {
			err = Usagef("want 2 arguments")
		}
		return err
	}}}})
	return a
}

func TestAppMain(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{nil, 2, "", "prog: error: no command given\nprog: hint: run 'prog help'"},
		{[]string{"help"}, 0, "prog 1.2.3 — a test program", ""},
		{[]string{"version"}, 0, "prog 1.2.3\n", ""},
		{[]string{"nope"}, 2, "", `prog: error: unknown command "nope"`},
		{[]string{"ok", "-n", "3"}, 0, "", ""},
		{[]string{"ok", "-h"}, 0, "Usage: prog ok", ""},
		{[]string{"ok", "--help"}, 0, "-n int", ""},
		{[]string{"ok", "-x"}, 2, "", "prog: error: flag provided but not defined: -x\nprog: hint: run 'prog ok --help' for its flags\n"},
		{[]string{"ok", "a", "b"}, 2, "", `prog: error: unexpected argument "b"`},
		{[]string{"ok", "-n", "-1"}, 2, "", "prog: error: -n -1 is negative\nprog: hint: give a count\n"},
		{[]string{"fail"}, 1, "", "prog: error: disk full\nprog: hint: free some space\nprog: hint: then retry\n"},
		{[]string{"grp"}, 2, "", "prog: error: grp: want a subcommand (sub)\nprog: hint: run 'prog grp --help'"},
		{[]string{"grp", "help"}, 0, "prog grp sub", ""},
		{[]string{"grp", "--help"}, 0, "prog grp sub", ""},
		{[]string{"grp", "sub", "--help"}, 0, "Usage: prog grp sub", ""},
		{[]string{"grp", "x"}, 2, "", `grp: unknown subcommand "x"`},
		{[]string{"grp", "sub", "a", "b"}, 0, "", ""},
		{[]string{"grp", "sub", "a", "b", "c"}, 2, "", `unexpected argument "c"`},
	} {
		var out, errOut bytes.Buffer
		code := testApp().Main(&Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}, tc.args)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.errOut) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out.String(), errOut.String(), tc.code, tc.out, tc.errOut)
		}
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a second command of the same name was taken")
		}
	}()
	a := testApp()
	a.Register(&Command{Name: "ok"})
}

// TestErrorPrintedOnce: a bad flag is one error line and one hint, with no
// usage text, and help never goes to stderr.
func TestErrorPrintedOnce(t *testing.T) {
	for _, args := range [][]string{{"ok", "-x"}, {"grp", "sub", "--bogus"}, {"ok", "a", "b"}} {
		var out, errOut bytes.Buffer
		code := testApp().Main(&Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}, args)
		lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
		if code != 2 || out.Len() != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "prog: error: ") || !strings.HasPrefix(lines[1], "prog: hint: ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out.String(), errOut.String())
		}
	}
	for _, args := range [][]string{{"help"}, {"ok", "-h"}, {"grp", "--help"}, {"grp", "sub", "-help"}} {
		var out, errOut bytes.Buffer
		code := testApp().Main(&Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}, args)
		if code != 0 || out.Len() == 0 || errOut.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out.String(), errOut.String())
		}
	}
}

func TestWalkVisitsEverySubcommand(t *testing.T) {
	var got []string
	testApp().Walk(func(path string, _ *Command) { got = append(got, path) })
	if strings.Join(got, ",") != "fail,grp,grp sub,ok" {
		t.Fatalf("Walk: %q", got)
	}
}
