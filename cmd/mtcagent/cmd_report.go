package main

import (
	"bytes"
	"context"
	"encoding/hex"
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
	"github.com/mtcagent/mtcagent/privacy/ident"
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

// previewIdentity, when set (by the file that wires attest in), yields the
// pseudonyms and SUCI a recipient granted identity disclosure receives.
// Without it, preview omits the identity class and says so.
var previewIdentity func(ctx context.Context, env *cli.Env, stateDir string, s privacy.Snapshot) (privacy.IdentitySource, error)

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
	identityNote := ""
	if grants.Identity > privacy.LevelNone && snap.Identity == nil {
		if previewIdentity != nil {
			src, err := previewIdentity(ctx, env, *stateDir, snap)
			if err != nil {
				return cli.WithHint(fmt.Errorf("report preview: identity: %w", err), "the device secret and SUCI key are in the agent's state directory: run as the agent's user, or pass --state-dir")
			}
			snap.Identity = src
		} else {
			identityNote = "identity disclosure is granted but this build cannot derive pseudonyms or the SUCI: omitted below"
		}
	}

	var reps []previewReport
	for i := 0; i < *count; i++ {
		s := snap
		s.Time = snap.Time.Add(time.Duration(i) * pol.Slot())
		r, err := pol.View(*recipient, s)
		if err != nil {
			return err
		}
		wire, err := r.Encode()
		if err != nil {
			return err
		}
		js, err := json.Marshal(r)
		if err != nil {
			return err
		}
		reps = append(reps, previewReport{Slot: r.Time(), Size: len(wire), CBOR: hex.EncodeToString(wire), Report: js, carries: r.CarriesString()})
	}
	if *asJSON {
		return writePreviewJSON(env, pol, rec, grants, reps, identityNote)
	}
	writePreviewText(env, pol, rec, grants, reps, identityNote)
	return nil
}

type previewReport struct {
	Slot    time.Time       `json:"slot"`
	Size    int             `json:"size"`
	CBOR    string          `json:"cbor"`
	Report  json.RawMessage `json:"report"`
	carries string
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

func writePreviewJSON(env *cli.Env, pol *privacy.Policy, rec privacy.Recipient, g privacy.Grants, reps []previewReport, note string) error {
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
	if note != "" {
		out["note"] = note
	}
	return cli.WriteJSON(env.Stdout, out)
}

func writePreviewText(env *cli.Env, pol *privacy.Policy, rec privacy.Recipient, g privacy.Grants, reps []previewReport, note string) {
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
	if note != "" {
		fmt.Fprintf(w, "  note:         %s\n", note)
	}
	for i, r := range reps {
		fmt.Fprintf(w, "\nReport %d of %d, slot %s, %d bytes of CBOR:\n", i+1, len(reps), r.Slot.Format(time.RFC3339), r.Size)
		var m map[string]json.RawMessage
		if json.Unmarshal(r.Report, &m) != nil {
			continue
		}
		fmt.Fprintf(w, "  %-10s %s\n", "carries", r.carries)
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

// snapshotFile is the JSON form of a device state read by --snapshot: what
// the agent would feed the policy. Identifiers are optional and used only
// to derive pseudonyms; they never appear in a report.
type snapshotFile struct {
	Time     *time.Time `json:"time"`
	Status   string     `json:"status"`
	Location *struct {
		Lat       float64 `json:"lat"`
		Lon       float64 `json:"lon"`
		AccuracyM float64 `json:"accuracy_m"`
	} `json:"location"`
	Cell *struct {
		MCC    string  `json:"mcc"`
		MNC    string  `json:"mnc"`
		TAC    *uint32 `json:"tac"`
		LAC    *uint32 `json:"lac"`
		CellID *uint64 `json:"cell_id"`
	} `json:"cell"`
	Radio *struct {
		RSRP *float64 `json:"rsrp_dbm"`
		RSRQ *float64 `json:"rsrq_db"`
		SINR *float64 `json:"sinr_db"`
		RSSI *float64 `json:"rssi_dbm"`
	} `json:"radio"`
	IMSI  string `json:"imsi"`
	ICCID string `json:"iccid"`
	IMEI  string `json:"imei"`
}

func readSnapshotFile(path string) (privacy.Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return privacy.Snapshot{}, fmt.Errorf("read snapshot: %w", err)
	}
	var f snapshotFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return privacy.Snapshot{}, cli.Usagef("read snapshot %s: %v", path, err)
	}
	var s privacy.Snapshot
	if f.Time != nil {
		s.Time = *f.Time
	}
	if f.Status == "" {
		f.Status = "unknown"
	}
	st, ok := privacy.ParseStatus(f.Status)
	if !ok {
		return s, cli.Usagef("read snapshot %s: status %q: want unknown, offline, online, idle or connected", path, f.Status)
	}
	s.Status = st
	if l := f.Location; l != nil {
		s.Location = &privacy.Location{Lat: l.Lat, Lon: l.Lon, AccuracyM: l.AccuracyM}
	}
	if c := f.Cell; c != nil {
		s.Cell = &privacy.Cell{MCC: c.MCC, MNC: c.MNC, TAC: c.TAC, LAC: c.LAC, CellID: c.CellID}
	}
	if r := f.Radio; r != nil {
		s.Radio = &privacy.Radio{RSRPdBm: r.RSRP, RSRQdB: r.RSRQ, SINRdB: r.SINR, RSSIdBm: r.RSSI}
	}
	// Parse errors never repeat the value.
	if f.IMSI != "" {
		if s.IMSI, err = ident.ParseIMSI(f.IMSI); err != nil {
			return s, cli.Usagef("read snapshot %s: %v", path, err)
		}
	}
	if f.ICCID != "" {
		if s.ICCID, err = ident.ParseICCID(f.ICCID); err != nil {
			return s, cli.Usagef("read snapshot %s: %v", path, err)
		}
	}
	if f.IMEI != "" {
		if s.IMEI, err = ident.ParseIMEI(f.IMEI); err != nil {
			return s, cli.Usagef("read snapshot %s: %v", path, err)
		}
	}
	return s, nil
}
