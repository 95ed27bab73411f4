package at

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Engine runs AT commands over an io.ReadWriter. It never opens ports: the
// caller hands it one and closes it.
//
// Goroutines: New starts a reader, which owns all reads from the port, and a
// URC dispatcher, which calls URC handlers one at a time in arrival order.
// A handler may itself run commands. Both goroutines end when the port
// returns an error (Done is then closed) or when Close is called.
type Engine struct {
	w   io.Writer
	log *slog.Logger
	cfg engineConfig

	sem chan struct{} // serialises commands; a channel so waits honour ctx

	mu      sync.Mutex
	pending *request
	owed    int // final result codes still owed by commands that timed out
	// drain is the command given up on while owed > 0: its late reply
	// lines are discarded, not taken for URCs.
	drain    *request
	handlers []urcHandler
	unknown  func(string)
	// urcQ is a ring of maxQueuedURCs slots: urcLen lines from urcHead,
	// urcBytes bytes in all; a slot is cleared when its line is taken, so
	// nothing a flood brought in stays referenced after it.
	urcQ       []string
	urcHead    int
	urcLen     int
	urcBytes   int
	urcDropped int // lines dropped since the queue was last empty
	urcCond    *sync.Cond
	closed     bool
	readErr    error
	done       chan struct{}
	dispDone   chan struct{}
}

type engineConfig struct {
	handlers   []urcHandler
	unknown    func(string)
	timeout    time.Duration // default per-command timeout
	resyncWait time.Duration // how long to wait for owed replies before probing
	quiet      time.Duration // silence that ends a resync probe
	log        *slog.Logger
}

// Option configures an Engine.
type Option func(*engineConfig)

// WithTimeout sets the default per-command timeout (default 5 s).
func WithTimeout(d time.Duration) Option { return func(c *engineConfig) { c.timeout = d } }

// WithLogger sets the logger (default: discard). Lines are logged at debug
// level with identifiers redacted by their types, never raw replies.
func WithLogger(l *slog.Logger) Option { return func(c *engineConfig) { c.log = l } }

// WithHandler registers a URC handler before the reader starts, so a URC
// the modem prints at once (RDY at power-up) is not missed. See Handle.
func WithHandler(prefix string, fn func(line string)) Option {
	return func(c *engineConfig) { c.handlers = append(c.handlers, urcHandler{prefix, fn}) }
}

// WithUnknown registers the handler for unclaimed unsolicited lines before
// the reader starts. See HandleUnknown.
func WithUnknown(fn func(line string)) Option { return func(c *engineConfig) { c.unknown = fn } }

// WithURCs declares prefixes of unsolicited lines the caller knows but does
// not follow (the modem layer passes its dialects' URCs): they are never
// taken for reply lines, and are dropped on arrival. A handler registered
// for a longer prefix still gets its lines. The engine knows no URCs of its
// own: without this option or a handler, a line without a reply prefix
// arriving during a command is reply.
func WithURCs(prefixes ...string) Option {
	return func(c *engineConfig) {
		for _, p := range prefixes {
			c.handlers = append(c.handlers, urcHandler{p, nil})
		}
	}
}

// WithResync sets how long the engine waits for a timed-out command's late
// reply before probing with "AT", and the quiet time that ends the probe.
func WithResync(wait, quiet time.Duration) Option {
	return func(c *engineConfig) { c.resyncWait, c.quiet = wait, quiet }
}

type urcHandler struct {
	prefix string
	fn     func(line string)
}

// request is one command in flight.
type request struct {
	line   string
	prefix string
	accept func(string) bool
	lines  []string
	bytes  int        // bytes in lines
	noise  int        // bytes of an over-long line skipped meanwhile
	done   chan error // receives the final result, then is never used again

	// resync probes only
	probe  bool
	owed   int           // finals owed when the probe started
	finals int           // finals seen since
	ping   chan struct{} // a line arrived
}

