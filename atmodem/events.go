package atmodem

import (
	"fmt"
	"slices"
	"time"
)

// EventKind names what happened.
type EventKind string

// The events a Monitor reports.
const (
	EventSIMRemoved  EventKind = "sim_removed"
	EventSIMInserted EventKind = "sim_inserted"
	EventSIMChanged  EventKind = "sim_changed" // a different SIM than the last one seen
	// EventSIMIdentified: the SIM's identity was read for the first time
	// after reads that failed. Not a change: NewSIM is what is there.
	EventSIMIdentified EventKind = "sim_identified"
	EventRegistration  EventKind = "registration_changed"
	EventCellChanged   EventKind = "cell_changed" // cell, TAC/LAC or PLMN
	EventModemReset    EventKind = "modem_reset"
	EventPortLost      EventKind = "port_lost"
	EventPortRegained  EventKind = "port_regained"
)

// Event is one change seen on the modem, from a URC or from polling.
// Identifiers are ident types: printing an Event redacts them.
type Event struct {
	Kind   EventKind
	Time   time.Time
	Source string // "urc" or "poll"
	Domain Domain // registration and cell events; for a cell event, Domains[0]
	// Domains, for a cell event, are the registration domains that
	// report the new cell in the reading the event comes from, in the
	// order of Domains: a poll that finds cs, ps and eps on the same new
	// cell gives one event for the three; a URC carries one domain.
	Domains []Domain

	OldReg, NewReg *Registration
	OldPLMN        string // "26201"; cell events
	NewPLMN        string
	OldSIM, NewSIM SIMInfo // SIM events
	Err            error   // port_lost: why
}

func (e Event) String() string {
	switch e.Kind {
	case EventRegistration:
		return fmt.Sprintf("%s %s: %s -> %s", e.Kind, e.Domain, regWord(e.OldReg), regWord(e.NewReg))
	case EventCellChanged:
		return fmt.Sprintf("%s %s: %s -> %s", e.Kind, domainsWord(e), cellWord(e.OldPLMN, e.OldReg), cellWord(e.NewPLMN, e.NewReg))
	case EventPortLost:
		if e.Err != nil {
			return fmt.Sprintf("%s: %v", e.Kind, e.Err)
		}
	}
	return string(e.Kind)
}

func domainsWord(e Event) string {
	if len(e.Domains) < 2 {
		return string(e.Domain)
	}
	w := string(e.Domains[0])
	for _, d := range e.Domains[1:] {
		w += "+" + string(d)
	}
	return w
}

func regWord(r *Registration) string {
	if r == nil {
		return "none"
	}
	return r.State
}

func cellWord(plmn string, r *Registration) string {
	if r == nil {
		return "none"
	}
	area := "?"
	switch {
	case r.TAC != nil:
		area = fmt.Sprintf("tac %X", *r.TAC)
	case r.LAC != nil:
		area = fmt.Sprintf("lac %X", *r.LAC)
	}
	cell := "?"
	if r.CellID != nil {
		cell = fmt.Sprintf("%X", *r.CellID)
	}
	return fmt.Sprintf("plmn %s %s cell %s", plmn, area, cell)
}

func u32v(p *uint32) int64 {
	if p == nil {
		return -1
	}
	return int64(*p)
}

func u64v(p *uint64) int64 {
	if p == nil {
		return -1
	}
	return int64(*p)
}

// sameCell compares the location part of two registrations.
func sameCell(a, b *Registration) bool {
	return u32v(a.TAC) == u32v(b.TAC) && u32v(a.LAC) == u32v(b.LAC) && u64v(a.CellID) == u64v(b.CellID)
}

// area is a registration's area code: the TAC, or else the LAC. 27.007
// has +CREG and +CGREG report the TAC in their <lac> field when <AcT> is
// E-UTRAN, so the same cell reads as LAC in cs and ps and as TAC in eps;
// -1 when there is none.
func area(r *Registration) int64 {
	if r.TAC != nil {
		return int64(*r.TAC)
	}
	return u32v(r.LAC)
}

// samePlace says whether two domains' registrations name the same cell:
// the same area code (TAC or LAC, see area) and cell id.
func samePlace(a, b *Registration) bool {
	if a == nil || b == nil {
		return a == b
	}
	return area(a) == area(b) && u64v(a.CellID) == u64v(b.CellID)
}

// CellKey names the cell a cell event moved to, the same for every
// registration domain that reports that cell: PLMN, area code (TAC or
// LAC) and cell id, "-" for what is not known.
func (e Event) CellKey() string {
	r := e.NewReg
	if r == nil {
		return e.NewPLMN + "/-/-"
	}
	k := e.NewPLMN + "/"
	if a := area(r); a >= 0 {
		k += fmt.Sprint(a)
	} else {
		k += "-"
	}
	if r.CellID != nil {
		return k + "/" + fmt.Sprint(*r.CellID)
	}
	return k + "/-"
}

