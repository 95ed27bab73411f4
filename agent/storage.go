package agent

import (
	"context"
	"errors"
	"time"

	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/attest"
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
	lost     map[string]int // by message type: signed or produced, not kept
	lostFrom time.Time      // wall time of the first and last loss
	lostTo   time.Time
	synced   bool // the clock was synchronised at every loss
	obFault  fsutil.FaultLog
	mdtFault fsutil.FaultLog
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

// loseLocked counts a message of type typ that could not be kept.
func (a *Agent) loseLocked(typ string) {
	now, synced := a.deps.Clock.Now()
	h := &a.hold
	if h.lost == nil {
		h.lost = map[string]int{}
		h.lostFrom, h.synced = now, true
	}
	h.lost[typ]++
	h.lostTo = now
	h.synced = h.synced && synced
}

// holdLocked keeps a signed message in memory, or counts it lost when the
// hold is full (the newest is given up: the older ones keep their order).
func (a *Agent) holdLocked(m held) {
	h := &a.hold
	if len(h.msgs) >= HoldMessages || h.bytes+len(m.data) > HoldBytes {
		a.loseLocked(m.typ)
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
	for len(h.msgs) > 0 {
		m := h.msgs[0]
		id, err := a.deps.Outbox.Append(m.data)
		if err != nil && isStorageFault(err) {
			a.storageFault(&h.obFault, "outbox", err)
			return false
		}
		h.msgs[0] = held{}
		h.msgs = h.msgs[1:]
		h.bytes -= len(m.data)
		if err != nil {
			a.log.Error("not queued", "event", m.typ, "err", err)
			a.loseLocked(m.typ)
			continue
		}
		a.queuedLocked(m.typ, m.kind, m.details, id)
	}
	h.msgs = nil
	if ok, since := h.obFault.Ok(); ok {
		a.log.Info("storage works again: held messages written", "store", "outbox", "failing_for", time.Since(since).Round(time.Millisecond))
	}
	if len(h.lost) > 0 {
		a.queueGapLocked()
	}
	return true
}

// queueGapLocked signs and queues the storage_gap event: how many
// messages of each type were not kept, and when. Sequence numbers the
// lost messages took show as a gap to the collector; this says why.
func (a *Agent) queueGapLocked() {
	h := &a.hold
	lost, total := map[string]any{}, 0
	for k, n := range h.lost {
		lost[k] = n
		total += n
	}
	details := map[string]any{
		"lost":         lost,
		"lost_total":   total,
		"from":         h.lostFrom.UTC().Format(time.RFC3339),
		"to":           h.lostTo.UTC().Format(time.RFC3339),
		"clock_synced": h.synced,
	}
	claims := []attest.Claim{attest.EventClaim(EventStorageGap), {Label: LabelDetails, Value: details}}
	tok, err := a.issuer.Sign(attest.KindEvent, claims...)
	if err != nil {
		a.log.Error("not signed", "event", EventStorageGap, "err", err)
		return // the counts stay; tried again on the next flush
	}
	h.lost = nil
	msg := append([]byte{KindEventMsg}, tok...)
	id, err := a.deps.Outbox.Append(msg)
	if err != nil {
		// Held even beyond the bound: it is one message, and it explains
		// the others.
		a.storageFault(&h.obFault, "outbox", err)
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
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
		a.loseLocked("mdt_record")
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
