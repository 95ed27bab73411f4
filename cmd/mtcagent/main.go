// Command mtcagent is the device agent: it drives a cellular modem over AT
// commands, attests the SIM–device binding, masks what it reports per
// recipient, keeps the user's measurement log, and reports to its collector.
//
// Each subcommand lives in a file of its own (cmd_*.go) and registers itself
// in init, so the command table is the set of files built (build tags drop
// features from small targets).
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

// command is one subcommand of mtcagent.
type command struct {
	name    string
	args    string // synopsis after the name, e.g. "[--json] [--modem SPEC]"
	summary string
	run     func(env *cmdEnv, args []string) error
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("mtcagent: duplicate command " + c.name)
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

// runMain runs one invocation and returns the exit status: 0 success,
// 1 runtime failure, 2 bad usage or bad input.
func runMain(env *cmdEnv, args []string) int {
	err := dispatch(env, args)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(env.stderr, "mtcagent: error: %s\n", err)
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
			fmt.Fprintf(env.stderr, "mtcagent: hint: %s\n", line)
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
		return &usageError{msg: "no command given", hint: "run 'mtcagent help' for the list of commands"}
	}
	name := args[0]
	switch name {
	case "help", "-h", "--help", "-help":
		printUsage(env.stdout)
		return nil
	case "version", "--version", "-version":
		fmt.Fprintf(env.stdout, "mtcagent %s\n", version)
		return nil
	}
	c, ok := commands[name]
	if !ok {
		return &usageError{msg: fmt.Sprintf("unknown command %q", name), hint: "run 'mtcagent help' for the list of commands"}
	}
	return c.run(env, args[1:])
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "mtcagent %s — cellular device agent\n\nUsage:\n", version)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := commands[n]
		fmt.Fprintf(w, "  mtcagent %s %s\n      %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "  mtcagent version\n\nRun 'mtcagent COMMAND --help' for a command's flags.\n")
}

// newFlags returns a flag set for a subcommand whose errors and help go to
// env.stderr and whose parse errors become usage errors.
func newFlags(env *cmdEnv, c string) *flag.FlagSet {
	fs := flag.NewFlagSet("mtcagent "+c, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	return fs
}

// parseFlags parses args and refuses leftover positional arguments unless
// maxArgs allows them.
func parseFlags(fs *flag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: err.Error()}
	}
	if fs.NArg() > maxArgs {
		return usagef("unexpected argument %q", fs.Arg(maxArgs))
	}
	return nil
}

// defaultStateDir is where the agent keeps keys, counters and logs.
const defaultStateDir = "/var/lib/mtcagent"

// stateDirFlag adds --state-dir (default $MTCAGENT_STATE_DIR, else
// /var/lib/mtcagent).
func stateDirFlag(fs *flag.FlagSet, env *cmdEnv) *string {
	def := env.getenv("MTCAGENT_STATE_DIR")
	if def == "" {
		def = defaultStateDir
	}
	return fs.String("state-dir", def, "directory for keys, counters and logs ($MTCAGENT_STATE_DIR)")
}

// modemFlag adds --modem (default $MTCAGENT_MODEM, else auto).
func modemFlag(fs *flag.FlagSet, env *cmdEnv) *string {
	def := env.getenv("MTCAGENT_MODEM")
	if def == "" {
		def = "auto"
	}
	return fs.String("modem", def, "modem: device path, auto, tcp:HOST:PORT or sim:SCENARIO.json ($MTCAGENT_MODEM)")
}
