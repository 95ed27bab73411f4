package clock

import (
	"slices"
	"sync"
	"time"
)

// Fake is a Clock that moves only when told. It keeps two lines of time,
// as a real board does: the monotonic one that timers and tickers run on,
// moved only by Advance, and the wall reading Now returns, moved by Advance
// and stepped by Set (an NTP step at boot: a timer armed for ten seconds
// still fires ten seconds later). The times Now returns carry no monotonic
// reading, so a duration measured across a Set includes the step.
//
// Timers fire on the goroutine that calls Advance, in deadline order, each
// with Now at its deadline; channels hold one value and drop the rest, as
// time.Timer's and time.Ticker's do. Safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	mono    time.Duration // elapsed on the monotonic line
	wall    time.Time
	synced  bool
	armed   []*fakeTimer
	changed chan struct{} // closed and replaced when armed changes
}

// NewFake returns a Fake reading t with the given synchronised flag.
func NewFake(t time.Time, synced bool) *Fake {
	return &Fake{wall: t, synced: synced, changed: make(chan struct{})}
}

// Now returns the fake wall time and its flag.
func (f *Fake) Now() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wall, f.synced
}

// Set steps the wall time and sets the flag; timers are not moved.
func (f *Fake) Set(t time.Time, synced bool) {
	f.mu.Lock()
	f.wall, f.synced = t, synced
	f.mu.Unlock()
}

// Advance moves both lines by d (d <= 0 does nothing), firing every timer
// and ticker that falls due, in order, with Now at each one's deadline.
func (f *Fake) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.mono + d
	for {
		next := f.nextDue(end)
		if next == nil {
			break
		}
		f.wall = f.wall.Add(next.when - f.mono)
		f.mono = next.when
		next.fireLocked(f.wall)
	}
	f.wall = f.wall.Add(end - f.mono)
	f.mono = end
}

// nextDue is the armed timer with the earliest deadline at or before end
// (the first armed of equal deadlines), nil when none.
func (f *Fake) nextDue(end time.Duration) *fakeTimer {
	var next *fakeTimer
	for _, t := range f.armed {
		if t.when <= end && (next == nil || t.when < next.when) {
			next = t
		}
	}
	return next
}

// Armed is the number of timers and tickers armed now.
func (f *Fake) Armed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.armed)
}

// WaitArmed waits until at least n timers and tickers are armed, or until
// within has passed in real time (a bound, so a broken test fails instead
// of hanging); it reports whether n were reached. A test calls it before
// Advance, so the code under test has armed what Advance should fire.
func (f *Fake) WaitArmed(n int, within time.Duration) bool {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ok, ch := len(f.armed) >= n, f.changed
		f.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// NewTimer returns a timer that fires after d on the fake's monotonic line
// (at once when d <= 0).
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	f.mu.Lock()
	t.armLocked(d)
	f.mu.Unlock()
	return t
}

// NewTicker returns a ticker with period d; it panics on d <= 0, as
// time.NewTicker does.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	t := &fakeTimer{f: f, c: make(chan time.Time, 1), period: d}
	f.mu.Lock()
	t.armLocked(d)
	f.mu.Unlock()
	return fakeTicker{t}
}

func (f *Fake) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

type fakeTimer struct {
	f      *Fake
	c      chan time.Time
	when   time.Duration // deadline on f.mono's line
	period time.Duration // > 0: a ticker
	on     bool
}

// armLocked sets the deadline d from now; a timer due already (d <= 0)
// fires at once, as time.NewTimer(0) does.
func (t *fakeTimer) armLocked(d time.Duration) {
	t.when = t.f.mono + max(d, 0)
	if !t.on {
		t.on = true
		t.f.armed = append(t.f.armed, t)
		t.f.notifyLocked()
	}
	if d <= 0 && t.period == 0 {
		t.fireLocked(t.f.wall)
	}
}

// stopLocked disarms t and reports whether it was armed.
func (t *fakeTimer) stopLocked() bool {
	if !t.on {
		return false
	}
	t.on = false
	t.f.armed = slices.DeleteFunc(t.f.armed, func(x *fakeTimer) bool { return x == t })
	t.f.notifyLocked()
	return true
}

func (t *fakeTimer) fireLocked(now time.Time) {
	select {
	case t.c <- now:
	default:
	}
	if t.period > 0 {
		t.when += t.period
		return
	}
	t.stopLocked()
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.stopLocked()
}

// Reset re-arms the timer for d from now and drains a value not yet
// received, as time.Timer.Reset does since Go 1.23.
func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.on
	select {
	case <-t.c:
	default:
	}
	t.armLocked(d)
	return was
}

type fakeTicker struct{ t *fakeTimer }

func (k fakeTicker) C() <-chan time.Time { return k.t.c }
func (k fakeTicker) Stop()               { k.t.Stop() }

// Reset sets a new period from now; it panics on d <= 0, as
// time.Ticker.Reset does.
func (k fakeTicker) Reset(d time.Duration) {
	if d <= 0 {
		panic("clock: non-positive interval for Ticker.Reset")
	}
	k.t.f.mu.Lock()
	defer k.t.f.mu.Unlock()
	k.t.period = d
	k.t.armLocked(d)
}
