package agent

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/mtcagent/mtcagent/agent/outbox"
	"github.com/mtcagent/mtcagent/internal/clock"
)

// Message is one queued signed message.
type Message struct {
	ID   uint64
	Data []byte
}

// Queue is the outbox as the deliverer sees it: in-order pending messages
// and a cumulative acknowledgement.
type Queue interface {
	Pending(max int) ([]Message, error)
	Ack(id uint64) error
}

// Sender delivers one message and returns only when the receiver has
// confirmed it (a CoAP ACK with a success code).
type Sender interface {
	Send(ctx context.Context, msg []byte) error
}

// ErrRejected marks a message the receiver refused for good (malformed,
// bad signature): it is acknowledged locally and logged, not retried
// forever, so one bad message cannot block the queue.
var ErrRejected = errors.New("message rejected by the receiver")

var errOffline = errors.New("no connectivity")

// ErrNotConfirmed: the receiver lacks a message that was sent
// non-confirmable (LaterSender.SendAsking); it did not take the asking
// message either.
var ErrNotConfirmed = errors.New("a non-confirmable message was not confirmed by the receiver")

// LaterSender is a Sender that can also send a message non-confirmable,
// confirmed later: the next confirmable send asks whether the receiver
// has every message up to the last non-confirmable one.
type LaterSender interface {
	Sender
	// Later says whether the receiver confirms later (learned on the
	// current session).
	Later() bool
	// SendLater sends msg non-confirmable: it returns once msg is on its
	// way, without a confirmation.
	SendLater(ctx context.Context, msg []byte) error
	// SendAsking is Send, asking also whether the receiver has every
	// message up to back sequence numbers before msg's; ErrNotConfirmed
	// when it has not.
	SendAsking(ctx context.Context, msg []byte, back uint64) error
}

// maxLater bounds the messages sent non-confirmable and not yet
// confirmed (below the 16 a drain reads at once).
const maxLater = 8

// laterState is what was sent non-confirmable and awaits confirmation:
// the outbox messages after the last acknowledged one, up to lastID.
type laterState struct {
	n        int       // how many
	lastID   uint64    // outbox id of the last one
	lastSeq  uint64    // its sequence number
	since    time.Time // when the first one went
	resendTo uint64    // messages up to this id go confirmable (a confirmation failed)
}

// Deliverer drains a Queue through a Sender, in order, with backoff while
// the receiver is unreachable. Wake it when something was appended.
type Deliverer struct {
	Q          Queue
	S          Sender
	Log        *slog.Logger
	BackoffMin time.Duration // default 500 ms
	BackoffMax time.Duration // default 60 s
	// RejoinSpread bounds the random delay before the first delivery
	// after connectivity returns and after start (a power cut): a fleet
	// that lost a cell does not come back in lockstep (GSMA TS.34).
	// Default 4×BackoffMin; negative: none. Not used with Slot (the
	// schedule decides when messages leave).
	RejoinSpread time.Duration
	// Rand returns a uniform number in [0, 1) for the jitter of the
	// back-off and of RejoinSpread (math/rand/v2 by default); tests inject
	// a seeded one.
	Rand func() float64
	// Online, when set, gates delivery: nothing is sent while it says the
	// device has no connectivity (the modem is not registered), so events
	// from an outage wait in the outbox and arrive afterwards, in order.
	Online func() bool
	// Slot, when set, is the privacy schedule: messages leave only at the
	// start of each slot (wall-clock aligned, like the reports' times), so
	// an observer cannot tell from timing when something changed. Wake-ups
	// in between wait for the next slot; delivery after an outage or a
	// failure is retried as without a schedule.
	Slot time.Duration
	// SlotReport, when set with Slot, gives a message sent first at each
	// slot whether or not anything changed (the scheduled status report);
	// nil when there is none.
	SlotReport func() []byte
	// Clock is the time of slot boundaries and of every wait: back-off,
	// rejoin spread, polls (clock.System when nil).
	Clock clock.Clock
	// Seq, with a LaterSender and LaterWait > 0, reads a queued message's
	// sequence number and whether it is of low priority (a cell event; ok
	// false: not readable). Low-priority messages go non-confirmable
	// while the receiver confirms later; they stay in the queue until
	// the next confirmable message's answer confirms them, and are sent
	// again, confirmable, when it does not.
	Seq func(data []byte) (seq uint64, low, ok bool)
	// LaterWait bounds the wait for that confirmation (the next
	// heartbeat's answer at the latest); then they are sent again,
	// confirmable.
	LaterWait time.Duration
	later     laterState // Run's goroutine only

	once sync.Once
	wake chan struct{}
}

