package atmodem

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"
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
	// Engine options (timeouts) for each engine the monitor starts.
	EngineOptions []Option
	Now           func() time.Time
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

	mu       sync.Mutex
	modem    *Modem
	status   *Status
	lastSIM  SIMInfo
	needSIM  bool
	needInit bool
	opCancel context.CancelFunc
	ready    chan struct{}
	// gnssOurs is set once an Init turned the GNSS receiver on: it is
	// ours to turn off at shutdown. A later Init that finds it on (a port
	// reopened without a modem reset) leaves it set.
	gnssOurs bool
}

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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Monitor{cfg: cfg, log: cfg.Log, kick: make(chan struct{}, 1), ready: make(chan struct{})}
}

// Ready is closed after the first full reading.
func (m *Monitor) Ready() <-chan struct{} { return m.ready }

// Status returns the last full reading (nil before the first).
func (m *Monitor) Status() *Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
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
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
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
		m.emit(Event{Kind: EventPortLost, Time: m.cfg.Now(), Source: "port", Err: err})
	}
}

// session runs one open port until it fails.
func (m *Monitor) session(ctx context.Context, port io.ReadWriteCloser, regained bool) error {
	e := New(port, append(append([]Option{WithLogger(m.log)}, m.urcOptions()...), m.cfg.EngineOptions...)...)
	defer func() {
		e.Close()
		port.Close()
		e.Wait()
	}()
	mod := NewModem(e, m.log)
	mod.GNSS = m.cfg.GNSS
	m.mu.Lock()
	m.modem = mod
	m.needInit = true
	m.mu.Unlock()
	if regained {
		m.emit(Event{Kind: EventPortRegained, Time: m.cfg.Now(), Source: "port"})
	}
	tick := time.NewTicker(m.cfg.Poll)
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
			if errors.Is(err, ErrClosed) {
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
		case <-tick.C:
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
func (m *Monitor) urcOptions() []Option {
	var opts []Option
	for _, d := range Domains {
		d := d
		opts = append(opts, WithHandler(d.Command()+":", func(line string) { m.onRegURC(d, line) }))
	}
	for _, prefix := range KnownURCs() {
		if _, isReg := DomainOf(prefix + " 0"); isReg {
			continue
		}
		prefix := prefix
		opts = append(opts, WithHandler(prefix, func(line string) { m.onVendorURC(prefix, line) }))
	}
	return append(opts, WithUnknown(func(line string) { m.log.Debug("unsolicited line ignored", "len", len(line)) }))
}

func (m *Monitor) onRegURC(d Domain, line string) {
	_, r, err := ParseRegistration(line, false)
	if err != nil {
		return
	}
	m.mu.Lock()
	st := m.status
	if st == nil {
		m.mu.Unlock()
		return
	}
	old := st.Registration[d]
	if old != nil && r.CellID == nil && r.TAC == nil && r.LAC == nil && r.Registered() {
		r.TAC, r.LAC, r.CellID, r.AcT = old.TAC, old.LAC, old.CellID, old.AcT
	}
	plmn := plmnOf(st)
	ns := *st
	ns.Registration = copyRegs(st.Registration)
	ns.Registration[d] = r
	m.status = &ns
	m.mu.Unlock()
	for _, ev := range diffReg(d, old, r, plmn, plmn, "urc", m.cfg.Now()) {
		m.emit(ev)
	}
	// The operator may have changed with the cell: read it all again.
	m.wake(false)
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
		m.emit(Event{Kind: EventModemReset, Time: m.cfg.Now(), Source: "urc"})
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

// read takes a full reading and reports what changed.
func (m *Monitor) read(ctx context.Context, mod *Modem, source string) error {
	st, err := mod.Status(ctx)
	if err != nil {
		return err
	}
	if mod.URCsLost() {
		m.emit(Event{Kind: EventModemReset, Time: m.cfg.Now(), Source: "poll"})
		mod.Forget()
		if err := mod.Init(ctx); err != nil {
			return err
		}
		if st, err = mod.Status(ctx); err != nil {
			return err
		}
	}
	m.mu.Lock()
	old := m.status
	m.status = st
	first := old == nil
	m.mu.Unlock()
	now := m.cfg.Now()
	if first {
		m.mu.Lock()
		if st.SIM.State == SIMReady {
			m.lastSIM = st.SIM
		}
		m.mu.Unlock()
		close(m.ready)
		return nil
	}
	m.mu.Lock()
	simEvents := diffSIM(old.SIM, st.SIM, &m.lastSIM, source, now)
	m.mu.Unlock()
	for _, ev := range simEvents {
		m.emit(ev)
	}
	for _, d := range Domains {
		for _, ev := range diffReg(d, old.Registration[d], st.Registration[d], plmnOf(old), plmnOf(st), source, now) {
			m.emit(ev)
		}
	}
	return nil
}

func (m *Monitor) readSIM(ctx context.Context, mod *Modem) error {
	sim, err := mod.ReadSIM(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	old := m.status
	if old == nil {
		m.mu.Unlock()
		return nil
	}
	ns := *old
	ns.SIM = sim
	m.status = &ns
	evs := diffSIM(old.SIM, sim, &m.lastSIM, "urc", m.cfg.Now())
	m.mu.Unlock()
	for _, ev := range evs {
		m.emit(ev)
	}
	return nil
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
