package main

import (
	"fmt"

	"github.com/mtcagent/mtcagent/internal/cli"
	"github.com/mtcagent/mtcagent/privacy"
)

func init() {
	app.Register(&cli.Command{
		Name:    "privacy",
		Summary: "what the agent disclosed",
		Subs: []*cli.Command{{
			Name:    "audit",
			Args:    "[--json] [--recipient NAME] [--state-dir DIR]",
			Summary: "show what was disclosed to whom, when and at what precision",
			Run:     runPrivacyAudit,
		}},
	})
}

func runPrivacyAudit(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "privacy audit")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	only := fs.String("recipient", "", "show only disclosures to this recipient")
	stateDir := stateDirFlag(fs, env)
	if err := cli.ParseFlags(fs, args, 0); err != nil {
		return err
	}
	l, err := privacy.ReadAuditLog(*stateDir, *only)
	if err != nil {
		return cli.WithHint(err, "the audit log is readable by the agent's user; try sudo, or pass --state-dir")
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, l)
	}
	l.WriteText(env.Stdout)
	if l.Skipped > 0 {
		fmt.Fprintf(env.Stderr, "mtcagent: warning: %d unreadable audit lines skipped (cut by a power loss?)\n", l.Skipped)
	}
	return nil
}
