package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/internal/cli"
	"github.com/mtcagent/mtcagent/wire"
)

func init() {
	app.Register(&cli.Command{
		Name:    "mdt",
		Summary: "measurement logs pulled from devices",
		Subs: []*cli.Command{{
			Name:    "show",
			Args:    "--state DIR [--json] DEVICE  |  --file PATH [--json]",
			Summary: "print the measurement records pulled from DEVICE, oldest first",
			Run:     runMDTShow,
		}},
	})
}

// mdtJSON is one record as `mdt show --json` prints it (a JSON line).
type mdtJSON struct {
	Time        string            `json:"time"`
	ClockSynced bool              `json:"clock_synced"`
	Serving     wire.MDTCell      `json:"serving"`
	Neighbours  []wire.MDTCell    `json:"neighbours,omitempty"`
	Location    *wire.MDTLocation `json:"location,omitempty"`
}

func runMDTShow(env *cli.Env, args []string) error {
	fset := app.NewFlags(env, "mdt show")
	state := fset.String("state", "", "the collector's state directory")
	file := fset.String("file", "", "read this MDT file instead (e.g. one set aside as DEVICE.cbor.damaged-TIME)")
	asJSON := fset.Bool("json", false, "one JSON object per record")
	pos, err := cli.ParseInterleaved(fset, args, 1)
	if err != nil {
		return err
	}
	path, what := *file, *file
	switch {
	case *file != "" && (*state != "" || len(pos) != 0):
		return cli.Usagef("mdt show: --file PATH takes no --state and no DEVICE")
	case *file == "" && (*state == "" || len(pos) != 1):
		return cli.Usagef("mdt show: want --state DIR and one DEVICE (or --file PATH)")
	case *file == "":
		path, what = collector.MDTFile(*state, pos[0]), pos[0]+" in "+*state
	}
	enc := json.NewEncoder(env.Stdout)
	n, err := collector.ReadMDTFile(path, func(r wire.MDTRecord) error {
		if *asJSON {
			return enc.Encode(mdtJSON{Time: r.Time.UTC().Format(time.RFC3339Nano), ClockSynced: r.ClockSynced,
				Serving: r.Serving, Neighbours: r.Neighbours, Location: r.Location})
		}
		_, err := fmt.Fprintln(env.Stdout, mdtLine(r))
		return err
	})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return cli.WithHint(fmt.Errorf("no measurement records from %s", what),
			"the collector pulls a device's log only when the device's policy grants it radio and its user consented (docs/mdt.md)")
	case errors.Is(err, collector.ErrMDTTail):
		fmt.Fprintf(env.Stderr, "mtccollector: warning: %v; %d records before it shown\n", err, n)
		return nil
	case err != nil:
		return fmt.Errorf("%w (%d records before it shown)", err, n)
	}
	return nil
}

func mdtLine(r wire.MDTRecord) string {
	c := r.Serving
	f := []string{r.Time.UTC().Format("2006-01-02 15:04:05"), orDash(c.RAT), orDash(c.MCC) + "-" + orDash(c.MNC)}
	if c.TAC != nil {
		f = append(f, fmt.Sprintf("tac %X", *c.TAC))
	}
	if c.LAC != nil {
		f = append(f, fmt.Sprintf("lac %X", *c.LAC))
	}
	if c.CellID != nil {
		f = append(f, fmt.Sprintf("cell %X", *c.CellID))
	}
	for _, m := range []struct {
		name string
		v    *float64
	}{{"rsrp", c.RSRP}, {"rsrq", c.RSRQ}, {"sinr", c.SINR}, {"rssi", c.RSSI}} {
		if m.v != nil {
			f = append(f, fmt.Sprintf("%s %.1f", m.name, *m.v))
		}
	}
	if len(r.Neighbours) > 0 {
		f = append(f, fmt.Sprintf("%d neighbours", len(r.Neighbours)))
	}
	if l := r.Location; l != nil {
		f = append(f, fmt.Sprintf("at %.5f,%.5f ±%.0f m", l.Lat, l.Lon, l.AccuracyM))
	}
	if !r.ClockSynced {
		f = append(f, "(clock not synced)")
	}
	return strings.Join(f, "  ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
