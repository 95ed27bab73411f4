package clock

import (
	"sync"
	"testing"
	"time"
)

var t0 = time.Unix(0, 0) // a board that booted without a clock

func recv(c <-chan time.Time) (time.Time, bool) {
	select {
	case v := <-c:
		return v, true
	default:
		return time.Time{}, false
	}
}

// TestFakeTimer: a timer fires once Advance reaches its deadline, with Now
// at the deadline, and not before; Stop and Reset behave as time.Timer's.
func TestFakeTimer(t *testing.T) {
	f := NewFake(t0, false)
	tm := f.NewTimer(10 * time.Second)
	f.Advance(9 * time.Second)
	if _, ok := recv(tm.C()); ok {
		t.Fatal("fired before its deadline")
	}
	f.Advance(5 * time.Second)
	v, ok := recv(tm.C())
	if !ok || !v.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("fired %v %v, want at +10s", v, ok)
	}
	if now, _ := f.Now(); !now.Equal(t0.Add(14 * time.Second)) {
		t.Fatalf("now %v, want +14s", now)
	}
	if tm.Stop() {
		t.Fatal("Stop of a fired timer reported armed")
	}
	if tm.Reset(time.Second) {
		t.Fatal("Reset of a fired timer reported armed")
	}
	if !tm.Stop() {
		t.Fatal("Stop of an armed timer reported not armed")
	}
	f.Advance(time.Hour)
	if _, ok := recv(tm.C()); ok {
		t.Fatal("a stopped timer fired")
	}
	if f.Armed() != 0 {
		t.Fatalf("armed %d, want 0", f.Armed())
	}
}

// TestFakeTickerOrder: tickers and timers fire in deadline order within one
// Advance; a ticker's channel keeps one tick, as time.Ticker's does.
func TestFakeTickerOrder(t *testing.T) {
	f := NewFake(t0, true)
	var order []string
	tk := f.NewTicker(3 * time.Second)
	tm := f.NewTimer(4 * time.Second)
	for range 3 { // 3 s, 6 s, 9 s; the timer at 4 s between
		f.Advance(3 * time.Second)
		select {
		case v := <-tk.C():
			order = append(order, "tick@"+v.Sub(t0).String())
		default:
		}
		select {
		case v := <-tm.C():
			order = append(order, "timer@"+v.Sub(t0).String())
		default:
		}
	}
	want := []string{"tick@3s", "tick@6s", "timer@4s", "tick@9s"}
	if len(order) != len(want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("order %v, want %v", order, want)
		}
	}
	f.Advance(time.Minute) // 20 ticks due: one kept
	if _, ok := recv(tk.C()); !ok {
		t.Fatal("no tick kept")
	}
	if _, ok := recv(tk.C()); ok {
		t.Fatal("more than one tick kept")
	}
	tk.Stop()
	if f.Armed() != 0 {
		t.Fatalf("armed %d after Stop, want 0", f.Armed())
	}
}

// TestFakeSetIsAStep: Set moves the wall time and the flag, not the timers
// (an NTP step at boot does not fire a monotonic timer).
func TestFakeSetIsAStep(t *testing.T) {
	f := NewFake(t0, false)
	tm := f.NewTimer(10 * time.Second)
	later := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f.Set(later, true)
	if now, synced := f.Now(); !now.Equal(later) || !synced {
		t.Fatalf("Now %v %v after Set", now, synced)
	}
	if _, ok := recv(tm.C()); ok {
		t.Fatal("a step fired a timer")
	}
	f.Advance(10 * time.Second)
	if v, ok := recv(tm.C()); !ok || !v.Equal(later.Add(10*time.Second)) {
		t.Fatalf("fired %v %v, want 10 s after the step", v, ok)
	}
}

// TestFakeWaitArmed: a test waits until another goroutine has armed its
// ticker, then advances; no sleeps.
func TestFakeWaitArmed(t *testing.T) {
	f := NewFake(t0, true)
	got := make(chan time.Time)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := f.NewTicker(time.Minute)
		defer tk.Stop()
		got <- <-tk.C()
	}()
	if !f.WaitArmed(1, 10*time.Second) {
		t.Fatal("ticker never armed")
	}
	f.Advance(time.Minute)
	if v := <-got; !v.Equal(t0.Add(time.Minute)) {
		t.Fatalf("tick at %v", v)
	}
	wg.Wait()
	if f.WaitArmed(1, time.Millisecond) {
		t.Fatal("WaitArmed true with nothing armed")
	}
}

// TestSystem: the system clock's timers are real ones.
func TestSystem(t *testing.T) {
	c := Or(nil)
	before := time.Now()
	now, _ := c.Now()
	if now.Before(before) {
		t.Fatal("System.Now before time.Now")
	}
	tm := c.NewTimer(time.Millisecond)
	<-tm.C()
	tk := c.NewTicker(time.Millisecond)
	<-tk.C()
	tk.Stop()
}

// BenchmarkMonoSystem: the duration clock of the system skips the
// synchronisation query (cell storms read it per URC).
func BenchmarkMonoSystem(b *testing.B) {
	for b.Loop() {
		Mono(System)
	}
}

func BenchmarkNowSystem(b *testing.B) {
	for b.Loop() {
		System.Now()
	}
}

// TestFakeTimerDue: a timer for zero or less fires at once, as
// time.NewTimer(0) does, and is not left armed.
func TestFakeTimerDue(t *testing.T) {
	f := NewFake(t0, true)
	tm := f.NewTimer(0)
	if _, ok := recv(tm.C()); !ok {
		t.Fatal("NewTimer(0) did not fire at once")
	}
	tm.Reset(-time.Second)
	if _, ok := recv(tm.C()); !ok {
		t.Fatal("Reset(-1s) did not fire at once")
	}
	if f.Armed() != 0 {
		t.Fatalf("armed %d, want 0", f.Armed())
	}
}
