package agent

import (
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/atmodem"
	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/clock"
)

// Storms and flapping (issue 12, bullet 3). A modem that ping-pongs
// between two cells prints a registration URC per hop; signing each as a
// cell_changed event filled the outbox and crowded out the SIM event that
// followed. The agent limits cell events per kind, summarises a storm in
// one signed cell_flapping event, and gives SIM, binding and connectivity
// events priority over cell events in the outbox.
const (
	// CellBurst cell_changed events are signed per CellWindow; more
	// changes within it start a storm, counted, not signed one by one.
	CellBurst  = 4
	CellWindow = time.Minute
	// A storm ends when the cell stayed put for CellQuiet: one signed
	// cell_flapping event then says how many changes were folded into it,
	// over what window, among how many distinct cells; a cell_changed
	// (after_flapping) follows when the cell it settled on is not the last
	// one reported. A storm that lasts beyond CellMaxWindow is summarised
	// every CellMaxWindow.
	CellQuiet     = 30 * time.Second
	CellMaxWindow = 10 * time.Minute
	// LowShare: cell events (the lowest priority) take at most 1/LowShare
	// of the outbox's messages and bytes; the rest is kept for SIM,
	// binding, connectivity and the other events, and heartbeats.
	LowShare = 2
	// maxStormCells bounds the set of distinct cells a storm counts.
	maxStormCells = 256
	// sameChange: the events of one cell seen in several registration
	// domains (cs, ps, eps, 5gs) within it are one change: one signed
	// cell_changed (the first), counted once against CellBurst and in a
	// storm's count.
	sameChange = 5 * time.Second

	EventCellFlapping = "cell_flapping"
)

// Priorities of queued messages: when the outbox is full, a message
// evicts queued messages of lower priority only.
const (
	prioLow       = 0 // cell_changed, cell_flapping
	prioHeartbeat = 1
	prioHigh      = 2 // SIM, binding, connectivity, storage_gap, everything else
)

// Causes of a message counted in the storage_gap event.
const (
	causeStorage    = "storage"     // the medium failed (ENOSPC, EIO, EROFS) or the counter could not be saved
	causeOutboxFull = "outbox_full" // refused: the outbox (or the share cell events may use) was full
	causeEvicted    = "evicted"     // queued, then dropped from the outbox for a message of higher priority
)

func priority(typ string, kind byte) int {
	switch {
	case typ == "cell_changed" || typ == EventCellFlapping:
		return prioLow
	case kind == KindHeartbeatMsg:
		return prioHeartbeat
	}
	return prioHigh
}

// cellStorm is the flap suppression state; used only by the goroutine
// that handles modem events (Run).
type cellStorm struct {
	burst   int         // cell changes signed per CellWindow (Config.CellBurst); <= 0: no limit
	signed  []time.Time // monotonic times of the cell_changed events signed within CellWindow
	active  bool
	start   time.Time // monotonic: first suppressed change
	last    time.Time // monotonic: last change
	from    time.Time // wall time of the first suppressed change
	synced  bool
	count   int
	cells   map[string]struct{}
	domains map[string]struct{}
	plmn    bool      // some change in the storm changed the PLMN
	area    bool      // ... the TAC/LAC
	lastKey string    // the cell last reported in a signed cell_changed
	lastAt  time.Time // monotonic: when it was
	curKey  string    // the cell now
	curAt   time.Time // monotonic: when the cell became curKey
	curDoms []string  // the domains that reported curKey since curAt
	timer   clock.Timer
}

// mono is the agent's clock for durations (on clock.System it carries
// the monotonic reading).
func (a *Agent) mono() time.Time { return clock.Mono(a.deps.Clock) }

