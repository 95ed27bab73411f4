package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/internal/clock"
)

// flakySender fails while down is set, and records what got through.
type flakySender struct {
	mu       sync.Mutex
	down     bool
	got      []string
	bad      string
	attempts int
}

func (s *flakySender) Send(ctx context.Context, msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if s.down {
		return errors.New("unreachable")
	}
	if string(msg) == s.bad {
		return fmt.Errorf("%w: bad signature", ErrRejected)
	}
	s.got = append(s.got, string(msg))
	return nil
}

func (s *flakySender) state() (attempts int, got []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts, slices.Clone(s.got)
}

// stepDeliverer advances clk past the deliverer's one pending wait (its
// idle timer: rejoin spread, back-off or poll) once the deliverer has
// armed it, until done or n steps; the deliverer runs between steps.
func stepDeliverer(t *testing.T, clk *clock.Fake, n int, done func() bool) {
	t.Helper()
	for range n {
		if done() {
			return
		}
		if !clk.WaitArmed(1, slow(30*time.Second)) {
			t.Fatal("the deliverer never waited again")
		}
		clk.Advance(10 * time.Second) // longer than any wait of the test's deliverer
	}
	if !done() {
		t.Fatalf("not done after %d waits", n)
	}
}

// TestDelivererInOrderAfterOutage: while the collector is unreachable the
// deliverer retries (backing off on the fake clock) and delivers nothing;
// afterwards it delivers the queue in order, once each, dropping the one
// the collector rejects.
func TestDelivererInOrderAfterOutage(t *testing.T) {
	q := &MemOutbox{}
	s := &flakySender{down: true, bad: "m3"}
	clk := clock.NewFake(time.Unix(1e9, 0), true)
	d := &Deliverer{Q: q, S: s, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, Clock: clk}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	for i := 1; i <= 6; i++ {
		q.Append([]byte(fmt.Sprintf("m%d", i)))
		d.Wake()
	}
	stepDeliverer(t, clk, 20, func() bool { n, _ := s.state(); return n >= 3 })
	if _, got := s.state(); len(got) != 0 {
		t.Fatal("delivered while down")
	}
	s.mu.Lock()
	s.down = false
	s.mu.Unlock()
	stepDeliverer(t, clk, 20, func() bool { p, _ := q.Pending(10); return len(p) == 0 })
	cancel()
	<-done
	want := "[m1 m2 m4 m5 m6]"
	if _, got := s.state(); fmt.Sprint(got) != want {
		t.Fatalf("delivered %v, want %s (in order, no duplicates, rejected one dropped)", got, want)
	}
}

// timedSender records when, on clk, each message got through, and tells a
// waiting test.
type timedSender struct {
	clk  clock.Wall
	sent chan struct{}
	mu   sync.Mutex
	got  []string
	at   []time.Time
}

func (s *timedSender) Send(ctx context.Context, msg []byte) error {
	s.mu.Lock()
	s.got, s.at = append(s.got, string(msg)), append(s.at, clock.Mono(s.clk))
	s.mu.Unlock()
	s.sent <- struct{}{}
	return nil
}

func (s *timedSender) wait(t *testing.T, n int) {
	t.Helper()
	bound := time.NewTimer(slow(30 * time.Second))
	defer bound.Stop()
	for range n {
		select {
		case <-s.sent:
		case <-bound.C:
			t.Fatalf("fewer than %d sends", n)
		}
	}
}

