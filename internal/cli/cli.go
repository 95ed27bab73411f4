// Package cli is the command-line frame the two programs share: a command
// table (commands register themselves from their own files, so build tags
// decide which exist), help and version, usage errors with hints, and exit
// statuses a supervisor or a script can act on:
//
//	0  success (and --help)
//	1  runtime failure
//	2  bad usage or bad input
//
// Errors go to stderr as "NAME: error: ..." followed by "NAME: hint: ..."
// lines.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Env is what a command may touch of the outside world; tests replace it.
type Env struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	Getenv         func(string) string
}

// OSEnv is the process's own environment.
func OSEnv() *Env {
	return &Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin, Getenv: os.Getenv}
}

// Command is a command, or a group whose first argument names one of Subs.
type Command struct {
	Name    string
	Args    string // synopsis after the name, e.g. "[--json] [--modem SPEC]"
	Summary string
	Run     func(env *Env, args []string) error
	Subs    []*Command
}

// App is a program's command table.
type App struct {
	Name     string  // program name, in messages and help
	Title    string  // what the program is, on the first line of help
	Version  *string // set at build time (-ldflags -X)
	commands map[string]*Command
}

// Register adds a command; a second one of the same name is a programming
// error.
func (a *App) Register(c *Command) {
	if a.commands == nil {
		a.commands = map[string]*Command{}
	}
	if _, dup := a.commands[c.Name]; dup {
		panic(a.Name + ": duplicate command " + c.Name)
	}
	a.commands[c.Name] = c
}

// Lookup returns the registered command called name.
func (a *App) Lookup(name string) (*Command, bool) {
	c, ok := a.commands[name]
	return c, ok
}

// UsageError is bad usage or bad input: exit status 2.
type UsageError struct{ Msg, Hint string }

func (e *UsageError) Error() string { return e.Msg }

// hintError carries an operator-facing hint with a runtime failure.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, a ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, a...)}
}

// WithHint attaches a hint line (or lines) to err, keeping its exit status.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		return &UsageError{Msg: ue.Msg, Hint: hint}
	}
	return &hintError{err: err, hint: hint}
}

// Main runs one invocation and returns the exit status.
func (a *App) Main(env *Env, args []string) int {
	err := a.dispatch(env, args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(env.Stderr, "%s: error: %s\n", a.Name, err)
	var hint string
	var ue *UsageError
	var he *hintError
	switch {
	case errors.As(err, &ue):
		hint = ue.Hint
	case errors.As(err, &he):
		hint = he.hint
	}
	if hint != "" {
		for _, line := range strings.Split(hint, "\n") {
			fmt.Fprintf(env.Stderr, "%s: hint: %s\n", a.Name, line)
		}
	}
	if ue != nil {
		return 2
	}
	return 1
}

func (a *App) version() string {
	if a.Version == nil {
		return "dev"
	}
	return *a.Version
}

func (a *App) dispatch(env *Env, args []string) error {
	helpHint := fmt.Sprintf("run '%s help' for the list of commands", a.Name)
	if len(args) == 0 {
		a.PrintUsage(env.Stderr)
		return &UsageError{Msg: "no command given", Hint: helpHint}
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		a.PrintUsage(env.Stdout)
		return nil
	case "version", "--version", "-version":
		fmt.Fprintf(env.Stdout, "%s %s\n", a.Name, a.version())
		return nil
	}
	c, ok := a.commands[args[0]]
	if !ok {
		return &UsageError{Msg: fmt.Sprintf("unknown command %q", args[0]), Hint: helpHint}
	}
	path := c.Name
	args = args[1:]
	for len(c.Subs) > 0 {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			if len(args) > 0 {
				a.printSubs(env.Stdout, path, c)
				return nil
			}
			var names []string
			for _, s := range c.Subs {
				names = append(names, s.Name)
			}
			return &UsageError{Msg: fmt.Sprintf("%s: want a subcommand (%s)", path, strings.Join(names, ", "))}
		}
		var next *Command
		for _, s := range c.Subs {
			if s.Name == args[0] {
				next = s
			}
		}
		if next == nil {
			return &UsageError{Msg: fmt.Sprintf("%s: unknown subcommand %q", path, args[0]), Hint: helpHint}
		}
		c, path, args = next, path+" "+next.Name, args[1:]
	}
	return c.Run(env, args)
}

func (a *App) printSubs(w io.Writer, path string, c *Command) {
	for _, s := range c.Subs {
		if len(s.Subs) > 0 {
			a.printSubs(w, path+" "+s.Name, s)
			continue
		}
		fmt.Fprintf(w, "  %s %s %s %s\n      %s\n", a.Name, path, s.Name, s.Args, s.Summary)
	}
}

// PrintUsage prints the command list.
func (a *App) PrintUsage(w io.Writer) {
	fmt.Fprintf(w, "%s %s — %s\n\nUsage:\n", a.Name, a.version(), a.Title)
	names := make([]string, 0, len(a.commands))
	for n := range a.commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := a.commands[n]
		if len(c.Subs) > 0 {
			a.printSubs(w, c.Name, c)
			continue
		}
		fmt.Fprintf(w, "  %s %s %s\n      %s\n", a.Name, c.Name, c.Args, c.Summary)
	}
	fmt.Fprintf(w, "  %s version\n\nRun '%s COMMAND --help' for a command's flags.\n", a.Name, a.Name)
}

// NewFlags returns a flag set for a command whose errors and help go to
// env.Stderr.
func (a *App) NewFlags(env *Env, command string) *flag.FlagSet {
	fs := flag.NewFlagSet(a.Name+" "+command, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// ParseFlags parses args, flags before positional arguments, and refuses
// more than maxArgs positional arguments; they are then fs.Args().
func ParseFlags(fs *flag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{Msg: err.Error()}
	}
	if fs.NArg() > maxArgs {
		return Usagef("unexpected argument %q", fs.Arg(maxArgs))
	}
	return nil
}

// ParseInterleaved parses args in which flags may also follow positional
// arguments, and returns at most maxArgs positional arguments.
func ParseInterleaved(fs *flag.FlagSet, args []string, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &UsageError{Msg: err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) > maxArgs {
		return nil, Usagef("unexpected argument %q", pos[maxArgs])
	}
	return pos, nil
}
