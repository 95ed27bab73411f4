package modemsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mtcagent/mtcagent/atmodem/transcript"
)

// Scenario is the simulator's input (DESIGN.md §4): initial state, answer
// overrides and a timeline.
type Scenario struct {
	Dialect   string              `json:"dialect"`
	Modem     ModemState          `json:"modem"`
	SIM       SIMState            `json:"sim"`
	Network   Network             `json:"network"`
	GNSS      *GNSSFix            `json:"gnss,omitempty"` // the receiver's fix; none: no fix
	Responses map[string]Response `json:"responses"`
	Timeline  []Step              `json:"timeline"`
}

// ModemState identifies the simulated modem.
type ModemState struct {
	Manufacturer string `json:"manufacturer"`
	Model        string `json:"model"`
	Revision     string `json:"revision"`
	IMEI         string `json:"imei"`
}

// SIMState is the simulated SIM; State "ready", "absent", or a lock: "pin"
// or any sim.state word of a lock ("puk_required", "pin2_required",
// "ph_net_pin_required", ...; CPINCode).
type SIMState struct {
	State string `json:"state"`
	IMSI  string `json:"imsi"`
	ICCID string `json:"iccid"`
	// EID makes the SIM an eUICC whose ISD-R answers GET EID over a
	// logical channel (+CCHO/+CGLA/+CCHC).
	EID string `json:"eid,omitempty"`
}

// Network is the simulated network view. Pointer fields in a timeline
// patch change only what they name.
type Network struct {
	Stat     *int    `json:"stat,omitempty"`
	Act      *int    `json:"act,omitempty"`
	TAC      *uint32 `json:"tac,omitempty"`
	LAC      *uint32 `json:"lac,omitempty"`
	CellID   *uint64 `json:"cell_id,omitempty"`
	MCC      *string `json:"mcc,omitempty"`
	MNC      *string `json:"mnc,omitempty"`
	Operator *string `json:"operator,omitempty"`
	RSSIdBm  *int    `json:"rssi_dbm,omitempty"`
	RSRPdBm  *int    `json:"rsrp_dbm,omitempty"`
	RSRQdB   *int    `json:"rsrq_db,omitempty"`
	SINRdB   *int    `json:"sinr_db,omitempty"`
	PCI      *int    `json:"pci,omitempty"`
	EARFCN   *int    `json:"earfcn,omitempty"`
	Band     *int    `json:"band,omitempty"`
	// Connected: RRC connected rather than idle.
	Connected *bool `json:"connected,omitempty"`
}

func (n *Network) patch(p Network) {
	if p.Stat != nil {
		n.Stat = clone(p.Stat)
	}
	if p.Act != nil {
		n.Act = clone(p.Act)
	}
	if p.TAC != nil {
		n.TAC = clone(p.TAC)
	}
	if p.LAC != nil {
		n.LAC = clone(p.LAC)
	}
	if p.CellID != nil {
		n.CellID = clone(p.CellID)
	}
	if p.MCC != nil {
		n.MCC = clone(p.MCC)
	}
	if p.MNC != nil {
		n.MNC = clone(p.MNC)
	}
	if p.Operator != nil {
		n.Operator = clone(p.Operator)
	}
	if p.RSSIdBm != nil {
		n.RSSIdBm = clone(p.RSSIdBm)
	}
	if p.RSRPdBm != nil {
		n.RSRPdBm = clone(p.RSRPdBm)
	}
	if p.RSRQdB != nil {
		n.RSRQdB = clone(p.RSRQdB)
	}
	if p.SINRdB != nil {
		n.SINRdB = clone(p.SINRdB)
	}
	if p.PCI != nil {
		n.PCI = clone(p.PCI)
	}
	if p.EARFCN != nil {
		n.EARFCN = clone(p.EARFCN)
	}
	if p.Band != nil {
		n.Band = clone(p.Band)
	}
	if p.Connected != nil {
		n.Connected = clone(p.Connected)
	}
}

// GNSSFix is the position the simulated receiver reports once it is on
// (AT+QGPS=1 / AT+CGPS=1).
type GNSSFix struct {
	Lat  float64 `json:"lat"`
	Lon  float64 `json:"lon"`
	HDOP float64 `json:"hdop,omitempty"` // default 0.9
	Sats int     `json:"sats,omitempty"` // default 8
}

