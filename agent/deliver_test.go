package agent

import (
	"context"
	"errors"
	"fmt"
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
