package config

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	f, err := Parse("a.conf", `
# top comment
[agent]
modem = auto   # trailing
state_dir = "/var/lib/mtc agent"

[recipient "operator"]
status = full
location = "region:2km # not a comment"
`)
	if err != nil {
		t.Fatal(err)
	}
	a := f.Section("agent")
	if e, _ := a.Get("modem"); e.Value != "auto" || e.Line != 4 {
		t.Errorf("modem = %+v", e)
	}
	if e, _ := a.Get("state_dir"); e.Value != "/var/lib/mtc agent" {
		t.Errorf("state_dir = %+v", e)
	}
	r := f.All("recipient")
	if len(r) != 1 || r[0].Label != "operator" {
		t.Fatalf("recipients = %+v", r)
	}
	if e, _ := r[0].Get("location"); e.Value != "region:2km # not a comment" {
		t.Errorf("location = %q", e.Value)
	}
	if err := r[0].Unknown("status"); err == nil || !strings.Contains(err.Error(), "a.conf:9: unknown key \"location\"") {
		t.Errorf("Unknown: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"x = 1", "c:1: key \"x\" outside any [section]"},
		{"[a]\nnovalue", "c:2: expected key = value"},
		{"[a\n", "c:1: section header without ']'"},
		{"[a b]", "c:1: section label must be a non-empty quoted string"},
		{"[a]\nk = \"open", "c:2: unterminated quoted value"},
		{"[a]\nk = 1\nk = 2", "c:3: \"k\" set twice in [a] (first on line 2)"},
		{"[A]", "c:1: invalid section name"},
	} {
		_, err := Parse("c", tc.in)
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("[agent]\nmodem = auto\n[recipient \"x\"]\nk = \"v\" # c\n")
	f.Fuzz(func(t *testing.T, s string) {
		Parse("fuzz", s)
	})
}

func TestOnOff(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
		err  string
	}{{"on", true, ""}, {"off", false, ""}, {"yes", false, `gnss "yes": want on or off`}, {"On", false, "want on or off"}} {
		got, err := Entry{Key: "gnss", Value: tc.v}.OnOff()
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %v %v", tc.v, got, err)
		}
	}
}
