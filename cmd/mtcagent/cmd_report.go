package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/internal/cli"
	"github.com/mtcagent/mtcagent/privacy"
)

func init() {
	app.Register(&cli.Command{
		Name:    "report",
		Summary: "the reports recipients receive",
		Subs: []*cli.Command{{
			Name:    "preview",
			Args:    "--recipient NAME [--count N] [--json] [--config FILE] [--state-dir DIR] [--modem SPEC | --snapshot FILE]",
			Summary: "show exactly what a recipient would receive now, after masking",
			Run:     runReportPreview,
		}},
	})
}

func runReportPreview(env *cli.Env, args []string) error {
	fl := app.NewFlags(env, "report preview")
	recipient := fl.String("recipient", "", "recipient name, as in [recipient \"NAME\"] of the config (required)")
	count := fl.Int("count", 1, "number of successive reports, one per schedule slot (1..96)")
	asJSON := fl.Bool("json", false, "print JSON for scripts")
	confPath, _ := configFlag(fl, env, "configuration file ($MTCAGENT_CONFIG)")
	stateDir := stateDirFlag(fl, env)
	modemSpec := modemFlag(fl, env)
	snapPath := fl.String("snapshot", "", "read the device state from this JSON file instead of the modem (needed for a location)")
	if err := cli.ParseFlags(fl, args, 0); err != nil {
		return err
	}
	if *recipient == "" {
		return cli.WithHint(cli.Usagef("report preview: --recipient is required"), "run 'mtcagent report preview --help' for its flags")
	}
	if *count < 1 || *count > 96 {
		return cli.Usagef("report preview: --count %d outside 1..96", *count)
	}
	cfg, err := loadConfig(*confPath, false, "without a policy nothing is disclosed to anyone")
	if err != nil {
		return err
	}
	// The device state: --snapshot FILE (agent.ParseSnapshot; a file that
	// does not parse is bad input), else one reading of the modem.
	v, err := agent.Preview(cfg.Policy, *stateDir, *recipient, *count, func() (snap privacy.Snapshot, err error) {
		if *snapPath == "" {
			var st *atmodem.Status
			if st, err = readStatus(*modemSpec); err != nil {
				return snap, err
			}
			snap = agent.SnapshotFromStatus(st)
		} else if b, rerr := os.ReadFile(*snapPath); rerr != nil {
			return snap, fmt.Errorf("read snapshot: %w", rerr)
		} else if snap, err = agent.ParseSnapshot(b); err != nil {
			return snap, cli.Usagef("read snapshot %s: %v", *snapPath, err)
		}
		if snap.Time.IsZero() {
			snap.Time = time.Now()
		}
		return snap, nil
	})
	var pe *agent.PreviewError
	switch {
	case errors.As(err, &pe) && pe.Identity:
		return cli.WithHint(fmt.Errorf("report preview: %w", err), "the device secret and SUCI key are in the agent's state directory: run as the agent's user, or pass --state-dir")
	case errors.As(err, &pe):
		return cli.WithHint(err, "the masking secret is in the agent's state directory: run as the agent's user (or sudo), or pass --state-dir")
	case err != nil:
		return err
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, v.JSON())
	}
	v.WriteText(env.Stdout)
	return nil
}
