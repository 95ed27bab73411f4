package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
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
