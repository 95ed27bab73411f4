//go:build !mtc_omit_sim

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mtcagent/mtcagent/atmodem/modemsim"
	"github.com/mtcagent/mtcagent/internal/cli"
)

func init() {
	simOpener = modemsim.StartPTY
	app.Register(&cli.Command{
		Name:    "sim",
		Args:    "--scenario FILE",
		Summary: "run the modem simulator on a pseudo-terminal and print its device path",
		Run:     runSim,
	})
}

func runSim(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "sim")
	scenario := fs.String("scenario", "", "scenario JSON file (see docs/simulator.md)")
	listen := fs.String("listen", "", "serve on unix:PATH or tcp:HOST:PORT instead of a pty (one connection at a time)")
	if err := cli.ParseFlags(fs, args, 0); err != nil {
		return err
	}
	if *scenario == "" {
		return &cli.UsageError{Msg: "--scenario is required", Hint: "e.g. mtcagent sim --scenario examples/quectel-swap.json"}
	}
	// Catch SIGTERM before printing where the modem is: whoever reads that
	// line may stop us at once.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if *listen != "" {
		return listenSim(ctx, env, *scenario, *listen)
	}
	path, stop, err := modemsim.StartPTY(*scenario)
	if err != nil {
		return &cli.UsageError{Msg: err.Error()}
	}
	defer stop()
	fmt.Fprintln(env.Stdout, path)
	syncStdout(env)
	<-ctx.Done()
	return nil
}

// listenSim serves the scenario on a socket: each connection in turn gets
// the simulated modem (a new one takes over, as a replugged cable would),
// for a QEMU serial chardev or `mtcagent run --modem tcp:HOST:PORT`.
func listenSim(ctx context.Context, env *cli.Env, file, addr string) error {
	network, address, ok := strings.Cut(addr, ":")
	if !ok || (network != "unix" && network != "tcp") || address == "" {
		return cli.Usagef("--listen %q: want unix:PATH or tcp:HOST:PORT", addr)
	}
	sc, err := modemsim.Load(file)
	if err != nil {
		return &cli.UsageError{Msg: err.Error()}
	}
	return modemsim.ListenAndServe(ctx, sc, network, address, func(a net.Addr) {
		fmt.Fprintf(env.Stdout, "%s:%s\n", network, a)
		syncStdout(env)
	})
}

// syncStdout flushes a line that whoever started us waits for.
func syncStdout(env *cli.Env) {
	if f, ok := env.Stdout.(*os.File); ok {
		f.Sync()
	}
}
