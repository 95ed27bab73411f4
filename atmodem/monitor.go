package atmodem

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mtcagent/mtcagent/atmodem/at"
	"github.com/mtcagent/mtcagent/internal/clock"
)

// Opener opens the modem's port; the Monitor calls it again after the port
// is lost.
type Opener func(ctx context.Context) (io.ReadWriteCloser, error)

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	Open       Opener
	Poll       time.Duration // full re-read interval (default 30 s)
	BackoffMin time.Duration // reopen backoff after a lost port (default 250 ms)
	BackoffMax time.Duration // (default 10 s)
	Log        *slog.Logger
	// OnEvent receives events in order, one call at a time (from the
	// monitor's goroutine or, for registration URCs, the engine's URC
	// dispatcher). It must not block for long.
	OnEvent func(Event)
	// GNSS turns the modem's receiver on and reads its fix on each poll
	// (Modem.GNSS).
	GNSS bool
	// Engine options (timeouts, a logger) for each engine the monitor
	// starts, after its own URC handlers.
	EngineOptions []at.Option
	// Clock times events and runs the poll and reopen back-off timers
	// (clock.System when nil; the agent hands it its own).
	Clock clock.Clock
}

// Monitor keeps a modem alive across resets and unplugs: it opens the port,
// initialises the modem, reads it on URCs and on a poll interval, and turns
// what changed into Events. One goroutine (Run) owns the port and the
// engine; Status and Do may be called from any goroutine.
type Monitor struct {
	cfg MonitorConfig
	log *slog.Logger

	kick   chan struct{}
	emitMu sync.Mutex // OnEvent is called by one goroutine at a time

	mu     sync.Mutex
	modem  *Modem
	status *Status // the last reading, unknowns as they were
	// statusC is closed when status changes; nil until someone waits.
	statusC chan struct{}
	// known is the baseline readings are compared with: the last known
	// value of each reading (an unknown one takes the value before it).
	known    *Status
	lastSIM  SIMInfo
	needSIM  bool
	needInit bool
	opCancel context.CancelFunc
	ready    chan struct{}
	// gnssOurs is set once an Init turned the GNSS receiver on: it is
	// ours to turn off at shutdown. A later Init that finds it on (a port
	// reopened without a modem reset) leaves it set.
	gnssOurs bool

	// The events of registration URCs of one burst, held while more
	// registration URCs of it are already queued (regQueued), then
	// emitted together, a cell seen in several domains as one event.
	// Nothing waits for a URC still to come.
	batchMu   sync.Mutex
	batch     []Event
	regQueued func() bool
}

// maxURCBatch bounds the events held for one burst of registration URCs
// (a flapping modem's URCs never stop coming).
const maxURCBatch = 8

// NewMonitor returns a monitor; Run starts it.
func NewMonitor(cfg MonitorConfig) *Monitor {
	if cfg.Poll <= 0 {
		cfg.Poll = 30 * time.Second
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 250 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(Event) {}
	}
	cfg.Clock = clock.Or(cfg.Clock)
	return &Monitor{cfg: cfg, log: cfg.Log, kick: make(chan struct{}, 1), ready: make(chan struct{})}
}

// now is the time of an event.
func (m *Monitor) now() time.Time { return clock.Mono(m.cfg.Clock) }

// Ready is closed after the first full reading.
func (m *Monitor) Ready() <-chan struct{} { return m.ready }

// Status returns the last full reading (nil before the first).
func (m *Monitor) Status() *Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// statusWait returns Status and a channel closed at its next change, so a
// waiter (a test) needs no polling.
func (m *Monitor) statusWait() (*Status, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.statusC == nil {
		m.statusC = make(chan struct{})
	}
	return m.status, m.statusC
}

func (m *Monitor) statusChangedLocked() {
	if m.statusC != nil {
		close(m.statusC)
		m.statusC = nil
	}
}