// onCellChanged signs a cell_changed event unless the cell changes too
// often, in which case the change is folded into a storm.
//
// One change is one signed event (issue 16), however many registration
// domains report it. The monitor gives one event for the domains on the
// same new cell in a poll, or in a burst of URCs that arrived together
// (Event.Domains). It is signed at once, so the report is not delayed; a
// domain that reports the same cell later, within sameChange, is that
// change again and adds nothing. Waiting for it would only complete the
// domains list, for a delay on every cell change and up to sameChange
// when a domain never reports.
func (a *Agent) onCellChanged(ev atmodem.Event) {
	now := a.mono()
	a.checkStorm(now)
	s := &a.storm
	key := ev.CellKey()
	doms := eventDomains(ev)
	// The same cell in another domain, just now: the same change.
	again := key == s.curKey && now.Sub(s.curAt) < sameChange
	if !again {
		s.curAt, s.curDoms = now, nil
	}
	s.curKey = key
	for _, d := range doms {
		if !slices.Contains(s.curDoms, d) {
			s.curDoms = append(s.curDoms, d)
		}
	}
	dropped := int(a.cellDropped.Swap(0))
	if !s.active && dropped == 0 && again && key == s.lastKey && now.Sub(s.lastAt) < sameChange {
		a.log.Debug("cell change seen in another domain: already reported", "domains", doms)
		return
	}
	details := map[string]any{"domain": doms[0], "domains": doms, "plmn_changed": ev.OldPLMN != ev.NewPLMN,
		"area_changed": !sameArea(ev.OldReg, ev.NewReg)}
	if !s.active && dropped == 0 && s.allow(now) {
		s.lastKey, s.lastAt = key, now
		a.emit("cell_changed", details)
		return
	}
	if !s.active {
		wall, synced := a.deps.Clock.Now()
		*s = cellStorm{burst: s.burst, signed: s.signed, active: true, start: now, from: wall, synced: synced,
			cells: map[string]struct{}{}, domains: map[string]struct{}{}, lastKey: s.lastKey, lastAt: s.lastAt,
			curKey: key, curAt: s.curAt, curDoms: s.curDoms, timer: s.timer}
		a.log.Warn("cell flapping: folding cell changes into one event", "burst", s.burst, "window", CellWindow, "quiet", CellQuiet)
	}
	_, synced := a.deps.Clock.Now()
	s.synced = s.synced && synced
	s.last = now
	s.count += dropped
	if !again {
		s.count++
	}
	if len(s.cells) < maxStormCells {
		s.cells[key] = struct{}{}
	}
	for _, d := range doms {
		s.domains[d] = struct{}{}
	}
	s.plmn = s.plmn || details["plmn_changed"].(bool)
	s.area = s.area || details["area_changed"].(bool)
	a.armStorm(now)
}

// eventDomains are the registration domains of a cell event, as text:
// Domains, or Domain for an event from before Domains (a test's).
func eventDomains(ev atmodem.Event) []string {
	var out []string
	for _, d := range ev.Domains {
		out = append(out, string(d))
	}
	if len(out) == 0 {
		out = []string{string(ev.Domain)}
	}
	return out
}

// allow says whether another cell_changed may be signed now, and counts
// it when so.
func (s *cellStorm) allow(now time.Time) bool {
	keep := s.signed[:0]
	for _, t := range s.signed {
		if now.Sub(t) < CellWindow {
			keep = append(keep, t)
		}
	}
	s.signed = keep
	if s.burst > 0 && len(s.signed) >= s.burst {
		return false
	}
	s.signed = append(s.signed, now)
	return true
}

// armStorm sets the timer for the storm's end (quiet) or its next summary.
func (a *Agent) armStorm(now time.Time) {
	s := &a.storm
	d := min(s.last.Add(CellQuiet).Sub(now), s.start.Add(CellMaxWindow).Sub(now))
	d = max(d, time.Millisecond)
	if s.timer == nil {
		s.timer = a.deps.Clock.NewTimer(d)
		return
	}
	s.timer.Reset(d)
}

// stormC is the storm timer's channel, nil when no storm is going on.
func (a *Agent) stormC() <-chan time.Time {
	if !a.storm.active || a.storm.timer == nil {
		return nil
	}
	return a.storm.timer.C()
}

