package collector

import (
	"sync"
	"testing"
	"time"
)

// The handler pool runs each message on a worker and returns when it has;
// a worker kept from one message serves the next; at most handlerWorkers
// are alive, past which a message still runs at once; an idle worker ends
// after handlerWorkerIdle, and every worker when the pool is closed.
func TestHandlerPool(t *testing.T) {
	quit := make(chan struct{})
	p := newHandlerPool(quit)
	alive := func(want int32, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for p.n.Load() != want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := p.n.Load(); got != want {
			t.Fatalf("%d workers alive, want %d", got, want)
		}
	}

	// One message at a time: workers kept and handed the next ones (a
	// message may come before the worker that ran the last is back, so
	// there can be a few).
	ran := 0
	for i := 0; i < 200; i++ {
		p.do(func() { ran++ })
	}
	if ran != 200 {
		t.Fatalf("ran %d of 200", ran)
	}
	if got := p.n.Load(); got < 1 || got > 20 {
		t.Fatalf("%d workers alive after 200 messages one at a time, want 1 to 20", got)
	}

	// More busy at once than the pool keeps: every one runs, none waits
	// for another, and no more than handlerWorkers are kept.
	n := handlerWorkers + 40
	var started, release sync.WaitGroup
	started.Add(n)
	release.Add(1)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.do(func() { started.Done(); release.Wait() })
		}()
	}
	waited := make(chan struct{})
	go func() { started.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("messages waited for a worker instead of running")
	}
	if got := p.n.Load(); got > handlerWorkers {
		t.Fatalf("%d workers alive, at most %d", got, handlerWorkers)
	}
	release.Done()
	wg.Wait()

	// Idle workers end; then closing ends one that waits.
	alive(0, handlerWorkerIdle+5*time.Second)
	p.do(func() {})
	alive(1, time.Second)
	close(quit)
	alive(0, handlerWorkerIdle/2) // before it would have idled out
}

// A wave of parking is given back once it is quiet, not while it is
// still under way (the first wave too: the collector released at its
// first tick once, while the parked connections were still closing, and
// kept about 30 MiB it had freed after); a wave that goes on is given
// back every parkWaveEvery from its start; a small wave is not.
func TestParkWave(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 14, 50, 0, 0, time.UTC)
	var w parkWave
	park := func(n int, at time.Time) {
		for i := 0; i < n; i++ {
			w.parked(at)
		}
	}

	park(parkWaveSessions+500, t0)
	if w.due(t0.Add(100 * time.Millisecond)) {
		t.Fatal("due while the wave was still parking")
	}
	if w.due(t0.Add(parkWaveQuiet - time.Millisecond)) {
		t.Fatal("due before the wave was quiet")
	}
	if !w.due(t0.Add(parkWaveQuiet)) {
		t.Fatal("not due once the wave was quiet")
	}
	if w.due(t0.Add(parkWaveQuiet + time.Second)) {
		t.Fatal("due twice for one wave")
	}

	// A few more: too few to be worth a collection.
	t1 := t0.Add(time.Minute)
	park(10, t1)
	if w.due(t1.Add(10 * parkWaveQuiet)) {
		t.Fatal("due for 10 sessions")
	}

	// A wave that never pauses: given back a minute after it began.
	var v parkWave
	w = v
	t2 := t1.Add(time.Hour)
	at := t2
	for ; at.Sub(t2) < parkWaveEvery; at = at.Add(100 * time.Millisecond) {
		park(2, at)
		if w.due(at) {
			t.Fatalf("due %s into a wave that goes on", at.Sub(t2))
		}
	}
	park(2, at)
	if !w.due(at) {
		t.Fatalf("not due %s into a wave that goes on", at.Sub(t2))
	}
}
