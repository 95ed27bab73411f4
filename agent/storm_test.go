package agent

import (
	"crypto/ed25519"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/clock"
)

// Storms and flapping (issue 12, bullet 3).

// TestCellStormThenSIMRemoval: the simulated modem ping-pongs between two
// cells 10,000 times (a +CEREG URC per hop, plus +CREG/+CGREG), then the
// SIM is pulled. The sim_removed event is queued, and at most 100 signed
// cell events come out of the storm. (Before: one signed cell_changed per
// URC and domain, thousands of them, and modem events dropped by the full
// event queue.)
func TestCellStormThenSIMRemoval(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Poll = slow(time.Second)
	cfg.Heartbeat = 0
	h := start(t, `{"dialect": "quectel"}`, cfg)
	h.waitFor(t, "sim_bound")
	h.sim.Flap(modemsim.Flap{Cells: []uint64{0x1A2D102, 0x1A2D103}, Times: 10000})
	h.sim.RemoveSIM()
	h.waitFor(t, "sim_removed") // signed and queued: recorded after the outbox took it
	// Let the agent take the rest of the storm, then stop it and look.
	for deadline := time.Now().Add(slow(20 * time.Second)); len(h.a.events) > 0 || h.sim.URCMode("+CEREG") == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the agent never took the storm")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	h.stop()
	if seen := h.a.storm.count + int(h.a.cellDropped.Load()); seen < 1000 {
		t.Fatalf("the storm reached the agent as %d suppressed changes, want thousands", seen)
	}
	cells := 0
	for _, e := range h.signedEvents(t) {
		if e == "cell_changed" || e == EventCellFlapping {
			cells++
		}
	}
	if cells > 100 {
		t.Fatalf("%d signed cell events from one storm, want <= 100", cells)
	}
	t.Logf("%d signed cell events, %d messages in all, %d changes folded", cells, len(h.out.Messages()), h.a.storm.count)
}

func cellEvent(cell uint32) atmodem.Event { // LTE, registered home, TAC 0x1A2B
	tac, id, act := uint32(0x1A2B), uint64(cell), 7
	return atmodem.Event{Kind: atmodem.EventCellChanged, Domain: atmodem.DomainEPS, OldPLMN: "00101", NewPLMN: "00101",
		NewReg: &atmodem.Registration{Stat: 1, TAC: &tac, CellID: &id, AcT: &act}}
}

// TestCellFlappingSummary: a ping-pong between three cells becomes a few
// cell_changed events and, once the cell stays put for CellQuiet, one
// signed cell_flapping event with the count, the window and the number of
// cells, then a cell_changed for the cell it settled on (time injected).
func TestCellFlappingSummary(t *testing.T) {
	a, ob, _, dir := newStorageAgent(t)
	clk := clock.NewFake(time.Unix(1000, 0), true)
	a.deps.Clock = clk
	for i := range 1001 {
		a.onModemEvent(cellEvent(uint32(100 + i%3)))
		clk.Advance(10 * time.Millisecond)
	}
	got := signedEvents(t, dir, ob.Messages())
	if want := slices.Repeat([]string{"cell_changed"}, CellBurst); !slices.Equal(got, want) {
		t.Fatalf("during the storm: %v, want %v", got, want)
	}
	clk.Advance(CellQuiet)
	a.checkStorm(clock.Mono(clk))
	got = signedEvents(t, dir, ob.Messages())
	if want := append(slices.Repeat([]string{"cell_changed"}, CellBurst), EventCellFlapping, "cell_changed"); !slices.Equal(got, want) {
		t.Fatalf("after the storm: %v, want %v", got, want)
	}
	var flap, final EventRecord
	for _, e := range a.Recent() {
		switch {
		case e.Type == EventCellFlapping:
			flap = e
		case e.Type == "cell_changed" && e.Details["after_flapping"] == true:
			final = e
		}
	}
	if flap.Details["count"] != 1001-CellBurst || flap.Details["cells"] != 3 || flap.Details["settled"] != true {
		t.Fatalf("cell_flapping details = %v", flap.Details)
	}
	if w := flap.Details["window_s"].(int64); w < 9 || w > 11 {
		t.Fatalf("window_s = %d, want about 10", w)
	}
	if final.Type == "" {
		t.Fatal("no cell_changed for the cell the storm settled on")
	}
	// A steady state afterwards: changes are reported one by one again.
	clk.Advance(CellWindow)
	a.onModemEvent(cellEvent(7))
	if n := len(ob.Messages()); n != CellBurst+3 {
		t.Fatalf("after the storm a single change queued %d messages, want %d", n, CellBurst+3)
	}
}

