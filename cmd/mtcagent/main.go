// Command mtcagent is the device agent: it drives a cellular modem over AT
// commands, attests the SIM–device binding, masks what it reports per
// recipient, keeps the user's measurement log, and reports to its collector.
//
// Each subcommand lives in a file of its own (cmd_*.go) and registers itself
// in init, so the command table is the set of files built (build tags drop
// features from small targets).
package main

import (
	"flag"
	"os"

	"github.com/mtcagent/mtcagent/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// app is mtcagent's command table; each cmd_*.go registers into it.
var app = &cli.App{Name: "mtcagent", Title: "cellular device agent", Version: &version}

func main() {
	os.Exit(runMain(cli.OSEnv(), os.Args[1:]))
}

// runMain runs one invocation and returns the exit status: 0 success,
// 1 runtime failure, 2 bad usage or bad input.
func runMain(env *cli.Env, args []string) int { return app.Main(env, args) }

// defaultStateDir is where the agent keeps keys, counters and logs.
const defaultStateDir = "/var/lib/mtcagent"

// stateDirFlag adds --state-dir (default $MTCAGENT_STATE_DIR, else
// /var/lib/mtcagent).
func stateDirFlag(fs *flag.FlagSet, env *cli.Env) *string {
	return fs.String("state-dir", envOr(env, "MTCAGENT_STATE_DIR", defaultStateDir), "directory for keys, counters and logs ($MTCAGENT_STATE_DIR)")
}

// modemFlag adds --modem (default $MTCAGENT_MODEM, else auto).
func modemFlag(fs *flag.FlagSet, env *cli.Env) *string {
	return fs.String("modem", envOr(env, "MTCAGENT_MODEM", "auto"), "modem: device path, auto, tcp:HOST:PORT or sim:SCENARIO.json ($MTCAGENT_MODEM)")
}

// defaultConfigPath is where the agent's configuration lives on a device.
const defaultConfigPath = "/etc/mtcagent/mtcagent.conf"

// configFlag adds --config with its default, $MTCAGENT_CONFIG or else
// defaultConfigPath. A command that works without a file takes a missing
// one for the defaults where both the default and the path given are
// defaultConfigPath.
func configFlag(fs *flag.FlagSet, env *cli.Env, usage string) (path *string, def string) {
	def = envOr(env, "MTCAGENT_CONFIG", defaultConfigPath)
	return fs.String("config", def, usage), def
}

// envOr is the environment variable name, or def where it is unset or empty.
func envOr(env *cli.Env, name, def string) string {
	if v := env.Getenv(name); v != "" {
		return v
	}
	return def
}