// Cmd describes a command beyond its text.
type Cmd struct {
	// Line is the command, e.g. "AT+CEREG?"; CR is added.
	Line string
	// Prefix, when set, keeps only reply lines that start with it (e.g.
	// "+CEREG:"); anything else arriving meanwhile is treated as a URC.
	// Without a prefix every line that is not a registered URC is reply.
	Prefix string
	// Accept, when set, further decides whether a line with Prefix is the
	// reply or a URC of the same name (+CEREG: 2,1 versus +CEREG: 1).
	Accept func(line string) bool
	// Timeout overrides the engine's default; the context can shorten it.
	Timeout time.Duration
}

// New starts an engine on rw.
func New(rw io.ReadWriter, opts ...Option) *Engine {
	cfg := engineConfig{timeout: 5 * time.Second, resyncWait: 500 * time.Millisecond, quiet: 100 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		w: rw, log: cfg.log, cfg: cfg,
		sem:      make(chan struct{}, 1),
		handlers: cfg.handlers,
		unknown:  cfg.unknown,
		urcQ:     make([]string, maxQueuedURCs),
		done:     make(chan struct{}),
		dispDone: make(chan struct{}),
	}
	e.urcCond = sync.NewCond(&e.mu)
	go e.readLoop(rw)
	go e.dispatchLoop()
	return e
}

// Handle registers fn for unsolicited lines starting with prefix (e.g.
// "+CEREG:", "RDY"). The longest matching prefix wins. Handlers run on the
// engine's dispatcher goroutine, one at a time, in arrival order.
func (e *Engine) Handle(prefix string, fn func(line string)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.handlers = append(e.handlers, urcHandler{prefix, fn})
}

// HandleUnknown registers fn for unsolicited lines no handler claims, so
// nothing the modem says is silently dropped.
func (e *Engine) HandleUnknown(fn func(line string)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.unknown = fn
}

// Done is closed when the port fails or the engine is closed.
func (e *Engine) Done() <-chan struct{} { return e.done }

// Err returns why the engine stopped, or nil while it runs.
func (e *Engine) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.readErr != nil {
		return e.readErr
	}
	if e.closed {
		return ErrClosed
	}
	return nil
}

// Close stops the engine's goroutines once the port's Read returns; the
// caller closes the port (which unblocks that Read).
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	e.urcCond.Broadcast()
	e.mu.Unlock()
	return nil
}

// Wait blocks until both goroutines have ended (after the port was closed).
func (e *Engine) Wait() {
	<-e.done
	<-e.dispDone
}

// Command runs a command and returns its information lines (without echo,
// URCs or the final result code).
func (e *Engine) Command(ctx context.Context, line string) ([]string, error) {
	return e.Run(ctx, Cmd{Line: line})
}

// Run runs c. Errors are *CommandError wrapping ErrTimeout, ErrClosed,
// ErrModemError, *CMEError, *CMSError, *OverflowError (ErrOverflow: a line
// over MaxLineBytes, or a reply over MaxReplyLines or MaxReplyBytes; the
// command ends there and the rest of its reply is discarded) or the
// context's error.
func (e *Engine) Run(ctx context.Context, c Cmd) ([]string, error) {
	lines, err := e.run(ctx, c)
	if err != nil {
		return lines, &CommandError{Cmd: commandName(c.Line), Err: err}
	}
	return lines, nil
}

func (e *Engine) run(ctx context.Context, c Cmd) ([]string, error) {
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-e.done:
		return nil, e.stopErr()
	}
	defer func() { <-e.sem }()

	if err := e.resync(ctx); err != nil {
		return nil, err
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = e.cfg.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := &request{line: c.Line, prefix: c.Prefix, accept: c.Accept, done: make(chan error, 1)}
	err := e.exchange(ctx, req)
	if errors.Is(err, ErrOverflow) {
		return nil, err // what was read is not a reply
	}
	return req.lines, err
}

// exchange sends req and waits for its final result code.
func (e *Engine) exchange(ctx context.Context, req *request) error {
	e.mu.Lock()
	if err := e.stopErrLocked(); err != nil {
		e.mu.Unlock()
		return err
	}
	e.pending = req
	e.mu.Unlock()
	e.log.Debug("at send", "cmd", commandName(req.line))
	if _, err := io.WriteString(e.w, req.line+"\r"); err != nil {
		e.mu.Lock()
		e.pending = nil
		e.mu.Unlock()
		return fmt.Errorf("write: %w", err)
	}
	select {
	case err := <-req.done:
		return err
	case <-e.done:
		e.abandon(req)
		return e.stopErr()
	case <-ctx.Done():
		// The modem may still answer: remember that one final result
		// code is owed, so the next command resynchronises first.
		if e.abandon(req) {
			return nil // the answer raced in
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ErrTimeout
		}
		return ctx.Err()
	}
}

