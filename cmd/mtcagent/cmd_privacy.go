package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/mtcagent/mtcagent/privacy"
)

func init() {
	register(&command{
		name:    "privacy",
		args:    "audit [--json] [--recipient NAME] [--state-dir DIR]",
		summary: "show what was disclosed to whom, when and at what precision",
		run:     runPrivacy,
	})
}

func runPrivacy(env *cmdEnv, args []string) error {
	if len(args) == 0 || args[0] != "audit" {
		sub := ""
		if len(args) > 0 {
			sub = args[0]
		}
		if sub == "-h" || sub == "--help" || sub == "-help" {
			fmt.Fprintln(env.stderr, "usage: mtcagent privacy audit [--json] [--recipient NAME] [--state-dir DIR]")
			return nil
		}
		return withHint(usagef("privacy: unknown subcommand %q", sub), "usage: mtcagent privacy audit [--json] [--recipient NAME] [--state-dir DIR]")
	}
	fs := newFlags(env, "privacy audit")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	only := fs.String("recipient", "", "show only disclosures to this recipient")
	stateDir := stateDirFlag(fs, env)
	if err := parseFlags(fs, args[1:], 0); err != nil {
		return err
	}
	entries, skipped, err := privacy.ReadAudit(*stateDir)
	if err != nil {
		return withHint(err, "the audit log is readable by the agent's user; try sudo, or pass --state-dir")
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
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(entries) == 0 {
		fmt.Fprintf(env.stdout, "No disclosures recorded in %s.\n", path)
	} else {
		fmt.Fprintf(env.stdout, "Disclosures recorded in %s (oldest first, times in UTC):\n\n", path)
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tRECIPIENT\tBYTES\tDISCLOSED")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", e.Time.UTC().Format(time.DateTime), e.Recipient, e.Size, carriesText(e.Carries))
		}
		tw.Flush()
		fmt.Fprintf(env.stdout, "\n%d disclosures.\n", len(entries))
	}
	if skipped > 0 {
		fmt.Fprintf(env.stderr, "mtcagent: warning: %d unreadable audit lines skipped (cut by a power loss?)\n", skipped)
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