// Response replaces the simulated answer to one exact command line. In
// JSON it is a list of information lines (OK follows), a final result
// string ("ERROR", "+CME ERROR: 10"), or an object
// {"lines": [...], "final": "OK", "delay": "2s", "times": 1,
// "no_answer": false} with, for a hostile modem, "long", "raw", "endless"
// and "for" (docs/simulator.md).
type Response struct {
	Lines []string `json:"lines"`
	Final string   `json:"final"`
	Delay Duration `json:"delay"`
	// Times, when above 0, uses the response for that many answers; the
	// simulated answers return after (a one-off fault).
	Times int `json:"times,omitempty"`
	// NoAnswer: the command is swallowed, the host times out.
	NoAnswer bool `json:"no_answer,omitempty"`

	// Hostile answers. Long, when above 0, starts the answer with a
	// line of that many printable bytes and no line end yet; Raw follows
	// it verbatim (transcript escapes: \r, \n, \xHH for NULs and bytes
	// that are not UTF-8), then Lines and Final as usual.
	Long int    `json:"long,omitempty"`
	Raw  string `json:"raw,omitempty"`
	// Endless sends Lines over and over with no final result: until the
	// host sends its next command line (which aborts it, as V.250 §5.6.1
	// lets a DTE abort a command; Final then ends the reply and that line
	// is answered), or, with For, for that long whatever the host sends.
	Endless bool     `json:"endless,omitempty"`
	For     Duration `json:"for,omitempty"`
}

func (r *Response) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '[':
		r.Final = "OK"
		return json.Unmarshal(b, &r.Lines)
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, &r.Final)
	}
	type plain Response
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return err
	}
	if p.Times < 0 {
		return fmt.Errorf("response: times %d is negative", p.Times)
	}
	if p.Long < 0 {
		return fmt.Errorf("response: long %d is negative", p.Long)
	}
	if _, err := transcript.Unescape(p.Raw); err != nil {
		return fmt.Errorf("response: raw: %w", err)
	}
	if p.Endless && len(p.Lines) == 0 {
		return fmt.Errorf("response: endless needs lines to repeat")
	}
	if p.For > 0 && !p.Endless {
		return fmt.Errorf("response: for needs endless")
	}
	if p.Final == "" {
		p.Final = "OK"
	}
	*r = Response(p)
	return nil
}

// Step is one timeline entry: at a time, one of a URC, a SIM change, a
// network change, answer overrides (as "responses", usually with "times")
// or a fault (with a duration).
type Step struct {
	At      Duration            `json:"at"`
	URC     string              `json:"urc,omitempty"`
	Respond map[string]Response `json:"respond,omitempty"`
	SIM     json.RawMessage     `json:"sim,omitempty"` // "remove" or {"imsi","iccid"}
	Network *Network            `json:"network,omitempty"`
	GNSS    *GNSSFix            `json:"gnss,omitempty"` // a new fix (the device moved)
	Fault   string              `json:"fault,omitempty"`
	For     Duration            `json:"for,omitempty"`
	Flap    *Flap               `json:"flap,omitempty"`
}

// Flap is a cell storm: the serving cell ping-pongs between Cells, Times
// changes in a row (the first goes to Cells[0]), each followed by the
// registration URCs the host enabled, with Every between changes (none by
// default: as fast as the line takes them). The last cell stays.
type Flap struct {
	Cells []uint64 `json:"cells"`
	Times int      `json:"times"`
	Every Duration `json:"every,omitempty"`
}

// Faults the simulator can play.
var Faults = []string{"silence", "garbage", "partial", "echo", "reboot", "unplug"}

// Duration is a time.Duration written as "3s" in JSON.
type Duration time.Duration

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"3s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("bad duration %q", s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Load reads a scenario file.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sc, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// Parse decodes and checks a scenario; unknown keys are refused.
func Parse(b []byte) (*Scenario, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	sc := &Scenario{}
	if err := dec.Decode(sc); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	if err := sc.check(); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	sc.defaults()
	return sc, nil
}

