package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/mtcagent/mtcagent/agent/control"
	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/internal/cli"
)

func init() {
	app.Register(&cli.Command{
		Name:    "status",
		Args:    "[--modem SPEC] [--json]",
		Summary: "read the modem once: identity, SIM, registration, operator, signal, serving cell",
		Run:     runStatus,
	})
}

func runStatus(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "status")
	modem := modemFlag(fs, env)
	stateDir := stateDirFlag(fs, env)
	asJSON := fs.Bool("json", false, "print the status contract as JSON")
	if err := cli.ParseFlags(fs, args, 0); err != nil {
		return err
	}
	var j *atmodem.StatusJSON
	// Without --modem, a running daemon owns the port: ask it.
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "modem" })
	if !explicit && env.Getenv("MTCAGENT_MODEM") == "" {
		dj, err := (&control.Client{StateDir: *stateDir, Timeout: 5 * time.Second}).Status(context.Background())
		if err == nil {
			j = dj
		} else if !errors.Is(err, control.ErrNotRunning) {
			return fmt.Errorf("running agent: %w", err)
		}
	}
	if j == nil {
		st, err := readStatus(*modem)
		if err != nil {
			return err
		}
		if st.NothingRead() {
			return cli.WithHint(errors.New("the modem answered none of the status reads (identity, SIM, registration, operator)"),
				"is this the modem's AT port (try --modem auto, or another ttyUSB)? A modem still booting answers once it has sent RDY")
		}
		j = st.Revealed() // the owner's own view: identifiers in clear
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, j)
	}
	j.WriteText(env.Stdout)
	return nil
}