func (d *Deliverer) init() { d.once.Do(func() { d.wake = make(chan struct{}, 1) }) }

// Wake asks the deliverer to look at the queue now.
func (d *Deliverer) Wake() {
	d.init()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends.
func (d *Deliverer) Run(ctx context.Context) {
	d.init()
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	min, max := d.BackoffMin, d.BackoffMax
	if min <= 0 {
		min = 500 * time.Millisecond
	}
	if max <= 0 {
		max = time.Minute
	}
	d.Clock = clock.Or(d.Clock)
	if d.Rand == nil {
		d.Rand = rand.Float64
	}
	if d.RejoinSpread == 0 {
		d.RejoinSpread = 4 * min
	}
	failures := 0
	idle := d.Clock.NewTimer(time.Second)
	defer idle.Stop()
	retry := false // the last drain failed: retry without waiting for a slot
	rejoin := true // start, or connectivity just returned: spread the first send
	for {
		if d.Slot > 0 && !retry {
			if !d.waitSlot(ctx) {
				return
			}
			d.sendReport(ctx)
		}
		if rejoin && d.Slot <= 0 && (d.Online == nil || d.Online()) {
			rejoin = false
			if w := d.RejoinDelay(); w > 0 {
				idle.Reset(w)
				select {
				case <-ctx.Done():
					return
				case <-idle.C():
				}
			}
		}
		n, err := d.drain(ctx)
		retry = err != nil
		wait := 5 * time.Second // poll now and then even without a wake-up
		if errors.Is(err, errOffline) {
			wait = 250 * time.Millisecond // look again soon; no backoff
			rejoin = true
		} else if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = d.Backoff(failures, min, max)
			failures++
			d.Log.Warn("delivery paused", "err", err, "retry_in", wait)
		} else if n > 0 {
			failures = 0
		}
		if d.Slot > 0 && !retry {
			continue // nothing more until the next slot
		}
		idle.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-idle.C():
		}
	}
}

// waitSlot sleeps until the next slot boundary; false when ctx ended.
func (d *Deliverer) waitSlot(ctx context.Context) bool {
	now := clock.Mono(d.Clock)
	t := d.Clock.NewTimer(now.Truncate(d.Slot).Add(d.Slot).Sub(now))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
	}
	// Wake-ups during the slot are served by this drain.
	select {
	case <-d.wake:
	default:
	}
	return true
}

// sendReport sends the slot's report, if any, when online. A report is
// not queued: a later one replaces it.
func (d *Deliverer) sendReport(ctx context.Context) {
	if d.SlotReport == nil || d.Online != nil && !d.Online() {
		return
	}
	msg := d.SlotReport()
	if msg == nil {
		return
	}
	if err := d.S.Send(ctx, msg); err != nil {
		d.Log.Warn("scheduled report not delivered", "err", err)
	}
}

// Backoff is the wait after the failures+1-th failure in a row:
// exponential with a cap and full jitter above a floor, uniform in
// [lo, min(hi, lo·2^failures)], so devices that failed together retry
// apart. Every reconnection (a dial is part of Send: LinkSender dials
// when it has no session) goes through it.
func (d *Deliverer) Backoff(failures int, lo, hi time.Duration) time.Duration {
	ceil := hi
	if failures < 62 && lo<<failures > 0 && lo<<failures < hi {
		ceil = lo << failures
	}
	r := d.Rand
	if r == nil {
		r = rand.Float64
	}
	return lo + time.Duration(r()*float64(ceil-lo))
}

// RejoinDelay is the random wait, uniform in [0, RejoinSpread), before the
// first delivery after start or after connectivity returned.
func (d *Deliverer) RejoinDelay() time.Duration {
	if d.RejoinSpread <= 0 {
		return 0
	}
	r := d.Rand
	if r == nil {
		r = rand.Float64
	}
	return time.Duration(r() * float64(d.RejoinSpread))
}

