//go:build !mtc_omit_sim

package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mtcagent/mtcagent/atmodem/modemsim"
	"github.com/mtcagent/mtcagent/internal/cli"
)

func init() {
	simOpener = startSim
	app.Register(&cli.Command{
		Name:    "sim",
		Args:    "--scenario FILE",
		Summary: "run the modem simulator on a pseudo-terminal and print its device path",
		Run:     runSim,
	})
}

// startSim serves a scenario on a pty in a fresh temporary directory.
func startSim(file string) (string, func(), error) {
	sc, err := modemsim.Load(file)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "mtcsim-")
	if err != nil {
		return "", nil, err
	}
	s := modemsim.New(sc)
	p, err := modemsim.ServePTY(s, dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	s.Start()
	return p.Path(), func() { p.Close(); os.RemoveAll(dir) }, nil
}

func runSim(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "sim")
	scenario := fs.String("scenario", "", "scenario JSON file (see docs/simulator.md)")
	if err := cli.ParseFlags(fs, args, 0); err != nil {
		return err
	}
	if *scenario == "" {
		return &cli.UsageError{Msg: "--scenario is required", Hint: "e.g. mtcagent sim --scenario examples/quectel-swap.json"}
	}
	path, stop, err := startSim(*scenario)
	if err != nil {
		return &cli.UsageError{Msg: err.Error()}
	}
	defer stop()
	fmt.Fprintln(env.Stdout, path)
	if f, ok := env.Stdout.(*os.File); ok {
		f.Sync()
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	<-ctx.Done()
	return nil
}