func openDurable(t *testing.T, a *Agent, max int) *outbox.Outbox {
	t.Helper()
	o, err := outbox.Open(filepath.Join(t.TempDir(), "outbox"), outbox.Options{MaxMessages: max})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	a.deps.Outbox = DurableQueue{O: o}
	return o
}

func pendingEvents(t *testing.T, a *Agent, o *outbox.Outbox) []attest.Token {
	t.Helper()
	ms, err := o.Pending(0)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := a.signer.Public().(ed25519.PublicKey)
	v := attest.Verifier{Key: pub, SkipFreshness: true}
	var out []attest.Token
	for _, m := range ms {
		r, err := v.Verify(m.Data[1:])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, *r.Token)
	}
	return out
}

// TestFullOutboxTakesSIMEvent: an outbox filled by cell events and
// heartbeats still takes the SIM event, by evicting the oldest cell
// events; a signed storage_gap event then says how many cell events were
// not kept, and why. (Before: the SIM event was refused, "not queued".)
func TestFullOutboxTakesSIMEvent(t *testing.T) {
	a, _, _, _ := newStorageAgent(t)
	const max = 20
	o := openDurable(t, a, max)
	for range 30 {
		a.emit("cell_changed", map[string]any{"domain": "eps"})
	}
	for n, _ := o.Len(); n < max; n, _ = o.Len() {
		a.signAndQueue("heartbeat", KindHeartbeatMsg, nil, func() ([]byte, error) { return a.issuer.SignHeartbeat() })
	}
	a.emit("sim_removed", nil)
	var sim, gap bool
	for _, tok := range pendingEvents(t, a, o) {
		sim = sim || tok.Event == "sim_removed"
		gap = gap || tok.Event == EventStorageGap
	}
	if !sim {
		t.Fatal("sim_removed not queued in a full outbox")
	}
	if !gap {
		t.Fatal("no storage_gap event reporting the cell events given up")
	}
	// Every cell event is either pending or counted in a storage_gap.
	pendingCells, gapCells, evicted := 0, 0, false
	for _, tok := range pendingEvents(t, a, o) {
		if tok.Event == "cell_changed" {
			pendingCells++
		}
	}
	for _, e := range a.Recent() {
		if e.Type != EventStorageGap {
			continue
		}
		lost, _ := e.Details["lost"].(map[string]any)
		n, _ := lost["cell_changed"].(int)
		gapCells += n
		c, _ := e.Details["cause"].([]string)
		evicted = evicted || slices.Contains(c, causeEvicted)
	}
	if pendingCells+gapCells != 30 || !evicted {
		t.Fatalf("cell events: %d pending + %d reported lost (evicted reported: %v), want 30 in all", pendingCells, gapCells, evicted)
	}
	if n, _ := o.Len(); n > max {
		t.Fatalf("outbox holds %d > %d", n, max)
	}
}

// TestFullOutboxOfHighEventsHolds: an outbox full of events that may not
// be evicted holds the SIM event in memory; once the collector takes
// messages, the retry queues it.
func TestFullOutboxOfHighEventsHolds(t *testing.T) {
	a, _, _, _ := newStorageAgent(t)
	o := openDurable(t, a, 5)
	for range 5 {
		a.emit("connectivity_lost", nil)
	}
	a.emit("sim_removed", nil)
	if held, _ := a.Held(); held != 1 {
		t.Fatalf("held = %d, want the SIM event held", held)
	}
	ms, _ := o.Pending(2)
	if err := o.Ack(ms[1].ID); err != nil {
		t.Fatal(err)
	}
	a.RetryStorage()
	toks := pendingEvents(t, a, o)
	if toks[len(toks)-1].Event != "sim_removed" {
		t.Fatalf("after room was made: last queued %q, want sim_removed", toks[len(toks)-1].Event)
	}
	if n, _ := o.Len(); n != 4 {
		t.Fatalf("outbox holds %d, want 4", n)
	}
}