// abandon gives up on req; it reports true if req completed meanwhile.
func (e *Engine) abandon(req *request) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending != req {
		return true
	}
	e.pending = nil
	e.oweLocked(req)
	return false
}

// oweLocked records that req was given up on while the modem may still be
// answering it: one final result code is owed, and until it comes req's
// reply lines are discarded.
func (e *Engine) oweLocked(req *request) {
	e.owed = min(e.owed+1, maxOwed)
	e.drain = req
}

// overflowLocked ends req with err (an *OverflowError): its reply is not
// a value. The rest of it is drained as a timed-out command's would be.
func (e *Engine) overflowLocked(req *request, err error) {
	e.pending = nil
	e.oweLocked(req)
	e.log.Warn("at reply over its bound: command ended, rest of the reply discarded", "cmd", commandName(req.line), "err", err)
	req.done <- err
}

// draining reports whether t is a late reply line of the command given up
// on (it has that command's prefix and is accepted by it).
func (e *Engine) drainingLocked(t string) bool {
	d := e.drain
	if e.owed == 0 || d == nil || d.prefix == "" || !strings.HasPrefix(t, d.prefix) {
		return false
	}
	return d.accept == nil || d.accept(t)
}

// setOwedLocked sets the owed count (capped); at 0 nothing is drained.
func (e *Engine) setOwedLocked(n int) {
	e.owed = min(n, maxOwed)
	if e.owed == 0 {
		e.drain = nil
	}
}

// resync makes sure no late reply of an earlier command is still on its way
// before a new command is sent. It first waits a while for the owed final
// result codes; if they do not all come, it sends "AT" and counts final
// result codes: once it has seen one more than were owed, or at least one
// followed by a quiet spell (the modem had dropped the old command), the
// line is in step again.
func (e *Engine) resync(ctx context.Context) error {
	deadline := time.Now().Add(e.cfg.resyncWait)
	for {
		e.mu.Lock()
		owed := e.owed
		e.mu.Unlock()
		if owed == 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.done:
			return e.stopErr()
		case <-time.After(5 * time.Millisecond):
		}
	}
	e.mu.Lock()
	probe := &request{line: "AT", probe: true, owed: e.owed, ping: make(chan struct{}, 1)}
	e.pending = probe
	e.mu.Unlock()
	e.log.Debug("at resync probe", "owed", probe.owed)
	finish := func(owed int) {
		e.mu.Lock()
		if e.pending == probe {
			e.pending = nil
		}
		e.setOwedLocked(owed)
		e.mu.Unlock()
	}
	if _, err := io.WriteString(e.w, "AT\r"); err != nil {
		finish(probe.owed)
		return fmt.Errorf("resynchronise: write: %w", err)
	}
	timer := time.NewTimer(e.cfg.timeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			finish(probe.owed + 1)
			return ctx.Err()
		case <-e.done:
			return e.stopErr()
		case <-probe.ping:
			e.mu.Lock()
			f := probe.finals
			e.mu.Unlock()
			if f > probe.owed {
				finish(0)
				return nil
			}
			if f > 0 {
				if !timer.Stop() {
					select {
					case <-timer.C:
					default:
					}
				}
				timer.Reset(e.cfg.quiet)
			}
		case <-timer.C:
			e.mu.Lock()
			f := probe.finals
			e.mu.Unlock()
			if f > 0 {
				finish(0)
				return nil
			}
			finish(probe.owed + 1)
			return fmt.Errorf("resynchronise: %w", ErrTimeout)
		}
	}
}

func (e *Engine) stopErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopErrLocked()
}

func (e *Engine) stopErrLocked() error {
	if e.readErr != nil {
		return e.readErr
	}
	if e.closed {
		return ErrClosed
	}
	return nil
}

