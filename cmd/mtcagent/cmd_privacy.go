package main

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

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
	entries, skipped, err := privacy.ReadAudit(*stateDir)
	if err != nil {
		return cli.WithHint(err, "the audit log is readable by the agent's user; try sudo, or pass --state-dir")
	}
	if *only != "" {
		kept := entries[:0]
		for _, e := range entries {
			if e.Recipient == *only {
				kept = append(kept, e)
			}
		}
		entries = kept
	}
	path := filepath.Join(*stateDir, privacy.AuditFile)
	if *asJSON {
		if entries == nil {
			entries = []privacy.AuditEntry{}
		}
		out := struct {
			Log     string               `json:"log"`
			Entries []privacy.AuditEntry `json:"entries"`
			Skipped int                  `json:"skipped"`
		}{path, entries, skipped}
		return cli.WriteJSON(env.Stdout, out)
	}
	if len(entries) == 0 {
		fmt.Fprintf(env.Stdout, "No disclosures recorded in %s.\n", path)
	} else {
		fmt.Fprintf(env.Stdout, "Disclosures recorded in %s (oldest first, times in UTC):\n\n", path)
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tRECIPIENT\tBYTES\tDISCLOSED")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", e.Time.UTC().Format(time.DateTime), e.Recipient, e.Size, carriesText(e.Carries))
		}
		tw.Flush()
		fmt.Fprintf(env.Stdout, "\n%d disclosures.\n", len(entries))
	}
	if skipped > 0 {
		fmt.Fprintf(env.Stderr, "mtcagent: warning: %d unreadable audit lines skipped (cut by a power loss?)\n", skipped)
	}
	return nil
}

// carriesText lists class=precision in the order of privacy.Classes.
func carriesText(c map[string]string) string {
	s := ""
	for _, cl := range privacy.Classes() {
		if p, ok := c[cl.String()]; ok {
			if s != "" {
				s += " "
			}
			s += cl.String() + "=" + p
		}
	}
	if s == "" {
		return "nothing"
	}
	return s
}
