package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mtcagent/mtcagent/agent/control"
	"github.com/mtcagent/mtcagent/internal/cli"
	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/mdtlog"
)

func init() {
	sub := func(name, args, summary string) *cli.Command {
		return &cli.Command{Name: name, Args: args + " [--state-dir DIR] [--config FILE]", Summary: summary,
			Run: func(env *cli.Env, a []string) error { return runMDT(env, name, a) }}
	}
	app.Register(&cli.Command{
		Name:    "mdt",
		Summary: "the radio measurement log",
		Subs: []*cli.Command{
			sub("consent", "[--yes] [--json]", "show the notice and consent to logging"),
			sub("optout", "[--yes] [--json]", "stop logging for good and erase the log"),
			sub("clear", "[--yes] [--json]", "erase the log (crypto-erase)"),
			sub("status", "[--json]", "consent, size, oldest and newest record"),
			sub("show", "[--json]", "the stored records, decrypted"),
			sub("export", "--out FILE [--format jsonl|cbor] [--json]", "write the records to a file, decrypted"),
		},
	})
}

// runMDT runs the mdt subcommand sub.
func runMDT(env *cli.Env, sub string, args []string) error {
	fl := app.NewFlags(env, "mdt "+sub)
	stateDir := stateDirFlag(fl, env)
	confPath, confDef := configFlag(fl, env, "configuration file with an [mdt] section ($MTCAGENT_CONFIG)")
	asJSON := fl.Bool("json", false, "print JSON for scripts")
	var yes *bool
	if sub == "consent" || sub == "optout" || sub == "clear" {
		yes = fl.Bool("yes", false, "do not ask for confirmation")
	}
	var out, format *string
	if sub == "export" {
		out = fl.String("out", "", "file to write (required; written to a temporary file, then renamed)")
		format = fl.String("format", mdtlog.FormatJSONL, "jsonl (JSON lines) or cbor (CBOR sequence)")
	}
	if err := cli.ParseFlags(fl, args, 0); err != nil {
		return err
	}
	if sub == "export" {
		if *out == "" {
			return cli.WithHint(cli.Usagef("mdt export: --out is required"), "e.g. mtcagent mdt export --out mdt.jsonl")
		}
		if *format != mdtlog.FormatJSONL && *format != mdtlog.FormatCBOR {
			return cli.Usagef("mdt export: --format %q: want jsonl or cbor", *format)
		}
	}
	conf, err := loadConfig(*confPath, confDef == defaultConfigPath && *confPath == defaultConfigPath, "")
	if err != nil {
		return err
	}
	cfg := conf.MDT
	svc, err := control.OpenMDT(*stateDir, cfg.Options())
	if errors.Is(err, mdtlog.ErrLocked) {
		return cli.WithHint(err, "the daemon (mtcagent run) holds the log: run this command on a device where it serves 'mdt' over its control socket, or stop it first")
	}
	var pe *fsutil.PermissionError
	if errors.As(err, &pe) {
		return stateHint(fmt.Errorf("open mdt log: %w", err), *stateDir)
	}
	if err != nil {
		return cli.WithHint(fmt.Errorf("open mdt log: %w", err), "the log belongs to the agent's user; try sudo, or pass --state-dir")
	}
	defer svc.Close()
	switch sub {
	case "consent":
		return mdtConsent(env, svc, cfg, *yes, *asJSON)
	case "optout", "clear":
		return mdtErase(env, svc, sub, *yes, *asJSON)
	case "status":
		return mdtStatus(env, svc, cfg, *stateDir, *asJSON)
	case "show":
		return mdtShow(env, svc, *asJSON)
	default:
		return mdtExport(env, svc, *out, *format, *asJSON)
	}
}

// confirm asks a yes/no question on stdin; anything but yes is no.
func confirm(env *cli.Env, question string) bool {
	fmt.Fprintf(env.Stdout, "%s [yes/no] ", question)
	line, _ := bufio.NewReader(env.Stdin).ReadString('\n')
	fmt.Fprintln(env.Stdout)
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "yes" || a == "y"
}

