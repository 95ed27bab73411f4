package agent

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/mdtlog"
)

// While the state directory cannot be written (a full disk, an I/O error,
// a read-only remount), signed messages and measurement records wait in
// memory, in order, up to these bounds, and are written as soon as the
// outbox (or the log) takes writes again. What does not fit is counted by
// type and reported in a signed storage_gap event once storage works.
const (
	HoldMessages    = 256       // signed messages held in memory
	HoldBytes       = 256 << 10 // their bytes
	HoldMDTRecords  = 256       // measurement records held in memory
	DefaultRetry    = 2 * time.Second
	EventStorageGap = "storage_gap"
)

// held is a signed message waiting in memory for the outbox.
type held struct {
	typ     string
	kind    byte
	details map[string]any
	data    []byte
}

// holdState is guarded by Agent.queueMu.
type holdState struct {
	msgs     []held
	bytes    int
	mdt      []mdtlog.Record
	lost     map[string]int  // by message type: signed or produced, not kept
	causes   map[string]bool // why: causeStorage, causeOutboxFull, causeEvicted
	lostFrom time.Time       // wall time of the first and last loss
	lostTo   time.Time
	synced   bool      // the clock was synchronised at every loss
	lastGap  time.Time // monotonic: the last storage_gap signed
	obFault  fsutil.FaultLog
	mdtFault fsutil.FaultLog
	fullLog  fsutil.FaultLog // the outbox full with nothing lower to evict
}

// isStorageFault says whether err is the medium failing (worth holding
// the message and retrying), not a bound or a bug.
func isStorageFault(err error) bool {
	return fsutil.FaultOf(err) != "" || errors.Is(err, outbox.ErrBroken)
}

// storageFault logs a failing store once (then at most every ten minutes),
// with a hint fitting the cause.
func (a *Agent) storageFault(fl *fsutil.FaultLog, store string, err error) {
	if ok, n := fl.Fail(); ok {
		a.log.Error("storage failing: holding new messages in memory and retrying",
			"store", store, "err", err, "hint", fsutil.FaultOf(err).Hint(a.cfg.StateDir),
			"held", len(a.hold.msgs), "held_mdt", len(a.hold.mdt), "failures", n,
			"hold_max_messages", HoldMessages, "hold_max_bytes", HoldBytes)
	}
}

// fullFault logs, rate-limited, that the outbox is full of messages
// that may not be evicted for the one at hand.
func (a *Agent) fullFault(err error) {
	if ok, n := a.hold.fullLog.Fail(); ok {
		a.log.Error("outbox full: holding new messages in memory until the collector takes some",
			"err", err, "held", len(a.hold.msgs), "failures", n, "hint", "is the collector reachable? (mtcagent status, the uplink log lines)")
	}
}

// loseLocked counts a message of type typ that could not be kept, and
// why (causeStorage, causeOutboxFull, causeEvicted).
func (a *Agent) loseLocked(typ, cause string) {
	now, synced := a.deps.Clock.Now()
	h := &a.hold
	if h.lost == nil {
		h.lost = map[string]int{}
		h.causes = map[string]bool{}
		h.lostFrom, h.synced = now, true
	}
	h.lost[typ]++
	h.causes[cause] = true
	h.lostTo = now
	h.synced = h.synced && synced
}

// holdLocked keeps a signed message in memory, or counts it lost when the
// hold is full (the newest is given up: the older ones keep their order).
func (a *Agent) holdLocked(m held, cause string) {
	h := &a.hold
	if len(h.msgs) >= HoldMessages || h.bytes+len(m.data) > HoldBytes {
		a.loseLocked(m.typ, cause)
		return
	}
	h.msgs = append(h.msgs, m)
	h.bytes += len(m.data)
}

// flushLocked writes the held messages to the outbox in order; it stops
// at the first storage fault and reports whether the hold is empty. When
// it is and messages were lost, it queues the storage_gap event.
func (a *Agent) flushLocked() bool {
	h := &a.hold
	top := prioLow // the highest rank written
	for len(h.msgs) > 0 {
		m := h.msgs[0]
		p := priority(m.typ, m.kind)
		id, err := a.appendLocked(m.data, p)
		if err != nil && isStorageFault(err) {
			a.storageFault(&h.obFault, "outbox", err)
			return false
		}
		if errors.Is(err, outbox.ErrFull) && p > prioLow {
			a.fullFault(err)
			return false // the deliverer makes room; retried
		}
		h.msgs[0] = held{}
		h.msgs = h.msgs[1:]
		h.bytes -= len(m.data)
		if err != nil {
			a.log.Error("not queued", "event", m.typ, "err", err)
			cause := causeStorage
			if errors.Is(err, outbox.ErrFull) {
				cause = causeOutboxFull
			}
			a.loseLocked(m.typ, cause)
			continue
		}
		a.queuedLocked(m.typ, m.kind, m.details, id)
		top = max(top, p)
	}
	h.msgs = nil
	if ok, since := h.obFault.Ok(); ok {
		a.log.Info("storage works again: held messages written", "store", "outbox", "failing_for", time.Since(since).Round(time.Millisecond))
	}
	if ok, since := h.fullLog.Ok(); ok {
		a.log.Info("outbox has room again: held messages written", "full_for", time.Since(since).Round(time.Millisecond))
	}
	if len(h.lost) > 0 && a.gapDueLocked(top) {
		a.queueGapLocked()
	}
	return true
}