// Run works until ctx ends. It returns ctx's error; port failures are
// events, not errors.
func (m *Monitor) Run(ctx context.Context) error {
	backoff := m.cfg.BackoffMin
	lost := false
	for {
		port, err := m.cfg.Open(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			m.log.Debug("modem open failed", "err", err)
			wait := m.cfg.Clock.NewTimer(backoff)
			select {
			case <-ctx.Done():
				wait.Stop()
				return ctx.Err()
			case <-wait.C():
			}
			backoff = min(2*backoff, m.cfg.BackoffMax)
			continue
		}
		backoff = m.cfg.BackoffMin
		err = m.session(ctx, port, lost)
		port.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lost = true
		m.emit(Event{Kind: EventPortLost, Time: m.now(), Source: "port", Err: err})
	}
}

// session runs one open port until it fails.
func (m *Monitor) session(ctx context.Context, port io.ReadWriteCloser, regained bool) error {
	e := at.New(port, append(append([]at.Option{at.WithLogger(m.log)}, m.urcOptions()...), m.cfg.EngineOptions...)...)
	m.batchMu.Lock()
	m.regQueued = func() bool {
		next, ok := e.NextURC()
		_, reg := DomainOf(next)
		return ok && reg
	}
	m.batchMu.Unlock()
	defer func() {
		e.Close()
		port.Close()
		e.Wait()
		m.flushURCs(true) // what the last handler held, if any
	}()
	mod := NewModem(e, m.log)
	mod.GNSS = m.cfg.GNSS
	m.mu.Lock()
	m.modem = mod
	m.needInit = true
	m.mu.Unlock()
	if regained {
		m.emit(Event{Kind: EventPortRegained, Time: m.now(), Source: "port"})
	}
	tick := m.cfg.Clock.NewTicker(m.cfg.Poll)
	defer tick.Stop()
	full := true
	for {
		m.mu.Lock()
		needInit := m.needInit
		needSIM := m.needSIM
		m.needInit, m.needSIM = false, false
		opCtx, cancel := context.WithCancel(ctx)
		m.opCancel = cancel
		m.mu.Unlock()
		var err error
		switch {
		case needInit:
			mod.Forget()
			if err = mod.Init(opCtx); err == nil {
				err = m.read(opCtx, mod, "poll")
			}
		case full:
			err = m.read(opCtx, mod, "poll")
		case needSIM:
			err = m.readSIM(opCtx, mod)
		}
		cancel()
		if err != nil {
			if errors.Is(err, at.ErrClosed) {
				return e.Err()
			}
			m.log.Debug("modem read failed", "err", err)
			if needInit {
				m.mu.Lock()
				m.needInit = true
				m.mu.Unlock()
			}
		}
		if needInit && mod.GNSSStarted() {
			m.gnssOurs = true
		}
		full = false
		select {
		case <-ctx.Done():
			m.stopGNSS(mod)
			return ctx.Err()
		case <-e.Done():
			return e.Err()
		case <-tick.C():
			full = true
		case <-m.kick:
		}
	}
}