// TestCellShareOfOutbox: cell events stop at their share of the outbox
// (without taking sequence numbers), leaving the rest for other events.
func TestCellShareOfOutbox(t *testing.T) {
	a, _, _, _ := newStorageAgent(t)
	o := openDurable(t, a, 40)
	for range 100 {
		a.emit("cell_changed", nil)
	}
	if n, _ := o.Len(); n != 40/LowShare {
		t.Fatalf("cell events took %d of 40, want %d", n, 40/LowShare)
	}
	for range 40 - 40/LowShare {
		a.emit("connectivity_lost", nil)
	}
	// The storage_gap event for the refused cell events takes one more
	// slot: the oldest cell event makes room for it.
	conn := 0
	for _, tok := range pendingEvents(t, a, o) {
		if tok.Event == "connectivity_lost" {
			conn++
		}
	}
	if n, _ := o.Len(); n != 40 || conn != 40-40/LowShare {
		t.Fatalf("outbox holds %d, %d connectivity_lost; want 40, %d", n, conn, 40-40/LowShare)
	}
}

// TestOutboxFullGapsRateLimited: cell events refused because their share
// of the outbox is used are reported in one storage_gap per GapEvery, not
// one per retry, while a SIM event is followed by one at once.
func TestOutboxFullGapsRateLimited(t *testing.T) {
	a, _, _, _ := newStorageAgent(t)
	clk := clock.NewFake(time.Unix(1000, 0), true)
	a.deps.Clock = clk
	o := openDurable(t, a, 20)
	gaps := func() int {
		n := 0
		for _, tok := range pendingEvents(t, a, o) {
			if tok.Event == EventStorageGap {
				n++
			}
		}
		return n
	}
	for range 10 + 1 { // the share, then one refused
		a.emit("cell_changed", nil)
	}
	a.RetryStorage() // the first loss is reported at once
	if g := gaps(); g != 1 {
		t.Fatalf("%d storage_gap events, want 1", g)
	}
	for range 50 {
		a.emit("cell_changed", nil)
		clk.Advance(2 * time.Second)
		a.RetryStorage()
	}
	if g := gaps(); g != 1 {
		t.Fatalf("%d storage_gap events within %v, want 1", g, GapEvery)
	}
	a.emit("sim_removed", nil)
	if g := gaps(); g != 2 {
		t.Fatalf("%d storage_gap events after the SIM event, want 2", g)
	}
	clk.Advance(GapEvery)
	a.emit("cell_changed", nil)
	a.RetryStorage()
	if g := gaps(); g != 3 {
		t.Fatalf("%d storage_gap events after %v, want 3", g, GapEvery)
	}
}

// TestCellChangeAcrossDomainsCountsOnce: a change of cell seen in the cs,
// ps and eps domains is one change against the limit, so a device that
// moves through CellBurst cells in a minute is not taken for a flapping
// one (before, each domain's event counted, and the second move of a
// three-domain modem started a storm). Since issue 16 it is also one
// signed event, not one per domain.
func TestCellChangeAcrossDomainsCountsOnce(t *testing.T) {
	a, ob, _, dir := newStorageAgent(t)
	clk := clock.NewFake(time.Unix(1000, 0), true)
	a.deps.Clock = clk
	for i := range CellBurst {
		for _, d := range []atmodem.Domain{atmodem.DomainCS, atmodem.DomainPS, atmodem.DomainEPS} {
			ev := cellEvent(uint32(200 + i))
			ev.Domain = d
			a.onModemEvent(ev)
			clk.Advance(100 * time.Millisecond)
		}
		clk.Advance(10 * time.Second)
	}
	got := signedEvents(t, dir, ob.Messages())
	if want := slices.Repeat([]string{"cell_changed"}, CellBurst); !slices.Equal(got, want) {
		t.Fatalf("%d moves in three domains: %v, want one signed event per move, no storm", CellBurst, got)
	}
	if a.storm.active {
		t.Fatal("a storm began")
	}
}