func (sc *Scenario) check() error {
	known := sc.Dialect == ""
	for _, d := range Dialects {
		known = known || d == sc.Dialect
	}
	if !known {
		return fmt.Errorf("dialect %q: want one of %s", sc.Dialect, strings.Join(Dialects, ", "))
	}
	if st := sc.SIM.State; st != "" && st != "ready" && st != "absent" && CPINCode(st) == "" {
		return fmt.Errorf("sim state %q: want ready, absent, pin or a lock word such as ph_net_pin_required", st)
	}
	for i, st := range sc.Timeline {
		n := 0
		if st.URC != "" {
			n++
		}
		if len(st.SIM) > 0 {
			n++
			if _, _, err := st.simChange(); err != nil {
				return fmt.Errorf("timeline[%d]: %w", i, err)
			}
		}
		if st.Network != nil {
			n++
		}
		if len(st.Respond) > 0 {
			n++
		}
		if st.Fault != "" {
			n++
			ok := false
			for _, f := range Faults {
				ok = ok || f == st.Fault
			}
			if !ok {
				return fmt.Errorf("timeline[%d]: unknown fault %q (want one of %s)", i, st.Fault, strings.Join(Faults, ", "))
			}
		}
		if st.Flap != nil {
			n++
			if len(st.Flap.Cells) < 2 || st.Flap.Times < 1 {
				return fmt.Errorf("timeline[%d]: flap wants at least two cells and times >= 1", i)
			}
		}
		if n != 1 {
			return fmt.Errorf("timeline[%d]: want exactly one of urc, sim, network, respond, fault, flap", i)
		}
	}
	return nil
}

// simChange decodes a step's sim: remove, or a new SIM.
func (st Step) simChange() (remove bool, s SIMState, err error) {
	var word string
	if json.Unmarshal(st.SIM, &word) == nil {
		if word != "remove" {
			return false, s, fmt.Errorf("sim %q: want \"remove\" or an object", word)
		}
		return true, s, nil
	}
	dec := json.NewDecoder(bytes.NewReader(st.SIM))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return false, s, fmt.Errorf("sim: %w", err)
	}
	return false, s, nil
}

func (sc *Scenario) defaults() {
	if sc.Dialect == "" {
		sc.Dialect = "generic"
	}
	m := &sc.Modem
	if m.Manufacturer == "" {
		m.Manufacturer = defaultIdentity[sc.Dialect][0]
	}
	if m.Model == "" {
		m.Model = defaultIdentity[sc.Dialect][1]
	}
	if m.Revision == "" {
		m.Revision = "SIM1.0"
	}
	if m.IMEI == "" {
		m.IMEI = "350000000000001" // test value, not a real device
	}
	if sc.SIM.State == "" {
		sc.SIM.State = "ready"
	}
	if sc.SIM.IMSI == "" && sc.SIM.State != "absent" {
		sc.SIM.IMSI = "001010000000001" // test network 001-01
	}
	if sc.SIM.ICCID == "" && sc.SIM.State != "absent" {
		sc.SIM.ICCID = "8900100000000000001"
	}
	n := &sc.Network
	def := Network{Stat: ip(1), Act: ip(7), TAC: u32p(0x1a2b), CellID: u64p(0x01a2d101), MCC: sp("001"), MNC: sp("01"),
		Operator: sp("Test Network"), RSSIdBm: ip(-71), RSRPdBm: ip(-95), RSRQdB: ip(-9), SINRdB: ip(15), PCI: ip(123),
		EARFCN: ip(1300), Band: ip(3), Connected: bp(false)}
	def.patch(*n)
	*n = def
	if n.LAC == nil {
		n.LAC = n.TAC
	}
}

// clone copies a patch value, so the caller's variable never aliases the
// simulator's state.
func clone[T any](p *T) *T { v := *p; return &v }

func ip(v int) *int         { return &v }
func sp(v string) *string   { return &v }
func bp(v bool) *bool       { return &v }
func u32p(v uint32) *uint32 { return &v }
func u64p(v uint64) *uint64 { return &v }

// CPINCode is the +CPIN <code> (27.007 §8.3) a SIM in state word w
// answers: "pin" or "pin_required" is "SIM PIN", "ph_net_puk_required" is
// "PH-NET PUK"; "" for a word that is no lock.
func CPINCode(w string) string {
	w = strings.TrimSuffix(w, "_required")
	switch w {
	case "pin", "puk", "pin2", "puk2":
		return "SIM " + strings.ToUpper(w)
	}
	rest, ok := strings.CutPrefix(w, "ph_")
	if !ok {
		return ""
	}
	i := strings.LastIndexByte(rest, '_')
	if i < 0 {
		return ""
	}
	who, what := rest[:i], rest[i+1:]
	switch who {
	case "sim", "fsim", "net", "netsub", "sp", "corp":
	default:
		return ""
	}
	if what != "pin" && what != "puk" || who == "sim" && what == "puk" {
		return ""
	}
	return "PH-" + strings.ToUpper(who) + " " + strings.ToUpper(what)
}