// checkStorm summarises a storm that ended (quiet for CellQuiet) or has
// lasted CellMaxWindow.
func (a *Agent) checkStorm(now time.Time) {
	s := &a.storm
	if !s.active {
		return
	}
	settled := now.Sub(s.last) >= CellQuiet
	if !settled && now.Sub(s.start) < CellMaxWindow {
		a.armStorm(now)
		return
	}
	wall, _ := a.deps.Clock.Now()
	domains := make([]string, 0, len(s.domains))
	for d := range s.domains {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	end := s.last
	if !settled {
		end = now
	}
	a.emit(EventCellFlapping, map[string]any{
		"count":        s.count,
		"window_s":     int64(end.Sub(s.start).Round(time.Second) / time.Second),
		"cells":        len(s.cells),
		"domains":      domains,
		"plmn_changed": s.plmn,
		"area_changed": s.area,
		"settled":      settled,
		"from":         s.from.UTC().Format(time.RFC3339),
		"to":           wall.UTC().Format(time.RFC3339),
		"clock_synced": s.synced,
	})
	if !settled {
		// Still flapping: a new window, counted from now.
		s.start, s.from, s.count = now, wall, 0
		s.cells, s.domains = map[string]struct{}{s.curKey: {}}, map[string]struct{}{}
		for _, d := range s.curDoms {
			s.domains[d] = struct{}{}
		}
		s.plmn, s.area = false, false
		a.armStorm(now)
		return
	}
	s.active = false
	if s.curKey != s.lastKey {
		// The steady state after the storm is reported as the final cell.
		s.lastKey = s.curKey
		doms := slices.Clone(s.curDoms)
		if len(doms) == 0 {
			doms = []string{""}
		}
		a.emit("cell_changed", map[string]any{"domain": doms[0], "domains": doms, "after_flapping": true,
			"plmn_changed": s.plmn, "area_changed": s.area})
	}
}

// outboxLimits is what the durable outbox says about its bounds (agent
// /outbox via DurableQueue); an Outbox without it has no share for cell
// events, only ErrFull.
type outboxLimits interface {
	Len() (int, int64)
	Limits() (int, int64)
}

// admitLocked says whether a message of priority p may be signed and
// queued now: cell events only while the outbox is below its share.
func (a *Agent) admitLocked(p int) bool {
	if p != prioLow {
		return true
	}
	ol, ok := a.deps.Outbox.(outboxLimits)
	if !ok {
		return true
	}
	n, b := ol.Len()
	maxN, maxB := ol.Limits()
	return n+1 <= maxN/LowShare && b+512 <= maxB/LowShare
}

// appendLocked appends data to the outbox; when it is full, queued
// messages of lower priority than p are evicted from its head (oldest
// first), one at a time until data fits, and counted in the storage_gap
// event.
func (a *Agent) appendLocked(data []byte, p int) (uint64, error) {
	id, err := a.deps.Outbox.Append(data)
	for tries := 0; errors.Is(err, outbox.ErrFull) && p > prioLow && tries < 16 && a.evictLocked(p); tries++ {
		id, err = a.deps.Outbox.Append(data)
	}
	return id, err
}

// evictLocked drops the message at the head of the outbox if its
// priority is below p, and counts it. A message the deliverer is sending
// at that moment may still arrive.
func (a *Agent) evictLocked(p int) bool {
	q, ok := a.deps.Outbox.(Queue)
	if !ok {
		return false
	}
	msgs, err := q.Pending(1)
	if err != nil || len(msgs) == 0 {
		return false
	}
	typ, mp := a.classify(msgs[0].Data)
	if mp >= p {
		return false
	}
	if err := q.Ack(msgs[0].ID); err != nil {
		a.log.Error("outbox full: lower-priority message not evicted", "err", err)
		return false
	}
	a.loseLocked(typ, causeEvicted)
	a.log.Debug("outbox full: evicted a lower-priority message", "type", typ, "outbox_id", msgs[0].ID)
	return true
}

// DeliverySeq reads a queued message of this agent for the deliverer
// (Deliverer.Seq): its sequence number, and whether it is of the lowest
// priority (cell_changed, cell_flapping), which may go non-confirmable.
func (a *Agent) DeliverySeq(data []byte) (seq uint64, low, ok bool) {
	tok, kind, ok := readQueued(data)
	if !ok {
		return 0, false, false
	}
	return tok.Seq, kind == KindEventMsg && priority(tok.Event, KindEventMsg) == prioLow, true
}

// classify returns a queued message's type and priority; a message it
// cannot read (not ours, damaged) counts as the highest, never evicted.
func (a *Agent) classify(data []byte) (string, int) {
	tok, kind, ok := readQueued(data)
	switch {
	case !ok:
		return "", prioHigh
	case kind == KindHeartbeatMsg:
		return "heartbeat", prioHeartbeat
	}
	return tok.Event, priority(tok.Event, KindEventMsg)
}

// readQueued decodes a message of the outbox: its kind byte and the
// token this agent signed. The signature is not checked again (the
// collector checks it); the token's kind must match the byte.
func readQueued(data []byte) (*attest.Token, byte, bool) {
	if len(data) < 2 {
		return nil, 0, false
	}
	var want attest.Kind
	switch data[0] {
	case KindHeartbeatMsg:
		want = attest.KindHeartbeat
	case KindEventMsg:
		want = attest.KindEvent
	default:
		return nil, 0, false
	}
	tok, err := attest.ReadOwnToken(data[1:])
	if err != nil || tok.Kind != want {
		return nil, 0, false
	}
	return tok, data[0], true
}
