// Package clock is the one source of time on the device side and in the
// collector: wall time with the flag that says whether it is synchronised,
// timers and tickers.
//
// Boards without a battery boot in 1970, so Now returns the flag with the
// time (the contract attest.Clock already had: attest.Clock is an alias of
// Wall). System is the real clock: time.Now (wall and monotonic readings)
// and, on Linux, the kernel's view of synchronisation (adjtimex: an NTP
// client has disciplined the clock). Fake is the test clock: it moves only
// when the test calls Advance or Set, fires due timers and tickers in
// deadline order on the caller's goroutine, and lets a test wait until the
// code under test has armed its timers (WaitArmed) instead of sleeping.
//
// Who owns time: whoever assembles a component hands it a Clock (nil
// means System): agent.Deps.Clock (the agent passes it on to the modem
// monitor, the deliverer and the measurement log), collector
// Options.Clock, attest.NewIssuer. Log timestamps are not behaviour and
// stay on the system clock; I/O deadlines (the AT engine's, the uplink's
// keepalive) are real time.
//
// Errors: none; the package has no failure modes. Safe for concurrent use.
package clock

import "time"

// Wall tells the time and whether it is trustworthy (set by NTP, GNSS or
// the network). attest.Clock is this interface.
type Wall interface {
	Now() (t time.Time, synced bool)
}

// Clock is Wall plus timers and tickers that run on the same time line.
type Clock interface {
	Wall
	// NewTimer is time.NewTimer on this clock.
	NewTimer(d time.Duration) Timer
	// NewTicker is time.NewTicker on this clock; d must be positive.
	NewTicker(d time.Duration) Ticker
}

// Timer is the part of *time.Timer a Clock gives out.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Ticker is the part of *time.Ticker a Clock gives out.
type Ticker interface {
	C() <-chan time.Time
	Stop()
	Reset(d time.Duration)
}

// Or returns c, or System when c is nil: the zero-value default of the
// structs that take a Clock.
func Or(c Clock) Clock {
	if c == nil {
		return System
	}
	return c
}

// Mono is the time of c for measuring durations: its wall reading without
// the flag (on System it carries the monotonic reading, so a step of the
// wall clock does not change a duration).
func Mono(c Wall) time.Time {
	if _, ok := c.(system); ok {
		return time.Now() // no adjtimex call for a flag nobody reads
	}
	t, _ := c.Now()
	return t
}

// System is the machine's clock.
var System Clock = system{}

type system struct{}

func (system) Now() (time.Time, bool)           { return time.Now(), kernelSynced() }
func (system) NewTimer(d time.Duration) Timer   { return sysTimer{time.NewTimer(d)} }
func (system) NewTicker(d time.Duration) Ticker { return sysTicker{time.NewTicker(d)} }

type sysTimer struct{ t *time.Timer }

func (s sysTimer) C() <-chan time.Time        { return s.t.C }
func (s sysTimer) Stop() bool                 { return s.t.Stop() }
func (s sysTimer) Reset(d time.Duration) bool { return s.t.Reset(d) }

type sysTicker struct{ t *time.Ticker }

func (s sysTicker) C() <-chan time.Time   { return s.t.C }
func (s sysTicker) Stop()                 { s.t.Stop() }
func (s sysTicker) Reset(d time.Duration) { s.t.Reset(d) }