// diffReg returns the events from old to new registration of one domain.
// A URC that carries no location (n=1) keeps the previous location.
func diffReg(d Domain, old, nw *Registration, oldPLMN, newPLMN, source string, now time.Time) []Event {
	if nw == nil {
		return nil
	}
	var evs []Event
	if old == nil || old.Stat != nw.Stat {
		evs = append(evs, Event{Kind: EventRegistration, Time: now, Source: source, Domain: d, OldReg: old, NewReg: nw})
	}
	if old != nil && old.Registered() && nw.Registered() {
		locChanged := (nw.CellID != nil || nw.TAC != nil || nw.LAC != nil) && !sameCell(old, nw)
		if locChanged || (oldPLMN != "" && newPLMN != "" && oldPLMN != newPLMN) {
			evs = append(evs, Event{Kind: EventCellChanged, Time: now, Source: source, Domain: d, Domains: []Domain{d}, OldReg: old, NewReg: nw, OldPLMN: oldPLMN, NewPLMN: newPLMN})
		}
	}
	return evs
}

// coalesceCells folds the cell events of one reading (a poll, or a burst
// of URCs) that report the same new cell (PLMN, area code and cell id:
// CellKey) in several registration domains into the first of them, which
// then lists every such domain in Domains: one change of cell is one
// event, however many domains see it. An event is folded only into the
// last cell event before it, and only when its domain is not in that one
// yet, so a modem that went from A to B and back to A in one burst still
// gives three changes, in order. Other events and their order are kept.
func coalesceCells(evs []Event) []Event {
	out := evs[:0:0]
	last := -1 // the last cell event in out
	for _, ev := range evs {
		if ev.Kind == EventCellChanged && last >= 0 {
			o := &out[last]
			if o.NewPLMN == ev.NewPLMN && samePlace(o.NewReg, ev.NewReg) && !slices.Contains(o.Domains, ev.Domain) {
				o.Domains = append(o.Domains[:len(o.Domains):len(o.Domains)], ev.Domain)
				continue
			}
		}
		out = append(out, ev)
		if ev.Kind == EventCellChanged {
			last = len(out) - 1
		}
	}
	return out
}

// diffSIM returns the SIM events from old (the last known reading) to
// new; last is the last SIM identity seen (kept across a removal, so a
// different SIM is noticed). An unknown new reading is no event and leaves
// last alone; an unknown old one is the start: nothing to compare with but
// last.
func diffSIM(old, nw SIMInfo, last *SIMInfo, source string, now time.Time) []Event {
	if !nw.Known() {
		return nil
	}
	var evs []Event
	if !old.Known() {
		switch is := nw.State == SIMReady; {
		case is && last.State == SIMReady && !last.Same(nw):
			evs = append(evs, Event{Kind: EventSIMChanged, Time: now, Source: source, OldSIM: *last, NewSIM: nw})
		case nw.State == SIMAbsent && last.State == SIMReady:
			evs = append(evs, Event{Kind: EventSIMRemoved, Time: now, Source: source, OldSIM: *last, NewSIM: nw})
		default:
			evs = append(evs, Event{Kind: EventSIMIdentified, Time: now, Source: source, NewSIM: nw})
		}
		if nw.State == SIMReady {
			*last = nw
		}
		return evs
	}
	was, is := old.State == SIMReady, nw.State == SIMReady
	if old.State == nw.State && (!is || (old.IMSI.Equal(nw.IMSI) && old.ICCID.Equal(nw.ICCID))) {
		return nil
	}
	if was && nw.State == SIMAbsent {
		evs = append(evs, Event{Kind: EventSIMRemoved, Time: now, Source: source, OldSIM: old, NewSIM: nw})
	}
	if !was && is && old.State != "" {
		evs = append(evs, Event{Kind: EventSIMInserted, Time: now, Source: source, OldSIM: *last, NewSIM: nw})
	}
	if is && last.State == SIMReady && (!last.IMSI.Equal(nw.IMSI) || !last.ICCID.Equal(nw.ICCID)) {
		evs = append(evs, Event{Kind: EventSIMChanged, Time: now, Source: source, OldSIM: *last, NewSIM: nw})
	}
	if is {
		*last = nw
	}
	return evs
}

// JSON is the event for scripts (mtcagent watch --json). SIM identities
// are not in it: only whether they changed.
func (e Event) JSON() map[string]any {
	m := map[string]any{"kind": e.Kind, "time": e.Time.UTC().Format(time.RFC3339Nano), "source": e.Source}
	if e.Domain != "" {
		m["domain"] = e.Domain
		m["old"], m["new"] = e.OldReg, e.NewReg
	}
	if len(e.Domains) > 0 {
		m["domains"] = e.Domains
	}
	if e.NewPLMN != "" {
		m["old_plmn"], m["new_plmn"] = e.OldPLMN, e.NewPLMN
	}
	if e.Err != nil {
		m["error"] = e.Err.Error()
	}
	return m
}
