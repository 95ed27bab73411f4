package transcript

import (
	"io"
	"sync"
	"time"
)

// RecordOption configures a Recorder.
type RecordOption func(*Recorder)

// RecordDelays makes the Recorder write a "~" step before modem output
// that follows a silence of at least min, measured with now (time.Now when
// nil). Without it no delays are recorded.
func RecordDelays(min time.Duration, now func() time.Time) RecordOption {
	return func(r *Recorder) {
		r.minDelay = min
		r.now = now
		if r.now == nil {
			r.now = time.Now
		}
	}
}

// Recorder passes reads and writes through to a port and turns them into
// transcript steps: host lines (ended by CR or LF) become ">" steps,
// modem output framed as "\r\n" text "\r\n" becomes "<" steps, and any
// other modem bytes ("\r\r\n", an echo, noise) become "<<" steps, so a
// replay gives the host exactly the bytes it saw. Safe for one reader and
// one writer at a time, concurrently.
type Recorder struct {
	rw io.ReadWriter

	mu       sync.Mutex
	steps    []Step
	in       []byte // modem bytes not yet turned into steps
	host     []byte // host bytes not yet ended by CR or LF
	minDelay time.Duration
	now      func() time.Time
	last     time.Time
}

// NewRecorder records what passes through rw.
func NewRecorder(rw io.ReadWriter, opts ...RecordOption) *Recorder {
	r := &Recorder{rw: rw}
	for _, o := range opts {
		o(r)
	}
	if r.now != nil {
		r.last = r.now()
	}
	return r
}

// Read reads from the port and records the modem's bytes.
func (r *Recorder) Read(p []byte) (int, error) {
	n, err := r.rw.Read(p)
	if n > 0 {
		r.mu.Lock()
		r.delay()
		r.in = append(r.in, p[:n]...)
		r.modemSteps(false)
		r.mu.Unlock()
	}
	return n, err
}

// Write records the host's bytes and writes them to the port.
func (r *Recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.modemSteps(true) // what the modem said before belongs before this
	if r.now != nil {
		r.last = r.now()
	}
	for _, c := range p {
		if c != '\r' && c != '\n' {
			r.host = append(r.host, c)
			continue
		}
		if len(r.host) > 0 {
			r.steps = append(r.steps, Step{Kind: Host, Text: string(r.host)})
			r.host = r.host[:0]
		}
	}
	r.mu.Unlock()
	return r.rw.Write(p)
}

// Close closes the port when it is an io.Closer.
func (r *Recorder) Close() error {
	if c, ok := r.rw.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Transcript returns what was recorded so far, pending bytes included, as
// a transcript with the given name and header lines.
func (r *Recorder) Transcript(name string, header ...string) *Transcript {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.modemSteps(true)
	steps := append([]Step(nil), r.steps...)
	if len(r.host) > 0 {
		steps = append(steps, Step{Kind: Host, Text: string(r.host)})
	}
	return &Transcript{Name: name, Header: append([]string(nil), header...), Steps: steps}
}

// delay records a silence before new modem output. Called with mu held.
func (r *Recorder) delay() {
	if r.now == nil {
		return
	}
	now := r.now()
	if d := now.Sub(r.last).Round(time.Millisecond); r.minDelay > 0 && d >= r.minDelay {
		r.modemSteps(true)
		r.steps = append(r.steps, Step{Kind: Delay, Delay: d})
	}
	r.last = now
}

// modemSteps turns buffered modem bytes into steps; with final, bytes that
// might still become a framed line are given up on and written raw.
// Called with mu held.
func (r *Recorder) modemSteps(final bool) {
	steps, rest := SplitModem(r.in, final)
	r.steps = append(r.steps, steps...)
	r.in = append(r.in[:0], rest...)
}

// frame states
const (
	frameNo = iota
	frameIncomplete
	frameComplete
)

// frameAt looks for "\r\n" text "\r\n" at the start of b, text non-empty
// and free of CR and LF.
func frameAt(b []byte) (text []byte, n, state int) {
	if len(b) == 0 || b[0] != '\r' {
		return nil, 0, frameNo
	}
	if len(b) == 1 {
		return nil, 0, frameIncomplete
	}
	if b[1] != '\n' {
		return nil, 0, frameNo
	}
	k := 2
	for k < len(b) && b[k] != '\r' && b[k] != '\n' {
		k++
	}
	switch {
	case k == len(b):
		return nil, 0, frameIncomplete
	case k == 2 || b[k] != '\r':
		return nil, 0, frameNo
	case k+1 == len(b):
		return nil, 0, frameIncomplete
	case b[k+1] != '\n':
		return nil, 0, frameNo
	}
	return b[2:k], k + 2, frameComplete
}

// SplitModem cuts modem bytes into "<" steps (framed lines) and "<<"
// steps (anything else, each up to a line feed or the next framed line).
// Without final it stops where more bytes could change the cut and returns
// the rest.
func SplitModem(b []byte, final bool) (steps []Step, rest []byte) {
	for len(b) > 0 {
		text, n, st := frameAt(b)
		if st == frameComplete {
			steps = append(steps, Step{Kind: Modem, Text: string(text)})
			b = b[n:]
			continue
		}
		if st == frameIncomplete && !final {
			break
		}
		end, wait := 0, false
		for j := 1; j <= len(b); j++ {
			if b[j-1] == '\n' {
				end = j
				break
			}
			if j == len(b) {
				break
			}
			if _, _, s := frameAt(b[j:]); s == frameComplete {
				end = j
				break
			} else if s == frameIncomplete && !final {
				wait = true
				break
			}
		}
		if end == 0 {
			if !final || wait {
				break
			}
			end = len(b)
		}
		steps = append(steps, Step{Kind: ModemRaw, Text: string(b[:end])})
		b = b[end:]
	}
	return steps, b
}
