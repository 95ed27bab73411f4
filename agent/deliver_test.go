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

	"github.com/mtcagent/mtcagent/internal/testexec"
)

// flakySender fails while down is set, and records what got through.
type flakySender struct {
	mu   sync.Mutex
	down bool
	got  []string
	bad  string
}

func (s *flakySender) Send(ctx context.Context, msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errors.New("unreachable")
	}
	if string(msg) == s.bad {
		return fmt.Errorf("%w: bad signature", ErrRejected)
	}
	s.got = append(s.got, string(msg))
	return nil
}

func TestDelivererInOrderAfterOutage(t *testing.T) {
	q := &MemOutbox{}
	s := &flakySender{down: true, bad: "m3"}
	d := &Deliverer{Q: q, S: s, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	for i := 1; i <= 6; i++ {
		q.Append([]byte(fmt.Sprintf("m%d", i)))
		d.Wake()
	}
	time.Sleep(50 * time.Millisecond)
	s.mu.Lock()
	if len(s.got) != 0 {
		t.Fatal("delivered while down")
	}
	s.down = false
	s.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, _ := q.Pending(10)
		if len(p) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("queue not drained after the outage")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	want := "[m1 m2 m4 m5 m6]"
	if fmt.Sprint(s.got) != want {
		t.Fatalf("delivered %v, want %s (in order, no duplicates, rejected one dropped)", s.got, want)
	}
}

// timedSender records when each message got through.
type timedSender struct {
	mu  sync.Mutex
	got []string
	at  []time.Time
}

func (s *timedSender) Send(ctx context.Context, msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got, s.at = append(s.got, string(msg)), append(s.at, time.Now())
	return nil
}

// With a privacy schedule, messages leave only at slot starts, each slot
// begins with the status report whether or not anything changed, and an
// event waits for the next slot instead of leaving when it happened.
func TestDelivererFixedSchedule(t *testing.T) {
	// Generous tolerance: CI machines are loaded; an unscheduled sender
	// would still send at a random point in the slot, not within its
	// first quarter every time.
	slot, tol := 400*time.Millisecond, 100*time.Millisecond
	if testexec.Emulated() || testing.Short() {
		slot, tol = time.Second, 300*time.Millisecond
	}
	q := &MemOutbox{}
	s := &timedSender{}
	d := &Deliverer{Q: q, S: s, Slot: slot, SlotReport: func() []byte { return []byte("r") }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// Append in the middle of a slot.
	now := time.Now()
	time.Sleep(now.Truncate(slot).Add(slot + slot/2).Sub(now))
	appended := time.Now()
	q.Append([]byte("e1"))
	d.Wake()
	time.Sleep(2*slot + slot/2)

	s.mu.Lock()
	got, at := append([]string(nil), s.got...), append([]time.Time(nil), s.at...)
	s.mu.Unlock()
	reports := 0
	for i, m := range got {
		if off := at[i].Sub(at[i].Truncate(slot)); off > tol {
			t.Errorf("%s sent %v after its slot began; want only at slot starts", m, off)
		}
		switch m {
		case "r":
			reports++
		case "e1":
			if wait := at[i].Sub(appended); wait < slot/2-tol {
				t.Errorf("e1 sent %v after it was queued: it did not wait for the slot", wait)
			}
		}
	}
	if reports < 2 || !slices.Contains(got, "e1") {
		t.Fatalf("sent %v: want a report each slot and e1", got)
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
