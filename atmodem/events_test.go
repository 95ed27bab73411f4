package atmodem

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/internal/clock"
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
	m := NewMonitor(MonitorConfig{Clock: clock.NewFake(time.Unix(1e9, 0), true)})
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

// A modem prints +CREG, +CGREG and +CEREG for one change back to back:
// the URCs already queued together are one cell event for the three
// domains, emitted when the last of them is handled; a URC that comes
// after the queue ran dry is emitted at once, on its own.
func TestURCBurstOneCellEvent(t *testing.T) {
	var got []Event
	m := NewMonitor(MonitorConfig{Clock: clock.NewFake(time.Unix(1e9, 0), true), OnEvent: func(ev Event) { got = append(got, ev) }})
	mcc, mnc := "001", "01"
	st := &Status{Registration: map[Domain]*Registration{
		DomainCS: regAt(1, pu32(0x1a2b), nil, 1), DomainPS: regAt(1, pu32(0x1a2b), nil, 1), DomainEPS: regAt(1, nil, pu32(0x1a2b), 1)},
		Operator: Operator{MCC: &mcc, MNC: &mnc}, SIM: SIMInfo{State: SIMAbsent}}
	m.status, m.known = st, st
	queued := 0 // registration URCs still queued behind the one handled
	m.regQueued = func() bool { return queued > 0 }
	burst := []struct {
		d    Domain
		line string
	}{
		{DomainCS, `+CREG: 1,"1A2C","00000002",7`},
		{DomainPS, `+CGREG: 1,"1A2C","00000002",7`},
		{DomainEPS, `+CEREG: 1,"1A2C","00000002",7`},
	}
	for i, u := range burst {
		queued = len(burst) - 1 - i
		m.onRegURC(u.d, u.line)
		if i < len(burst)-1 && len(got) != 0 {
			t.Fatalf("emitted %v while the burst's URCs were still queued", got)
		}
	}
	if len(got) != 1 || got[0].Kind != EventCellChanged || !slices.Equal(got[0].Domains, []Domain{DomainCS, DomainPS, DomainEPS}) {
		t.Fatalf("one burst: %v, want one cell_changed for cs, ps and eps", got)
	}
	// A URC alone (nothing queued behind it) goes at once.
	got, queued = nil, 0
	m.onRegURC(DomainEPS, `+CEREG: 1,"1A2D","00000003",7`)
	if len(got) != 1 || !slices.Equal(got[0].Domains, []Domain{DomainEPS}) {
		t.Fatalf("a URC alone: %v", got)
	}
	// A -> B -> A in one burst of one domain is three changes, in order.
	got, queued = nil, 2
	for i, c := range []int{5, 6, 5} {
		queued = 2 - i
		m.onRegURC(DomainEPS, fmt.Sprintf(`+CEREG: 1,"1A2D","%08X",7`, c))
	}
	if len(got) != 3 || *got[0].NewReg.CellID != 5 || *got[1].NewReg.CellID != 6 || *got[2].NewReg.CellID != 5 {
		t.Fatalf("A -> B -> A in one burst: %v", got)
	}
	// A flood is emitted in bounded batches, not held while it lasts.
	got, queued = nil, 1
	for i := range 3 * maxURCBatch {
		m.onRegURC(DomainEPS, fmt.Sprintf(`+CEREG: 1,"1A2D","%08X",7`, 10+i))
	}
	if len(got) < 2*maxURCBatch {
		t.Fatalf("a flood of %d URCs: %d events emitted while it goes on", 3*maxURCBatch, len(got))
	}
	m.flushURCs(true)
	if len(got) != 3*maxURCBatch {
		t.Fatalf("after the flood: %d events, want %d", len(got), 3*maxURCBatch)
	}
}