// stopGNSS turns the receiver off at shutdown if the monitor turned it on,
// within a second: a modem that does not answer must not hold up the
// agent's exit.
func (m *Monitor) stopGNSS(mod *Modem) {
	if !m.gnssOurs {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := mod.StopGNSS(ctx); err != nil {
		m.log.Debug("GNSS receiver not turned off", "err", err)
		return
	}
	m.log.Debug("GNSS receiver turned off")
}

// urcOptions routes URCs: registration URCs update state directly (the
// fastest path from modem to event); SIM and reset URCs wake the loop.
// They are engine options, so they are in place before the first read.
func (m *Monitor) urcOptions() []at.Option {
	var opts []at.Option
	for _, d := range Domains {
		d := d
		opts = append(opts, at.WithHandler(d.Command()+":", func(line string) { m.onRegURC(d, line) }))
	}
	for _, prefix := range URCPrefixes() {
		if _, isReg := DomainOf(prefix + " 0"); isReg {
			continue
		}
		prefix := prefix
		opts = append(opts, at.WithHandler(prefix, func(line string) { m.onVendorURC(prefix, line) }))
	}
	return append(opts, at.WithUnknown(func(line string) { m.log.Debug("unsolicited line ignored", "len", len(line)) }))
}

func (m *Monitor) onRegURC(d Domain, line string) {
	defer m.flushURCs(false)
	// Some firmware repeats <n> in its URCs ("+CEREG: 1,2,0001,...",
	// ModemManager's tests record it), and a query reply that came late
	// arrives here too: read the line in the form its shape says.
	_, r, err := ParseRegistration(line, IsRegQueryReply(line))
	if err != nil {
		return
	}
	m.mu.Lock()
	st, kn := m.status, m.known
	if st == nil {
		m.mu.Unlock()
		return
	}
	// Compared with the last known registration, not with a read that
	// failed (which would make every URC after it a change).
	old := kn.Registration[d]
	if kn.Unknown(RegReading(d)) {
		old = nil
	}
	if old != nil && r.CellID == nil && r.TAC == nil && r.LAC == nil && r.Registered() {
		r.TAC, r.LAC, r.CellID, r.AcT = old.TAC, old.LAC, old.CellID, old.AcT
	}
	plmn := plmnOf(kn)
	m.status = withReg(st, d, r)
	m.statusChangedLocked()
	m.known = withReg(kn, d, r)
	m.mu.Unlock()
	if old == nil && kn.Unknown(RegReading(d)) {
		// The first known value of this domain: nothing to compare.
		m.wake(false)
		return
	}
	m.batchMu.Lock()
	m.batch = append(m.batch, diffReg(d, old, r, plmn, plmn, "urc", m.now())...)
	m.batchMu.Unlock()
	// The operator may have changed with the cell: read it all again.
	m.wake(false)
}

// flushURCs emits the events held from registration URCs, the cells seen
// in several domains folded into one event (coalesceCells), unless more
// registration URCs of the burst are already queued (and the batch is not
// full) and all is false. A modem prints +CREG, +CGREG and +CEREG for one
// change back to back: those that arrived together are one event, at no
// delay; one that comes later is the agent's to fold (agent/storm.go).
func (m *Monitor) flushURCs(all bool) {
	m.batchMu.Lock()
	if len(m.batch) == 0 || !all && len(m.batch) < maxURCBatch && m.regQueued != nil && m.regQueued() {
		m.batchMu.Unlock()
		return
	}
	evs := coalesceCells(m.batch)
	m.batch = nil
	m.batchMu.Unlock()
	for _, ev := range evs {
		m.emit(ev)
	}
}

func (m *Monitor) onVendorURC(prefix, _ string) {
	m.mu.Lock()
	kind := URCNone
	if m.modem != nil {
		kind = m.modem.Dialect.URCs[prefix]
	}
	m.mu.Unlock()
	switch kind {
	case URCReset:
		m.emit(Event{Kind: EventModemReset, Time: m.now(), Source: "urc"})
		m.mu.Lock()
		m.needInit = true
		if m.opCancel != nil {
			m.opCancel() // abandon a read the reset made pointless
		}
		m.mu.Unlock()
		m.wake(false)
	case URCSIMChanged, URCSIMRemoved:
		m.wake(true)
	}
}

func (m *Monitor) wake(sim bool) {
	m.mu.Lock()
	if sim {
		m.needSIM = true
	}
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Monitor) emit(ev Event) {
	m.emitMu.Lock()
	defer m.emitMu.Unlock()
	m.log.Info("modem event", "event", ev.String())
	m.cfg.OnEvent(ev)
}

// read takes a full reading and reports what changed. A reading that
// failed is no change; a change is believed only when a second reading
// agrees with the first.
func (m *Monitor) read(ctx context.Context, mod *Modem, source string) error {
	st, err := mod.Status(ctx)
	if err != nil {
		return err
	}
	if mod.URCsLost() {
		m.emit(Event{Kind: EventModemReset, Time: m.now(), Source: "poll"})
		mod.Forget()
		if err := mod.Init(ctx); err != nil {
			return err
		}
		if st, err = mod.Status(ctx); err != nil {
			return err
		}
	}
	m.mu.Lock()
	kn := m.known
	first := kn == nil
	m.mu.Unlock()
	if first {
		m.mu.Lock()
		m.status, m.known = st, mergeKnown(nil, st)
		m.statusChangedLocked()
		if st.SIM.Known() && st.SIM.State == SIMReady {
			m.lastSIM = st.SIM
		}
		m.mu.Unlock()
		close(m.ready)
		return nil
	}
	if evs := m.changes(kn, mergeKnown(kn, st), source, m.lastSIM); len(evs) > 0 {
		// Something differs from what is known: read again, and keep
		// only what both readings say.
		st2, err := mod.Status(ctx)
		if err != nil {
			return err
		}
		st = agree(st, st2)
	}
	m.mu.Lock()
	nk := mergeKnown(kn, st)
	m.status, m.known = st, nk
	m.statusChangedLocked()
	evs := m.changes(kn, nk, source, m.lastSIM)
	if nk.SIM.Known() && nk.SIM.State == SIMReady {
		m.lastSIM = nk.SIM
	}
	m.mu.Unlock()
	for _, ev := range evs {
		m.emit(ev)
	}
	return nil
}

// changes returns the events from the known baseline old to nw (both
// with unknowns filled in by mergeKnown); last is the last ready SIM,
// which it does not change.
func (m *Monitor) changes(old, nw *Status, source string, last SIMInfo) []Event {
	now := m.now()
	evs := diffSIM(old.SIM, nw.SIM, &last, source, now)
	for _, d := range Domains {
		r := RegReading(d)
		if old.Unknown(r) || nw.Unknown(r) {
			continue
		}
		oldPLMN, newPLMN := plmnOf(old), plmnOf(nw)
		if old.Unknown(ReadOperator) || nw.Unknown(ReadOperator) {
			oldPLMN, newPLMN = "", ""
		}
		evs = append(evs, diffReg(d, old.Registration[d], nw.Registration[d], oldPLMN, newPLMN, source, now)...)
	}
	return coalesceCells(evs)
}

// readSIM reads the SIM after a SIM URC: the URC and the read together
// confirm a change. A read that failed changes nothing.
func (m *Monitor) readSIM(ctx context.Context, mod *Modem) error {
	sim, err := mod.ReadSIM(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	old, kn := m.status, m.known
	if old == nil {
		m.mu.Unlock()
		return nil
	}
	ns := *old
	ns.SIM = sim
	m.status = &ns
	m.statusChangedLocked()
	var evs []Event
	if sim.Known() {
		nk := *kn
		nk.SIM = sim
		m.known = &nk
		evs = diffSIM(kn.SIM, sim, &m.lastSIM, "urc", m.now())
	}
	m.mu.Unlock()
	for _, ev := range evs {
		m.emit(ev)
	}
	return nil
}

// withReg returns a copy of st with domain d's registration r, known.
func withReg(st *Status, d Domain, r *Registration) *Status {
	ns := *st
	ns.Registration = copyRegs(st.Registration)
	ns.Registration[d] = r
	ns.Failed &^= RegReading(d)
	return &ns
}

func plmnOf(st *Status) string {
	if st == nil || st.Operator.MCC == nil || st.Operator.MNC == nil {
		return ""
	}
	return *st.Operator.MCC + *st.Operator.MNC
}

func copyRegs(in map[Domain]*Registration) map[Domain]*Registration {
	out := make(map[Domain]*Registration, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
