// Command mtccollector is the network-side reference service that mtcagent
// devices report to. It is not shipped to devices.
//
// Commands live in files of their own (cmd_*.go) and register themselves in
// init; a command may have subcommands (e.g. "suci decode"). Exit status: 0
// success, 1 runtime failure, 2 bad usage or bad input; messages on stderr as
// "mtccollector: error: ..." with "mtccollector: hint: ..." lines.
package main

import (
	"os"

	"github.com/mtcagent/mtcagent/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// app is mtccollector's command table; each cmd_*.go registers into it.
var app = &cli.App{Name: "mtccollector", Title: "network-side collector for mtcagent devices", Version: &version}

func main() {
	os.Exit(runMain(cli.OSEnv(), os.Args[1:]))
}

// runMain runs one invocation and returns the exit status.
func runMain(env *cli.Env, args []string) int { return app.Main(env, args) }
