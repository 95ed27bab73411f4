// Command mtccollector is the network-side reference service that mtcagent
// devices report to. It is not shipped to devices.
//
// Commands live in files of their own (cmd_*.go) and register themselves in
// init; a command may have subcommands (e.g. "suci decode"). Exit status: 0
// success, 1 runtime failure, 2 bad usage or bad input; messages on stderr as
// "mtccollector: error: ..." with "mtccollector: hint: ..." lines.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is a command or a subcommand. A command with subs dispatches on
// its first argument; otherwise run gets the arguments after its name.
type command struct {
	name    string
	args    string // synopsis after the name
	summary string
	run     func(env *cmdEnv, args []string) error
	subs    []*command
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("mtccollector: duplicate command " + c.name)
	}
	commands[c.name] = c
}

// cmdEnv is what a command may touch of the outside world; tests replace it.
type cmdEnv struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
}

// usageError is bad usage or bad input: exit status 2.
type usageError struct{ msg, hint string }

func (e *usageError) Error() string { return e.msg }

// hintError carries an operator-facing hint with a runtime failure.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// withHint attaches a hint line to err.
func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return &usageError{msg: ue.msg, hint: hint}
	}
	return &hintError{err: err, hint: hint}
}

func main() {
	env := &cmdEnv{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.Getenv}
	os.Exit(runMain(env, os.Args[1:]))
}

// runMain runs one invocation and returns the exit status.
func runMain(env *cmdEnv, args []string) int {
	err := dispatch(env, args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(env.stderr, "mtccollector: error: %s\n", err)
	var hint string
	var ue *usageError
	var he *hintError
	switch {
	case errors.As(err, &ue):
		hint = ue.hint
	case errors.As(err, &he):
		hint = he.hint
	}
	if hint != "" {
		for _, line := range strings.Split(hint, "\n") {
			fmt.Fprintf(env.stderr, "mtccollector: hint: %s\n", line)
		}
	}
	if ue != nil {
		return 2
	}
	return 1
}

func dispatch(env *cmdEnv, args []string) error {
	if len(args) == 0 {
		printUsage(env.stderr)
		return &usageError{msg: "no command given", hint: "run 'mtccollector help' for the list of commands"}
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		printUsage(env.stdout)
		return nil
	case "version", "--version", "-version":
		fmt.Fprintf(env.stdout, "mtccollector %s\n", version)
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		return &usageError{msg: fmt.Sprintf("unknown command %q", args[0]), hint: "run 'mtccollector help' for the list of commands"}
	}
	path := c.name
	args = args[1:]
	for len(c.subs) > 0 {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			var names []string
			for _, s := range c.subs {
				names = append(names, s.name)
			}
			if len(args) > 0 {
				printSubs(env.stdout, path, c)
				return nil
			}
			return &usageError{msg: fmt.Sprintf("%s: want a subcommand (%s)", path, strings.Join(names, ", "))}
		}
		var next *command
		for _, s := range c.subs {
			if s.name == args[0] {
				next = s
			}
		}
		if next == nil {
			return &usageError{msg: fmt.Sprintf("%s: unknown subcommand %q", path, args[0]), hint: "run 'mtccollector help'"}
		}
		c, path, args = next, path+" "+next.name, args[1:]
	}
	return c.run(env, args)
}

func printSubs(w io.Writer, path string, c *command) {
	for _, s := range c.subs {
		if len(s.subs) > 0 {
			printSubs(w, path+" "+s.name, s)
			continue
		}
		fmt.Fprintf(w, "  mtccollector %s %s %s\n      %s\n", path, s.name, s.args, s.summary)
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "mtccollector %s — network-side collector for mtcagent devices\n\nUsage:\n", version)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := commands[n]
		if len(c.subs) > 0 {
			printSubs(w, c.name, c)
			continue
		}
		fmt.Fprintf(w, "  mtccollector %s %s\n      %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "  mtccollector version\n\nRun 'mtccollector COMMAND --help' for a command's flags.\n")
}

// newFlags returns a flag set for a command whose errors and help go to
// env.stderr.
func newFlags(env *cmdEnv, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("mtccollector "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	return fs
}

// parseFlags parses args (flags may also follow positional arguments) and
// refuses more than maxArgs positional arguments.
func parseFlags(fs *flag.FlagSet, args []string, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{msg: err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) > maxArgs {
		return nil, usagef("unexpected argument %q", pos[maxArgs])
	}
	return pos, nil
}
