package transcript

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

var (
	// ErrMismatch: the host wrote something the transcript does not say.
	ErrMismatch = errors.New("host diverged from the transcript")
	// ErrUnused: steps of the transcript were never played.
	ErrUnused = errors.New("transcript steps never used")
	// ErrClosed: the replayer (or a fault wrapper) was closed.
	ErrClosed = errors.New("transcript: port closed")
)

// StepError is a host write that does not match the transcript.
type StepError struct {
	Name string // transcript name
	Step int    // 1-based index of the step expected, len+1 past the end
	Line int    // its line in the file, 0 past the end
	Want string // the expected host line; empty past the end
	Got  string // what the host wrote
}

func (e *StepError) Error() string {
	if e.Want == "" {
		return fmt.Sprintf("transcript %s: host wrote %q after the last step", e.Name, e.Got)
	}
	return fmt.Sprintf("transcript %s: step %d (line %d): host wrote %q, want %q", e.Name, e.Step, e.Line, e.Got, e.Want)
}

func (e *StepError) Unwrap() error { return ErrMismatch }

// UnusedError reports steps never played when the replayer was closed.
type UnusedError struct {
	Name  string
	Count int  // steps never played (released but unread output counts)
	First Step // the first of them
	Index int  // its 1-based index
}

func (e *UnusedError) Error() string {
	return fmt.Sprintf("transcript %s: %d step(s) never used, first step %d (line %d): %s",
		e.Name, e.Count, e.Index, e.First.Line, e.First)
}

func (e *UnusedError) Unwrap() error { return ErrUnused }

// Option configures a Replayer.
type Option func(*Replayer)

// NoDelays makes "~" steps take no time.
func NoDelays() Option { return func(r *Replayer) { r.noDelays = true } }

// WithAfterFunc replaces time.AfterFunc for "~" steps, so tests of delays
// need not wait: after(d, f) must arrange for f to be called once d has
// passed (or when the test says so), never from within after itself, and
// return a function that cancels it.
func WithAfterFunc(after func(d time.Duration, f func()) (stop func() bool)) Option {
	return func(r *Replayer) { r.after = after }
}

// Replayer plays a transcript as the modem. It is safe for one reader and
// one writer at a time, concurrently, as the atmodem engine uses a port.
type Replayer struct {
	t        *Transcript
	noDelays bool
	after    func(time.Duration, func()) func() bool

	mu       sync.Mutex
	cond     *sync.Cond
	pos      int    // next step not yet played
	out      []byte // released modem bytes not yet read
	outStep  []int  // for each released but unread step: its index and end offset
	outEnd   []int
	host     []byte      // host bytes not yet ended by CR or LF
	waiting  bool        // a delay timer is running for steps[pos]
	stop     func() bool // cancels the running delay
	timerGen int
	err      error // the replay failed
	closeErr error // what Close reported
	closed   bool
	done     chan struct{}
	doneSet  bool
}

