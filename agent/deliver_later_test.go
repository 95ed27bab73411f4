package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/agent/outbox"
)

// laterCollector is an in-process receiver that confirms later, judged
// as the collector does: a non-confirmable message is taken only when it
// follows on the last one taken; a question ("has everything up to seq
// S?") is answered from the last seq taken, and the asking message is
// not taken when the answer is no. Messages are "L<seq>" (low priority)
// or "H<seq>" (a heartbeat). The tests start it at seq 10 (what the
// device sent before).
type laterCollector struct {
	mu      sync.Mutex
	later   bool
	last    uint64
	taken   []string       // in the order taken
	drop    map[string]int // non-confirmable datagrams to lose on the way
	non     []string       // non-confirmable datagrams sent
	asked   []string       // questions: "msg back"
	refused int            // questions answered no
}

func laterSeq(data []byte) (uint64, bool, bool) {
	n, err := strconv.ParseUint(string(data[1:]), 10, 64)
	return n, data[0] == 'L', err == nil
}

func (c *laterCollector) take(msg string) {
	seq, _, _ := laterSeq([]byte(msg))
	if seq <= c.last {
		return // a duplicate: answered as taken
	}
	c.last = seq
	c.taken = append(c.taken, msg)
}

func (c *laterCollector) Later() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.later
}

func (c *laterCollector) Send(_ context.Context, msg []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.take(string(msg))
	return nil
}

func (c *laterCollector) SendLater(_ context.Context, msg []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.non = append(c.non, string(msg))
	if c.drop[string(msg)] > 0 {
		c.drop[string(msg)]--
		return nil // lost on the wire
	}
	if seq, _, _ := laterSeq(msg); seq == c.last+1 && c.last > 0 {
		c.take(string(msg))
	}
	return nil
}

func (c *laterCollector) SendAsking(_ context.Context, msg []byte, back uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, fmt.Sprintf("%s %d", msg, back))
	seq, _, _ := laterSeq(msg)
	if seq > c.last && seq-back > c.last {
		c.refused++
		return ErrNotConfirmed
	}
	c.take(string(msg))
	return nil
}

func (c *laterCollector) state() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("taken %v non %v asked %v refused %d", c.taken, c.non, c.asked, c.refused)
}

type pendingQueue interface {
	Queue
	Append([]byte) (uint64, error)
}

// runDeliverer runs a deliverer of q to c until the returned stop.
func runDeliverer(t *testing.T, q pendingQueue, c *laterCollector, wait time.Duration) (*Deliverer, func()) {
	t.Helper()
	d := &Deliverer{Q: q, S: c, Seq: laterSeq, LaterWait: wait, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, RejoinSpread: -1}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	return d, func() { cancel(); <-done }
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for t0 := time.Now(); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Since(t0) > 5*time.Second {
			t.Fatal("timed out waiting: " + what)
		}
	}
}

func pendingCount(q Queue) int {
	p, _ := q.Pending(100)
	return len(p)
}

func TestDelivererConfirmLater(t *testing.T) {
	q := &MemOutbox{}
	c := &laterCollector{last: 10, later: true}
	d, stop := runDeliverer(t, q, c, time.Hour)
	defer stop()
	q.Append([]byte("L11"))
	d.Wake()
	waitFor(t, "the cell event sent non-confirmable", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.non) == 1 })
	time.Sleep(20 * time.Millisecond)
	if n := pendingCount(q); n != 1 {
		t.Fatalf("%d pending after the non-confirmable send, want 1: it stays until confirmed", n)
	}
	q.Append([]byte("L12")) // another cell event: non-confirmable too
	q.Append([]byte("H14")) // a heartbeat (seq 13 went elsewhere: a binding)
	d.Wake()
	waitFor(t, "the queue drained", func() bool { return pendingCount(q) == 0 })
	if got, want := c.state(), "taken [L11 L12 H14] non [L11 L12] asked [H14 2] refused 0"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}

func TestDelivererConfirmLaterResendsMissing(t *testing.T) {
	q := &MemOutbox{}
	c := &laterCollector{last: 10, later: true, drop: map[string]int{"L11": 1}}
	d, stop := runDeliverer(t, q, c, time.Hour)
	defer stop()
	q.Append([]byte("L11"))
	q.Append([]byte("L12"))
	q.Append([]byte("H13"))
	d.Wake()
	waitFor(t, "the queue drained", func() bool { return pendingCount(q) == 0 })
	// L11 lost, L12 not taken (it would leave a gap), H13's question
	// answered no: L11 and L12 again, confirmable, then H13. Each taken
	// once, in order.
	if got, want := c.state(), "taken [L11 L12 H13] non [L11 L12] asked [H13 1] refused 1"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}

func TestDelivererConfirmLaterTimesOut(t *testing.T) {
	q := &MemOutbox{}
	c := &laterCollector{last: 10, later: true, drop: map[string]int{"L11": 1}}
	d, stop := runDeliverer(t, q, c, 50*time.Millisecond)
	defer stop()
	q.Append([]byte("L11"))
	d.Wake()
	// No confirmable message follows: after LaterWait L11 goes again,
	// confirmable (the idle poll is 5 s).
	for t0 := time.Now(); pendingCount(q) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(t0) > 10*time.Second {
			t.Fatal("the unconfirmed message was not sent again: " + c.state())
		}
		d.Wake()
	}
	if got, want := c.state(), "taken [L11] non [L11] asked [] refused 0"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}

func TestDelivererConfirmLaterAcrossRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	ob, err := outbox.Open(dir, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q := DurableQueue{O: ob}
	c := &laterCollector{last: 10, later: true, drop: map[string]int{"L11": 1}}
	d, stop := runDeliverer(t, q, c, time.Hour)
	q.Append([]byte("L11"))
	d.Wake()
	waitFor(t, "the cell event sent", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.non) == 1 })
	stop()
	ob.Close()

	// A restart: the message is still in the outbox, unconfirmed.
	ob, err = outbox.Open(dir, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	q = DurableQueue{O: ob}
	if n := pendingCount(q); n != 1 {
		t.Fatalf("%d pending after the restart, want 1 (the unconfirmed one)", n)
	}
	// This time the collector does not confirm later (a session to an
	// older one): everything confirmable.
	c.mu.Lock()
	c.later = false
	c.mu.Unlock()
	d, stop = runDeliverer(t, q, c, time.Hour)
	defer stop()
	q.Append([]byte("H12"))
	d.Wake()
	waitFor(t, "the queue drained", func() bool { return pendingCount(q) == 0 })
	if got, want := c.state(), "taken [L11 H12] non [L11] asked [] refused 0"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}

func TestDelivererConfirmLaterSessionChange(t *testing.T) {
	q := &MemOutbox{}
	c := &laterCollector{last: 10, later: true, drop: map[string]int{"L11": 1}}
	d, stop := runDeliverer(t, q, c, time.Hour)
	defer stop()
	q.Append([]byte("L11"))
	d.Wake()
	waitFor(t, "the cell event sent", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.non) == 1 })
	// A new session to a collector that does not confirm later: the
	// heartbeat cannot ask, so L11 goes again, confirmable, first.
	c.mu.Lock()
	c.later = false
	c.mu.Unlock()
	q.Append([]byte("H12"))
	d.Wake()
	waitFor(t, "the queue drained", func() bool { return pendingCount(q) == 0 })
	if got, want := c.state(), "taken [L11 H12] non [L11] asked [] refused 0"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}
