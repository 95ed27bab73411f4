package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/mtcagent/mtcagent/agent"
	"github.com/mtcagent/mtcagent/internal/cli"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
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

// defaultConfigPath is where the agent's configuration lives on a device.
const defaultConfigPath = "/etc/mtcagent/mtcagent.conf"

func runReportPreview(env *cli.Env, args []string) error {
	fl := app.NewFlags(env, "report preview")
	recipient := fl.String("recipient", "", "recipient name, as in [recipient \"NAME\"] of the config (required)")
	count := fl.Int("count", 1, "number of successive reports, one per schedule slot (1..96)")
	asJSON := fl.Bool("json", false, "print JSON for scripts")
	defConf := env.Getenv("MTCAGENT_CONFIG")
	if defConf == "" {
		defConf = defaultConfigPath
	}
	confPath := fl.String("config", defConf, "configuration file ($MTCAGENT_CONFIG)")
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

	pol, err := loadPolicy(*confPath)
	if err != nil {
		return err
	}
	rec, known := pol.Recipient(*recipient)
	if !known {
		return previewUnknown(env, pol, *recipient, *asJSON)
	}
	grants, _ := pol.Grants(*recipient)
	if grants.Location == privacy.LocationRegion {
		key, err := privacy.LoadSecret(*stateDir)
		if err != nil {
			return cli.WithHint(err, "the masking secret is in the agent's state directory: run as the agent's user (or sudo), or pass --state-dir")
		}
		if err := pol.SetSecret(key); err != nil {
			return err
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), modemTimeout)
	defer cancel()
	var snap privacy.Snapshot
	if *snapPath != "" {
		snap, err = readSnapshotFile(*snapPath)
	} else {
		var st *atmodem.Status
		st, err = readStatus(ctx, env, *modemSpec)
		if err == nil {
			snap = snapshotFromStatus(st)
		}
	}
	if err != nil {
		return err
	}
	if snap.Time.IsZero() {
		snap.Time = time.Now()
	}
	if grants.Identity > privacy.LevelNone && snap.Identity == nil {
		src, err := agent.OpenIdentity(*stateDir, snap)
		if err != nil {
			return cli.WithHint(fmt.Errorf("report preview: identity: %w", err), "the device secret and SUCI key are in the agent's state directory: run as the agent's user, or pass --state-dir")
		}
		snap.Identity = src
	}

	reps, err := pol.Previews(*recipient, snap, *count)
	if err != nil {
		return err
	}
	if *asJSON {
		return writePreviewJSON(env, pol, rec, grants, reps)
	}
	writePreviewText(env, pol, rec, grants, reps)
	return nil
}

// loadPolicy reads the configuration file, checked whole as every
// command checks it (agent.LoadConfig), and returns its privacy policy.
func loadPolicy(path string) (*privacy.Policy, error) {
	cfg, err := loadConfig(path, false, "without a policy nothing is disclosed to anyone")
	if err != nil {
		return nil, err
	}
	return cfg.Policy, nil
}

func previewUnknown(env *cli.Env, pol *privacy.Policy, name string, asJSON bool) error {
	var names []string
	for _, r := range pol.Recipients() {
		names = append(names, r.Name)
	}
	if asJSON {
		if names == nil {
			names = []string{}
		}
		return cli.WriteJSON(env.Stdout, map[string]any{"recipient": name, "known": false, "reports": []any{}, "known_recipients": names})
	}
	fmt.Fprintf(env.Stdout, "Recipient %q is not in the policy: it receives nothing (default deny).\n", name)
	if len(names) > 0 {
		fmt.Fprintf(env.Stdout, "Known recipients: %s\n", strings.Join(names, ", "))
	} else {
		fmt.Fprintln(env.Stdout, "The policy names no recipients: nothing leaves the device.")
	}
	return nil
}

func writePreviewJSON(env *cli.Env, pol *privacy.Policy, rec privacy.Recipient, g privacy.Grants, reps []privacy.Preview) error {
	grants := map[string]string{}
	for _, c := range privacy.Classes() {
		grants[c.String()] = g.Precision(c)
	}
	out := map[string]any{
		"recipient":    rec.Name,
		"identity":     rec.Identity,
		"known":        true,
		"grants":       grants,
		"device_class": pol.DeviceClass.String(),
		"padding":      pol.Padding,
		"slot":         shortDuration(pol.Slot()),
		"reports":      reps,
	}
	if pol.Schedule > 0 {
		out["schedule"] = shortDuration(pol.Schedule)
	}
	return cli.WriteJSON(env.Stdout, out)
}

func writePreviewText(env *cli.Env, pol *privacy.Policy, rec privacy.Recipient, g privacy.Grants, reps []privacy.Preview) {
	w := env.Stdout
	fmt.Fprintf(w, "Recipient %q (authenticates as %s)\n", rec.Name, rec.Identity)
	fmt.Fprintf(w, "  granted:      %s\n", g.String())
	if pol.DeviceClass == privacy.DeviceNoLocationTracking {
		fmt.Fprintf(w, "  device class: no_location_tracking (location and cell withheld from everyone)\n")
	}
	sched := "event-driven; report times rounded to " + shortDuration(pol.Slot())
	if pol.Schedule > 0 {
		sched = "every " + shortDuration(pol.Schedule)
	}
	fmt.Fprintf(w, "  schedule:     %s\n", sched)
	pad := "off"
	if pol.Padding && len(reps) > 0 {
		pad = fmt.Sprintf("on (every report is %d bytes)", reps[0].Size)
	}
	fmt.Fprintf(w, "  padding:      %s\n", pad)
	for i, r := range reps {
		fmt.Fprintf(w, "\nReport %d of %d, slot %s, %d bytes of CBOR:\n", i+1, len(reps), r.Slot.Format(time.RFC3339), r.Size)
		var m map[string]json.RawMessage
		if json.Unmarshal(r.Report, &m) != nil {
			continue
		}
		fmt.Fprintf(w, "  %-10s %s\n", "carries", r.Carries)
		keys := make([]string, 0, len(m))
		for k := range m {
			if k != "carries" && k != "v" && k != "t" {
				keys = append(keys, k)
			}
		}
		order := map[string]int{}
		for i, f := range privacy.Fields() {
			order[f.Key] = i
		}
		sort.Slice(keys, func(a, b int) bool { return order[keys[a]] < order[keys[b]] })
		for _, k := range keys {
			v := string(bytes.Trim(m[k], `"`))
			switch k {
			case "lat", "lon":
				if g.Location == privacy.LocationRegion {
					v += fmt.Sprintf("  (centre of a %s grid cell, masked)", strings.TrimPrefix(g.Precision(privacy.ClassLocation), "region:"))
				}
			}
			fmt.Fprintf(w, "  %-10s %s\n", k, v)
		}
		if len(keys) == 0 {
			fmt.Fprintf(w, "  (nothing but the slot time)\n")
		}
	}
}

// snapshotFromStatus is agent.SnapshotFromStatus: the daemon and the
// preview build reports from the same conversion.
func snapshotFromStatus(st *atmodem.Status) privacy.Snapshot { return agent.SnapshotFromStatus(st) }

// shortDuration prints 15m rather than 15m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// readSnapshotFile reads --snapshot FILE (agent.ParseSnapshot); a file
// that does not parse is bad input.
func readSnapshotFile(path string) (privacy.Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return privacy.Snapshot{}, fmt.Errorf("read snapshot: %w", err)
	}
	s, err := agent.ParseSnapshot(b)
	if err != nil {
		return s, cli.Usagef("read snapshot %s: %v", path, err)
	}
	return s, nil
}