// NewReplayer starts replaying t: modem output before the first host step
// is ready to read at once.
func NewReplayer(t *Transcript, opts ...Option) *Replayer {
	r := &Replayer{t: t, done: make(chan struct{})}
	for _, o := range opts {
		o(r)
	}
	if r.after == nil {
		r.after = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	r.cond = sync.NewCond(&r.mu)
	r.mu.Lock()
	r.release(false)
	r.mu.Unlock()
	return r
}

// Done is closed when every step has been played and all modem output
// read, when the replay failed, or at Close.
func (r *Replayer) Done() <-chan struct{} { return r.done }

// Err returns the failure of the replay, or nil.
func (r *Replayer) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// release plays modem and delay steps from pos up to the next host step.
// With cut, delays end at once (the host has moved on). Called with mu held.
func (r *Replayer) release(cut bool) {
	steps := r.t.Steps
	for r.pos < len(steps) && r.err == nil && !r.closed {
		st := steps[r.pos]
		switch st.Kind {
		case Host:
			r.cond.Broadcast()
			r.checkDone()
			return
		case Delay:
			if cut || r.noDelays || st.Delay <= 0 {
				r.stopTimer()
				r.pos++
				continue
			}
			if r.waiting {
				return
			}
			r.waiting = true
			r.timerGen++
			gen := r.timerGen
			r.stop = r.after(st.Delay, func() {
				r.mu.Lock()
				defer r.mu.Unlock()
				if r.timerGen != gen || !r.waiting {
					return
				}
				r.waiting = false
				r.pos++
				r.release(false)
				r.cond.Broadcast()
			})
			return
		default:
			r.out = append(r.out, st.Wire()...)
			r.outStep = append(r.outStep, r.pos)
			r.outEnd = append(r.outEnd, len(r.out))
			r.pos++
		}
	}
	r.cond.Broadcast()
	r.checkDone()
}

func (r *Replayer) stopTimer() {
	if r.waiting {
		r.waiting = false
		r.timerGen++
		if r.stop != nil {
			r.stop()
		}
	}
}

func (r *Replayer) checkDone() {
	if r.doneSet {
		return
	}
	if r.err != nil || (r.pos == len(r.t.Steps) && len(r.out) == 0) {
		r.doneSet = true
		close(r.done)
	}
}

func (r *Replayer) fail(err error) error {
	if r.err == nil {
		r.err = err
		r.stopTimer()
	}
	r.cond.Broadcast()
	r.checkDone()
	return r.err
}

// Read returns modem output. It blocks while the modem is silent (waiting
// for the host, or in a delay) and fails once the replay has failed or the
// replayer is closed.
func (r *Replayer) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.out) == 0 && r.err == nil && !r.closed {
		r.cond.Wait()
	}
	switch {
	case r.err != nil:
		return 0, r.err
	case r.closed:
		return 0, ErrClosed
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	for len(r.outEnd) > 0 && r.outEnd[0] <= n {
		r.outStep, r.outEnd = r.outStep[1:], r.outEnd[1:]
	}
	for i := range r.outEnd {
		r.outEnd[i] -= n
	}
	if len(r.out) == 0 {
		r.out = nil
	}
	r.checkDone()
	return n, nil
}

// Write takes host bytes; each line, ended by CR or LF, must be the next
// host step of the transcript. Modem output still pending before that step
// is released first.
func (r *Replayer) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.err != nil:
		return 0, r.err
	case r.closed:
		return 0, ErrClosed
	}
	for _, c := range p {
		if c != '\r' && c != '\n' {
			r.host = append(r.host, c)
			continue
		}
		if len(r.host) == 0 {
			continue
		}
		line := string(r.host)
		r.host = r.host[:0]
		if err := r.match(line); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (r *Replayer) match(line string) error {
	r.release(true)
	steps := r.t.Steps
	if r.pos >= len(steps) {
		return r.fail(&StepError{Name: r.t.Name, Step: len(steps) + 1, Got: line})
	}
	st := steps[r.pos]
	if st.Text != line {
		return r.fail(&StepError{Name: r.t.Name, Step: r.pos + 1, Line: st.Line, Want: st.Text, Got: line})
	}
	r.pos++
	r.release(false)
	return nil
}

// Close ends the replay and unblocks Read. It returns the replay's failure,
// or an *UnusedError when steps were never played (modem output released
// but never read counts as unused).
func (r *Replayer) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.closeErr
	}
	r.closed = true
	r.stopTimer()
	r.cond.Broadcast()
	if r.err != nil {
		r.closeErr = r.err
		return r.err
	}
	first := r.pos
	if len(r.outStep) > 0 {
		first = r.outStep[0]
	}
	if first < len(r.t.Steps) {
		r.closeErr = &UnusedError{Name: r.t.Name, Count: len(r.t.Steps) - first, First: r.t.Steps[first], Index: first + 1}
	}
	if !r.doneSet {
		r.doneSet = true
		close(r.done)
	}
	return r.closeErr
}
