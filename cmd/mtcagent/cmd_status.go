package main

import (
	"errors"
	"flag"
	"time"

	"context"
	"fmt"
	"github.com/mtcagent/mtcagent/agent/control"
	"github.com/mtcagent/mtcagent/internal/cli"
	"io"
	"strings"

	"github.com/mtcagent/mtcagent/atmodem"
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
	ctx, cancel := context.WithTimeout(context.Background(), modemTimeout)
	defer cancel()
	var j *atmodem.StatusJSON
	// Without --modem, a running daemon owns the port: ask it.
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "modem" })
	if !explicit && env.Getenv("MTCAGENT_MODEM") == "" {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		dj, err := (&control.Client{StateDir: *stateDir}).Status(dctx)
		dcancel()
		if err == nil {
			j = dj
		} else if !errors.Is(err, control.ErrNotRunning) {
			return fmt.Errorf("running agent: %w", err)
		}
	}
	if j == nil {
		st, err := readStatus(ctx, env, *modem)
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
	printStatus(env.Stdout, j)
	return nil
}

func orDash[T any](p *T) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func printStatus(w io.Writer, j *atmodem.StatusJSON) {
	fmt.Fprintf(w, "modem     %s %s (%s), dialect %s\n", orDash(j.Modem.Manufacturer), orDash(j.Modem.Model), orDash(j.Modem.Revision), j.Dialect)
	fmt.Fprintf(w, "imei      %s\n", orDash(j.Modem.IMEI))
	fmt.Fprintf(w, "sim       %s  imsi %s  iccid %s\n", orDash(j.SIM.State), orDash(j.SIM.IMSI), orDash(j.SIM.ICCID))
	if j.SIM.EID != nil {
		fmt.Fprintf(w, "eid       %s\n", *j.SIM.EID)
	}
	regs := []struct {
		name string
		r    *atmodem.Registration
	}{{"cs", j.Registration.CS}, {"ps", j.Registration.PS}, {"eps", j.Registration.EPS}, {"5gs", j.Registration.FGS}}
	for _, r := range regs {
		if r.r == nil {
			fmt.Fprintf(w, "reg %-5s -\n", r.name)
			continue
		}
		var extra []string
		if r.r.LAC != nil {
			extra = append(extra, fmt.Sprintf("lac %X", *r.r.LAC))
		}
		if r.r.TAC != nil {
			extra = append(extra, fmt.Sprintf("tac %X", *r.r.TAC))
		}
		if r.r.CellID != nil {
			extra = append(extra, fmt.Sprintf("cell %X", *r.r.CellID))
		}
		if r.r.AcT != nil {
			extra = append(extra, fmt.Sprintf("act %d", *r.r.AcT))
		}
		fmt.Fprintf(w, "reg %-5s %s (%d) %s\n", r.name, r.r.State, r.r.Stat, strings.Join(extra, " "))
	}
	fmt.Fprintf(w, "operator  %s %s-%s\n", orDash(j.Operator.Name), orDash(j.Operator.MCC), orDash(j.Operator.MNC))
	fmt.Fprintf(w, "signal    rssi %s dBm  ber %s  rsrp %s dBm  rsrq %s dB\n", orDash(j.Signal.RSSIdBm), orDash(j.Signal.BER), orDash(j.Signal.RSRPdBm), orDash(j.Signal.RSRQdB))
	if c := j.Cell; c != nil {
		fmt.Fprintf(w, "cell      %s %s  pci %s  earfcn %s  band %s  rsrp %s  rsrq %s  sinr %s\n", c.RAT, c.State, orDash(c.PCI), orDash(c.EARFCN), orDash(c.Band), orDash(c.RSRPdBm), orDash(c.RSRQdB), orDash(c.SINRdB))
	}
	if p := j.Location; p != nil {
		fmt.Fprintf(w, "location  %.6f, %.6f  ±%.0f m  %d satellites\n", p.Lat, p.Lon, p.AccuracyM, p.Sats)
	}
}