// GapEvery: losses only from a full outbox (refused or evicted, no storage
// fault) are reported at most this often, or with the next message above
// heartbeats, so that a long outage with a storm does not fill the outbox
// with storage_gap events.
const GapEvery = 10 * time.Minute

// gapDueLocked says whether the counted losses are to be reported now,
// after a message of rank p was queued.
func (a *Agent) gapDueLocked(p int) bool {
	h := &a.hold
	return h.causes[causeStorage] || p >= prioHigh || h.lastGap.IsZero() || a.mono().Sub(h.lastGap) >= GapEvery
}

// queueGapLocked signs and queues the storage_gap event: how many
// messages of each type were not kept, and when. Sequence numbers the
// lost messages took show as a gap to the collector; this says why.
func (a *Agent) queueGapLocked() {
	h := &a.hold
	// Make room first, so that what is evicted for this event is counted
	// in it, not in another one.
	if ol, ok := a.deps.Outbox.(outboxLimits); ok {
		n, b := ol.Len()
		if maxN, maxB := ol.Limits(); n+1 > maxN || b+1024 > maxB {
			a.evictLocked(prioHigh)
		}
	}
	lost, total := map[string]any{}, 0
	for k, n := range h.lost {
		lost[k] = n
		total += n
	}
	causes := make([]string, 0, len(h.causes))
	for c := range h.causes {
		causes = append(causes, c)
	}
	sort.Strings(causes)
	details := map[string]any{
		"lost":         lost,
		"cause":        causes,
		"lost_total":   total,
		"from":         h.lostFrom.UTC().Format(time.RFC3339),
		"to":           h.lostTo.UTC().Format(time.RFC3339),
		"clock_synced": h.synced,
	}
	tok, err := a.signEvent(EventStorageGap, details)
	if err != nil {
		a.log.Error("not signed", "event", EventStorageGap, "err", err)
		return // the counts stay; tried again on the next flush
	}
	h.lost, h.causes = nil, nil
	h.lastGap = a.mono()
	msg := append([]byte{KindEventMsg}, tok...)
	id, err := a.appendLocked(msg, prioHigh)
	if err != nil {
		// Held even beyond the bound: it is one message, and it explains
		// the others.
		if errors.Is(err, outbox.ErrFull) {
			a.fullFault(err)
		} else {
			a.storageFault(&h.obFault, "outbox", err)
		}
		h.msgs = append(h.msgs, held{typ: EventStorageGap, kind: KindEventMsg, details: details, data: msg})
		h.bytes += len(msg)
		return
	}
	a.queuedLocked(EventStorageGap, KindEventMsg, details, id)
}

// retryStorage writes what is held every interval until ctx ends.
func (a *Agent) retryStorage(ctx context.Context) {
	every := a.deps.StorageRetry
	if every <= 0 {
		every = DefaultRetry
	}
	t := a.deps.Clock.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		a.RetryStorage()
	}
}

// RetryStorage tries once to write the signed messages held in memory;
// the daemon calls it every Deps.StorageRetry. (Held measurement records
// are retried at the log's own interval, by mdtLoop: a retry there can
// write a whole preallocated segment.)
func (a *Agent) RetryStorage() {
	a.queueMu.Lock()
	defer a.queueMu.Unlock()
	if len(a.hold.msgs) > 0 || len(a.hold.lost) > 0 {
		a.flushLocked()
	}
}

// Held returns how many messages and measurement records wait in memory.
func (a *Agent) Held() (msgs, mdt int) {
	a.queueMu.Lock()
	defer a.queueMu.Unlock()
	return len(a.hold.msgs), len(a.hold.mdt)
}

// appendMDT logs a measurement record, holding it in memory while the log
// cannot be written.
func (a *Agent) appendMDT(rec mdtlog.Record) {
	a.queueMu.Lock()
	defer a.queueMu.Unlock()
	h := &a.hold
	if len(h.mdt) > 0 && !a.flushMDTLocked() {
		a.holdMDTLocked(rec)
		return
	}
	err := a.deps.MDT.Store.Append(rec)
	switch {
	case err == nil:
	case isStorageFault(err):
		a.storageFault(&h.mdtFault, "mdt", err)
		a.holdMDTLocked(rec)
	default:
		a.log.Error("mdt record not logged", "err", err)
	}
}

func (a *Agent) holdMDTLocked(rec mdtlog.Record) {
	if len(a.hold.mdt) >= HoldMDTRecords {
		a.loseLocked("mdt_record", causeStorage)
		return
	}
	a.hold.mdt = append(a.hold.mdt, rec)
}

// flushMDTLocked writes held measurement records one by one (each durable
// when Append returns, so a failure midway repeats none); it reports
// whether none is left.
func (a *Agent) flushMDTLocked() bool {
	h := &a.hold
	if a.deps.MDT == nil {
		return true
	}
	for len(h.mdt) > 0 {
		err := a.deps.MDT.Store.Append(h.mdt[0])
		if err != nil && isStorageFault(err) {
			a.storageFault(&h.mdtFault, "mdt", err)
			return false
		}
		if err != nil { // consent withdrawn meanwhile: not logged, as intended
			a.log.Warn("held mdt record not logged", "err", err)
		}
		h.mdt = h.mdt[1:]
	}
	h.mdt = nil
	if ok, since := h.mdtFault.Ok(); ok {
		a.log.Info("storage works again: held records written", "store", "mdt", "failing_for", time.Since(since).Round(time.Millisecond))
		if len(h.lost) > 0 && len(h.msgs) == 0 {
			a.flushLocked()
		}
	}
	return true
}