// With a privacy schedule, messages leave only at slot starts, each slot
// begins with the status report whether or not anything changed, and an
// event waits for the next slot instead of leaving when it happened
// (on the fake clock: exact times, no real slot waited for).
func TestDelivererFixedSchedule(t *testing.T) {
	const slot = time.Minute
	b := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) // a slot boundary
	clk := clock.NewFake(b.Add(slot/2), true)          // mid-slot
	q := &MemOutbox{}
	s := &timedSender{clk: clk, sent: make(chan struct{}, 8)}
	d := &Deliverer{Q: q, S: s, Slot: slot, SlotReport: func() []byte { return []byte("r") }, Clock: clk}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// Its idle timer and the timer to the next slot start.
	if !clk.WaitArmed(2, slow(30*time.Second)) {
		t.Fatal("the deliverer never waited for a slot")
	}
	// Queued in the middle of a slot: waits for the next one.
	q.Append([]byte("e1"))
	d.Wake()
	if s.mu.Lock(); len(s.got) != 0 {
		t.Fatalf("sent %v before the slot began", s.got)
	}
	s.mu.Unlock()
	clk.Advance(slot / 2) // the slot begins: the report, then e1
	s.wait(t, 2)
	if !clk.WaitArmed(1, slow(30*time.Second)) { // the idle timer fired: only the slot's now
		t.Fatal("the deliverer never waited for the next slot")
	}
	clk.Advance(slot) // nothing changed: the report alone
	s.wait(t, 1)

	s.mu.Lock()
	got, at := slices.Clone(s.got), slices.Clone(s.at)
	s.mu.Unlock()
	wantGot := []string{"r", "e1", "r"}
	wantAt := []time.Time{b.Add(slot), b.Add(slot), b.Add(2 * slot)}
	if !slices.Equal(got, wantGot) || !slices.EqualFunc(at, wantAt, time.Time.Equal) {
		t.Fatalf("sent %v at %v; want %v at %v", got, at, wantGot, wantAt)
	}
}

// TestBackoffJittered: the waits after failures are random, capped
// exponential (full jitter above BackoffMin), each within
// [min, min(max, min·2^n)]; two devices (seeds) do not retry in lockstep;
// the first delivery after an outage waits a random part of RejoinSpread.
// The random source is injected: no sleeps. (Before: no jitter, the wait
// was min·2^n exactly for every device.)
func TestBackoffJittered(t *testing.T) {
	lo, hi := time.Second, time.Minute
	seq := func(seed uint64) []time.Duration {
		r := rand.New(rand.NewPCG(seed, 1))
		d := &Deliverer{Rand: r.Float64}
		var out []time.Duration
		for n := range 12 {
			w := d.Backoff(n, lo, hi)
			ceil := min(hi, lo<<n)
			if w < lo || w > ceil {
				t.Fatalf("failure %d: wait %v outside [%v, %v]", n+1, w, lo, ceil)
			}
			out = append(out, w)
		}
		return out
	}
	a, b := seq(1), seq(2)
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	if same > 1 {
		t.Fatalf("two devices waited the same %d times of %d: %v / %v", same, len(a), a, b)
	}
	// The extremes of the random source reach the bounds.
	for _, c := range []struct {
		r    float64
		n    int
		want time.Duration
	}{{0, 5, lo}, {0.999999999, 3, 8 * time.Second}, {0.999999999, 20, hi}} {
		d := &Deliverer{Rand: func() float64 { return c.r }}
		if w := d.Backoff(c.n, lo, hi); w < c.want-time.Millisecond || w > c.want {
			t.Fatalf("rand %v, failure %d: wait %v, want about %v", c.r, c.n+1, w, c.want)
		}
	}
	r := rand.New(rand.NewPCG(3, 1))
	d := &Deliverer{Rand: r.Float64, RejoinSpread: 10 * time.Second}
	seen := map[time.Duration]bool{}
	for range 20 {
		w := d.RejoinDelay()
		if w < 0 || w >= 10*time.Second {
			t.Fatalf("rejoin delay %v outside [0, 10s)", w)
		}
		seen[w] = true
	}
	if len(seen) < 15 {
		t.Fatalf("rejoin delays not random: %v", seen)
	}
	if (&Deliverer{RejoinSpread: -1}).RejoinDelay() != 0 {
		t.Fatal("negative RejoinSpread must mean none")
	}
}