func mdtConsent(env *cli.Env, svc control.MDTService, cfg mdtlog.Config, yes, asJSON bool) error {
	if !asJSON || !yes {
		fmt.Fprint(env.Stdout, mdtlog.Notice(cfg))
		fmt.Fprintln(env.Stdout)
	}
	if !yes && !confirm(env, "Do you consent to this logging?") {
		return cli.WithHint(errors.New("mdt consent: not given; nothing changed"), "run 'mtcagent mdt consent' again and answer yes, or pass --yes after reading the notice")
	}
	c, err := svc.Consent(mdtlog.ConsentRequest{})
	if err != nil {
		return fmt.Errorf("mdt consent: %w", err)
	}
	if asJSON {
		return cli.WriteJSON(env.Stdout, c.JSON())
	}
	fmt.Fprintf(env.Stdout, "Consent recorded at %s. MDT logging is on.\n", c.Time.UTC().Format(time.DateTime+" MST"))
	fmt.Fprintln(env.Stdout, "Change your mind at any time: 'mtcagent mdt clear' or 'mtcagent mdt optout'.")
	return nil
}

func mdtErase(env *cli.Env, svc control.MDTService, sub string, yes, asJSON bool) error {
	q := "Erase the measurement log now?"
	if sub == "optout" {
		q = "Stop MDT logging for good and erase the log?"
	}
	if !yes && !confirm(env, q) {
		return cli.WithHint(fmt.Errorf("mdt %s: not confirmed; nothing changed", sub), "answer yes, or pass --yes")
	}
	// Count first, so we can say what was destroyed; Clear itself does
	// not read the log.
	_, _ = svc.Status()
	var d mdtlog.Destroyed
	var err error
	if sub == "optout" {
		d, err = svc.OptOut(false)
	} else {
		d, err = svc.Clear()
	}
	if err != nil {
		return fmt.Errorf("mdt %s: %w", sub, err)
	}
	if asJSON {
		return cli.WriteJSON(env.Stdout, d.JSON(sub == "optout"))
	}
	d.WriteText(env.Stdout, sub == "optout")
	return nil
}

func mdtStatus(env *cli.Env, svc control.MDTService, cfg mdtlog.Config, stateDir string, asJSON bool) error {
	st, err := svc.Status()
	if err != nil {
		return fmt.Errorf("mdt status: %w", err)
	}
	if asJSON {
		return cli.WriteJSON(env.Stdout, st.JSON(cfg, stateDir))
	}
	return st.WriteText(env.Stdout, cfg, stateDir)
}

func warnFailed(env *cli.Env, rep mdtlog.ScanReport) {
	if rep.Failed > 0 {
		fmt.Fprintf(env.Stderr, "mtcagent: warning: %d records failed authentication and were skipped\n", rep.Failed)
	}
}

func mdtShow(env *cli.Env, svc control.MDTService, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		rep, err := svc.Records(func(e mdtlog.Entry) error { return enc.Encode(e.JSON()) })
		if err != nil {
			return fmt.Errorf("mdt show: %w", err)
		}
		warnFailed(env, rep)
		return nil
	}
	rep, err := mdtlog.WriteTable(env.Stdout, svc.Records)
	if err != nil {
		return fmt.Errorf("mdt show: %w", err)
	}
	fmt.Fprintf(env.Stdout, "\n%d records.\n", rep.Records)
	warnFailed(env, rep)
	return nil
}

func mdtExport(env *cli.Env, svc control.MDTService, out, format string, asJSON bool) error {
	// The export is decrypted personal data: readable by the owner only.
	var rep mdtlog.ScanReport
	var exportErr error
	err := fsutil.WriteAtomic(out, 0o600, func(w io.Writer) error {
		rep, exportErr = svc.Export(w, format)
		return exportErr
	})
	switch {
	case exportErr != nil:
		return fmt.Errorf("mdt export: %w", exportErr)
	case err != nil:
		return cli.WithHint(fmt.Errorf("mdt export: %w", err), "the directory of --out must exist and be writable")
	}
	warnFailed(env, rep)
	if asJSON {
		return cli.WriteJSON(env.Stdout, map[string]any{"out": out, "format": format, "records": rep.Records, "failed": rep.Failed})
	}
	fmt.Fprintf(env.Stdout, "Exported %d records to %s (%s). The file is not encrypted: keep it private.\n", rep.Records, out, format)
	return nil
}
