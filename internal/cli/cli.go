// Package cli is the command-line frame the two programs share: a command
// table (commands register themselves from their own files, so build tags
// decide which exist), help and version, usage errors with hints, and exit
// statuses a supervisor or a script can act on:
//
//	0  success (and --help)
//	1  runtime failure
//	2  bad usage or bad input
//
// Help (NAME help, NAME CMD --help, NAME CMD SUB --help) goes to stdout with
// status 0. An error is printed once, to stderr, as "NAME: error: ..."
// followed by "NAME: hint: ..." lines, with no usage dump; a bad flag's hint
// points at the command's --help. Subcommands are Command.Subs, dispatched
// here; commands do not parse their own subcommand names.
package cli

import (
	"encoding/json"
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

// Main runs one invocation and returns the exit status. Help (help,
// --help, -h, at any level) goes to stdout with status 0; an error is
// printed once to stderr, with its hints, and nothing else.
func (a *App) Main(env *Env, args []string) int {
	path, c, err := a.dispatch(env, args)
	var hr *helpRequest
	switch {
	case err == nil:
		return 0
	case errors.As(err, &hr):
		a.printHelp(env.Stdout, path, c, hr.fs)
		return 0
	case errors.Is(err, flag.ErrHelp):
		a.printHelp(env.Stdout, path, c, nil)
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

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "--help", "-help":
		return true
	}
	return false
}

// dispatch finds the command args name and runs it; it returns the
// command's path ("mdt status") and the command for help.
func (a *App) dispatch(env *Env, args []string) (string, *Command, error) {
	helpHint := fmt.Sprintf("run '%s help' for the list of commands", a.Name)
	if len(args) == 0 {
		return "", nil, &UsageError{Msg: "no command given", Hint: helpHint}
	}
	switch {
	case isHelp(args[0]):
		a.PrintUsage(env.Stdout)
		return "", nil, nil
	case args[0] == "version" || args[0] == "--version" || args[0] == "-version":
		fmt.Fprintf(env.Stdout, "%s %s\n", a.Name, a.version())
		return "", nil, nil
	}
	c, ok := a.commands[args[0]]
	if !ok {
		return "", nil, &UsageError{Msg: fmt.Sprintf("unknown command %q", args[0]), Hint: helpHint}
	}
	path := c.Name
	args = args[1:]
	for len(c.Subs) > 0 {
		subHint := fmt.Sprintf("run '%s %s --help' for its subcommands", a.Name, path)
		if len(args) > 0 && isHelp(args[0]) {
			a.printHelp(env.Stdout, path, c, nil)
			return path, c, nil
		}
		if len(args) == 0 {
			var names []string
			for _, s := range c.Subs {
				names = append(names, s.Name)
			}
			return path, c, &UsageError{Msg: fmt.Sprintf("%s: want a subcommand (%s)", path, strings.Join(names, ", ")), Hint: subHint}
		}
		var next *Command
		for _, s := range c.Subs {
			if s.Name == args[0] {
				next = s
			}
		}
		if next == nil {
			return path, c, &UsageError{Msg: fmt.Sprintf("%s: unknown subcommand %q", path, args[0]), Hint: subHint}
		}
		c, path, args = next, path+" "+next.Name, args[1:]
	}
	return path, c, c.Run(env, args)
}

// printHelp prints a command's help: its synopsis and summary, then its
// subcommands or its flags.
func (a *App) printHelp(w io.Writer, path string, c *Command, fs *flag.FlagSet) {
	if c == nil {
		a.PrintUsage(w)
		return
	}
	if len(c.Subs) > 0 {
		fmt.Fprintf(w, "%s %s: %s\n\nUsage:\n", a.Name, path, c.Summary)
		a.printSubs(w, path, c)
		fmt.Fprintf(w, "\nRun '%s %s SUBCOMMAND --help' for its flags.\n", a.Name, path)
		return
	}
	fmt.Fprintf(w, "Usage: %s %s %s\n\n%s\n", a.Name, path, c.Args, c.Summary)
	if fs != nil {
		fmt.Fprintf(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// Walk calls fn for every command and subcommand, groups before their
// subcommands, in the order of help.
func (a *App) Walk(fn func(path string, c *Command)) {
	names := make([]string, 0, len(a.commands))
	for n := range a.commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var walk func(path string, c *Command)
	walk = func(path string, c *Command) {
		fn(path, c)
		for _, s := range c.Subs {
			walk(path+" "+s.Name, s)
		}
	}
	for _, n := range names {
		walk(n, a.commands[n])
	}
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

// NewFlags returns a flag set for a command. It prints nothing itself:
// ParseFlags turns a bad flag into one UsageError and --help into help on
// stdout (App.Main prints either).
func (a *App) NewFlags(env *Env, command string) *flag.FlagSet {
	fs := flag.NewFlagSet(a.Name+" "+command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// helpRequest is --help or -h among a command's flags: App.Main prints the
// command's help with these flags to stdout and exits 0.
type helpRequest struct{ fs *flag.FlagSet }

func (*helpRequest) Error() string        { return "help requested" }
func (*helpRequest) Is(target error) bool { return target == flag.ErrHelp }

// flagError is a parse error of fs as a usage error pointing at the
// command's help.
func flagError(fs *flag.FlagSet, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return &helpRequest{fs: fs}
	}
	return &UsageError{Msg: err.Error(), Hint: fmt.Sprintf("run '%s --help' for its flags", fs.Name())}
}

// ParseFlags parses args, flags before positional arguments, and refuses
// more than maxArgs positional arguments; they are then fs.Args().
func ParseFlags(fs *flag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		return flagError(fs, err)
	}
	if fs.NArg() > maxArgs {
		return flagError(fs, fmt.Errorf("unexpected argument %q", fs.Arg(maxArgs)))
	}
	return nil
}

// ParseInterleaved parses args in which flags may also follow positional
// arguments, and returns at most maxArgs positional arguments.
func ParseInterleaved(fs *flag.FlagSet, args []string, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, flagError(fs, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) > maxArgs {
		return nil, flagError(fs, fmt.Errorf("unexpected argument %q", pos[maxArgs]))
	}
	return pos, nil
}

// WriteJSON writes v to w as indented JSON: the --json output of every
// command.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