func (e *Engine) readLoop(r io.Reader) {
	var sp lineSplitter
	buf := make([]byte, 512)
	idle := 0
	for {
		n, err := r.Read(buf)
		if n > 0 {
			idle = 0
			sp.feed(buf[:n], e.onLine, e.onLongLine)
			if sp.long {
				e.onNoise(n)
			}
		}
		if err != nil {
			e.fail(err)
			return
		}
		if n == 0 {
			// (0, nil) is what a serial port with a read timeout
			// returns: not an end of file. Back off, keep reading.
			if idle < 10 {
				idle++
			}
			time.Sleep(time.Duration(idle) * time.Millisecond)
		}
		e.mu.Lock()
		closed := e.closed
		e.mu.Unlock()
		if closed {
			e.fail(ErrClosed)
			return
		}
	}
}

func (e *Engine) fail(err error) {
	e.mu.Lock()
	if e.readErr == nil {
		if errors.Is(err, ErrClosed) {
			e.readErr = ErrClosed
		} else {
			e.readErr = fmt.Errorf("%w: %v", ErrClosed, err)
		}
	}
	e.closed = true
	e.urcCond.Broadcast()
	e.mu.Unlock()
	close(e.done)
}

// onLongLine is called when a line outgrows MaxLineBytes: the splitter
// drops it whole, and the command in flight, whose reply it may have been,
// ends with an *OverflowError rather than a reply missing a line. Runs on
// the reader goroutine.
func (e *Engine) onLongLine() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if req := e.pending; req != nil && !req.probe {
		e.overflowLocked(req, &OverflowError{Bound: "line", Limit: MaxLineBytes})
		return
	}
	e.log.Debug("at over-long line dropped")
}

// onNoise counts bytes of an over-long line (begun before the command was
// sent) against the command in flight: bytes without a line end end it at
// MaxReplyBytes, not only at its timeout.
func (e *Engine) onNoise(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if req := e.pending; req != nil && !req.probe {
		if req.noise += n; req.noise > MaxReplyBytes {
			e.overflowLocked(req, &OverflowError{Bound: "bytes", Limit: MaxReplyBytes})
		}
	}
}

// onLine classifies one line from the modem. Runs on the reader goroutine.
func (e *Engine) onLine(line string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := strings.TrimSpace(line)
	if t == "" {
		return
	}
	req := e.pending
	if req != nil && req.probe {
		if t == req.line {
			return
		}
		if final, _ := finalResult(t); final {
			req.finals++
		} else if e.isRegisteredURC(t) && !e.drainingLocked(t) && utf8.ValidString(t) {
			e.queueURC(t)
		}
		select {
		case req.ping <- struct{}{}:
		default:
		}
		return
	}
	if req != nil && t == req.line {
		return // echo
	}
	if !utf8.ValidString(t) {
		// Line noise (a modem waking up, a baud mismatch): never part
		// of a reply. Hand it to the unknown-URC handler, so it is seen.
		e.queueURC(t)
		return
	}
	final, ferr := finalResult(t)
	if req == nil {
		switch {
		case final && e.owed > 0:
			e.setOwedLocked(e.owed - 1)
			e.log.Debug("at late final result discarded")
		case e.owed > 0 && (!e.isRegisteredURC(t) || e.drainingLocked(t)):
			e.log.Debug("at late reply line discarded")
		default:
			e.queueURC(t)
		}
		return
	}
	if final {
		e.pending = nil
		req.done <- ferr
		return
	}
	if req.prefix != "" {
		if strings.HasPrefix(t, req.prefix) && (req.accept == nil || req.accept(t)) {
			e.replyLineLocked(req, t)
			return
		}
		e.queueURC(t)
		return
	}
	if e.isRegisteredURC(t) {
		e.queueURC(t)
		return
	}
	e.replyLineLocked(req, t)
}

