package atmodem

import (
	"fmt"
	"io"
	"strings"
)

func orDash[T any](p *T) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

// WriteText prints the status for a person, as `mtcagent status` does: one
// line per part, "-" for what is unknown.
func (j *StatusJSON) WriteText(w io.Writer) {
	fmt.Fprintf(w, "modem     %s %s (%s), dialect %s\n", orDash(j.Modem.Manufacturer), orDash(j.Modem.Model), orDash(j.Modem.Revision), j.Dialect)
	fmt.Fprintf(w, "imei      %s\n", orDash(j.Modem.IMEI))
	fmt.Fprintf(w, "sim       %s  imsi %s  iccid %s\n", orDash(j.SIM.State), orDash(j.SIM.IMSI), orDash(j.SIM.ICCID))
	if j.SIM.EID != nil {
		fmt.Fprintf(w, "eid       %s\n", *j.SIM.EID)
	}
	regs := []struct {
		name string
		r    *Registration
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
