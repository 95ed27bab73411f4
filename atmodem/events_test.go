package atmodem

import (
	"slices"
	"testing"
	"time"
)

func regAt(stat int, lac, tac *uint32, cell uint64) *Registration {
	return &Registration{Stat: stat, State: StatWord(stat), LAC: lac, TAC: tac, CellID: &cell}
}

func pu32(n uint32) *uint32 { return &n }

// A poll that finds cs, ps and eps on a new cell gives one cell event
// listing the three domains (issue 16): cs and ps report the area in
// <lac>, eps in <tac>, as 27.007 has it on E-UTRAN. A domain on another
// cell is a change of its own; registration events stay per domain.
func TestOnePolledCellChangeOneEvent(t *testing.T) {
	m := NewMonitor(MonitorConfig{Now: func() time.Time { return time.Unix(1e9, 0) }})
	mcc, mnc := "001", "01"
	status := func(cs, ps, eps *Registration) *Status {
		return &Status{Registration: map[Domain]*Registration{DomainCS: cs, DomainPS: ps, DomainEPS: eps},
			Operator: Operator{MCC: &mcc, MNC: &mnc}, SIM: SIMInfo{State: SIMAbsent}}
	}
	old := status(regAt(1, pu32(0x1a2b), nil, 1), regAt(1, pu32(0x1a2b), nil, 1), regAt(1, nil, pu32(0x1a2b), 1))
	nw := status(regAt(1, pu32(0x1a2c), nil, 2), regAt(1, pu32(0x1a2c), nil, 2), regAt(1, nil, pu32(0x1a2c), 2))
	evs := m.changes(old, nw, "poll", SIMInfo{})
	if len(evs) != 1 || evs[0].Kind != EventCellChanged {
		t.Fatalf("want one cell_changed, got %v", evs)
	}
	ev := evs[0]
	if want := []Domain{DomainCS, DomainPS, DomainEPS}; !slices.Equal(ev.Domains, want) || ev.Domain != DomainCS {
		t.Fatalf("domains %v (domain %s), want %v", ev.Domains, ev.Domain, want)
	}
	if got := ev.String(); got != "cell_changed cs+ps+eps: plmn 00101 lac 1A2B cell 1 -> plmn 00101 lac 1A2C cell 2" {
		t.Fatal(got)
	}
	if j := ev.JSON(); j["domain"] != DomainCS || !slices.Equal(j["domains"].([]Domain), ev.Domains) {
		t.Fatalf("JSON %v", j)
	}

	// cs stays on a 2G cell of its own while ps and eps move: two events.
	nw2 := status(regAt(1, pu32(0x0077), nil, 9), regAt(1, pu32(0x1a2c), nil, 2), regAt(1, nil, pu32(0x1a2c), 2))
	evs = m.changes(old, nw2, "poll", SIMInfo{})
	if len(evs) != 2 || !slices.Equal(evs[0].Domains, []Domain{DomainCS}) || !slices.Equal(evs[1].Domains, []Domain{DomainPS, DomainEPS}) {
		t.Fatalf("want cs apart from ps+eps, got %v", evs)
	}
	if evs[0].CellKey() == evs[1].CellKey() || evs[1].CellKey() != "00101/6700/2" {
		t.Fatalf("cell keys %q %q", evs[0].CellKey(), evs[1].CellKey())
	}

	// Registration changes are not folded: each domain's state is its own.
	nw3 := status(regAt(2, nil, nil, 0), regAt(2, nil, nil, 0), regAt(1, nil, pu32(0x1a2b), 1))
	evs = m.changes(old, nw3, "poll", SIMInfo{})
	if len(evs) != 2 || evs[0].Kind != EventRegistration || evs[1].Kind != EventRegistration {
		t.Fatalf("want two registration events, got %v", evs)
	}
}