// TestOneCellChangeOneEvent (issue 16): one change of cell is one signed
// cell_changed, however many registration domains report it. URCs come a
// domain at a time: the first is signed at once, the same cell from the
// other domains within sameChange adds nothing; a poll's event carries
// the domains it found on the cell, and the event lists them.
func TestOneCellChangeOneEvent(t *testing.T) {
	a, ob, _, dir := newStorageAgent(t)
	clk := clock.NewFake(time.Unix(1000, 0), true)
	a.deps.Clock = clk
	inDomain := func(ev atmodem.Event, ds ...atmodem.Domain) atmodem.Event {
		ev.Domain, ev.Domains = ds[0], ds
		if ds[0] != atmodem.DomainEPS { // cs and ps report the TAC in <lac> on LTE
			ev.NewReg = &atmodem.Registration{Stat: 1, LAC: ev.NewReg.TAC, CellID: ev.NewReg.CellID, AcT: ev.NewReg.AcT}
		}
		return ev
	}
	// URCs: eps, then ps and cs a few milliseconds later.
	a.onModemEvent(inDomain(cellEvent(0x101), atmodem.DomainEPS))
	if got := signedEvents(t, dir, ob.Messages()); !slices.Equal(got, []string{"cell_changed"}) {
		t.Fatalf("the first domain's URC: %v, want one cell_changed at once", got)
	}
	clk.Advance(5 * time.Millisecond)
	a.onModemEvent(inDomain(cellEvent(0x101), atmodem.DomainPS))
	clk.Advance(5 * time.Millisecond)
	a.onModemEvent(inDomain(cellEvent(0x101), atmodem.DomainCS))
	if got := signedEvents(t, dir, ob.Messages()); !slices.Equal(got, []string{"cell_changed"}) {
		t.Fatalf("one change in three domains: %v, want one cell_changed", got)
	}
	// A poll: one event for the three domains.
	clk.Advance(10 * time.Second)
	a.onModemEvent(inDomain(cellEvent(0x102), atmodem.DomainCS, atmodem.DomainPS, atmodem.DomainEPS))
	clk.Advance(5 * time.Millisecond)
	a.onModemEvent(inDomain(cellEvent(0x102), atmodem.DomainEPS)) // a late URC of the same change
	if got := signedEvents(t, dir, ob.Messages()); !slices.Equal(got, []string{"cell_changed", "cell_changed"}) {
		t.Fatalf("two changes: %v, want two cell_changed", got)
	}
	var recs []EventRecord
	for _, e := range a.Recent() {
		if e.Type == "cell_changed" {
			recs = append(recs, e)
		}
	}
	if len(recs) != 2 {
		t.Fatalf("recent cell events %v", recs)
	}
	if d := recs[0].Details; d["domain"] != "eps" || !slices.Equal(d["domains"].([]string), []string{"eps"}) {
		t.Fatalf("URC change details %v", d)
	}
	if d := recs[1].Details; d["domain"] != "cs" || !slices.Equal(d["domains"].([]string), []string{"cs", "ps", "eps"}) {
		t.Fatalf("polled change details %v", d)
	}
	// The same cell again after sameChange is a new change (back and forth).
	clk.Advance(sameChange)
	a.onModemEvent(inDomain(cellEvent(0x101), atmodem.DomainEPS))
	if n := len(signedEvents(t, dir, ob.Messages())); n != 3 {
		t.Fatalf("a change back after %s: %d events, want 3", sameChange, n)
	}
}

// TestStormTimerOnClock: the storm's timer runs on the agent's clock and
// falls due exactly CellQuiet after the last change, not a millisecond
// before; when it fires, the summary is signed (fake clock: the event loop's
// timer case is what the test does by hand).
func TestStormTimerOnClock(t *testing.T) {
	a, ob, _, dir := newStorageAgent(t)
	clk := clock.NewFake(time.Unix(1000, 0), true)
	a.deps.Clock = clk
	for i := range 20 { // 20 changes in 20 s: a storm after CellBurst
		a.onModemEvent(cellEvent(uint32(100 + i%3)))
		clk.Advance(time.Second)
	}
	if a.stormC() == nil {
		t.Fatal("no storm timer during a storm")
	}
	clk.Advance(CellQuiet - time.Second - time.Millisecond) // the last change was a second ago
	select {
	case <-a.stormC():
		t.Fatal("storm timer fired before CellQuiet of quiet")
	default:
	}
	clk.Advance(time.Millisecond)
	select {
	case <-a.stormC():
	default:
		t.Fatal("storm timer not due after CellQuiet of quiet")
	}
	a.checkStorm(clock.Mono(clk))
	got := signedEvents(t, dir, ob.Messages())
	if want := append(slices.Repeat([]string{"cell_changed"}, CellBurst), EventCellFlapping, "cell_changed"); !slices.Equal(got, want) {
		t.Fatalf("signed %v, want %v", got, want)
	}
	if a.stormC() != nil {
		t.Fatal("storm timer still selected after the summary")
	}
	for _, e := range a.Recent() {
		if e.Type == EventCellFlapping {
			if n := e.Details["count"]; n != 20-CellBurst {
				t.Fatalf("cell_flapping count %v, want %d", n, 20-CellBurst)
			}
		}
	}
}