// drain sends everything pending; it returns how many were delivered.
func (d *Deliverer) drain(ctx context.Context) (int, error) {
	sent := 0
	for {
		if d.Online != nil && !d.Online() {
			return sent, errOffline
		}
		if d.later.n > 0 && clock.Mono(d.Clock).Sub(d.later.since) > d.LaterWait {
			d.resendLater("no confirmation in time")
		}
		msgs, err := d.Q.Pending(16)
		if err != nil {
			return sent, err
		}
		if len(msgs) == 0 {
			return sent, nil
		}
		acted := false
		for _, m := range msgs {
			if d.later.n > 0 && m.ID <= d.later.lastID {
				continue // sent non-confirmable: waits for its confirmation
			}
			acted = true
			acked, err := d.send(ctx, m)
			if errors.Is(err, ErrNotConfirmed) {
				d.resendLater("the receiver lacks one of them")
				break // read the queue again from its head
			}
			if err != nil {
				return sent, err
			}
			if !acked {
				continue
			}
			if err := d.Q.Ack(m.ID); err != nil {
				return sent, err
			}
			d.later = laterState{resendTo: d.later.resendTo}
			sent++
		}
		if !acted {
			return sent, nil // only non-confirmable ones wait
		}
	}
}

// send sends one message: non-confirmable (acked false: it stays queued
// until confirmed), or confirmable, asking about the non-confirmable
// ones before it; acked true when m, and every message before it, may
// leave the queue.
func (d *Deliverer) send(ctx context.Context, m Message) (acked bool, err error) {
	ls, _ := d.S.(LaterSender)
	if ls == nil || d.Seq == nil || d.LaterWait <= 0 || m.ID <= d.later.resendTo {
		return true, d.plain(ctx, m)
	}
	if !ls.Later() {
		if d.later.n > 0 {
			// A session to a receiver that does not confirm later.
			return false, ErrNotConfirmed
		}
		return true, d.plain(ctx, m)
	}
	seq, low, ok := d.Seq(m.Data)
	if !ok || d.later.n > 0 && seq <= d.later.lastSeq {
		if d.later.n > 0 {
			return false, ErrNotConfirmed // cannot ask with this one
		}
		return true, d.plain(ctx, m)
	}
	if low && d.later.n < maxLater {
		if err := ls.SendLater(ctx, m.Data); err != nil {
			return false, err
		}
		if d.later.n == 0 {
			d.later.since = clock.Mono(d.Clock)
		}
		d.later.n++
		d.later.lastID, d.later.lastSeq = m.ID, seq
		return false, nil
	}
	if d.later.n == 0 {
		return true, d.plain(ctx, m)
	}
	err = ls.SendAsking(ctx, m.Data, seq-d.later.lastSeq)
	if errors.Is(err, ErrRejected) {
		// Refused for itself, before the question was answered: the
		// non-confirmable ones are sent again first, then this one (and
		// dropped then, if refused again).
		return false, ErrNotConfirmed
	}
	return err == nil, err
}

// plain sends m confirmable; a message the receiver refused for good is
// logged and may leave the queue.
func (d *Deliverer) plain(ctx context.Context, m Message) error {
	err := d.S.Send(ctx, m.Data)
	if errors.Is(err, ErrRejected) {
		d.Log.Error("collector rejected a message; dropping it", "id", m.ID, "err", err)
		return nil
	}
	return err
}

// resendLater gives up waiting for the confirmation of what was sent
// non-confirmable: those messages go again, confirmable.
func (d *Deliverer) resendLater(why string) {
	if d.later.n == 0 {
		return
	}
	d.Log.Info("sending non-confirmable messages again, confirmable", "count", d.later.n, "why", why)
	d.later = laterState{resendTo: d.later.lastID}
}

// DurableQueue adapts agent/outbox to the deliverer.
type DurableQueue struct{ O *outbox.Outbox }

// Append queues msg durably.
func (q DurableQueue) Append(msg []byte) (uint64, error) { return q.O.Append(msg) }

// Pending returns up to max waiting messages in order.
func (q DurableQueue) Pending(max int) ([]Message, error) {
	ms, err := q.O.Pending(max)
	out := make([]Message, len(ms))
	for i, m := range ms {
		out[i] = Message{ID: m.ID, Data: m.Data}
	}
	return out, err
}

// Ack acknowledges everything up to id.
func (q DurableQueue) Ack(id uint64) error { return q.O.Ack(id) }

// Len returns the number and bytes of messages not yet acknowledged.
func (q DurableQueue) Len() (int, int64) { return q.O.Len() }

// Limits returns the outbox's bounds (the agent keeps a share of them
// for events above cell changes).
func (q DurableQueue) Limits() (int, int64) { return q.O.Limits() }