// replyLineLocked adds t to req's reply, or ends req with an
// *OverflowError when the reply would outgrow its bounds.
func (e *Engine) replyLineLocked(req *request, t string) {
	switch {
	case len(req.lines) >= MaxReplyLines:
		e.overflowLocked(req, &OverflowError{Bound: "lines", Limit: MaxReplyLines})
	case req.bytes+len(t) > MaxReplyBytes:
		e.overflowLocked(req, &OverflowError{Bound: "bytes", Limit: MaxReplyBytes})
	default:
		req.lines = append(req.lines, t)
		req.bytes += len(t)
	}
}

// finalResult reports whether line ends a command, and with which error.
func finalResult(line string) (bool, error) {
	switch line {
	case "OK", "CONNECT":
		return true, nil
	case "ERROR":
		return true, ErrModemError
	case "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "ABORTED":
		return true, fmt.Errorf("%w: %s", ErrModemError, strings.ToLower(line))
	}
	if rest, ok := strings.CutPrefix(line, "+CME ERROR:"); ok {
		return true, &CMEError{Code: atoiDefault(strings.TrimSpace(rest), -1), Text: strings.TrimSpace(rest)}
	}
	if rest, ok := strings.CutPrefix(line, "+CMS ERROR:"); ok {
		return true, &CMSError{Code: atoiDefault(strings.TrimSpace(rest), -1), Text: strings.TrimSpace(rest)}
	}
	if strings.HasPrefix(line, "CONNECT ") {
		return true, nil
	}
	return false, nil
}

func (e *Engine) isRegisteredURC(line string) bool {
	for _, h := range e.handlers {
		if strings.HasPrefix(line, h.prefix) {
			return true
		}
	}
	return false
}

// queueURC queues an unsolicited line for the dispatcher. The queue is
// bounded (maxQueuedURCs lines, maxQueuedURCBytes bytes): beyond that the
// oldest lines are dropped, so a modem flooding URCs exhausts no memory
// and the reader never waits for a slow handler. The drop is logged once
// per flood, and its count when the queue is empty again.
func (e *Engine) queueURC(line string) {
	for e.urcLen > 0 && (e.urcLen >= len(e.urcQ) || e.urcBytes+len(line) > maxQueuedURCBytes) {
		e.popURCLocked()
		if e.urcDropped == 0 {
			e.log.Warn("at URC queue full: oldest unsolicited lines dropped")
		}
		e.urcDropped++
	}
	e.urcQ[(e.urcHead+e.urcLen)%len(e.urcQ)] = line
	e.urcLen++
	e.urcBytes += len(line)
	e.urcCond.Signal()
}

func (e *Engine) popURCLocked() string {
	line := e.urcQ[e.urcHead]
	e.urcQ[e.urcHead] = ""
	e.urcHead = (e.urcHead + 1) % len(e.urcQ)
	e.urcLen--
	e.urcBytes -= len(line)
	return line
}

// NextURC returns the next unsolicited line waiting for the dispatcher,
// without taking it; ok is false when none is waiting. A URC handler can
// tell from it whether more of a burst already arrived (atmodem's Monitor
// folds the registration URCs of one burst into one cell event).
func (e *Engine) NextURC() (line string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.urcLen == 0 {
		return "", false
	}
	return e.urcQ[e.urcHead], true
}

func (e *Engine) dispatchLoop() {
	defer close(e.dispDone)
	for {
		e.mu.Lock()
		for e.urcLen == 0 && !e.closed {
			e.urcCond.Wait()
		}
		if e.urcLen == 0 && e.closed {
			e.mu.Unlock()
			return
		}
		line := e.popURCLocked()
		if e.urcLen == 0 && e.urcDropped > 0 {
			e.log.Warn("at URC flood over: unsolicited lines were dropped", "dropped", e.urcDropped)
			e.urcDropped = 0
		}
		fn := e.unknown
		best := -1
		for _, h := range e.handlers {
			// The longest prefix wins; at equal length a handler beats
			// a prefix declared by WithURCs (whose fn is nil).
			if strings.HasPrefix(line, h.prefix) && (len(h.prefix) > best || len(h.prefix) == best && fn == nil) {
				fn, best = h.fn, len(h.prefix)
			}
		}
		e.mu.Unlock()
		switch {
		case fn != nil:
			fn(line)
		case best < 0:
			e.log.Debug("at unsolicited line without handler")
		}
	}
}
